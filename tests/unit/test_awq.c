// test_awq.c: AWQ's pieces (src/quant/awq.c): scale folding keeps a layer's
// float function, the scale search beats plain RTN when a few input channels
// carry large activations, the clip search never raises the loss it
// minimises; and the driver writes the rescaled norms.
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "ctune/awq.h"
#include "ctune/fs.h"
#include "ctune/model.h"
#include "harness.h"

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}
static float rng_uniform(uint64_t *s) { return (float)(rng_next(s) >> 11) / 9007199254740992.0f; }
static float rng_normal(uint64_t *s) { // sum of uniforms: close enough to a Gaussian here
    float t = 0;
    for (int i = 0; i < 12; i++)
        t += rng_uniform(s);
    return t - 6.0f;
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *max_b) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    *max_b = m;
    return d;
}

TEST(awq_grid_scale_and_mean_abs) {
    float x[6] = {1, -4, 0, -3, 8, 0}, xbar[3], s[3];
    ct_awq_mean_abs(x, 2, 3, xbar); // rows (1, -4, 0), (-3, 8, 0)
    CHECK_NEAR(xbar[0], 2.0, 1e-7);
    CHECK_NEAR(xbar[1], 6.0, 1e-7);
    CHECK_NEAR(xbar[2], 0.0, 1e-7);
    ct_awq_grid_scale(xbar, 3, 0.0, s); // alpha 0: plain RTN
    CHECK_NEAR(s[0], 1.0, 1e-7);
    CHECK_NEAR(s[2], 1.0, 1e-7);
    ct_awq_grid_scale(xbar, 3, 0.5, s); // sqrt(xbar), floor 1e-4, / sqrt(max * min)
    double norm = sqrt(sqrt(6.0) * 1e-4);
    CHECK_NEAR(s[0], sqrt(2.0) / norm, 1e-3);
    CHECK_NEAR(s[1], sqrt(6.0) / norm, 1e-3);
    CHECK_NEAR(s[2], 1e-4 / norm, 1e-6);
}

// Layer 0 of a fixture model on random input (B, T, C): scale folding alone
// (random scales in every group) leaves the output unchanged to ~1e-5; folding
// into the linears without the norm (a bug) does not.
static void check_folding(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", ct_test_fixture("models"), name);
    ct_error err = {0};
    ct_backend *be = NULL;
    ct_model m;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    CHECK_OK(ct_model_load(&m, dir, be, &err), &err);
    enum { B = 2, T = 8 };
    int C = m.C;
    ct_kv_cache kv;
    CHECK_OK(ct_kv_cache_init(&kv, &m, B, T, &err), &err);
    size_t n = (size_t)B * T * (size_t)C;
    float *x = malloc(sizeof(float) * n), *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n);
    float *y2 = malloc(sizeof(float) * n), *y3 = malloc(sizeof(float) * n), *s = malloc(sizeof(float) * 4096);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal(&seed);
    for (int i = 0; i < 4096; i++)
        s[i] = expf(3.0f * rng_uniform(&seed) - 1.5f); // 0.22 .. 4.5
    memcpy(y0, x, sizeof(float) * n);
    ct_status st = ct_model_layer_forward(&m, &kv, 0, y0, B, T, &err);
    ct_awq_layer L;
    ct_status st2 = ct_awq_layer_open(&L, &m, 0, CT_F32, &err);
    if (st == CT_OK && st2 == CT_OK) {
        for (int g = 0; g < CT_AWQ_N_GROUPS; g++)
            ct_awq_fold_scale(&L, (ct_awq_group)g, s);
        ct_awq_layer_sync(&L);
        memcpy(y1, x, sizeof(float) * n);
        st = ct_model_layer_forward(&m, &kv, 0, y1, B, T, &err);
        for (int64_t c = 0; c < L.in[CT_LIN_Q]; c++) // undo the norm's part only: a broken fold
            L.attn_norm[c] *= s[c];
        ct_awq_layer_sync(&L);
        memcpy(y2, x, sizeof(float) * n);
        if (st == CT_OK)
            st = ct_model_layer_forward(&m, &kv, 0, y2, B, T, &err);
        ct_awq_layer_close(&L); // the model's own weights and norms again
        memcpy(y3, x, sizeof(float) * n);
        if (st == CT_OK)
            st = ct_model_layer_forward(&m, &kv, 0, y3, B, T, &err);
    }
    double mx, d1 = max_abs_diff(y1, y0, (int64_t)n, &mx), d2 = max_abs_diff(y2, y0, (int64_t)n, &mx);
    double d3 = max_abs_diff(y3, y0, (int64_t)n, &mx);
    free(x), free(y0), free(y1), free(y2), free(y3), free(s);
    ct_kv_cache_free(&kv, &m);
    ct_model_free(&m);
    ct_backend_destroy(be);
    CHECK_OK(st2, &err);
    CHECK_OK(st, &err);
    CHECK_MSG(d1 <= 1e-5 * fmax(1.0, mx), "%s: folded layer differs by %g (max |y| %g)", name, d1, mx);
    CHECK_MSG(d2 > 1e-2 * fmax(1.0, mx), "%s: a fold without the norm should differ (%g)", name, d2);
    CHECK_MSG(d3 == 0.0, "%s: after close the layer differs by %g", name, d3);
}

TEST(awq_scale_folding_keeps_layer_output_llama) { check_folding("llama_default"); }
TEST(awq_scale_folding_keeps_layer_output_qwen2_bias) { check_folding("qwen2"); }
TEST(awq_scale_folding_keeps_layer_output_qwen3_qk_norm) { check_folding("qwen3"); }
TEST(awq_scale_folding_keeps_layer_output_gemma3_offset_norms) { check_folding("gemma3"); }

// A linear y = x W^T whose input has a few large channels.
enum { SN = 512, SIN = 256, SROWS = 64, SG = 64, SBITS = 3 };
typedef struct lin_case {
    float *x, *w, *y, *wq, *yq;
} lin_case;

static double lin_output_error(lin_case *c, const float *wq) {
    double e = 0;
    for (int n = 0; n < SN; n++)
        for (int r = 0; r < SROWS; r++) {
            double a = 0, b = 0;
            for (int i = 0; i < SIN; i++) {
                a += (double)c->x[n * SIN + i] * c->w[r * SIN + i];
                b += (double)c->x[n * SIN + i] * wq[r * SIN + i];
            }
            e += (a - b) * (a - b);
        }
    return e / (SN * SROWS);
}

static ct_status lin_loss(void *ctx, const float *s, double *loss, ct_error *err) {
    lin_case *c = ctx;
    CT_TRY(ct_awq_fake_quant(c->w, SROWS, SIN, s, SBITS, SG, CT_F32, c->wq, err));
    *loss = lin_output_error(c, c->wq);
    return CT_OK;
}

TEST(awq_scale_search_beats_rtn_with_large_channels) {
    lin_case c = {malloc(sizeof(float) * SN * SIN), malloc(sizeof(float) * SROWS * SIN), NULL,
                  malloc(sizeof(float) * SROWS * SIN), NULL};
    uint64_t seed = 42;
    for (int n = 0; n < SN; n++)
        for (int i = 0; i < SIN; i++) // channels 5, 77, 130, 200 are 30x larger
            c.x[n * SIN + i] = rng_normal(&seed) * (i == 5 || i == 77 || i == 130 || i == 200 ? 30.0f : 1.0f);
    for (int i = 0; i < SROWS * SIN; i++)
        c.w[i] = 0.05f * rng_normal(&seed);
    float xbar[SIN], best[SIN];
    ct_awq_mean_abs(c.x, SN, SIN, xbar);
    ct_error err = {0};
    double rtn = 0, best_loss = 0;
    ct_status st = lin_loss(&c, NULL, &rtn, &err);
    if (st == CT_OK)
        st = ct_awq_search_scale(xbar, SIN, 20, lin_loss, &c, best, &best_loss, &err);
    free(c.x), free(c.w), free(c.wq);
    CHECK_OK(st, &err);
    CHECK_MSG(best_loss < 0.5 * rtn, "AWQ output error %g should be well below RTN's %g", best_loss, rtn);
    CHECK_MSG(best[5] > 2 * best[6], "the large channel's scale %g should exceed a small one's %g", best[5], best[6]);
}

// The chunk loss ct_awq_clip minimises, per (row, group): mean over rows b
// of x (N, in) of (sum_k x[b,g,k] (w - Q(w))[o,g,k])^2 -> loss (rows, in/g).
static void group_losses(const float *x, int N, const float *w, int rows, int in, int g, float *loss) {
    float *wq = malloc(sizeof(float) * (size_t)rows * (size_t)in);
    ct_error err = {0};
    ct_awq_fake_quant(w, rows, in, NULL, SBITS, g, CT_F32, wq, &err);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < in / g; k++) {
            double e = 0;
            for (int b = 0; b < N; b++) {
                double d = 0;
                for (int i = k * g; i < (k + 1) * g; i++)
                    d += (double)x[b * in + i] * ((double)w[r * in + i] - wq[r * in + i]);
                e += d * d;
            }
            loss[r * (in / g) + k] = (float)(e / N);
        }
    free(wq);
}

TEST(awq_clip_never_increases_the_chunk_loss) {
    enum { N = 300, IN = 128, ROWS = 80, G = 32 }; // 80 rows: a full chunk of 64 and a partial one
    float *x = malloc(sizeof(float) * N * IN), *w = malloc(sizeof(float) * ROWS * IN);
    float *w0 = malloc(sizeof(float) * ROWS * IN), before[ROWS * IN / G], after[ROWS * IN / G];
    uint64_t seed = 7;
    for (int i = 0; i < N * IN; i++)
        x[i] = rng_normal(&seed);
    for (int i = 0; i < ROWS * IN; i++) { // heavy tails: clipping the rare large weights pays
        float z = rng_normal(&seed);
        w[i] = rng_uniform(&seed) < 0.03f ? 6.0f * z : z;
    }
    memcpy(w0, w, sizeof(float) * ROWS * IN);
    ct_error err = {0};
    ct_status st = ct_awq_clip(w, ROWS, IN, x, N, SBITS, G, CT_F32, 20, &err);
    group_losses(x, N, w0, ROWS, IN, G, before);
    group_losses(x, N, w, ROWS, IN, G, after);
    int clipped = 0, worse = 0;
    double sum_before = 0, sum_after = 0;
    for (int i = 0; i < ROWS * IN / G; i++) {
        worse += after[i] > before[i] * (1 + 1e-5f);
        sum_before += before[i], sum_after += after[i];
    }
    for (int i = 0; i < ROWS * IN; i++)
        clipped += w[i] != w0[i];
    free(x), free(w), free(w0);
    CHECK_OK(st, &err);
    CHECK_MSG(worse == 0, "%d groups got a higher loss after clipping", worse);
    CHECK_MSG(clipped > 0 && sum_after < 0.95 * sum_before, "clipping should lower the loss (%g -> %g, %d clipped)",
              sum_before, sum_after, clipped);
}

TEST(awq_clip_rejects_a_bad_group_size) {
    float w[64] = {0}, x[64] = {0};
    ct_error err = {0};
    CHECK_FAILS(ct_awq_clip(w, 1, 64, x, 1, 4, 48, CT_F32, 20, &err), &err, "group");
}

// The whole driver on the tiny chat model: the norms in the output are the rescaled ones.
TEST(awq_writes_rescaled_norms) {
    char out[600];
    snprintf(out, sizeof out, "%s/awq_chat", ct_test_tmpdir());
    ct_awq_opts o = {.model = ct_test_fixture("chat_model"), .mlx_path = out, .bits = 4, .group_size = 32,
                     .embed_bits = 4, .embed_group_size = 32, .n_grid = 10,
                     .calib = {.data = "README.md", .num_samples = 4, .sequence_length = 32, .seed = 1}};
    ct_error err = {0};
    ct_awq_stats s;
    CHECK_OK(ct_awq(&o, &s, &err), &err);
    CHECK_EQ(s.n_layers, 2);
    CHECK_EQ(s.n_sequences, 4);
    CHECK_EQ(s.convert.n_quantized, 15); // 14 linears and the (tied) embedding
    ct_backend *be = NULL;
    ct_model a, b;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    CHECK_OK(ct_model_load(&a, o.model, be, &err), &err);
    CHECK_OK(ct_model_load(&b, out, be, &err), &err);
    float na[64], nb[64];
    be->download(be, na, a.layers[1].attn_norm, sizeof(float) * (size_t)a.C);
    be->download(be, nb, b.layers[1].attn_norm, sizeof(float) * (size_t)a.C);
    int changed = 0;
    for (int c = 0; c < a.C; c++)
        changed += fabsf(na[c] - nb[c]) > 1e-6f * fabsf(na[c]);
    CHECK_EQ(b.layers[1].lin[CT_LIN_Q].w.bits, 4);
    ct_model_free(&a);
    ct_model_free(&b);
    ct_backend_destroy(be);
    CHECK_MSG(changed > 0 || s.n_fallback == 2, "input_layernorm of layer 1 was not rescaled");
}

// gemma3: the MLP's input norm is pre_feedforward_layernorm (ffn_norm); its
// post_attention_layernorm (post_attn_norm) normalizes the attention output
// and must come out unchanged.
TEST(awq_gemma3_rescales_the_right_norms) {
    char out[600];
    snprintf(out, sizeof out, "%s/awq_gemma", ct_test_tmpdir());
    ct_awq_opts o = {.model = ct_test_fixture("gemma_chat_model"), .mlx_path = out, .bits = 4, .group_size = 32,
                     .embed_bits = 4, .embed_group_size = 32, .n_grid = 10, .dtype = "float32",
                     .calib = {.data = "README.md", .num_samples = 4, .sequence_length = 32, .seed = 1}};
    ct_error err = {0};
    ct_awq_stats s;
    CHECK_OK(ct_awq(&o, &s, &err), &err);
    ct_backend *be = NULL;
    ct_model a, b;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    CHECK_OK(ct_model_load(&a, o.model, be, &err), &err);
    CHECK_OK(ct_model_load(&b, out, be, &err), &err);
    int changed_pre = 0, changed_post = 0;
    for (int l = 0; l < a.L; l++) {
        float x[64], y[64];
        be->download(be, x, a.layers[l].ffn_norm, sizeof(float) * (size_t)a.C);
        be->download(be, y, b.layers[l].ffn_norm, sizeof(float) * (size_t)a.C);
        for (int c = 0; c < a.C; c++)
            changed_pre += x[c] != y[c];
        be->download(be, x, a.layers[l].post_attn_norm, sizeof(float) * (size_t)a.C);
        be->download(be, y, b.layers[l].post_attn_norm, sizeof(float) * (size_t)a.C);
        for (int c = 0; c < a.C; c++)
            changed_post += x[c] != y[c];
    }
    ct_model_free(&a);
    ct_model_free(&b);
    ct_backend_destroy(be);
    CHECK_MSG(changed_pre > 0 || s.n_fallback == 2, "pre_feedforward_layernorm was not rescaled");
    CHECK_EQ(changed_post, 0);
}
