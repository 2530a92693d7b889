// Unit tests for ggml block formats: dequantization and quantization compared
// bit for bit with gguf-py (fixtures from tools/make_gguf_fixtures.py).
#include <stdlib.h>

#include "ctune/dtype.h"
#include "ctune/fs.h"
#include "ctune/ggml_quants.h"
#include "ctune/gguf.h"
#include "harness.h"

static char fixture_path[512];
static const char *gguf_fixture(const char *name) {
    snprintf(fixture_path, sizeof fixture_path, "%s", ct_test_fixture(name));
    return fixture_path;
}

// Number of elements where a and b differ in their bits (NaNs compare by bits too).
static int64_t bit_mismatches(const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += memcmp(&a[i], &b[i], 4) != 0;
    return bad;
}

// Dequantizes tensor t.<type_name> of types.gguf and compares with gguf-py's result.
static void check_dequant(const char *type_name) {
    ct_error err;
    ct_gguf g;
    CHECK_OK(ct_gguf_open(&g, gguf_fixture("gguf/types.gguf"), &err), &err);
    char name[64], file[64];
    snprintf(name, sizeof name, "t.%s", type_name);
    snprintf(file, sizeof file, "gguf/deq_%s.f32", type_name);
    const ct_gguf_tensor *t = ct_gguf_find_tensor(&g, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    CHECK_STREQ(ct_ggml_type_name(t->type), type_name);
    char *expected = NULL;
    size_t len = 0;
    CHECK_OK(ct_read_file(ct_test_fixture(file), &expected, &len, &err), &err);
    float *got = malloc((size_t)t->nelements * sizeof *got);
    ct_status st = ct_gguf_tensor_to_f32(&g, t, got, &err);
    int64_t bad = st == CT_OK ? bit_mismatches(got, (const float *)expected, t->nelements) : -1;
    int64_t n = t->nelements;
    free(got);
    free(expected);
    ct_gguf_close(&g);
    CHECK_EQ(len, (size_t)n * 4);
    CHECK_MSG(st == CT_OK, "dequantize failed: %s", err.msg);
    CHECK_EQ(bad, 0);
}

TEST(dequant_f32) { check_dequant("F32"); }
TEST(dequant_f16) { check_dequant("F16"); }
TEST(dequant_bf16) { check_dequant("BF16"); }
TEST(dequant_q8_0) { check_dequant("Q8_0"); }
TEST(dequant_q4_0) { check_dequant("Q4_0"); }
TEST(dequant_q4_1) { check_dequant("Q4_1"); }
TEST(dequant_q5_0) { check_dequant("Q5_0"); }
TEST(dequant_q5_1) { check_dequant("Q5_1"); }
TEST(dequant_q2_k) { check_dequant("Q2_K"); }
TEST(dequant_q3_k) { check_dequant("Q3_K"); }
TEST(dequant_q4_k) { check_dequant("Q4_K"); }
TEST(dequant_q5_k) { check_dequant("Q5_K"); }
TEST(dequant_q6_k) { check_dequant("Q6_K"); }

// Quantizes quant_input.f32 and compares with gguf-py's bytes for that type.
static void check_quant(ct_ggml_type type) {
    ct_error err;
    char *input = NULL, *expected = NULL;
    size_t in_len = 0, exp_len = 0;
    char file[64];
    snprintf(file, sizeof file, "gguf/quant_%s.bin", ct_ggml_type_name(type));
    CHECK_OK(ct_read_file(ct_test_fixture("gguf/quant_input.f32"), &input, &in_len, &err), &err);
    ct_status st = ct_read_file(ct_test_fixture(file), &expected, &exp_len, &err);
    int64_t n = (int64_t)(in_len / 4);
    size_t bytes = ct_ggml_row_size(type, n);
    uint8_t *got = calloc(1, bytes + 1);
    if (st == CT_OK)
        st = ct_ggml_quantize(type, (const float *)input, got, n, &err);
    int diff_at = -1;
    for (size_t i = 0; st == CT_OK && i < bytes && i < exp_len && diff_at < 0; i++)
        if (got[i] != (uint8_t)expected[i])
            diff_at = (int)i;
    free(input);
    free(expected);
    free(got);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_EQ(exp_len, bytes);
    CHECK_MSG(diff_at < 0, "%s: first differing byte at %d", ct_ggml_type_name(type), diff_at);
}

TEST(quantize_q8_0_matches_gguf_py) { check_quant(CT_GGML_Q8_0); }
TEST(quantize_q4_0_matches_gguf_py) { check_quant(CT_GGML_Q4_0); }
TEST(quantize_q4_1_matches_gguf_py) { check_quant(CT_GGML_Q4_1); }
TEST(quantize_q5_0_matches_gguf_py) { check_quant(CT_GGML_Q5_0); }
TEST(quantize_q5_1_matches_gguf_py) { check_quant(CT_GGML_Q5_1); }
TEST(quantize_bf16_matches_gguf_py) { check_quant(CT_GGML_BF16); }
TEST(quantize_f16_matches_gguf_py) { check_quant(CT_GGML_F16); }

TEST(type_table) {
    CHECK_STREQ(ct_ggml_type_name(CT_GGML_Q4_K), "Q4_K");
    CHECK_EQ(ct_ggml_block_size(CT_GGML_Q4_K), 256);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q4_K), 144);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q6_K), 210);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q2_K), 84);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q3_K), 110);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q5_K), 176);
    CHECK_EQ(ct_ggml_type_size(CT_GGML_Q4_1), 20);
    CHECK_EQ(ct_ggml_row_size(CT_GGML_Q8_0, 64), 68);
    CHECK_EQ(ct_ggml_row_size(CT_GGML_Q8_0, 65), 0);
    CHECK_EQ(ct_ggml_row_size(CT_GGML_BF16, 3), 6);
    CHECK(!ct_ggml_type_valid(4));
    CHECK(!ct_ggml_type_valid(31));
    CHECK(!ct_ggml_type_valid(1000));
    CHECK(ct_ggml_type_name((ct_ggml_type)5) == NULL);
    CHECK(ct_ggml_type_valid(CT_GGML_MXFP4));
}

TEST(dequantize_rejects_bad_requests) {
    ct_error err;
    uint8_t buf[256] = {0};
    float out[256];
    CHECK_FAILS(ct_ggml_dequantize(CT_GGML_IQ2_XXS, buf, out, 256, &err), &err, "cannot dequantize ggml type IQ2_XXS");
    CHECK_FAILS(ct_ggml_dequantize(CT_GGML_Q4_0, buf, out, 33, &err), &err, "not a multiple of the block size 32");
    CHECK_FAILS(ct_ggml_dequantize((ct_ggml_type)99, buf, out, 1, &err), &err, "unknown ggml type 99");
    float x[32] = {0};
    x[3] = NAN;
    CHECK_FAILS(ct_ggml_quantize(CT_GGML_Q8_0, x, buf, 32, &err), &err, "element 3 is not finite");
    CHECK_FAILS(ct_ggml_quantize(CT_GGML_Q4_K, x, buf, 256, &err), &err, "cannot quantize to ggml type Q4_K");
}

// Round trip error stays within half a quantization step (plus d's f16 rounding), and a one-bit
// change in a block shows up in the output (the bitwise checks can fail).
TEST(q8_0_round_trip_and_sensitivity) {
    ct_error err;
    float x[64], y[64], z[64];
    for (int i = 0; i < 64; i++)
        x[i] = sinf((float)i * 0.7f) * (i < 32 ? 1.0f : 50.0f);
    uint8_t q[68];
    CHECK_OK(ct_ggml_quantize(CT_GGML_Q8_0, x, q, 64, &err), &err);
    CHECK_OK(ct_ggml_dequantize(CT_GGML_Q8_0, q, y, 64, &err), &err);
    double worst = 0;
    for (int i = 0; i < 64; i++) {
        float d = ct_f16_to_f32((uint16_t)(q[(i / 32) * 34] | (q[(i / 32) * 34 + 1] << 8)));
        double e = fabs((double)x[i] - y[i]) / d;
        worst = e > worst ? e : worst;
    }
    // Half a step, plus the f16 rounding of d carried by up to 127 steps.
    CHECK_MSG(worst <= 0.5 + 127.0 / 2048, "worst error %g steps", worst);
    CHECK(worst > 0.3); // the bound is not vacuous
    q[40] ^= 1;
    CHECK_OK(ct_ggml_dequantize(CT_GGML_Q8_0, q, z, 64, &err), &err);
    CHECK_EQ(bit_mismatches(y, z, 64), 1);
}
