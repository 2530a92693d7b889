// tok_decode.c: ids -> text through the decoder chain (ByteLevel, Metaspace,
// ByteFallback, Fuse, Strip, Replace), each mapping a list of token strings
// to a new list, then joined; as Hugging Face's Tokenizer::decode.
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static ct_status dec_byte_level(const tk_list *in, tk_list *out, ct_error *err) {
    tk_buf bytes = {0}, text = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < in->n && st == CT_OK; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i], start = bytes.len;
        for (size_t j = 0; j < n && st == CT_OK;) {
            uint32_t cp;
            j += tk_utf8_next(s + j, n - j, &cp);
            int b = tk_cp_to_byte(cp);
            if (b < 0) { // not all byte-level characters: keep the token's own bytes
                bytes.len = start;
                st = tk_buf_add(&bytes, s, n, err);
                break;
            }
            char c = (char)b;
            st = tk_buf_add(&bytes, &c, 1, err);
        }
    }
    if (st == CT_OK)
        st = tk_utf8_lossy(&text, bytes.p ? bytes.p : "", bytes.len, err);
    if (st == CT_OK)
        st = tk_list_add(out, text.p ? text.p : "", text.len, false, err);
    tk_buf_free(&bytes);
    tk_buf_free(&text);
    return st;
}

static ct_status dec_metaspace(const tk_dec *d, const tk_list *in, tk_list *out, ct_error *err) {
    tk_buf b = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < in->n && st == CT_OK; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i];
        b.len = 0;
        st = tk_buf_add(&b, "", 0, err);
        for (size_t j = 0; j < n && st == CT_OK;) {
            uint32_t cp;
            size_t cl = tk_utf8_next(s + j, n - j, &cp);
            if (cp != d->cp)
                st = tk_buf_add(&b, s + j, cl, err);
            else if (!(i == 0 && d->prepend))
                st = tk_buf_add(&b, " ", 1, err);
            j += cl;
        }
        if (st == CT_OK)
            st = tk_list_add(out, b.p, b.len, false, err);
    }
    tk_buf_free(&b);
    return st;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static ct_status flush_bytes(tk_buf *pending, tk_list *out, ct_error *err) {
    if (!pending->len)
        return CT_OK;
    ct_status st = CT_OK;
    if (tk_utf8_check(pending->p, pending->len) == pending->len)
        st = tk_list_add(out, pending->p, pending->len, false, err);
    else
        for (size_t k = 0; k < pending->len && st == CT_OK; k++)
            st = tk_list_add(out, "\xEF\xBF\xBD", 3, false, err);
    pending->len = 0;
    return st;
}

static ct_status dec_byte_fallback(const tk_list *in, tk_list *out, ct_error *err) {
    tk_buf pending = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < in->n && st == CT_OK; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i];
        int hi = n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' ? hexval(s[3]) : -1;
        int lo = hi >= 0 ? hexval(s[4]) : -1;
        if (lo >= 0) {
            char c = (char)(hi * 16 + lo);
            st = tk_buf_add(&pending, &c, 1, err);
        } else {
            st = flush_bytes(&pending, out, err);
            if (st == CT_OK)
                st = tk_list_add(out, s, n, false, err);
        }
    }
    if (st == CT_OK)
        st = flush_bytes(&pending, out, err);
    tk_buf_free(&pending);
    return st;
}

static ct_status dec_strip(const tk_dec *d, const tk_list *in, tk_list *out, ct_error *err) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i], a = 0, b = n;
        for (size_t k = 0; k < d->start && a < n; k++) {
            uint32_t cp;
            size_t cl = tk_utf8_next(s + a, n - a, &cp);
            if (cp != d->cp)
                break;
            a += cl;
        }
        for (size_t k = 0; k < d->stop && b > a; k++) {
            size_t j = b - 1;
            while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80)
                j--;
            uint32_t cp;
            tk_utf8_next(s + j, b - j, &cp);
            if (cp != d->cp)
                break;
            b = j;
        }
        CT_TRY(tk_list_add(out, s + a, b - a, false, err));
    }
    return CT_OK;
}

static ct_status dec_replace(const tk_dec *d, pcre2_match_data *md, const tk_list *in, tk_list *out, ct_error *err) {
    tk_buf b = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < in->n && st == CT_OK; i++) {
        const char *s = in->text.p + in->off[i];
        size_t n = in->len[i], pos = 0, copied = 0, ms, me;
        b.len = 0;
        st = tk_buf_add(&b, "", 0, err);
        while (st == CT_OK && pos < n && tk_pattern_find(&d->pat, md, s, n, pos, &ms, &me) && me > ms) {
            st = tk_buf_add(&b, s + copied, ms - copied, err);
            if (st == CT_OK)
                st = tk_buf_add(&b, d->content, d->content_len, err);
            copied = pos = me;
        }
        if (st == CT_OK)
            st = tk_buf_add(&b, s + copied, n - copied, err);
        if (st == CT_OK)
            st = tk_list_add(out, b.p, b.len, false, err);
    }
    tk_buf_free(&b);
    return st;
}

static ct_status dec_fuse(const tk_list *in, tk_list *out, ct_error *err) {
    return tk_list_add(out, in->text.p ? in->text.p : "", in->text.len, false, err);
}

static ct_status apply(const tk_dec *d, pcre2_match_data *md, const tk_list *in, tk_list *out, ct_error *err) {
    switch (d->kind) {
    case TK_DEC_BYTELEVEL:
        return dec_byte_level(in, out, err);
    case TK_DEC_METASPACE:
        return dec_metaspace(d, in, out, err);
    case TK_DEC_BYTEFALLBACK:
        return dec_byte_fallback(in, out, err);
    case TK_DEC_FUSE:
        return dec_fuse(in, out, err);
    case TK_DEC_STRIP:
        return dec_strip(d, in, out, err);
    case TK_DEC_REPLACE:
        return dec_replace(d, md, in, out, err);
    }
    return CT_OK;
}

ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                              ct_error *err) {
    tk_list a = {0}, b = {0};
    tk_buf res = {0};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    ct_status st = md ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n && st == CT_OK; i++) {
        const char *tok = ct_tokenizer_id_to_token(t, ids[i]);
        if (tok && !(skip_special && t->id_special[ids[i]]))
            st = tk_list_add(&a, tok, strlen(tok), false, err);
    }
    for (size_t k = 0; k < t->n_decs && st == CT_OK; k++) {
        tk_list_clear(&b);
        st = apply(&t->decs[k], md, &a, &b, err);
        tk_list x = a;
        a = b;
        b = x;
    }
    if (st == CT_OK)
        st = tk_buf_add(&res, "", 0, err);
    for (size_t i = 0; i < a.n && st == CT_OK; i++) {
        if (i && !t->has_decoder)
            st = tk_buf_add(&res, " ", 1, err);
        if (st == CT_OK)
            st = tk_buf_add(&res, a.text.p + a.off[i], a.len[i], err);
    }
    tk_list_free(&a);
    tk_list_free(&b);
    if (md)
        pcre2_match_data_free(md);
    if (st != CT_OK) {
        tk_buf_free(&res);
        return st;
    }
    *out = res.p;
    return CT_OK;
}
