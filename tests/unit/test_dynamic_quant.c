// Dynamic quantization (ctune quant dynamic): the bits-per-weight arithmetic
// against ct_convert's measured output, the threshold search, the
// sensitivities file, and the sensitivity formula against finite differences
// of the KL loss on the tiny chat model fixture.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/dynamic_quant.h"
#include "harness.h"

// A layout of n modules (rows, in) with 2-byte scales and no other tensors.
static void toy_layout(ct_dq_layout *lay, int n, int64_t rows, int64_t in) {
    memset(lay, 0, sizeof *lay);
    lay->n = n;
    lay->paths = calloc((size_t)n, sizeof *lay->paths);
    lay->rows = calloc((size_t)n, sizeof *lay->rows);
    lay->in = calloc((size_t)n, sizeof *lay->in);
    lay->sb_size = calloc((size_t)n, sizeof *lay->sb_size);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj", i);
        lay->paths[i] = strdup(name);
        lay->rows[i] = rows;
        lay->in[i] = in;
        lay->sb_size[i] = 2;
    }
}

TEST(dq_bpw_by_hand) {
    ct_dq_layout lay;
    toy_layout(&lay, 1, 128, 256);
    lay.fixed_bytes = 200, lay.fixed_params = 100;
    bool high = false;
    // 4-bit g64: 128*256/2 packed bytes + 2 * 128*4 f16 scales/biases.
    double want = 8.0 * (16384 + 2048 + 200) / (32768 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 64}, (ct_dq_setting){8, 32}), want, 1e-12);
    high = true; // 8-bit g32: 128*256 bytes + 2 * 2 * 128*8
    want = 8.0 * (32768 + 4096 + 200) / (32768 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 64}, (ct_dq_setting){8, 32}), want, 1e-12);
    high = false; // in not a multiple of 128: stays dense (2 bytes per weight)
    ct_dq_layout_free(&lay);
    toy_layout(&lay, 1, 128, 192);
    lay.fixed_bytes = 200, lay.fixed_params = 100;
    want = 8.0 * (128 * 192 * 2 + 200) / (128 * 192 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 128}, (ct_dq_setting){8, 32}), want, 1e-12);
    ct_dq_layout_free(&lay);
}

typedef struct { const ct_dq_layout *lay; const bool *high; ct_dq_setting lo, hi; } mix_ctx;

static ct_quant_spec mix_spec(void *ctx, const char *module, int64_t in, bool *override) {
    const mix_ctx *c = ctx;
    int i = ct_dq_layout_find(c->lay, module);
    (void)in;
    ct_quant_spec s = ct_dq_module_spec(c->lay, i < 0 ? 0 : i, i >= 0 && c->high[i], c->lo, c->hi);
    *override = i >= 0 && c->high[i];
    return s;
}

// The arithmetic equals what ct_convert writes, for mixed choices and dtypes.
TEST(dq_bpw_matches_convert) {
    const char *model = ct_test_fixture("chat_model");
    struct { const char *dtype; ct_dq_setting lo, hi; } cases[] = {
        {"float16", {2, 32}, {6, 32}},
        {"float32", {3, 64}, {8, 32}}, // g64: only down_proj (in 64) is quantized at the low setting
        {"bfloat16", {4, 32}, {5, 64}},
    };
    for (int c = 0; c < 3; c++) {
        ct_error err = {0};
        ct_dq_layout lay;
        CHECK_OK(ct_dq_layout_load(&lay, model, cases[c].dtype, &err), &err);
        CHECK_EQ(lay.n, 2 * 7 + 1); // 14 linears and the tied embedding
        CHECK(ct_dq_layout_find(&lay, "model.embed_tokens") >= 0);
        CHECK(ct_dq_layout_find(&lay, "lm_head") < 0);
        bool *high = calloc((size_t)lay.n, sizeof *high);
        for (int i = 0; i < lay.n; i += 2)
            high[i] = true;
        mix_ctx mc = {&lay, high, cases[c].lo, cases[c].hi};
        ct_convert_hook hook = {.ctx = &mc, .spec = mix_spec};
        char out[512];
        snprintf(out, sizeof out, "%s/dq_bpw_%d", ct_test_tmpdir(), c);
        ct_convert_opts o = {.model = model, .mlx_path = out, .quantize = true, .q_bits = cases[c].lo.bits,
                             .q_group_size = cases[c].lo.group_size, .dtype = cases[c].dtype, .hook = &hook};
        ct_convert_stats st;
        CHECK_OK(ct_convert(&o, &st, &err), &err);
        double mine = ct_dq_bpw(&lay, high, cases[c].lo, cases[c].hi);
        CHECK_NEAR(mine, st.bits_per_weight, 1e-12);
        CHECK(st.n_quantized > 0);
        free(high);
        ct_dq_layout_free(&lay);
    }
}

TEST(dq_layout_errors) {
    ct_error err = {0};
    ct_dq_layout lay;
    CHECK_FAILS(ct_dq_layout_load(&lay, ct_test_fixture("chat_model"), "float64", &err), &err, "--dtype");
    CHECK_FAILS(ct_dq_layout_load(&lay, ct_test_fixture("models/mlx_q4_g32"), NULL, &err), &err,
                "already quantized");
}

// Four equal modules at 4.5 bpw low (4-bit g64) and 8.5 high (8-bit g64).
TEST(dq_threshold_search) {
    ct_dq_layout lay;
    toy_layout(&lay, 4, 64, 64);
    double sens[4] = {3.0, 1.0, 4.0, 2.0};
    ct_dq_setting lo = {4, 64}, hi = {8, 64};
    ct_dq_split s;
    ct_error err = {0};
    CHECK_OK(ct_dq_threshold(&lay, sens, 6.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 2); // the two most sensitive
    CHECK_NEAR(s.bpw, 6.5, 1e-12);
    CHECK(s.threshold >= 2.0 && s.threshold < 3.0);
    CHECK_OK(ct_dq_threshold(&lay, sens, 7.4, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 2); // three would give 7.5
    CHECK_OK(ct_dq_threshold(&lay, sens, 7.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 3);
    CHECK(s.threshold >= 1.0 && s.threshold < 2.0);
    // Never over the target (mlx-lm's midpoint would make the top module high: 5.5 bpw).
    CHECK_OK(ct_dq_threshold(&lay, sens, 5.0, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 0);
    CHECK_NEAR(s.bpw, 4.5, 1e-12);
    CHECK_OK(ct_dq_threshold(&lay, sens, 5.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 1);
    CHECK_FAILS(ct_dq_threshold(&lay, sens, 4.0, lo, hi, &s, &err), &err, "4.5000 bits per weight all low");
    CHECK_FAILS(ct_dq_threshold(&lay, sens, 9.0, lo, hi, &s, &err), &err, "8.5000 all high");
    ct_dq_layout_free(&lay);
}

TEST(dq_sensitivities_file) {
    ct_dq_layout lay;
    toy_layout(&lay, 3, 64, 64);
    double sens[3] = {0.1 / 3.0, -2.5e-7, 12345.678901234567}, back[3] = {0};
    ct_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/dq_sens.json", ct_test_tmpdir());
    CHECK_OK(ct_dq_sens_save(path, &lay, sens, &err), &err);
    CHECK_OK(ct_dq_sens_load(path, &lay, back, &err), &err);
    for (int i = 0; i < 3; i++)
        CHECK(back[i] == sens[i]); // exact round trip
    struct { const char *text, *needle; } bad[] = {
        {"{\"a\": 1}", "expected a list of [module path, number] pairs, found an object"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], 3]", "entry 2: expected [module path, number], found a number"},
        {"[[\"model.layers.0.mlp.down_proj\", \"x\"]]", "entry 1: expected [module path, number]"},
        {"[[\"model.layers.9.mlp.down_proj\", 1]]", "entry 1: 'model.layers.9.mlp.down_proj' is not a quantizable"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], [\"model.layers.0.mlp.down_proj\", 2]]", "entry 2: "
                                                                                          "'model.layers.0.mlp.down_proj' appears twice"},
        {"[[\"model.layers.0.mlp.down_proj\", 1e999]]", "is not finite"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], [\"model.layers.2.mlp.down_proj\", 1]]",
         "no sensitivity for module 'model.layers.1.mlp.down_proj'"},
        {"[[\"model.layers.0.mlp.down_proj\", 1]", "bad.json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s", ct_test_write_tmp("bad.json", bad[i].text, strlen(bad[i].text)));
        CHECK_FAILS(ct_dq_sens_load(p, &lay, back, &err), &err, bad[i].needle);
        CHECK_CONTAINS(err.msg, "bad.json");
    }
    ct_dq_layout_free(&lay);
}

TEST(dq_default_path) {
    char p[256];
    ct_dq_sens_default_path("Qwen/Qwen3-0.6B-base", p, sizeof p);
    CHECK_STREQ(p, "Qwen_Qwen3-0.6B-base_sensitivities.json");
    ct_dq_sens_default_path("/work/smol-f32", p, sizeof p);
    CHECK_STREQ(p, "_work_smol-f32_sensitivities.json");
}
