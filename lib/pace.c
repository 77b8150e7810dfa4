/* The producer's pace (pace.h). */
#include "pace.h"

#include <string.h>

#define WARMUP 4               /* intervals in a row that must agree before there is a window */
#define RELEARN_AFTER 3        /* outliers in a row that mean a new pace */
#define LEAD_MIN_S 5e-6        /* the window's half-width when the pace has no jitter */
#define LEAD_JITTERS 1.5       /* and this many average deviations on top */
#define MIN_WINDOW_S 2e-6      /* narrower windows are not worth spinning for */
#define MAX_AGE_S 1.0          /* an older timestamp is not on our clock */
#define FUTURE_S 1e-3          /* nor one from further ahead */
#define MIN_SCALE 0.05         /* the narrowest the budget makes the window */
#define OUTLIER_SHARE 0.25     /* more than this share of a period off schedule breaks the pace */
#define PHASE_GAIN 0.25        /* how far one frame's miss moves the phase ... */
#define PERIOD_GAIN (1.0 / 32) /* ... and the period (a critically damped pair) */

static double
abs_s(double x)
{
  return x < 0 ? -x : x;
}

void
cudalink_pace_reset(cudalink_pace *pace)
{
  memset(pace, 0, sizeof *pace);
  pace->scale = 1;
}

/* a new pace from ts; what the spin costs stays what it was */
static void
start_over(cudalink_pace *pace, double ts)
{
  double scale = pace->scale, spent = pace->spent;
  cudalink_pace_reset(pace);
  pace->last_ts = pace->phase = ts;
  pace->scale = scale;
  pace->spent = spent;
}

void
cudalink_pace_frame(cudalink_pace *pace, double ts, uint32_t frames_since, double now)
{
  double interval, miss, drift;
  uint32_t n;

  if (!(ts > 0) || ts > now + FUTURE_S || now - ts > MAX_AGE_S) {
    start_over(pace, 0);
    return;
  }
  if (!(pace->last_ts > 0) || frames_since == 0 || ts <= pace->last_ts) {
    start_over(pace, ts);
    return;
  }
  interval = (ts - pace->last_ts) / frames_since;
  /* how far off the other guess was: the last frame plus the period(s) */
  drift = ts - (pace->last_ts + frames_since * pace->period);
  pace->last_ts = ts;
  if (pace->period <= 0) {
    pace->period = interval;
    pace->phase = ts;
    return;
  }
  /* frames since the one the phase is for (outliers in between) */
  n = pace->pending + frames_since;
  miss = ts - (pace->phase + n * pace->period);
  if (abs_s(miss) > pace->period * OUTLIER_SHARE) {
    /* a stall, a burst or a new rate: no window until WARMUP frames agree
     * again; three in a row start the learning over from this one */
    pace->samples = 0;
    pace->pending = n;
    if (++pace->outliers >= RELEARN_AFTER) {
      start_over(pace, ts);
      pace->period = interval;
    }
    return;
  }
  /* the schedule: a frame that came late moves the phase by a quarter of
   * it only (PHASE_GAIN), so for a producer that keeps a clock the
   * prediction is off by about one frame's lateness instead of two (this
   * one's and the last one's); a steady drift moves the period. A producer
   * that sleeps a period after each frame has no schedule (each frame's
   * lateness shifts all later ones): the last frame predicts it better.
   * Both guesses are scored; the window follows the better one. */
  pace->outliers = 0;
  pace->pending = 0;
  pace->phase += n * pace->period + miss * PHASE_GAIN;
  pace->period += miss / n * PERIOD_GAIN;
  pace->jitter += (abs_s(miss) - pace->jitter) / 8;
  pace->drift_jitter += (abs_s(drift) - pace->drift_jitter) / 8;
  if (pace->samples < WARMUP)
    pace->samples++;
}

/* whether the last frame predicts the next better than the schedule */
static int
follows_last(const cudalink_pace *pace)
{
  return pace->drift_jitter < pace->jitter;
}

/* when the next frame is due, by the better guess */
static double
due_time(const cudalink_pace *pace)
{
  return (follows_last(pace) ? pace->last_ts : pace->phase) + pace->period;
}

/* a steady pace: enough frames agreed and the last one did too */
static int
steady(const cudalink_pace *pace)
{
  return pace->samples >= WARMUP && !pace->outliers && pace->period > 0;
}

/* the most the window may reach out on each side of the due time */
static double
share_cap(const cudalink_pace *pace)
{
  return pace->period * CUDALINK_PACE_SHARE;
}

int
cudalink_pace_window(const cudalink_pace *pace, double *start, double *end)
{
  double due, lead, cap = share_cap(pace);

  if (!steady(pace) || cap < MIN_WINDOW_S)
    return 0;
  lead = LEAD_MIN_S + LEAD_JITTERS * (follows_last(pace) ? pace->drift_jitter : pace->jitter);
  if (lead > cap)
    lead = cap;
  lead *= pace->scale;
  due = due_time(pace);
  *start = due - lead;
  *end = due + lead;
  return 1;
}

double
cudalink_pace_quiet_until(const cudalink_pace *pace)
{
  return steady(pace) ? due_time(pace) - pace->period * OUTLIER_SHARE : 0;
}

double
cudalink_pace_wake_at(const cudalink_pace *pace, double start, double wake_late)
{
  double early = wake_late, cap = share_cap(pace);
  if (early > cap)
    early = cap;
  return start - early * pace->scale;
}

void
cudalink_pace_spun(cudalink_pace *pace, double seconds)
{
  if (!(pace->period > 0) || seconds < 0)
    return;
  pace->spent += (seconds / pace->period - pace->spent) / 8;
  if (pace->spent > CUDALINK_PACE_BUDGET) {
    pace->scale *= 0.9;
    if (pace->scale < MIN_SCALE)
      pace->scale = MIN_SCALE;
  } else if (pace->spent < CUDALINK_PACE_BUDGET * 0.7) {
    pace->scale *= 1.03;
    if (pace->scale > 1)
      pace->scale = 1;
  }
}
