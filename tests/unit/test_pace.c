/* The producer's pace (lib/pace.c): when the consumer expects the next
 * frame, from made-up producer timestamps. No clock, no CUDA. */
#include "pace.h"
#include "testutil.h"

#include <math.h>

#define T0 1000.0 /* a monotonic clock's reading, seconds */

/* Feeds n frames every period seconds, frame i displaced by jitter * (+1,
 * -1, +1, ...); returns the last frame's timestamp. */
static double
feed(cudalink_pace *p, double t, int n, double period, double jitter)
{
  for (int i = 0; i < n; i++) {
    double ts = t + period * (i + 1) + (i % 2 ? -jitter : jitter);
    cudalink_pace_frame(p, ts, 1, ts + 30e-6);
  }
  return t + period * n + ((n - 1) % 2 ? -jitter : jitter);
}

static int
window(const cudalink_pace *p, double *start, double *end)
{
  *start = *end = -1;
  return cudalink_pace_window(p, start, end);
}

/* The window's half-width as pace.c computes it before the budget's
 * scale: 5 us + 1.5 average deviations of the better guess, at most 1 %
 * of the period. */
static double
unscaled_lead(const cudalink_pace *p)
{
  double lead = 5e-6 + 1.5 * fmin(p->jitter, p->drift_jitter);
  return lead < p->period * CUDALINK_PACE_SHARE ? lead : p->period * CUDALINK_PACE_SHARE;
}

static void
test_steady_producer(void)
{
  cudalink_pace p;
  double start, end, last, due;

  cudalink_pace_reset(&p);
  CHECK(!window(&p, &start, &end));
  /* the first timestamp, the interval that sets the period and three that
   * agree with it: still learning; the fourth opens the window */
  feed(&p, T0, 5, 1 / 60.0, 0);
  CHECK(!window(&p, &start, &end));
  last = feed(&p, T0 + 5 / 60.0, 1, 1 / 60.0, 0);
  REQUIRE(window(&p, &start, &end));
  due = last + 1 / 60.0;
  CHECK(start < due && due < end);
  /* no jitter: the narrowest window */
  CHECK(fabs((end - start) - 10e-6) < 1e-9);

  /* frames 20 us late and early in turn: the window is centred on the
   * producer's schedule, not on the last frame (which was 20 us early:
   * the next one will be 20 us late), and wide enough for the next frame,
   * within 1 % of the period on each side */
  cudalink_pace_reset(&p);
  last = feed(&p, T0, 200, 1 / 60.0, 20e-6);
  REQUIRE(window(&p, &start, &end));
  due = T0 + 201 / 60.0;
  CHECK(fabs(last - (T0 + 200 / 60.0 - 20e-6)) < 1e-9);
  CHECK(fabs((start + end) / 2 - due) < 5e-6);
  CHECK(p.jitter < p.drift_jitter);
  CHECK(start < due + 20e-6 && due + 20e-6 < end);
  CHECK(end - due <= 1 / 60.0 * CUDALINK_PACE_SHARE + 1e-12);
  CHECK(fabs(p.period - 1 / 60.0) < 1e-6);
}

/* A producer that sleeps a period after each frame drifts by each
 * frame's lateness: the window follows its last frame, and is narrower
 * than the schedule's guess would need. */
static void
test_drifting_producer(void)
{
  cudalink_pace p;
  double start, end, ts = T0;
  unsigned r = 12345;

  cudalink_pace_reset(&p);
  for (int i = 0; i < 300; i++) {
    r = r * 1103515245u + 12345u;
    ts += 0.002 + 40e-6 * ((r >> 16) % 1000) / 1000.0; /* 0-40 us late */
    cudalink_pace_frame(&p, ts, 1, ts);
  }
  REQUIRE(window(&p, &start, &end));
  CHECK(p.drift_jitter < p.jitter);
  CHECK(fabs((start + end) / 2 - (ts + p.period)) < 1e-9);
  CHECK(fabs((end - start) / 2 - unscaled_lead(&p)) < 1e-9);
}

/* One late frame (a stall) is an outlier, but the producer keeps its
 * schedule: the next frame on schedule is not, and the window is back
 * after WARMUP frames, where the schedule says. */
static void
test_one_stall(void)
{
  cudalink_pace p;
  double start, end, ts;

  cudalink_pace_reset(&p);
  ts = feed(&p, T0, 20, 0.010, 0);
  ts += 0.010;
  cudalink_pace_frame(&p, ts + 0.004, 1, ts + 0.004);
  CHECK(!window(&p, &start, &end));
  CHECK_EQ_INT(p.outliers, 1);
  ts = feed(&p, ts, 1, 0.010, 0);
  CHECK_EQ_INT(p.outliers, 0);
  ts = feed(&p, ts, 4, 0.010, 0);
  REQUIRE(window(&p, &start, &end));
  CHECK(start < ts + 0.010 && ts + 0.010 < end);
  CHECK(fabs(p.period - 0.010) < 1e-9);
}

static void
test_jitter_is_capped(void)
{
  cudalink_pace p;
  double start, end, last;

  /* frames 0.2 ms early or late at 200 fps (intervals 4.6 and 5.4 ms):
   * the window stays within 1 % of the period on each side of the due
   * time */
  cudalink_pace_reset(&p);
  last = feed(&p, T0, 100, 5e-3, 0.2e-3);
  REQUIRE(window(&p, &start, &end));
  CHECK(fabs((end - start) - 2 * p.period * CUDALINK_PACE_SHARE) < 1e-9);
  CHECK(fabs((start + end) / 2 - (p.phase + p.period)) < 1e-9);
  /* on the schedule (T0 + 101 periods), not next to the last frame */
  CHECK(fabs((start + end) / 2 - (T0 + 101 * 5e-3)) < 0.05e-3);
  CHECK(fabs(last - (T0 + 100 * 5e-3 - 0.2e-3)) < 1e-9);
  CHECK(fabs(p.period - 5e-3) < 0.2e-3);
}

static void
test_missed_frames(void)
{
  cudalink_pace p;
  double start, end, ts;

  /* the consumer saw every third frame: the period is still one frame's */
  cudalink_pace_reset(&p);
  for (int i = 0; i < 10; i++) {
    ts = T0 + i * 3 * 0.010;
    cudalink_pace_frame(&p, ts, 3, ts + 1e-4);
  }
  REQUIRE(window(&p, &start, &end));
  CHECK(fabs(p.period - 0.010) < 1e-9);
  CHECK(start < ts + 0.010 && ts + 0.010 < end);
}

static void
test_irregular_producer(void)
{
  cudalink_pace p;
  double start, end, ts = T0;
  int windows = 0;

  /* 10 ms, 20 ms, 10 ms, ...: no steady pace, never a window */
  cudalink_pace_reset(&p);
  for (int i = 0; i < 100; i++) {
    ts += i % 2 ? 0.020 : 0.010;
    cudalink_pace_frame(&p, ts, 1, ts);
    windows += window(&p, &start, &end);
  }
  CHECK_EQ_INT(windows, 0);
}

static void
test_rate_change(void)
{
  cudalink_pace p;
  double start, end, last;

  cudalink_pace_reset(&p);
  last = feed(&p, T0, 20, 1 / 60.0, 0);
  REQUIRE(window(&p, &start, &end));
  /* the producer drops to 30 fps: no window on the first slow frame ... */
  last = feed(&p, last, 1, 1 / 30.0, 0);
  CHECK(!window(&p, &start, &end));
  /* ... and the new pace after a few more */
  last = feed(&p, last, 10, 1 / 30.0, 0);
  REQUIRE(window(&p, &start, &end));
  CHECK(fabs(p.period - 1 / 30.0) < 1e-6);
  CHECK(start < last + 1 / 30.0 && last + 1 / 30.0 < end);
}

static void
test_bad_timestamps(void)
{
  cudalink_pace p;
  double start, end, last;
  const double bad[] = { 0.0, -1.0, NAN, T0 + 10.0, T0 - 5.0 };

  /* not on our clock (zero, negative, NaN, in the future, seconds old):
   * forget the pace */
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cudalink_pace_reset(&p);
    last = feed(&p, T0 - 1, 20, 0.010, 0);
    REQUIRE(window(&p, &start, &end));
    cudalink_pace_frame(&p, bad[i], 1, last + 0.010);
    CHECK(!window(&p, &start, &end));
  }

  /* a timestamp that goes back, or a frame count we do not know: start
   * over from it */
  cudalink_pace_reset(&p);
  last = feed(&p, T0, 20, 0.010, 0);
  cudalink_pace_frame(&p, last - 0.005, 1, last + 0.001);
  CHECK(!window(&p, &start, &end));
  CHECK(p.last_ts == last - 0.005);
  cudalink_pace_reset(&p);
  last = feed(&p, T0, 20, 0.010, 0);
  cudalink_pace_frame(&p, last + 0.010, 0, last + 0.010);
  CHECK(!window(&p, &start, &end));
}

static void
test_fast_producer(void)
{
  cudalink_pace p;
  double start, end;

  /* 10 kHz: a window of 1 us on each side is not worth a spin */
  cudalink_pace_reset(&p);
  feed(&p, T0, 50, 100e-6, 0);
  CHECK(p.samples > 0);
  CHECK(!window(&p, &start, &end));
}


static void
test_spin_budget(void)
{
  cudalink_pace p;
  double start, end, ts;

  cudalink_pace_reset(&p);
  ts = feed(&p, T0, 50, 1 / 60.0, 20e-6);

  /* spinning within the budget (0.3 % of each period) keeps the window */
  for (int i = 0; i < 50; i++) {
    cudalink_pace_spun(&p, 0.003 / 60.0);
    ts = feed(&p, ts, 1, 1 / 60.0, 0);
  }
  REQUIRE(window(&p, &start, &end));
  CHECK(p.scale == 1.0);
  CHECK(fabs((end - start) - 2 * unscaled_lead(&p)) < 1e-9);

  /* 2 % of each period (a noisy producer: the spin waits long for frames
   * that come late) narrows it ... */
  for (int i = 0; i < 30; i++) {
    cudalink_pace_spun(&p, 0.02 / 60.0);
    ts = feed(&p, ts, 1, 1 / 60.0, 0);
  }
  REQUIRE(window(&p, &start, &end));
  CHECK(p.scale < 0.3 && p.scale > 0);
  CHECK(fabs((end - start) - 2 * unscaled_lead(&p) * p.scale) < 1e-9);
  /* ... and a new pace keeps what was learnt of the cost */
  ts = feed(&p, ts, 12, 1 / 30.0, 0);
  REQUIRE(window(&p, &start, &end));
  CHECK(p.scale < 0.3);

  /* no more spinning to speak of: back to the full window */
  for (int i = 0; i < 200; i++) {
    cudalink_pace_spun(&p, 0);
    ts = feed(&p, ts, 1, 1 / 30.0, 0);
  }
  CHECK(p.scale == 1.0);
}

/* A steady pace says how long no frame can come: until a quarter period
 * before the next is due; no steady pace, no such time. */
static void
test_quiet_until(void)
{
  cudalink_pace p;
  double ts;

  cudalink_pace_reset(&p);
  CHECK(cudalink_pace_quiet_until(&p) == 0);
  ts = feed(&p, T0, 20, 0.020, 0);
  CHECK(fabs(cudalink_pace_quiet_until(&p) - (ts + 0.015)) < 1e-9);
  /* a frame 8 ms late breaks the pace: poll again */
  cudalink_pace_frame(&p, ts + 0.028, 1, ts + 0.028);
  CHECK(cudalink_pace_quiet_until(&p) == 0);
}

/* The sleep before the window ends early by the timers' lateness, at most
 * by the window's reach, and by less as the budget narrows the window. */
static void
test_wake_at(void)
{
  cudalink_pace p;
  double start, end;

  cudalink_pace_reset(&p);
  feed(&p, T0, 50, 1 / 60.0, 0);
  REQUIRE(window(&p, &start, &end));
  CHECK(fabs(cudalink_pace_wake_at(&p, start, 30e-6) - (start - 30e-6)) < 1e-12);
  /* 1 ms late timers: never earlier than 1 % of the period */
  CHECK(fabs(cudalink_pace_wake_at(&p, start, 1e-3) - (start - p.period * CUDALINK_PACE_SHARE)) <
        1e-12);
  p.scale = 0.5;
  CHECK(fabs(cudalink_pace_wake_at(&p, start, 30e-6) - (start - 15e-6)) < 1e-12);
}

int
main(void)
{
  RUN_TEST(test_steady_producer);
  RUN_TEST(test_jitter_is_capped);
  RUN_TEST(test_one_stall);
  RUN_TEST(test_drifting_producer);
  RUN_TEST(test_missed_frames);
  RUN_TEST(test_irregular_producer);
  RUN_TEST(test_rate_change);
  RUN_TEST(test_bad_timestamps);
  RUN_TEST(test_fast_producer);
  RUN_TEST(test_spin_budget);
  RUN_TEST(test_wake_at);
  RUN_TEST(test_quiet_until);
  return TEST_SUMMARY();
}
