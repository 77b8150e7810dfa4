#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#ifdef _WIN32
#  include <windows.h>
#else
#  include <sched.h>
#  include <time.h>
#endif
#ifdef __linux__
#  include <sys/prctl.h>
#endif

void
cudalink_textf(char *buf, size_t len, const char *fmt, ...)
{
  va_list ap;
  if (!buf || !len)
    return;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  if (n < 0) /* an encoding error: the buffer's contents are undefined */
    snprintf(buf, len, "%s", fmt);
}

void
cudalink_logf(cudalink_log_fn log, void *user_data, cudalink_log_level level, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  if (!log)
    return;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) /* an encoding error: the buffer's contents are undefined */
    snprintf(msg, sizeof msg, "%s", fmt);
  log(user_data, level, msg);
}

/* Longest sleep asked of the system in one go: a day. Keeps the double to
 * integer conversions below in range (a huge or infinite value would be
 * undefined behaviour); nobody sleeps that long here anyway. */
#define SLEEP_MAX_S 86400.0

void
cudalink_sleep(double seconds)
{
  if (!(seconds > 0)) /* also NaN */
    return;
  if (seconds > SLEEP_MAX_S)
    seconds = SLEEP_MAX_S;
#ifdef _WIN32
  DWORD ms = (DWORD)(seconds * 1000 + 0.5);
  Sleep(ms ? ms : 1);
#else
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  /* rounding can give 1e9, which nanosleep refuses with EINVAL */
  if (ts.tv_nsec > 999999999L)
    ts.tv_nsec = 999999999L;
  if (ts.tv_nsec < 0)
    ts.tv_nsec = 0;
  /* EINTR: go on with what is left. Anything else (EINVAL, EFAULT) would
   * fail again at once: stop instead of spinning for ever. */
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
#endif
}

double
cudalink_nap_slack(void)
{
#if defined(__linux__)
  int slack_ns = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  return slack_ns >= 0 ? slack_ns * 1e-9 : 50e-6;
#elif defined(_WIN32)
  return 1.0; /* never nap: Sleep() has millisecond steps */
#else
  return 50e-6;
#endif
}

#define PRECISE_SLACK_NS 1000

long
cudalink_precise_begin(void)
{
#if defined(__linux__)
  long previous = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  /* Refused (seccomp, say): report "unknown" (-1), which makes
   * precise_slack() assume the default slack, as nap_slack() does, and
   * precise_end() restore nothing. */
  if (previous > PRECISE_SLACK_NS && prctl(PR_SET_TIMERSLACK, PRECISE_SLACK_NS, 0, 0, 0) != 0)
    return -1;
  return previous;
#else
  return 0;
#endif
}

double
cudalink_precise_slack(long previous)
{
#if defined(__linux__)
  if (previous < 0)
    return 50e-6;
  return (previous > PRECISE_SLACK_NS ? PRECISE_SLACK_NS : previous) * 1e-9;
#else
  (void)previous;
  return cudalink_nap_slack();
#endif
}

void
cudalink_precise_end(long previous)
{
#if defined(__linux__)
  /* If the kernel refuses, the thread keeps the 1 us slack: its timers
   * stay precise, only a little dearer. Nothing else to do about it. */
  if (previous > PRECISE_SLACK_NS && prctl(PR_SET_TIMERSLACK, previous, 0, 0, 0) != 0)
    return;
#else
  (void)previous;
#endif
}

void
cudalink_spin_yield(void)
{
  /* Both only say whether another thread ran (SwitchToThread) or cannot
   * fail (sched_yield on Linux): a spin loop goes on either way. */
#ifdef _WIN32
  (void)SwitchToThread();
#else
  (void)sched_yield();
#endif
}
