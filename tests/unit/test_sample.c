// test_sample.c: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeding.
#include <stdlib.h>

#include "ctune/sample.h"
#include "harness.h"

// Draws n samples from logits (copied each time) and counts each id.
static void histogram(const ct_sampler_params *p, const float *logits, int V, int n, int *counts) {
    ct_sampler s;
    ct_error err;
    if (ct_sampler_init(&s, p, V, &err) != CT_OK)
        return;
    float *row = malloc(sizeof(float) * (size_t)V);
    memset(counts, 0, sizeof(int) * (size_t)V);
    for (int i = 0; i < n; i++) {
        memcpy(row, logits, sizeof(float) * (size_t)V);
        counts[ct_sampler_next(&s, row, NULL, 0)]++;
    }
    free(row);
    ct_sampler_free(&s);
}

// probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625
static const float L5[5] = {0.6931472f, 0.0f, -0.6931472f, -1.3862944f, -1.3862944f};

TEST(sample_greedy_is_argmax) {
    ct_sampler_params p = {0};
    int c[5];
    histogram(&p, L5, 5, 10, c);
    CHECK_EQ(c[0], 10);
    float tie[3] = {1, 3, 3};
    ct_sampler s;
    ct_error err;
    CHECK_OK(ct_sampler_init(&s, &p, 3, &err), &err);
    CHECK_EQ(ct_sampler_next(&s, tie, NULL, 0), 1);
    ct_sampler_free(&s);
}

TEST(sample_temperature_one_follows_softmax) {
    ct_sampler_params p = {.temp = 1.0f, .seed = 7};
    int c[5], n = 40000;
    histogram(&p, L5, 5, n, c);
    const double want[5] = {0.5, 0.25, 0.125, 0.0625, 0.0625};
    for (int i = 0; i < 5; i++)
        CHECK_NEAR((double)c[i] / n, want[i], 0.01);
}

TEST(sample_low_temperature_sharpens) {
    ct_sampler_params p = {.temp = 0.25f, .seed = 3};
    int c[5], n = 20000;
    histogram(&p, L5, 5, n, c);
    // p ~ softmax(logits * 4): 0.5^4 : 0.25^4 ... -> 16/17.1 for the first
    double w0 = 1.0, w1 = pow(0.5, 4), w2 = pow(0.25, 4), w3 = pow(0.125, 4);
    double tot = w0 + w1 + w2 + 2 * w3;
    CHECK_NEAR((double)c[0] / n, w0 / tot, 0.01);
}

TEST(sample_top_k) {
    ct_sampler_params p = {.temp = 1.0f, .top_k = 2, .seed = 5};
    int c[5], n = 30000;
    histogram(&p, L5, 5, n, c);
    CHECK_EQ(c[2] + c[3] + c[4], 0);
    CHECK_NEAR((double)c[0] / n, 2.0 / 3.0, 0.01);
}

TEST(sample_top_p) {
    // top_p 0.7: 0.5 < 0.7, 0.5 + 0.25 >= 0.7 -> keep the first two
    ct_sampler_params p = {.temp = 1.0f, .top_p = 0.7f, .seed = 9};
    int c[5], n = 30000;
    histogram(&p, L5, 5, n, c);
    CHECK_EQ(c[2] + c[3] + c[4], 0);
    CHECK_NEAR((double)c[1] / n, 1.0 / 3.0, 0.01);
    p.top_p = 0.8f; // needs the third as well
    histogram(&p, L5, 5, n, c);
    CHECK(c[2] > 0);
    CHECK_EQ(c[3] + c[4], 0);
}

TEST(sample_min_p) {
    // min_p 0.3: threshold 0.15 keeps 0.5 and 0.25
    ct_sampler_params p = {.temp = 1.0f, .min_p = 0.3f, .seed = 11};
    int c[5], n = 20000;
    histogram(&p, L5, 5, n, c);
    CHECK_EQ(c[2] + c[3] + c[4], 0);
    CHECK(c[1] > 0);
}

TEST(sample_repetition_penalty) {
    ct_sampler_params p = {.repetition_penalty = 2.0f};
    ct_sampler s;
    ct_error err;
    CHECK_OK(ct_sampler_init(&s, &p, 4, &err), &err);
    float logits[4] = {3.0f, 2.0f, -1.0f, 1.0f};
    int32_t hist[3] = {0, 2, 0};
    CHECK_EQ(ct_sampler_next(&s, logits, hist, 3), 1);
    CHECK_NEAR(logits[0], 1.5, 1e-6); // penalised once even though repeated
    CHECK_NEAR(logits[2], -2.0, 1e-6);
    CHECK_NEAR(logits[3], 1.0, 1e-6);
    // only the last repetition_context tokens count
    s.p.repetition_context = 1;
    float l2[4] = {3.0f, 2.0f, -1.0f, 1.0f};
    int32_t h2[2] = {0, 3};
    ct_sampler_next(&s, l2, h2, 2);
    CHECK_NEAR(l2[0], 3.0, 1e-6);
    CHECK_NEAR(l2[3], 0.5, 1e-6);
    ct_sampler_free(&s);
}

TEST(sample_seed_reproducible) {
    ct_sampler_params p = {.temp = 1.0f, .seed = 42};
    int a[5], b[5];
    histogram(&p, L5, 5, 100, a);
    histogram(&p, L5, 5, 100, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    p.seed = 43;
    ct_sampler s1, s2;
    ct_error err;
    p.seed = 1;
    CHECK_OK(ct_sampler_init(&s1, &p, 5, &err), &err);
    p.seed = 2;
    CHECK_OK(ct_sampler_init(&s2, &p, 5, &err), &err);
    int same = 0;
    for (int i = 0; i < 20; i++)
        same += ct_sampler_uniform(&s1) == ct_sampler_uniform(&s2);
    ct_sampler_free(&s1);
    ct_sampler_free(&s2);
    CHECK(same < 20);
}

TEST(sample_is_eos) {
    int64_t eos[3] = {2, 7, 9};
    CHECK(ct_is_eos(7, eos, 3));
    CHECK(ct_is_eos(9, eos, 3));
    CHECK(!ct_is_eos(3, eos, 3));
    CHECK(!ct_is_eos(2, eos, 0));
}
