// Unit tests for batching: length-sorted composition, padded widths, loss
// masks (no pad target, clamped offsets), seeded order, sharding, exact resume.
#include <stdlib.h>

#include "ctune/dataset.h"
#include "ctune/log.h"
#include "harness.h"

// Examples with the given lengths and offsets; token t of example i is
// 1000*(i+1) + t, so any row can be traced back to its example.
static void make_examples(ct_examples *ex, const uint32_t *lens, const uint32_t *offs, size_t n) {
    memset(ex, 0, sizeof *ex);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    ex->tokens = malloc((total ? total : 1) * sizeof *ex->tokens);
    ex->items = calloc(n, sizeof *ex->items);
    ex->sources = malloc(sizeof *ex->sources);
    ex->sources[0] = strdup("mem.jsonl");
    ex->n_sources = 1;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        ex->items[i] = (ct_example){pos, lens[i], offs ? offs[i] : 0, 0, (uint32_t)(i + 1)};
        for (uint32_t t = 0; t < lens[i]; t++)
            ex->tokens[pos++] = (int32_t)(1000 * (i + 1) + t);
    }
    ex->n = ex->cap = n;
    ex->n_tokens = ex->cap_tokens = total;
}

static ct_batch_options opts(size_t bs, int64_t max_seq, bool shuffle, bool loop) {
    return (ct_batch_options){bs, max_seq, 7, shuffle, loop, 0, 1};
}

TEST(batching_sorted_consecutive_batches_and_widths) {
    ct_error err;
    uint32_t lens[] = {50, 3, 40, 7, 33, 10, 64, 2, 5};
    ct_examples ex;
    make_examples(&ex, lens, NULL, 9);
    ct_batcher b;
    ct_batch_options o = opts(2, 2048, false, false);
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err);
    // Sorted lengths: 2 3 5 7 10 33 40 50 64 -> batches {2,3} {5,7} {10,33} {40,50}; 64 dropped.
    size_t want_ex[4][2] = {{7, 1}, {8, 3}, {5, 4}, {2, 0}};
    size_t want_w[4] = {33, 33, 65, 65};
    ct_batch batch;
    bool done;
    for (int k = 0; k < 4; k++) {
        CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
        CHECK(!done);
        CHECK_EQ(batch.rows, 2);
        CHECK_EQ(batch.examples[0], want_ex[k][0]);
        CHECK_EQ(batch.examples[1], want_ex[k][1]);
        CHECK_EQ(batch.width, want_w[k]);
        CHECK_EQ(batch.tokens[0], (int32_t)(1000 * (want_ex[k][0] + 1)));
    }
    CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
    CHECK(done);
    ct_batcher_free(&b);
    // Width rule edge: max length 32 -> 33, 33 -> 65; max_seq_length caps it.
    uint32_t lens2[] = {32, 33};
    ct_examples ex2;
    make_examples(&ex2, lens2, NULL, 2);
    o = opts(1, 40, false, false);
    CHECK_OK(ct_batcher_init(&b, &ex2, &o, &err), &err);
    CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
    CHECK_EQ(batch.width, 33);
    CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
    CHECK_EQ(batch.width, 40);
    ct_batcher_free(&b);
    ct_examples_free(&ex2);
    ct_examples_free(&ex);
}

TEST(batching_mask_excludes_pad_and_clamps_offsets) {
    ct_error err;
    // Row 0: 5 tokens, offset 0 -> targets at positions 1..4 (columns 0..3), not the pad.
    // Row 1: 6 tokens, offset 3 -> targets at positions 3..5 (columns 2..4).
    uint32_t lens[] = {5, 6}, offs[] = {0, 3};
    ct_examples ex;
    make_examples(&ex, lens, offs, 2);
    ct_batcher b;
    ct_batch_options o = opts(2, 2048, false, false);
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err);
    ct_batch batch;
    bool done;
    CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
    CHECK_EQ(batch.width, 33);
    size_t tw = batch.width - 1;
    float row0[8] = {1, 1, 1, 1, 0, 0, 0, 0}, row1[8] = {0, 0, 1, 1, 1, 0, 0, 0};
    for (size_t t = 0; t < 8; t++) {
        CHECK_MSG(batch.mask[t] == row0[t], "row 0 column %zu", t);
        CHECK_MSG(batch.mask[tw + t] == row1[t], "row 1 column %zu", t);
    }
    float sum = 0;
    for (size_t i = 0; i < batch.rows * tw; i++)
        sum += batch.mask[i];
    CHECK_EQ((int64_t)sum, 7);
    CHECK_EQ(batch.n_targets, 7);
    CHECK(batch.lengths[0] == 5 && batch.offsets[0] == 1 && batch.offsets[1] == 3);
    CHECK_EQ(batch.tokens[5], 0); // pad id
    CHECK_EQ(batch.tokens[batch.width + 5], 2005); // example 1, token 5
    ct_batcher_free(&b);
    ct_examples_free(&ex);
    // Truncation: a prompt longer than max_seq_length clamps to the kept
    // length: an empty row, not NaN, and one warning however often it is drawn.
    uint32_t lens3[] = {64}, offs3[] = {50};
    make_examples(&ex, lens3, offs3, 1);
    o = opts(1, 40, false, true);
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err);
    ct_log_level level = ct_log_get_level();
    ct_log_set_level(CT_LOG_QUIET);
    for (int k = 0; k < 3; k++)
        CHECK_OK(ct_batcher_next(&b, &batch, &done, &err), &err);
    ct_log_set_level(level);
    CHECK_EQ(batch.width, 40);
    CHECK_EQ(batch.lengths[0], 40);
    CHECK_EQ(batch.offsets[0], 40);
    CHECK_EQ(batch.n_targets, 0);
    CHECK_EQ(b.warned[0], 1);
    ct_batcher_free(&b);
    ct_examples_free(&ex);
}

static void collect(ct_batcher *b, size_t n, size_t *first_rows) {
    ct_error err;
    ct_batch batch;
    bool done;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(ct_batcher_next(b, &batch, &done, &err), &err);
        first_rows[i] = batch.examples[0];
    }
}

TEST(batching_seeded_order_is_a_permutation_and_deterministic) {
    ct_error err;
    enum { N = 64 };
    uint32_t lens[N];
    for (int i = 0; i < N; i++)
        lens[i] = (uint32_t)(1 + (i * 37) % 100);
    ct_examples ex;
    make_examples(&ex, lens, NULL, N);
    ct_batch_options o = opts(4, 2048, true, true);
    ct_batcher a, b;
    CHECK_OK(ct_batcher_init(&a, &ex, &o, &err), &err);
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err);
    size_t ra[48], rb[48];
    collect(&a, 48, ra);
    collect(&b, 48, rb);
    CHECK(memcmp(ra, rb, sizeof ra) == 0);
    // Each epoch (16 batches) visits every batch once; epochs differ in order.
    int seen[N] = {0};
    for (int i = 0; i < 16; i++)
        seen[ra[i]]++;
    int distinct = 0;
    for (int i = 0; i < N; i++)
        distinct += seen[i];
    CHECK_EQ(distinct, 16);
    CHECK(memcmp(ra, ra + 16, 16 * sizeof ra[0]) != 0);
    bool sorted_order = true; // shuffled: not the length order
    for (int i = 1; i < 16; i++)
        sorted_order &= lens[ra[i]] >= lens[ra[i - 1]];
    CHECK(!sorted_order);
    ct_batcher_free(&b);
    o.seed = 8;
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err);
    collect(&b, 16, rb);
    CHECK(memcmp(ra, rb, 16 * sizeof ra[0]) != 0);
    ct_batcher_free(&a);
    ct_batcher_free(&b);
    ct_examples_free(&ex);
}

TEST(batching_resume_from_saved_position_is_exact) {
    ct_error err;
    enum { N = 40 };
    uint32_t lens[N];
    for (int i = 0; i < N; i++)
        lens[i] = (uint32_t)(2 + (i * 53) % 90);
    ct_examples ex;
    make_examples(&ex, lens, NULL, N);
    ct_batch_options o = opts(4, 2048, true, true);
    ct_batcher a, b;
    CHECK_OK(ct_batcher_init(&a, &ex, &o, &err), &err);
    size_t skip[23], rest_a[30], rest_b[30];
    collect(&a, 23, skip); // past the end of epoch 0 (10 batches) and 1
    ct_batch_position pos = ct_batcher_tell(&a);
    CHECK(pos.epoch == 2 && pos.index == 3);
    collect(&a, 30, rest_a);
    CHECK_OK(ct_batcher_init(&b, &ex, &o, &err), &err); // a fresh process
    CHECK_OK(ct_batcher_seek(&b, pos, &err), &err);
    collect(&b, 30, rest_b);
    CHECK(memcmp(rest_a, rest_b, sizeof rest_a) == 0);
    ct_batch_position bad = {0, 11};
    CHECK_FAILS(ct_batcher_seek(&b, bad, &err), &err, "past the 10 batches");
    ct_batcher_free(&a);
    ct_batcher_free(&b);
    ct_examples_free(&ex);
}

TEST(batching_rank_sharding) {
    ct_error err;
    uint32_t lens[] = {9, 1, 8, 2, 7, 3, 6, 4};
    ct_examples ex;
    make_examples(&ex, lens, NULL, 8);
    ct_batch_options o = opts(4, 2048, false, false);
    o.world_size = 2;
    ct_batcher r0, r1;
    CHECK_OK(ct_batcher_init(&r0, &ex, &o, &err), &err);
    o.rank = 1;
    CHECK_OK(ct_batcher_init(&r1, &ex, &o, &err), &err);
    ct_batch b0, b1;
    bool done;
    CHECK_OK(ct_batcher_next(&r0, &b0, &done, &err), &err);
    CHECK_OK(ct_batcher_next(&r1, &b1, &done, &err), &err);
    // Sorted lengths 1 2 3 4 | 6 7 8 9: batch 0 = examples 1 3 5 7; rank 0 gets rows 0, 2.
    CHECK_EQ(b0.rows, 2);
    CHECK(b0.examples[0] == 1 && b0.examples[1] == 5);
    CHECK(b1.examples[0] == 3 && b1.examples[1] == 7);
    ct_batcher_free(&r0);
    ct_batcher_free(&r1);
    o = opts(3, 2048, false, false);
    o.world_size = 2;
    CHECK_FAILS(ct_batcher_init(&r0, &ex, &o, &err), &err, "The batch size must be divisible by the number of workers");
    o = opts(9, 2048, false, false);
    CHECK_FAILS(ct_batcher_init(&r0, &ex, &o, &err), &err, "Dataset must have at least batch_size=9 examples but only has 8.");
    ct_examples_free(&ex);
}
