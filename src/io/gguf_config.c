// GGUF metadata -> config.json equivalent -> ct_model_config.
#include "ctune/gguf_config.h"

#include <stdio.h>
#include <string.h>

// llama.cpp architecture names -> Hugging Face model_type.
static const char *model_type_for(const char *arch, bool has_experts) {
    static const char *const MAP[][2] = {
        {"llama", "llama"},   {"qwen2", "qwen2"},   {"qwen3", "qwen3"},         {"phi3", "phi3"},
        {"gemma2", "gemma2"}, {"gemma3", "gemma3_text"}, {"qwen3moe", "qwen3_moe"},
    };
    if (!strcmp(arch, "llama") && has_experts)
        return "mixtral"; // llama.cpp stores Mixtral as llama with experts
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (!strcmp(arch, MAP[i][0]))
            return MAP[i][1];
    return NULL;
}

static bool get_int(const ct_gguf *g, const char *arch, const char *suffix, int64_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return ct_gguf_get_i64(g, key, out);
}

static bool get_num(const ct_gguf *g, const char *arch, const char *suffix, double *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return ct_gguf_get_f64(g, key, out);
}

// key_length (head_dim) must agree with blk.0.attn_q.weight's rows (heads * head_dim).
static ct_status check_key_length(const ct_gguf *g, const char *arch, ct_error *err) {
    int64_t heads = 0, head_dim = 0;
    const ct_gguf_tensor *q = ct_gguf_find_tensor(g, "blk.0.attn_q.weight");
    if (!q || q->ndim != 2 || !get_int(g, arch, "attention.head_count", &heads) ||
        !get_int(g, arch, "attention.key_length", &head_dim))
        return CT_OK;
    if (head_dim <= 0 || heads * head_dim != q->ne[1])
        return ct_fail(err, CT_ERR_FORMAT,
                       "%s: %s.attention.key_length = %lld does not fit tensor blk.0.attn_q.weight (%lld rows for %lld "
                       "heads: head_dim %lld)",
                       g->path, arch, (long long)head_dim, (long long)q->ne[1], (long long)heads,
                       heads > 0 ? (long long)(q->ne[1] / heads) : 0LL);
    return CT_OK;
}

// What llama.cpp hard-codes for gemma3 (llama-model.cpp, LLM_ARCH_GEMMA3) and
// transformers' Gemma3TextConfig needs: every 6th layer global (with a sliding
// window), local RoPE base 1e4, GELU-tanh, attention scale 1/sqrt(head_dim)
// except the 62-layer 27B (1/sqrt(hidden / heads)), softcapping only when the
// file sets final_logit_softcapping.
static void gemma3_keys(const ct_gguf *g, cJSON *c) {
    int64_t layers = 0, hidden = 0, heads = 0, head_dim = 256, window = 0;
    get_int(g, "gemma3", "block_count", &layers);
    get_int(g, "gemma3", "embedding_length", &hidden);
    get_int(g, "gemma3", "attention.head_count", &heads);
    get_int(g, "gemma3", "attention.key_length", &head_dim);
    cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
    cJSON_AddNumberToObject(c, "rope_local_base_freq", 10000.0);
    double scalar = layers == 62 && heads > 0 ? (double)(hidden / heads) : (double)head_dim;
    cJSON_AddNumberToObject(c, "query_pre_attn_scalar", scalar);
    cJSON_AddNullToObject(c, "attn_logit_softcapping");
    if (!cJSON_GetObjectItemCaseSensitive(c, "final_logit_softcapping"))
        cJSON_AddNullToObject(c, "final_logit_softcapping");
    bool sliding = get_int(g, "gemma3", "attention.sliding_window", &window) && window > 0;
    cJSON_AddNumberToObject(c, "sliding_window_pattern", 6);
    int64_t pad;
    if (ct_gguf_get_i64(g, "tokenizer.ggml.padding_token_id", &pad))
        cJSON_AddNumberToObject(c, "pad_token_id", (double)pad);
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString("Gemma3ForCausalLM"));
    if (layers <= 0 || layers > 4096)
        return; // not a real model: the parser's pattern rule (and its checks) decide
    cJSON *types = cJSON_AddArrayToObject(c, "layer_types");
    for (int64_t i = 0; i < layers; i++)
        cJSON_AddItemToArray(types, cJSON_CreateString(sliding && (i + 1) % 6 ? "sliding_attention" : "full_attention"));
}

ct_status ct_gguf_config_json(const ct_gguf *g, cJSON **out, ct_error *err) {
    *out = NULL;
    const char *arch = NULL;
    size_t alen;
    if (!ct_gguf_get_str(g, "general.architecture", &arch, &alen))
        return ct_fail(err, CT_ERR_FORMAT, "%s: missing general.architecture", g->path);
    int64_t experts = 0;
    get_int(g, arch, "expert_count", &experts);
    const char *model_type = model_type_for(arch, experts > 0);
    if (!model_type)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "%s: GGUF architecture \"%s\" is not supported (supported: llama, qwen2, qwen3, phi3, gemma2, "
                       "gemma3, qwen3moe)",
                       g->path, arch);
    CT_TRY(check_key_length(g, arch, err));
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", model_type);
    static const struct {
        const char *gguf, *hf;
    } INTS[] = {
        {"block_count", "num_hidden_layers"},
        {"embedding_length", "hidden_size"},
        {"feed_forward_length", "intermediate_size"},
        {"attention.head_count", "num_attention_heads"},
        {"attention.head_count_kv", "num_key_value_heads"},
        {"context_length", "max_position_embeddings"},
        {"attention.key_length", "head_dim"},
        {"attention.sliding_window", "sliding_window"},
        {"expert_count", "num_local_experts"},
        {"expert_used_count", "num_experts_per_tok"},
        {"expert_feed_forward_length", "moe_intermediate_size"},
    };
    for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++) {
        int64_t v;
        if (get_int(g, arch, INTS[i].gguf, &v))
            cJSON_AddNumberToObject(c, INTS[i].hf, (double)v);
    }
    if (!strcmp(model_type, "qwen3_moe") && experts > 0)
        cJSON_AddNumberToObject(c, "num_experts", (double)experts);
    double d;
    if (get_num(g, arch, "rope.freq_base", &d))
        cJSON_AddNumberToObject(c, "rope_theta", d);
    if (get_num(g, arch, "attention.layer_norm_rms_epsilon", &d))
        cJSON_AddNumberToObject(c, "rms_norm_eps", d);
    if (get_num(g, arch, "attn_logit_softcapping", &d))
        cJSON_AddNumberToObject(c, "attn_logit_softcapping", d);
    if (get_num(g, arch, "final_logit_softcapping", &d))
        cJSON_AddNumberToObject(c, "final_logit_softcapping", d);
    int64_t vocab = 0;
    const ct_gguf_kv *tokens = ct_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!get_int(g, arch, "vocab_size", &vocab) && tokens)
        vocab = (int64_t)ct_gguf_arr_count(tokens);
    if (vocab > 0)
        cJSON_AddNumberToObject(c, "vocab_size", (double)vocab);
    int64_t rot = 0, heads = 0, hidden = 0, head_dim = 0;
    if (get_int(g, arch, "rope.dimension_count", &rot) && get_int(g, arch, "attention.head_count", &heads) &&
        get_int(g, arch, "embedding_length", &hidden) && heads > 0) {
        if (!get_int(g, arch, "attention.key_length", &head_dim))
            head_dim = hidden / heads;
        if (head_dim > 0 && rot != head_dim)
            cJSON_AddNumberToObject(c, "partial_rotary_factor", (double)rot / (double)head_dim);
    }
    const char *rs;
    size_t rsl;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (ct_gguf_get_str(g, key, &rs, &rsl) && strcmp(rs, "none") != 0) {
        cJSON *r = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", rs);
        if (get_num(g, arch, "rope.scaling.factor", &d))
            cJSON_AddNumberToObject(r, "factor", d);
        int64_t orig;
        if (get_int(g, arch, "rope.scaling.original_context_length", &orig))
            cJSON_AddNumberToObject(r, "original_max_position_embeddings", (double)orig);
    }
    cJSON_AddBoolToObject(c, "tie_word_embeddings", ct_gguf_find_tensor(g, "output.weight") == NULL);
    int64_t id;
    if (ct_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &id))
        cJSON_AddNumberToObject(c, "bos_token_id", (double)id);
    if (ct_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", &id))
        cJSON_AddNumberToObject(c, "eos_token_id", (double)id);
    if (!strcmp(arch, "gemma3"))
        gemma3_keys(g, c);
    *out = c;
    return CT_OK;
}

ct_status ct_model_config_from_gguf(ct_model_config *c, const ct_gguf *g, ct_error *err) {
    cJSON *j;
    CT_TRY(ct_gguf_config_json(g, &j, err));
    ct_status st = ct_model_config_parse(c, j, g->path, err);
    cJSON_Delete(j);
    return st;
}
