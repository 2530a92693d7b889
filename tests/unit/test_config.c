// Unit tests for src/io/config.c: every fixture in tests/fixtures/config/ is
// compared field by field with what transformers resolved from it
// (expected.json, made by tools/make_config_fixtures.py); then MLX quantization
// lookups and one test per error.
#include <stdlib.h>

#include "ctune/config.h"
#include "ctune/fs.h"
#include "ctune/json.h"
#include "harness.h"

// ---- comparison with transformers ------------------------------------------

static int64_t e_int(const cJSON *e, const char *key) { return (int64_t)cJSON_GetObjectItemCaseSensitive(e, key)->valuedouble; }
static double e_num(const cJSON *e, const char *key) { return cJSON_GetObjectItemCaseSensitive(e, key)->valuedouble; }
static bool e_has(const cJSON *e, const char *key) { return cJSON_GetObjectItemCaseSensitive(e, key) != NULL; }
static bool e_bool(const cJSON *e, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, key)); }
static const char *e_str(const cJSON *e, const char *key) { return cJSON_GetObjectItemCaseSensitive(e, key)->valuestring; }
// Relative tolerance: values are copied from the same decimal text, so they must agree to rounding.
static bool near(double a, double b) { return fabs(a - b) <= 1e-12 * fmax(1.0, fabs(b)); }

#define CHECK_FIELD_INT(name, field, got) \
    CHECK_MSG((got) == e_int(e, field), "%s: %s: ctune %lld, transformers %lld", name, field, (long long)(got), (long long)e_int(e, field))
#define CHECK_FIELD_NUM(name, obj, field, got) \
    CHECK_MSG(near((got), e_num(obj, field)), "%s: %s: ctune %.17g, transformers %.17g", name, field, (double)(got), e_num(obj, field))
#define CHECK_FIELD_BOOL(name, field, got) \
    CHECK_MSG((got) == e_bool(e, field), "%s: %s: ctune %d, transformers %d", name, field, (int)(got), (int)e_bool(e, field))

static void compare_factors(const char *name, const char *key, const cJSON *r, const double *got, int n) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r, key);
    CHECK_MSG(cJSON_GetArraySize(arr) == n, "%s: %s has %d values, expected %d", name, key, n, cJSON_GetArraySize(arr));
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++)
        CHECK_MSG(near(got[i], v->valuedouble), "%s: %s[%d]: %.17g vs %.17g", name, key, i, got[i], v->valuedouble);
}

static void compare_rope(const char *name, const ct_model_config *c, const cJSON *e) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "rope");
    CHECK_MSG(!strcmp(ct_rope_type_name(c->rope.type), e_str(r, "rope_type")), "%s: rope_type %s vs %s", name,
              ct_rope_type_name(c->rope.type), e_str(r, "rope_type"));
    CHECK_FIELD_NUM(name, r, "rope_theta", c->rope.theta);
    CHECK_FIELD_NUM(name, r, "partial_rotary_factor", c->partial_rotary_factor);
    CHECK_FIELD_NUM(name, r, "attention_factor", c->rope.attention_factor);
    if (e_has(r, "factor"))
        CHECK_FIELD_NUM(name, r, "factor", c->rope.factor);
    if (e_has(r, "low_freq_factor"))
        CHECK_FIELD_NUM(name, r, "low_freq_factor", c->rope.low_freq_factor);
    if (e_has(r, "high_freq_factor"))
        CHECK_FIELD_NUM(name, r, "high_freq_factor", c->rope.high_freq_factor);
    if (e_has(r, "original_max_position_embeddings"))
        CHECK_FIELD_NUM(name, r, "original_max_position_embeddings", (double)c->rope.original_max_position_embeddings);
    if (e_has(r, "long_factor")) {
        compare_factors(name, "long_factor", r, c->rope.long_factor, c->rope.n_factors);
        compare_factors(name, "short_factor", r, c->rope.short_factor, c->rope.n_factors);
    }
    if (e_has(e, "rope_local_base_freq"))
        CHECK_FIELD_NUM(name, e, "rope_local_base_freq", c->rope_local_base_freq);
    else
        CHECK_MSG(c->rope_local_base_freq == 0, "%s: rope_local_base_freq set for a non-gemma3 model", name);
}

static void compare_layers(const char *name, const ct_model_config *c, const cJSON *e) {
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(e, "layer_attn");
    const cJSON *moe = cJSON_GetObjectItemCaseSensitive(e, "layer_moe");
    CHECK_EQ(cJSON_GetArraySize(attn), c->num_hidden_layers);
    CHECK_EQ(cJSON_GetArraySize(moe), c->num_hidden_layers);
    int i = 0;
    for (const cJSON *v = attn->child; v; v = v->next, i++) {
        ct_attn_kind want = !strcmp(v->valuestring, "sliding") ? CT_ATTN_SLIDING : CT_ATTN_FULL;
        CHECK_MSG(c->layer_attn[i] == want, "%s: layer %d attention kind %d, transformers %s", name, i, c->layer_attn[i],
                  v->valuestring);
    }
    i = 0;
    for (const cJSON *v = moe->child; v; v = v->next, i++)
        CHECK_MSG(c->layer_moe[i] == cJSON_IsTrue(v), "%s: layer %d moe %d vs %d", name, i, c->layer_moe[i], cJSON_IsTrue(v));
}

static void compare_one(const char *name, const ct_model_config *c, const cJSON *e) {
    CHECK_FIELD_INT(name, "vocab_size", c->vocab_size);
    CHECK_FIELD_INT(name, "hidden_size", c->hidden_size);
    CHECK_FIELD_INT(name, "intermediate_size", c->intermediate_size);
    CHECK_FIELD_INT(name, "num_hidden_layers", c->num_hidden_layers);
    CHECK_FIELD_INT(name, "num_attention_heads", c->num_attention_heads);
    CHECK_FIELD_INT(name, "num_key_value_heads", c->num_key_value_heads);
    CHECK_FIELD_INT(name, "head_dim", c->head_dim);
    CHECK_FIELD_INT(name, "max_position_embeddings", c->max_position_embeddings);
    CHECK_FIELD_INT(name, "sliding_window", c->sliding_window);
    CHECK_FIELD_INT(name, "bos_token_id", c->bos_token_id);
    CHECK_FIELD_INT(name, "pad_token_id", c->pad_token_id);
    CHECK_FIELD_INT(name, "num_experts", c->num_experts);
    CHECK_FIELD_NUM(name, e, "rms_norm_eps", c->rms_norm_eps);
    CHECK_FIELD_NUM(name, e, "attn_logit_softcapping", c->attn_logit_softcapping);
    CHECK_FIELD_NUM(name, e, "final_logit_softcapping", c->final_logit_softcapping);
    CHECK_FIELD_NUM(name, e, "query_pre_attn_scalar", c->query_pre_attn_scalar);
    CHECK_FIELD_BOOL(name, "qkv_bias", c->qkv_bias);
    CHECK_FIELD_BOOL(name, "o_bias", c->o_bias);
    CHECK_FIELD_BOOL(name, "mlp_bias", c->mlp_bias);
    CHECK_FIELD_BOOL(name, "qk_norm", c->qk_norm);
    CHECK_FIELD_BOOL(name, "tie_word_embeddings", c->tie_word_embeddings);
    CHECK_MSG(!strcmp(ct_activation_name(c->hidden_act), e_str(e, "hidden_act")), "%s: hidden_act %s vs %s", name,
              ct_activation_name(c->hidden_act), e_str(e, "hidden_act"));
    CHECK_MSG(!strcmp(c->dtype, e_str(e, "dtype")), "%s: dtype \"%s\" vs \"%s\"", name, c->dtype, e_str(e, "dtype"));
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(e, "eos_token_ids");
    CHECK_MSG(cJSON_GetArraySize(eos) == c->n_eos_token_ids, "%s: %d eos ids, expected %d", name, c->n_eos_token_ids,
              cJSON_GetArraySize(eos));
    int i = 0;
    for (const cJSON *v = eos->child; v; v = v->next, i++)
        CHECK_MSG(c->eos_token_ids[i] == (int64_t)v->valuedouble, "%s: eos[%d]", name, i);
    if (e_has(e, "num_experts_per_tok")) {
        CHECK_FIELD_INT(name, "num_experts_per_tok", c->num_experts_per_tok);
        CHECK_FIELD_INT(name, "moe_intermediate_size", c->moe_intermediate_size);
        CHECK_FIELD_INT(name, "decoder_sparse_step", c->decoder_sparse_step);
        CHECK_FIELD_NUM(name, e, "router_aux_loss_coef", c->router_aux_loss_coef);
        CHECK_FIELD_BOOL(name, "norm_topk_prob", c->norm_topk_prob);
    }
    compare_rope(name, c, e);
    compare_layers(name, c, e);
}

TEST(config_fixtures_match_transformers) {
    ct_error err;
    cJSON *expected;
    CHECK_OK(ct_json_load_file(ct_test_fixture("config/expected.json"), &expected, &err), &err);
    int n = 0;
    for (const cJSON *e = expected->child; e; e = e->next, n++) {
        char path[512];
        snprintf(path, sizeof path, "config/%s.json", e->string);
        ct_model_config c;
        ct_status st = ct_model_config_load(&c, ct_test_fixture(path), &err);
        if (st != CT_OK) {
            cJSON_Delete(expected);
            CHECK_MSG(false, "%s: %s", e->string, err.msg);
        }
        compare_one(e->string, &c, e);
        ct_model_config_free(&c);
    }
    cJSON_Delete(expected);
    CHECK_EQ(n, 20);
}

TEST(config_arch_and_layout_details) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(ct_model_config_load(&c, ct_test_fixture("config/gemma-3-4b-it.json"), &err), &err);
    CHECK_EQ(c.arch, CT_ARCH_GEMMA3);
    CHECK_STREQ(c.model_type, "gemma3");
    CHECK_STREQ(ct_arch_name(c.arch), "gemma3_text");
    CHECK_EQ(c.rotary_dim, 256);
    CHECK_EQ(c.hidden_act, CT_ACT_GELU_TANH);
    ct_model_config_free(&c);
    CHECK_OK(ct_model_config_load(&c, ct_test_fixture("config/phi-3.5-mini.json"), &err), &err);
    CHECK_EQ(c.rope.type, CT_ROPE_LONGROPE);
    CHECK_EQ(c.rope.n_factors, 48);
    CHECK_NEAR(c.rope.factor, 32.0, 0);
    ct_model_config_free(&c);
    CHECK_OK(ct_model_config_load(&c, ct_test_fixture("config/qwen2.5-7b-yarn.json"), &err), &err);
    CHECK_NEAR(c.rope.beta_fast, 32, 0);
    CHECK_NEAR(c.rope.beta_slow, 1, 0);
    CHECK(c.rope.truncate);
    CHECK_NEAR(c.rope.attention_factor, 0.1 * log(4.0) + 1, 1e-15);
    ct_model_config_free(&c);
}

// ---- helpers for inline configs ---------------------------------------------

static ct_status parse_str(ct_model_config *c, const char *json, ct_error *err) {
    cJSON *root;
    CT_TRY(ct_json_parse(json, strlen(json), "cfg.json", &root, err));
    ct_status st = ct_model_config_parse(c, root, "cfg.json", err);
    cJSON_Delete(root);
    return st;
}

#define LLAMA(extra)                                                                                     \
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4," \
    " \"vocab_size\": 100" extra "}"

static void check_fails(const char *json, ct_status want, const char *needle) {
    ct_model_config c;
    ct_error err = {0};
    ct_status st = parse_str(&c, json, &err);
    CHECK_MSG(st == want, "status %s, expected %s (%s)", ct_status_name(st), ct_status_name(want), err.msg);
    CHECK_CONTAINS(err.msg, needle);
    CHECK_CONTAINS(err.msg, "cfg.json");
    ct_model_config_free(&c);
}

TEST(config_minimal_llama_defaults) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, LLAMA(""), &err), &err);
    CHECK_EQ(c.head_dim, 16);
    CHECK_EQ(c.max_position_embeddings, 2048);
    CHECK_NEAR(c.rms_norm_eps, 1e-6, 0);
    CHECK_NEAR(c.rope.theta, 10000, 0);
    CHECK(!c.tie_word_embeddings);
    CHECK_EQ(c.n_eos_token_ids, 1);
    CHECK_EQ(c.eos_token_ids[0], 2);
    CHECK(!c.quant.quantized);
    CHECK(!ct_model_config_quant_for(&c, "model.layers.0.mlp.up_proj").quantized);
    ct_model_config_free(&c);
}

TEST(config_load_from_directory) {
    ct_error err;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/model", ct_test_tmpdir());
    CHECK_OK(ct_mkdir_p(dir, &err), &err);
    char file[1100];
    snprintf(file, sizeof file, "%s/config.json", dir);
    const char *json = LLAMA(", \"tie_word_embeddings\": true");
    CHECK_OK(ct_write_file_atomic(file, json, strlen(json), &err), &err);
    ct_model_config c;
    CHECK_OK(ct_model_config_load(&c, dir, &err), &err);
    CHECK(c.tie_word_embeddings);
    ct_model_config_free(&c);
}

TEST(config_su_is_longrope) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, "{\"model_type\": \"phi3\", \"hidden_size\": 16, \"num_attention_heads\": 2, \"max_position_embeddings\": 8192,"
                           " \"rope_scaling\": {\"type\": \"su\", \"long_factor\": [1,2,3,4], \"short_factor\": [1,1,1,1]}}",
                       &err),
             &err);
    CHECK_EQ(c.rope.type, CT_ROPE_LONGROPE);
    CHECK_NEAR(c.rope.long_factor[3], 4, 0);
    CHECK_EQ(c.rope.original_max_position_embeddings, 4096); // phi3's default
    CHECK_NEAR(c.rope.attention_factor, sqrt(1 + log(2.0) / log(4096.0)), 1e-15);
    ct_model_config_free(&c);
}

// ---- MLX quantization ----------------------------------------------------------

TEST(config_mlx_quantization_overrides) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(ct_model_config_load(&c, ct_test_fixture("config/qwen2.5-0.5b-mlx-4bit.json"), &err), &err);
    CHECK(c.quant.quantized);
    CHECK_EQ(c.quant.bits, 4);
    CHECK_EQ(c.quant.group_size, 64);
    CHECK_STREQ(c.quant.mode, "affine");
    CHECK_EQ(c.n_quant_overrides, 5);
    ct_quant_spec s = ct_model_config_quant_for(&c, "model.layers.5.self_attn.q_proj");
    CHECK(s.quantized && s.bits == 4 && s.group_size == 64);
    s = ct_model_config_quant_for(&c, "model.embed_tokens");
    CHECK(s.quantized && s.bits == 6 && s.group_size == 32);
    s = ct_model_config_quant_for(&c, "model.layers.0.mlp.down_proj"); // no "mode": affine
    CHECK(s.quantized && s.bits == 6 && s.group_size == 64);
    CHECK_STREQ(s.mode, "affine");
    s = ct_model_config_quant_for(&c, "model.layers.1.mlp.gate_proj");
    CHECK(!s.quantized);
    s = ct_model_config_quant_for(&c, "model.layers.23.mlp.down_proj");
    CHECK(s.quantized && s.bits == 8 && s.group_size == 128);
    ct_model_config_free(&c);
}

TEST(config_quantization_config_mlx_form) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, LLAMA(", \"quantization_config\": {\"group_size\": 32, \"bits\": 3}"), &err), &err);
    CHECK(c.quant.quantized);
    CHECK_EQ(c.quant.bits, 3);
    CHECK_EQ(c.quant.group_size, 32);
    ct_model_config_free(&c);
}

TEST(config_quant_override_default_group_from_mode) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, LLAMA(", \"quantization\": {\"group_size\": 32, \"bits\": 2, \"lm_head\": {\"bits\": 8}, \"x\": true}"), &err), &err);
    ct_quant_spec s = ct_model_config_quant_for(&c, "lm_head"); // MLX: absent keys take affine's defaults
    CHECK_EQ(s.bits, 8);
    CHECK_EQ(s.group_size, 64);
    s = ct_model_config_quant_for(&c, "x");
    CHECK(s.quantized && s.bits == 2 && s.group_size == 32);
    ct_model_config_free(&c);
}

// ---- errors ----------------------------------------------------------------------

TEST(config_err_malformed_json_line_col) {
    ct_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.json", ct_test_tmpdir());
    const char *text = "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": ,\n}";
    CHECK_OK(ct_write_file_atomic(path, text, strlen(text), &err), &err);
    ct_model_config c;
    CHECK_FAILS(ct_model_config_load(&c, path, &err), &err, "bad.json:3:");
    CHECK_CONTAINS(err.msg, "malformed JSON");
}

TEST(config_err_missing_file) {
    ct_error err;
    ct_model_config c;
    CHECK_FAILS(ct_model_config_load(&c, "/nonexistent-model-dir/config.json", &err), &err, "/nonexistent-model-dir/config.json");
}

TEST(config_err_missing_model_type) {
    check_fails("{\"hidden_size\": 64}", CT_ERR_FORMAT, "cfg.json: missing required \"model_type\"");
}

TEST(config_err_unsupported_model_type_lists_supported) {
    check_fails("{\"model_type\": \"gpt2\"}", CT_ERR_UNSUPPORTED, "\"gpt2\" is not supported (supported: llama, mistral, qwen2");
}

TEST(config_err_model_type_not_string) {
    check_fails("{\"model_type\": 3}", CT_ERR_FORMAT, "\"model_type\" must be a string, got a number");
}

TEST(config_err_not_an_object) {
    check_fails("[1, 2]", CT_ERR_FORMAT, "must hold an object, got an array");
}

TEST(config_err_wrong_type_size) {
    check_fails(LLAMA(", \"max_position_embeddings\": \"4096\""), CT_ERR_FORMAT,
                "cfg.json: \"max_position_embeddings\" must be an integer, got a string");
}

TEST(config_err_fractional_size) {
    check_fails(LLAMA(", \"head_dim\": 16.5"), CT_ERR_FORMAT, "\"head_dim\" must be an integer, got a number");
}

TEST(config_err_wrong_type_bool) {
    check_fails(LLAMA(", \"tie_word_embeddings\": 1"), CT_ERR_FORMAT, "\"tie_word_embeddings\" must be true or false, got a number");
}

TEST(config_err_non_positive_size) {
    check_fails(LLAMA(", \"intermediate_size\": 0"), CT_ERR_FORMAT, "cfg.json: \"intermediate_size\" must be positive, got 0");
}

TEST(config_err_negative_layers) {
    check_fails("{\"model_type\": \"qwen2\", \"num_hidden_layers\": -3}", CT_ERR_FORMAT, "\"num_hidden_layers\" must be positive, got -3");
}

TEST(config_err_non_positive_eps) {
    check_fails(LLAMA(", \"rms_norm_eps\": 0"), CT_ERR_FORMAT, "\"rms_norm_eps\" must be a positive number");
}

TEST(config_err_heads_do_not_divide_hidden) {
    check_fails("{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 6, \"num_key_value_heads\": 2}",
                CT_ERR_FORMAT, "\"num_attention_heads\" (6) must divide \"hidden_size\" (64) when \"head_dim\" is absent");
}

TEST(config_explicit_head_dim_lifts_divisibility) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 6, \"head_dim\": 12}", &err), &err);
    CHECK_EQ(c.head_dim, 12);
    CHECK_EQ(c.num_key_value_heads, 6);
    ct_model_config_free(&c);
}

TEST(config_err_kv_heads_do_not_divide_heads) {
    check_fails(LLAMA(", \"num_key_value_heads\": 3"), CT_ERR_FORMAT,
                "\"num_key_value_heads\" (3) must divide \"num_attention_heads\" (4)");
}

TEST(config_err_unknown_rope_type_lists_supported) {
    check_fails(LLAMA(", \"rope_scaling\": {\"rope_type\": \"ntk-by-parts\", \"factor\": 2}"), CT_ERR_UNSUPPORTED,
                "cfg.json: rope_scaling: \"rope_type\": RoPE type \"ntk-by-parts\" is not supported (supported: default, linear, dynamic, llama3, yarn, longrope");
}

TEST(config_err_linear_rope_missing_factor) {
    check_fails(LLAMA(", \"rope_scaling\": {\"type\": \"linear\"}"), CT_ERR_FORMAT,
                "cfg.json: rope_scaling: missing required \"factor\"");
}

TEST(config_err_llama3_rope_missing_low_freq_factor) {
    check_fails(LLAMA(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"high_freq_factor\": 4}"), CT_ERR_FORMAT,
                "rope_scaling: missing required \"low_freq_factor\"");
}

TEST(config_err_yarn_missing_factor_in_rope_parameters) {
    check_fails(LLAMA(", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000}"), CT_ERR_FORMAT,
                "cfg.json: rope_parameters: missing required \"factor\"");
}

TEST(config_err_rope_factor_wrong_type) {
    check_fails(LLAMA(", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": \"2\"}"), CT_ERR_FORMAT,
                "rope_scaling: \"factor\" must be a number, got a string");
}

TEST(config_err_rope_scaling_not_object) {
    check_fails(LLAMA(", \"rope_scaling\": 8"), CT_ERR_FORMAT, "\"rope_scaling\" must be an object, got a number");
}

TEST(config_err_longrope_factor_length) {
    check_fails("{\"model_type\": \"phi3\", \"hidden_size\": 16, \"num_attention_heads\": 2,"
                " \"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1,2,3], \"short_factor\": [1,1,1,1]}}",
                CT_ERR_FORMAT, "rope_scaling: \"long_factor\" must have rotary_dim/2 = 4 values, got 3");
}

TEST(config_err_longrope_missing_short_factor) {
    check_fails("{\"model_type\": \"phi3\", \"hidden_size\": 16, \"num_attention_heads\": 2,"
                " \"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1,2,3,4]}}",
                CT_ERR_FORMAT, "rope_scaling: missing required \"short_factor\"");
}

TEST(config_err_nested_rope_outside_gemma3) {
    check_fails(LLAMA(", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"}}"), CT_ERR_UNSUPPORTED,
                "rope_parameters: RoPE parameters per layer type are only supported for gemma3");
}

TEST(config_err_unsupported_activation) {
    check_fails(LLAMA(", \"hidden_act\": \"mish\""), CT_ERR_UNSUPPORTED, "\"hidden_act\": activation \"mish\" is not supported");
}

TEST(config_err_layer_types_length) {
    check_fails(LLAMA(", \"layer_types\": [\"full_attention\"]"), CT_ERR_FORMAT,
                "\"layer_types\" has 1 entries but \"num_hidden_layers\" is 2");
}

TEST(config_err_layer_types_unknown_entry) {
    check_fails(LLAMA(", \"sliding_window\": 8, \"layer_types\": [\"full_attention\", \"chunked_attention\"]"), CT_ERR_UNSUPPORTED,
                "\"layer_types\"[1]: \"chunked_attention\" is not supported");
}

TEST(config_llama_layer_types_slide) {
    ct_error err;
    ct_model_config c;
    CHECK_OK(parse_str(&c, LLAMA(", \"sliding_window\": 8, \"layer_types\": [\"sliding_attention\", \"full_attention\"]"), &err), &err);
    CHECK_EQ(c.layer_attn[0], CT_ATTN_SLIDING);
    CHECK_EQ(c.layer_attn[1], CT_ATTN_FULL);
    CHECK_EQ(c.sliding_window, 8);
    ct_model_config_free(&c);
}

TEST(config_err_text_config_not_object) {
    check_fails("{\"model_type\": \"gemma3\", \"text_config\": []}", CT_ERR_FORMAT, "\"text_config\" must be an object, got an array");
}

TEST(config_err_text_config_key_named) {
    check_fails("{\"model_type\": \"gemma3\", \"text_config\": {\"hidden_size\": -1}}", CT_ERR_FORMAT,
                "cfg.json: text_config: \"hidden_size\" must be positive, got -1");
}

TEST(config_err_eos_wrong_type) {
    check_fails(LLAMA(", \"eos_token_id\": [2, \"x\"]"), CT_ERR_FORMAT, "\"eos_token_id\" must be a token id or a list of them, got a string");
}

TEST(config_err_experts_per_tok_exceeds_experts) {
    check_fails("{\"model_type\": \"mixtral\", \"num_local_experts\": 4, \"num_experts_per_tok\": 6}", CT_ERR_FORMAT,
                "\"num_experts_per_tok\" (6) exceeds \"num_local_experts\" (4)");
}

TEST(config_err_mlp_only_layers_out_of_range) {
    check_fails("{\"model_type\": \"qwen3_moe\", \"num_hidden_layers\": 4, \"mlp_only_layers\": [1, 4]}", CT_ERR_FORMAT,
                "\"mlp_only_layers\"[1] must be a layer index below 4");
}

TEST(config_err_quant_method_unsupported) {
    check_fails(LLAMA(", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128}"), CT_ERR_UNSUPPORTED,
                "cfg.json: quantization_config: quant_method \"gptq\" is not supported");
}

TEST(config_err_quant_bits) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 64, \"bits\": 7}"), CT_ERR_UNSUPPORTED,
                "cfg.json: quantization: \"bits\" must be one of 2, 3, 4, 5, 6, 8, got 7");
}

TEST(config_err_quant_group_size) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 16, \"bits\": 4}"), CT_ERR_UNSUPPORTED,
                "quantization: \"group_size\" must be one of 32, 64, 128, got 16");
}

TEST(config_err_quant_mode_unsupported) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 32, \"bits\": 4, \"mode\": \"mxfp4\"}"), CT_ERR_UNSUPPORTED,
                "quantization: \"mode\": quantization mode \"mxfp4\" is not supported (only affine)");
}

TEST(config_err_quant_missing_bits) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 64}"), CT_ERR_FORMAT, "quantization: missing required \"bits\"");
}

TEST(config_err_quant_override_names_module) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 64, \"bits\": 4, \"model.layers.0.mlp.down_proj\": {\"bits\": 9}}"),
                CT_ERR_UNSUPPORTED, "quantization: \"model.layers.0.mlp.down_proj\": \"bits\" must be one of");
}

TEST(config_err_quant_override_wrong_type) {
    check_fails(LLAMA(", \"quantization\": {\"group_size\": 64, \"bits\": 4, \"lm_head\": 6}"), CT_ERR_FORMAT,
                "quantization: \"lm_head\" must be an object or false, got a number");
}
