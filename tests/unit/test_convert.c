// test_convert.c: ctune convert against mlx-lm's own conversion of the tiny
// llama fixture (tests/fixtures/convert/, made by tools/make_convert_fixtures.py
// with mlx + mlx-lm on MLX's CPU build). Every packed weight, scale and bias
// must be bit-identical; every other output tensor must have mlx-lm's dtype,
// shape and bytes (FNV-1a hash); the config's quantization blocks must match
// key by key.
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/convert.h"
#include "ctune/fs.h"
#include "ctune/safetensors.h"
#include "harness.h"

static uint64_t fnv1a64(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static const char *mlx_dtype_name(ct_dtype t) {
    switch (t) {
    case CT_F32: return "float32";
    case CT_F16: return "float16";
    case CT_BF16: return "bfloat16";
    case CT_U32: return "uint32";
    default: return "?";
    }
}

static cJSON *load_json(const char *path) {
    char *text;
    size_t len;
    ct_error err;
    if (ct_read_file(path, &text, &len, &err) != CT_OK)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static int int_or_zero(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

// Compares one "quantization" block with mlx-lm's. mlx-lm writes
// "group_size": null in recipe entries when --q-group-size is not given (its
// predicate passes None on, and the layer falls back to 64): ctune writes 64.
static int compare_quant_block(const cJSON *want, const cJSON *got, char *why, size_t n) {
    if (cJSON_IsNull(want) || !want)
        return got ? (snprintf(why, n, "unexpected block"), 1) : 0;
    if (!cJSON_IsObject(got))
        return snprintf(why, n, "block missing"), 1;
    if (cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
        return snprintf(why, n, "%d keys, mlx-lm has %d", cJSON_GetArraySize(got), cJSON_GetArraySize(want)), 1;
    for (const cJSON *w = want->child; w; w = w->next) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        if (!g)
            return snprintf(why, n, "key %s missing", w->string), 1;
        if (cJSON_IsObject(w)) {
            const cJSON *gs = cJSON_GetObjectItemCaseSensitive(w, "group_size");
            int want_g = cJSON_IsNull(gs) ? 64 : int_or_zero(w, "group_size");
            const cJSON *mode = cJSON_GetObjectItemCaseSensitive(g, "mode");
            if (!cJSON_IsObject(g) || int_or_zero(g, "bits") != int_or_zero(w, "bits") ||
                int_or_zero(g, "group_size") != want_g || !cJSON_IsString(mode) ||
                strcmp(mode->valuestring, "affine") || cJSON_GetArraySize(g) != 3)
                return snprintf(why, n, "entry %s differs", w->string), 1;
        } else if (cJSON_IsNumber(w) ? !cJSON_IsNumber(g) || g->valuedouble != w->valuedouble
                                     : !cJSON_IsString(g) || strcmp(g->valuestring, w->valuestring)) {
            return snprintf(why, n, "key %s differs", w->string), 1;
        }
    }
    return 0;
}

static const char *str_or_null(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// Converts with the case's arguments into tmp/<name> and compares everything.
static void check_case(const char *name) {
    char path[1200], out[1024], why[256] = "";
    snprintf(path, sizeof path, "tests/fixtures/convert/%s.json", name);
    cJSON *doc = load_json(path);
    CHECK_MSG(doc != NULL, "%s: cannot read", path);
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(doc, "args");
    ct_convert_opts o = {0};
    o.model = str_or_null(args, "source");
    snprintf(out, sizeof out, "%s/convert_%s", ct_test_tmpdir(), name);
    o.mlx_path = out;
    o.quantize = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "quantize"));
    o.dequantize = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "dequantize"));
    o.q_bits = int_or_zero(args, "q_bits");
    o.q_group_size = int_or_zero(args, "q_group_size");
    o.dtype = str_or_null(args, "dtype");
    const char *recipe = str_or_null(args, "quant_predicate");
    if (recipe)
        CHECK(ct_quant_recipe_parse(recipe, &o.recipe));
    ct_error err = {0};
    ct_convert_stats stats;
    CHECK_OK(ct_convert(&o, &stats, &err), &err);

    // Every tensor: dtype, shape, bytes; and no extra tensors.
    ct_weights w;
    CHECK_OK(ct_weights_open(&w, out, &err), &err);
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(doc, "tensors");
    CHECK_EQ(w.n, cJSON_GetArraySize(tensors));
    int bad = 0;
    for (const cJSON *t = tensors->child; t && !bad; t = t->next) {
        const ct_tensor_view *v = ct_weights_find(&w, t->string);
        const cJSON *shape = cJSON_GetArrayItem(t, 1);
        char hash[17];
        if (v)
            snprintf(hash, sizeof hash, "%016" PRIx64, fnv1a64(v->data, v->nbytes));
        bad = !v || strcmp(mlx_dtype_name(v->dtype), cJSON_GetArrayItem(t, 0)->valuestring) ||
              v->ndim != cJSON_GetArraySize(shape) || strcmp(hash, cJSON_GetArrayItem(t, 2)->valuestring);
        for (int d = 0; !bad && d < v->ndim; d++)
            bad = v->shape[d] != cJSON_GetArrayItem(shape, d)->valueint;
        if (bad)
            snprintf(why, sizeof why, "%s: tensor %s differs from mlx-lm's (dtype, shape or bytes)", name, t->string);
    }
    CHECK_MSG(!bad, "%s", why);

    // The quantized modules, byte for byte against mlx-lm's arrays.
    snprintf(path, sizeof path, "tests/fixtures/convert/%s.safetensors", name);
    int n_ref = 0;
    if (ct_path_exists(path)) {
        ct_safetensors ref;
        CHECK_OK(ct_safetensors_open(&ref, path, &err), &err);
        for (int i = 0; i < ref.n_tensors && !bad; i++) {
            const ct_tensor_view *r = &ref.tensors[i], *v = ct_weights_find(&w, r->name);
            bad = !v || v->nbytes != r->nbytes || memcmp(v->data, r->data, r->nbytes) != 0;
            if (bad)
                snprintf(why, sizeof why, "%s: %s is not bit-identical to mlx's", name, r->name);
            n_ref++;
        }
        ct_safetensors_close(&ref);
    }
    ct_weights_close(&w);
    CHECK_MSG(!bad, "%s", why);
    CHECK_EQ(n_ref, 3 * stats.n_quantized);

    // config.json: the quantization blocks key by key.
    snprintf(path, sizeof path, "%s/config.json", out);
    cJSON *cfg = load_json(path);
    CHECK_MSG(cfg != NULL, "%s: cannot read", path);
    static const char *const blocks[] = {"quantization", "quantization_config"};
    for (int b = 0; b < 2 && !bad; b++) {
        bad = compare_quant_block(cJSON_GetObjectItemCaseSensitive(doc, blocks[b]),
                                  cJSON_GetObjectItemCaseSensitive(cfg, blocks[b]), why, sizeof why);
        CHECK_MSG(!bad, "%s: %s: %s", name, blocks[b], why);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(doc);
}

TEST(convert_q4_default_only_divisible_layers) { check_case("q4_default"); }
TEST(convert_q2_g32) { check_case("q2_g32"); }
TEST(convert_q3_g32_bf16) { check_case("q3_g32_bf16"); }
TEST(convert_q5_g32_f16) { check_case("q5_g32_f16"); }
TEST(convert_q6_g32) { check_case("q6_g32"); }
TEST(convert_q8_g32) { check_case("q8_g32"); }
TEST(convert_q4_g128_quantizes_nothing) { check_case("q4_g128"); }
TEST(convert_mixed_3_6) { check_case("mixed_3_6_g32"); }
TEST(convert_mixed_2_6_f16) { check_case("mixed_2_6_g32_f16"); }
TEST(convert_mixed_4_6_default_group) { check_case("mixed_4_6_default"); }
TEST(convert_mixed_3_4) { check_case("mixed_3_4_g32"); }
TEST(convert_cast_bf16) { check_case("cast_bf16"); }
TEST(convert_dequantize_mlx_q4) { check_case("dequantize_q4_g32"); }
TEST(convert_dequantize_mlx_q4_to_f16) { check_case("dequantize_q4_g32_f16"); }
TEST(convert_dequantize_mlx_q4_to_bf16) { check_case("dequantize_q4_g32_bf16"); }

// The recipe rule on a 32-layer model (L/8 = 4, 7L/8 = 28): sensitive layers
// are 0-3, 28-31 and 4 + 3k + 2 = 6, 9, 12, ...
TEST(rtn_mixed_recipe_rule) {
    ct_rtn_params p = {.bits = 4, .group_size = 64, .recipe = CT_RECIPE_MIXED_3_6};
    bool ov;
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.3.self_attn.v_proj", 4096, 32, &ov).bits, 6);
    CHECK(ov);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.4.self_attn.v_proj", 4096, 32, &ov).bits, 3);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.6.mlp.down_proj", 4096, 32, &ov).bits, 6);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.7.mlp.down_proj", 4096, 32, &ov).bits, 3);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.28.mlp.down_proj", 4096, 32, &ov).bits, 6);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.layers.0.self_attn.q_proj", 4096, 32, &ov).bits, 3);
    CHECK_EQ(ct_rtn_module_spec(&p, "lm_head", 4096, 32, &ov).bits, 6);
    CHECK_EQ(ct_rtn_module_spec(&p, "model.embed_tokens", 4096, 32, &ov).bits, 3);
    CHECK(!ct_rtn_module_spec(&p, "model.layers.0.mlp.down_proj", 4000, 32, &ov).quantized);
    p.recipe = CT_RECIPE_NONE;
    ct_quant_spec s = ct_rtn_module_spec(&p, "lm_head", 4096, 32, &ov);
    CHECK(s.quantized && s.bits == 4 && !ov);
    char module[64];
    CHECK(ct_rtn_is_quantizable("model.layers.0.mlp.up_proj.weight", 2, CT_BF16, module, sizeof module));
    CHECK_STREQ(module, "model.layers.0.mlp.up_proj");
    CHECK(!ct_rtn_is_quantizable("model.norm.weight", 1, CT_F32, module, sizeof module));
    CHECK(!ct_rtn_is_quantizable("model.layers.0.self_attn.q_proj.bias", 2, CT_F32, module, sizeof module));
}

TEST(convert_errors_leave_no_output) {
    ct_error err = {0};
    char out[1024];
    snprintf(out, sizeof out, "%s/convert_err", ct_test_tmpdir());
    ct_convert_opts o = {.model = "tests/fixtures/models/llama_default", .mlx_path = out, .quantize = true,
                         .q_bits = 7};
    CHECK_FAILS(ct_convert(&o, NULL, &err), &err, "bits");
    CHECK(!ct_path_exists(out));
    o.q_bits = 4;
    o.dequantize = true;
    CHECK_FAILS(ct_convert(&o, NULL, &err), &err, "not both");
    o.dequantize = false;
    o.model = "tests/fixtures/models/mlx_q4_g32"; // already quantized
    CHECK_FAILS(ct_convert(&o, NULL, &err), &err, "already quantized");
    CHECK(!ct_path_exists(out));
    o.model = "tests/fixtures/models/no_such_model";
    CHECK_FAILS(ct_convert(&o, NULL, &err), &err, "no_such_model");
    o.model = "tests/fixtures/models/llama_default";
    o.mlx_path = "tests/fixtures/models"; // exists
    CHECK_FAILS(ct_convert(&o, NULL, &err), &err, "already exists");
}
