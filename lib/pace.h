/* The producer's pace, learned from the timestamps it writes with each
 * frame: when is its next frame due? Internal to libcudalink, pure (no
 * clock, no CUDA).
 *
 * A wake-up from the kernel (futex wake, timer) reaches a sleeping thread
 * 10-50 us after the event on an idle machine; a thread that is already
 * spinning sees the new write_idx within a microsecond. The consumer sleeps
 * until just before the window in which a steady producer's next frame is
 * due and spins through the window only; an irregular producer gets no
 * window and the consumer just sleeps. */
#ifndef CUDALINK_PACE_H
#define CUDALINK_PACE_H

#include <stdint.h>

typedef struct cudalink_pace {
  double last_ts;      /* producer timestamp of the last frame; 0: none */
  double phase;        /* when the producer's schedule had a frame, smoothed:
                          the next is due at phase + period */
  double period;       /* average time between two frames; 0: unknown */
  double jitter;       /* average |timestamp - schedule| */
  double drift_jitter; /* average |timestamp - (last timestamp + period)| */
  uint32_t pending;    /* frames since the one phase is for (outliers) */
  unsigned samples;    /* frames that agreed with the schedule */
  unsigned outliers;   /* frames in a row that did not */
  double scale;        /* share of the window the spin budget allows, 0..1 */
  double spent;        /* average share of a period spent spinning */
} cudalink_pace;

/* How much of a frame period the window may take on each side of the due
 * time: at 60 fps 167 us. */
#define CUDALINK_PACE_SHARE 0.01
/* What the spin may cost on average: this share of the time (0.5 % of a
 * core), whatever the producer's and the machine's jitter. At 60 fps that
 * is ~80 us a frame, of which ~45 are used on a quiet machine; a tighter
 * cap (20 us a frame) was tried and let the wake-up p50 rise to 18-22 us
 * without a CPU saving that the benchmark could tell apart. */
#define CUDALINK_PACE_BUDGET 0.005

void cudalink_pace_reset(cudalink_pace *pace);

/** A frame the producer timestamped ts (its monotonic clock, which is ours
 * by the protocol), frames_since = how many frames it published since the
 * last one we were given (1: the next one; 0: unknown, starts over), now =
 * our clock. A timestamp that cannot be on our clock (not positive, in the
 * future, over a second old) forgets the pace. */
void cudalink_pace_frame(cudalink_pace *pace, double ts, uint32_t frames_since, double now);

/** 1 when the next frame is due within [*start, *end] (our clock) as far as
 * the last intervals tell, 0 when there is no steady pace to go by. The
 * window is narrowed by scale. */
int cudalink_pace_window(const cudalink_pace *pace, double *start, double *end);

/** With a steady pace, the earliest the next frame can come without
 * breaking it (a quarter period before it is due): a consumer that must
 * poll need not before then. 0 when there is no steady pace. */
double cudalink_pace_quiet_until(const cudalink_pace *pace);

/** When to stop sleeping for the window that starts at start: earlier by
 * wake_late (how late the caller's timed sleeps end), but never by more
 * than the window may cost, and by less when the budget narrows it. */
double cudalink_pace_wake_at(const cudalink_pace *pace, double start, double wake_late);

/** How long the consumer spun for the frame it was just given (before
 * cudalink_pace_frame()). When that costs more than CUDALINK_PACE_BUDGET
 * of the time on average, scale narrows the window (a noisy producer or
 * machine: fewer frames are caught spinning); it widens again when there
 * is room. */
void cudalink_pace_spun(cudalink_pace *pace, double seconds);

#endif
