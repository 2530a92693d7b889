// tok_norm.c: normalizers (NFC/NFD/NFKC/NFKD via utf8proc, Lowercase,
// Prepend, Replace, Strip), applied in sequence to one segment of text.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

static ct_status unicode_form(tk_norm_kind kind, const tk_buf *in, tk_buf *out, ct_error *err) {
    static const int opts[] = {
        [TK_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE,
        [TK_NFD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
        [TK_NFKC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
        [TK_NFKD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
    };
    if (!in->len)
        return CT_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)in->p, (utf8proc_ssize_t)in->len, &dst, (utf8proc_option_t)opts[kind]);
    if (n < 0)
        return ct_fail(err, CT_ERR_INVALID, "tokenizer: normalization failed: %s", utf8proc_errmsg(n));
    ct_status st = tk_buf_add(out, dst, (size_t)n, err);
    free(dst);
    return st;
}

static ct_status lowercase(const tk_buf *in, tk_buf *out, ct_error *err) {
    for (size_t i = 0; i < in->len;) {
        uint32_t cp;
        size_t cl = tk_utf8_next(in->p + i, in->len - i, &cp);
        char enc[4];
        if (cp == 0x130) { // the one code point whose lowercase is two: i + combining dot
            CT_TRY(tk_buf_add(out, "i\xCC\x87", 3, err));
        } else if (cp < 0x80) {
            char c = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            CT_TRY(tk_buf_add(out, &c, 1, err));
        } else {
            CT_TRY(tk_buf_add(out, enc, tk_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc), err));
        }
        i += cl;
    }
    return CT_OK;
}

// Replaces every non-overlapping match; an empty match advances one character.
static ct_status replace_all(const tk_norm *nm, pcre2_match_data *md, const tk_buf *in, tk_buf *out, ct_error *err) {
    size_t pos = 0, copied = 0, ms, me;
    while (pos <= in->len && tk_pattern_find(&nm->pat, md, in->p, in->len, pos, &ms, &me)) {
        CT_TRY(tk_buf_add(out, in->p + copied, ms - copied, err));
        CT_TRY(tk_buf_add(out, nm->str, nm->str_len, err));
        copied = me;
        if (me == ms) {
            if (me >= in->len)
                break;
            uint32_t cp;
            size_t cl = tk_utf8_next(in->p + me, in->len - me, &cp);
            CT_TRY(tk_buf_add(out, in->p + me, cl, err));
            copied = pos = me + cl;
        } else {
            pos = me;
        }
    }
    return tk_buf_add(out, in->p + copied, in->len - copied, err);
}

static ct_status strip(const tk_norm *nm, const tk_buf *in, tk_buf *out, ct_error *err) {
    size_t a = 0, b = in->len;
    while (nm->left && a < b) {
        uint32_t cp;
        size_t cl = tk_utf8_next(in->p + a, b - a, &cp);
        if (!tk_is_whitespace(cp))
            break;
        a += cl;
    }
    while (nm->right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)in->p[k] & 0xC0) == 0x80)
            k--;
        uint32_t cp;
        tk_utf8_next(in->p + k, b - k, &cp);
        if (!tk_is_whitespace(cp))
            break;
        b = k;
    }
    return tk_buf_add(out, in->p + a, b - a, err);
}

static ct_status apply(const tk_norm *nm, pcre2_match_data *md, const tk_buf *in, tk_buf *out, ct_error *err) {
    switch (nm->kind) {
    case TK_NFC:
    case TK_NFD:
    case TK_NFKC:
    case TK_NFKD:
        return unicode_form(nm->kind, in, out, err);
    case TK_LOWERCASE:
        return lowercase(in, out, err);
    case TK_PREPEND:
        if (in->len)
            CT_TRY(tk_buf_add(out, nm->str, nm->str_len, err));
        return tk_buf_add(out, in->p, in->len, err);
    case TK_REPLACE:
        return replace_all(nm, md, in, out, err);
    case TK_STRIP:
        return strip(nm, in, out, err);
    }
    return CT_OK;
}

ct_status tk_normalize(const ct_tokenizer *t, const char *s, size_t n, tk_buf *out, ct_error *err) {
    tk_buf a = {0}, b = {0};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    ct_status st = md ? tk_buf_add(&a, s, n, err) : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < t->n_norms && st == CT_OK; i++) {
        b.len = 0;
        st = tk_buf_add(&b, "", 0, err);
        if (st == CT_OK)
            st = apply(&t->norms[i], md, &a, &b, err);
        tk_buf x = a;
        a = b;
        b = x;
    }
    out->len = 0;
    if (st == CT_OK)
        st = tk_buf_add(out, a.p, a.len, err);
    tk_buf_free(&a);
    tk_buf_free(&b);
    if (md)
        pcre2_match_data_free(md);
    return st;
}
