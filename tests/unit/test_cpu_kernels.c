// Unit tests for the CPU backend's speed paths: the fused few-rows affine
// product (AVX2 and portable), the blocked sgemm path and the threaded sgemm
// split, each against a double-precision product on the dequantized weight
// (ct_affine_dequantize, itself checked bit for bit against MLX in
// test_affine.c). A wrong nibble order or a dropped group bias gives errors
// of order 1e-1; the tolerance is 2e-5 relative.
#include <math.h>
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "harness.h"

enum { O = 40, IN = 256, MAXN = 20 };

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xFFFFFF) / (float)0x1000000 * 2.0f - 1.0f;
}

// max |got - ref| / max |ref| with ref = x . deq^T in double
static double product_err(const float *got, const float *x, const float *deq, int N) {
    double num = 0, den = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double r = 0;
            for (int i = 0; i < IN; i++)
                r += (double)x[n * IN + i] * deq[o * IN + i];
            num = fmax(num, fabs(got[n * O + o] - r));
            den = fmax(den, fabs(r));
        }
    return num / den;
}

// Worst error over every bits x group size x scale dtype x row count.
static double affine_worst(ct_backend *be) {
    static const int bits_list[] = {2, 3, 4, 5, 6, 8}, ns[] = {1, 2, 3, 4, 5, 8, 9, 20};
    static const ct_dtype sbs[] = {CT_F32, CT_F16, CT_BF16};
    uint64_t seed = 7;
    float w[O * IN], deq[O * IN], x[MAXN * IN], y[MAXN * O];
    uint32_t wq[O * IN / 4];
    uint16_t sc[O * IN / 32 * 2], bi[O * IN / 32 * 2];
    for (int i = 0; i < O * IN; i++)
        w[i] = frand(&seed) * (i % 7 == 0 ? 3.0f : 0.5f);
    for (int i = 0; i < MAXN * IN; i++)
        x[i] = frand(&seed);
    double worst = 0;
    ct_error err;
    for (int bi_ = 0; bi_ < 6; bi_++)
        for (int gs = 32; gs <= 128; gs *= 2)
            for (int si = 0; si < 3; si++) {
                int bits = bits_list[bi_];
                if (ct_affine_quantize(w, O, IN, bits, gs, wq, sc, bi, sbs[si], &err) != CT_OK)
                    return INFINITY;
                ct_affine_dequantize(wq, sc, bi, sbs[si], O, IN, bits, gs, deq);
                ct_weight cw = {.rows = O, .cols = IN, .dtype = sbs[si], .bits = bits, .group_size = gs,
                                .data = wq, .scales = sc, .biases = bi};
                for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                    be->linear_forward(be, y, x, &cw, NULL, ns[k]);
                    worst = fmax(worst, product_err(y, x, deq, ns[k]));
                }
            }
    return worst;
}

TEST(cpu_affine_products_simd_and_portable) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    double simd = affine_worst(be);
    setenv("CTUNE_CPU_NO_SIMD", "1", 1);
    double portable = affine_worst(be);
    unsetenv("CTUNE_CPU_NO_SIMD");
    CHECK_MSG(simd <= 2e-5, "simd/default path: worst relative error %g", simd);
    CHECK_MSG(portable <= 2e-5, "portable path: worst relative error %g", portable);
    ct_backend_destroy(be);
}

// The threaded sgemm split (by columns and by rows, transposed or not) equals a double product.
TEST(cpu_sgemm_split_matches_reference) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    enum { M = 70, K = 96, N2 = 130 };
    static float a[M * K], b[K * N2], c[N2 * M];
    uint64_t seed = 3;
    for (int i = 0; i < M * K; i++)
        a[i] = frand(&seed);
    for (int i = 0; i < K * N2; i++)
        b[i] = frand(&seed);
    // dweight-style product: C (N2, K) = B^T (N2, M) . A (M, K) with B viewed as (M, N2)
    ct_weight wt = {.rows = N2, .cols = K, .dtype = CT_F32, .data = b};
    be->linear_forward(be, c, a, &wt, NULL, M); // c (M, N2) = a (M, K) . b^T with b as (N2, K)
    double num = 0, den = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N2; n++) {
            double r = 0;
            for (int k = 0; k < K; k++)
                r += (double)a[m * K + k] * b[n * K + k];
            num = fmax(num, fabs(c[m * N2 + n] - r));
            den = fmax(den, fabs(r));
        }
    CHECK_MSG(num / den <= 1e-5, "linear (split sgemm): rel err %g", num / den);
    // backward: dinp (M, K) += dout (M, N2) . W (N2, K) (split by columns), dweight += dout^T . inp (rows)
    static float dout[M * N2], dinp[M * K], dw[N2 * K];
    for (int i = 0; i < M * N2; i++)
        dout[i] = frand(&seed);
    be->linear_backward(be, dinp, dw, NULL, dout, a, &wt, M);
    num = den = 0;
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            double r = 0;
            for (int n = 0; n < N2; n++)
                r += (double)dout[m * N2 + n] * b[n * K + k];
            num = fmax(num, fabs(dinp[m * K + k] - r));
            den = fmax(den, fabs(r));
        }
    for (int n = 0; n < N2; n++)
        for (int k = 0; k < K; k++) {
            double r = 0;
            for (int m = 0; m < M; m++)
                r += (double)dout[m * N2 + n] * a[m * K + k];
            num = fmax(num, fabs(dw[n * K + k] - r));
            den = fmax(den, fabs(r));
        }
    CHECK_MSG(num / den <= 1e-5, "linear backward (split sgemm): rel err %g", num / den);
    ct_backend_destroy(be);
}

// Naive double-precision attention for one (b, t, h) row -> o (D), returns the log-sum-exp.
static double attention_row_ref(const float *q, const float *k, const float *v, const ct_attn_params *p, int b, int t,
                                int h, double *o) {
    int D = p->D, kvs = p->KVH * D, kh = h / (p->H / p->KVH), pos = p->pos_offset + t;
    const float *qr = q + (((size_t)b * p->T + t) * p->H + h) * D;
    double s[256], m = -INFINITY, sum = 0;
    for (int j = 0; j <= pos; j++) {
        s[j] = -INFINITY;
        if (p->window > 0 && pos - j >= p->window)
            continue;
        double x = 0;
        for (int d = 0; d < D; d++)
            x += (double)qr[d] * k[((size_t)b * p->kv_stride + j) * kvs + kh * D + d];
        x *= p->scale;
        s[j] = p->softcap > 0 ? p->softcap * tanh(x / p->softcap) : x;
        m = fmax(m, s[j]);
    }
    for (int d = 0; d < D; d++)
        o[d] = 0;
    for (int j = 0; j <= pos; j++)
        sum += exp(s[j] - m);
    for (int j = 0; j <= pos; j++)
        for (int d = 0; d < D; d++)
            o[d] += exp(s[j] - m) / sum * v[((size_t)b * p->kv_stride + j) * kvs + kh * D + d];
    return m + log(sum);
}

// The blocked (sgemm) forward, T > 4 with several blocks, a KV-cache offset,
// a sliding window and soft-capping, equals the naive attention.
TEST(cpu_attention_blocked_matches_reference) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    ct_attn_params cases[] = {
        {.B = 2, .T = 150, .H = 4, .KVH = 2, .D = 16, .pos_offset = 0, .kv_stride = 150, .scale = 0.25f},
        {.B = 1, .T = 70, .H = 6, .KVH = 2, .D = 8, .pos_offset = 9, .kv_stride = 90, .scale = 0.35f, .window = 20,
         .softcap = 5.0f},
    };
    uint64_t seed = 11;
    double worst = 0;
    for (size_t c = 0; c < 2; c++) {
        ct_attn_params p = cases[c];
        size_t nq = (size_t)p.B * p.T * p.H * p.D, nkv = (size_t)p.B * p.kv_stride * p.KVH * p.D;
        float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *out = malloc(nq * 4);
        float *lse = malloc((size_t)p.B * p.H * p.T * 4);
        for (size_t i = 0; i < nq; i++)
            q[i] = 2 * frand(&seed);
        for (size_t i = 0; i < nkv; i++) {
            k[i] = 2 * frand(&seed);
            v[i] = frand(&seed);
        }
        be->attention_forward(be, out, lse, q, k, v, &p);
        double o[64];
        for (int b = 0; b < p.B; b++)
            for (int t = 0; t < p.T; t++)
                for (int h = 0; h < p.H; h++) {
                    double l = attention_row_ref(q, k, v, &p, b, t, h, o);
                    worst = fmax(worst, fabs(lse[((size_t)b * p.H + h) * p.T + t] - l) / fmax(1, fabs(l)));
                    for (int d = 0; d < p.D; d++)
                        worst = fmax(worst, fabs(out[(((size_t)b * p.T + t) * p.H + h) * p.D + d] - o[d]));
                }
        free(q), free(k), free(v), free(out), free(lse);
    }
    CHECK_MSG(worst <= 2e-5, "worst error %g", worst);
    ct_backend_destroy(be);
}
