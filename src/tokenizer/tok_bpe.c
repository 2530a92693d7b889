// tok_bpe.c: the BPE model on one pre-tokenized piece. Symbols form a linked
// list; candidate merges sit in a binary min-heap keyed by (rank, position),
// as in Hugging Face's Word::merge_all, so a word of n symbols costs
// O(n log n). Results of short pieces are cached.
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

enum { CACHE_MAX_PIECE = 256, CACHE_MAX_ENTRIES = 200000 };

typedef struct sym {
    int32_t id;
    int prev, next; // -1 at the ends
    size_t len;     // bytes of the piece covered; 0 once merged away
} sym;

typedef struct cand {
    uint64_t key; // rank << 32 | position
    int32_t merged;
} cand;

typedef struct word {
    sym *s;
    size_t n, cap;
    cand *h;
    size_t hn, hcap;
} word;

static ct_status word_add(word *w, int32_t id, size_t len, ct_error *err) {
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 32;
        sym *s = realloc(w->s, ncap * sizeof *s);
        if (!s)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (BPE word)");
        w->s = s;
        w->cap = ncap;
    }
    w->s[w->n] = (sym){id, (int)w->n - 1, (int)w->n + 1, len};
    w->n++;
    return CT_OK;
}

static ct_status heap_push(word *w, uint32_t rank, size_t pos, int32_t merged, ct_error *err) {
    if (w->hn == w->hcap) {
        size_t ncap = w->hcap ? w->hcap * 2 : 32;
        cand *h = realloc(w->h, ncap * sizeof *h);
        if (!h)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (BPE heap)");
        w->h = h;
        w->hcap = ncap;
    }
    size_t i = w->hn++;
    cand c = {(uint64_t)rank << 32 | pos, merged};
    while (i > 0 && w->h[(i - 1) / 2].key > c.key) {
        w->h[i] = w->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->h[i] = c;
    return CT_OK;
}

static cand heap_pop(word *w) {
    cand top = w->h[0], last = w->h[--w->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->hn)
            break;
        if (c + 1 < w->hn && w->h[c + 1].key < w->h[c].key)
            c++;
        if (w->h[c].key >= last.key)
            break;
        w->h[i] = w->h[c];
        i = c;
    }
    if (w->hn)
        w->h[i] = last;
    return top;
}

static ct_status push_pair(const ct_tokenizer *t, word *w, int left, ct_error *err) {
    int right = w->s[left].next;
    uint32_t rank;
    int32_t merged;
    if (right < 0 || right >= (int)w->n)
        return CT_OK;
    if (tk_merges_get(&t->merges, w->s[left].id, w->s[right].id, &rank, &merged))
        return heap_push(w, rank, (size_t)left, merged, err);
    return CT_OK;
}

static ct_status merge_all(const ct_tokenizer *t, word *w, ct_error *err) {
    for (size_t i = 0; i + 1 < w->n; i++)
        CT_TRY(push_pair(t, w, (int)i, err));
    while (w->hn) {
        cand c = heap_pop(w);
        int pos = (int)(c.key & 0xFFFFFFFFu);
        sym *cur = &w->s[pos];
        if (!cur->len || cur->next < 0 || cur->next >= (int)w->n)
            continue;
        sym *right = &w->s[cur->next];
        uint32_t rank;
        int32_t merged;
        if (!tk_merges_get(&t->merges, cur->id, right->id, &rank, &merged) || merged != c.merged)
            continue;
        cur->id = merged;
        cur->len += right->len;
        right->len = 0;
        cur->next = right->next;
        if (right->next >= 0 && right->next < (int)w->n)
            w->s[right->next].prev = pos;
        if (cur->prev >= 0)
            CT_TRY(push_pair(t, w, cur->prev, err));
        CT_TRY(push_pair(t, w, pos, err));
    }
    return CT_OK;
}

static int32_t vocab_id(const ct_tokenizer *t, const char *s, size_t n) {
    int64_t v;
    return ct_strmap_get(&t->vocab, s, n, &v) ? (int32_t)v : -1;
}

// Initial symbols: one per character (with prefix/suffix), byte fallback or unk.
static ct_status word_init(const ct_tokenizer *t, word *w, const char *s, size_t n, ct_error *err) {
    tk_buf tmp = {0};
    int32_t unk_id = -1;
    size_t unk_len = 0;
    ct_status st = CT_OK;
    for (size_t i = 0; i < n && st == CT_OK;) {
        uint32_t cp;
        size_t cl = tk_utf8_next(s + i, n - i, &cp);
        const char *tok = s + i;
        size_t tl = cl;
        if ((t->prefix && i > 0) || (t->suffix && i + cl == n)) {
            tmp.len = 0;
            if (t->prefix && i > 0)
                st = tk_buf_add(&tmp, t->prefix, strlen(t->prefix), err);
            if (st == CT_OK)
                st = tk_buf_add(&tmp, s + i, cl, err);
            if (st == CT_OK && t->suffix && i + cl == n)
                st = tk_buf_add(&tmp, t->suffix, strlen(t->suffix), err);
            tok = tmp.p;
            tl = tmp.len;
        }
        int32_t id = st == CT_OK ? vocab_id(t, tok, tl) : -1;
        if (st != CT_OK) {
        } else if (id >= 0) {
            if (unk_id >= 0)
                st = word_add(w, unk_id, unk_len, err);
            unk_id = -1;
            if (st == CT_OK)
                st = word_add(w, id, cl, err);
        } else {
            bool all = t->byte_fallback;
            for (size_t k = 0; k < tl && all; k++)
                all = t->byte_ids[(unsigned char)tok[k]] >= 0;
            if (all) {
                for (size_t k = 0; k < tl && st == CT_OK; k++)
                    st = word_add(w, t->byte_ids[(unsigned char)tok[k]], 1, err);
            } else if (t->unk >= 0) {
                if (unk_id >= 0 && t->fuse_unk) {
                    unk_len += cl;
                } else {
                    if (unk_id >= 0)
                        st = word_add(w, unk_id, unk_len, err);
                    unk_id = t->unk;
                    unk_len = cl;
                }
            }
        }
        i += cl;
    }
    if (st == CT_OK && unk_id >= 0)
        st = word_add(w, unk_id, unk_len, err);
    tk_buf_free(&tmp);
    return st;
}

static ct_status ids_push(int32_t **ids, size_t *nids, size_t *cap, int32_t id, ct_error *err) {
    if (*nids == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, ncap * sizeof *p);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (ids)");
        *ids = p;
        *cap = ncap;
    }
    (*ids)[(*nids)++] = id;
    return CT_OK;
}

static ct_status cache_put(tk_cache *c, const char *s, size_t n, const int32_t *ids, size_t k, ct_error *err) {
    if (c->map.len >= CACHE_MAX_ENTRIES || k >= 0xFFFF)
        return CT_OK;
    if (c->len + k > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 4096;
        while (ncap < c->len + k)
            ncap *= 2;
        int32_t *p = realloc(c->pool, ncap * sizeof *p);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory (cache)");
        c->pool = p;
        c->cap = ncap;
    }
    memcpy(c->pool + c->len, ids, k * sizeof *ids);
    CT_TRY(ct_strmap_put(&c->map, s, n, (int64_t)(c->len << 16 | k), NULL, err));
    c->len += k;
    return CT_OK;
}

ct_status tk_bpe(ct_tokenizer *t, const char *s, size_t n, int32_t **ids, size_t *nids, size_t *cap,
                 ct_error *err) {
    if (!n)
        return CT_OK;
    if (t->ignore_merges) {
        int32_t id = vocab_id(t, s, n);
        if (id >= 0)
            return ids_push(ids, nids, cap, id, err);
    }
    int64_t v;
    if (n < CACHE_MAX_PIECE && ct_strmap_get(&t->cache.map, s, n, &v)) {
        size_t off = (size_t)v >> 16, k = (size_t)v & 0xFFFF;
        for (size_t i = 0; i < k; i++)
            CT_TRY(ids_push(ids, nids, cap, t->cache.pool[off + i], err));
        return CT_OK;
    }
    word w = {0};
    size_t start = *nids;
    ct_status st = word_init(t, &w, s, n, err);
    if (st == CT_OK)
        st = merge_all(t, &w, err);
    for (int i = w.n ? 0 : -1; st == CT_OK && i >= 0 && i < (int)w.n; i = w.s[i].next)
        st = ids_push(ids, nids, cap, w.s[i].id, err);
    if (st == CT_OK && n < CACHE_MAX_PIECE)
        st = cache_put(&t->cache, s, n, *ids + start, *nids - start, err);
    free(w.s);
    free(w.h);
    return st;
}
