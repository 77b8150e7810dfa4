#include "util.h"

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
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

void
cudalink_logf(cudalink_log_fn log, void *user_data, cudalink_log_level level, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  if (!log)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log(user_data, level, msg);
}

void
cudalink_sleep(double seconds)
{
#ifdef _WIN32
  DWORD ms = (DWORD)(seconds * 1000 + 0.5);
  Sleep(ms ? ms : 1);
#else
  struct timespec ts;
  if (seconds <= 0)
    return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0) {
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
  if (previous > PRECISE_SLACK_NS)
    prctl(PR_SET_TIMERSLACK, PRECISE_SLACK_NS, 0, 0, 0);
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
  if (previous > PRECISE_SLACK_NS)
    prctl(PR_SET_TIMERSLACK, previous, 0, 0, 0);
#else
  (void)previous;
#endif
}

void
cudalink_spin_yield(void)
{
#ifdef _WIN32
  SwitchToThread();
#else
  sched_yield();
#endif
}
