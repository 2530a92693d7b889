// convert_gguf.c: a GGUF file's tensors under Hugging Face names
// (llama/mistral/qwen2/qwen3/gemma3 layouts), de-quantized to f32, with llama's
// q/k rows un-permuted (llama.cpp's convert script interleaves the RoPE halves)
// and gemma3's norm weights un-shifted (llama.cpp stores them as w + 1).
// This duplicates the naming and un-permuting of src/model/model_gguf.c and
// model_load.c (which load into the model rather than into tensors); the two
// should share one table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_internal.h"
#include "ctune/log.h"

// GGUF "blk.N.<suffix>" -> "model.layers.N.<hf>".
static const struct {
    const char *gguf, *hf;
} LAYER_NAMES[] = {
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"attn_q_norm", "self_attn.q_norm"},
    {"attn_k_norm", "self_attn.k_norm"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    {"attn_norm", "input_layernorm"},
    {"ffn_norm", "post_attention_layernorm"},
};

// gemma3's four norms per layer (its ffn_norm is the pre-feedforward one).
static const struct {
    const char *gguf, *hf;
} GEMMA3_NORMS[] = {
    {"ffn_norm", "pre_feedforward_layernorm"},
    {"post_attention_norm", "post_attention_layernorm"},
    {"post_ffw_norm", "post_feedforward_layernorm"},
};

// The gemma3 HF name of layer tensor rest ("ffn_norm.weight"), else false.
static bool gemma3_name(int layer, const char *rest, char *out, size_t n) {
    for (size_t i = 0; i < sizeof GEMMA3_NORMS / sizeof GEMMA3_NORMS[0]; i++) {
        size_t k = strlen(GEMMA3_NORMS[i].gguf);
        if (!strncmp(rest, GEMMA3_NORMS[i].gguf, k) && !strcmp(rest + k, ".weight"))
            return snprintf(out, n, "model.layers.%d.%s.weight", layer, GEMMA3_NORMS[i].hf) < (int)n;
    }
    return false;
}

// The HF name of GGUF tensor name (out, size n) and, for llama q/k weights,
// the number of heads to un-permute (else 0). False if the name is unknown.
static bool hf_name(const cv_job *j, const char *name, bool llama, char *out, size_t n, int *heads) {
    *heads = 0;
    if (!strcmp(name, "token_embd.weight"))
        return snprintf(out, n, "model.embed_tokens.weight") > 0;
    if (!strcmp(name, "output_norm.weight"))
        return snprintf(out, n, "model.norm.weight") > 0;
    if (!strcmp(name, "output.weight"))
        return snprintf(out, n, "lm_head.weight") > 0;
    int layer, used = 0;
    if (sscanf(name, "blk.%d.%n", &layer, &used) != 1 || used == 0)
        return false;
    const char *rest = name + used, *dot = strrchr(rest, '.');
    if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias")))
        return false;
    if (j->cfg.arch == CT_ARCH_GEMMA3 && gemma3_name(layer, rest, out, n))
        return true;
    for (size_t i = 0; i < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; i++) {
        size_t k = strlen(LAYER_NAMES[i].gguf);
        if ((size_t)(dot - rest) == k && !strncmp(rest, LAYER_NAMES[i].gguf, k)) {
            if (llama && !strcmp(dot, ".weight") && (i == 0 || i == 1))
                *heads = (int)(i == 0 ? j->cfg.num_attention_heads : j->cfg.num_key_value_heads);
            return snprintf(out, n, "model.layers.%d.%s%s", layer, LAYER_NAMES[i].hf, dot) < (int)n;
        }
    }
    return false;
}

bool cv_gguf_name(const char *hf, char *out, size_t n) {
    if (!strcmp(hf, "model.embed_tokens.weight"))
        return snprintf(out, n, "token_embd.weight") > 0;
    if (!strcmp(hf, "model.norm.weight"))
        return snprintf(out, n, "output_norm.weight") > 0;
    if (!strcmp(hf, "lm_head.weight"))
        return snprintf(out, n, "output.weight") > 0;
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || used == 0)
        return false;
    const char *rest = hf + used, *dot = strrchr(rest, '.');
    if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias")))
        return false;
    for (size_t i = 0; i < sizeof LAYER_NAMES / sizeof LAYER_NAMES[0]; i++) {
        size_t k = strlen(LAYER_NAMES[i].hf);
        if ((size_t)(dot - rest) == k && !strncmp(rest, LAYER_NAMES[i].hf, k))
            return snprintf(out, n, "blk.%d.%s%s", layer, LAYER_NAMES[i].gguf, dot) < (int)n;
    }
    return false;
}

// Rows of w (rows, cols) back to the HF order (see ct_gguf_llama_qk_row).
static ct_status unpermute(const char *name, float *w, int64_t rows, int64_t cols, int heads, ct_error *err) {
    if (rows % heads || (rows / heads) % 2)
        return ct_fail(err, CT_ERR_FORMAT, "tensor %s: %lld rows do not split into %d heads of even size", name,
                       (long long)rows, heads);
    float *tmp = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!tmp)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = ct_gguf_llama_qk_row(r, rows, heads);
        memcpy(tmp + r * cols, w + src * cols, sizeof(float) * (size_t)cols);
    }
    memcpy(w, tmp, sizeof(float) * (size_t)(rows * cols));
    free(tmp);
    return CT_OK;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static ct_status gguf_tensor(cv_job *j, const ct_gguf_tensor *t, bool llama, ct_error *err) {
    char name[256];
    int heads;
    if (!strcmp(t->name, "rope_freqs.weight")) {
        ct_log_warn("%s: skipping rope_freqs.weight (mlx-lm computes it from config.json's rope_scaling)",
                    j->o->model);
        return CT_OK;
    }
    if (!hf_name(j, t->name, llama, name, sizeof name, &heads))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: tensor %s has no Hugging Face name known to convert",
                       j->o->model, t->name);
    size_t k = strlen(name) - strlen(".weight"); // names here end in .weight or .bias (hf_name)
    if (k < strlen(name) && !strcmp(name + k, ".weight")) {
        char module[256];
        snprintf(module, sizeof module, "%.*s", (int)k, name);
        const ct_convert_module *r = cv_replacement(j, module);
        if (r)
            return cv_emit_replacement(j, r, err);
    }
    if (t->ndim > 2)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: tensor %s has %u dimensions", j->o->model, t->name, t->ndim);
    int64_t shape[2] = {t->ndim == 2 ? t->ne[1] : t->ne[0], t->ne[0]};
    float *w = malloc(sizeof(float) * (size_t)t->nelements);
    if (!w)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    ct_status st = ct_gguf_tensor_to_f32(&j->gguf, t, w, err);
    if (st == CT_OK && j->cfg.arch == CT_ARCH_GEMMA3 && has_suffix(t->name, "norm.weight"))
        for (int64_t i = 0; i < t->nelements; i++)
            w[i] -= 1.0f; // llama.cpp stores gemma3 norms as w + 1 (every "*norm.weight")
    if (st == CT_OK && heads > 0)
        st = unpermute(t->name, w, shape[0], shape[1], heads, err);
    if (st != CT_OK) {
        free(w);
        return st;
    }
    ct_dtype src = t->type == CT_GGML_F16 ? CT_F16 : t->type == CT_GGML_BF16 ? CT_BF16 : CT_F32;
    return cv_emit_float(j, name, src, (int)t->ndim, shape, w, err);
}

ct_status cv_gguf_tensors(cv_job *j, ct_error *err) {
    const char *arch = NULL;
    ct_gguf_get_str(&j->gguf, "general.architecture", &arch, NULL);
    bool llama = arch && !strcmp(arch, "llama");
    for (uint64_t i = 0; i < j->gguf.n_tensors; i++)
        CT_TRY(gguf_tensor(j, &j->gguf.tensors[i], llama, err));
    return CT_OK;
}
