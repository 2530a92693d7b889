// batching.c: mlx-lm's iterate_batches with its bugs fixed (see dataset.h):
// real length sorting, a seeded batch order of our own, a loss mask without
// the pad token, clamped offsets, per-rank rows and an exact resume position.
#include <stdlib.h>
#include <string.h>

#include "ctune/dataset.h"
#include "ctune/log.h"

// ---------------------------------------------------------------------------
// The batch order. Epoch e's permutation is a pure function of (seed, e):
// a PCG32 stream seeded through splitmix64, then Fisher-Yates. So the whole
// iterator state is (seed, epoch, index), and resuming needs only those.

typedef struct pcg32 {
    uint64_t state, inc;
} pcg32;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint32_t pcg32_next(pcg32 *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

static pcg32 pcg32_for_epoch(uint64_t seed, uint64_t epoch) {
    uint64_t x = seed ^ (epoch * 0xD1B54A32D192ED03ULL);
    pcg32 r;
    r.state = splitmix64(&x);
    r.inc = splitmix64(&x) | 1;
    pcg32_next(&r);
    return r;
}

// Uniform in [0, bound) without modulo bias (rejection of the short tail).
static uint32_t pcg32_below(pcg32 *r, uint32_t bound) {
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t v = pcg32_next(r);
        if (v >= threshold)
            return v % bound;
    }
}

static void make_perm(ct_batcher *b, uint64_t epoch) {
    for (size_t i = 0; i < b->n_batches; i++)
        b->perm[i] = i;
    if (b->opt.shuffle) {
        pcg32 r = pcg32_for_epoch(b->opt.seed, epoch);
        for (size_t i = b->n_batches; i > 1; i--) {
            size_t j = pcg32_below(&r, (uint32_t)i);
            size_t t = b->perm[i - 1];
            b->perm[i - 1] = b->perm[j];
            b->perm[j] = t;
        }
    }
    b->perm_epoch = epoch;
}

// ---------------------------------------------------------------------------

static int cmp_len(const void *x, const void *y, void *ctx) {
    const ct_examples *ex = ctx;
    size_t a = *(const size_t *)x, c = *(const size_t *)y;
    uint32_t la = ex->items[a].len, lc = ex->items[c].len;
    if (la != lc)
        return la < lc ? -1 : 1;
    return a < c ? -1 : a > c; // ties keep file order: a stable sort
}

void ct_batcher_free(ct_batcher *b) {
    free(b->sorted);
    free(b->perm);
    free(b->warned);
    free(b->batch.tokens);
    free(b->batch.lengths);
    free(b->batch.offsets);
    free(b->batch.mask);
    free(b->row_examples);
    memset(b, 0, sizeof *b);
}

ct_status ct_batcher_init(ct_batcher *b, const ct_examples *ex, const ct_batch_options *opt, ct_error *err) {
    memset(b, 0, sizeof *b);
    b->ex = ex;
    b->opt = *opt;
    int world = opt->world_size > 0 ? opt->world_size : 1;
    b->opt.world_size = world;
    if (opt->batch_size == 0)
        return ct_fail(err, CT_ERR_INVALID, "batch size must be at least 1");
    if (opt->rank < 0 || opt->rank >= world)
        return ct_fail(err, CT_ERR_INVALID, "rank %d is outside a world of %d", opt->rank, world);
    if (opt->batch_size % (size_t)world != 0)
        return ct_fail(err, CT_ERR_INVALID, "The batch size must be divisible by the number of workers (batch %zu, %d workers)",
                       opt->batch_size, world);
    if (opt->max_seq_length < 2)
        return ct_fail(err, CT_ERR_INVALID, "max_seq_length must be at least 2");
    if (ex->n < opt->batch_size)
        return ct_fail(err, CT_ERR_INVALID, "Dataset must have at least batch_size=%zu examples but only has %zu.",
                       opt->batch_size, ex->n);
    if (ex->n / opt->batch_size > UINT32_MAX)
        return ct_fail(err, CT_ERR_INVALID, "too many batches");
    b->n_batches = ex->n / opt->batch_size;
    size_t rows = opt->batch_size / (size_t)world;
    b->sorted = malloc(ex->n * sizeof *b->sorted);
    b->perm = malloc(b->n_batches * sizeof *b->perm);
    b->warned = calloc(ex->n, 1);
    b->batch.lengths = malloc(rows * sizeof(int32_t));
    b->batch.offsets = malloc(rows * sizeof(int32_t));
    b->row_examples = malloc(rows * sizeof(size_t));
    if (!b->sorted || !b->perm || !b->warned || !b->batch.lengths || !b->batch.offsets || !b->row_examples) {
        ct_batcher_free(b);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory for %zu examples", ex->n);
    }
    for (size_t i = 0; i < ex->n; i++)
        b->sorted[i] = i;
    qsort_r(b->sorted, ex->n, sizeof *b->sorted, cmp_len, (void *)ex);
    b->batch.rows = rows;
    b->batch.examples = b->row_examples;
    make_perm(b, 0);
    return CT_OK;
}

ct_batch_position ct_batcher_tell(const ct_batcher *b) { return b->pos; }

ct_status ct_batcher_seek(ct_batcher *b, ct_batch_position pos, ct_error *err) {
    if (pos.index > b->n_batches)
        return ct_fail(err, CT_ERR_INVALID, "batch position %llu is past the %zu batches of an epoch",
                       (unsigned long long)pos.index, b->n_batches);
    b->pos = pos;
    return CT_OK;
}

static ct_status ensure_width(ct_batcher *b, size_t width, ct_error *err) {
    if (width <= b->cap_width)
        return CT_OK;
    size_t rows = b->batch.rows;
    int32_t *t = realloc(b->batch.tokens, rows * width * sizeof *t);
    if (t)
        b->batch.tokens = t;
    float *m = realloc(b->batch.mask, rows * (width - 1) * sizeof *m);
    if (m)
        b->batch.mask = m;
    if (!t || !m)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory for a %zu x %zu batch", rows, width);
    b->cap_width = width;
    return CT_OK;
}

static void warn_truncated(ct_batcher *b, size_t idx) {
    if (b->warned[idx])
        return;
    b->warned[idx] = 1;
    const ct_example *e = &b->ex->items[idx];
    ct_log_warn("%s:%u: example of %u tokens truncated to max_seq_length %lld. Consider pre-splitting your data "
                "to save memory.",
                b->ex->sources[e->source], e->line, e->len, (long long)b->opt.max_seq_length);
}

static ct_status fill_batch(ct_batcher *b, size_t batch_index, ct_error *err) {
    ct_batch *out = &b->batch;
    size_t rows = out->rows, world = (size_t)b->opt.world_size;
    size_t first = batch_index * b->opt.batch_size + (size_t)b->opt.rank;
    size_t max_len = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t idx = b->sorted[first + r * world];
        b->row_examples[r] = idx;
        if (b->ex->items[idx].len > max_len)
            max_len = b->ex->items[idx].len;
    }
    // mlx-lm's width rule, kept for identical shapes and losses: the inputs
    // are tokens[:, :-1], so the +1 makes the model's sequence length a
    // multiple of 32 (pad_to = 32) while every real token is still a target.
    size_t max_seq = (size_t)b->opt.max_seq_length;
    size_t width = 1 + 32 * ((max_len + 31) / 32);
    if (width > max_seq)
        width = max_seq;
    CT_TRY(ensure_width(b, width, err));
    out->width = width;
    memset(out->tokens, 0, rows * width * sizeof *out->tokens);
    memset(out->mask, 0, rows * (width - 1) * sizeof *out->mask);
    out->n_targets = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t idx = b->row_examples[r];
        const ct_example *e = &b->ex->items[idx];
        size_t len = e->len;
        if (len > max_seq) {
            warn_truncated(b, idx);
            len = max_seq;
        }
        memcpy(out->tokens + r * width, b->ex->tokens + e->start, len * sizeof(int32_t));
        // Targets are positions 1..len-1 (position p is predicted at column
        // p-1). Fixes: no pad target (mlx-lm's `<= length`), and the prompt
        // offset clamped to the kept length (no empty mask, no 0/0).
        size_t off = e->offset > 1 ? e->offset : 1;
        if (off > len)
            off = len;
        out->lengths[r] = (int32_t)len;
        out->offsets[r] = (int32_t)off;
        for (size_t p = off; p < len; p++)
            out->mask[r * (width - 1) + (p - 1)] = 1.0f;
        out->n_targets += (int64_t)(len - off);
    }
    return CT_OK;
}

ct_status ct_batcher_next(ct_batcher *b, ct_batch *out, bool *done, ct_error *err) {
    *done = false;
    if (b->pos.index >= b->n_batches) {
        if (!b->opt.loop) {
            *done = true;
            return CT_OK;
        }
        b->pos.epoch++;
        b->pos.index = 0;
    }
    if (b->perm_epoch != b->pos.epoch)
        make_perm(b, b->pos.epoch);
    CT_TRY(fill_batch(b, b->perm[b->pos.index], err));
    b->pos.index++;
    *out = b->batch;
    return CT_OK;
}
