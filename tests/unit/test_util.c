/* lib/util.c: the sleep helper and the timer-slack pair.
 *
 * cudalink_sleep() is fed through a fake nanosleep() defined here: the
 * library is linked statically into this program, so its nanosleep calls
 * land here, where a test decides what the "kernel" answers (EINVAL,
 * EINTR with time left) and records what it was asked. Mode FAKE_REAL
 * passes through to the real system call. */
#include "testutil.h"
#include "util.h"

#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { FAKE_REAL, FAKE_EINVAL, FAKE_EINTR_TWICE };

static int fake_mode;
static int fake_calls;
static struct timespec fake_req[8];

int
nanosleep(const struct timespec *req, struct timespec *rem)
{
  if (fake_calls < 8)
    fake_req[fake_calls] = *req;
  fake_calls++;
  switch (fake_mode) {
  case FAKE_EINVAL:
    if (fake_calls > 1000)
      return 0; /* the old loop would get here, after 1000 refusals */
    errno = EINVAL;
    return -1;
  case FAKE_EINTR_TWICE:
    if (fake_calls <= 2) {
      /* interrupted with 40 % of the request left */
      long long ns = ((long long)req->tv_sec * 1000000000LL + req->tv_nsec) * 4 / 10;
      if (rem) {
        rem->tv_sec = (time_t)(ns / 1000000000LL);
        rem->tv_nsec = (long)(ns % 1000000000LL);
      }
      errno = EINTR;
      return -1;
    }
    return 0;
  default:
    return (int)syscall(SYS_nanosleep, req, rem);
  }
}

static void
fake(int mode)
{
  fake_mode = mode;
  fake_calls = 0;
  memset(fake_req, 0, sizeof fake_req);
}

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
test_sleep_stops_on_refusal(void)
{
  /* nanosleep failing with anything but EINTR fails the same way again:
   * the old loop retried for ever (here: until the fake gave in after 1000
   * calls). Now one call, and the sleep returns. */
  fake(FAKE_EINVAL);
  cudalink_sleep(0.25);
  CHECK_EQ_INT(fake_calls, 1);
  fake(FAKE_REAL);
}

static void
test_sleep_goes_on_after_eintr(void)
{
  /* interrupted twice: each retry asks for what the kernel said was left */
  fake(FAKE_EINTR_TWICE);
  cudalink_sleep(0.5);
  CHECK_EQ_INT(fake_calls, 3);
  CHECK_EQ_INT(fake_req[0].tv_sec, 0);
  CHECK(labs(fake_req[0].tv_nsec - 500000000L) < 1000);
  CHECK(labs(fake_req[1].tv_nsec - 200000000L) < 1000);
  CHECK(labs(fake_req[2].tv_nsec - 80000000L) < 1000);
  fake(FAKE_REAL);
}

static void
test_sleep_nanoseconds_in_range(void)
{
  /* Rounding upwards, (s - tv_sec) * 1e9 of the largest double below 1.0
   * is exactly 1e9 ns, which nanosleep refuses with EINVAL (and the old
   * loop retried for ever). The request must stay below 1e9 ns. */
  volatile double s = nextafter(1.0, 0.0);
  int saved = fegetround();
  REQUIRE(fesetround(FE_UPWARD) == 0);
  volatile double frac_ns = (s - 0.0) * 1e9;
  fake(FAKE_EINVAL); /* records the request, sleeps nothing */
  cudalink_sleep(s);
  CHECK(fesetround(saved) == 0);
  /* the case is really fed, except where the rounding mode is not
   * honoured (valgrind emulates SSE arithmetic rounding to nearest) */
  if ((long)frac_ns != 1000000000L)
    printf("  note: FE_UPWARD not honoured here, 1e9 ns not produced\n");
  CHECK_EQ_INT(fake_calls, 1);
  CHECK_EQ_INT(fake_req[0].tv_sec, 0);
  CHECK_EQ_INT(fake_req[0].tv_nsec, 999999999L);
  fake(FAKE_REAL);
}

static void
test_sleep_odd_arguments(void)
{
  /* NaN, zero and negative return without asking the kernel (NaN used to
   * reach an undefined double-to-integer conversion) */
  fake(FAKE_EINVAL);
  cudalink_sleep(NAN);
  cudalink_sleep(0.0);
  cudalink_sleep(-1.0);
  CHECK_EQ_INT(fake_calls, 0);
  /* 1e30 s does not fit a time_t: x86-64 made it a negative tv_sec, EINVAL,
   * and the old loop spun for ever. Now it asks for a day. */
  cudalink_sleep(1e30);
  CHECK_EQ_INT(fake_calls, 1);
  CHECK_EQ_INT(fake_req[0].tv_sec, 86400);
  CHECK_EQ_INT(fake_req[0].tv_nsec, 0);
  cudalink_sleep(INFINITY);
  CHECK_EQ_INT(fake_calls, 2);
  CHECK_EQ_INT(fake_req[1].tv_sec, 86400);
  fake(FAKE_REAL);
}

static void
test_sleep_really_sleeps(void)
{
  double t0 = now_s();
  cudalink_sleep(0.02);
  double dt = now_s() - t0;
  CHECK(dt >= 0.0195);
  CHECK(dt < 2.0);
}

static void
test_precise_pair(void)
{
  long previous = cudalink_precise_begin();
  CHECK(previous == -1 || previous > 0);
  double slack = cudalink_precise_slack(previous);
  CHECK(slack > 0 && slack <= 50e-6 + 1e-12);
  CHECK(cudalink_precise_slack(-1) == 50e-6);
  cudalink_precise_end(previous);
  cudalink_precise_end(-1); /* "refused": restores nothing */
  CHECK(cudalink_nap_slack() > 0);
}

int
main(void)
{
  RUN_TEST(test_sleep_stops_on_refusal);
  RUN_TEST(test_sleep_goes_on_after_eintr);
  RUN_TEST(test_sleep_nanoseconds_in_range);
  RUN_TEST(test_sleep_odd_arguments);
  RUN_TEST(test_sleep_really_sleeps);
  RUN_TEST(test_precise_pair);
  return TEST_SUMMARY();
}
