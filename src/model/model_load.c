// model_load.c: a model's weights onto the backend. Hugging Face folders
// (dense f32/f16/bf16 kept in their dtype) and MLX-quantized folders (u32
// codes + scales + biases per module, chosen by mlx-lm's load rule); GGUF
// files go through model_gguf.c. Every tensor is uploaded once, straight from
// the mapped file when its layout already fits.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"
#include "ctune/fs.h"
#include "ctune/gguf_config.h"
#include "model_internal.h"

const char *ct_linear_name(ct_linear_id id) {
    static const char *names[CT_LIN_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};
    return id < CT_LIN_COUNT ? names[id] : "?";
}

ct_status model_device_buffer(ct_model *m, const void *src, size_t bytes, void **out, ct_error *err) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **p = realloc(m->owned, sizeof *p * (size_t)cap);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "model: out of memory");
        m->owned = p;
        m->cap_owned = cap;
    }
    CT_TRY(m->be->alloc(m->be, bytes, out, err));
    m->owned[m->n_owned++] = *out;
    if (src && bytes)
        m->be->upload(m->be, *out, src, bytes);
    return CT_OK;
}

// ---- safetensors tensors

static const char *shape_str(const ct_tensor_view *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, ")");
    return buf;
}

// The tensor called name with shape (d0) when d1 < 0, else (d0, d1).
static ct_status st_tensor(ct_model *m, const char *name, int64_t d0, int64_t d1, const ct_tensor_view **out,
                           ct_error *err) {
    const ct_tensor_view *t = ct_weights_find(&m->src->st, name);
    if (!t)
        return ct_fail(err, CT_ERR_FORMAT, "missing tensor %s", name);
    int ndim = d1 < 0 ? 1 : 2;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char buf[128];
        if (ndim == 1)
            return ct_fail(err, CT_ERR_FORMAT, "tensor %s: expected shape (%lld), found %s", name, (long long)d0,
                           shape_str(t, buf, sizeof buf));
        return ct_fail(err, CT_ERR_FORMAT, "tensor %s: expected shape (%lld, %lld), found %s", name, (long long)d0,
                       (long long)d1, shape_str(t, buf, sizeof buf));
    }
    *out = t;
    return CT_OK;
}

static bool is_weight_float(ct_dtype t) { return t == CT_F32 || t == CT_F16 || t == CT_BF16; }

// A vector (n) of any float dtype -> f32 on the device. optional: absent gives NULL.
static ct_status st_vector(ct_model *m, const char *name, int64_t n, bool optional, float **out, ct_error *err) {
    *out = NULL;
    if (optional && !ct_weights_find(&m->src->st, name))
        return CT_OK;
    const ct_tensor_view *t;
    CT_TRY(st_tensor(m, name, n, -1, &t, err));
    if (!is_weight_float(t->dtype))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: unsupported dtype %s (expected F32, F16 or BF16)", name,
                       ct_dtype_name(t->dtype));
    float *host = malloc(sizeof(float) * (size_t)n);
    if (!host)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
    ct_convert_to_f32(host, t->data, t->dtype, (size_t)n);
    ct_status st = model_device_buffer(m, host, sizeof(float) * (size_t)n, (void **)out, err);
    free(host);
    return st;
}

// mlx-lm's load rule for module path: listed in the quantization block -> that
// entry (or false); else quantized iff "<path>.scales" exists.
static bool module_quantized(const ct_model *m, const char *path, ct_quant_spec *spec) {
    int64_t idx;
    if (ct_strmap_gets(&m->cfg.quant_index, path, &idx)) {
        *spec = m->cfg.quant_overrides[idx];
        return spec->quantized;
    }
    char name[512];
    snprintf(name, sizeof name, "%s.scales", path);
    *spec = m->cfg.quant;
    if (!spec->bits) {
        spec->bits = 4;
        spec->group_size = 64;
    }
    return ct_weights_find(&m->src->st, name) != NULL;
}

// Rows [row0, row0 + rows) of the weight of module path, stored (total_rows, cols).
static ct_status st_weight(ct_model *m, const char *path, int64_t row0, int64_t rows, int64_t total_rows,
                           int64_t cols, ct_weight *w, ct_error *err) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", path);
    const ct_tensor_view *t;
    ct_quant_spec q;
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    if (!module_quantized(m, path, &q)) {
        CT_TRY(st_tensor(m, name, total_rows, cols, &t, err));
        if (!is_weight_float(t->dtype))
            return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: unsupported dtype %s (expected F32, F16 or BF16)",
                           name, ct_dtype_name(t->dtype));
        w->dtype = t->dtype;
        size_t row_bytes = (size_t)cols * ct_dtype_size(t->dtype);
        return model_device_buffer(m, (const char *)t->data + row_bytes * (size_t)row0, row_bytes * (size_t)rows,
                                   (void **)&w->data, err);
    }
    CT_TRY(ct_affine_check(q.bits, q.group_size, cols, name, err));
    w->bits = q.bits;
    w->group_size = q.group_size;
    CT_TRY(st_tensor(m, name, total_rows, ct_affine_row_words(cols, q.bits), &t, err));
    if (t->dtype != CT_U32)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: quantized weight must be U32, found %s", name,
                       ct_dtype_name(t->dtype));
    size_t row_bytes = (size_t)ct_affine_row_words(cols, q.bits) * 4;
    CT_TRY(model_device_buffer(m, (const char *)t->data + row_bytes * (size_t)row0, row_bytes * (size_t)rows,
                               (void **)&w->data, err));
    const char *parts[2] = {"scales", "biases"};
    const void **dst[2] = {&w->scales, &w->biases};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.%s", path, parts[i]);
        CT_TRY(st_tensor(m, name, total_rows, cols / q.group_size, &t, err));
        if (!is_weight_float(t->dtype))
            return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: unsupported dtype %s (expected F32, F16 or BF16)",
                           name, ct_dtype_name(t->dtype));
        if (i == 1 && t->dtype != w->dtype)
            return ct_fail(err, CT_ERR_FORMAT, "tensor %s: dtype %s differs from the scales' %s", name,
                           ct_dtype_name(t->dtype), ct_dtype_name(w->dtype));
        w->dtype = t->dtype;
        size_t rb = (size_t)(cols / q.group_size) * ct_dtype_size(t->dtype);
        CT_TRY(model_device_buffer(m, (const char *)t->data + rb * (size_t)row0, rb * (size_t)rows, (void **)dst[i],
                                   err));
    }
    return CT_OK;
}

// A linear of a HF folder: rows [row0, row0+rows) of module path (fused when total_rows > rows).
static ct_status st_linear(ct_model *m, const char *path, int64_t row0, int64_t rows, int64_t total_rows,
                           int64_t cols, bool bias, ct_linear *out, ct_error *err) {
    CT_TRY(st_weight(m, path, row0, rows, total_rows, cols, &out->w, err));
    out->bias = NULL;
    if (!bias)
        return CT_OK;
    char name[512];
    snprintf(name, sizeof name, "%s.bias", path);
    float *full;
    CT_TRY(st_vector(m, name, total_rows, false, &full, err));
    out->bias = full + row0;
    return CT_OK;
}

// ---- one layer, from either source

static const char *gguf_linear_names[CT_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                      "ffn_gate", "ffn_up", "ffn_down"};

static void linear_shape(const ct_model *m, ct_linear_id id, int64_t *rows, int64_t *cols) {
    int64_t C = m->C, qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D;
    switch (id) {
    case CT_LIN_Q: *rows = qd, *cols = C; break;
    case CT_LIN_K:
    case CT_LIN_V: *rows = kvd, *cols = C; break;
    case CT_LIN_O: *rows = C, *cols = qd; break;
    case CT_LIN_GATE:
    case CT_LIN_UP: *rows = m->I, *cols = C; break;
    default: *rows = C, *cols = m->I; break;
    }
}

static bool linear_has_bias(const ct_model *m, ct_linear_id id) {
    if (id <= CT_LIN_V)
        return m->cfg.qkv_bias;
    if (id == CT_LIN_O)
        return m->cfg.o_bias;
    return m->cfg.mlp_bias;
}

static ct_status gguf_layer(ct_model *m, int l, ct_layer_params *p, ct_error *err) {
    char name[128];
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        int64_t rows, cols;
        linear_shape(m, (ct_linear_id)id, &rows, &cols);
        int heads = 0;
        if (m->src->gguf_llama_permuted && id == CT_LIN_Q)
            heads = m->H;
        if (m->src->gguf_llama_permuted && id == CT_LIN_K)
            heads = m->KVH;
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, gguf_linear_names[id]);
        CT_TRY(model_gguf_weight(m, name, rows, cols, heads, &p->lin[id].w, err));
        p->lin[id].bias = NULL;
        if (linear_has_bias(m, (ct_linear_id)id)) {
            if (heads)
                return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor blk.%d.%s.bias: biases of permuted llama q/k", l,
                               gguf_linear_names[id]);
            snprintf(name, sizeof name, "blk.%d.%s.bias", l, gguf_linear_names[id]);
            CT_TRY(model_gguf_vector(m, name, rows, false, &p->lin[id].bias, err));
        }
    }
    // gemma3: ffn_norm is pre_feedforward_layernorm; post_attention_norm and
    // post_ffw_norm norm each block's output before the residual add.
    bool gemma = m->cfg.arch == CT_ARCH_GEMMA3;
    const struct {
        const char *suffix;
        bool wanted;
        int64_t n;
        float **dst;
    } norms[] = {
        {"attn_norm", true, m->C, &p->attn_norm},
        {"ffn_norm", true, m->C, &p->ffn_norm},
        {"post_attention_norm", gemma, m->C, &p->post_attn_norm},
        {"post_ffw_norm", gemma, m->C, &p->post_ffn_norm},
        {"attn_q_norm", m->cfg.qk_norm, m->D, &p->q_norm},
        {"attn_k_norm", m->cfg.qk_norm, m->D, &p->k_norm},
    };
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
        if (!norms[i].wanted)
            continue;
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[i].suffix);
        CT_TRY(model_gguf_norm(m, name, norms[i].n, norms[i].dst, err));
    }
    return CT_OK;
}

static ct_status st_layer(ct_model *m, int l, ct_layer_params *p, ct_error *err) {
    char path[256], name[300];
    bool gemma = m->cfg.arch == CT_ARCH_GEMMA2 || m->cfg.arch == CT_ARCH_GEMMA3;
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        int64_t rows, cols;
        linear_shape(m, (ct_linear_id)id, &rows, &cols);
        bool bias = linear_has_bias(m, (ct_linear_id)id);
        const char *block = id <= CT_LIN_O ? "self_attn" : "mlp";
        if (m->cfg.arch == CT_ARCH_PHI3 && (id <= CT_LIN_V || id == CT_LIN_GATE || id == CT_LIN_UP)) {
            // fused qkv_proj (q | k | v rows) and gate_up_proj (gate | up rows)
            int64_t qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D;
            int64_t row0 = id == CT_LIN_K ? qd : id == CT_LIN_V ? qd + kvd : id == CT_LIN_UP ? m->I : 0;
            int64_t total = id <= CT_LIN_V ? qd + 2 * kvd : 2 * (int64_t)m->I;
            snprintf(path, sizeof path, "model.layers.%d.%s.%s", l, block, id <= CT_LIN_V ? "qkv_proj" : "gate_up_proj");
            CT_TRY(st_linear(m, path, row0, rows, total, cols, bias, &p->lin[id], err));
            continue;
        }
        snprintf(path, sizeof path, "model.layers.%d.%s.%s", l, block, ct_linear_name((ct_linear_id)id));
        CT_TRY(st_linear(m, path, 0, rows, rows, cols, bias, &p->lin[id], err));
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    CT_TRY(st_vector(m, name, m->C, false, &p->attn_norm, err));
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, gemma ? "pre_feedforward_layernorm" : "post_attention_layernorm");
    CT_TRY(st_vector(m, name, m->C, false, &p->ffn_norm, err));
    if (gemma) {
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        CT_TRY(st_vector(m, name, m->C, false, &p->post_attn_norm, err));
        snprintf(name, sizeof name, "model.layers.%d.post_feedforward_layernorm.weight", l);
        CT_TRY(st_vector(m, name, m->C, false, &p->post_ffn_norm, err));
    }
    if (m->cfg.qk_norm) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        CT_TRY(st_vector(m, name, m->D, false, &p->q_norm, err));
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        CT_TRY(st_vector(m, name, m->D, false, &p->k_norm, err));
    }
    return CT_OK;
}

// ---- the whole model

static ct_status check_supported(const ct_model_config *c, ct_error *err) {
    if (c->num_experts > 0 || c->arch == CT_ARCH_MIXTRAL || c->arch == CT_ARCH_QWEN3_MOE)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "model_type %s: mixture-of-experts models are not supported yet",
                       c->model_type);
    if (c->quant.quantized && strcmp(c->quant.mode, "affine") != 0 && c->quant.mode[0])
        return ct_fail(err, CT_ERR_UNSUPPORTED, "quantization mode %s is not supported (only affine)", c->quant.mode);
    if (c->hidden_act != CT_ACT_SILU && c->hidden_act != CT_ACT_GELU_TANH)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "hidden_act %s is not supported (silu, gelu_pytorch_tanh)",
                       ct_activation_name(c->hidden_act));
    return CT_OK;
}

static ct_status set_dims(ct_model *m, ct_error *err) {
    const ct_model_config *c = &m->cfg;
    m->C = (int)c->hidden_size;
    m->H = (int)c->num_attention_heads;
    m->KVH = (int)c->num_key_value_heads;
    m->D = (int)c->head_dim;
    m->I = (int)c->intermediate_size;
    m->V = (int)c->vocab_size;
    m->L = (int)c->num_hidden_layers;
    m->rot_dims = (int)c->rotary_dim;
    bool gemma = c->arch == CT_ARCH_GEMMA2 || c->arch == CT_ARCH_GEMMA3;
    m->attn_scale = (float)(1.0 / sqrt(gemma ? c->query_pre_attn_scalar : (double)c->head_dim));
    m->norm_offset = gemma ? 1.0f : 0.0f;
    // transformers: the normalizer sqrt(hidden) is rounded to the activation dtype (fp32 here)
    m->embed_scale = gemma ? (float)sqrt((double)c->hidden_size) : 1.0f;
    m->act = c->hidden_act == CT_ACT_GELU_TANH ? CT_GLU_GELU_TANH : CT_GLU_SILU;
    m->layers = calloc((size_t)m->L, sizeof *m->layers);
    return m->layers ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "model: out of memory");
}

static ct_status load_folder(ct_model *m, const char *dir, ct_error *err) {
    CT_TRY(ct_model_config_load(&m->cfg, dir, err));
    CT_TRY(check_supported(&m->cfg, err));
    CT_TRY(set_dims(m, err));
    CT_TRY(ct_weights_open(&m->src->st, dir, err));
    CT_TRY(st_weight(m, "model.embed_tokens", 0, m->V, m->V, m->C, &m->embed, err));
    CT_TRY(st_vector(m, "model.norm.weight", m->C, false, &m->final_norm, err));
    if (m->cfg.tie_word_embeddings) {
        m->lm_head.w = m->embed;
        m->lm_head.bias = NULL;
    } else {
        CT_TRY(st_linear(m, "lm_head", 0, m->V, m->V, m->C, false, &m->lm_head, err));
    }
    for (int l = 0; l < m->L; l++)
        CT_TRY(st_layer(m, l, &m->layers[l], err));
    return CT_OK;
}

static ct_status load_gguf(ct_model *m, const char *path, ct_error *err) {
    CT_TRY(ct_gguf_open(&m->src->gguf, path, err));
    m->src->is_gguf = true;
    CT_TRY(ct_model_config_from_gguf(&m->cfg, &m->src->gguf, err));
    CT_TRY(check_supported(&m->cfg, err));
    if (m->cfg.arch != CT_ARCH_LLAMA && m->cfg.arch != CT_ARCH_MISTRAL && m->cfg.arch != CT_ARCH_QWEN2 &&
        m->cfg.arch != CT_ARCH_QWEN3 && m->cfg.arch != CT_ARCH_GEMMA3)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "GGUF models of architecture %s are not supported yet (llama, qwen2, qwen3, gemma3)",
                       m->cfg.model_type);
    const char *arch = NULL;
    ct_gguf_get_str(&m->src->gguf, "general.architecture", &arch, NULL);
    m->src->gguf_llama_permuted = arch && strcmp(arch, "llama") == 0;
    m->src->gguf_norm_shift = m->cfg.arch == CT_ARCH_GEMMA3 ? 1.0f : 0.0f;
    CT_TRY(set_dims(m, err));
    CT_TRY(model_gguf_weight(m, "token_embd.weight", m->V, m->C, 0, &m->embed, err));
    CT_TRY(model_gguf_norm(m, "output_norm.weight", m->C, &m->final_norm, err));
    if (ct_gguf_find_tensor(&m->src->gguf, "output.weight")) {
        CT_TRY(model_gguf_weight(m, "output.weight", m->V, m->C, 0, &m->lm_head.w, err));
        m->lm_head.bias = NULL;
    } else {
        m->lm_head.w = m->embed; // tied
        m->lm_head.bias = NULL;
    }
    for (int l = 0; l < m->L; l++)
        CT_TRY(gguf_layer(m, l, &m->layers[l], err));
    return CT_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static ct_status model_load_any(ct_model *m, const char *path, ct_error *err) {
    if (!ct_is_dir(path) && ends_with(path, ".gguf"))
        return load_gguf(m, path, err);
    if (!ct_is_dir(path))
        return ct_fail(err, CT_ERR_IO, "%s: not a model folder or a .gguf file", path);
    return load_folder(m, path, err);
}

ct_status ct_model_load(ct_model *m, const char *path, ct_backend *be, ct_error *err) {
    memset(m, 0, sizeof *m);
    m->be = be;
    m->src = calloc(1, sizeof *m->src);
    ct_status st = m->src ? model_load_any(m, path, err) : ct_fail(err, CT_ERR_NOMEM, "model: out of memory");
    if (st != CT_OK) {
        ct_error_context(err, "%s", path);
        ct_model_free(m);
    }
    return st;
}

void ct_model_free(ct_model *m) {
    if (m->acts)
        model_activations_free(m);
    ct_model_train_free(m);
    for (int i = 0; i < m->n_owned; i++)
        m->be->free(m->be, m->owned[i]);
    free(m->owned);
    free(m->layers);
    if (m->src) {
        if (m->src->is_gguf)
            ct_gguf_close(&m->src->gguf);
        else
            ct_weights_close(&m->src->st);
        free(m->src);
    }
    ct_model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}
