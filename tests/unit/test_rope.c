// Unit tests for RoPE: inverse frequencies and attention scaling of every
// variant against transformers' ROPE_INIT_FUNCTIONS, and the rotation
// against LlamaRotaryEmbedding + apply_rotary_pos_emb (tools/make_ops_fixtures.py).
#include "ctune/backend.h"
#include "ctune/rope.h"
#include "harness.h"
#include "test_ops_fixture.h"

enum { D = 32, B = 1, T = 6, H = 2, OFF = 97, N = B * T * H * D };

typedef struct rope_case {
    const char *name;
    ct_rope_params p;
    int seq_len;
} rope_case;

static double rope_case_error(const fx_file *f, ct_backend *be, const rope_case *c, double *freq_err) {
    char key[64];
    float inv[D / 2], scaling, out[N];
    ct_error err = {0};
    if (ct_rope_init(&c->p, c->seq_len, inv, &scaling, &err) != CT_OK) {
        fprintf(stderr, "%s: %s\n", c->name, err.msg);
        return INFINITY;
    }
    int half = ct_rope_rot_dims(&c->p) / 2;
    snprintf(key, sizeof key, "%s_inv_freq", c->name);
    const float *rf = fx_get(f, key, "F32", half);
    snprintf(key, sizeof key, "%s_scaling", c->name);
    const float *rs = fx_get(f, key, "F32", 1);
    snprintf(key, sizeof key, "%s_out", c->name);
    const float *ro = fx_get(f, key, "F32", N);
    const float *q = fx_get(f, "q", "F32", N);
    if (!rf || !rs || !ro || !q)
        return INFINITY;
    *freq_err = fx_rel_err(inv, rf, half);
    double se = fabs(scaling - rs[0]) / rs[0];
    *freq_err = se > *freq_err ? se : *freq_err;
    memcpy(out, q, sizeof out);
    be->rope_forward(be, out, out, inv, scaling, B, T, H, D, 2 * half, OFF); // in place
    return fx_rel_err(out, ro, N);
}

TEST(rope_all_variants_match_transformers) {
    fx_file f;
    ct_backend *be;
    ct_error err;
    CHECK(fx_open(&f, "rope.safetensors"));
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    const float *lf32 = fx_get(&f, "long_factor", "F32", D / 2), *sf32 = fx_get(&f, "short_factor", "F32", D / 2);
    CHECK(lf32 && sf32);
    double lf[D / 2], sf[D / 2];
    for (int i = 0; i < D / 2; i++)
        lf[i] = lf32[i], sf[i] = sf32[i];
    ct_rope_params base = {.theta = 10000, .head_dim = D, .max_position_embeddings = 256};
    rope_case cases[9];
    for (int i = 0; i < 9; i++)
        cases[i].p = base, cases[i].seq_len = 103;
    cases[0].name = "default";
    cases[1].name = "partial", cases[1].p.partial_rotary_factor = 0.5;
    cases[2].name = "linear", cases[2].p.type = CT_ROPE_LINEAR, cases[2].p.factor = 4;
    cases[3].name = "dynamic", cases[3].p.type = CT_ROPE_DYNAMIC, cases[3].p.factor = 2;
    cases[3].p.max_position_embeddings = 64;
    cases[4].name = "llama3", cases[4].p.type = CT_ROPE_LLAMA3, cases[4].p.factor = 8;
    cases[4].p.low_freq_factor = 1, cases[4].p.high_freq_factor = 4, cases[4].p.original_max_position_embeddings = 64;
    cases[5].name = "yarn", cases[5].p.type = CT_ROPE_YARN, cases[5].p.factor = 4;
    cases[5].p.original_max_position_embeddings = 64, cases[5].p.beta_fast = 32, cases[5].p.beta_slow = 1;
    cases[6].name = "yarn_mscale", cases[6].p.type = CT_ROPE_YARN, cases[6].p.factor = 8;
    cases[6].p.original_max_position_embeddings = 64, cases[6].p.mscale = 0.707, cases[6].p.mscale_all_dim = 1;
    for (int i = 7; i < 9; i++) {
        cases[i].p.type = CT_ROPE_LONGROPE, cases[i].p.original_max_position_embeddings = 64;
        cases[i].p.long_factor = lf, cases[i].p.short_factor = sf;
    }
    cases[7].name = "longrope";
    cases[8].name = "longrope_short", cases[8].seq_len = 50;
    for (int i = 0; i < 9; i++) {
        double fe = INFINITY, e = rope_case_error(&f, be, &cases[i], &fe);
        CHECK_MSG(fe <= 1e-6, "%s: inv_freq/scaling rel err %g", cases[i].name, fe);
        CHECK_MSG(e <= 1e-5, "%s: rotated q rel err %g", cases[i].name, e);
    }
    ct_backend_destroy(be);
    fx_close(&f);
}

TEST(rope_dynamic_unscaled_within_max_positions) {
    ct_rope_params d = {.type = CT_ROPE_DYNAMIC, .theta = 10000, .head_dim = 16, .factor = 2,
                        .max_position_embeddings = 64};
    ct_rope_params p = {.theta = 10000, .head_dim = 16};
    float a[8], b[8], sa, sb;
    ct_error err;
    CHECK_OK(ct_rope_init(&d, 10, a, &sa, &err), &err);
    CHECK_OK(ct_rope_init(&p, 10, b, &sb, &err), &err);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(a[i], b[i], 0);
    CHECK_OK(ct_rope_init(&d, 200, a, &sa, &err), &err);
    CHECK(a[7] < b[7] * 0.5f);
}

TEST(rope_errors_name_the_field) {
    ct_rope_params p = {.type = CT_ROPE_LLAMA3, .theta = 10000, .head_dim = 16, .factor = 8};
    float f[8], s;
    ct_error err;
    CHECK_FAILS(ct_rope_init(&p, 1, f, &s, &err), &err, "original_max_position_embeddings");
    p.original_max_position_embeddings = 8192;
    CHECK_FAILS(ct_rope_init(&p, 1, f, &s, &err), &err, "low_freq_factor");
    p.type = CT_ROPE_LINEAR, p.factor = 0;
    CHECK_FAILS(ct_rope_init(&p, 1, f, &s, &err), &err, "factor");
    ct_rope_type t;
    CHECK(ct_rope_type_from_name("su", &t) && t == CT_ROPE_LONGROPE);
    CHECK(!ct_rope_type_from_name("mrope2", &t));
}
