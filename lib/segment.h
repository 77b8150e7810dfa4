/* A live segment, which other processes write while we read it: the few
 * accesses that need more than the codec's byte-by-byte decoding. Internal
 * to libcudalink (producer.c, consumer.c); implemented in protocol.c, the
 * one file that knows where the fields are. `segment` is always the start
 * of a mapping (page aligned), never a copy in a local buffer.
 *
 * The version field (u64 at offset 4) is not 8-byte aligned, so no C11
 * atomic can load or store it whole on every architecture (an unaligned
 * 8-byte access is torn on AArch64 before LSE2, and C11 has no unaligned
 * atomics). Its two halves, at offsets 4 and 8, are 4-byte aligned: each is
 * loaded and stored with a 32-bit atomic (acquire / release), and a load
 * reads both halves twice until two reads agree (seqlock style, so a read
 * that straddles a store is retried). What that guarantees:
 * - a change is never missed: each half read is that half's old or new
 *   value, so a read equals the old version only while it saw neither half
 *   that changed, and the next read sees the change;
 * - whatever half of a new version a reader sees, it also sees everything
 *   the producer wrote before the version (both halves are release stores);
 * - the one thing a split read cannot rule out: a reader that runs entirely
 *   between the writer's two stores of a version whose high half changes
 *   (once every 2^32 versions) sees a mix that nobody wrote. The consumer
 *   only compares versions for equality, and keeps one only after two reads
 *   2 ms apart and a third after opening the ring agree, so the worst such a
 *   mix can do is cause one extra re-open. */
#ifndef CUDALINK_SEGMENT_H
#define CUDALINK_SEGMENT_H

#include <stdint.h>

#include "cudalink.h"

/** The version field of a live segment, as described above. */
uint64_t cudalink_segment_load_version(const void *segment);

/** Stores version: low half first, then high half, each a release store. */
void cudalink_segment_store_version(void *segment, uint64_t version);

/** 1 when two copies of a num_slots header (a and b, each at least its
 * layout size) describe the same ring: magic, num_slots, every handle and
 * every metadata byte equal. version (compared on its own, atomically),
 * write_idx, timestamp and shutdown_flag (which move) are left out. */
int cudalink_segment_same_ring(const uint8_t *a, const uint8_t *b, uint32_t num_slots);

/* write_idx arithmetic. Our producer's counter runs 1, 2, ... up to the
 * largest multiple of num_slots that fits in 32 bits and then goes on at 1:
 * slot (write_idx - 1) % num_slots stays one step ahead of the last across
 * the wrap (2^32 is no multiple of 3, 5, 6, 7, 9 or 10), and it never
 * publishes 0, which means "no frame yet" (or re-initialising) to every
 * peer. */

/** The largest write_idx our producer publishes for num_slots (1..10);
 * 0 for any other num_slots. */
uint32_t cudalink_write_idx_top(uint32_t num_slots);

/** The write_idx our producer publishes after write_idx: + 1, or 1 from
 * cudalink_write_idx_top() on (never 0). */
uint32_t cudalink_write_idx_next(uint32_t write_idx, uint32_t num_slots);

/** How many frames were published after write_idx `from` up to `to`,
 * modulo 2^32 (right for a producer that wraps 0xFFFFFFFF -> 0). With
 * our_wrap, a `to` below `from` is taken as our producer's wrap, which
 * skips the values above the top and 0. */
uint32_t cudalink_write_idx_distance(uint32_t from, uint32_t to, uint32_t num_slots, int our_wrap);

#endif
