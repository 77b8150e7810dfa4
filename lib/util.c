#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#ifdef _WIN32
#  include <windows.h>
#else
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
