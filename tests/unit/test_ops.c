// Unit tests for the CPU backend's forward kernels against torch /
// transformers references (tests/fixtures/ops/ops.safetensors, made by
// tools/make_ops_fixtures.py): relative max error 1e-5.
#include <stdlib.h>

#include "ctune/backend.h"
#include "harness.h"
#include "test_ops_fixture.h"

static const double TOL = 1e-5;

typedef struct env {
    fx_file f;
    ct_backend *be;
} env;

static int env_open(env *e) {
    ct_error err;
    if (!fx_open(&e->f, "ops.safetensors"))
        return 0;
    return ct_backend_cpu_create(&e->be, &err) == CT_OK;
}

static void env_close(env *e) {
    ct_backend_destroy(e->be);
    fx_close(&e->f);
}

TEST(ops_rmsnorm_llama_and_gemma) {
    env e;
    CHECK(env_open(&e));
    const float *x = fx_get(&e.f, "rms_x", "F32", 5 * 48), *w = fx_get(&e.f, "rms_w", "F32", 48);
    const float *rl = fx_get(&e.f, "rms_llama", "F32", 5 * 48), *rg = fx_get(&e.f, "rms_gemma", "F32", 5 * 48);
    CHECK(x && w && rl && rg);
    float out[5 * 48], rstd[5];
    e.be->rmsnorm_forward(e.be, out, rstd, x, w, 5, 48, 1e-6f, 0.0f);
    CHECK_MSG(fx_rel_err(out, rl, 5 * 48) <= TOL, "llama %g", fx_rel_err(out, rl, 5 * 48));
    e.be->rmsnorm_forward(e.be, out, NULL, x, w, 5, 48, 1e-6f, 1.0f);
    CHECK_MSG(fx_rel_err(out, rg, 5 * 48) <= TOL, "gemma %g", fx_rel_err(out, rg, 5 * 48));
    env_close(&e);
}

static void attention_case(env *e, const char *name, ct_attn_params p) {
    char k1[64], k2[64], k3[64], k4[64];
    int64_t nq = (int64_t)p.B * p.T * p.H * p.D, nk = (int64_t)p.B * p.kv_stride * p.KVH * p.D;
    snprintf(k1, sizeof k1, "%s_q", name);
    snprintf(k2, sizeof k2, "%s_k", name);
    snprintf(k3, sizeof k3, "%s_v", name);
    snprintf(k4, sizeof k4, "%s_out", name);
    const float *q = fx_get(&e->f, k1, "F32", nq), *k = fx_get(&e->f, k2, "F32", nk);
    const float *v = fx_get(&e->f, k3, "F32", nk), *ref = fx_get(&e->f, k4, "F32", nq);
    CHECK(q && k && v && ref);
    float *out = malloc(sizeof(float) * (size_t)nq), *lse = malloc(sizeof(float) * (size_t)(p.B * p.H * p.T));
    e->be->attention_forward(e->be, out, lse, q, k, v, &p);
    double err = fx_rel_err(out, ref, nq);
    free(out);
    free(lse);
    CHECK_MSG(err <= TOL, "%s: rel err %g", name, err);
}

TEST(ops_attention_causal_gqa_and_kv_cache) {
    env e;
    CHECK(env_open(&e));
    attention_case(&e, "att_plain", (ct_attn_params){.B = 2, .T = 7, .H = 4, .KVH = 2, .D = 16, .kv_stride = 7,
                                                     .scale = 0.25f});
    attention_case(&e, "att_cache", (ct_attn_params){.B = 1, .T = 3, .H = 6, .KVH = 2, .D = 8, .pos_offset = 5,
                                                     .kv_stride = 10, .scale = 0.35355339f, .window = 4,
                                                     .softcap = 20.0f});
    env_close(&e);
}

TEST(ops_gated_activations) {
    env e;
    CHECK(env_open(&e));
    const float *g = fx_get(&e.f, "glu_gate", "F32", 64), *u = fx_get(&e.f, "glu_up", "F32", 64);
    const float *rs = fx_get(&e.f, "glu_silu", "F32", 64), *rg = fx_get(&e.f, "glu_gelu", "F32", 64);
    CHECK(g && u && rs && rg);
    float out[64];
    e.be->glu_forward(e.be, out, g, u, 64, CT_GLU_SILU);
    CHECK(fx_rel_err(out, rs, 64) <= TOL);
    e.be->glu_forward(e.be, out, g, u, 64, CT_GLU_GELU_TANH);
    CHECK(fx_rel_err(out, rg, 64) <= TOL);
    env_close(&e);
}

TEST(ops_linear_f32_f16_bf16_weights) {
    env e;
    CHECK(env_open(&e));
    const float *x = fx_get(&e.f, "lin_x", "F32", 6 * 40), *b = fx_get(&e.f, "lin_b", "F32", 24);
    const void *ws[3] = {fx_get(&e.f, "lin_w", "F32", 24 * 40), fx_get(&e.f, "lin_w_f16", "U16", 24 * 40),
                         fx_get(&e.f, "lin_w_bf16", "U16", 24 * 40)};
    const char *refs[3] = {"lin_out_f32", "lin_out_f16", "lin_out_bf16"};
    ct_dtype dts[3] = {CT_F32, CT_F16, CT_BF16};
    CHECK(x && b && ws[0] && ws[1] && ws[2]);
    for (int i = 0; i < 3; i++) {
        const float *ref = fx_get(&e.f, refs[i], "F32", 6 * 24);
        CHECK(ref);
        ct_weight w = {.rows = 24, .cols = 40, .dtype = dts[i], .data = ws[i]};
        float out[6 * 24];
        e.be->linear_forward(e.be, out, x, &w, b, 6); // block path for f16/bf16
        CHECK_MSG(fx_rel_err(out, ref, 6 * 24) <= TOL, "%s: %g", refs[i], fx_rel_err(out, ref, 6 * 24));
        e.be->linear_forward(e.be, out, x, &w, b, 2); // few-rows path
        CHECK_MSG(fx_rel_err(out, ref, 2 * 24) <= TOL, "%s rows: %g", refs[i], fx_rel_err(out, ref, 2 * 24));
    }
    env_close(&e);
}

TEST(ops_softmax_softcap_losses) {
    env e;
    CHECK(env_open(&e));
    const float *lg = fx_get(&e.f, "lg", "F32", 4 * 33), *lp = fx_get(&e.f, "lg_p", "F32", 4 * 33);
    const int32_t *tg = fx_get(&e.f, "lg_targets", "I32", 4);
    const float *mask = fx_get(&e.f, "lg_mask", "F32", 4);
    const float *sm = fx_get(&e.f, "softmax", "F32", 4 * 33), *lsm = fx_get(&e.f, "log_softmax", "F32", 4 * 33);
    const float *sc = fx_get(&e.f, "softcap", "F32", 4 * 33), *ce = fx_get(&e.f, "ce", "F32", 1);
    const float *kl = fx_get(&e.f, "kl", "F32", 4), *js = fx_get(&e.f, "js", "F32", 4);
    CHECK(lg && lp && tg && mask && sm && lsm && sc && ce && kl && js);
    float out[4 * 33], loss;
    e.be->softmax_forward(e.be, out, lg, 4, 33, 0);
    CHECK(fx_rel_err(out, sm, 4 * 33) <= TOL);
    e.be->softmax_forward(e.be, out, lg, 4, 33, 1);
    CHECK(fx_rel_err(out, lsm, 4 * 33) <= TOL);
    e.be->softcap_forward(e.be, out, lg, 30.0f, 4 * 33);
    CHECK(fx_rel_err(out, sc, 4 * 33) <= TOL);
    e.be->cross_entropy_forward(e.be, &loss, lg, tg, mask, 4, 33);
    CHECK_MSG(fabs(loss - ce[0]) <= TOL * fabs(ce[0]), "ce %g vs %g", loss, ce[0]);
    e.be->divergence_forward(e.be, out, lg, lp, 4, 33, 2.0f, 0);
    CHECK_MSG(fx_rel_err(out, kl, 4) <= TOL, "kl %g", fx_rel_err(out, kl, 4));
    e.be->divergence_forward(e.be, out, lg, lp, 4, 33, 2.0f, 1);
    CHECK_MSG(fx_rel_err(out, js, 4) <= TOL, "js %g", fx_rel_err(out, js, 4));
    env_close(&e);
}

TEST(ops_embedding_bf16_table) {
    env e;
    CHECK(env_open(&e));
    const void *tab = fx_get(&e.f, "emb_bf16", "U16", 10 * 12);
    const int32_t *ids = fx_get(&e.f, "emb_ids", "I32", 4);
    const float *ref = fx_get(&e.f, "emb_out", "F32", 4 * 12);
    CHECK(tab && ids && ref);
    ct_weight w = {.rows = 10, .cols = 12, .dtype = CT_BF16, .data = tab};
    float out[4 * 12];
    e.be->embedding_forward(e.be, out, ids, &w, 4);
    CHECK(fx_rel_err(out, ref, 4 * 12) == 0.0);
    env_close(&e);
}

TEST(ops_memory_roundtrip) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    void *d;
    CHECK_OK(be->alloc(be, 16, &d, &err), &err);
    float h[4] = {1, 2, 3, 4}, back[4] = {0};
    be->upload(be, d, h, sizeof h);
    be->add(be, d, d, d, 4);
    be->scale(be, d, 0.5f, 4);
    be->download(be, back, d, sizeof back);
    CHECK_NEAR(back[3], 4.0, 0);
    be->zero(be, d, 16);
    be->download(be, back, d, sizeof back);
    CHECK_NEAR(back[0], 0.0, 0);
    be->free(be, d);
    ct_backend_destroy(be);
}
