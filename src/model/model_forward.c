// model_forward.c: the decoder forward pass, written only against the
// backend's ops (every buffer here is a device pointer). llm.c style: the
// activations live in one struct, and each stage is a function with its shapes
// at the top: embed -> L x layer_forward (attention_block, mlp_block) ->
// final norm -> lm_head.
//
// Training (the same stages, keeping what the backward needs) is in
// model_train.c. Adapters attached to the model (m->adapters) are applied at
// model_linear_apply, model_embed_apply and model_head_apply, shared by both.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

// Scratch for a forward of up to cap_N = B*T rows. Device buffers.
struct ct_activations {
    int64_t cap_N;
    int32_t *ids;      // (N) token ids
    int32_t *targets;  // (N) next-token ids (sequence_nll)
    float *x;          // (N, C) residual stream
    float *h;          // (N, C) normed input of a block, then its normed output
    float *q;          // (N, H*D)
    float *k, *v;      // (N, KVH*D) this step's keys and values (B > 1; with B == 1 they go into the cache)
    float *att;        // (N, H*D) attention output
    float *o;          // (N, C) output of o_proj / down_proj
    float *gate, *up;  // (N, I)
    float *logits;     // (cap_logits, V)
    int64_t cap_logits;
    float *inv_freq;   // (rot_dims/2) full-attention layers
    float *inv_freq_local; // (rot_dims/2) gemma3 sliding layers
    float *loss;       // (1)
};

enum { NLL_CHUNK = 256 }; // logits rows per lm_head call in sequence_nll

void model_activations_free(ct_model *m) {
    ct_activations *a = m->acts;
    void *bufs[] = {a->ids, a->targets, a->x,   a->h,      a->q,        a->k,
                    a->v,   a->att,     a->o,   a->gate,   a->up,       a->logits,
                    a->inv_freq, a->inv_freq_local, a->loss};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            m->be->free(m->be, bufs[i]);
    free(a);
    m->acts = NULL;
}

static ct_status alloc_f(ct_backend *be, void **p, int64_t n, size_t elem, ct_error *err) {
    if (*p)
        be->free(be, *p);
    *p = NULL;
    return be->alloc(be, (size_t)n * elem, p, err);
}

// Makes room for N rows and logits_rows rows of logits.
static ct_status ensure_activations(ct_model *m, int64_t N, int64_t logits_rows, ct_error *err) {
    if (!m->acts) {
        m->acts = calloc(1, sizeof *m->acts);
        if (!m->acts)
            return ct_fail(err, CT_ERR_NOMEM, "model: out of memory");
        int64_t half = m->rot_dims / 2 > 0 ? m->rot_dims / 2 : 1;
        CT_TRY(alloc_f(m->be, (void **)&m->acts->inv_freq, half, sizeof(float), err));
        CT_TRY(alloc_f(m->be, (void **)&m->acts->inv_freq_local, half, sizeof(float), err));
        CT_TRY(alloc_f(m->be, (void **)&m->acts->loss, 1, sizeof(float), err));
    }
    ct_activations *a = m->acts;
    ct_backend *be = m->be;
    if (N > a->cap_N) {
        int64_t qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D;
        CT_TRY(alloc_f(be, (void **)&a->ids, N, sizeof(int32_t), err));
        CT_TRY(alloc_f(be, (void **)&a->targets, N, sizeof(int32_t), err));
        CT_TRY(alloc_f(be, (void **)&a->x, N * m->C, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->h, N * m->C, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->q, N * qd, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->k, N * kvd, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->v, N * kvd, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->att, N * qd, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->o, N * m->C, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->gate, N * m->I, sizeof(float), err));
        CT_TRY(alloc_f(be, (void **)&a->up, N * m->I, sizeof(float), err));
        a->cap_N = N;
    }
    if (logits_rows > a->cap_logits) {
        CT_TRY(alloc_f(be, (void **)&a->logits, logits_rows * m->V, sizeof(float), err));
        a->cap_logits = logits_rows;
    }
    return CT_OK;
}

// ---- KV cache

ct_status ct_kv_cache_init(ct_kv_cache *c, const ct_model *m, int B, int max_T, ct_error *err) {
    memset(c, 0, sizeof *c);
    if (B <= 0 || max_T <= 0)
        return ct_fail(err, CT_ERR_INVALID, "kv cache: batch %d and length %d must be positive", B, max_T);
    c->B = B;
    c->max_T = max_T;
    c->L = m->L;
    c->KVH = m->KVH;
    c->D = m->D;
    c->k = calloc((size_t)m->L, sizeof *c->k);
    c->v = calloc((size_t)m->L, sizeof *c->v);
    if (!c->k || !c->v) {
        ct_kv_cache_free(c, m);
        return ct_fail(err, CT_ERR_NOMEM, "kv cache: out of memory");
    }
    size_t bytes = sizeof(float) * (size_t)B * (size_t)max_T * (size_t)m->KVH * (size_t)m->D;
    for (int l = 0; l < m->L; l++) {
        ct_status st = m->be->alloc(m->be, bytes, (void **)&c->k[l], err);
        if (st == CT_OK)
            st = m->be->alloc(m->be, bytes, (void **)&c->v[l], err);
        if (st != CT_OK) {
            ct_kv_cache_free(c, m);
            return st;
        }
    }
    return CT_OK;
}

void ct_kv_cache_reset(ct_kv_cache *c) { c->pos = 0; }

void ct_kv_cache_free(ct_kv_cache *c, const ct_model *m) {
    for (int l = 0; c->k && l < c->L; l++)
        if (c->k[l])
            m->be->free(m->be, c->k[l]);
    for (int l = 0; c->v && l < c->L; l++)
        if (c->v[l])
            m->be->free(m->be, c->v[l]);
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

// ---- RoPE of this forward

static ct_rope_params rope_params(const ct_model *m, bool local) {
    const ct_model_config *c = &m->cfg;
    if (local) // gemma3 sliding layers: unscaled default RoPE with their own base
        return (ct_rope_params){.type = CT_ROPE_DEFAULT, .theta = c->rope_local_base_freq, .head_dim = m->D,
                                .partial_rotary_factor = c->partial_rotary_factor,
                                .max_position_embeddings = (int)c->max_position_embeddings, .factor = 1};
    return (ct_rope_params){
        .type = c->rope.type,
        .theta = c->rope.theta,
        .head_dim = m->D,
        .partial_rotary_factor = c->partial_rotary_factor,
        .max_position_embeddings = (int)c->max_position_embeddings,
        .factor = c->rope.factor,
        .low_freq_factor = c->rope.low_freq_factor,
        .high_freq_factor = c->rope.high_freq_factor,
        .original_max_position_embeddings = (int)c->rope.original_max_position_embeddings,
        .beta_fast = c->rope.beta_fast,
        .beta_slow = c->rope.beta_slow,
        .mscale = c->rope.mscale,
        .mscale_all_dim = c->rope.mscale_all_dim,
        .attention_factor = c->rope.attention_factor,
        .yarn_no_truncate = !c->rope.truncate,
        .long_factor = c->rope.long_factor,
        .short_factor = c->rope.short_factor,
    };
}

ct_status model_rope_upload(ct_model *m, int seq_len, bool local, float *inv_freq, float *scaling, ct_error *err) {
    int half = m->rot_dims / 2;
    float host[512];
    if (half > 512)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "rope: %d rotated dims (at most 1024)", m->rot_dims);
    ct_rope_params p = rope_params(m, local);
    CT_TRY(ct_rope_init(&p, seq_len, host, scaling, err));
    m->be->upload(m->be, inv_freq, host, sizeof(float) * (size_t)half);
    return CT_OK;
}

// Uploads inv_freq for a forward reaching seq_len positions; *scaling is the global cos/sin factor.
static ct_status rope_setup(ct_model *m, int seq_len, float *scaling, ct_error *err) {
    float local_scaling;
    CT_TRY(model_rope_upload(m, seq_len, false, m->acts->inv_freq, scaling, err));
    if (m->cfg.arch == CT_ARCH_GEMMA3)
        CT_TRY(model_rope_upload(m, seq_len, true, m->acts->inv_freq_local, &local_scaling, err));
    return CT_OK;
}

// ---- the adapted entry points (model_internal.h)

static ct_adapter_layer *linear_adapter(const ct_model *m, int layer, ct_linear_id id, ct_adapter_cache **cache) {
    if (!m->adapters || !m->adapters->lin)
        return NULL;
    int k = layer * CT_LIN_COUNT + (int)id;
    *cache = &m->adapters->lin_cache[k];
    return m->adapters->lin[k];
}

ct_status model_linear_apply(ct_model *m, int layer, ct_linear_id id, float *out, const float *inp, int64_t N,
                             bool train, uint64_t seed, ct_error *err) {
    const ct_linear *lin = &m->layers[layer].lin[id];
    ct_adapter_cache *cache = NULL;
    ct_adapter_layer *ad = linear_adapter(m, layer, id, &cache);
    if (ad)
        return ct_adapter_linear_forward(m->be, ad, cache, out, inp, &lin->w, lin->bias, N, train,
                                         ct_model_module_seed(seed, layer, id), err);
    m->be->linear_forward(m->be, out, inp, &lin->w, lin->bias, N);
    return CT_OK;
}

void model_linear_backward(ct_model *m, int layer, ct_linear_id id, float *dinp, const float *dout,
                           const float *inp, int64_t N) {
    const ct_linear *lin = &m->layers[layer].lin[id];
    ct_adapter_cache *cache = NULL;
    ct_adapter_layer *ad = linear_adapter(m, layer, id, &cache);
    if (ad) {
        ct_adapter_linear_backward(m->be, ad, cache, dinp, dout, inp, &lin->w, N);
        return;
    }
    const ct_layer_grads *g = m->layer_grads ? &m->layer_grads[layer] : NULL;
    float *dw = g ? g->w[id] : NULL, *db = g && lin->bias ? g->bias[id] : NULL;
    if (dinp || dw || db)
        m->be->linear_backward(m->be, dinp, dw, db, dout, inp, &lin->w, N);
}

ct_status model_embed_apply(ct_model *m, float *out, const int32_t *ids, int64_t N, bool train, uint64_t seed,
                            ct_error *err) {
    ct_adapter_layer *ad = m->adapters ? m->adapters->embed : NULL;
    if (ad)
        CT_TRY(ct_adapter_embedding_forward(m->be, ad, &m->adapters->embed_cache, out, ids, &m->embed, N, train,
                                            ct_model_module_seed(seed, -1, 0), err));
    else
        m->be->embedding_forward(m->be, out, ids, &m->embed, N);
    if (m->embed_scale != 1.0f)
        m->be->scale(m->be, out, m->embed_scale, N * m->C);
    return CT_OK;
}

ct_status model_head_apply(ct_model *m, float *logits, const float *hidden, int64_t N, bool train, uint64_t seed,
                           ct_error *err) {
    ct_backend *be = m->be;
    ct_model_adapters *a = m->adapters;
    uint64_t s = ct_model_module_seed(seed, -1, 1);
    if (a && a->head)
        CT_TRY(ct_adapter_linear_forward(be, a->head, &a->head_cache, logits, hidden, &m->lm_head.w,
                                         m->lm_head.bias, N, train, s, err));
    else if (a && a->embed && m->cfg.tie_word_embeddings)
        CT_TRY(ct_adapter_as_linear_forward(be, a->embed, &a->head_cache, logits, hidden, &m->embed, N, train, s,
                                            err));
    else
        be->linear_forward(be, logits, hidden, &m->lm_head.w, m->lm_head.bias, N);
    if (m->cfg.final_logit_softcapping > 0)
        be->softcap_forward(be, logits, logits, (float)m->cfg.final_logit_softcapping, N * m->V);
    return CT_OK;
}

uint64_t ct_model_module_seed(uint64_t call_seed, int layer, int id) {
    uint64_t st = call_seed ^ (((uint64_t)(uint32_t)(layer + 1) << 8 | (uint64_t)id) * 0x9e3779b97f4a7c15ull);
    st ^= st >> 31;
    st *= 0xbf58476d1ce4e5b9ull;
    return st ^ (st >> 29);
}

// ---- layers

static ct_status model_linear(ct_model *m, int layer, ct_linear_id id, float *out, const float *inp, int64_t N,
                              ct_error *err) {
    if (m->linear_hook)
        m->linear_hook(m->linear_hook_ctx, layer, id, inp, N, m->layers[layer].lin[id].w.cols);
    return model_linear_apply(m, layer, id, out, inp, N, false, 0, err);
}

typedef struct step_info {
    int B, T, pos;       // batch, new positions, first position
    float rope_scaling;  // cos/sin factor of full-attention layers
} step_info;

// a->h (B, T, C) normed input -> a->o (B, T, C); appends this step's k, v to the cache.
static ct_status attention_block(ct_model *m, int l, ct_kv_cache *kv, const step_info *s, ct_error *err) {
    ct_backend *be = m->be;
    ct_activations *a = m->acts;
    const ct_layer_params *p = &m->layers[l];
    int64_t N = (int64_t)s->B * s->T, kvd = (int64_t)m->KVH * m->D;
    float eps = (float)m->cfg.rms_norm_eps;
    bool sliding = m->cfg.layer_attn && m->cfg.layer_attn[l] == CT_ATTN_SLIDING;
    bool local_rope = sliding && m->cfg.arch == CT_ARCH_GEMMA3;
    const float *inv_freq = local_rope ? a->inv_freq_local : a->inv_freq;
    float scaling = local_rope ? 1.0f : s->rope_scaling;
    // With one sequence, this step's keys and values are computed in place in the cache.
    float *kslot = s->B == 1 ? kv->k[l] + (int64_t)s->pos * kvd : a->k;
    float *vslot = s->B == 1 ? kv->v[l] + (int64_t)s->pos * kvd : a->v;

    CT_TRY(model_linear(m, l, CT_LIN_Q, a->q, a->h, N, err));
    CT_TRY(model_linear(m, l, CT_LIN_K, kslot, a->h, N, err));
    CT_TRY(model_linear(m, l, CT_LIN_V, vslot, a->h, N, err));
    if (p->q_norm) { // per-head norms over D (qwen3, gemma3)
        be->rmsnorm_forward(be, a->q, NULL, a->q, p->q_norm, N * m->H, m->D, eps, m->norm_offset);
        be->rmsnorm_forward(be, kslot, NULL, kslot, p->k_norm, N * m->KVH, m->D, eps, m->norm_offset);
    }
    be->rope_forward(be, a->q, a->q, inv_freq, scaling, s->B, s->T, m->H, m->D, m->rot_dims, s->pos);
    be->rope_forward(be, kslot, kslot, inv_freq, scaling, s->B, s->T, m->KVH, m->D, m->rot_dims, s->pos);
    if (s->B > 1) {
        size_t bytes = sizeof(float) * (size_t)s->T * (size_t)kvd;
        for (int b = 0; b < s->B; b++) {
            int64_t dst = ((int64_t)b * kv->max_T + s->pos) * kvd, src = (int64_t)b * s->T * kvd;
            be->copy(be, kv->k[l] + dst, a->k + src, bytes);
            be->copy(be, kv->v[l] + dst, a->v + src, bytes);
        }
    }
    ct_attn_params ap = {
        .B = s->B, .T = s->T, .H = m->H, .KVH = m->KVH, .D = m->D, .pos_offset = s->pos, .kv_stride = kv->max_T,
        .scale = m->attn_scale, .window = sliding ? (int)m->cfg.sliding_window : 0,
        .softcap = (float)m->cfg.attn_logit_softcapping,
    };
    be->attention_forward(be, a->att, NULL, a->q, kv->k[l], kv->v[l], &ap);
    return model_linear(m, l, CT_LIN_O, a->o, a->att, N, err);
}

// a->h (N, C) normed input -> a->o (N, C) = down(act(gate(h)) * up(h))
static ct_status mlp_block(ct_model *m, int l, int64_t N, ct_error *err) {
    ct_activations *a = m->acts;
    CT_TRY(model_linear(m, l, CT_LIN_GATE, a->gate, a->h, N, err));
    CT_TRY(model_linear(m, l, CT_LIN_UP, a->up, a->h, N, err));
    m->be->glu_forward(m->be, a->gate, a->gate, a->up, N * m->I, m->act);
    return model_linear(m, l, CT_LIN_DOWN, a->o, a->gate, N, err);
}

// a->x (B, T, C) -> a->x: x += attn(norm(x)); x += mlp(norm(x)) (gemma: each
// block's output is normed again before the residual add).
static ct_status layer_forward(ct_model *m, int l, ct_kv_cache *kv, const step_info *s, ct_error *err) {
    ct_backend *be = m->be;
    ct_activations *a = m->acts;
    const ct_layer_params *p = &m->layers[l];
    int64_t N = (int64_t)s->B * s->T;
    float eps = (float)m->cfg.rms_norm_eps, off = m->norm_offset;

    be->rmsnorm_forward(be, a->h, NULL, a->x, p->attn_norm, N, m->C, eps, off);
    CT_TRY(attention_block(m, l, kv, s, err));
    if (p->post_attn_norm)
        be->rmsnorm_forward(be, a->o, NULL, a->o, p->post_attn_norm, N, m->C, eps, off);
    be->add(be, a->x, a->x, a->o, N * m->C);

    be->rmsnorm_forward(be, a->h, NULL, a->x, p->ffn_norm, N, m->C, eps, off);
    CT_TRY(mlp_block(m, l, N, err));
    if (p->post_ffn_norm)
        be->rmsnorm_forward(be, a->o, NULL, a->o, p->post_ffn_norm, N, m->C, eps, off);
    be->add(be, a->x, a->x, a->o, N * m->C);
    return CT_OK;
}

// ids (B, T) host -> a->h (B, T, C): the final-normed hidden states. Advances kv->pos.
static ct_status forward_hidden(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int B, int T, int64_t logits_rows,
                                ct_error *err) {
    if (B <= 0 || T <= 0)
        return ct_fail(err, CT_ERR_INVALID, "forward: batch %d and length %d must be positive", B, T);
    if (B != kv->B)
        return ct_fail(err, CT_ERR_INVALID, "forward: batch %d but the kv cache holds %d sequences", B, kv->B);
    if (kv->pos + T > kv->max_T)
        return ct_fail(err, CT_ERR_INVALID, "forward: %d + %d positions exceed the kv cache's %d", kv->pos, T,
                       kv->max_T);
    int64_t N = (int64_t)B * T;
    for (int64_t i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= m->V)
            return ct_fail(err, CT_ERR_INVALID, "forward: token id %d at %lld is outside the vocabulary (%d)",
                           ids[i], (long long)i, m->V);
    CT_TRY(ensure_activations(m, N, logits_rows, err));
    step_info s = {.B = B, .T = T, .pos = kv->pos};
    CT_TRY(rope_setup(m, kv->pos + T, &s.rope_scaling, err));

    ct_backend *be = m->be;
    ct_activations *a = m->acts;
    be->upload(be, a->ids, ids, sizeof(int32_t) * (size_t)N);
    CT_TRY(model_embed_apply(m, a->x, a->ids, N, false, 0, err));
    for (int l = 0; l < m->L; l++)
        CT_TRY(layer_forward(m, l, kv, &s, err));
    be->rmsnorm_forward(be, a->h, NULL, a->x, m->final_norm, N, m->C, (float)m->cfg.rms_norm_eps, m->norm_offset);
    kv->pos += T;
    return CT_OK;
}

ct_status ct_model_embed_rows(ct_model *m, const int32_t *ids, int64_t N, float *x, ct_error *err) {
    for (int64_t i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= m->V)
            return ct_fail(err, CT_ERR_INVALID, "embed: token id %d at %lld is outside the vocabulary (%d)", ids[i],
                           (long long)i, m->V);
    CT_TRY(ensure_activations(m, N, 0, err));
    ct_activations *a = m->acts;
    m->be->upload(m->be, a->ids, ids, sizeof(int32_t) * (size_t)N);
    CT_TRY(model_embed_apply(m, a->x, a->ids, N, false, 0, err));
    m->be->download(m->be, x, a->x, sizeof(float) * (size_t)(N * m->C));
    return CT_OK;
}

// The setup every single-layer entry point shares: checks layer l and a
// (B, T) batch against kv, makes room for B*T rows, fills *s (positions
// [0, T), RoPE) and resets kv. `what` names the entry point in the message.
static ct_status single_layer_setup(ct_model *m, ct_kv_cache *kv, int l, int B, int T, const char *what,
                                    step_info *s, ct_error *err) {
    if (l < 0 || l >= m->L || B <= 0 || T <= 0 || B != kv->B || T > kv->max_T)
        return ct_fail(err, CT_ERR_INVALID, "%s: layer %d of %d, batch %d (cache %d), length %d (cache %d)", what,
                       l, m->L, B, kv->B, T, kv->max_T);
    CT_TRY(ensure_activations(m, (int64_t)B * T, 0, err));
    *s = (step_info){.B = B, .T = T, .pos = 0};
    CT_TRY(rope_setup(m, T, &s->rope_scaling, err));
    ct_kv_cache_reset(kv);
    return CT_OK;
}

ct_status ct_model_layer_forward(ct_model *m, ct_kv_cache *kv, int l, float *x, int B, int T, ct_error *err) {
    step_info s;
    CT_TRY(single_layer_setup(m, kv, l, B, T, "layer forward", &s, err));
    size_t bytes = sizeof(float) * (size_t)B * (size_t)T * (size_t)m->C;
    m->be->upload(m->be, m->acts->x, x, bytes);
    CT_TRY(layer_forward(m, l, kv, &s, err));
    m->be->download(m->be, x, m->acts->x, bytes);
    return CT_OK;
}

ct_status ct_model_attention_forward(ct_model *m, ct_kv_cache *kv, int l, const float *h, int B, int T, float *out,
                                     ct_error *err) {
    step_info s;
    CT_TRY(single_layer_setup(m, kv, l, B, T, "attention forward", &s, err));
    size_t bytes = sizeof(float) * (size_t)B * (size_t)T * (size_t)m->C;
    m->be->upload(m->be, m->acts->h, h, bytes);
    CT_TRY(attention_block(m, l, kv, &s, err));
    m->be->download(m->be, out, m->acts->o, bytes);
    return CT_OK;
}

ct_status ct_model_mlp_forward(ct_model *m, int l, const float *h, int64_t N, float *out, ct_error *err) {
    if (l < 0 || l >= m->L || N <= 0)
        return ct_fail(err, CT_ERR_INVALID, "mlp forward: layer %d of %d, %lld rows", l, m->L, (long long)N);
    CT_TRY(ensure_activations(m, N, 0, err));
    size_t bytes = sizeof(float) * (size_t)(N * m->C);
    m->be->upload(m->be, m->acts->h, h, bytes);
    CT_TRY(mlp_block(m, l, N, err));
    m->be->download(m->be, out, m->acts->o, bytes);
    return CT_OK;
}

// hidden (N, C) -> a->logits (N, V), final soft-capping included.
static ct_status lm_head(ct_model *m, const float *hidden, int64_t N, ct_error *err) {
    return model_head_apply(m, m->acts->logits, hidden, N, false, 0, err);
}

ct_status ct_model_forward(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int B, int T, bool last_only,
                           const float **logits, ct_error *err) {
    int64_t rows = last_only ? B : (int64_t)B * T;
    CT_TRY(forward_hidden(m, kv, ids, B, T, rows, err));
    ct_activations *a = m->acts;
    if (last_only) {
        for (int b = 0; b < B; b++) // gather each sequence's last row into a->o (B, C)
            m->be->copy(m->be, a->o + (int64_t)b * m->C, a->h + ((int64_t)b * T + T - 1) * m->C,
                        sizeof(float) * (size_t)m->C);
        CT_TRY(lm_head(m, a->o, B, err));
    } else {
        CT_TRY(lm_head(m, a->h, rows, err));
    }
    *logits = a->logits;
    return CT_OK;
}

ct_status ct_model_sequence_nll(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int T, double *nll_sum,
                                int64_t *n_predicted, ct_error *err) {
    *nll_sum = 0;
    *n_predicted = 0;
    if (T < 2)
        return ct_fail(err, CT_ERR_INVALID, "perplexity: a sequence needs at least 2 tokens, got %d", T);
    ct_kv_cache_reset(kv);
    CT_TRY(forward_hidden(m, kv, ids, 1, T, NLL_CHUNK, err));
    ct_activations *a = m->acts;
    m->be->upload(m->be, a->targets, ids + 1, sizeof(int32_t) * (size_t)(T - 1));
    for (int64_t r0 = 0; r0 < T - 1; r0 += NLL_CHUNK) {
        int64_t n = T - 1 - r0 < NLL_CHUNK ? T - 1 - r0 : NLL_CHUNK;
        CT_TRY(lm_head(m, a->h + r0 * m->C, n, err));
        float mean;
        m->be->cross_entropy_forward(m->be, a->loss, a->logits, a->targets + r0, NULL, n, m->V);
        m->be->download(m->be, &mean, a->loss, sizeof mean);
        *nll_sum += (double)mean * (double)n;
    }
    *n_predicted = T - 1;
    return CT_OK;
}
