// tuned_model.c: LoRA/DoRA adapters or full fine-tuning attached to a model,
// the trainer's ct_train_target over it, the trainable tensors' files, and
// adapter folders applied for inference. See tuned_model.h for the parameter
// layout (host mlx-layout arrays, aliased to the device when they can be).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/json.h"
#include "ctune/safetensors.h"
#include "ctune/tuned_model.h"

// One trainable tensor.
typedef struct tparam {
    char *name;
    float *dev, *dgrad;   // device value and gradient (device layout)
    float *w, *g;         // host, mlx layout (== dev, dgrad when aliased)
    int ndim;
    int64_t shape[2];     // mlx shape (shape[1] = 0 for 1-D)
    int64_t numel;
    bool transposed;      // device holds the transpose of shape
    bool aliased;
} tparam;

// Full fine-tuning: what a block had before it got trainable copies.
typedef struct saved_block {
    ct_linear lin[CT_LIN_COUNT];
    float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
} saved_block;

struct ct_tuned_model {
    ct_model *m;
    bool full;
    ct_adapter_config acfg;     // lora/dora
    int num_layers;
    // the model's modules (lora/dora): [L * CT_LIN_COUNT] block linears, embed_tokens, lm_head (untied)
    int n_mods;
    ct_module_desc *mods;
    ct_adapter_layer *layers;   // [n_mods], type set only for selected modules
    bool *selected;             // [n_mods]
    ct_model_adapters table;
    // full fine-tuning
    ct_layer_grads *grads;      // [L]
    saved_block *saved;         // [L] (only blocks with grads)
    void **owned;               // device buffers of the copies and gradients
    int n_owned, cap_owned;
    // the trainer's view
    int n_params, cap_params;
    tparam *params;
    ct_optim_param *oparams;
    const char **names;
    int64_t trainable, total;
};

static bool host_visible(const ct_backend *be) { return strcmp(be->name, "cpu") == 0; }

// ---- module list

static const char *block_rel(ct_linear_id id) {
    static const char *rel[CT_LIN_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                            "mlp.down_proj"};
    return rel[id];
}

static ct_module_desc linear_desc(char *path, const ct_linear *lin) {
    return (ct_module_desc){.path = path, .kind = CT_MODULE_LINEAR, .in = lin->w.cols, .out = lin->w.rows,
                            .bits = lin->w.bits, .group_size = lin->w.group_size, .has_bias = lin->bias != NULL};
}

static ct_status build_modules(ct_tuned_model *t, ct_error *err) {
    ct_model *m = t->m;
    int n = m->L * CT_LIN_COUNT + 1 + (m->cfg.tie_word_embeddings ? 0 : 1);
    t->mods = calloc((size_t)n, sizeof *t->mods);
    if (!t->mods)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    t->n_mods = n;
    char buf[128];
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++) {
            snprintf(buf, sizeof buf, "model.layers.%d.%s", l, block_rel((ct_linear_id)id));
            char *p = strdup(buf);
            if (!p)
                return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
            t->mods[l * CT_LIN_COUNT + id] = linear_desc(p, &m->layers[l].lin[id]);
        }
    int k = m->L * CT_LIN_COUNT;
    char *p = strdup("model.embed_tokens");
    if (!p)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    t->mods[k] = (ct_module_desc){.path = p, .kind = CT_MODULE_EMBEDDING, .in = m->embed.rows,
                                  .out = m->embed.cols, .bits = m->embed.bits, .group_size = m->embed.group_size};
    if (!m->cfg.tie_word_embeddings) {
        if (!(p = strdup("lm_head")))
            return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
        t->mods[k + 1] = linear_desc(p, &m->lm_head);
    }
    return CT_OK;
}

// Parameters of the frozen model as mlx-lm's get_total_parameters counts them.
static int64_t model_total(const ct_tuned_model *t) {
    const ct_model *m = t->m;
    int64_t n = 0;
    for (int i = 0; i < t->n_mods; i++)
        n += ct_module_param_count(&t->mods[i]);
    n += m->C; // final norm
    for (int l = 0; l < m->L; l++)
        n += (m->layers[l].post_attn_norm ? 4 : 2) * (int64_t)m->C + (m->layers[l].q_norm ? 2 * (int64_t)m->D : 0);
    return n;
}

// ---- parameters

static ct_status add_param(ct_tuned_model *t, const char *name, float *dev, float *dgrad, int ndim, int64_t d0,
                           int64_t d1, bool transposed, ct_error *err) {
    if (t->n_params == t->cap_params) {
        int cap = t->cap_params ? 2 * t->cap_params : 64;
        tparam *p = realloc(t->params, sizeof *p * (size_t)cap);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
        t->params = p, t->cap_params = cap;
    }
    tparam *p = &t->params[t->n_params];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    if (!p->name)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    t->n_params++;
    p->dev = dev, p->dgrad = dgrad, p->ndim = ndim, p->shape[0] = d0, p->shape[1] = ndim == 2 ? d1 : 0;
    p->numel = ndim == 2 ? d0 * d1 : d0;
    p->transposed = transposed;
    p->aliased = !transposed && host_visible(t->m->be);
    if (p->aliased) {
        p->w = dev, p->g = dgrad;
        return CT_OK;
    }
    p->w = calloc((size_t)p->numel, sizeof(float));
    p->g = calloc((size_t)p->numel, sizeof(float));
    if (!p->w || !p->g)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    return CT_OK;
}

// Host (rows, cols) -> (cols, rows).
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

// Uploads every non-aliased .w into its device buffer.
static ct_status sync_to_device(ct_tuned_model *t, ct_error *err) {
    ct_backend *be = t->m->be;
    for (int i = 0; i < t->n_params; i++) {
        tparam *p = &t->params[i];
        size_t bytes = (size_t)p->numel * sizeof(float);
        if (p->aliased)
            continue;
        if (!p->transposed) {
            be->upload(be, p->dev, p->w, bytes);
            continue;
        }
        float *tmp = malloc(bytes);
        if (!tmp)
            return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
        transpose(tmp, p->w, p->shape[0], p->shape[1]);
        be->upload(be, p->dev, tmp, bytes);
        free(tmp);
    }
    return CT_OK;
}

// .g += the device gradient (non-aliased parameters); device gradients zeroed.
static ct_status grads_from_device(ct_tuned_model *t, ct_error *err) {
    ct_backend *be = t->m->be;
    for (int i = 0; i < t->n_params; i++) {
        tparam *p = &t->params[i];
        if (p->aliased)
            continue;
        size_t bytes = (size_t)p->numel * sizeof(float);
        float *tmp = malloc(bytes), *tr = p->transposed ? malloc(bytes) : NULL;
        if (!tmp || (p->transposed && !tr)) {
            free(tmp);
            free(tr);
            return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
        }
        be->download(be, tmp, p->dgrad, bytes);
        if (tr)
            transpose(tr, tmp, p->shape[1], p->shape[0]);
        const float *src = tr ? tr : tmp;
        for (int64_t j = 0; j < p->numel; j++)
            p->g[j] += src[j];
        be->zero(be, p->dgrad, bytes);
        free(tmp);
        free(tr);
    }
    return CT_OK;
}

// Host .w <- the device values (after init).
static void sync_from_device(ct_tuned_model *t) {
    ct_backend *be = t->m->be;
    for (int i = 0; i < t->n_params; i++) {
        tparam *p = &t->params[i];
        size_t bytes = (size_t)p->numel * sizeof(float);
        if (p->aliased)
            continue;
        if (!p->transposed) {
            be->download(be, p->w, p->dev, bytes);
            continue;
        }
        be->download(be, p->g, p->dev, bytes); // g is zero again below
        transpose(p->w, p->g, p->shape[1], p->shape[0]);
        memset(p->g, 0, bytes);
    }
}

// ---- lora / dora

static ct_status attach_adapters(ct_tuned_model *t, uint64_t seed, ct_error *err) {
    ct_model *m = t->m;
    ct_backend *be = m->be;
    int nl = m->L * CT_LIN_COUNT;
    t->layers = calloc((size_t)t->n_mods, sizeof *t->layers);
    t->selected = calloc((size_t)t->n_mods, sizeof *t->selected);
    t->table.lin = calloc((size_t)nl, sizeof *t->table.lin);
    t->table.lin_cache = calloc((size_t)nl, sizeof *t->table.lin_cache);
    if (!t->layers || !t->selected || !t->table.lin || !t->table.lin_cache)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    CT_TRY(ct_adapter_select(t->mods, t->n_mods, &t->acfg, t->selected, err));
    char name[256];
    for (int i = 0; i < t->n_mods; i++) {
        if (!t->selected[i])
            continue;
        const ct_module_desc *d = &t->mods[i];
        int l = i < nl ? i / CT_LIN_COUNT : -1, id = i < nl ? i % CT_LIN_COUNT : i - nl;
        const ct_weight *w = i < nl ? &m->layers[l].lin[id].w : id == 0 ? &m->embed : &m->lm_head.w;
        if (i == nl && t->acfg.type == CT_ADAPTER_DORA && m->cfg.tie_word_embeddings)
            return ct_fail(err, CT_ERR_UNSUPPORTED, "DoRA on model.embed_tokens of a model with tied embeddings "
                           "(the tied head would need DoRA's as_linear)");
        ct_adapter_layer *al = &t->layers[i];
        CT_TRY(ct_adapter_layer_init(al, be, d, &t->acfg, w, ct_model_module_seed(seed, l, id), err));
        if (i < nl)
            t->table.lin[i] = al;
        else if (id == 0)
            t->table.embed = al;
        else
            t->table.head = al;
        ct_adapter_param ap[3];
        int np = ct_adapter_param_info(al, ap);
        for (int k = 0; k < np; k++) {
            snprintf(name, sizeof name, "%s.%s", d->path, ap[k].leaf);
            CT_TRY(add_param(t, name, ap[k].value, ap[k].grad, ap[k].ndim, ap[k].mlx_shape[0], ap[k].mlx_shape[1],
                             ap[k].transposed, err));
        }
        t->trainable += ct_adapter_param_count(d, t->acfg.type, t->acfg.rank);
    }
    sync_from_device(t);
    m->adapters = &t->table;
    return CT_OK;
}

// ---- full fine-tuning

static ct_status owned_alloc(ct_tuned_model *t, int64_t n, float **out, ct_error *err) {
    if (t->n_owned == t->cap_owned) {
        int cap = t->cap_owned ? 2 * t->cap_owned : 64;
        void **o = realloc(t->owned, sizeof *o * (size_t)cap);
        if (!o)
            return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
        t->owned = o, t->cap_owned = cap;
    }
    CT_TRY(t->m->be->alloc(t->m->be, (size_t)n * sizeof(float), (void **)out, err));
    t->owned[t->n_owned++] = *out;
    return CT_OK;
}

// *vec (n) replaced by a trainable copy named name, with its gradient in *grad.
static ct_status trainable_vector(ct_tuned_model *t, const char *name, float **vec, int64_t n, float **grad,
                                  ct_error *err) {
    float *copy;
    CT_TRY(owned_alloc(t, n, &copy, err));
    CT_TRY(owned_alloc(t, n, grad, err));
    t->m->be->copy(t->m->be, copy, *vec, (size_t)n * sizeof(float));
    *vec = copy;
    t->trainable += n;
    return add_param(t, name, copy, *grad, 1, n, 0, false, err);
}

// The linear's weight (any format) replaced by a trainable f32 copy; its bias by a copy.
static ct_status trainable_linear(ct_tuned_model *t, int l, int id, const int32_t *iota, ct_error *err) {
    ct_model *m = t->m;
    ct_linear *lin = &m->layers[l].lin[id];
    ct_layer_grads *g = &t->grads[l];
    int64_t rows = lin->w.rows, cols = lin->w.cols;
    float *w;
    char name[256];
    CT_TRY(owned_alloc(t, rows * cols, &w, err));
    CT_TRY(owned_alloc(t, rows * cols, &g->w[id], err));
    m->be->embedding_forward(m->be, w, iota, &lin->w, rows); // every row, dequantized
    lin->w = (ct_weight){.rows = rows, .cols = cols, .dtype = CT_F32, .data = w};
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, block_rel((ct_linear_id)id));
    t->trainable += rows * cols;
    CT_TRY(add_param(t, name, w, g->w[id], 2, rows, cols, false, err));
    if (!lin->bias)
        return CT_OK;
    snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, block_rel((ct_linear_id)id));
    return trainable_vector(t, name, &lin->bias, rows, &g->bias[id], err);
}

static ct_status trainable_block(ct_tuned_model *t, int l, const int32_t *iota, ct_error *err) {
    ct_model *m = t->m;
    ct_layer_params *p = &m->layers[l];
    ct_layer_grads *g = &t->grads[l];
    saved_block *s = &t->saved[l];
    char name[256];
    memcpy(s->lin, p->lin, sizeof s->lin);
    s->attn_norm = p->attn_norm, s->ffn_norm = p->ffn_norm, s->q_norm = p->q_norm, s->k_norm = p->k_norm;
    s->post_attn_norm = p->post_attn_norm, s->post_ffn_norm = p->post_ffn_norm;
    for (int id = 0; id < CT_LIN_COUNT; id++)
        CT_TRY(trainable_linear(t, l, id, iota, err));
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    CT_TRY(trainable_vector(t, name, &p->attn_norm, m->C, &g->attn_norm, err));
    if (p->post_attn_norm) { // gemma's sandwich: post_attention_layernorm follows o_proj
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->post_attn_norm, m->C, &g->post_attn_norm, err));
        snprintf(name, sizeof name, "model.layers.%d.pre_feedforward_layernorm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->ffn_norm, m->C, &g->ffn_norm, err));
        snprintf(name, sizeof name, "model.layers.%d.post_feedforward_layernorm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->post_ffn_norm, m->C, &g->post_ffn_norm, err));
    } else {
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->ffn_norm, m->C, &g->ffn_norm, err));
    }
    if (p->q_norm) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->q_norm, m->D, &g->q_norm, err));
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        CT_TRY(trainable_vector(t, name, &p->k_norm, m->D, &g->k_norm, err));
    }
    return CT_OK;
}

static ct_status attach_full(ct_tuned_model *t, ct_error *err) {
    ct_model *m = t->m;
    t->grads = calloc((size_t)m->L, sizeof *t->grads);
    t->saved = calloc((size_t)m->L, sizeof *t->saved);
    if (!t->grads || !t->saved)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    int64_t max_rows = 0;
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++)
            max_rows = m->layers[l].lin[id].w.rows > max_rows ? m->layers[l].lin[id].w.rows : max_rows;
    int32_t *host = malloc(sizeof(int32_t) * (size_t)max_rows);
    if (!host)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    for (int64_t i = 0; i < max_rows; i++)
        host[i] = (int32_t)i;
    int32_t *iota;
    ct_status st = owned_alloc(t, max_rows, (float **)&iota, err);
    if (st == CT_OK)
        m->be->upload(m->be, iota, host, sizeof(int32_t) * (size_t)max_rows);
    free(host);
    int n = t->num_layers < 0 || t->num_layers > m->L ? m->L : t->num_layers;
    m->layer_grads = t->grads; // set first: free restores whatever was replaced
    for (int l = m->L - n; st == CT_OK && l < m->L; l++)
        st = trainable_block(t, l, iota, err);
    return st;
}

static void restore_full(ct_tuned_model *t) {
    ct_model *m = t->m;
    for (int l = 0; l < m->L; l++) {
        saved_block *s = &t->saved[l];
        if (!s->attn_norm)
            continue;
        ct_layer_params *p = &m->layers[l];
        memcpy(p->lin, s->lin, sizeof p->lin);
        p->attn_norm = s->attn_norm, p->ffn_norm = s->ffn_norm, p->q_norm = s->q_norm, p->k_norm = s->k_norm;
        p->post_attn_norm = s->post_attn_norm, p->post_ffn_norm = s->post_ffn_norm;
    }
}

// ---- create / free

void ct_tuned_model_free(ct_tuned_model *t) {
    if (!t)
        return;
    ct_model *m = t->m;
    ct_backend *be = m->be;
    if (m->adapters == &t->table)
        m->adapters = NULL;
    if (t->saved)
        restore_full(t);
    if (m->layer_grads == t->grads)
        m->layer_grads = NULL;
    ct_model_train_free(m);
    for (int i = 0; t->layers && i < t->n_mods; i++)
        if (t->selected[i])
            ct_adapter_layer_free(&t->layers[i], be);
    for (int i = 0; t->table.lin_cache && i < m->L * CT_LIN_COUNT; i++)
        ct_adapter_cache_free(&t->table.lin_cache[i], be);
    ct_adapter_cache_free(&t->table.embed_cache, be);
    ct_adapter_cache_free(&t->table.head_cache, be);
    for (int i = 0; i < t->n_owned; i++)
        be->free(be, t->owned[i]);
    for (int i = 0; i < t->n_params; i++) {
        free(t->params[i].name);
        if (!t->params[i].aliased) {
            free(t->params[i].w);
            free(t->params[i].g);
        }
    }
    for (int i = 0; i < t->n_mods; i++)
        free((char *)t->mods[i].path);
    free(t->mods);
    free(t->layers);
    free(t->selected);
    free(t->table.lin);
    free(t->table.lin_cache);
    free(t->grads);
    free(t->saved);
    free(t->owned);
    free(t->params);
    free(t->oparams);
    free(t->names);
    ct_adapter_config_free(&t->acfg);
    free(t);
}

static ct_status build_view(ct_tuned_model *t, ct_error *err) {
    int n = t->n_params;
    t->oparams = calloc((size_t)(n > 0 ? n : 1), sizeof *t->oparams);
    t->names = calloc((size_t)(n > 0 ? n : 1), sizeof *t->names);
    if (!t->oparams || !t->names)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    for (int i = 0; i < n; i++) {
        const tparam *p = &t->params[i];
        t->oparams[i] = (ct_optim_param){.w = p->w, .g = p->g, .ndim = p->ndim,
                                         .rows = p->ndim == 2 ? p->shape[0] : 1,
                                         .cols = p->ndim == 2 ? p->shape[1] : p->shape[0]};
        t->names[i] = p->name;
    }
    return CT_OK;
}

// Shared by create and apply: type "lora" / "dora" with acfg, or full.
static ct_status tuned_create(ct_tuned_model **out, ct_model *m, bool full, const ct_adapter_config *acfg,
                              int num_layers, bool ckpt, uint64_t seed, ct_error *err) {
    *out = NULL;
    if (num_layers == 0 || num_layers < -1)
        return ct_fail(err, CT_ERR_INVALID, "num_layers must be positive or -1 (all), got %d", num_layers);
    if (m->adapters || m->layer_grads)
        return ct_fail(err, CT_ERR_INVALID, "the model already has adapters or trainable weights attached");
    ct_tuned_model *t = calloc(1, sizeof *t);
    if (!t)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    t->m = m, t->full = full, t->num_layers = num_layers;
    ct_status st = build_modules(t, err);
    if (st == CT_OK && !full) {
        t->acfg = *acfg;
        t->acfg.keys = NULL, t->acfg.n_keys = 0;
        t->acfg.num_layers = num_layers;
        st = ct_adapter_config_set_keys(&t->acfg, (const char *const *)acfg->keys, acfg->n_keys, err);
        if (st == CT_OK)
            st = attach_adapters(t, seed, err);
    } else if (st == CT_OK) {
        st = attach_full(t, err);
    }
    if (st == CT_OK)
        st = build_view(t, err);
    if (st != CT_OK) {
        ct_tuned_model_free(t);
        return st;
    }
    t->total = model_total(t);
    m->grad_checkpoint = ckpt;
    *out = t;
    return CT_OK;
}

ct_status ct_tuned_model_create(ct_tuned_model **out, ct_model *m, const ct_tune_config *cfg, ct_error *err) {
    *out = NULL;
    const char *ft = cfg->fine_tune_type ? cfg->fine_tune_type : "lora";
    bool full = !strcmp(ft, "full");
    if (!full && strcmp(ft, "lora") && strcmp(ft, "dora"))
        return ct_fail(err, CT_ERR_INVALID, "fine_tune_type \"%s\": expected lora, dora or full", ft);
    ct_arch a = m->cfg.arch;
    if (a != CT_ARCH_LLAMA && a != CT_ARCH_MISTRAL && a != CT_ARCH_QWEN2 && a != CT_ARCH_QWEN3 && a != CT_ARCH_GEMMA3)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "training %s models is not supported yet (llama, mistral, qwen2, qwen3, gemma3)",
                       ct_arch_name(a));
    // mlx-lm names the wrapper's tensors language_model.model.layers.N...; ours would not load there.
    if (!strcmp(m->cfg.model_type, "gemma3"))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "training the gemma3 multimodal wrapper (model_type gemma3) is not "
                       "supported yet: its adapters would be named language_model.*; train a gemma3_text model");
    ct_adapter_config acfg = {.type = !strcmp(ft, "dora") ? CT_ADAPTER_DORA : CT_ADAPTER_LORA,
                              .num_layers = cfg->num_layers, .rank = cfg->rank, .scale = (float)cfg->scale,
                              .dropout = (float)cfg->dropout, .n_keys = cfg->n_keys, .keys = cfg->keys};
    return tuned_create(out, m, full, &acfg, cfg->num_layers, cfg->grad_checkpoint, cfg->seed, err);
}

void ct_tuned_model_counts(const ct_tuned_model *t, int64_t *trainable, int64_t *total) {
    *trainable = t->trainable;
    *total = t->total;
}

// ---- the trainer's view

static ct_status target_loss(void *ctx, const ct_batch *b, bool grad, uint64_t dropout_seed, double *loss,
                             int64_t *ntok, ct_error *err) {
    ct_tuned_model *t = ctx;
    CT_TRY(sync_to_device(t, err));
    CT_TRY(ct_model_train_loss(t->m, b->tokens, b->mask, (int)b->rows, (int)b->width, grad, dropout_seed, loss, ntok,
                               err));
    return grad ? grads_from_device(t, err) : CT_OK;
}

static ct_status target_save(void *ctx, const char *path, ct_error *err) {
    return ct_tuned_model_save_weights(ctx, path, err);
}

static ct_status target_load(void *ctx, const char *path, ct_error *err) {
    return ct_tuned_model_load_weights(ctx, path, err);
}

void ct_tuned_model_target(ct_tuned_model *t, ct_train_target *out) {
    *out = (ct_train_target){.ctx = t, .n_params = t->n_params, .params = t->oparams, .names = t->names,
                             .loss = target_loss, .save = target_save, .load = target_load};
}

// ---- files

ct_status ct_tuned_model_save_weights(ct_tuned_model *t, const char *path, ct_error *err) {
    ct_tensor_view *v = calloc((size_t)(t->n_params > 0 ? t->n_params : 1), sizeof *v);
    if (!v)
        return ct_fail(err, CT_ERR_NOMEM, "tuned model: out of memory");
    for (int i = 0; i < t->n_params; i++) {
        const tparam *p = &t->params[i];
        v[i] = (ct_tensor_view){.name = p->name, .dtype = CT_F32, .ndim = p->ndim,
                                .shape = {p->shape[0], p->shape[1]}, .data = p->w,
                                .nbytes = (size_t)p->numel * sizeof(float)};
    }
    const char *meta[] = {"format", "mlx"};
    ct_status st = ct_safetensors_write(path, v, t->n_params, meta, 1, err);
    free(v);
    return st;
}

static tparam *find_param(ct_tuned_model *t, const char *name) {
    for (int i = 0; i < t->n_params; i++)
        if (!strcmp(t->params[i].name, name))
            return &t->params[i];
    return NULL;
}

static ct_status check_tensor(const tparam *p, const ct_tensor_view *v, ct_error *err) {
    if (!p)
        return ct_fail(err, CT_ERR_INVALID, "tensor %s is not a trainable parameter of the model", v->name);
    bool same = v->ndim == p->ndim && v->shape[0] == p->shape[0] && (p->ndim == 1 || v->shape[1] == p->shape[1]);
    if (!same)
        return ct_fail(err, CT_ERR_INVALID, "tensor %s: shape does not match the parameter (%lld, %lld)", v->name,
                       (long long)p->shape[0], (long long)p->shape[1]);
    if (v->dtype != CT_F32 && v->dtype != CT_F16 && v->dtype != CT_BF16)
        return ct_fail(err, CT_ERR_INVALID, "tensor %s: dtype %s is not a float type", v->name,
                       ct_dtype_name(v->dtype));
    return CT_OK;
}

static ct_status load_tensors(ct_tuned_model *t, const ct_safetensors *st, ct_error *err) {
    for (int i = 0; i < st->n_tensors; i++)
        CT_TRY(check_tensor(find_param(t, st->tensors[i].name), &st->tensors[i], err));
    for (int i = 0; i < t->n_params; i++)
        if (!ct_safetensors_find(st, t->params[i].name))
            return ct_fail(err, CT_ERR_INVALID, "tensor %s is missing", t->params[i].name);
    for (int i = 0; i < st->n_tensors; i++) {
        const ct_tensor_view *v = &st->tensors[i];
        tparam *p = find_param(t, v->name);
        if (p->aliased && !host_visible(t->m->be))
            return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: aliased on a device backend", v->name);
        ct_convert_to_f32(p->w, v->data, v->dtype, (size_t)p->numel);
    }
    return sync_to_device(t, err);
}

ct_status ct_tuned_model_load_weights(ct_tuned_model *t, const char *path, ct_error *err) {
    ct_safetensors st;
    CT_TRY(ct_safetensors_open(&st, path, err));
    ct_status s = load_tensors(t, &st, err);
    ct_safetensors_close(&st);
    if (s != CT_OK)
        ct_error_context(err, "%s", path);
    return s;
}

// ---- adapter folders

// mlx-lm's full fine-tuning folder: adapter_config.json says fine_tune_type "full".
static ct_status read_fine_tune_type(const char *dir, bool *full, int *num_layers, ct_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    *full = false;
    if (!ct_path_exists(path))
        return CT_OK;
    cJSON *root;
    CT_TRY(ct_json_load_file(path, &root, err));
    const char *ft = NULL;
    int64_t nl = -1;
    ct_status st = ct_json_string(root, "fine_tune_type", &ft, err);
    if (st == CT_OK && ft && !strcmp(ft, "full")) {
        *full = true;
        st = ct_json_need_int(root, "num_layers", &nl, err);
        *num_layers = (int)nl;
    }
    cJSON_Delete(root);
    if (st != CT_OK)
        ct_error_context(err, "%s", path);
    return st;
}

static ct_status apply_entries(ct_tuned_model *t, const ct_adapter_set *set, ct_error *err) {
    char name[256];
    static const char *leaf[3] = {"lora_a", "lora_b", "m"};
    for (int i = 0; i < set->n; i++) {
        const ct_adapter_entry *e = &set->entries[i];
        const float *src[3] = {e->lora_a, e->lora_b, e->m};
        for (int k = 0; k < 3; k++) {
            if (!src[k])
                continue;
            snprintf(name, sizeof name, "%s.%s", t->mods[e->module].path, leaf[k]);
            tparam *p = find_param(t, name);
            if (!p)
                return ct_fail(err, CT_ERR_INVALID, "adapter %s is not a parameter of the model", name);
            memcpy(p->w, src[k], (size_t)p->numel * sizeof(float));
        }
    }
    return sync_to_device(t, err);
}

ct_status ct_model_apply_adapters(ct_model *m, const char *adapter_dir, ct_tuned_model **out, ct_error *err) {
    *out = NULL;
    if (!ct_is_dir(adapter_dir))
        return ct_fail(err, CT_ERR_IO, "The adapter path does not exist: %s", adapter_dir);
    bool full;
    int num_layers = -1;
    CT_TRY(read_fine_tune_type(adapter_dir, &full, &num_layers, err));
    if (full) {
        char path[4096];
        snprintf(path, sizeof path, "%s/adapters.safetensors", adapter_dir);
        CT_TRY(tuned_create(out, m, true, NULL, num_layers, false, 0, err));
        ct_status st = ct_tuned_model_load_weights(*out, path, err);
        if (st != CT_OK) {
            ct_tuned_model_free(*out);
            *out = NULL;
        }
        return st;
    }
    // Module descriptions of m to select and validate against.
    ct_tuned_model probe = {.m = m};
    ct_adapter_set set = {0};
    ct_status st = build_modules(&probe, err);
    if (st == CT_OK)
        st = ct_adapter_load(adapter_dir, probe.mods, probe.n_mods, &set, err);
    for (int i = 0; i < probe.n_mods; i++)
        free((char *)probe.mods[i].path);
    free(probe.mods);
    if (st == CT_OK)
        st = tuned_create(out, m, false, &set.cfg, set.cfg.num_layers, false, 0, err);
    if (st == CT_OK)
        st = apply_entries(*out, &set, err);
    if (st != CT_OK && *out) {
        ct_tuned_model_free(*out);
        *out = NULL;
    }
    ct_adapter_set_free(&set);
    return st;
}
