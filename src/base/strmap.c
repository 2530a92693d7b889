#include "ctune/strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void ct_strmap_init(ct_strmap *m) { memset(m, 0, sizeof *m); }

void ct_strmap_free(ct_strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->key_lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const ct_strmap *m, const char *key, size_t len) {
    size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
    while (m->keys[i] && !(m->key_lens[i] == len && memcmp(m->keys[i], key, len) == 0))
        i = (i + 1) & mask;
    return i;
}

static ct_status grow(ct_strmap *m, ct_error *err) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    ct_strmap n = {calloc(ncap, sizeof(char *)), calloc(ncap, sizeof(size_t)), calloc(ncap, sizeof(int64_t)), ncap, m->len};
    if (!n.keys || !n.key_lens || !n.vals) {
        free(n.keys);
        free(n.key_lens);
        free(n.vals);
        return ct_fail(err, CT_ERR_NOMEM, "hash map: out of memory growing to %zu slots", ncap);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = find_slot(&n, m->keys[i], m->key_lens[i]);
        n.keys[j] = m->keys[i];
        n.key_lens[j] = m->key_lens[i];
        n.vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->key_lens);
    free(m->vals);
    *m = n;
    return CT_OK;
}

ct_status ct_strmap_put(ct_strmap *m, const char *key, size_t len, int64_t val, bool *was_new, ct_error *err) {
    if ((m->len + 1) * 4 > m->cap * 3)
        CT_TRY(grow(m, err));
    size_t i = find_slot(m, key, len);
    if (was_new)
        *was_new = m->keys[i] == NULL;
    if (!m->keys[i]) {
        char *k = malloc(len + 1);
        if (!k)
            return ct_fail(err, CT_ERR_NOMEM, "hash map: out of memory");
        memcpy(k, key, len);
        k[len] = 0;
        m->keys[i] = k;
        m->key_lens[i] = len;
        m->len++;
    }
    m->vals[i] = val;
    return CT_OK;
}

bool ct_strmap_get(const ct_strmap *m, const char *key, size_t len, int64_t *val) {
    if (!m->cap)
        return false;
    size_t i = find_slot(m, key, len);
    if (!m->keys[i])
        return false;
    if (val)
        *val = m->vals[i];
    return true;
}

ct_status ct_strmap_puts(ct_strmap *m, const char *key, int64_t val, bool *was_new, ct_error *err) {
    return ct_strmap_put(m, key, strlen(key), val, was_new, err);
}

bool ct_strmap_gets(const ct_strmap *m, const char *key, int64_t *val) {
    return ct_strmap_get(m, key, strlen(key), val);
}
