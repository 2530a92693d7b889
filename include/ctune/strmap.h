// strmap.h: a hash map from byte strings (any bytes, explicit length) to int64
// values. Open addressing with linear probing; keys are copied and owned.
#ifndef CTUNE_STRMAP_H
#define CTUNE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"

typedef struct ct_strmap {
    char **keys;      // slot -> owned key (NULL if empty)
    size_t *key_lens; // slot -> key length
    int64_t *vals;    // slot -> value
    size_t cap;       // power of two
    size_t len;       // number of entries
} ct_strmap;

void ct_strmap_init(ct_strmap *m);
void ct_strmap_free(ct_strmap *m);
// Inserts or replaces. *was_new (if not NULL) tells whether the key was absent.
ct_status ct_strmap_put(ct_strmap *m, const char *key, size_t len, int64_t val, bool *was_new, ct_error *err);
bool ct_strmap_get(const ct_strmap *m, const char *key, size_t len, int64_t *val);
// NUL-terminated conveniences.
ct_status ct_strmap_puts(ct_strmap *m, const char *key, int64_t val, bool *was_new, ct_error *err);
bool ct_strmap_gets(const ct_strmap *m, const char *key, int64_t *val);

#endif
