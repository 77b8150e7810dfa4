/* Small helpers shared by the producer and the consumer. Internal. */
#ifndef CUDALINK_UTIL_H
#define CUDALINK_UTIL_H

#include <stddef.h>

#include "cudalink.h"

#if defined(__GNUC__)
#  define CUDALINK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define CUDALINK_PRINTF(fmt, args)
#endif

/** snprintf into a fixed buffer (always NUL-terminated, cut if too long). */
void cudalink_textf(char *buf, size_t len, const char *fmt, ...) CUDALINK_PRINTF(3, 4);

/** Formats a message and hands it to log (nothing when log is NULL). */
void cudalink_logf(cudalink_log_fn log, void *user_data, cudalink_log_level level, const char *fmt,
                   ...) CUDALINK_PRINTF(4, 5);

/** Sleeps about seconds, not less (an interrupted sleep goes on). At most a
 * day per call; NaN, 0 or less return at once, and so does a sleep the
 * system refuses (it is not retried for ever). On Windows the steps are
 * milliseconds, at least one. */
void cudalink_sleep(double seconds);

/** How late this thread's short sleeps may end (Linux: its timer slack).
 * 1 s on Windows, whose steps are milliseconds: nobody naps there. */
double cudalink_nap_slack(void);

/** Makes this thread's timers precise (Linux: a 1 us timer slack instead of
 * the default 50 us) until cudalink_precise_end(previous) with what this
 * returned: -1 when the kernel refused, which the two calls below read as
 * "default slack, nothing to restore". Elsewhere does nothing. */
long cudalink_precise_begin(void);
void cudalink_precise_end(long previous);
/** How late short sleeps end between the two (what cudalink_nap_slack()
 * would say then), from what cudalink_precise_begin() returned: no need
 * to ask the kernel again. */
double cudalink_precise_slack(long previous);

/** One turn of a spin loop that lets other threads of this CPU run. */
void cudalink_spin_yield(void);

#endif
