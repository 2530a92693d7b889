// Unit tests for MLX affine quantization: bit-exact against mlx.core.quantize
// (fixtures from tools/make_ops_fixtures.py on mlx-cpu), dequantize and the
// fused quantized matmul against mx.dequantize / mx.quantized_matmul.
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "harness.h"
#include "test_ops_fixture.h"

enum { ROWS = 8, IN = 256, XB = 3 };
static const int BITS[] = {2, 3, 4, 5, 6, 8};

// Input of dtype name ("f32", "f16", "bf16") as f32, and its scale dtype.
static int load_input(const fx_file *f, const char *dt, float *w, ct_dtype *sb) {
    char key[32];
    snprintf(key, sizeof key, "w_%s", dt);
    if (strcmp(dt, "f32") == 0) {
        const float *src = fx_get(f, key, "F32", ROWS * IN);
        if (!src)
            return 0;
        memcpy(w, src, sizeof(float) * ROWS * IN);
        *sb = CT_F32;
        return 1;
    }
    const uint16_t *src = fx_get(f, key, "U16", ROWS * IN);
    if (!src)
        return 0;
    *sb = strcmp(dt, "f16") == 0 ? CT_F16 : CT_BF16;
    ct_convert_to_f32(w, src, *sb, ROWS * IN);
    return 1;
}

// Quantizes the fixture input for one case and compares words, scales and biases bit for bit.
static int quantize_case(const fx_file *f, const char *dt, int bits, int gs, int *bad) {
    float w[ROWS * IN];
    ct_dtype sb;
    if (!load_input(f, dt, w, &sb))
        return 0;
    int64_t words = ROWS * ct_affine_row_words(IN, bits), ng = ROWS * IN / gs;
    size_t esz = ct_dtype_size(sb);
    uint32_t *wq = malloc(sizeof(uint32_t) * (size_t)words);
    char *s = malloc(esz * (size_t)ng), *b = malloc(esz * (size_t)ng);
    ct_error err = {0};
    int ok = ct_affine_quantize(w, ROWS, IN, bits, gs, wq, s, b, sb, &err) == CT_OK;
    char key[64];
    const char *sbn = sb == CT_F32 ? "F32" : "U16";
    snprintf(key, sizeof key, "%s_b%d_g%d_wq", dt, bits, gs);
    const void *rq = fx_get(f, key, "U32", words);
    snprintf(key, sizeof key, "%s_b%d_g%d_scales", dt, bits, gs);
    const void *rs = fx_get(f, key, sbn, ng);
    snprintf(key, sizeof key, "%s_b%d_g%d_biases", dt, bits, gs);
    const void *rb = fx_get(f, key, sbn, ng);
    ok = ok && rq && rs && rb;
    if (ok && (memcmp(wq, rq, (size_t)words * 4) || memcmp(s, rs, esz * (size_t)ng) || memcmp(b, rb, esz * (size_t)ng))) {
        fprintf(stderr, "  %s bits %d group %d: not bit-exact\n", dt, bits, gs);
        (*bad)++;
    }
    free(wq);
    free(s);
    free(b);
    return ok;
}

TEST(affine_quantize_bit_exact_with_mlx) {
    fx_file f;
    CHECK(fx_open(&f, "affine.safetensors"));
    int bad = 0, cases = 0;
    for (int bi = 0; bi < 6; bi++)
        for (int gs = 32; gs <= 128; gs *= 2) {
            CHECK(quantize_case(&f, "f32", BITS[bi], gs, &bad));
            cases++;
        }
    for (int bi = 0; bi < 6; bi++) {
        CHECK(quantize_case(&f, "f16", BITS[bi], 64, &bad));
        CHECK(quantize_case(&f, "bf16", BITS[bi], 64, &bad));
        cases += 2;
    }
    CHECK_EQ(cases, 30);
    CHECK_EQ(bad, 0);
    fx_close(&f);
}

// Dequantizes mlx's own packed words (so a packing bug cannot cancel out) and compares with mx.dequantize.
TEST(affine_dequantize_matches_mlx) {
    fx_file f;
    CHECK(fx_open(&f, "affine.safetensors"));
    float out[ROWS * IN];
    for (int bi = 0; bi < 6; bi++) {
        char k1[64], k2[64], k3[64], k4[64];
        int bits = BITS[bi], ng = ROWS * IN / 64;
        snprintf(k1, sizeof k1, "f32_b%d_g64_wq", bits);
        snprintf(k2, sizeof k2, "f32_b%d_g64_scales", bits);
        snprintf(k3, sizeof k3, "f32_b%d_g64_biases", bits);
        snprintf(k4, sizeof k4, "f32_b%d_g64_deq", bits);
        const uint32_t *wq = fx_get(&f, k1, "U32", ROWS * ct_affine_row_words(IN, bits));
        const float *s = fx_get(&f, k2, "F32", ng), *b = fx_get(&f, k3, "F32", ng);
        const float *ref = fx_get(&f, k4, "F32", ROWS * IN);
        CHECK(wq && s && b && ref);
        ct_affine_dequantize(wq, s, b, CT_F32, ROWS, IN, bits, 64, out);
        CHECK_MSG(fx_rel_err(out, ref, ROWS * IN) <= 1e-6, "bits %d: rel err %g", bits,
                  fx_rel_err(out, ref, ROWS * IN));
    }
    fx_close(&f);
}

// The backend's linear on a quantized weight equals mx.quantized_matmul, on
// both paths (few rows: fused row kernel; more rows: blocks + sgemm).
static void qmm_case(const fx_file *f, ct_backend *be, const char *dt, int bits, int gs, double *worst) {
    char key[64];
    ct_dtype sb = strcmp(dt, "f32") == 0 ? CT_F32 : strcmp(dt, "f16") == 0 ? CT_F16 : CT_BF16;
    const char *sbn = sb == CT_F32 ? "F32" : "U16";
    int ng = ROWS * IN / gs;
    snprintf(key, sizeof key, "%s_b%d_g%d_wq", dt, bits, gs);
    const void *wq = fx_get(f, key, "U32", ROWS * ct_affine_row_words(IN, bits));
    snprintf(key, sizeof key, "%s_b%d_g%d_scales", dt, bits, gs);
    const void *s = fx_get(f, key, sbn, ng);
    snprintf(key, sizeof key, "%s_b%d_g%d_biases", dt, bits, gs);
    const void *b = fx_get(f, key, sbn, ng);
    snprintf(key, sizeof key, "%s_b%d_g%d_qmm", dt, bits, gs);
    const float *ref = fx_get(f, key, "F32", XB * ROWS);
    const float *x = fx_get(f, "x", "F32", XB * IN);
    if (!wq || !s || !b || !ref || !x) {
        *worst = INFINITY;
        return;
    }
    ct_weight w = {.rows = ROWS, .cols = IN, .dtype = sb, .bits = bits, .group_size = gs,
                   .data = wq, .scales = s, .biases = b};
    float x2[2 * XB * IN], y[2 * XB * ROWS];
    memcpy(x2, x, sizeof(float) * XB * IN);
    memcpy(x2 + XB * IN, x, sizeof(float) * XB * IN);
    be->linear_forward(be, y, x, &w, NULL, XB); // fused row path
    double e = fx_rel_err(y, ref, XB * ROWS);
    be->linear_forward(be, y, x2, &w, NULL, 2 * XB); // block + sgemm path
    double e2 = fx_rel_err(y + XB * ROWS, ref, XB * ROWS);
    e = e2 > e ? e2 : e;
    *worst = e > *worst ? e : *worst;
}

TEST(affine_quantized_matmul_matches_mlx) {
    fx_file f;
    ct_backend *be;
    ct_error err;
    CHECK(fx_open(&f, "affine.safetensors"));
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    double worst = 0;
    for (int bi = 0; bi < 6; bi++) {
        for (int gs = 32; gs <= 128; gs *= 2)
            qmm_case(&f, be, "f32", BITS[bi], gs, &worst);
        qmm_case(&f, be, "f16", BITS[bi], 64, &worst);
        qmm_case(&f, be, "bf16", BITS[bi], 64, &worst);
    }
    CHECK_MSG(worst <= 1e-5, "worst relative error %g", worst);
    ct_backend_destroy(be);
    fx_close(&f);
}

// dx = dy . deq(W) through the quantized path equals the dense f32 path on deq(W).
TEST(affine_linear_input_gradient) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    enum { O = 96, K = 128, N = 7 };
    float w[O * K], deq[O * K], dy[N * O], dx1[N * K] = {0}, dx2[N * K] = {0};
    uint32_t wq[O * K * 5 / 32];
    uint16_t s[O * K / 32], b[O * K / 32];
    for (int i = 0; i < O * K; i++)
        w[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));
    for (int i = 0; i < N * O; i++)
        dy[i] = cosf(0.11f * (float)i);
    CHECK_OK(ct_affine_quantize(w, O, K, 5, 32, wq, s, b, CT_BF16, &err), &err);
    ct_affine_dequantize(wq, s, b, CT_BF16, O, K, 5, 32, deq);
    ct_weight wqt = {.rows = O, .cols = K, .dtype = CT_BF16, .bits = 5, .group_size = 32,
                     .data = wq, .scales = s, .biases = b};
    ct_weight wd = {.rows = O, .cols = K, .dtype = CT_F32, .data = deq};
    be->linear_backward(be, dx1, NULL, NULL, dy, NULL, &wqt, N);
    be->linear_backward(be, dx2, NULL, NULL, dy, NULL, &wd, N);
    CHECK(fx_rel_err(dx1, dx2, N * K) <= 1e-6);
    CHECK(fx_rel_err(dx1, dx2, N * K) >= 0 && dx1[5] != 0.0f);
    ct_backend_destroy(be);
}

TEST(affine_check_rejects_bad_parameters) {
    ct_error err;
    CHECK_FAILS(ct_affine_check(7, 64, 256, "model.layers.0.q_proj", &err), &err, "7 bits");
    CHECK_CONTAINS(err.msg, "model.layers.0.q_proj");
    CHECK_FAILS(ct_affine_check(4, 48, 256, "w", &err), &err, "group size 48");
    CHECK_FAILS(ct_affine_check(4, 64, 100, "w", &err), &err, "100 is not a multiple");
    CHECK_OK(ct_affine_check(3, 128, 384, "w", &err), &err);
    CHECK_EQ(ct_affine_row_words(384, 3), 36);
}

// Packing: a known stream. 3-bit codes 0..7 -> bits LSB-first: 0b111110101100011010001000 = 0xFAC688.
TEST(affine_pack_three_bits_byte_stream) {
    float w[32];
    for (int i = 0; i < 32; i++)
        w[i] = (float)(i % 8); // group min 0, max 7: scale -1 edge trick gives codes i%8 reversed or direct
    uint32_t wq[3];
    float s, b;
    ct_error err;
    CHECK_OK(ct_affine_quantize(w, 1, 32, 3, 32, wq, &s, &b, CT_F32, &err), &err);
    uint8_t codes[32];
    ct_affine_unpack(wq, 32, 3, codes);
    for (int i = 0; i < 32; i++)
        CHECK_NEAR(s * codes[i] + b, w[i], 1e-6);
    CHECK_EQ(wq[0] & 0xffffff, (s > 0 ? 0xFAC688u : 0x053977u));
}
