/* A tiny test harness for the library's GPU-free unit tests: no GLib.
 * Each test is a function; CHECK records a failure and carries on,
 * REQUIRE returns from the test. main() ends with "N passed, N failed". */
#ifndef CUDALINK_TESTUTIL_H
#define CUDALINK_TESTUTIL_H

#include <stdio.h>
#include <string.h>
#include <time.h>

static int tu_failures_in_test __attribute__((unused));
static int tu_passed __attribute__((unused)), tu_failed __attribute__((unused));

/* CPU time of the calling thread, s */
static inline double
thread_cpu_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
      tu_failures_in_test++;                                                      \
    }                                                                             \
  } while (0)

#define REQUIRE(cond)                                                             \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "  %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      tu_failures_in_test++;                                                      \
      return;                                                                     \
    }                                                                             \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                        \
  do {                                                                            \
    long long tu_a_ = (long long)(a), tu_b_ = (long long)(b);                     \
    if (tu_a_ != tu_b_) {                                                         \
      fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
              __LINE__, #a, #b, tu_a_, tu_b_);                                    \
      tu_failures_in_test++;                                                      \
    }                                                                             \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                           \
  do {                                                                            \
    const char *tu_h_ = (hay);                                                    \
    if (!tu_h_ || !strstr(tu_h_, (needle))) {                                     \
      fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,      \
              __LINE__, tu_h_ ? tu_h_ : "(null)", (needle));                      \
      tu_failures_in_test++;                                                      \
    }                                                                             \
  } while (0)

#define RUN_TEST(fn)                                                              \
  do {                                                                            \
    tu_failures_in_test = 0;                                                      \
    fn();                                                                         \
    if (tu_failures_in_test) {                                                    \
      tu_failed++;                                                                \
      printf("FAIL %s\n", #fn);                                                   \
    } else {                                                                      \
      tu_passed++;                                                                \
      printf("ok   %s\n", #fn);                                                   \
    }                                                                             \
    fflush(stdout);                                                               \
  } while (0)

#define TEST_SUMMARY()                                                            \
  (printf("%d passed, %d failed\n", tu_passed, tu_failed), tu_failed ? 1 : 0)

#endif
