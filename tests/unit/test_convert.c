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
#include "ctune/gguf.h"
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

// GGUF name of an HF tensor of the llama fixture ("" if none); *heads > 0 for q/k.
static void gguf_name_of(const char *hf, char *out, size_t n, int *heads) {
    static const char *const map[][2] = {
        {"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.o_proj.weight", "attn_output.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},  {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},  {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
    };
    int layer, used = 0;
    *heads = 0;
    out[0] = 0;
    if (!strcmp(hf, "model.embed_tokens.weight"))
        snprintf(out, n, "token_embd.weight");
    else if (!strcmp(hf, "model.norm.weight"))
        snprintf(out, n, "output_norm.weight");
    else if (!strcmp(hf, "lm_head.weight"))
        snprintf(out, n, "output.weight");
    else if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used)
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(hf + used, map[i][0])) {
                snprintf(out, n, "blk.%d.%s", layer, map[i][1]);
                *heads = i == 0 ? 4 : i == 1 ? 2 : 0;
            }
}

// The llama fixture as llama.cpp's convert script would store it in F32:
// GGUF names, q/k rows permuted (HF row h*D + j*D/2 + i -> h*D + 2i + j).
static ct_status write_llama_gguf(const char *path, float **bufs, int *nbufs, ct_error *err) {
    ct_weights w;
    CT_TRY(ct_weights_open(&w, "tests/fixtures/models/llama_default", err));
    ct_gguf_writer *g;
    ct_status st = ct_gguf_writer_new(&g, err);
    if (st != CT_OK) {
        ct_weights_close(&w);
        return st;
    }
    ct_gguf_writer_add_str(g, "general.architecture", "llama", err);
    static const char *const ints[][2] = {{"llama.block_count", "2"},          {"llama.embedding_length", "32"},
                                          {"llama.feed_forward_length", "64"}, {"llama.attention.head_count", "4"},
                                          {"llama.attention.head_count_kv", "2"}, {"llama.context_length", "64"},
                                          {"llama.vocab_size", "128"},         {"llama.attention.key_length", "8"}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ct_gguf_writer_add_u32(g, ints[i][0], (uint32_t)atoi(ints[i][1]), err);
    ct_gguf_writer_add_f32(g, "llama.rope.freq_base", 10000.0f, err);
    ct_gguf_writer_add_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f, err);
    for (int t = 0; st == CT_OK && t < w.n; t++) {
        const ct_tensor_view *v = &w.views[t];
        char name[128];
        int heads;
        gguf_name_of(v->name, name, sizeof name, &heads);
        int64_t rows = v->ndim == 2 ? v->shape[0] : 1, cols = v->shape[v->ndim - 1];
        float *x = malloc(v->nbytes);
        bufs[(*nbufs)++] = x;
        int64_t D = heads ? rows / heads : 1;
        for (int64_t r = 0; r < rows; r++) {
            int64_t dst = heads ? (r / D) * D + 2 * (r % D % (D / 2)) + (r % D) / (D / 2) : r;
            memcpy(x + dst * cols, (const char *)v->data + sizeof(float) * (size_t)(r * cols),
                   sizeof(float) * (size_t)cols);
        }
        int64_t ne[2] = {cols, rows};
        st = name[0] ? ct_gguf_writer_add_tensor(g, name, CT_GGML_F32, (uint32_t)v->ndim, ne, x, err)
                     : ct_fail(err, CT_ERR_INVALID, "no GGUF name for %s", v->name);
    }
    if (st == CT_OK)
        st = ct_gguf_writer_write(g, path, err);
    ct_gguf_writer_free(g);
    ct_weights_close(&w);
    return st;
}

static bool same_tensors(const char *dir_a, const char *dir_b) {
    ct_weights a, b;
    ct_error err;
    if (ct_weights_open(&a, dir_a, &err) != CT_OK)
        return false;
    if (ct_weights_open(&b, dir_b, &err) != CT_OK) {
        ct_weights_close(&a);
        return false;
    }
    bool same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++) {
        const ct_tensor_view *x = &a.views[i], *y = ct_weights_find(&b, x->name);
        same = y && x->dtype == y->dtype && x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes);
    }
    ct_weights_close(&a);
    ct_weights_close(&b);
    return same;
}

// A GGUF of the llama fixture converts back to exactly the HF tensors (names,
// un-permuted q/k), and -q on it equals -q on the HF folder.
TEST(convert_gguf_llama_names_and_unpermute) {
    char gguf[1200], out[1200], ref[1300];
    float *bufs[64];
    int nbufs = 0;
    ct_error err = {0};
    snprintf(gguf, sizeof gguf, "%s/llama_default.gguf", ct_test_tmpdir());
    ct_status st = write_llama_gguf(gguf, bufs, &nbufs, &err);
    for (int i = 0; i < nbufs; i++)
        free(bufs[i]);
    CHECK_OK(st, &err);
    snprintf(out, sizeof out, "%s/convert_gguf_f32", ct_test_tmpdir());
    ct_convert_opts o = {.model = gguf, .mlx_path = out, .dtype = "float32"};
    CHECK_OK(ct_convert(&o, NULL, &err), &err);
    CHECK(same_tensors(out, "tests/fixtures/models/llama_default"));
    snprintf(out, sizeof out, "%s/convert_gguf_q3", ct_test_tmpdir());
    snprintf(ref, sizeof ref, "%s/convert_hf_q3", ct_test_tmpdir());
    ct_convert_opts q = {.model = gguf, .mlx_path = out, .dtype = "float32", .quantize = true, .q_bits = 3,
                         .q_group_size = 32};
    CHECK_OK(ct_convert(&q, NULL, &err), &err);
    q.model = "tests/fixtures/models/llama_default";
    q.mlx_path = ref;
    CHECK_OK(ct_convert(&q, NULL, &err), &err);
    CHECK(same_tensors(out, ref));
    snprintf(out, sizeof out, "%s/convert_gguf_default", ct_test_tmpdir());
    ct_convert_opts d = {.model = gguf, .mlx_path = out}; // GGUF default dtype: float16
    CHECK_OK(ct_convert(&d, NULL, &err), &err);
    snprintf(ref, sizeof ref, "%s/config.json", out);
    cJSON *cfg = load_json(ref);
    CHECK(cfg != NULL);
    const char *dt = str_or_null(cfg, "torch_dtype");
    bool f16 = dt && !strcmp(dt, "float16");
    cJSON_Delete(cfg);
    CHECK(f16);
}
