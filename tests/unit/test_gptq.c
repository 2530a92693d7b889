// test_gptq.c: the GPTQ layer routine against an independent numpy
// implementation of textbook GPTQ (tools/make_gptq_fixtures.py), GPTQ's output
// error against RTN's, code packing, and calibration data loading.
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "ctune/gptq.h"
#include "ctune/safetensors.h"
#include "harness.h"

// A fixture tensor as a malloc'd f32 array (u8 tensors converted value by value).
static float *fixture_f32(const ct_safetensors *st, const char *name, int64_t *n) {
    const ct_tensor_view *t = ct_safetensors_find(st, name);
    if (!t)
        return NULL;
    *n = ct_tensor_numel(t);
    float *out = malloc(sizeof *out * (size_t)*n);
    if (t->dtype == CT_U8)
        for (int64_t i = 0; i < *n; i++)
            out[i] = ((const uint8_t *)t->data)[i];
    else
        ct_convert_to_f32(out, t->data, t->dtype, (size_t)*n);
    return out;
}

// H = X^T X in double: x (N, in) -> H (in, in).
static double *gram(const float *x, int64_t N, int64_t in) {
    double *H = calloc((size_t)(in * in), sizeof *H);
    for (int64_t r = 0; r < N; r++)
        for (int64_t a = 0; a < in; a++)
            for (int64_t b = 0; b < in; b++)
                H[a * in + b] += (double)x[r * in + a] * x[r * in + b];
    return H;
}

static void check_case(const char *file) {
    ct_error err = {0};
    ct_safetensors st;
    char path[256];
    snprintf(path, sizeof path, "%s/%s", ct_test_fixture("gptq"), file);
    CHECK_OK(ct_safetensors_open(&st, path, &err), &err);
    int bits = atoi(ct_safetensors_meta(&st, "bits")), g = atoi(ct_safetensors_meta(&st, "group_size"));
    const char *sbn = ct_safetensors_meta(&st, "scale_dtype");
    ct_dtype sb = !strcmp(sbn, "float16") ? CT_F16 : !strcmp(sbn, "bfloat16") ? CT_BF16 : CT_F32;
    const char *ao = ct_safetensors_meta(&st, "act_order"); // absent in the plain cases
    bool act_order = ao && !strcmp(ao, "1");
    int64_t nx, nw, nc, ns, nb, nh;
    float *x = fixture_f32(&st, "x", &nx), *w = fixture_f32(&st, "w", &nw), *codes = fixture_f32(&st, "codes", &nc);
    float *scales = fixture_f32(&st, "scales", &ns), *biases = fixture_f32(&st, "biases", &nb);
    float *w_hat = fixture_f32(&st, "w_hat", &nh);
    int64_t in = ct_safetensors_find(&st, "w")->shape[1], rows = nw / in, N = nx / in;
    double *H = gram(x, N, in);
    uint8_t *q = malloc((size_t)nw);
    float *s = malloc(sizeof *s * (size_t)ns), *b = malloc(sizeof *b * (size_t)ns);
    ct_status rc = ct_gptq_quantize_layer(w, H, rows, in, bits, g, sb, act_order, q, s, b, &err);
    int code_diff = 0;
    double s_err = 0, w_err = 0;
    for (int64_t i = 0; i < nw; i++) {
        code_diff += q[i] != (uint8_t)codes[i];
        w_err = fmax(w_err, fabs(w[i] - w_hat[i]));
    }
    for (int64_t i = 0; i < ns; i++)
        s_err = fmax(s_err, fmax(fabs(s[i] - scales[i]) / fabs(scales[i]), fabs(b[i] - biases[i])));
    free(x), free(codes), free(scales), free(biases), free(w_hat), free(H), free(q), free(s), free(b), free(w);
    ct_safetensors_close(&st);
    CHECK_MSG(rc == CT_OK, "%s: %s", file, err.msg);
    // Doubles from LAPACK vs numpy differ in the last bits only: every code and
    // scale must agree (one code off moves w_hat by a whole step, ~1e-2).
    CHECK_MSG(code_diff == 0, "%s: %d codes differ from the reference", file, code_diff);
    CHECK_MSG(s_err <= 1e-6, "%s: scales/biases differ by %g", file, s_err);
    CHECK_MSG(w_err <= 1e-6, "%s: quantized weights differ by %g", file, w_err);
}

TEST(gptq_layer_matches_textbook_reference_4bit_g32_f32) { check_case("b4_g32_f32.safetensors"); }
TEST(gptq_layer_matches_textbook_reference_3bit_g64_f16) { check_case("b3_g64_f16.safetensors"); }
TEST(gptq_layer_matches_textbook_reference_2bit_g32_bf16) { check_case("b2_g32_bf16.safetensors"); }
TEST(gptq_act_order_matches_static_groups_reference_4bit_g32_f32) { check_case("ao_b4_g32_f32.safetensors"); }
TEST(gptq_act_order_matches_static_groups_reference_3bit_g32_f16) { check_case("ao_b3_g32_f16.safetensors"); }

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static float rng_normal(uint64_t *s) { // sum of uniforms: close enough to a Gaussian here
    float t = 0;
    for (int i = 0; i < 12; i++)
        t += (float)(rng_next(s) >> 11) / 9007199254740992.0f;
    return t - 6.0f;
}

// ||X W^T - X Wq^T||^2 over the rows of x (N, in), w and wq (rows, in).
static double output_error(const float *x, const float *w, const float *wq, int64_t N, int64_t rows, int64_t in) {
    double e = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t r = 0; r < rows; r++) {
            double d = 0;
            for (int64_t i = 0; i < in; i++)
                d += (double)x[n * in + i] * ((double)w[r * in + i] - wq[r * in + i]);
            e += d * d;
        }
    return e;
}

enum { EN = 512, EIN = 128, EROWS = 32, EG = 64, EBITS = 3 };

// x (EN, EIN): correlated channels (each a mix of its neighbours), scales vary;
// channels i % 37 == 3 (a few) scaled by `dominant`. w (EROWS, EIN).
static void correlated_case(float *x, float *w, float dominant) {
    uint64_t seed = 0x1234567;
    float *z = malloc(sizeof *z * EN * EIN);
    for (int i = 0; i < EN * EIN; i++)
        z[i] = rng_normal(&seed);
    for (int n = 0; n < EN; n++)
        for (int i = 0; i < EIN; i++)
            x[n * EIN + i] = (z[n * EIN + i] + 0.8f * z[n * EIN + (i + 1) % EIN] + 0.5f * z[n * EIN + (i + 7) % EIN]) *
                             (1.0f + (float)(i % 5)) * (i % 37 == 3 ? dominant : 1.0f);
    for (int i = 0; i < EROWS * EIN; i++)
        w[i] = 0.05f * rng_normal(&seed);
    free(z);
}

// Output errors of GPTQ (act_order or not) and of RTN on correlated_case(dominant).
static void gptq_vs_rtn(float dominant, bool act_order, double *e_gptq, double *e_rtn) {
    float *x = malloc(sizeof *x * EN * EIN), *w = malloc(sizeof *w * EROWS * EIN);
    float *wg = malloc(sizeof *wg * EROWS * EIN), *wr = malloc(sizeof *wr * EROWS * EIN);
    correlated_case(x, w, dominant);
    memcpy(wg, w, sizeof *w * EROWS * EIN);
    double *H = gram(x, EN, EIN);
    uint8_t *q = malloc(EROWS * EIN);
    float s[EROWS * EIN / EG], b[EROWS * EIN / EG];
    uint32_t wq[EROWS * EIN * EBITS / 32];
    ct_error err = {0};
    ct_status rc = ct_gptq_quantize_layer(wg, H, EROWS, EIN, EBITS, EG, CT_F32, act_order, q, s, b, &err);
    ct_status rc2 = ct_affine_quantize(w, EROWS, EIN, EBITS, EG, wq, s, b, CT_F32, &err);
    ct_affine_dequantize(wq, s, b, CT_F32, EROWS, EIN, EBITS, EG, wr);
    *e_gptq = output_error(x, w, wg, EN, EROWS, EIN);
    *e_rtn = output_error(x, w, wr, EN, EROWS, EIN);
    free(x), free(w), free(wg), free(wr), free(H), free(q);
    CHECK_OK(rc, &err);
    CHECK_OK(rc2, &err);
}

TEST(gptq_output_error_below_rtn_on_correlated_inputs) {
    double e_gptq, e_rtn;
    gptq_vs_rtn(1.0f, false, &e_gptq, &e_rtn);
    CHECK_MSG(e_gptq < 0.7 * e_rtn, "GPTQ output error %g should be well below RTN's %g", e_gptq, e_rtn);
}

TEST(gptq_act_order_output_error_below_rtn_with_dominant_channels) {
    double e_ao, e_rtn, e_plain, e_rtn2;
    gptq_vs_rtn(6.0f, true, &e_ao, &e_rtn);
    gptq_vs_rtn(6.0f, false, &e_plain, &e_rtn2);
    CHECK_MSG(e_ao < 0.7 * e_rtn, "act-order GPTQ output error %g should be well below RTN's %g (plain GPTQ %g)", e_ao,
              e_rtn, e_plain);
    CHECK_MSG(e_ao != e_plain, "act-order changed nothing (%g)", e_ao);
}

TEST(gptq_pack_codes_matches_mlx_quantize_packing) {
    enum { ROWS = 3, IN = 64 };
    float w[ROWS * IN], s[ROWS * 2], b[ROWS * 2];
    for (int i = 0; i < ROWS * IN; i++)
        w[i] = sinf((float)i * 0.37f);
    int bits_list[] = {2, 3, 4, 5, 6, 8};
    for (int k = 0; k < 6; k++) {
        int bits = bits_list[k];
        uint32_t ref[ROWS * IN * 8 / 32], got[ROWS * IN * 8 / 32];
        uint8_t codes[ROWS * IN];
        ct_error err = {0};
        CHECK_OK(ct_affine_quantize(w, ROWS, IN, bits, 32, ref, s, b, CT_F32, &err), &err);
        ct_affine_unpack(ref, IN, bits, codes);
        for (int r = 1; r < ROWS; r++)
            ct_affine_unpack((const uint8_t *)ref + r * IN * bits / 8, IN, bits, codes + r * IN);
        ct_gptq_pack_codes(codes, ROWS, IN, bits, got);
        CHECK_MSG(!memcmp(ref, got, sizeof(uint32_t) * (size_t)(ROWS * IN * bits / 32)), "%d-bit packing", bits);
    }
}

TEST(gptq_rejects_unsupported_bits) {
    float w[64] = {0};
    double H[64 * 64] = {0};
    uint8_t q[64];
    float s[2], b[2];
    ct_error err = {0};
    CHECK_FAILS(ct_gptq_quantize_layer(w, H, 1, 64, 7, 32, CT_F32, false, q, s, b, &err), &err, "7 bits");
}

// ---- calibration data

static ct_tokenizer *chat_tokenizer(ct_error *err) {
    ct_tokenizer *t = NULL;
    return ct_tokenizer_load(&t, ct_test_fixture("chat_model"), err) == CT_OK ? t : NULL;
}

TEST(calib_cuts_shuffles_and_keeps_num_samples) {
    ct_error err = {0};
    ct_tokenizer *tok = chat_tokenizer(&err);
    CHECK_MSG(tok != NULL, "%s", err.msg);
    char text[4000];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "line %d of the calibration text.\n", i);
    char path[512];
    snprintf(path, sizeof path, "%s", ct_test_write_tmp("calib.txt", text, n));
    int32_t *all_ids;
    size_t n_all;
    CHECK_OK(ct_tokenizer_encode(tok, text, n, true, &all_ids, &n_all, &err), &err);
    ct_calib_opts o = {.data = path, .num_samples = -1, .sequence_length = 16, .seed = 123};
    int32_t *a, *b2;
    int na, nb;
    ct_status r1 = ct_calib_load(tok, &o, &a, &na, &err);
    o.num_samples = 3;
    ct_status r2 = ct_calib_load(tok, &o, &b2, &nb, &err);
    bool prefix = r1 == CT_OK && r2 == CT_OK && !memcmp(a, b2, sizeof *a * 3 * 16);
    // Every sequence is one of the stream's aligned windows; the order is shuffled.
    int found = 0, moved = 0;
    for (int s = 0; r1 == CT_OK && s < na; s++)
        for (size_t w = 0; w < n_all / 16; w++)
            if (!memcmp(a + s * 16, all_ids + w * 16, sizeof *a * 16)) {
                found++;
                moved += (size_t)s != w;
                break;
            }
    free(all_ids);
    if (r1 == CT_OK)
        free(a);
    if (r2 == CT_OK)
        free(b2);
    ct_tokenizer_free(tok);
    CHECK_OK(r1, &err);
    CHECK_OK(r2, &err);
    CHECK_EQ(na, (int)(n_all / 16));
    CHECK_EQ(nb, 3);
    CHECK(prefix);
    CHECK_EQ(found, na);
    CHECK(moved > 0);
}

TEST(calib_errors_empty_short_missing) {
    ct_error err = {0};
    ct_tokenizer *tok = chat_tokenizer(&err);
    CHECK_MSG(tok != NULL, "%s", err.msg);
    char empty[512], shortf[512];
    snprintf(empty, sizeof empty, "%s", ct_test_write_tmp("empty.txt", "", 0));
    snprintf(shortf, sizeof shortf, "%s", ct_test_write_tmp("short.txt", "a few words", 11));
    int32_t *ids = NULL;
    int n;
    ct_calib_opts o = {.data = empty, .num_samples = -1, .sequence_length = 512, .seed = 1};
    ct_status e1 = ct_calib_load(tok, &o, &ids, &n, &err);
    char m1[2048];
    snprintf(m1, sizeof m1, "%s", err.msg);
    o.data = shortf;
    ct_status e2 = ct_calib_load(tok, &o, &ids, &n, &err);
    char m2[2048];
    snprintf(m2, sizeof m2, "%s", err.msg);
    o.data = NULL;
    ct_status e3 = ct_calib_load(tok, &o, &ids, &n, &err);
    char m3[2048];
    snprintf(m3, sizeof m3, "%s", err.msg);
    ct_tokenizer_free(tok);
    CHECK(e1 != CT_OK && e2 != CT_OK && e3 != CT_OK);
    CHECK_CONTAINS(m1, "empty");
    CHECK_CONTAINS(m2, "shorter than one sequence of 512");
    CHECK_CONTAINS(m3, "--data");
}

TEST(calib_reads_a_dataset_folder) {
    ct_error err = {0};
    ct_tokenizer *tok = chat_tokenizer(&err);
    CHECK_MSG(tok != NULL, "%s", err.msg);
    ct_calib_opts o = {.data = ct_test_fixture("data/local"), .num_samples = -1, .sequence_length = 8, .seed = 1};
    int32_t *ids = NULL;
    int n = 0;
    ct_status rc = ct_calib_load(tok, &o, &ids, &n, &err);
    free(ids);
    ct_tokenizer_free(tok);
    CHECK_OK(rc, &err);
    CHECK(n >= 2);
}
