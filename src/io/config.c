// config.json -> ct_model_config. Defaults follow transformers' config classes
// (v5) per model_type; see docs/formats.md "config.json" for every rule.
#include "ctune/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"

// Defaults of one model_type when a key is absent (transformers' config class).
typedef struct arch_info {
    const char *name;
    int64_t vocab, hidden, intermediate, layers, heads;
    int64_t kv_heads;     // 0: heads
    int64_t head_dim;     // 0: hidden / heads
    int64_t max_pos;
    double eps, theta;
    bool tie;
    int64_t bos, eos, pad; // -1: none
    int64_t window;        // sliding_window when the key is absent (0: none)
} arch_info;

static const arch_info ARCHS[CT_ARCH_COUNT] = {
    [CT_ARCH_LLAMA] = {"llama", 32000, 4096, 11008, 32, 32, 0, 0, 2048, 1e-6, 1e4, false, 1, 2, -1, 0},
    [CT_ARCH_MISTRAL] = {"mistral", 32000, 4096, 14336, 32, 32, 8, 0, 131072, 1e-6, 1e4, false, 1, 2, -1, 4096},
    [CT_ARCH_QWEN2] = {"qwen2", 151936, 4096, 22016, 32, 32, 32, 0, 32768, 1e-6, 1e4, false, -1, -1, -1, 4096},
    [CT_ARCH_QWEN3] = {"qwen3", 151936, 4096, 22016, 32, 32, 32, 128, 32768, 1e-6, 1e4, false, -1, -1, -1, 4096},
    [CT_ARCH_PHI3] = {"phi3", 32064, 3072, 8192, 32, 32, 0, 0, 4096, 1e-5, 1e4, false, 1, 32000, 32000, 0},
    [CT_ARCH_GEMMA2] = {"gemma2", 256000, 2304, 9216, 26, 8, 4, 256, 8192, 1e-6, 1e4, true, 2, 1, 0, 4096},
    [CT_ARCH_GEMMA3] = {"gemma3_text", 262208, 2304, 9216, 26, 8, 4, 256, 131072, 1e-6, 1e6, true, 2, 1, 0, 4096},
    [CT_ARCH_MIXTRAL] = {"mixtral", 32000, 4096, 14336, 32, 32, 8, 0, 131072, 1e-5, 1e6, false, 1, 2, -1, 0},
    [CT_ARCH_QWEN3_MOE] = {"qwen3_moe", 151936, 2048, 6144, 24, 32, 4, 0, 32768, 1e-6, 1e4, false, -1, -1, -1, 4096},
};
#define SUPPORTED_TYPES "llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3, gemma3_text, mixtral, qwen3_moe"
#define SUPPORTED_ROPE "default, linear, dynamic, llama3, yarn, longrope, su"

const char *ct_arch_name(ct_arch a) {
    return (unsigned)a < CT_ARCH_COUNT ? ARCHS[a].name : "unknown";
}

const char *ct_activation_name(ct_activation a) {
    switch (a) {
    case CT_ACT_SILU: return "silu";
    case CT_ACT_GELU: return "gelu";
    case CT_ACT_GELU_TANH: return "gelu_pytorch_tanh";
    case CT_ACT_RELU: return "relu";
    }
    return "unknown";
}

const char *ct_rope_type_name(ct_rope_type t) {
    switch (t) {
    case CT_ROPE_DEFAULT: return "default";
    case CT_ROPE_LINEAR: return "linear";
    case CT_ROPE_DYNAMIC: return "dynamic";
    case CT_ROPE_LLAMA3: return "llama3";
    case CT_ROPE_YARN: return "yarn";
    case CT_ROPE_LONGROPE: return "longrope";
    }
    return "unknown";
}

// ---- small JSON helpers ----------------------------------------------------

// A member that is present and not null.
static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return it && !cJSON_IsNull(it) ? it : NULL;
}

static bool is_arch(const ct_model_config *c, ct_arch a) { return c->arch == a; }

static bool is_gemma(const ct_model_config *c) { return c->arch == CT_ARCH_GEMMA2 || c->arch == CT_ARCH_GEMMA3; }

static bool is_qwen(const ct_model_config *c) {
    return c->arch == CT_ARCH_QWEN2 || c->arch == CT_ARCH_QWEN3 || c->arch == CT_ARCH_QWEN3_MOE;
}

// An optional object member: absent/null leaves *out NULL.
static ct_status opt_object(const cJSON *obj, const char *key, const cJSON **out, ct_error *err) {
    const cJSON *it = member(obj, key);
    *out = NULL;
    if (!it)
        return CT_OK;
    if (!cJSON_IsObject(it))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be an object, got %s", key, ct_json_type_name(it));
    *out = it;
    return CT_OK;
}

// An int that may be written as null to mean "none" (-> none_value); absent keeps *out.
static ct_status nullable_int(const cJSON *obj, const char *key, int64_t none_value, int64_t *out, ct_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (it && cJSON_IsNull(it)) {
        *out = none_value;
        return CT_OK;
    }
    return ct_json_int(obj, key, out, err);
}

static ct_status nullable_double(const cJSON *obj, const char *key, double none_value, double *out, ct_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (it && cJSON_IsNull(it)) {
        *out = none_value;
        return CT_OK;
    }
    return ct_json_double(obj, key, out, err);
}

static ct_status need_positive(const char *key, int64_t v, ct_error *err) {
    if (v <= 0)
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be positive, got %lld", key, (long long)v);
    return CT_OK;
}

static ct_status need_positive_double(const char *key, double v, ct_error *err) {
    if (!(v > 0) || !isfinite(v))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be a positive number, got %g", key, v);
    return CT_OK;
}

static ct_status copy_string(char *dst, size_t n, const char *key, const char *s, ct_error *err) {
    if (strlen(s) >= n)
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" is too long (%zu bytes)", key, strlen(s));
    memcpy(dst, s, strlen(s) + 1);
    return CT_OK;
}

// ---- sizes, activation, biases ---------------------------------------------

static ct_status parse_sizes(ct_model_config *c, const cJSON *t, ct_error *err) {
    const arch_info *a = &ARCHS[c->arch];
    c->vocab_size = a->vocab;
    c->hidden_size = a->hidden;
    c->intermediate_size = a->intermediate;
    c->num_hidden_layers = a->layers;
    c->num_attention_heads = a->heads;
    c->max_position_embeddings = a->max_pos;
    c->rms_norm_eps = a->eps;
    CT_TRY(ct_json_int(t, "vocab_size", &c->vocab_size, err));
    CT_TRY(ct_json_int(t, "hidden_size", &c->hidden_size, err));
    CT_TRY(ct_json_int(t, "intermediate_size", &c->intermediate_size, err));
    CT_TRY(ct_json_int(t, "num_hidden_layers", &c->num_hidden_layers, err));
    CT_TRY(ct_json_int(t, "num_attention_heads", &c->num_attention_heads, err));
    CT_TRY(ct_json_int(t, "max_position_embeddings", &c->max_position_embeddings, err));
    CT_TRY(ct_json_double(t, "rms_norm_eps", &c->rms_norm_eps, err));
    // Absent: the class default; null: as many as the attention heads.
    c->num_key_value_heads = a->kv_heads ? a->kv_heads : c->num_attention_heads;
    CT_TRY(nullable_int(t, "num_key_value_heads", c->num_attention_heads, &c->num_key_value_heads, err));
    c->head_dim = 0;
    CT_TRY(ct_json_int(t, "head_dim", &c->head_dim, err));
    bool explicit_head_dim = member(t, "head_dim") != NULL;

    CT_TRY(need_positive("vocab_size", c->vocab_size, err));
    CT_TRY(need_positive("hidden_size", c->hidden_size, err));
    CT_TRY(need_positive("intermediate_size", c->intermediate_size, err));
    CT_TRY(need_positive("num_hidden_layers", c->num_hidden_layers, err));
    CT_TRY(need_positive("num_attention_heads", c->num_attention_heads, err));
    CT_TRY(need_positive("num_key_value_heads", c->num_key_value_heads, err));
    CT_TRY(need_positive("max_position_embeddings", c->max_position_embeddings, err));
    CT_TRY(need_positive_double("rms_norm_eps", c->rms_norm_eps, err));
    if (explicit_head_dim) {
        CT_TRY(need_positive("head_dim", c->head_dim, err));
    } else if (a->head_dim) {
        c->head_dim = a->head_dim;
    } else {
        if (c->hidden_size % c->num_attention_heads)
            return ct_fail(err, CT_ERR_FORMAT,
                           "\"num_attention_heads\" (%lld) must divide \"hidden_size\" (%lld) when \"head_dim\" is absent",
                           (long long)c->num_attention_heads, (long long)c->hidden_size);
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->num_attention_heads % c->num_key_value_heads)
        return ct_fail(err, CT_ERR_FORMAT, "\"num_key_value_heads\" (%lld) must divide \"num_attention_heads\" (%lld)",
                       (long long)c->num_key_value_heads, (long long)c->num_attention_heads);
    return CT_OK;
}

static ct_status parse_activation(ct_model_config *c, const cJSON *t, ct_error *err) {
    // Gemma 2/3 read only "hidden_activation" (their files often carry a stale "hidden_act" too).
    const char *key = is_gemma(c) ? "hidden_activation" : "hidden_act";
    const char *name = is_gemma(c) ? "gelu_pytorch_tanh" : "silu";
    CT_TRY(ct_json_string(t, key, &name, err));
    static const struct {
        const char *name;
        ct_activation act;
    } acts[] = {{"silu", CT_ACT_SILU}, {"swish", CT_ACT_SILU}, {"gelu", CT_ACT_GELU},
                {"gelu_pytorch_tanh", CT_ACT_GELU_TANH}, {"gelu_new", CT_ACT_GELU_TANH}, {"relu", CT_ACT_RELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (!strcmp(name, acts[i].name)) {
            c->hidden_act = acts[i].act;
            return CT_OK;
        }
    }
    return ct_fail(err, CT_ERR_UNSUPPORTED, "\"%s\": activation \"%s\" is not supported (supported: silu, swish, gelu, gelu_pytorch_tanh, gelu_new, relu)",
                   key, name);
}

static ct_status parse_biases_and_norms(ct_model_config *c, const cJSON *t, ct_error *err) {
    bool attention_bias = false;
    CT_TRY(ct_json_bool(t, "attention_bias", &attention_bias, err));
    switch (c->arch) {
    case CT_ARCH_QWEN2: // q/k/v always carry a bias, o_proj never
        c->qkv_bias = true;
        c->o_bias = false;
        break;
    case CT_ARCH_LLAMA:
    case CT_ARCH_QWEN3:
    case CT_ARCH_QWEN3_MOE:
    case CT_ARCH_GEMMA2:
    case CT_ARCH_GEMMA3:
        c->qkv_bias = c->o_bias = attention_bias;
        break;
    default: // mistral, mixtral, phi3: no attention biases whatever the file says
        c->qkv_bias = c->o_bias = false;
        break;
    }
    if (is_arch(c, CT_ARCH_LLAMA))
        CT_TRY(ct_json_bool(t, "mlp_bias", &c->mlp_bias, err));
    c->qk_norm = c->arch == CT_ARCH_QWEN3 || c->arch == CT_ARCH_QWEN3_MOE || c->arch == CT_ARCH_GEMMA3;
    return CT_OK;
}

// ---- RoPE --------------------------------------------------------------------

static ct_status rope_need_double(const cJSON *r, const char *key, double *out, ct_error *err) {
    if (!member(r, key))
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"%s\"", key);
    CT_TRY(ct_json_double(r, key, out, err));
    return need_positive_double(key, *out, err);
}

static ct_status rope_factor_list(const cJSON *r, const char *key, int n, double **out, ct_error *err) {
    const cJSON *arr = member(r, key);
    if (!arr)
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"%s\"", key);
    if (!cJSON_IsArray(arr))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be an array of numbers, got %s", key, ct_json_type_name(arr));
    if (cJSON_GetArraySize(arr) != n)
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must have rotary_dim/2 = %d values, got %d", key, n,
                       cJSON_GetArraySize(arr));
    *out = calloc((size_t)n, sizeof **out);
    if (!*out)
        return ct_fail(err, CT_ERR_NOMEM, "\"%s\": out of memory", key);
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v))
            return ct_fail(err, CT_ERR_FORMAT, "\"%s\"[%d] must be a number, got %s", key, i, ct_json_type_name(v));
        (*out)[i] = v->valuedouble;
    }
    return CT_OK;
}

static double yarn_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

static ct_status rope_type_of(const cJSON *r, ct_rope_type *type, ct_error *err) {
    const char *name = "default";
    const char *key = member(r, "rope_type") ? "rope_type" : "type";
    CT_TRY(ct_json_string(r, key, &name, err));
    static const struct {
        const char *name;
        ct_rope_type type;
    } types[] = {{"default", CT_ROPE_DEFAULT}, {"linear", CT_ROPE_LINEAR},  {"dynamic", CT_ROPE_DYNAMIC},
                 {"llama3", CT_ROPE_LLAMA3},   {"yarn", CT_ROPE_YARN},      {"longrope", CT_ROPE_LONGROPE},
                 {"su", CT_ROPE_LONGROPE}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (!strcmp(name, types[i].name)) {
            *type = types[i].type;
            return CT_OK;
        }
    }
    return ct_fail(err, CT_ERR_UNSUPPORTED, "\"%s\": RoPE type \"%s\" is not supported (supported: " SUPPORTED_ROPE ")",
                   key, name);
}

// The original training length: the top-level key wins (transformers gives phi3's
// top-level field priority; phi3 defaults it to 4096), then the rope dict's, then
// max_position_embeddings.
static ct_status rope_original_max(const ct_model_config *c, const cJSON *t, const cJSON *r, int64_t *out,
                                   ct_error *err) {
    *out = c->max_position_embeddings;
    CT_TRY(ct_json_int(r, "original_max_position_embeddings", out, err));
    if (is_arch(c, CT_ARCH_PHI3))
        *out = 4096;
    CT_TRY(ct_json_int(t, "original_max_position_embeddings", out, err));
    return need_positive("original_max_position_embeddings", *out, err);
}

// r: the rope_scaling / rope_parameters object (may be NULL); t: the text config.
static ct_status parse_rope_params(ct_model_config *c, const cJSON *t, const cJSON *r, ct_error *err) {
    ct_rope *p = &c->rope;
    p->factor = 1;
    p->attention_factor = 1;
    if (!r)
        return CT_OK;
    CT_TRY(rope_type_of(r, &p->type, err));
    CT_TRY(ct_json_double(r, "rope_theta", &p->theta, err));
    switch (p->type) {
    case CT_ROPE_DEFAULT:
        break;
    case CT_ROPE_LINEAR:
    case CT_ROPE_DYNAMIC:
        CT_TRY(rope_need_double(r, "factor", &p->factor, err));
        break;
    case CT_ROPE_LLAMA3:
        CT_TRY(rope_need_double(r, "factor", &p->factor, err));
        CT_TRY(rope_need_double(r, "low_freq_factor", &p->low_freq_factor, err));
        CT_TRY(rope_need_double(r, "high_freq_factor", &p->high_freq_factor, err));
        if (p->high_freq_factor <= p->low_freq_factor)
            return ct_fail(err, CT_ERR_FORMAT, "\"high_freq_factor\" (%g) must exceed \"low_freq_factor\" (%g)",
                           p->high_freq_factor, p->low_freq_factor);
        CT_TRY(rope_original_max(c, t, r, &p->original_max_position_embeddings, err));
        break;
    case CT_ROPE_YARN:
        CT_TRY(rope_need_double(r, "factor", &p->factor, err));
        CT_TRY(rope_original_max(c, t, r, &p->original_max_position_embeddings, err));
        CT_TRY(ct_json_double(r, "beta_fast", &p->beta_fast, err));
        CT_TRY(ct_json_double(r, "beta_slow", &p->beta_slow, err));
        CT_TRY(ct_json_double(r, "mscale", &p->mscale, err));
        CT_TRY(ct_json_double(r, "mscale_all_dim", &p->mscale_all_dim, err));
        p->truncate = true;
        CT_TRY(ct_json_bool(r, "truncate", &p->truncate, err));
        if (p->beta_fast == 0) // transformers: `get("beta_fast") or 32`
            p->beta_fast = 32;
        if (p->beta_slow == 0)
            p->beta_slow = 1;
        if (p->mscale != 0 && p->mscale_all_dim != 0)
            p->attention_factor = yarn_mscale(p->factor, p->mscale) / yarn_mscale(p->factor, p->mscale_all_dim);
        else
            p->attention_factor = yarn_mscale(p->factor, 1);
        CT_TRY(ct_json_double(r, "attention_factor", &p->attention_factor, err));
        break;
    case CT_ROPE_LONGROPE: {
        CT_TRY(rope_original_max(c, t, r, &p->original_max_position_embeddings, err));
        p->n_factors = (int)(c->rotary_dim / 2);
        CT_TRY(rope_factor_list(r, "long_factor", p->n_factors, &p->long_factor, err));
        CT_TRY(rope_factor_list(r, "short_factor", p->n_factors, &p->short_factor, err));
        p->factor = (double)c->max_position_embeddings / (double)p->original_max_position_embeddings;
        CT_TRY(ct_json_double(r, "factor", &p->factor, err));
        p->attention_factor = p->factor <= 1 ? 1.0
                                             : sqrt(1 + log(p->factor) / log((double)p->original_max_position_embeddings));
        CT_TRY(ct_json_double(r, "attention_factor", &p->attention_factor, err));
        break;
    }
    }
    return CT_OK;
}

// gemma3's transformers-5 form nests the parameters by layer type:
// {"full_attention": {...}, "sliding_attention": {...}}. The sliding entry may only
// set a theta (those layers use unscaled default RoPE).
static ct_status split_nested_rope(ct_model_config *c, const cJSON **r, ct_error *err) {
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(*r, "full_attention");
    const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(*r, "sliding_attention");
    if (!full && !sliding)
        return CT_OK;
    if (!is_arch(c, CT_ARCH_GEMMA3))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "RoPE parameters per layer type are only supported for gemma3");
    if (sliding && !cJSON_IsNull(sliding)) {
        if (!cJSON_IsObject(sliding))
            return ct_fail(err, CT_ERR_FORMAT, "\"sliding_attention\" must be an object, got %s", ct_json_type_name(sliding));
        ct_rope_type type;
        CT_TRY(rope_type_of(sliding, &type, err));
        if (type != CT_ROPE_DEFAULT)
            return ct_fail(err, CT_ERR_UNSUPPORTED, "\"sliding_attention\": RoPE type \"%s\" is not supported there (only default)",
                           ct_rope_type_name(type));
        CT_TRY(ct_json_double(sliding, "rope_theta", &c->rope_local_base_freq, err));
    }
    if (full && !cJSON_IsNull(full) && !cJSON_IsObject(full))
        return ct_fail(err, CT_ERR_FORMAT, "\"full_attention\" must be an object, got %s", ct_json_type_name(full));
    *r = full && cJSON_IsObject(full) ? full : NULL;
    return CT_OK;
}

static ct_status parse_rope(ct_model_config *c, const cJSON *t, ct_error *err) {
    c->partial_rotary_factor = 1.0;
    CT_TRY(ct_json_double(t, "partial_rotary_factor", &c->partial_rotary_factor, err));
    c->rope.theta = ARCHS[c->arch].theta;
    CT_TRY(ct_json_double(t, "rope_theta", &c->rope.theta, err));
    if (is_arch(c, CT_ARCH_GEMMA3)) {
        c->rope_local_base_freq = 1e4;
        CT_TRY(ct_json_double(t, "rope_local_base_freq", &c->rope_local_base_freq, err));
    }
    // transformers 5: rope_scaling (when set) wins over rope_parameters.
    const char *key = member(t, "rope_scaling") ? "rope_scaling" : "rope_parameters";
    const cJSON *r;
    CT_TRY(opt_object(t, key, &r, err));
    if (r) {
        ct_status st = split_nested_rope(c, &r, err);
        if (st == CT_OK)
            CT_TRY(ct_json_double(r, "partial_rotary_factor", &c->partial_rotary_factor, err));
        if (st != CT_OK)
            return ct_error_context(err, "%s", key);
    }
    if (!(c->partial_rotary_factor > 0 && c->partial_rotary_factor <= 1))
        return ct_fail(err, CT_ERR_FORMAT, "\"partial_rotary_factor\" must be in (0, 1], got %g", c->partial_rotary_factor);
    c->rotary_dim = (int64_t)((double)c->head_dim * c->partial_rotary_factor);
    if (c->rotary_dim < 2 || c->rotary_dim % 2)
        return ct_fail(err, CT_ERR_FORMAT, "\"partial_rotary_factor\" %g gives an odd or empty rotary dimension %lld (head_dim %lld)",
                       c->partial_rotary_factor, (long long)c->rotary_dim, (long long)c->head_dim);
    if (parse_rope_params(c, t, r, err) != CT_OK)
        return ct_error_context(err, "%s", key);
    if (!isfinite(c->rope.theta) || c->rope.theta <= 1)
        return ct_fail(err, CT_ERR_FORMAT, "\"rope_theta\" must be a number above 1, got %g", c->rope.theta);
    if (is_arch(c, CT_ARCH_GEMMA3) && !(isfinite(c->rope_local_base_freq) && c->rope_local_base_freq > 1))
        return ct_fail(err, CT_ERR_FORMAT, "\"rope_local_base_freq\" must be a number above 1, got %g", c->rope_local_base_freq);
    return CT_OK;
}

// ---- attention per layer -----------------------------------------------------

static ct_status parse_layer_types(ct_model_config *c, const cJSON *arr, ct_error *err) {
    if (!cJSON_IsArray(arr))
        return ct_fail(err, CT_ERR_FORMAT, "\"layer_types\" must be an array of strings, got %s", ct_json_type_name(arr));
    if (cJSON_GetArraySize(arr) != c->num_hidden_layers)
        return ct_fail(err, CT_ERR_FORMAT, "\"layer_types\" has %d entries but \"num_hidden_layers\" is %lld",
                       cJSON_GetArraySize(arr), (long long)c->num_hidden_layers);
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++) {
        if (!cJSON_IsString(v))
            return ct_fail(err, CT_ERR_FORMAT, "\"layer_types\"[%d] must be a string, got %s", i, ct_json_type_name(v));
        if (!strcmp(v->valuestring, "full_attention"))
            c->layer_attn[i] = CT_ATTN_FULL;
        else if (!strcmp(v->valuestring, "sliding_attention"))
            c->layer_attn[i] = CT_ATTN_SLIDING;
        else
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "\"layer_types\"[%d]: \"%s\" is not supported (supported: full_attention, sliding_attention)", i,
                           v->valuestring);
    }
    return CT_OK;
}

// Which layers slide when the file has no layer_types (transformers' rules).
static ct_status default_layer_kinds(ct_model_config *c, const cJSON *t, ct_error *err) {
    int64_t n = c->num_hidden_layers, first_sliding = n, pattern = 0;
    switch (c->arch) {
    case CT_ARCH_MISTRAL:
    case CT_ARCH_MIXTRAL:
    case CT_ARCH_PHI3:
    case CT_ARCH_QWEN3_MOE:
        first_sliding = 0; // every layer, when a window is set
        break;
    case CT_ARCH_QWEN2:
    case CT_ARCH_QWEN3:
        first_sliding = 28;
        CT_TRY(ct_json_int(t, "max_window_layers", &first_sliding, err));
        break;
    case CT_ARCH_GEMMA2:
        pattern = 2;
        break;
    case CT_ARCH_GEMMA3:
        pattern = 6;
        CT_TRY(ct_json_int(t, "sliding_window_pattern", &pattern, err));
        CT_TRY(need_positive("sliding_window_pattern", pattern, err));
        break;
    default: // llama: a window only with layer_types
        break;
    }
    for (int64_t i = 0; i < n; i++) {
        bool sliding = pattern ? (i + 1) % pattern != 0 : i >= first_sliding;
        c->layer_attn[i] = sliding ? CT_ATTN_SLIDING : CT_ATTN_FULL;
    }
    return CT_OK;
}

static ct_status parse_attention_layout(ct_model_config *c, const cJSON *t, ct_error *err) {
    c->layer_attn = calloc((size_t)c->num_hidden_layers, sizeof *c->layer_attn);
    if (!c->layer_attn)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory for %lld layers", (long long)c->num_hidden_layers);
    c->sliding_window = ARCHS[c->arch].window;
    CT_TRY(nullable_int(t, "sliding_window", 0, &c->sliding_window, err));
    if (member(t, "sliding_window"))
        CT_TRY(need_positive("sliding_window", c->sliding_window, err));
    if (is_qwen(c)) {
        bool use = false;
        CT_TRY(ct_json_bool(t, "use_sliding_window", &use, err));
        if (!use)
            c->sliding_window = 0;
    }
    if (is_arch(c, CT_ARCH_GEMMA3)) {
        bool bidirectional = false;
        CT_TRY(ct_json_bool(t, "use_bidirectional_attention", &bidirectional, err));
        if (bidirectional)
            return ct_fail(err, CT_ERR_UNSUPPORTED, "\"use_bidirectional_attention\": bidirectional gemma3 is not supported");
    }
    const cJSON *types = member(t, "layer_types");
    CT_TRY(types ? parse_layer_types(c, types, err) : default_layer_kinds(c, t, err));
    // Invariant: sliding_window == 0 exactly when no layer slides.
    bool any = false;
    for (int64_t i = 0; i < c->num_hidden_layers; i++) {
        if (!c->sliding_window)
            c->layer_attn[i] = CT_ATTN_FULL;
        any |= c->layer_attn[i] == CT_ATTN_SLIDING;
    }
    if (!any)
        c->sliding_window = 0;
    return CT_OK;
}

static ct_status parse_softcaps(ct_model_config *c, const cJSON *t, ct_error *err) {
    c->query_pre_attn_scalar = (double)c->head_dim;
    if (!is_gemma(c))
        return CT_OK;
    c->query_pre_attn_scalar = 256;
    CT_TRY(ct_json_double(t, "query_pre_attn_scalar", &c->query_pre_attn_scalar, err));
    CT_TRY(need_positive_double("query_pre_attn_scalar", c->query_pre_attn_scalar, err));
    if (is_arch(c, CT_ARCH_GEMMA2)) {
        c->attn_logit_softcapping = 50;
        c->final_logit_softcapping = 30;
    }
    CT_TRY(nullable_double(t, "attn_logit_softcapping", 0, &c->attn_logit_softcapping, err));
    CT_TRY(nullable_double(t, "final_logit_softcapping", 0, &c->final_logit_softcapping, err));
    if (c->attn_logit_softcapping < 0 || c->final_logit_softcapping < 0)
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must not be negative",
                       c->attn_logit_softcapping < 0 ? "attn_logit_softcapping" : "final_logit_softcapping");
    return CT_OK;
}

// ---- mixture of experts ------------------------------------------------------

static ct_status parse_mlp_only_layers(ct_model_config *c, const cJSON *t, ct_error *err) {
    const cJSON *arr = member(t, "mlp_only_layers");
    if (!arr)
        return CT_OK;
    if (!cJSON_IsArray(arr))
        return ct_fail(err, CT_ERR_FORMAT, "\"mlp_only_layers\" must be an array of layer indices, got %s",
                       ct_json_type_name(arr));
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++) {
        int64_t layer;
        if (!ct_json_as_int(v, &layer) || layer < 0 || layer >= c->num_hidden_layers)
            return ct_fail(err, CT_ERR_FORMAT, "\"mlp_only_layers\"[%d] must be a layer index below %lld", i,
                           (long long)c->num_hidden_layers);
        c->layer_moe[layer] = false;
    }
    return CT_OK;
}

static ct_status parse_moe(ct_model_config *c, const cJSON *t, ct_error *err) {
    c->layer_moe = calloc((size_t)c->num_hidden_layers, sizeof *c->layer_moe);
    if (!c->layer_moe)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory for %lld layers", (long long)c->num_hidden_layers);
    bool mixtral = is_arch(c, CT_ARCH_MIXTRAL);
    if (!mixtral && !is_arch(c, CT_ARCH_QWEN3_MOE))
        return CT_OK;
    c->num_experts = mixtral ? 8 : 128;
    c->num_experts_per_tok = mixtral ? 2 : 8;
    c->moe_intermediate_size = mixtral ? c->intermediate_size : 768;
    c->norm_topk_prob = mixtral; // Mixtral always renormalises its top-k weights
    c->decoder_sparse_step = 1;
    c->router_aux_loss_coef = 0.001;
    // Either spelling of the expert count is accepted (transformers aliases them).
    const char *experts_key = member(t, "num_local_experts") ? "num_local_experts" : "num_experts";
    CT_TRY(ct_json_int(t, experts_key, &c->num_experts, err));
    CT_TRY(ct_json_int(t, "num_experts_per_tok", &c->num_experts_per_tok, err));
    CT_TRY(ct_json_double(t, "router_aux_loss_coef", &c->router_aux_loss_coef, err));
    if (!mixtral) {
        CT_TRY(ct_json_int(t, "moe_intermediate_size", &c->moe_intermediate_size, err));
        CT_TRY(ct_json_bool(t, "norm_topk_prob", &c->norm_topk_prob, err));
        CT_TRY(ct_json_int(t, "decoder_sparse_step", &c->decoder_sparse_step, err));
    }
    CT_TRY(need_positive(experts_key, c->num_experts, err));
    CT_TRY(need_positive("num_experts_per_tok", c->num_experts_per_tok, err));
    CT_TRY(need_positive("moe_intermediate_size", c->moe_intermediate_size, err));
    CT_TRY(need_positive("decoder_sparse_step", c->decoder_sparse_step, err));
    if (c->num_experts_per_tok > c->num_experts)
        return ct_fail(err, CT_ERR_FORMAT, "\"num_experts_per_tok\" (%lld) exceeds \"%s\" (%lld)",
                       (long long)c->num_experts_per_tok, experts_key, (long long)c->num_experts);
    for (int64_t i = 0; i < c->num_hidden_layers; i++)
        c->layer_moe[i] = (i + 1) % c->decoder_sparse_step == 0;
    return parse_mlp_only_layers(c, t, err);
}

// ---- special tokens and dtype -----------------------------------------------

static ct_status parse_eos(ct_model_config *c, const cJSON *obj, ct_error *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "eos_token_id");
    if (!it)
        return CT_OK;
    free(c->eos_token_ids);
    c->eos_token_ids = NULL;
    c->n_eos_token_ids = 0;
    if (cJSON_IsNull(it))
        return CT_OK;
    int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 1;
    c->eos_token_ids = calloc((size_t)n + 1, sizeof *c->eos_token_ids);
    if (!c->eos_token_ids)
        return ct_fail(err, CT_ERR_NOMEM, "\"eos_token_id\": out of memory");
    const cJSON *v = cJSON_IsArray(it) ? it->child : it;
    for (int i = 0; i < n; i++, v = v->next) {
        if (!ct_json_as_int(v, &c->eos_token_ids[i]) || c->eos_token_ids[i] < 0)
            return ct_fail(err, CT_ERR_FORMAT, "\"eos_token_id\" must be a token id or a list of them, got %s",
                           ct_json_type_name(v));
        c->n_eos_token_ids = i + 1;
    }
    return CT_OK;
}

static ct_status set_default_eos(ct_model_config *c, ct_error *err) {
    if (ARCHS[c->arch].eos < 0)
        return CT_OK;
    c->eos_token_ids = malloc(sizeof *c->eos_token_ids);
    if (!c->eos_token_ids)
        return ct_fail(err, CT_ERR_NOMEM, "\"eos_token_id\": out of memory");
    c->eos_token_ids[0] = ARCHS[c->arch].eos;
    c->n_eos_token_ids = 1;
    return CT_OK;
}

// Reads token ids and dtype from obj over what is already set (called for the
// text config, then for the multimodal wrapper, whose values win).
static ct_status parse_tokens_and_dtype(ct_model_config *c, const cJSON *obj, ct_error *err) {
    CT_TRY(nullable_int(obj, "bos_token_id", -1, &c->bos_token_id, err));
    CT_TRY(nullable_int(obj, "pad_token_id", -1, &c->pad_token_id, err));
    CT_TRY(parse_eos(c, obj, err));
    const char *dtype = NULL;
    CT_TRY(ct_json_string(obj, "torch_dtype", &dtype, err));
    CT_TRY(ct_json_string(obj, "dtype", &dtype, err));
    if (dtype)
        CT_TRY(copy_string(c->dtype, sizeof c->dtype, "dtype", dtype, err));
    return ct_json_bool(obj, "tie_word_embeddings", &c->tie_word_embeddings, err);
}

// ---- MLX quantization ----------------------------------------------------------

// A spec object; defaults for absent keys come from *spec.
static ct_status parse_quant_spec(const cJSON *q, ct_quant_spec *spec, ct_error *err) {
    const char *mode = spec->mode;
    CT_TRY(ct_json_string(q, "mode", &mode, err));
    if (strcmp(mode, "affine"))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "\"mode\": quantization mode \"%s\" is not supported (only affine)", mode);
    int64_t bits = spec->bits, group_size = spec->group_size;
    CT_TRY(ct_json_int(q, "bits", &bits, err));
    CT_TRY(ct_json_int(q, "group_size", &group_size, err));
    if (bits != 2 && bits != 3 && bits != 4 && bits != 5 && bits != 6 && bits != 8)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "\"bits\" must be one of 2, 3, 4, 5, 6, 8, got %lld", (long long)bits);
    if (group_size != 32 && group_size != 64 && group_size != 128)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "\"group_size\" must be one of 32, 64, 128, got %lld", (long long)group_size);
    spec->quantized = true;
    spec->bits = (int)bits;
    spec->group_size = (int)group_size;
    snprintf(spec->mode, sizeof spec->mode, "affine");
    return CT_OK;
}

static ct_status add_quant_override(ct_model_config *c, const cJSON *item, ct_error *err) {
    const char *path = item->string;
    ct_quant_spec spec = c->quant; // `true`: the top-level spec
    if (cJSON_IsFalse(item)) {
        spec.quantized = false;
    } else if (cJSON_IsObject(item)) {
        // MLX fills keys an override leaves out from the mode's defaults (affine: 64, 4).
        spec = (ct_quant_spec){true, 4, 64, "affine"};
        if (parse_quant_spec(item, &spec, err) != CT_OK)
            return ct_error_context(err, "\"%s\"", path);
    } else if (!cJSON_IsTrue(item)) {
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be an object or false, got %s", path, ct_json_type_name(item));
    }
    int i = c->n_quant_overrides;
    char **paths = realloc(c->quant_override_paths, (size_t)(i + 1) * sizeof *paths);
    if (paths)
        c->quant_override_paths = paths;
    ct_quant_spec *specs = realloc(c->quant_overrides, (size_t)(i + 1) * sizeof *specs);
    if (specs)
        c->quant_overrides = specs;
    char *copy = paths && specs ? strdup(path) : NULL;
    if (!copy)
        return ct_fail(err, CT_ERR_NOMEM, "\"%s\": out of memory", path);
    c->quant_override_paths[i] = copy;
    c->quant_overrides[i] = spec;
    c->n_quant_overrides = i + 1;
    return ct_strmap_puts(&c->quant_index, path, i, NULL, err);
}

static ct_status parse_quant_block(ct_model_config *c, const cJSON *q, ct_error *err) {
    if (!member(q, "group_size"))
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"group_size\"");
    if (!member(q, "bits"))
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"bits\"");
    c->quant = (ct_quant_spec){true, 0, 0, "affine"};
    CT_TRY(parse_quant_spec(q, &c->quant, err));
    for (const cJSON *item = q->child; item; item = item->next) {
        if (!strcmp(item->string, "group_size") || !strcmp(item->string, "bits") || !strcmp(item->string, "mode"))
            continue;
        CT_TRY(add_quant_override(c, item, err));
    }
    return CT_OK;
}

static ct_status parse_quantization(ct_model_config *c, const cJSON *root, ct_error *err) {
    const char *key = "quantization";
    const cJSON *q;
    CT_TRY(opt_object(root, key, &q, err));
    if (!q) {
        key = "quantization_config";
        CT_TRY(opt_object(root, key, &q, err));
        if (!q)
            return CT_OK;
        const char *method = NULL;
        if (ct_json_string(q, "quant_method", &method, err) != CT_OK)
            return ct_error_context(err, "%s", key);
        if (method)
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "quantization_config: quant_method \"%s\" is not supported (ctune reads MLX-quantized "
                           "models; dequantize or convert this one first)",
                           method);
        if (!member(q, "bits") && !member(q, "group_size"))
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "quantization_config: neither \"quant_method\" nor MLX \"bits\"/\"group_size\": unknown quantization");
    }
    if (parse_quant_block(c, q, err) != CT_OK)
        return ct_error_context(err, "%s", key);
    return CT_OK;
}

ct_quant_spec ct_model_config_quant_for(const ct_model_config *c, const char *module_path) {
    int64_t i;
    if (ct_strmap_gets(&c->quant_index, module_path, &i))
        return c->quant_overrides[i];
    return c->quant;
}

// ---- entry points ------------------------------------------------------------

static ct_status parse_model_type(ct_model_config *c, const cJSON *root, const cJSON **text, ct_error *err) {
    const char *type;
    CT_TRY(ct_json_need_string(root, "model_type", &type, err));
    CT_TRY(copy_string(c->model_type, sizeof c->model_type, "model_type", type, err));
    *text = root;
    if (!strcmp(type, "gemma3")) { // multimodal wrapper: the language model is text_config
        c->arch = CT_ARCH_GEMMA3;
        return opt_object(root, "text_config", text, err); // NULL when absent: all defaults
    }
    for (int a = 0; a < CT_ARCH_COUNT; a++) {
        if (!strcmp(type, ARCHS[a].name)) {
            c->arch = (ct_arch)a;
            return CT_OK;
        }
    }
    return ct_fail(err, CT_ERR_UNSUPPORTED, "\"model_type\": \"%s\" is not supported (supported: " SUPPORTED_TYPES ")", type);
}

static ct_status parse_text_config(ct_model_config *c, const cJSON *t, ct_error *err) {
    const arch_info *a = &ARCHS[c->arch];
    c->tie_word_embeddings = a->tie;
    c->bos_token_id = a->bos;
    c->pad_token_id = a->pad;
    CT_TRY(set_default_eos(c, err));
    CT_TRY(parse_sizes(c, t, err));
    CT_TRY(parse_activation(c, t, err));
    CT_TRY(parse_biases_and_norms(c, t, err));
    CT_TRY(parse_rope(c, t, err));
    CT_TRY(parse_attention_layout(c, t, err));
    CT_TRY(parse_softcaps(c, t, err));
    CT_TRY(parse_moe(c, t, err));
    return parse_tokens_and_dtype(c, t, err);
}

static ct_status parse_all(ct_model_config *c, const cJSON *root, ct_error *err) {
    if (!cJSON_IsObject(root))
        return ct_fail(err, CT_ERR_FORMAT, "config.json must hold an object, got %s", ct_json_type_name(root));
    const cJSON *text;
    CT_TRY(parse_model_type(c, root, &text, err));
    if (text != root) { // gemma3: text_config, then the wrapper's tokens, dtype and tie flag
        cJSON *empty = text ? NULL : cJSON_CreateObject();
        ct_status st = parse_text_config(c, text ? text : empty, err);
        cJSON_Delete(empty);
        if (st != CT_OK)
            return ct_error_context(err, "text_config");
        CT_TRY(parse_tokens_and_dtype(c, root, err));
    } else {
        CT_TRY(parse_text_config(c, root, err));
    }
    return parse_quantization(c, root, err);
}

ct_status ct_model_config_parse(ct_model_config *c, const cJSON *root, const char *source, ct_error *err) {
    memset(c, 0, sizeof *c);
    ct_strmap_init(&c->quant_index);
    if (parse_all(c, root, err) != CT_OK) {
        ct_model_config_free(c);
        return ct_error_context(err, "%s", source);
    }
    return CT_OK;
}

ct_status ct_model_config_load(ct_model_config *c, const char *path, ct_error *err) {
    memset(c, 0, sizeof *c);
    char file[4096];
    if (ct_is_dir(path))
        CT_TRY(ct_path_join(file, sizeof file, path, "config.json", err));
    else
        CT_TRY(copy_string(file, sizeof file, "path", path, err));
    cJSON *root;
    CT_TRY(ct_json_load_file(file, &root, err));
    ct_status st = ct_model_config_parse(c, root, file, err);
    cJSON_Delete(root);
    return st;
}

void ct_model_config_free(ct_model_config *c) {
    free(c->rope.long_factor);
    free(c->rope.short_factor);
    free(c->layer_attn);
    free(c->layer_moe);
    free(c->eos_token_ids);
    for (int i = 0; i < c->n_quant_overrides; i++)
        free(c->quant_override_paths[i]);
    free(c->quant_override_paths);
    free(c->quant_overrides);
    ct_strmap_free(&c->quant_index);
    memset(c, 0, sizeof *c);
}
