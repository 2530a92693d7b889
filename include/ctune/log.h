// log.h: messages for people, on stderr. Library code uses these for warnings
// and progress notes; results meant for stdout are printed only by the CLI.
// The level is process-wide configuration, set once by the CLI at startup
// (the one piece of global state, documented here on purpose).
#ifndef CTUNE_LOG_H
#define CTUNE_LOG_H

#include <stdint.h>

typedef enum ct_log_level { CT_LOG_QUIET = 0, CT_LOG_WARN, CT_LOG_INFO, CT_LOG_DEBUG } ct_log_level;

void ct_log_set_level(ct_log_level level);
ct_log_level ct_log_get_level(void);
void ct_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  // "warning: ..."
void ct_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ct_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2))); // "debug: ..."

// Monotonic clock in seconds.
double ct_now(void);
// Peak resident set size of this process in bytes.
int64_t ct_peak_rss_bytes(void);

#endif
