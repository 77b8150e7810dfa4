/* The holds back-channel: our extension to the protocol, through which
 * importing readers (cudalinksrc io-mode=import) tell our producer which
 * slots they hold, so that it never rewrites one of them. Internal to
 * libcudalink (producer.c, consumer.c).
 *
 * A second POSIX shared-memory object, "/dev/shm/.cudalink-holds-NAME",
 * next to segment NAME. Foreign peers (TouchDesigner, the cuda_link
 * package) never open it: the segment they read is byte for byte what it
 * was, and everything in it stays true for them (PROTOCOL.md, "Ours").
 *
 *   offset  size  field
 *   0       4     magic 0x444C4843 ("CHLD" read as LE u32)
 *   4       4     layout version (1)
 *   8       8     ring_version: the segment version the keys below are for
 *   16      4     num_slots of that ring
 *   20      4     producer flags (bit 0: its context is an MPS client)
 *   24      8     writing: key of the slot the producer is writing, 0 none
 *   32      8     producer pid (information)
 *   64      80    key of each slot s (u64, 0..9): names the allocation,
 *                 unique for the producer's life, never 0
 *   256     256   reader entry r (0..15): u32 pid, u32 flags (bit 0: MPS),
 *                 8 bytes free, then 16 u64 hold records (a key, or 0)
 *
 * Who is alive: the producer holds an open-file-description lock on the
 * header's first byte for its life (a table without it was left by a dead
 * producer: readers refuse it). A reader owns entry r while it holds an open-file-
 * description lock (F_OFD_SETLK) on the entry's first byte. The kernel
 * drops the lock when the reader's process dies, however it dies, so the
 * producer never trusts a hold without finding the lock taken
 * (F_OFD_GETLK) and never writes a reader's entry. A new reader takes the
 * lock first and then clears what a dead one left.
 *
 * The race between "producer starts rewriting slot s" and "reader takes
 * slot s" is settled Dekker-style, with sequentially consistent accesses on
 * both sides: the producer stores `writing = key` and then looks for holds
 * of key; the reader stores its hold and then loads `writing` (and the
 * segment's write_idx). At least one of them sees the other: the producer
 * picks another course (holds.h's callers: grow or drop) or the reader
 * lets go and skips the frame. The producer clears `writing` once the
 * slot is written, before it publishes the frame; a reader that then holds
 * an OLDER frame of that slot is still caught, by the segment's write_idx:
 * the producer began rewriting the slot only after publishing the
 * write_idx that makes the older frame torn (PROTOCOL.md, "Consumer",
 * step 6), and its store of `writing` (sequentially consistent) orders that
 * publish before its look at the holds. */
#ifndef CUDALINK_HOLDS_H
#define CUDALINK_HOLDS_H

#include <stddef.h>
#include <stdint.h>

#include "cudalink.h"
#include "shm.h" /* CUDALINK_HOLDS_PREFIX */

#define CUDALINK_HOLDS_READERS 16
#define CUDALINK_HOLDS_PER_READER 16
#define CUDALINK_HOLDS_FLAG_MPS 1u

typedef struct cudalink_holds cudalink_holds;

/* --- producer side ---------------------------------------------------- */

/** Creates (or re-uses) the back-channel of segment name, mode 0600, and
 * writes its header; reader entries already there are left alone (their
 * readers may still be alive). why gets a sentence on failure. */
cudalink_status cudalink_holds_create(const char *name, uint32_t producer_flags,
                                      cudalink_holds **out, char *why, size_t why_size);

/** Announces the keys of the ring published as version (call it before
 * the segment's header says version). */
void cudalink_holds_publish_ring(cudalink_holds *h, uint64_t version, uint32_t num_slots,
                                 const uint64_t *keys);

/** The slot the producer is about to write (0: none), sequentially
 * consistent. */
void cudalink_holds_set_writing(cudalink_holds *h, uint64_t key);

/** 1 when a live reader holds key. */
int cudalink_holds_is_held(cudalink_holds *h, uint64_t key);

typedef struct cudalink_holds_census {
  uint32_t readers;      /* live readers with an entry */
  uint32_t readers_mps;  /* of those, MPS clients */
  uint32_t holds;        /* slots they hold */
  uint32_t dead_holding; /* entries of dead readers that still list holds */
  uint32_t dead_pid;     /* one such reader's pid */
} cudalink_holds_census;

/** Counts live readers and their holds. */
void cudalink_holds_census_take(cudalink_holds *h, cudalink_holds_census *census);

/** Unmaps; with unlink also removes the name (the producer's clean end). */
void cudalink_holds_destroy(cudalink_holds *h, int unlink_name);

/** Removes the back-channel name of segment name, if any: what a producer
 * that offers no import does, so that no reader trusts a table a dead
 * producer left (readers also refuse a table whose producer lock, on its
 * first byte, is free: CUDALINK_ERR_STALE). */
void cudalink_holds_remove(const char *name);

/* --- reader side ------------------------------------------------------ */

/** Opens the back-channel of segment name and claims a reader entry.
 * CUDALINK_ERR_UNSUPPORTED when there is none (a foreign producer, or
 * Windows), another error with why when it cannot be used. Reference
 * counted: _ref / _unref; the last unref lets the entry go. */
cudalink_status cudalink_holds_open(const char *name, uint32_t reader_flags, cudalink_holds **out,
                                    char *why, size_t why_size);
cudalink_holds *cudalink_holds_ref(cudalink_holds *h);
void cudalink_holds_unref(cudalink_holds *h);

/** The key of slot for the ring published as version, with the producer's
 * flags; 0 when the channel describes another ring. */
uint64_t cudalink_holds_key(cudalink_holds *h, uint64_t version, uint32_t slot,
                            uint32_t *producer_flags);

/** Records a hold of key: its record index (>= 0), or -1 when the entry's
 * records are all taken, -2 when the producer is writing that slot now (the
 * hold was taken back). After >= 0 the caller must still check that the
 * frame was not rewritten before the hold (the segment's write_idx). */
int cudalink_holds_take(cudalink_holds *h, uint64_t key);

/** Clears hold record (from any thread). */
void cudalink_holds_drop(cudalink_holds *h, int record);

#endif
