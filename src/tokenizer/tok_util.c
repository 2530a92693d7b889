// tok_util.c: buffers, piece lists, UTF-8, patterns and the merge table used
// by the tokenizer pipeline.
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

ct_status tk_buf_add(tk_buf *b, const void *s, size_t n, ct_error *err) {
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *p = realloc(b->p, ncap);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", ncap);
        b->p = p;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return CT_OK;
}

void tk_buf_free(tk_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

ct_status tk_list_add(tk_list *l, const char *s, size_t n, bool first, ct_error *err) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        size_t *off = realloc(l->off, ncap * sizeof *off);
        if (off)
            l->off = off;
        size_t *len = realloc(l->len, ncap * sizeof *len);
        if (len)
            l->len = len;
        unsigned char *fi = realloc(l->first, ncap);
        if (fi)
            l->first = fi;
        if (!off || !len || !fi)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (piece list)");
        l->cap = ncap;
    }
    l->off[l->n] = l->text.len;
    l->len[l->n] = n;
    l->first[l->n] = first;
    l->n++;
    return tk_buf_add(&l->text, s, n, err);
}

void tk_list_clear(tk_list *l) {
    l->n = 0;
    l->text.len = 0;
}

void tk_list_free(tk_list *l) {
    tk_buf_free(&l->text);
    free(l->off);
    free(l->len);
    free(l->first);
    memset(l, 0, sizeof *l);
}

size_t tk_utf8_next(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0 || n < 4) {
        *cp = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
        return n < 3 ? n : 3;
    }
    *cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 | (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
    return 4;
}

size_t tk_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Length of the valid UTF-8 sequence at s, or 0 with *bad set to the length
// of the maximal invalid prefix (the unit Rust replaces with one U+FFFD).
static size_t utf8_valid_len(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF)) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

size_t tk_utf8_check(const char *s, size_t len) {
    size_t i = 0, bad;
    while (i < len) {
        size_t k = utf8_valid_len((const unsigned char *)s + i, len - i, &bad);
        if (!k)
            return i;
        i += k;
    }
    return len;
}

ct_status tk_utf8_lossy(tk_buf *b, const char *s, size_t n, ct_error *err) {
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_valid_len((const unsigned char *)s + i, n - i, &bad);
        if (k) {
            CT_TRY(tk_buf_add(b, s + i, k, err));
            i += k;
        } else {
            CT_TRY(tk_buf_add(b, "\xEF\xBF\xBD", 3, err));
            i += bad;
        }
    }
    return CT_OK;
}

bool tk_is_whitespace(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

ct_status tk_regex_compile(pcre2_code **re, const char *pattern, ct_error *err) {
    int code;
    PCRE2_SIZE off;
    // No PCRE2_NO_UTF_CHECK: patterns come from files and may be invalid UTF-8 (a fuzzer found the crash).
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                        &off, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ct_fail(err, CT_ERR_UNSUPPORTED, "regex /%s/ at offset %zu: %s", pattern, (size_t)off, (char *)msg);
    }
    pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE); // falls back to the interpreter if JIT is unavailable
    return CT_OK;
}

void tk_pattern_free(tk_pattern *p) {
    free(p->lit);
    if (p->re)
        pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

bool tk_pattern_find(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t n, size_t pos, size_t *ms,
                     size_t *me) {
    if (!p->re) {
        if (!p->lit_len || pos >= n)
            return false;
        const char *f = memmem(s + pos, n - pos, p->lit, p->lit_len);
        if (!f)
            return false;
        *ms = (size_t)(f - s);
        *me = *ms + p->lit_len;
        return true;
    }
    if (pos > n)
        return false;
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0)
        return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return true;
}

uint32_t tk_byte_to_cp(unsigned char b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        return b;
    uint32_t n = 0; // rank among the bytes that are remapped
    for (unsigned i = 0; i < b; i++)
        if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE)))
            n++;
    return 256 + n;
}

int tk_cp_to_byte(uint32_t cp) {
    if ((cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68)
        return -1;
    uint32_t n = 0;
    for (unsigned i = 0; i < 256; i++) {
        if (!((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE))) {
            if (n == cp - 256)
                return (int)i;
            n++;
        }
    }
    return -1;
}

static size_t merge_slot(const tk_merges *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

ct_status tk_merges_put(tk_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t merged, ct_error *err) {
    if ((m->len + 1) * 2 > m->cap) {
        tk_merges n = {NULL, NULL, m->cap ? m->cap * 2 : 1024, m->len};
        n.keys = calloc(n.cap, sizeof *n.keys);
        n.vals = calloc(n.cap, sizeof *n.vals);
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (merges)");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i]) {
                size_t j = merge_slot(&n, m->keys[i]);
                n.keys[j] = m->keys[i];
                n.vals[j] = m->vals[i];
            }
        }
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t i = merge_slot(m, key);
    if (!m->keys[i])
        m->len++;
    m->keys[i] = key; // a repeated pair keeps its last rank, as Hugging Face's map does
    m->vals[i] = (uint64_t)rank << 32 | (uint32_t)merged;
    return CT_OK;
}

bool tk_merges_get(const tk_merges *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
    if (!m->cap)
        return false;
    size_t i = merge_slot(m, ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1);
    if (!m->keys[i])
        return false;
    *rank = (uint32_t)(m->vals[i] >> 32);
    *merged = (int32_t)(uint32_t)m->vals[i];
    return true;
}
