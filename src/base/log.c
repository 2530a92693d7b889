#include "ctune/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

static ct_log_level g_level = CT_LOG_INFO;

void ct_log_set_level(ct_log_level level) { g_level = level; }
ct_log_level ct_log_get_level(void) { return g_level; }

static void emit(ct_log_level level, const char *prefix, const char *fmt, va_list ap) {
    if (level > g_level)
        return;
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

#define LOG_FN(name, level, prefix)     \
    void name(const char *fmt, ...) {   \
        va_list ap;                     \
        va_start(ap, fmt);              \
        emit(level, prefix, fmt, ap);   \
        va_end(ap);                     \
    }
LOG_FN(ct_log_warn, CT_LOG_WARN, "warning: ")
LOG_FN(ct_log_info, CT_LOG_INFO, "")
LOG_FN(ct_log_debug, CT_LOG_DEBUG, "debug: ")

double ct_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t ct_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (int64_t)ru.ru_maxrss * 1024; // Linux reports kilobytes
}
