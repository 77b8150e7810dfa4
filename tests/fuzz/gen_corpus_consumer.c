/* Writes the seed corpus of fuzz_consumer into DIR (tests/fuzz/corpus-consumer/):
 * one small program per thing the target should reach early (fuzz_consumer.h
 * gives the encoding), none of which trips a finding on the code of
 * fuzz-consumer's start. With FINDINGS, also the reproducers of what the
 * target found there (tests/fuzz/findings/, described in its README.md).
 * Run again only when the seeds should change: the output is checked in.
 *   gen_corpus_consumer DIR [FINDINGS] */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_consumer.h"

typedef struct prog {
  uint8_t b[512];
  size_t n;
} prog;

static void
put(prog *p, int v)
{
  if (p->n < sizeof p->b)
    p->b[p->n++] = (uint8_t)v;
}

/* prelude */
static void
pre(prog *p, int base, int locked, int fmt, int slots, int pool, int size, int config, int poll,
    int settle)
{
  p->n = 0;
  put(p, base | (locked ? 4 : 0));
  put(p, fmt);
  put(p, slots - 1);
  put(p, pool);
  put(p, size);
  put(p, config);
  put(p, poll);
  put(p, settle - 1);
}

/* a consumer record: op and up to 4 args */
static void
c(prog *p, int op, int a0, int a1)
{
  put(p, op);
  switch (op) {
    case C_CREATE:
      put(p, a0);
      put(p, 0);
      put(p, 0);
      put(p, a1);
      break;
    case C_WAIT:
    case C_COPY:
    case C_SLEEP:
    case C_INTERRUPT: put(p, a0); break;
    case C_LOOP:
      put(p, a0);
      put(p, a1);
      break;
    default: break;
  }
}

/* a mutator record: op | 0x80, delay (50 us units), args */
static void
m(prog *p, int op, int delay, const uint8_t *args, size_t n)
{
  put(p, 0x80 | op);
  put(p, delay);
  for (size_t i = 0; i < n; i++)
    put(p, args[i]);
}

#define M(p, op, delay, ...)                                         \
  do {                                                               \
    static const uint8_t a_[] = { 0, __VA_ARGS__ };                  \
    m((p), (op), (delay), a_ + 1, sizeof a_ - 1);                    \
  } while (0)

/* field write, 4 bytes */
static void
w32(prog *p, int delay, int field, uint32_t v)
{
  uint8_t a[5] = { (uint8_t)field, (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                   (uint8_t)(v >> 24) };
  m(p, M_W32, delay, a, sizeof a);
}

static int
save(const char *dir, const char *name, const prog *p)
{
  char path[1024];
  FILE *f;
  int ok;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "wb");
  ok = f && fwrite(p->b, 1, p->n, f) == p->n;
  if (f && fclose(f) != 0)
    ok = 0;
  if (!ok)
    fprintf(stderr, "gen_corpus_consumer: cannot write %s\n", path);
  return !ok;
}

int
main(int argc, char **argv)
{
  const char *dir;
  prog p;
  int bad = 0;

  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s DIR [FINDINGS]\n", argv[0]);
    return 2;
  }
  dir = argv[1];

  /* A good ring of ours (locked): frames at a steady 1 ms pace, the consumer
   * waits and copies them (futex wake-ups, pacing), then looks around. */
  pre(&p, BASE_SYNTH, 1, 0, 3, 0, SIZE_EXACT, 0, 50, 10);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_PUBLISH_N, 20, 31, 19);
  c(&p, C_LOOP, 15, 125);
  c(&p, C_ACQ_REL, 0, 0);
  c(&p, C_QUERY, 0, 0);
  bad |= save(dir, "steady-ours", &p);

  /* A foreign ring (polled) truncated to 0 while the consumer waits, then
   * re-grown: the SIGBUS guard, refresh, reconnect. */
  pre(&p, BASE_SYNTH, 0, 2, 2, 0, SIZE_EXACT, 0, 10, 5);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_PUBLISH, 160);
  c(&p, C_WAIT, 200, 0);
  c(&p, C_COPY, 16, 0);
  M(&p, M_TRUNCATE, 60, SIZE_ZERO, 0, 0);
  c(&p, C_WAIT, 250, 0);
  M(&p, M_REINIT, 100, 2, 1, 0);
  c(&p, C_COPY, 0, 0);
  c(&p, C_WAIT, 250, 0);
  c(&p, C_CONNECT, 0, 0);
  c(&p, C_QUERY, 0, 0);
  bad |= save(dir, "truncate-zero-while-waiting", &p);

  /* The live producer's header copied: real handles; a re-init in our
   * producer's order and a peer's version-first one while the consumer
   * waits (reopen, FORMAT_CHANGED). */
  pre(&p, BASE_LIVE, 0, 0, 3, 0, SIZE_EXACT, 0, 20, 8);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_PUBLISH, 10);
  M(&p, M_REINIT, 40, 3, 4, 0);
  c(&p, C_LOOP, 6, 100);
  M(&p, M_VERSION, 40);
  M(&p, M_LIVE, 20);
  c(&p, C_LOOP, 6, 100);
  c(&p, C_QUERY, 0, 0);
  bad |= save(dir, "live-copy-reinit", &p);

  /* A re-init that keeps num_slots (what our producer's reformat does):
   * FORMAT_CHANGED, frames of the new format. */
  pre(&p, BASE_SYNTH, 0, 0, 3, 0, SIZE_EXACT, 0, 20, 8);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_PUBLISH, 100);
  M(&p, M_REINIT, 60, 3, 2, 0);
  M(&p, M_PUBLISH_N, 20, 5, 19);
  c(&p, C_LOOP, 10, 125);
  c(&p, C_QUERY, 0, 0);
  bad |= save(dir, "reinit-same-slots", &p);

  /* The consumer follows the live producer itself (a real ring of ours,
   * reformatting every 400 frames). */
  pre(&p, BASE_NONE, 0, 0, 3, 0, SIZE_EXACT, 0x10, 50, 20);
  c(&p, C_CONNECT, 0, 0);
  c(&p, C_LOOP, 15, 250);
  c(&p, C_ACQ_REL, 0, 0);
  c(&p, C_DISCONNECT, 0, 0);
  c(&p, C_CONNECT, 0, 0);
  c(&p, C_WAIT, 250, 0);
  bad |= save(dir, "follow-live", &p);

  /* Handles that do not open: a memory handle's first byte and an event
   * handle's first byte overwritten, with a version bump in between. */
  pre(&p, BASE_SYNTH, 0, 3, 2, 0, SIZE_EXACT, 0, 10, 3);
  M(&p, M_W8, 0, F_MEM_HANDLE, 'x');
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_HANDLE, 100, 0, 0, 0);
  M(&p, M_VERSION, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_PUBLISH, 0);
  c(&p, C_WAIT, 100, 0);
  M(&p, M_W8, 20, F_EVENT_HANDLE, 0);
  M(&p, M_VERSION, 0);
  c(&p, C_WAIT, 250, 0);
  c(&p, C_CONNECT, 0, 0);
  bad |= save(dir, "bad-handles", &p);

  if (argc == 3) {
    const char *fdir = argv[2];

    /* slot-range, acquire: a 1 MiB frame announced over 8 KiB, 128 B and
     * 2 MiB buffers (pool 10, 13, 0): acquire hands out slot 0 (8 KiB) with
     * a 1 MiB extent. */
    pre(&p, BASE_SYNTH, 0, 5, 3, 0x80 | 10, SIZE_EXACT, 0, 10, 4);
    c(&p, C_CONNECT, 0, 0);
    M(&p, M_PUBLISH, 0);
    c(&p, C_WAIT, 250, 0);
    c(&p, C_ACQ_REL, 0, 0);
    bad |= save(fdir, "slot-range-acquire", &p);

    /* slot-range, copy: the same ring; the copy reaches the driver, which
     * refuses to read 1 MiB from an 8 KiB buffer (a GPU faults). */
    pre(&p, BASE_SYNTH, 0, 5, 3, 0x80 | 10, SIZE_EXACT, 0, 10, 4);
    c(&p, C_CONNECT, 0, 0);
    M(&p, M_PUBLISH, 0);
    c(&p, C_WAIT, 250, 0);
    c(&p, C_COPY, 0, 0);
    bad |= save(fdir, "slot-range-copy", &p);

    /* slot-range with good 2 MiB slots: a 640x480 float16 x4 frame is
     * 2.34 MiB. */
    pre(&p, BASE_SYNTH, 0, 8, 3, 0, SIZE_EXACT, 0, 10, 4);
    c(&p, C_CONNECT, 0, 0);
    M(&p, M_PUBLISH, 0);
    c(&p, C_WAIT, 250, 0);
    c(&p, C_ACQ_REL, 0, 0);
    bad |= save(fdir, "slot-range-just-over-2mib", &p);

    /* refused: a valid, unchanging header in a 4096-byte segment (what a
     * page-rounded mapping looks like); connect says "kept changing". */
    pre(&p, BASE_SYNTH, 0, 0, 3, 0, SIZE_PAGE, 0, 10, 4);
    c(&p, C_CONNECT, 0, 0);
    bad |= save(fdir, "refused-page-sized-segment", &p);

    /* Not an automatic finding: a re-init from 3 to 5 slots in our
     * producer's order; the next wait says PRODUCER_GONE ("it shut down")
     * instead of FORMAT_CHANGED: the shutdown flag is read at the 3-slot
     * offset (404), where slot 3's memory handle now starts. Run it with
     * FUZZ_CONSUMER_TRACE=1. */
    pre(&p, BASE_SYNTH, 0, 0, 3, 0, SIZE_EXACT, 0, 10, 4);
    c(&p, C_CONNECT, 0, 0);
    M(&p, M_REINIT, 100, 0, 4, 0);
    c(&p, C_WAIT, 250, 0);
    c(&p, C_WAIT, 250, 0);
    c(&p, C_CONNECT, 0, 0);
    bad |= save(fdir, "gone-on-slot-count-change", &p);

    /* state: connect returns ERR_IPC_OPEN with an empty last_error. The
     * shutdown flag goes up between the two reads of the first snapshot
     * (the comparison leaves it out); the ring opens, the check after it
     * sees the flag, and with settle_ms 1 the deadline has passed. */
    pre(&p, BASE_SYNTH, 0, 0, 3, 0, SIZE_EXACT, 0, 10, 1);
    c(&p, C_CONNECT, 0, 0);
    M(&p, M_W8, 24, F_SHUTDOWN, 1);
    bad |= save(fdir, "connect-no-reason", &p);
  }

  /* The name's life: unlinked, recreated shorter, replaced by a FIFO, a
   * symlink and a directory, while the consumer connects again and again. */
  pre(&p, BASE_SYNTH, 0, 1, 1, 0, SIZE_EXACT, 0, 10, 3);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_UNLINK, 100);
  c(&p, C_WAIT, 50, 0);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_RECREATE, 80, SIZE_ONE_LESS, 0, 0);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_NONREG, 80, 0);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_NONREG, 80, 1);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_NONREG, 80, 2);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  M(&p, M_RECREATE, 80, SIZE_EXACT, 0, 0);
  c(&p, C_SLEEP, 40, 0);
  c(&p, C_CONNECT, 0, 0);
  bad |= save(dir, "unlink-recreate-nonreg", &p);

  /* Metadata changed without a version bump, the shutdown flag, handles
   * swapped and zeroed, the lock taken and dropped (our producer "dies"). */
  pre(&p, BASE_SYNTH, 0, 0, 4, 0, SIZE_EXACT, 2, 10, 6);
  M(&p, M_LOCK, 0, 1);
  c(&p, C_CONNECT, 0, 0);
  w32(&p, 120, F_WIDTH, 100000);
  w32(&p, 0, F_DATA_SIZE, 7);
  M(&p, M_PUBLISH, 10);
  c(&p, C_LOOP, 3, 100);
  M(&p, M_HANDLE, 10, 1, 13, 1);
  M(&p, M_HANDLE, 0, 2, 0, 3);
  M(&p, M_VERSION, 0);
  c(&p, C_LOOP, 3, 100);
  M(&p, M_LOCK, 10, 0);
  c(&p, C_WAIT, 250, 0);
  M(&p, M_SHUTDOWN, 10);
  c(&p, C_WAIT, 250, 0);
  c(&p, C_CONNECT, 0, 0);
  bad |= save(dir, "fields-lock-shutdown", &p);

  /* Raw header bytes from the input (a num_slots of 11, then fixed), with an
   * interrupt from the other thread and a new consumer with other flags. */
  pre(&p, BASE_RAW, 0, 0, 3, 0, SIZE_EXACT, 8, 10, 2);
  put(&p, 30); /* 180 bytes */
  {
    static const uint8_t magic[] = { 0x44, 0x50, 0x49, 0x43 };
    for (int i = 0; i < 180; i++)
      put(&p, i < 4 ? magic[i] : i == 4 ? 1 : i == 12 ? 11 : 0);
  }
  c(&p, C_CONNECT, 0, 0);
  w32(&p, 10, F_NUM_SLOTS, 1);
  M(&p, M_INTERRUPT, 20, 1);
  c(&p, C_CREATE, 0, 0x6);
  c(&p, C_CONNECT, 0, 0);
  c(&p, C_WAIT, 100, 0);
  c(&p, C_INTERRUPT, 0, 0);
  c(&p, C_WAIT, 100, 0);
  c(&p, C_DESTROY, 0, 0);
  c(&p, C_CONNECT, 0, 0);
  bad |= save(dir, "raw-interrupt-recreate", &p);

  return bad;
}
