// error.h: the one way ctune reports failure.
// A function that can fail returns ct_status and, on failure, fills a ct_error
// with a message that names the file, line or tensor involved. Library code
// never prints or exits; the CLI prints "error: <msg>" and exits non-zero.
#ifndef CTUNE_ERROR_H
#define CTUNE_ERROR_H

#include <stddef.h>

typedef enum ct_status {
    CT_OK = 0,
    CT_ERR_IO,          // a file could not be opened, read or written
    CT_ERR_FORMAT,      // a file's contents are malformed
    CT_ERR_INVALID,     // a bad argument, option or value
    CT_ERR_UNSUPPORTED, // well-formed but not something ctune handles
    CT_ERR_NOMEM,       // allocation failed
    CT_ERR_NUMERIC,     // NaN/Inf where a number was needed
} ct_status;

typedef struct ct_error {
    ct_status status;
    char msg[2048];
} ct_error;

// Sets err (if not NULL) and returns st. Usage: return ct_fail(err, CT_ERR_IO, "%s: %s", path, strerror(errno));
ct_status ct_fail(ct_error *err, ct_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Prepends context to an existing message: "context: old message". Returns err->status.
ct_status ct_error_context(ct_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *ct_status_name(ct_status st);

// Propagate a failure: CT_TRY(ct_something(..., err));
#define CT_TRY(expr)                      \
    do {                                  \
        ct_status ct_try_st_ = (expr);    \
        if (ct_try_st_ != CT_OK)          \
            return ct_try_st_;            \
    } while (0)

#endif
