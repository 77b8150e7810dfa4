/* How the consumer waits: for the producer's next frame in wait(), and for
 * its own copy in release(). Internal to libcudalink; the consumer owns one
 * cudalink_waiter and hands it, per call, only what it needs to know of the
 * segment (cudalink_wait_on).
 *
 * A frame: when the producer's frames come at a steady pace (pace.h), the
 * waiter sleeps until just before the window in which the next one is due
 * and spins through the window, so that it sees the new write_idx within a
 * microsecond instead of when the kernel wakes it up. Otherwise it sleeps
 * on the write_idx word: a futex wait that our producer ends on every
 * publish, or a poll for a foreign producer, which wakes nobody.
 *
 * The copy: release() records an event after the caller's copy and the
 * waiter waits for it: a nap through the part of the wait that past copies
 * say is certain, then a spin (default), or a short poll and then a sleep
 * in the driver (CUDALINK_CONSUMER_SLEEP_SYNC). No CUDA is linked: the event
 * is queried through the loaded table, which a test may fill with fakes.
 *
 * Not thread safe, except cudalink_waiter_interrupt(), which any thread may
 * call while another waits. */
#ifndef CUDALINK_WAIT_H
#define CUDALINK_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "cuda_table.h"
#include "pace.h"

typedef struct cudalink_waiter {
  cudalink_pace pace;    /* when the producer's next frame is due */
  int can_pace;          /* no CUDALINK_CONSUMER_NO_PACE, and timers that can */
  int sleep_sync;        /* CUDALINK_CONSUMER_SLEEP_SYNC */
  int spin_sync;         /* CUDALINK_CONSUMER_SPIN_SYNC (sync_ipc() only: the
                            caller's copy waits in cuStreamSynchronize) */
  double wake_late;      /* how late a precise timed sleep ends, smoothed */
  unsigned timed_sleeps; /* timed sleeps measured for it */
  double spin_s;         /* spent spinning since the last frame */
  double spin_total_s;   /* and since init (the consumer's stats.spin_us) */
  uint64_t sleeps;       /* futex waits and polls (stats.sleeps) */
  double sync_estimate;  /* seconds sync() usually waits for the GPU */

  /* cudalink_waiter_interrupt(): set from any thread; the word a wait
   * sleeps on meanwhile, for the interrupter to wake */
  atomic_int interrupted;
  _Atomic(const volatile uint32_t *) sleeping_on;
} cudalink_waiter;

/* What one cudalink_waiter_wait() needs to know of the segment. */
typedef struct cudalink_wait_on {
  const volatile uint32_t *word; /* the write_idx word, to sleep on */
  uint32_t idx;                  /* what it held at the caller's last look */
  /* 1 when something else the caller looks at changed (a new version,
   * shutdown): a spin stops for it as it does for word */
  int (*changed)(void *arg);
  void *arg;
  int woken;       /* the producer wakes word on every publish and at shutdown */
  double recheck;  /* woken: when the caller must look again all the same */
  int64_t poll_us; /* the longest sleep, unless woken or the pace allow more */
} cudalink_wait_on;

/** flags: CUDALINK_CONSUMER_* (NO_PACE and SLEEP_SYNC matter here). */
void cudalink_waiter_init(cudalink_waiter *w, uint32_t flags);

/** A new ring, or none: forgets the producer's pace. Statistics, the timer
 * and GPU estimates and an interrupt stay. */
void cudalink_waiter_restart(cudalink_waiter *w);

/** The caller looked at now (cudalink_now()) and found nothing new: spins
 * when the producer's next frame is due, else sleeps until a wake-up
 * (woken), the next poll, recheck, deadline (negative: none) or the next
 * frame's window, whichever comes first. Returns 1 when it spun and saw
 * word or changed() move (or an interrupt): the frame, if that is one, was
 * caught spinning (the consumer's stats.paced). Spurious returns are fine:
 * the caller looks again. */
int cudalink_waiter_wait(cudalink_waiter *w, const cudalink_wait_on *on, double now,
                         double deadline);

/** The caller took a frame the producer timestamped ts, frames_since after
 * the last one it took (0: unknown): feeds the pace, and the spin it cost. */
void cudalink_waiter_frame(cudalink_waiter *w, double ts, uint32_t frames_since);

/** From any thread: on = 1 makes wait() return at once, and wakes one in
 * progress that sleeps on its word; interrupted() says 1 until on = 0. */
void cudalink_waiter_interrupt(cudalink_waiter *w, int on);
int cudalink_waiter_interrupted(cudalink_waiter *w);

/** Waits until done, recorded after the caller's copy, has completed, and
 * returns what the last cuEventQuery (or cuEventSynchronize) said. */
CUresult cudalink_waiter_sync(cudalink_waiter *w, const cudalink_cuda *cu, CUevent done);

/** The same for an event another process recorded (an IPC event, which
 * has no blocking sync: cuEventSynchronize would spin on it): with
 * SLEEP_SYNC it polls for 30 us, then queries it between short sleeps;
 * SPIN_SYNC queries it the whole time; by default it naps as
 * cudalink_waiter_sync(). */
CUresult cudalink_waiter_sync_ipc(cudalink_waiter *w, const cudalink_cuda *cu, CUevent ev);

#endif
