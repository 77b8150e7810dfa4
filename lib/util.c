#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#ifndef _WIN32
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
cudalink_logf(cudalink_log_fn log, void *user_data, cudalink_log_level level, const char *fmt,
              ...)
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
cudalink_nap(double seconds)
{
#ifndef _WIN32
  struct timespec ts;
  if (seconds <= 0)
    return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
#else
  (void)seconds;
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
