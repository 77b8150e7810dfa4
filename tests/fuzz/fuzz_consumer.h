/* The input format of fuzz_consumer (a small program), shared with
 * gen_corpus_consumer.c, which writes the seeds.
 *
 * An input is a prelude of PRE_LEN bytes, then (base BASE_RAW only) a
 * length byte n and n*6 raw header bytes, then records until the end:
 *
 *   consumer record:  op (bit 7 clear), args
 *       run one after the other by the main thread, through the consumer API
 *   mutator record:   op | 0x80, delay, args
 *       run by the mutator thread at its own pace: delay * 50 us after the
 *       previous mutator record, on the fuzz-owned segment
 *
 * Missing argument bytes read as 0. Op values are taken modulo the count, so
 * that any byte is some op. */
#ifndef FUZZ_CONSUMER_H
#define FUZZ_CONSUMER_H

/* prelude */
enum {
  PRE_BASE,   /* bits 0-1: BASE_*; bit 2: the segment is "ours" (an OFD
                 write lock held on it) from the start */
  PRE_FORMAT, /* index into the format table (mod FMT_COUNT) */
  PRE_SLOTS,  /* num_slots of a synthetic ring: 1 + v % 10 */
  PRE_POOL,   /* bit 7 clear: slot s uses good buffer s (2 MiB each);
                 set: slot s uses pool[(v + 3 s) % POOL_COUNT] (odd sizes) */
  PRE_SIZE,   /* the segment's initial size: SIZE_* (mod SIZE_COUNT) */
  PRE_CONFIG, /* bits 0-3: CUDALINK_CONSUMER_* flags; bit 4: the consumer
                 follows the live producer's segment instead of ours */
  PRE_POLL,   /* poll_interval_us = 20 + 20 * v */
  PRE_SETTLE, /* settle_ms = 1 + v % 24 */
  PRE_LEN
};

enum {
  BASE_SYNTH, /* a valid header built here from PRE_FORMAT/SLOTS/POOL */
  BASE_LIVE,  /* the live producer's header, copied (its handles are real) */
  BASE_RAW,   /* bytes from the input */
  BASE_NONE,  /* no segment at first */
  BASE_COUNT
};

/* Segment sizes, for the prelude and M_TRUNCATE / M_RECREATE. */
enum {
  SIZE_EXACT,    /* the layout size of the current num_slots */
  SIZE_PAGE,     /* 4096 */
  SIZE_SHORT,    /* arg % exact (shorter than the layout) */
  SIZE_ZERO,     /* 0 */
  SIZE_LARGE,    /* 64 KiB */
  SIZE_ONE_LESS, /* exact - 1 */
  SIZE_HUGE,     /* 16 MiB */
  SIZE_ARG,      /* arg (u16) */
  SIZE_COUNT
};

/* Fields the mutator writes (M_W8 / M_W32 / M_W64), offsets from the
 * layout of the num_slots it last wrote. */
enum {
  F_MAGIC,
  F_VERSION,
  F_NUM_SLOTS,
  F_WRITE_IDX,
  F_SHUTDOWN,
  F_WIDTH,
  F_HEIGHT,
  F_NUM_COMPS,
  F_KIND,
  F_BITS,
  F_FLAGS,
  F_DATA_SIZE,
  F_TIMESTAMP,
  F_MEM_HANDLE,   /* of slot (value >> 8) % 10, the write's width at its start */
  F_EVENT_HANDLE, /* likewise */
  F_COUNT
};

/* consumer ops: main thread */
enum {
  C_CREATE,     /* name sel, poll, settle, flags: destroy + create */
  C_CONNECT,    /* */
  C_WAIT,       /* t: timeout_us = 40 * t (0..10.2 ms) */
  C_COPY,       /* extra: dst pitch = row + extra (extra 255: row - 1) */
  C_ACQ_REL,    /* acquire, read the whole frame through the mock, release */
  C_ACQUIRE,    /* acquire only */
  C_RELEASE,    /* release only */
  C_QUERY,      /* frame_info, format, stats, last_error, stream, is_ours */
  C_DISCONNECT, /* */
  C_DESTROY,    /* */
  C_SLEEP,      /* t: 50 * t us */
  C_LOOP,       /* n, t: up to n times wait(40 t us) + copy on OK */
  C_INTERRUPT,  /* on (from this thread) */
  C_COUNT
};

/* mutator ops: the second thread, on the fuzz-owned segment */
enum {
  M_W8,        /* field, u8 */
  M_W32,       /* field, u32 */
  M_W64,       /* field, u64 */
  M_BYTES,     /* off u16 (mod 1400), len (mod 16), bytes */
  M_PUBLISH,   /* write_idx + 1, timestamp now, futex wake */
  M_PUBLISH_N, /* n (mod 32), period (50 us units): a steady producer */
  M_REINIT,    /* fmt, slots, pool: our producer's order (write_idx 0,
                  handles, metadata, then version + 1) */
  M_VERSION,   /* version + 1 alone (a peer's re-init starts so) */
  M_TRUNCATE,  /* size class, arg u16 */
  M_UNLINK,    /* the name goes; the file lives on while open */
  M_RECREATE,  /* size class, arg u16: unlink, new file, same bytes */
  M_LOCK,      /* on: take / drop the OFD write lock (ours / died) */
  M_SHUTDOWN,  /* shutdown flag + handles zeroed (a clean shutdown) */
  M_HANDLE,    /* slot, pool index, what: 0 both, 1 mem, 2 event, 3 zero */
  M_LIVE,      /* copy the live producer's header over ours */
  M_INTERRUPT, /* on: cudalink_consumer_interrupt() from this thread */
  M_NONREG,    /* kind: the name becomes a FIFO, a symlink or a directory */
  M_TARGET,    /* old: later writes go to the unlinked previous file */
  M_COUNT
};

#define FMT_COUNT 9
#define POOL_GOOD 10 /* 2 MiB buffers, one per slot */
#define POOL_ODD 6
#define POOL_COUNT (POOL_GOOD + POOL_ODD)

#endif
