// tok_encode.c: the tokenizer object and encoding. Added tokens are cut out
// first (leftmost-longest, non-normalized ones on the raw text, normalized
// ones on each normalized segment), then each remaining segment is
// pre-tokenized and run through BPE; the post-processor adds its ids around.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

ct_status tk_new(ct_tokenizer **t, ct_error *err) {
    *t = calloc(1, sizeof **t);
    if (!*t)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    ct_strmap_init(&(*t)->vocab);
    ct_strmap_init(&(*t)->cache.map);
    (*t)->unk = -1;
    for (int i = 0; i < 256; i++)
        (*t)->byte_ids[i] = -1;
    (*t)->sp = (ct_tokenizer_specials){.bos_id = -1, .eos_id = -1, .pad_id = -1, .unk_id = -1};
    return CT_OK;
}

ct_status tk_set_token(ct_tokenizer *t, int32_t id, const char *s, size_t len, ct_error *err) {
    if (id < 0 || id > (1 << 26))
        return ct_fail(err, CT_ERR_FORMAT, "tokenizer: token id %d out of range", id);
    if ((size_t)id >= t->n_ids) {
        size_t n = (size_t)id + 1;
        char **p = realloc(t->id_tok, n * sizeof *p);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (ids)");
        t->id_tok = p;
        unsigned char *sp = realloc(t->id_special, n);
        if (!sp)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (ids)");
        t->id_special = sp;
        memset(t->id_tok + t->n_ids, 0, (n - t->n_ids) * sizeof *p);
        memset(t->id_special + t->n_ids, 0, n - t->n_ids);
        t->n_ids = n;
    }
    char *c = malloc(len + 1);
    if (!c)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (token)");
    memcpy(c, s, len);
    c[len] = 0;
    free(t->id_tok[id]);
    t->id_tok[id] = c;
    CT_TRY(ct_strmap_put(&t->vocab, s, len, id, NULL, err));
    if (len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
        char hex[3] = {s[3], s[4], 0}, *end;
        long b = strtol(hex, &end, 16);
        if (*end == 0 && b >= 0 && b < 256)
            t->byte_ids[b] = id;
    }
    return CT_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static ct_status build_matcher(ct_tokenizer *t, tk_matcher *m, bool normalized, ct_error *err) {
    size_t n = 0;
    m->idx = malloc((t->n_added + 1) * sizeof *m->idx);
    uint64_t *keys = malloc((t->n_added + 1) * sizeof *keys);
    if (!m->idx || !keys) {
        free(keys);
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (added tokens)");
    }
    // sort key: first byte, then longer first, then index
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].match_len && i < (1u << 28))
            keys[n++] = (uint64_t)(unsigned char)t->added[i].match[0] << 56 |
                        (uint64_t)(0xFFFFFFu - (t->added[i].match_len < 0xFFFFFFu ? t->added[i].match_len : 0xFFFFFFu)) << 28 | i;
    qsort(keys, n, sizeof *keys, cmp_u64);
    for (size_t i = 0; i < n; i++)
        m->idx[i] = (size_t)(keys[i] & ((1u << 28) - 1));
    free(keys);
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (b < 256 && k < n && (unsigned char)t->added[m->idx[k]].match[0] < b)
            k++;
        m->start[b] = b == 256 ? n : k;
    }
    return CT_OK;
}

ct_status tk_build_matchers(ct_tokenizer *t, ct_error *err) {
    tk_buf nb = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        free(a->match);
        a->match = NULL;
        if (a->normalized && t->n_norms) { // Hugging Face matches the normalized content
            ct_status st = tk_normalize(t, a->content, a->len, &nb, err);
            a->match = st == CT_OK ? malloc(nb.len + 1) : NULL;
            if (!a->match) {
                tk_buf_free(&nb);
                return st == CT_OK ? ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory") : st;
            }
            memcpy(a->match, nb.p, nb.len + 1);
            a->match_len = nb.len;
        } else {
            a->match = malloc(a->len + 1);
            if (!a->match) {
                tk_buf_free(&nb);
                return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
            }
            memcpy(a->match, a->content, a->len + 1);
            a->match_len = a->len;
        }
    }
    tk_buf_free(&nb);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].special && t->added[i].id >= 0 && (size_t)t->added[i].id < t->n_ids)
            t->id_special[t->added[i].id] = 1;
    CT_TRY(build_matcher(t, &t->match_raw, false, err));
    return build_matcher(t, &t->match_norm, true, err);
}

ct_status tk_set_post(ct_tokenizer *t, const int32_t *pre, size_t npre, const int32_t *post, size_t npost,
                      ct_error *err) {
    free(t->post_pre);
    free(t->post_post);
    t->post_pre = malloc((npre + 1) * sizeof *pre);
    t->post_post = malloc((npost + 1) * sizeof *post);
    if (!t->post_pre || !t->post_post)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    if (npre)
        memcpy(t->post_pre, pre, npre * sizeof *pre);
    if (npost)
        memcpy(t->post_post, post, npost * sizeof *post);
    t->n_post_pre = npre;
    t->n_post_post = npost;
    return CT_OK;
}

// Unicode \w as Rust's regex has it (letters, marks, decimal digits, connectors).
static bool is_word_char(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND ||
           c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC || cp == 0x200C || cp == 0x200D;
}

static size_t prev_char(const char *s, size_t i, uint32_t *cp) {
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    tk_utf8_next(s + k, i - k, cp);
    return k;
}

// The longest added token of matcher m at s[pos..n), or -1.
static long match_at(const ct_tokenizer *t, const tk_matcher *m, const char *s, size_t n, size_t pos) {
    unsigned char b = (unsigned char)s[pos];
    for (size_t k = m->start[b]; k < m->start[b + 1]; k++) {
        const tk_added *a = &t->added[m->idx[k]];
        if (a->match_len <= n - pos && !memcmp(s + pos, a->match, a->match_len))
            return (long)m->idx[k];
    }
    return -1;
}

typedef struct span {
    size_t a, b;
    int32_t id; // -1: text to tokenize
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static ct_status span_add(spans *s, size_t a, size_t b, int32_t id, ct_error *err) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        span *v = realloc(s->v, ncap * sizeof *v);
        if (!v)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
        s->v = v;
        s->cap = ncap;
    }
    s->v[s->n++] = (span){a, b, id};
    return CT_OK;
}

// Hugging Face's AddedVocabulary::find_matches.
static ct_status split_added(const ct_tokenizer *t, const tk_matcher *m, const char *s, size_t n, spans *out,
                             ct_error *err) {
    size_t start_off = 0;
    out->n = 0;
    if (m->start[256] == 0) {
        if (n)
            CT_TRY(span_add(out, 0, n, -1, err));
        return CT_OK;
    }
    for (size_t pos = 0; pos < n;) {
        long k = match_at(t, m, s, n, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        const tk_added *a = &t->added[k];
        size_t start = pos, stop = pos + a->match_len;
        pos = stop;
        if (a->single_word) {
            uint32_t cp;
            bool word_before = start > 0 && (prev_char(s, start, &cp), is_word_char(cp));
            bool word_after = stop < n && (tk_utf8_next(s + stop, n - stop, &cp), is_word_char(cp));
            if (word_before || word_after)
                continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            uint32_t cp;
            while (ns > 0) {
                size_t k2 = prev_char(s, ns, &cp);
                if (!tk_is_whitespace(cp))
                    break;
                ns = k2;
            }
            start = ns > start_off ? ns : start_off;
        }
        if (a->rstrip) {
            uint32_t cp;
            while (stop < n) {
                size_t cl = tk_utf8_next(s + stop, n - stop, &cp);
                if (!tk_is_whitespace(cp))
                    break;
                stop += cl;
            }
            pos = stop;
        }
        if (start_off < start)
            CT_TRY(span_add(out, start_off, start, -1, err));
        CT_TRY(span_add(out, start, stop, a->id, err));
        start_off = stop;
    }
    if (start_off < n)
        CT_TRY(span_add(out, start_off, n, -1, err));
    return CT_OK;
}

typedef struct enc {
    int32_t *ids;
    size_t n, cap;
    spans norm_spans;
    tk_buf norm;
    tk_list pieces, tmp;
    pcre2_match_data *md;
} enc;

static ct_status push_id(enc *e, int32_t id, ct_error *err) {
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 64;
        int32_t *p = realloc(e->ids, ncap * sizeof *p);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (ids)");
        e->ids = p;
        e->cap = ncap;
    }
    e->ids[e->n++] = id;
    return CT_OK;
}

// Pre-tokenizes and BPE-encodes one normalized piece of text.
static ct_status encode_text(ct_tokenizer *t, enc *e, const char *s, size_t n, bool first, ct_error *err) {
    tk_list_clear(&e->pieces);
    CT_TRY(tk_list_add(&e->pieces, s, n, first, err));
    CT_TRY(tk_pretokenize(t, e->md, &e->pieces, &e->tmp, err));
    for (size_t i = 0; i < e->pieces.n; i++)
        CT_TRY(tk_bpe(t, e->pieces.text.p + e->pieces.off[i], e->pieces.len[i], &e->ids, &e->n, &e->cap, err));
    return CT_OK;
}

static ct_status encode_segment(ct_tokenizer *t, enc *e, const char *s, size_t n, bool first, ct_error *err) {
    const char *ns = s;
    size_t nn = n;
    if (t->n_norms) {
        CT_TRY(tk_normalize(t, s, n, &e->norm, err));
        ns = e->norm.p;
        nn = e->norm.len;
    }
    CT_TRY(split_added(t, &t->match_norm, ns, nn, &e->norm_spans, err));
    for (size_t i = 0; i < e->norm_spans.n; i++) {
        span sp = e->norm_spans.v[i];
        if (sp.id >= 0)
            CT_TRY(push_id(e, sp.id, err));
        else
            CT_TRY(encode_text(t, e, ns + sp.a, sp.b - sp.a, first && sp.a == 0, err));
    }
    return CT_OK;
}

ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                              size_t *n, ct_error *err) {
    *ids = NULL;
    *n = 0;
    size_t bad = tk_utf8_check(text, len);
    if (bad < len)
        return ct_fail(err, CT_ERR_INVALID, "tokenizer: input is not valid UTF-8 at byte %zu", bad);
    enc e = {0};
    spans raw = {0};
    e.md = pcre2_match_data_create(8, NULL);
    ct_status st = e.md ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; add_special && st == CT_OK && i < t->n_post_pre; i++)
        st = push_id(&e, t->post_pre[i], err);
    if (st == CT_OK)
        st = split_added(t, &t->match_raw, text, len, &raw, err);
    for (size_t i = 0; st == CT_OK && i < raw.n; i++) {
        span sp = raw.v[i];
        st = sp.id >= 0 ? push_id(&e, sp.id, err) : encode_segment(t, &e, text + sp.a, sp.b - sp.a, sp.a == 0, err);
    }
    for (size_t i = 0; add_special && st == CT_OK && i < t->n_post_post; i++)
        st = push_id(&e, t->post_post[i], err);
    free(raw.v);
    free(e.norm_spans.v);
    tk_buf_free(&e.norm);
    tk_list_free(&e.pieces);
    tk_list_free(&e.tmp);
    if (e.md)
        pcre2_match_data_free(e.md);
    if (st != CT_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids ? e.ids : malloc(sizeof(int32_t));
    *n = e.n;
    return *ids ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
}

size_t ct_tokenizer_vocab_size(const ct_tokenizer *t) { return t->n_ids; }

const char *ct_tokenizer_id_to_token(const ct_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_ids ? t->id_tok[id] : NULL;
}

int32_t ct_tokenizer_token_to_id(const ct_tokenizer *t, const char *token) {
    int64_t v;
    return ct_strmap_gets(&t->vocab, token, &v) ? (int32_t)v : -1;
}

bool ct_tokenizer_is_special(const ct_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_ids && t->id_special[id];
}

const ct_tokenizer_specials *ct_tokenizer_get_specials(const ct_tokenizer *t) { return &t->sp; }

const char *ct_tokenizer_chat_template(const ct_tokenizer *t, const char *name) {
    if (!name)
        name = "default";
    for (size_t i = 0; i < t->n_tmpls; i++)
        if (!strcmp(t->tmpls[i].name, name))
            return t->tmpls[i].text;
    return NULL;
}

size_t ct_tokenizer_chat_template_count(const ct_tokenizer *t) { return t->n_tmpls; }

const char *ct_tokenizer_chat_template_name(const ct_tokenizer *t, size_t i) {
    return i < t->n_tmpls ? t->tmpls[i].name : NULL;
}

void tk_finish_specials(ct_tokenizer *t) {
    t->sp.bos_token = t->bos_tok;
    t->sp.eos_token = t->eos_tok;
    if (t->bos_tok)
        t->sp.bos_id = ct_tokenizer_token_to_id(t, t->bos_tok);
    if (t->eos_tok)
        t->sp.eos_id = ct_tokenizer_token_to_id(t, t->eos_tok);
    t->sp.unk_id = t->unk;
    if (!t->eos_ids && t->sp.eos_id >= 0) {
        t->eos_ids = malloc(sizeof *t->eos_ids);
        if (t->eos_ids) {
            t->eos_ids[0] = t->sp.eos_id;
            t->sp.n_eos = 1;
        }
    }
    t->sp.eos_ids = t->eos_ids;
}

void ct_tokenizer_free(ct_tokenizer *t) {
    if (!t)
        return;
    ct_strmap_free(&t->vocab);
    for (size_t i = 0; i < t->n_ids; i++)
        free(t->id_tok[i]);
    free(t->id_tok);
    free(t->id_special);
    free(t->merges.keys);
    free(t->merges.vals);
    free(t->prefix);
    free(t->suffix);
    ct_strmap_free(&t->cache.map);
    free(t->cache.pool);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->added);
    free(t->match_raw.idx);
    free(t->match_norm.idx);
    for (size_t i = 0; i < t->n_norms; i++) {
        tk_pattern_free(&t->norms[i].pat);
        free(t->norms[i].str);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pres; i++)
        tk_pattern_free(&t->pres[i].pat);
    free(t->pres);
    for (size_t i = 0; i < t->n_decs; i++) {
        tk_pattern_free(&t->decs[i].pat);
        free(t->decs[i].content);
    }
    free(t->decs);
    free(t->post_pre);
    free(t->post_post);
    free(t->bos_tok);
    free(t->eos_tok);
    free(t->eos_ids);
    for (size_t i = 0; i < t->n_tmpls; i++) {
        free(t->tmpls[i].name);
        free(t->tmpls[i].text);
    }
    free(t->tmpls);
    free(t);
}
