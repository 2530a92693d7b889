// tok_pretok.c: pre-tokenizers. Each splits every piece of a list into
// sub-pieces the way Hugging Face's NormalizedString::split does: find the
// matches (regex, literal or one character class), then keep, drop or glue the
// delimiters according to the split behavior.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

typedef struct seg {
    size_t a, b;
    bool match;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static ct_status seg_add(segs *s, size_t a, size_t b, bool match, ct_error *err) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        seg *v = realloc(s->v, ncap * sizeof *v);
        if (!v)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (split)");
        s->v = v;
        s->cap = ncap;
    }
    s->v[s->n++] = (seg){a, b, match};
    return CT_OK;
}

// Matches of a pattern, with the gaps between them, covering the whole piece.
static ct_status find_pattern(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t n, segs *out,
                              ct_error *err) {
    size_t prev = 0, pos = 0, ms, me;
    while (pos <= n && tk_pattern_find(p, md, s, n, pos, &ms, &me)) {
        if (prev != ms)
            CT_TRY(seg_add(out, prev, ms, false, err));
        CT_TRY(seg_add(out, ms, me, true, err));
        prev = me;
        if (me == ms) {
            if (me >= n)
                break;
            uint32_t cp;
            pos = me + tk_utf8_next(s + me, n - me, &cp);
        } else {
            pos = me;
        }
    }
    if (prev != n)
        CT_TRY(seg_add(out, prev, n, false, err));
    return CT_OK;
}

typedef bool (*char_pred)(uint32_t cp, uint32_t arg);

static bool is_numeric(uint32_t cp, uint32_t arg) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

static bool is_punct(uint32_t cp, uint32_t arg) {
    if (cp < 0x80)
        return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

static bool is_ws(uint32_t cp, uint32_t arg) { return tk_is_whitespace(cp); }
static bool is_char(uint32_t cp, uint32_t arg) { return cp == arg; }

// Each character satisfying pred is one match.
static ct_status find_chars(char_pred pred, uint32_t arg, const char *s, size_t n, segs *out, ct_error *err) {
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = tk_utf8_next(s + i, n - i, &cp);
        if (pred(cp, arg)) {
            if (last < i)
                CT_TRY(seg_add(out, last, i, false, err));
            CT_TRY(seg_add(out, i, i + cl, true, err));
            last = i + cl;
        }
        i += cl;
    }
    if (last < n)
        CT_TRY(seg_add(out, last, n, false, err));
    return CT_OK;
}

// Applies the behavior to the segments (in place) and appends the kept
// non-empty pieces to out.
static ct_status emit(segs *sg, tk_behavior behavior, bool invert, const char *s, bool first, tk_list *out,
                      ct_error *err) {
    size_t k = 0;
    bool prev = false;
    if (invert)
        for (size_t i = 0; i < sg->n; i++)
            sg->v[i].match = !sg->v[i].match;
    if (behavior == TK_MERGED_NEXT) {
        for (size_t j = sg->n; j-- > 0;) {
            seg c = sg->v[j];
            if (c.match && !prev && k > 0)
                sg->v[sg->n - k].a = c.a;
            else
                sg->v[sg->n - ++k] = (seg){c.a, c.b, false};
            prev = c.match;
        }
        memmove(sg->v, sg->v + sg->n - k, k * sizeof *sg->v);
    } else {
        for (size_t i = 0; i < sg->n; i++) {
            seg c = sg->v[i];
            bool glue = (behavior == TK_CONTIGUOUS && c.match == prev) || (behavior == TK_MERGED_PREV && c.match && !prev);
            if (glue && k > 0)
                sg->v[k - 1].b = c.b;
            else
                sg->v[k++] = (seg){c.a, c.b, behavior == TK_REMOVED && c.match};
            prev = c.match;
        }
    }
    for (size_t i = 0; i < k; i++)
        if (!sg->v[i].match && sg->v[i].b > sg->v[i].a)
            CT_TRY(tk_list_add(out, s + sg->v[i].a, sg->v[i].b - sg->v[i].a, first && sg->v[i].a == 0, err));
    return CT_OK;
}

static ct_status byte_level(const tk_pretok *p, pcre2_match_data *md, const char *s, size_t n, bool first,
                            tk_list *out, segs *sg, ct_error *err) {
    tk_buf src = {0}, mapped = {0};
    tk_list parts = {0};
    ct_status st = CT_OK;
    if (p->add_prefix_space && (n == 0 || s[0] != ' '))
        st = tk_buf_add(&src, " ", 1, err);
    if (st == CT_OK)
        st = tk_buf_add(&src, s, n, err);
    if (st == CT_OK && p->use_regex) {
        sg->n = 0;
        st = find_pattern(&p->pat, md, src.p, src.len, sg, err);
        if (st == CT_OK)
            st = emit(sg, TK_ISOLATED, false, src.p, first, &parts, err);
    } else if (st == CT_OK && src.len) {
        st = tk_list_add(&parts, src.p, src.len, first, err);
    }
    for (size_t i = 0; i < parts.n && st == CT_OK; i++) {
        mapped.len = 0;
        const unsigned char *q = (const unsigned char *)parts.text.p + parts.off[i];
        for (size_t j = 0; j < parts.len[i] && st == CT_OK; j++) {
            char enc[4];
            st = tk_buf_add(&mapped, enc, tk_utf8_encode(tk_byte_to_cp(q[j]), enc), err);
        }
        if (st == CT_OK)
            st = tk_list_add(out, mapped.p, mapped.len, parts.first[i], err);
    }
    tk_buf_free(&src);
    tk_buf_free(&mapped);
    tk_list_free(&parts);
    return st;
}

static ct_status metaspace(const tk_pretok *p, const char *s, size_t n, bool first, tk_list *out, segs *sg,
                           ct_error *err) {
    tk_buf b = {0};
    ct_status st = CT_OK;
    bool starts = n >= p->repl_len && !memcmp(s, p->repl, p->repl_len);
    bool prepend = p->scheme == TK_PREPEND_ALWAYS || (p->scheme == TK_PREPEND_FIRST && first);
    if (prepend && !starts && !(n && s[0] == ' ')) // HF checks after replacing spaces
        st = tk_buf_add(&b, p->repl, p->repl_len, err);
    for (size_t i = 0; i < n && st == CT_OK; i++)
        st = s[i] == ' ' ? tk_buf_add(&b, p->repl, p->repl_len, err) : tk_buf_add(&b, s + i, 1, err);
    if (st == CT_OK && b.len) {
        if (p->split) {
            sg->n = 0;
            st = find_chars(is_char, p->repl_cp, b.p, b.len, sg, err);
            if (st == CT_OK)
                st = emit(sg, TK_MERGED_NEXT, false, b.p, first, out, err);
        } else {
            st = tk_list_add(out, b.p, b.len, first, err);
        }
    }
    tk_buf_free(&b);
    return st;
}

static ct_status pretok_piece(const tk_pretok *p, pcre2_match_data *md, const char *s, size_t n, bool first,
                              tk_list *out, segs *sg, ct_error *err) {
    sg->n = 0;
    switch (p->kind) {
    case TK_PRE_BYTELEVEL:
        return byte_level(p, md, s, n, first, out, sg, err);
    case TK_PRE_METASPACE:
        return metaspace(p, s, n, first, out, sg, err);
    case TK_PRE_SPLIT:
    case TK_PRE_WHITESPACE:
        CT_TRY(find_pattern(&p->pat, md, s, n, sg, err));
        break;
    case TK_PRE_DIGITS:
        CT_TRY(find_chars(is_numeric, 0, s, n, sg, err));
        break;
    case TK_PRE_PUNCT:
        CT_TRY(find_chars(is_punct, 0, s, n, sg, err));
        break;
    case TK_PRE_WSSPLIT:
        CT_TRY(find_chars(is_ws, 0, s, n, sg, err));
        break;
    }
    return emit(sg, p->behavior, p->invert, s, first, out, err);
}

ct_status tk_pretokenize(const ct_tokenizer *t, pcre2_match_data *md, tk_list *l, tk_list *tmp, ct_error *err) {
    segs sg = {0};
    ct_status st = CT_OK;
    for (size_t k = 0; k < t->n_pres && st == CT_OK; k++) {
        tk_list_clear(tmp);
        for (size_t i = 0; i < l->n && st == CT_OK; i++)
            st = pretok_piece(&t->pres[k], md, l->text.p + l->off[i], l->len[i], l->first[i], tmp, &sg, err);
        tk_list x = *l;
        *l = *tmp;
        *tmp = x;
    }
    free(sg.v);
    return st;
}
