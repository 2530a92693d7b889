// Every backward of the CPU backend against finite differences, from one
// table of cases (the pattern of ggml's test-backend-ops grad mode). For a
// case, the loss is L = sum(out * r) for a fixed random r, accumulated in
// double; the analytic gradient is the case's backward called with dout = r,
// the numeric one is (L(x + eps) - L(x - eps)) / 2eps for every input element.
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "harness.h"

enum { MAX_IN = 3 };

typedef struct grad_case grad_case;
typedef void (*fwd_fn)(ct_backend *be, const grad_case *c, float **in, float *out);
typedef void (*bwd_fn)(ct_backend *be, const grad_case *c, float **in, const float *dout, float **din);

struct grad_case {
    const char *name;
    int n_in;
    int64_t in_size[MAX_IN];
    int checked; // bit i: check the gradient of input i
    int64_t out_size;
    fwd_fn fwd;
    bwd_fn bwd;
    int iv[4];   // integer parameters, meaning per op
    float fv[2]; // float parameters
};

static uint64_t rng_state = 88172645463325252ull;
static float rnd(void) { // uniform in [-1, 1)
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static ct_weight dense(const float *w, int rows, int cols) {
    return (ct_weight){.rows = rows, .cols = cols, .dtype = CT_F32, .data = w};
}

// ---- op adapters: iv/fv meanings are in each case's comment in the table
static const int32_t IDS[] = {1, 3, 1, 0};
static void emb_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    ct_weight w = dense(in[0], c->iv[0], c->iv[1]);
    be->embedding_forward(be, out, IDS, &w, 4);
}
static void emb_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    be->embedding_backward(be, din[0], d, IDS, 4, c->iv[1]);
}

static void rms_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    be->rmsnorm_forward(be, out, NULL, in[0], in[1], c->iv[0], c->iv[1], 1e-5f, c->fv[0]);
}
static void rms_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    int N = c->iv[0], C = c->iv[1];
    float *tmp = malloc(sizeof(float) * (size_t)(N * C + N));
    be->rmsnorm_forward(be, tmp, tmp + N * C, in[0], in[1], N, C, 1e-5f, c->fv[0]);
    be->rmsnorm_backward(be, din[0], din[1], d, in[0], in[1], tmp + N * C, N, C, c->fv[0]);
    free(tmp);
}

// iv: T, H, D, rot; positions start at 5
static void rope_freqs(float *f, int rot) {
    for (int i = 0; i < rot / 2; i++)
        f[i] = powf(100.0f, -2.0f * (float)i / (float)rot);
}
static void rope_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    float f[16];
    rope_freqs(f, c->iv[3]);
    be->rope_forward(be, out, in[0], f, 1.3f, 1, c->iv[0], c->iv[1], c->iv[2], c->iv[3], 5);
}
static void rope_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    float f[16];
    rope_freqs(f, c->iv[3]);
    be->rope_backward(be, din[0], d, f, 1.3f, 1, c->iv[0], c->iv[1], c->iv[2], c->iv[3], 5);
}

// iv: T, pos_offset, window, kv_stride; fv: softcap. B 2, H 4, KVH 2, D 4.
static ct_attn_params att_params(const grad_case *c) {
    return (ct_attn_params){.B = 2, .T = c->iv[0], .H = 4, .KVH = 2, .D = 4, .pos_offset = c->iv[1],
                            .window = c->iv[2], .kv_stride = c->iv[3], .scale = 0.5f, .softcap = c->fv[0]};
}
static void att_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    ct_attn_params p = att_params(c);
    be->attention_forward(be, out, NULL, in[0], in[1], in[2], &p);
}
static void att_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    ct_attn_params p = att_params(c);
    float *out = malloc(sizeof(float) * (size_t)c->out_size), *lse = malloc(sizeof(float) * (size_t)(2 * 4 * p.T));
    be->attention_forward(be, out, lse, in[0], in[1], in[2], &p);
    be->attention_backward(be, din[0], din[1], din[2], d, in[0], in[1], in[2], out, lse, &p);
    free(out);
    free(lse);
}

// iv[0]: activation
static void glu_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    be->glu_forward(be, out, in[0], in[1], c->out_size, (ct_glu_act)c->iv[0]);
}
static void glu_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    be->glu_backward(be, din[0], din[1], d, in[0], in[1], c->out_size, (ct_glu_act)c->iv[0]);
}

// iv: N, in, out
static void lin_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    ct_weight w = dense(in[1], c->iv[2], c->iv[1]);
    be->linear_forward(be, out, in[0], &w, in[2], c->iv[0]);
}
static void lin_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    ct_weight w = dense(in[1], c->iv[2], c->iv[1]);
    be->linear_backward(be, din[0], din[1], din[2], d, in[0], &w, c->iv[0]);
}

// A fixed 4-bit g32 quantized W (8, 64) (iv[0] == 0) or bf16 W (iv[0] == 1); gradient w.r.t. x (3, 64) only.
typedef struct fixed_w {
    uint32_t wq[8 * 64 * 4 / 32];
    float s[16], b[16];
    uint16_t bf[8 * 64];
    ct_weight w;
} fixed_w;
static void fixed_weight(fixed_w *f, int bf16) {
    float w[8 * 64];
    ct_error err;
    for (int i = 0; i < 8 * 64; i++)
        w[i] = sinf((float)i * 0.7f);
    if (bf16) {
        for (int i = 0; i < 8 * 64; i++)
            f->bf[i] = ct_f32_to_bf16(w[i]);
        f->w = (ct_weight){.rows = 8, .cols = 64, .dtype = CT_BF16, .data = f->bf};
        return;
    }
    ct_affine_quantize(w, 8, 64, 4, 32, f->wq, f->s, f->b, CT_F32, &err);
    f->w = (ct_weight){.rows = 8, .cols = 64, .dtype = CT_F32, .bits = 4, .group_size = 32, .data = f->wq,
                       .scales = f->s, .biases = f->b};
}
static void qlin_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    fixed_w f;
    fixed_weight(&f, c->iv[0]);
    be->linear_forward(be, out, in[0], &f.w, NULL, 3);
}
static void qlin_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    fixed_w f;
    fixed_weight(&f, c->iv[0]);
    be->linear_backward(be, din[0], NULL, NULL, d, in[0], &f.w, 3);
}

// logits (4, 7); out: the loss
static const int32_t TARGETS[] = {2, 0, 6, 1};
static const float MASK[] = {1, 0, 1, 1};
static void ce_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    be->cross_entropy_forward(be, out, in[0], TARGETS, MASK, 4, 7);
}
static void ce_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    be->cross_entropy_backward(be, din[0], d[0], in[0], TARGETS, MASK, 4, 7);
}

// fv[0]: cap
static void cap_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    be->softcap_forward(be, out, in[0], c->fv[0], c->out_size);
}
static void cap_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    float *out = malloc(sizeof(float) * (size_t)c->out_size);
    be->softcap_forward(be, out, in[0], c->fv[0], c->out_size);
    be->softcap_backward(be, din[0], d, out, c->fv[0], c->out_size);
    free(out);
}

// logits_q (3, 6) in[0], logits_p (3, 6) in[1] (a constant: not checked); iv[0]: js; fv[0]: temperature
static void div_f(ct_backend *be, const grad_case *c, float **in, float *out) {
    be->divergence_forward(be, out, in[0], in[1], 3, 6, c->fv[0], c->iv[0]);
}
static void div_b(ct_backend *be, const grad_case *c, float **in, const float *d, float **din) {
    be->divergence_backward(be, din[0], d, in[0], in[1], 3, 6, c->fv[0], c->iv[0]);
}

// ---- the table
static const grad_case CASES[] = {
    {"embedding", 1, {5 * 4}, 1, 4 * 4, emb_f, emb_b, {5, 4}, {0}},
    {"rmsnorm", 2, {3 * 8, 8}, 3, 3 * 8, rms_f, rms_b, {3, 8}, {0.0f}},
    {"rmsnorm_gemma", 2, {3 * 8, 8}, 3, 3 * 8, rms_f, rms_b, {3, 8}, {1.0f}},
    {"rope", 1, {3 * 2 * 8}, 1, 3 * 2 * 8, rope_f, rope_b, {3, 2, 8, 8}, {0}},
    {"rope_partial", 1, {3 * 2 * 8}, 1, 3 * 2 * 8, rope_f, rope_b, {3, 2, 8, 4}, {0}},
    {"attention", 3, {2 * 4 * 4 * 4, 2 * 4 * 2 * 4, 2 * 4 * 2 * 4}, 7, 2 * 4 * 4 * 4, att_f, att_b, {4, 0, 0, 4}, {0}},
    {"attention_cache_window_softcap", 3, {2 * 3 * 4 * 4, 2 * 6 * 2 * 4, 2 * 6 * 2 * 4}, 7, 2 * 3 * 4 * 4, att_f,
     att_b, {3, 2, 3, 6}, {1.5f}},
    {"swiglu", 2, {12, 12}, 3, 12, glu_f, glu_b, {CT_GLU_SILU}, {0}},
    {"geglu_tanh", 2, {12, 12}, 3, 12, glu_f, glu_b, {CT_GLU_GELU_TANH}, {0}},
    {"linear_bias", 3, {3 * 5, 4 * 5, 4}, 7, 3 * 4, lin_f, lin_b, {3, 5, 4}, {0}},
    {"linear_affine_q4_dx", 1, {3 * 64}, 1, 3 * 8, qlin_f, qlin_b, {0}, {0}},
    {"linear_bf16_dx", 1, {3 * 64}, 1, 3 * 8, qlin_f, qlin_b, {1}, {0}},
    {"cross_entropy_masked", 1, {4 * 7}, 1, 1, ce_f, ce_b, {0}, {0}},
    {"softcap", 1, {10}, 1, 10, cap_f, cap_b, {0}, {3.0f}},
    {"kl_divergence_tau2", 2, {3 * 6, 3 * 6}, 1, 3, div_f, div_b, {0}, {2.0f}},
    {"js_divergence_tau2", 2, {3 * 6, 3 * 6}, 1, 3, div_f, div_b, {1}, {2.0f}},
};

static double loss_of(ct_backend *be, const grad_case *c, float **in, float *out, const float *r) {
    c->fwd(be, c, in, out);
    double L = 0;
    for (int64_t i = 0; i < c->out_size; i++)
        L += (double)out[i] * r[i];
    return L;
}

// Worst |analytic - numeric| over the checked inputs, relative to the largest numeric gradient.
static double check_case(ct_backend *be, const grad_case *c) {
    float *in[MAX_IN] = {0}, *din[MAX_IN] = {0};
    float *out = malloc(sizeof(float) * (size_t)c->out_size), *r = malloc(sizeof(float) * (size_t)c->out_size);
    for (int64_t i = 0; i < c->out_size; i++)
        r[i] = rnd();
    for (int k = 0; k < c->n_in; k++) {
        in[k] = malloc(sizeof(float) * (size_t)c->in_size[k]);
        din[k] = calloc((size_t)c->in_size[k], sizeof(float));
        for (int64_t i = 0; i < c->in_size[k]; i++)
            in[k][i] = rnd() * 1.5f;
    }
    c->bwd(be, c, in, r, din);
    double worst = 0, scale = 1e-3;
    const float eps = 1e-2f;
    for (int k = 0; k < c->n_in; k++) {
        if (!(c->checked >> k & 1))
            continue;
        for (int64_t i = 0; i < c->in_size[k]; i++) {
            float x0 = in[k][i];
            in[k][i] = x0 + eps;
            double lp = loss_of(be, c, in, out, r);
            in[k][i] = x0 - eps;
            double lm = loss_of(be, c, in, out, r);
            in[k][i] = x0;
            double num = (lp - lm) / (2.0 * ((double)(x0 + eps) - (double)x0));
            double d = fabs(num - din[k][i]);
            worst = d > worst || d != d ? d : worst;
            scale = fabs(num) > scale ? fabs(num) : scale;
        }
    }
    for (int k = 0; k < c->n_in; k++) {
        free(in[k]);
        free(din[k]);
    }
    free(out);
    free(r);
    return worst / scale;
}

TEST(ops_backward_matches_finite_differences) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    int n = (int)(sizeof CASES / sizeof CASES[0]);
    for (int i = 0; i < n; i++) {
        double e = check_case(be, &CASES[i]);
        CHECK_MSG(e <= 5e-4, "%s: gradient rel err %g", CASES[i].name, e);
    }
    CHECK_EQ(n, 16);
    ct_backend_destroy(be);
}
