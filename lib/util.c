#include "util.h"

#include <stdarg.h>
#include <stdio.h>

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
