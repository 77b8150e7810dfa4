/* The consumer's waits (lib/wait.c) on their own: sleeps, wake-ups,
 * interrupts and the wake-spin on a futex word in this process, and the
 * copy's completion through a fake driver table (a CPU clock decides when
 * the "copy" is done). No CUDA, no segment. */
#include "testutil.h"
#include "wait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "shm.h"
#include "util.h"

/* --- a futex word and someone to move it --------------------------- */

static _Atomic uint32_t word;
static _Atomic double word_ts; /* the "producer's" timestamp of the last publish */

static int
never_changed(void *arg)
{
  (void)arg;
  return 0;
}

static cudalink_wait_on
wait_on(uint32_t idx, int woken, double recheck, int64_t poll_us)
{
  cudalink_wait_on on;
  memset(&on, 0, sizeof on);
  on.word = (const volatile uint32_t *)(const void *)&word;
  on.idx = idx;
  on.changed = never_changed;
  on.woken = woken;
  on.recheck = recheck;
  on.poll_us = poll_us;
  return on;
}

static void
sleep_until(double t)
{
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
  }
}

static void
publish(void)
{
  atomic_store(&word_ts, cudalink_now());
  atomic_fetch_add(&word, 1);
  cudalink_futex_wake((volatile uint32_t *)(void *)&word);
}

/* Publishes once after 20 ms. */
static void *
publish_later(void *arg)
{
  (void)arg;
  cudalink_sleep(0.02);
  publish();
  return NULL;
}

/* Interrupts the waiter once it sleeps (or after 2 s). */
static void *
interrupt_later(void *arg)
{
  cudalink_waiter *w = arg;
  for (int i = 0; i < 2000 && !atomic_load(&w->sleeping_on); i++)
    cudalink_sleep(1e-3);
  cudalink_sleep(1e-3);
  cudalink_waiter_interrupt(w, 1);
  return NULL;
}

typedef struct {
  int frames;
  double period;
} steady_args;

/* A steady producer: frames on a fixed schedule, not one after the other. */
static void *
publish_steadily(void *arg)
{
  const steady_args *a = arg;
  double t0 = cudalink_now();
  for (int i = 1; i <= a->frames; i++) {
    sleep_until(t0 + i * a->period);
    publish();
  }
  return NULL;
}

/* --- waiting for a frame ------------------------------------------- */

static void
test_init_flags(void)
{
  cudalink_waiter w;

  cudalink_waiter_init(&w, 0);
  CHECK_EQ_INT(w.can_pace, cudalink_nap_slack() < 1e-3);
  CHECK(!w.sleep_sync);
  CHECK(!w.spin_sync);
  CHECK(!cudalink_waiter_interrupted(&w));
  CHECK(w.sleeps == 0 && w.spin_total_s == 0 && w.sync_estimate == 0);
  cudalink_waiter_init(&w, CUDALINK_CONSUMER_NO_PACE | CUDALINK_CONSUMER_SLEEP_SYNC);
  CHECK(!w.can_pace);
  CHECK(w.sleep_sync);
  CHECK(!w.spin_sync);
  cudalink_waiter_init(&w, CUDALINK_CONSUMER_SPIN_SYNC);
  CHECK(w.spin_sync && !w.sleep_sync);
}

/* A producer that wakes nobody is polled every poll_us, and no wait
 * outlasts the deadline. */
static void
test_poll_and_deadline(void)
{
  cudalink_waiter w;
  cudalink_wait_on on = wait_on(atomic_load(&word), 0, 0, 3000);
  double t0, took;

  cudalink_waiter_init(&w, CUDALINK_CONSUMER_NO_PACE);
  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, -1), 0);
  took = cudalink_now() - t0;
  CHECK(took >= 2.5e-3 && took < 0.5);
  CHECK_EQ_INT(w.sleeps, 1);

  on.poll_us = 2000000;
  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, t0 + 5e-3), 0);
  took = cudalink_now() - t0;
  CHECK(took >= 4e-3 && took < 0.5);
  CHECK_EQ_INT(w.sleeps, 2);
}

/* A producer that wakes us is not polled: the waiter sleeps until recheck
 * unless the word moves, and then it returns at once. */
static void
test_woken(void)
{
  cudalink_waiter w;
  cudalink_wait_on on;
  pthread_t th;
  double t0, took;

  cudalink_waiter_init(&w, CUDALINK_CONSUMER_NO_PACE);
  t0 = cudalink_now();
  on = wait_on(atomic_load(&word), 1, t0 + 0.03, 1000);
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, -1), 0);
  took = cudalink_now() - t0;
  CHECK(took >= 0.025 && took < 0.5);
  CHECK_EQ_INT(w.sleeps, 1);

  t0 = cudalink_now();
  on = wait_on(atomic_load(&word), 1, t0 + 5, 1000);
  REQUIRE(pthread_create(&th, NULL, publish_later, NULL) == 0);
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, -1), 0);
  took = cudalink_now() - t0;
  pthread_join(th, NULL);
  CHECK(atomic_load(&word) != on.idx);
  CHECK(took < 1.0);
}

/* interrupt() wakes a sleeping wait; one already in force keeps the next
 * wait from sleeping at all; on = 0 lifts it. */
static void
test_interrupt(void)
{
  cudalink_waiter w;
  cudalink_wait_on on;
  pthread_t th;
  double t0, took;

  cudalink_waiter_init(&w, 0);
  t0 = cudalink_now();
  on = wait_on(atomic_load(&word), 1, t0 + 5, 1000);
  REQUIRE(pthread_create(&th, NULL, interrupt_later, &w) == 0);
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, -1), 0);
  took = cudalink_now() - t0;
  pthread_join(th, NULL);
  CHECK(took < 1.0);
  CHECK(cudalink_waiter_interrupted(&w));
  CHECK_EQ_INT(w.sleeps, 1);

  t0 = cudalink_now();
  CHECK_EQ_INT(cudalink_waiter_wait(&w, &on, t0, -1), 0);
  CHECK(cudalink_now() - t0 < 0.5);
  CHECK_EQ_INT(w.sleeps, 1);

  cudalink_waiter_interrupt(&w, 0);
  CHECK(!cudalink_waiter_interrupted(&w));
}

/* Takes frames from a steady producer (every 10 ms, waking us) as the
 * consumer does; returns how many were caught spinning. */
static int
paced_frames(uint32_t flags, cudalink_waiter *w)
{
  steady_args a = {60, 0.01};
  uint32_t last = atomic_load(&word), end = last + (uint32_t)a.frames;
  double give_up = cudalink_now() + 10;
  int spun = 0, paced = 0;
  pthread_t th;

  cudalink_waiter_init(w, flags);
  if (pthread_create(&th, NULL, publish_steadily, &a) != 0)
    return -1;
  while (last != end && cudalink_now() < give_up) {
    uint32_t idx = atomic_load(&word);
    double now;
    cudalink_wait_on on;

    if (idx != last) {
      paced += spun;
      cudalink_waiter_frame(w, atomic_load(&word_ts), idx - last);
      last = idx;
      spun = 0;
      continue;
    }
    now = cudalink_now();
    on = wait_on(idx, 1, now + 0.05, 1000);
    spun = cudalink_waiter_wait(w, &on, now, now + 1);
  }
  pthread_join(th, NULL);
  fprintf(stderr, "  flags 0x%x: %d of %d frames found spinning, %.0f us spun\n",
          (unsigned)flags, paced, a.frames, w->spin_total_s * 1e6);
  return last == end ? paced : -1;
}

/* With a steady producer some frames are caught spinning around their due
 * time; with NO_PACE none, and no time is spent spinning. */
static void
test_spins_for_steady_frames(void)
{
  cudalink_waiter w;

  if (cudalink_nap_slack() < 1e-3) {
    CHECK(paced_frames(0, &w) > 0);
    CHECK(w.spin_total_s > 0);
    CHECK(w.spin_s == 0); /* handed to the pace with the last frame */
  }
  CHECK_EQ_INT(paced_frames(CUDALINK_CONSUMER_NO_PACE, &w), 0);
  CHECK(w.spin_total_s == 0);
}

/* --- waiting for the copy ------------------------------------------ */

static double copy_done_at; /* when the fake copy completes, cudalink_now() */
static CUresult query_fails; /* what the fake query says instead, if not 0 */
static int queries, synchronizes;

static CUresult CUDAAPI
fake_event_query(CUevent e)
{
  (void)e;
  queries++;
  if (query_fails != CUDA_SUCCESS)
    return query_fails;
  return cudalink_now() >= copy_done_at ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

static CUresult CUDAAPI
fake_event_synchronize(CUevent e)
{
  (void)e;
  synchronizes++;
  sleep_until(copy_done_at);
  return CUDA_SUCCESS;
}

static cudalink_cuda
fake_cuda(void)
{
  cudalink_cuda cu;
  memset(&cu, 0, sizeof cu);
  cu.EventQuery = fake_event_query;
  cu.EventSynchronize = fake_event_synchronize;
  return cu;
}

/* a copy that completes seconds from now */
static void
copy_takes(double seconds)
{
  copy_done_at = cudalink_now() + seconds;
  query_fails = CUDA_SUCCESS;
  queries = synchronizes = 0;
}

/* The default: a finished copy costs one query; waits teach the estimate,
 * which never grows past what the waits took by much; the driver's
 * blocking sync is never used. */
static void
test_sync_napping(void)
{
  cudalink_cuda cu = fake_cuda();
  cudalink_waiter w;

  cudalink_waiter_init(&w, 0);
  copy_takes(0);
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(queries, 1);
  CHECK(w.sync_estimate == 0);

  for (int i = 0; i < 40; i++) {
    copy_takes(300e-6);
    CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_SUCCESS);
    CHECK(cudalink_now() >= copy_done_at);
  }
  fprintf(stderr, "  300 us copies: estimate %.0f us\n", w.sync_estimate * 1e6);
  CHECK(w.sync_estimate > 20e-6 && w.sync_estimate < 10e-3);
  CHECK_EQ_INT(synchronizes, 0);

  /* a nap that oversleeps (done when it ends) shrinks the estimate */
  w.sync_estimate = 5e-3;
  copy_takes(1e-3);
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(queries, 2);
  CHECK(w.sync_estimate == 5e-3 * 0.75);

  /* the driver's errors come back as they are */
  copy_takes(1e-3);
  query_fails = CUDA_ERROR_INVALID_HANDLE;
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_ERROR_INVALID_HANDLE);
}

/* SLEEP_SYNC: a copy done within the short poll never reaches the driver's
 * sleep; a longer one sleeps there once. */
static void
test_sync_sleeping(void)
{
  cudalink_cuda cu = fake_cuda();
  cudalink_waiter w;

  cudalink_waiter_init(&w, CUDALINK_CONSUMER_SLEEP_SYNC);
  copy_takes(0);
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(synchronizes, 0);

  copy_takes(5e-3);
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_SUCCESS);
  CHECK_EQ_INT(synchronizes, 1);
  CHECK(cudalink_now() >= copy_done_at);
  CHECK(w.sync_estimate == 0);

  copy_takes(1e-3);
  query_fails = CUDA_ERROR_INVALID_HANDLE;
  CHECK_EQ_INT(cudalink_waiter_sync(&w, &cu, NULL), CUDA_ERROR_INVALID_HANDLE);
  CHECK_EQ_INT(synchronizes, 0);
}

int
main(void)
{
  RUN_TEST(test_init_flags);
  RUN_TEST(test_poll_and_deadline);
  RUN_TEST(test_woken);
  RUN_TEST(test_interrupt);
  RUN_TEST(test_spins_for_steady_frames);
  RUN_TEST(test_sync_napping);
  RUN_TEST(test_sync_sleeping);
  return TEST_SUMMARY();
}
