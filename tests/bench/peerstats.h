/* tests/bench/run's measuring rules, shared by its C programs (bench_peer,
 * bench_floor); tests/bench/py/cipd_peer.py has the same rules in Python.
 *
 * The stamp. Just before a frame enters the transport, the producer writes
 * on the GPU (synchronous host-to-device copies, then a sync of the legacy
 * stream, so the bytes are in device memory before the transport sees the
 * frame): the frame counter into the frame's LAST 8 bytes (end of the last
 * row), then the 32-byte Stamp below into its FIRST bytes, t_ns read just
 * before that write. The consumer, when the frame reaches it, reads the
 * Stamp back with a synchronous device-to-host copy (the frame is then
 * usable on its GPU), takes now - t_ns as the latency, and reads the last 8
 * bytes: a counter there that is not the Stamp's is a torn frame. A counter
 * that jumps is missed frames; one not above the highest seen, a repeat.
 *
 * The schedule. Phases, stamped into each frame: 0 idle (warm-up before
 * "go", settling between phases, and the tail after "DONE"; the consumer
 * ignores those frames), 1 unthrottled (as fast as the transport takes
 * frames), 2 60 fps (the consumer's CPU), 3 paced latency. After "go":
 * settle 0.2 s, unthrottled for unthr_s, settle (0.3 s, or 3 frame times of
 * the unthrottled rate when longer, at most 3 s), 60 fps for cpu60_s (0:
 * no such phase), settle 0.2 s, then lat_frames frames at lat_fps, where
 * both shrink for a transport the unthrottled phase found slow: at most
 * half the producer's unthrottled rate, and at most lat_max_s of frames
 * (at least 10 frames). Idle frames go at warm_fps. Pacing sleeps until
 * each frame is due; a producer more than a period late starts the clock
 * again (no bursts). */
#ifndef CUDALINK_PEERSTATS_H
#define CUDALINK_PEERSTATS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h" /* cpu_now_us(), pct() */
#include "cudalink.h"  /* cudalink_now(): CLOCK_MONOTONIC, s */

#define STAMP_MAGIC 0x31484b4e494c4243ULL /* "CBLINKH1" little-endian */

typedef struct {
  uint64_t t_ns;    /* CLOCK_MONOTONIC, ns, read just before this write */
  uint64_t counter; /* frame number, every frame the producer sends */
  uint64_t phase;   /* PH_* */
  uint64_t magic;   /* STAMP_MAGIC */
} Stamp;

enum { PH_IDLE = 0, PH_UNTHR = 1, PH_CPU60 = 2, PH_LAT = 3, PH_N = 4 };

static inline uint64_t
mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleeps until the CLOCK_MONOTONIC time t (s); returns at once if past. */
static inline void
sleep_until(double t)
{
  struct timespec ts;
  if (t <= cudalink_now())
    return;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* ---- the producer's schedule ---- */

typedef struct {
  double unthr_s, cpu60_s, lat_fps, lat_max_s, warm_fps;
  int lat_frames;
} Plan;

static inline void
plan_defaults(Plan *p)
{
  p->unthr_s = 1.2;
  p->cpu60_s = 0;
  p->lat_frames = 300;
  p->lat_fps = 200;
  p->lat_max_s = 2.5;
  p->warm_fps = 50;
}

/* Takes "--unthrottled-s X" and the like at argv[*i]; 1 when it did. */
static inline int
plan_option(Plan *p, int argc, char **argv, int *i)
{
  const char *o = argv[*i];
  if (*i + 1 >= argc)
    return 0;
  if (strcmp(o, "--unthrottled-s") == 0)
    p->unthr_s = atof(argv[++*i]);
  else if (strcmp(o, "--cpu60-s") == 0)
    p->cpu60_s = atof(argv[++*i]);
  else if (strcmp(o, "--lat-frames") == 0)
    p->lat_frames = atoi(argv[++*i]);
  else if (strcmp(o, "--lat-fps") == 0)
    p->lat_fps = atof(argv[++*i]);
  else if (strcmp(o, "--lat-max-s") == 0)
    p->lat_max_s = atof(argv[++*i]);
  else if (strcmp(o, "--warm-fps") == 0)
    p->warm_fps = atof(argv[++*i]);
  else
    return 0;
  return 1;
}

enum { ST_WAIT, ST_SETTLE_A, ST_UNTHR, ST_SETTLE_B, ST_CPU60, ST_SETTLE_C, ST_LAT, ST_TAIL };

typedef struct {
  Plan plan;
  int stage;
  double stage_end, next_due;
  /* the unthrottled phase as the producer saw it */
  uint64_t unthr_frames;
  double unthr_t0, unthr_t1;
  /* the latency phase, sized after the unthrottled one */
  double lat_fps;
  int lat_n, lat_sent;
  uint64_t sent[PH_N];
  int done; /* set once the latency phase is over: print DONE */
} Schedule;

static inline void
sched_init(Schedule *s, const Plan *p)
{
  memset(s, 0, sizeof *s);
  s->plan = *p;
  s->stage = ST_WAIT;
}

static inline double
sched_unthr_rate(const Schedule *s)
{
  double d = s->unthr_t1 - s->unthr_t0;
  return s->unthr_frames > 1 && d > 0 ? (double)(s->unthr_frames - 1) / d : 0;
}

static inline void
sched_enter(Schedule *s, int stage, double now)
{
  const Plan *p = &s->plan;
  double rate;

  s->stage = stage;
  s->next_due = 0;
  switch (stage) {
  case ST_SETTLE_A:
  case ST_SETTLE_C:
    s->stage_end = now + 0.2;
    break;
  case ST_UNTHR:
    s->stage_end = now + p->unthr_s;
    break;
  case ST_SETTLE_B:
    rate = sched_unthr_rate(s);
    s->stage_end = now + (rate > 0 && 3.0 / rate > 0.3 ? (3.0 / rate < 3.0 ? 3.0 / rate : 3.0) : 0.3);
    s->lat_fps = p->lat_fps;
    if (rate > 0 && rate * 0.5 < s->lat_fps)
      s->lat_fps = rate * 0.5 > 1 ? rate * 0.5 : 1;
    s->lat_n = p->lat_frames;
    if (s->lat_fps * p->lat_max_s < s->lat_n)
      s->lat_n = (int)(s->lat_fps * p->lat_max_s);
    if (s->lat_n < 10)
      s->lat_n = p->lat_frames < 10 ? p->lat_frames : 10;
    break;
  case ST_CPU60:
    s->stage_end = now + p->cpu60_s;
    break;
  case ST_LAT:
    s->lat_sent = 0;
    break;
  case ST_TAIL:
    s->done = 1;
    break;
  default:
    break;
  }
}

/* The phase of the next frame and when it is due (*due <= now: at once).
 * go: the consumer is there, start after the warm-up. */
static inline int
sched_begin_frame(Schedule *s, int go, double now, double *due)
{
  double rate;

  if (s->stage == ST_WAIT && go)
    sched_enter(s, ST_SETTLE_A, now);
  for (;;) {
    int st = s->stage;
    if ((st == ST_SETTLE_A || st == ST_UNTHR || st == ST_SETTLE_B || st == ST_CPU60 ||
         st == ST_SETTLE_C) &&
        now >= s->stage_end) {
      int next = st + 1;
      if (next == ST_CPU60 && s->plan.cpu60_s <= 0)
        next = ST_SETTLE_C;
      sched_enter(s, next, now);
      continue;
    }
    if (st == ST_LAT && s->lat_sent >= s->lat_n) {
      sched_enter(s, ST_TAIL, now);
      continue;
    }
    break;
  }
  switch (s->stage) {
  case ST_UNTHR:
    rate = 0;
    break;
  case ST_CPU60:
    rate = 60;
    break;
  case ST_LAT:
    rate = s->lat_fps;
    break;
  default:
    rate = s->plan.warm_fps;
  }
  if (rate <= 0) {
    *due = now;
  } else {
    if (s->next_due == 0 || s->next_due < now - 1.0 / rate)
      s->next_due = now;
    *due = s->next_due;
    s->next_due += 1.0 / rate;
  }
  return s->stage == ST_UNTHR ? PH_UNTHR
         : s->stage == ST_CPU60 ? PH_CPU60
         : s->stage == ST_LAT   ? PH_LAT
                                : PH_IDLE;
}

/* The frame of phase ph went into the transport at time now. */
static inline void
sched_end_frame(Schedule *s, int ph, double now)
{
  s->sent[ph]++;
  if (ph == PH_UNTHR) {
    if (s->unthr_frames++ == 0)
      s->unthr_t0 = now;
    s->unthr_t1 = now;
  } else if (ph == PH_LAT) {
    s->lat_sent++;
  }
}

/* One line for the driver script: PRODUCER {...} */
static inline void
sched_print(const Schedule *s, FILE *f, const char *extra_json)
{
  fprintf(f,
          "PRODUCER {\"unthr_fps\": %.1f, \"lat_fps\": %.1f, \"lat_n\": %d, \"sent\": [%llu, "
          "%llu, %llu, %llu]%s%s}\n",
          sched_unthr_rate(s), s->lat_fps, s->lat_n, (unsigned long long)s->sent[0],
          (unsigned long long)s->sent[1], (unsigned long long)s->sent[2],
          (unsigned long long)s->sent[3], extra_json && *extra_json ? ", " : "",
          extra_json ? extra_json : "");
  fflush(f);
}

/* ---- the consumer's accounting ---- */

typedef struct {
  uint64_t frames, missed, torn, repeats;
  int64_t max_counter; /* -1: none yet */
  double t_first, t_last, cpu_first, cpu_last;
  double *lat; /* us, in arrival order */
  size_t n_lat, cap;
  /* us the consumer's own stamp read took (from the frame mapped, after
   * any sync its memory asked for, to the stamp read): the part of the latency that is
   * the read and the GPU's switch to the consumer's context, not the
   * transport's; in no particular order */
  double *read;
  size_t n_read, cap_read;
} PhaseStats;

static inline void
phases_init(PhaseStats *ph)
{
  memset(ph, 0, sizeof(PhaseStats) * PH_N);
  for (int i = 0; i < PH_N; i++)
    ph[i].max_counter = -1;
}

static inline void
phases_free(PhaseStats *ph)
{
  for (int i = 0; i < PH_N; i++) {
    free(ph[i].lat);
    free(ph[i].read);
  }
}

/* Appends v to *arr (n used of cap); 0 when out of memory (v dropped). */
static inline int
append_us(double **arr, size_t *n, size_t *cap, double v)
{
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    double *a = realloc(*arr, c * sizeof *a);
    if (!a)
      return 0;
    *arr = a;
    *cap = c;
  }
  (*arr)[(*n)++] = v;
  return 1;
}

/* A frame of phase `phase` arrived at now_s (s) with counter, torn or not,
 * latency lat_us, of which read_us the consumer's stamp read. */
static inline void
phase_add(PhaseStats *ph, uint64_t phase, uint64_t counter, int torn, double lat_us, double read_us,
          double now_s)
{
  PhaseStats *p;
  double cpu;

  if (phase >= PH_N || phase == PH_IDLE)
    return;
  p = &ph[phase];
  cpu = cpu_now_us();
  if (p->max_counter >= 0 && (int64_t)counter <= p->max_counter) {
    p->repeats++;
    return;
  }
  if (p->max_counter >= 0)
    p->missed += counter - (uint64_t)p->max_counter - 1;
  p->max_counter = (int64_t)counter;
  if (p->frames++ == 0) {
    p->t_first = now_s;
    p->cpu_first = cpu;
  }
  p->t_last = now_s;
  p->cpu_last = cpu;
  p->torn += torn != 0;
  append_us(&p->lat, &p->n_lat, &p->cap, lat_us);
  append_us(&p->read, &p->n_read, &p->cap_read, read_us);
}

/* the median of p's stamp reads (sorts them), -1 without any */
static inline double
phase_read_p50(PhaseStats *p)
{
  double p50, p99;
  if (!p->n_read)
    return -1;
  pct(p->read, (int)p->n_read, &p50, &p99);
  return p50;
}

/* {"1": {...}, "2": {...}, "3": {...}}: per phase frames, missed, torn,
 * repeats, wall_s (first to last frame), cpu_us (process CPU over it),
 * read_p50_us (the consumer's stamp read, -1: none). */
static inline void
phases_print_json(PhaseStats *ph, FILE *f)
{
  fputc('{', f);
  for (int i = 1; i < PH_N; i++) {
    PhaseStats *p = &ph[i];
    fprintf(f,
            "%s\"%d\": {\"frames\": %llu, \"missed\": %llu, \"torn\": %llu, \"repeats\": %llu, "
            "\"wall_s\": %.6f, \"cpu_us\": %.1f, \"read_p50_us\": %.2f}",
            i > 1 ? ", " : "", i, (unsigned long long)p->frames, (unsigned long long)p->missed,
            (unsigned long long)p->torn, (unsigned long long)p->repeats, p->t_last - p->t_first,
            p->cpu_last - p->cpu_first, phase_read_p50(p));
  }
  fputc('}', f);
}

/* "phase latency_us" lines; 0 on success. */
static inline int
phases_write_latencies(const PhaseStats *ph, const char *path)
{
  FILE *f;
  if (!path)
    return 0;
  f = fopen(path, "w");
  if (!f)
    return -1;
  for (int i = 1; i < PH_N; i++)
    for (size_t k = 0; k < ph[i].n_lat; k++)
      fprintf(f, "%d %.2f\n", i, ph[i].lat[k]);
  return fclose(f);
}

#endif
