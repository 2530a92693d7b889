#include "ctune/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ct_status ct_fail(ct_error *err, ct_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

ct_status ct_error_context(ct_error *err, const char *fmt, ...) {
    if (!err)
        return CT_ERR_INVALID;
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    // A message that already starts with the prefix (the same path, or a file
    // inside that folder) names it already: "m: m/config.json: ..." helps no one.
    size_t n = strlen(prefix);
    if (n && !strncmp(err->msg, prefix, n) && (err->msg[n] == ':' || err->msg[n] == '/'))
        return err->status;
    // Shift the old message right and put "prefix: " in front, truncating at the end.
    size_t pl = strlen(prefix) + 2, ml = strlen(err->msg), cap = sizeof err->msg - 1;
    if (pl > cap)
        pl = cap;
    if (pl + ml > cap)
        ml = cap - pl;
    memmove(err->msg + pl, err->msg, ml);
    err->msg[pl + ml] = 0;
    memcpy(err->msg, prefix, pl - 2);
    err->msg[pl - 2] = ':';
    err->msg[pl - 1] = ' ';
    return err->status;
}

const char *ct_status_name(ct_status st) {
    switch (st) {
    case CT_OK: return "ok";
    case CT_ERR_IO: return "i/o error";
    case CT_ERR_FORMAT: return "malformed input";
    case CT_ERR_INVALID: return "invalid argument";
    case CT_ERR_UNSUPPORTED: return "unsupported";
    case CT_ERR_NOMEM: return "out of memory";
    case CT_ERR_NUMERIC: return "numeric error";
    }
    return "unknown error";
}
