/* The consumer's waits (wait.h): wake-spin, precise timed sleeps and futex
 * sleeps for a frame; nap-then-spin or poll-then-sleep for the copy. */
#include "wait.h"

#include <string.h>

#include "shm.h"
#include "util.h"

#define SYNC_SPIN_S 30e-6    /* SLEEP_SYNC polls this long before it sleeps */
#define NAP_MIN_S 20e-6      /* shorter naps cost more than they save */
#define NAP_WAKE_S 10e-6     /* a nap's wake-up, on top of the timer slack */
#define PRECISE_WAKE_S 20e-6 /* a precise timer's wake-up, until measured */
#define MAX_WAKE_LATE_S 1e-3 /* later timers are not worth planning for */
#define IPC_NAP_S 50e-6      /* SLEEP_SYNC's sleeps between queries of an IPC event */

void
cudalink_waiter_init(cudalink_waiter *w, uint32_t flags)
{
  memset(w, 0, sizeof *w);
  /* not where timers have millisecond steps (Windows) */
  w->can_pace = !(flags & CUDALINK_CONSUMER_NO_PACE) && cudalink_nap_slack() < 1e-3;
  w->sleep_sync = (flags & CUDALINK_CONSUMER_SLEEP_SYNC) != 0;
  w->spin_sync = (flags & CUDALINK_CONSUMER_SPIN_SYNC) != 0;
  w->wake_late = PRECISE_WAKE_S;
  atomic_init(&w->interrupted, 0);
  atomic_init(&w->sleeping_on, NULL);
  cudalink_pace_reset(&w->pace);
}

void
cudalink_waiter_restart(cudalink_waiter *w)
{
  cudalink_pace_reset(&w->pace);
  w->spin_s = 0;
}

void
cudalink_waiter_frame(cudalink_waiter *w, double ts, uint32_t frames_since)
{
  cudalink_pace_spun(&w->pace, w->spin_s);
  w->spin_s = 0;
  cudalink_pace_frame(&w->pace, ts, frames_since, cudalink_now());
}

/* --- waiting for a frame --------------------------------------------- */

static uint32_t
load_word(const volatile uint32_t *word)
{
  return atomic_load_explicit((const volatile _Atomic uint32_t *)word, memory_order_acquire);
}

/* Spins until the segment changes (a frame, a new version, shutdown), an
 * interrupt or until; 1 when something changed. */
static int
spin(cudalink_waiter *w, const cudalink_wait_on *on, double until)
{
  double t0 = cudalink_now(), now = t0;
  int changed = 1;
  while (load_word(on->word) == on->idx && !on->changed(on->arg) && !atomic_load(&w->interrupted)) {
    if ((now = cudalink_now()) >= until) {
      changed = 0;
      break;
    }
    cudalink_spin_yield();
  }
  if (changed)
    now = cudalink_now();
  w->spin_s += now - t0;
  w->spin_total_s += now - t0;
  return changed;
}

/* futex-waits on word while it holds idx, where an interrupt() can find
 * it; an interrupt that came first keeps it from sleeping. OK when woken
 * (or word moved), ERR_TIMEOUT when the time ran out, another error (after
 * a plain sleep) when the word could not be slept on. */
static cudalink_status
sleep_on(cudalink_waiter *w, const volatile uint32_t *word, uint32_t idx, int64_t us)
{
  cudalink_status st = CUDALINK_OK;
  atomic_store(&w->sleeping_on, word);
  if (!atomic_load(&w->interrupted)) {
    w->sleeps++;
    st = cudalink_futex_wait(word, idx, us);
    if (st != CUDALINK_OK && st != CUDALINK_ERR_TIMEOUT) {
      /* the word cannot be slept on (never for a mapped, aligned write_idx):
       * sleep all the same, or the caller's loop would spin the CPU */
      cudalink_sleep((double)us * 1e-6);
    }
  }
  atomic_store(&w->sleeping_on, NULL);
  return st;
}

/* Sleeps on a precise timer until wake_at, just before the next frame's
 * window, and learns how late such a sleep ends when nothing woke it. */
static void
sleep_until_window(cudalink_waiter *w, const cudalink_wait_on *on, double now, double wake_at)
{
  long slack = cudalink_precise_begin();
  cudalink_status st = sleep_on(w, on->word, on->idx, (int64_t)((wake_at - now) * 1e6));
  double late;

  cudalink_precise_end(slack);
  if (st != CUDALINK_ERR_TIMEOUT)
    return;
  late = cudalink_now() - wake_at;
  if (late < 0)
    late = 0;
  if (late > MAX_WAKE_LATE_S)
    late = MAX_WAKE_LATE_S;
  w->wake_late = w->timed_sleeps++ ? w->wake_late + (late - w->wake_late) / 8 : late;
}

/* May the wait outlast the poll interval, trusting the producer to wake
 * us? Linux: its futex wake-up reaches every waiter. Windows: our
 * producer's wake-up is the protocol's doorbell, an auto-reset event
 * (shm_win32.c), which wakes ONE waiter per publish: with two consumers,
 * the other would sleep until recheck. So there every consumer waits on
 * the doorbell with its poll interval as the timeout. */
static int
woken_on_publish(const cudalink_wait_on *on)
{
#ifdef _WIN32
  (void)on;
  return 0;
#else
  return on->woken;
#endif
}

int
cudalink_waiter_wait(cudalink_waiter *w, const cudalink_wait_on *on, double now, double deadline)
{
  double start = 0, end = 0, wake_at = -1, until;
  int64_t slice = on->poll_us;

  if (w->can_pace && cudalink_pace_window(&w->pace, &start, &end) && now < end) {
    wake_at = cudalink_pace_wake_at(&w->pace, start, w->wake_late);
    if (now >= wake_at)
      return spin(w, on, deadline >= 0 && deadline < end ? deadline : end);
  }
  /* no need to look before until: a producer that wakes us does so on
   * every publish and at shutdown, so sleep until the caller must look
   * anyway; a foreign producer on a steady pace cannot publish before
   * quiet_until without breaking it, so no polls before then (at 60 fps 4
   * polls a frame instead of 16) */
  until = woken_on_publish(on) ? on->recheck
          : w->can_pace        ? cudalink_pace_quiet_until(&w->pace)
                               : 0;
  if ((until - now) * 1e6 > (double)slice)
    slice = (int64_t)((until - now) * 1e6) + 1;
  if (deadline >= 0 && (deadline - now) * 1e6 < (double)slice)
    slice = (int64_t)((deadline - now) * 1e6) + 1;
  if (wake_at >= 0 && (wake_at - now) * 1e6 < (double)slice)
    sleep_until_window(w, on, now, wake_at);
  else
    (void)sleep_on(w, on->word, on->idx, slice); /* woken or not, the caller looks */
  return 0;
}

void
cudalink_waiter_interrupt(cudalink_waiter *w, int on)
{
  const volatile uint32_t *word;

  atomic_store(&w->interrupted, on != 0);
  /* the waiter publishes the word before it looks at the flag and we look
   * at the word after setting the flag: one of us sees the other. The
   * word may be unmapped by now: the kernel answers a wake-up there with
   * EFAULT, nothing is read here. */
  if (on && (word = atomic_load(&w->sleeping_on)) != NULL)
    cudalink_futex_wake((volatile uint32_t *)(uintptr_t)word);
}

int
cudalink_waiter_interrupted(cudalink_waiter *w)
{
  return atomic_load(&w->interrupted);
}

/* --- waiting for the copy -------------------------------------------- */

/* Queries ev until it is no longer pending. */
static CUresult
spin_query(const cudalink_cuda *cu, CUevent ev)
{
  CUresult res;
  while ((res = cu->EventQuery(ev)) == CUDA_ERROR_NOT_READY) {
  }
  return res;
}

/* SLEEP_SYNC: poll briefly (a copy under MPS is done in ~20 us), then
 * sleep: in the driver on an event of ours (blocking sync), between
 * queries on another process's (an IPC event, which the driver can only
 * spin on) */
static CUresult
sync_sleeping(const cudalink_cuda *cu, CUevent ev, int ours)
{
  double until = cudalink_now() + SYNC_SPIN_S;
  CUresult res;
  while ((res = cu->EventQuery(ev)) == CUDA_ERROR_NOT_READY) {
    if (cudalink_now() < until)
      continue;
    if (ours)
      return cu->EventSynchronize(ev);
    cudalink_sleep(IPC_NAP_S);
  }
  return res;
}

/* The default: without MPS the GPU needs ~150 us to switch to our context
 * before it runs our copy (bench_switch), a wait that spinning turns into
 * CPU time. So sleep through the part of the wait that past frames say is
 * certain, then spin the rest. sync_estimate follows the waits that ended
 * spinning; a nap that overslept (the copy was done when it ended) shrinks
 * it, since it hides how long the wait really was; a long wait raises it
 * by a quarter at most. The nap runs on a precise timer (1 us of slack
 * instead of 50) and stops short of the estimate by that slack and a
 * wake-up. Without MPS this spins ~20 us of ~170 (~60 us with the default
 * slack); with MPS (waits of ~20 us) it rarely naps. */
static CUresult
sync_napping(cudalink_waiter *w, const cudalink_cuda *cu, CUevent done)
{
  double t0 = cudalink_now(), took;
  CUresult res = cu->EventQuery(done);

  if (res != CUDA_ERROR_NOT_READY)
    return res;
  if (w->sync_estimate - NAP_WAKE_S >= NAP_MIN_S) {
    long slack = cudalink_precise_begin();
    double nap = w->sync_estimate - cudalink_precise_slack(slack) - NAP_WAKE_S;
    if (nap >= NAP_MIN_S)
      cudalink_sleep(nap);
    cudalink_precise_end(slack);
    res = cu->EventQuery(done);
    if (res != CUDA_ERROR_NOT_READY) {
      if (res == CUDA_SUCCESS)
        w->sync_estimate *= 0.75;
      return res;
    }
  }
  res = spin_query(cu, done);
  /* one long wait (the GPU busy with other work) grows the estimate by a
   * little only, so that it cannot make the next frames oversleep */
  took = cudalink_now() - t0;
  if (took > 2 * w->sync_estimate + NAP_MIN_S)
    took = 2 * w->sync_estimate + NAP_MIN_S;
  w->sync_estimate += (took - w->sync_estimate) / 4;
  return res;
}

CUresult
cudalink_waiter_sync(cudalink_waiter *w, const cudalink_cuda *cu, CUevent done)
{
  return w->sleep_sync ? sync_sleeping(cu, done, 1) : sync_napping(w, cu, done);
}

CUresult
cudalink_waiter_sync_ipc(cudalink_waiter *w, const cudalink_cuda *cu, CUevent ev)
{
  if (w->spin_sync)
    return spin_query(cu, ev);
  return w->sleep_sync ? sync_sleeping(cu, ev, 0) : sync_napping(w, cu, ev);
}
