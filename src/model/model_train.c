// model_train.c: the training forward and backward of the decoder, against
// the backend's ops (device pointers), llm.c style. The forward mirrors
// model_forward.c's layer_forward but keeps, per block, what the backward
// needs (block_acts); block_backward runs the same stages in reverse with the
// *_backward ops, which accumulate into their gradient outputs.
//
// Memory: blocks below the earliest trainable one run in one shared scratch
// set (no backward reaches them). With grad_checkpoint, trainable blocks keep
// only their input (N, C) and share one set, which backward refills by
// re-running the block (same dropout seeds, so the same masks). The logits
// exist HEAD_CHUNK rows at a time: each chunk's loss and gradient are
// computed, then the chunk is dropped; chunks without trained targets are
// skipped. The loss itself is a callback on each chunk's logits
// (ct_model_train_logits); the next-token cross-entropy is one such callback.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

enum { HEAD_CHUNK = 128 };

// One block's saved activations (device). N = B*T rows.
typedef struct block_acts {
    float *x_in;            // (N, C) residual stream into the block
    float *h1, *rstd1;      // (N, C) attn-normed input, (N)
    float *q_raw, *k_raw;   // (N, H*D), (N, KVH*D) projections before the q/k norms (qwen3; else unused)
    float *q_rstd, *k_rstd; // (N*H), (N*KVH)
    float *q, *k, *v;       // (N, H*D), (N, KVH*D), (N, KVH*D): attention inputs (normed, rotated)
    float *att, *lse;       // (N, H*D) attention output, (B, H, T)
    float *o_attn, *rstd_pa; // (N, C) o_proj's output before gemma's post_attention_layernorm, (N) (else unused)
    float *x_mid;           // (N, C) residual stream after attention
    float *h2, *rstd2;      // (N, C) mlp-normed, (N)
    float *gate, *up, *act; // (N, I) gate and up projections, act(gate) * up
    float *o_mlp, *rstd_pf; // (N, C) down_proj's output before gemma's post_feedforward_layernorm, (N) (else unused)
} block_acts;

struct ct_train_state {
    int64_t N;              // rows the buffers were made for
    int first;              // earliest trainable block they were laid out for
    bool ckpt;
    block_acts *blocks;     // [L]
    float *x_top;           // (N, C) the last block's output (x_in of "block L")
    float *hf, *rstd_f;     // (N, C), (N) final norm
    int32_t *ids, *targets; // (N)
    float *mask;            // (N)
    float *inv_freq;        // (rot_dims/2) full-attention layers
    float *inv_freq_local;  // (rot_dims/2) gemma3 sliding layers (their own RoPE base)
    float *logits, *dlogits, *loss; // (HEAD_CHUNK, V) x2, (1)
    float *o;               // (N, C) output of o_proj / down_proj
    float *dres, *dh, *dhf; // (N, C) residual gradient, normed-input gradient, final-norm output gradient
    float *dpost;           // (N, C) gradient of o_proj's / down_proj's output under a gemma post-norm
    float *datt, *dq, *dq2; // (N, H*D)
    float *dk, *dk2, *dv;   // (N, KVH*D)
    float *dact, *dgate, *dup; // (N, I)
    void **bufs;            // every buffer, for free
    int n_bufs, cap_bufs;
};

void ct_model_train_free(ct_model *m) {
    ct_train_state *s = m->train;
    if (!s)
        return;
    for (int i = 0; i < s->n_bufs; i++)
        m->be->free(m->be, s->bufs[i]);
    free(s->bufs);
    free(s->blocks);
    free(s);
    m->train = NULL;
}

// A zeroed device buffer of n elements of size elsize, owned by s.
static ct_status tbuf(ct_model *m, int64_t n, size_t elsize, void *out, ct_error *err) {
    ct_train_state *s = m->train;
    if (s->n_bufs == s->cap_bufs) {
        int cap = s->cap_bufs ? 2 * s->cap_bufs : 64;
        void **b = realloc(s->bufs, sizeof *b * (size_t)cap);
        if (!b)
            return ct_fail(err, CT_ERR_NOMEM, "training: out of memory");
        s->bufs = b, s->cap_bufs = cap;
    }
    void *p = NULL;
    CT_TRY(m->be->alloc(m->be, (size_t)(n > 0 ? n : 1) * elsize, &p, err));
    s->bufs[s->n_bufs++] = p;
    *(void **)out = p;
    return CT_OK;
}

// Everything of a block_acts except x_in and x_mid.
static ct_status block_set(ct_model *m, block_acts *a, int64_t N, ct_error *err) {
    int64_t qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D;
    const size_t f = sizeof(float);
    CT_TRY(tbuf(m, N * m->C, f, &a->h1, err));
    CT_TRY(tbuf(m, N, f, &a->rstd1, err));
    if (m->layers[0].q_norm) {
        CT_TRY(tbuf(m, N * qd, f, &a->q_raw, err));
        CT_TRY(tbuf(m, N * kvd, f, &a->k_raw, err));
        CT_TRY(tbuf(m, N * m->H, f, &a->q_rstd, err));
        CT_TRY(tbuf(m, N * m->KVH, f, &a->k_rstd, err));
    }
    CT_TRY(tbuf(m, N * qd, f, &a->q, err));
    CT_TRY(tbuf(m, N * kvd, f, &a->k, err));
    CT_TRY(tbuf(m, N * kvd, f, &a->v, err));
    CT_TRY(tbuf(m, N * qd, f, &a->att, err));
    CT_TRY(tbuf(m, N * m->H, f, &a->lse, err));
    CT_TRY(tbuf(m, N * m->C, f, &a->h2, err));
    CT_TRY(tbuf(m, N, f, &a->rstd2, err));
    CT_TRY(tbuf(m, N * m->I, f, &a->gate, err));
    CT_TRY(tbuf(m, N * m->I, f, &a->up, err));
    CT_TRY(tbuf(m, N * m->I, f, &a->act, err));
    if (m->layers[0].post_attn_norm) {
        CT_TRY(tbuf(m, N * m->C, f, &a->o_attn, err));
        CT_TRY(tbuf(m, N, f, &a->rstd_pa, err));
        CT_TRY(tbuf(m, N * m->C, f, &a->o_mlp, err));
        CT_TRY(tbuf(m, N, f, &a->rstd_pf, err));
    }
    return CT_OK;
}

static ct_status alloc_blocks(ct_model *m, int64_t N, ct_error *err) {
    ct_train_state *s = m->train;
    const size_t f = sizeof(float);
    block_acts shared;
    CT_TRY(block_set(m, &shared, N, err));
    float *x0; // the residual stream of the frozen blocks, updated in place
    CT_TRY(tbuf(m, N * m->C, f, &x0, err));
    if (s->ckpt)
        CT_TRY(tbuf(m, N * m->C, f, &shared.x_mid, err));
    for (int l = 0; l < m->L; l++) {
        block_acts *a = &s->blocks[l];
        if (l < s->first) {
            *a = shared;
            a->x_in = a->x_mid = x0;
            continue;
        }
        if (s->ckpt)
            *a = shared;
        else
            CT_TRY(block_set(m, a, N, err));
        if (l == s->first)
            a->x_in = x0;
        else
            CT_TRY(tbuf(m, N * m->C, f, &a->x_in, err));
        if (!s->ckpt)
            CT_TRY(tbuf(m, N * m->C, f, &a->x_mid, err));
    }
    if (s->first >= m->L)
        s->x_top = x0;
    else
        CT_TRY(tbuf(m, N * m->C, f, &s->x_top, err));
    return CT_OK;
}

static ct_status alloc_scratch(ct_model *m, int64_t N, ct_error *err) {
    ct_train_state *s = m->train;
    int64_t qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D, half = m->rot_dims / 2;
    const size_t f = sizeof(float);
    CT_TRY(tbuf(m, N * m->C, f, &s->hf, err));
    CT_TRY(tbuf(m, N, f, &s->rstd_f, err));
    CT_TRY(tbuf(m, N, sizeof(int32_t), &s->ids, err));
    CT_TRY(tbuf(m, N, sizeof(int32_t), &s->targets, err));
    CT_TRY(tbuf(m, N, f, &s->mask, err));
    CT_TRY(tbuf(m, half, f, &s->inv_freq, err));
    CT_TRY(tbuf(m, half, f, &s->inv_freq_local, err));
    CT_TRY(tbuf(m, (int64_t)HEAD_CHUNK * m->V, f, &s->logits, err));
    CT_TRY(tbuf(m, (int64_t)HEAD_CHUNK * m->V, f, &s->dlogits, err));
    CT_TRY(tbuf(m, 1, f, &s->loss, err));
    CT_TRY(tbuf(m, N * m->C, f, &s->o, err));
    CT_TRY(tbuf(m, N * m->C, f, &s->dres, err));
    CT_TRY(tbuf(m, N * m->C, f, &s->dh, err));
    CT_TRY(tbuf(m, N * m->C, f, &s->dhf, err));
    if (m->layers[0].post_attn_norm)
        CT_TRY(tbuf(m, N * m->C, f, &s->dpost, err));
    CT_TRY(tbuf(m, N * qd, f, &s->datt, err));
    CT_TRY(tbuf(m, N * qd, f, &s->dq, err));
    CT_TRY(tbuf(m, N * qd, f, &s->dq2, err));
    CT_TRY(tbuf(m, N * kvd, f, &s->dk, err));
    CT_TRY(tbuf(m, N * kvd, f, &s->dk2, err));
    CT_TRY(tbuf(m, N * kvd, f, &s->dv, err));
    CT_TRY(tbuf(m, N * m->I, f, &s->dact, err));
    CT_TRY(tbuf(m, N * m->I, f, &s->dgate, err));
    CT_TRY(tbuf(m, N * m->I, f, &s->dup, err));
    return CT_OK;
}

// (Re)builds the state for N rows and the current trainable layout.
static ct_status ensure_state(ct_model *m, int64_t N, int first, ct_error *err) {
    ct_train_state *s = m->train;
    if (s && s->N >= N && s->first == first && s->ckpt == m->grad_checkpoint)
        return CT_OK;
    ct_model_train_free(m);
    s = m->train = calloc(1, sizeof *s);
    if (s)
        s->blocks = calloc((size_t)m->L, sizeof *s->blocks);
    if (!s || !s->blocks) {
        ct_model_train_free(m);
        return ct_fail(err, CT_ERR_NOMEM, "training: out of memory");
    }
    s->N = N, s->first = first, s->ckpt = m->grad_checkpoint;
    ct_status st = alloc_blocks(m, N, err);
    if (st == CT_OK)
        st = alloc_scratch(m, N, err);
    if (st != CT_OK)
        ct_model_train_free(m);
    return st;
}

// ---- what is trainable

static bool lin_trainable(const ct_model *m, int l, int id) {
    if (m->adapters && m->adapters->lin && m->adapters->lin[l * CT_LIN_COUNT + id])
        return true;
    const ct_layer_grads *g = m->layer_grads ? &m->layer_grads[l] : NULL;
    return g && (g->w[id] || g->bias[id]);
}

static bool attn_trainable(const ct_model *m, int l) {
    const ct_layer_grads *g = m->layer_grads ? &m->layer_grads[l] : NULL;
    if (g && (g->attn_norm || g->q_norm || g->k_norm || g->post_attn_norm))
        return true;
    for (int id = CT_LIN_Q; id <= CT_LIN_O; id++)
        if (lin_trainable(m, l, id))
            return true;
    return false;
}

static bool block_trainable(const ct_model *m, int l) {
    const ct_layer_grads *g = m->layer_grads ? &m->layer_grads[l] : NULL;
    if (attn_trainable(m, l) || (g && (g->ffn_norm || g->post_ffn_norm)))
        return true;
    for (int id = CT_LIN_GATE; id <= CT_LIN_DOWN; id++)
        if (lin_trainable(m, l, id))
            return true;
    return false;
}

// Whether the embedding lookup is trained (its adapter or its dense weight).
static bool embed_trainable(const ct_model *m) {
    return (m->adapters && m->adapters->embed) || (m->extra_grads && m->extra_grads->embed);
}

static int first_trainable_block(const ct_model *m) {
    if (embed_trainable(m))
        return 0;
    for (int l = 0; l < m->L; l++)
        if (block_trainable(m, l))
            return l;
    return m->L;
}

// ---- forward

typedef struct step {
    int B, T;
    float rope_scaling, rope_scaling_local; // cos/sin factors of full-attention and gemma3 sliding layers
    bool train;
    uint64_t seed;
} step;

static bool layer_sliding(const ct_model *m, int l) {
    return m->cfg.layer_attn && m->cfg.layer_attn[l] == CT_ATTN_SLIDING;
}

typedef struct layer_rope {
    const float *inv_freq; // (rot_dims/2)
    float scaling;         // cos/sin factor
} layer_rope;

// Layer l's RoPE: gemma3's sliding layers have their own (unscaled, local base), as in model_forward.c.
// (Returned by value: an address-taken local would live on ASan's fake stack in the hot loop.)
static layer_rope rope_of_layer(const ct_model *m, int l, const step *s) {
    bool local = layer_sliding(m, l) && m->cfg.arch == CT_ARCH_GEMMA3;
    return local ? (layer_rope){m->train->inv_freq_local, s->rope_scaling_local}
                 : (layer_rope){m->train->inv_freq, s->rope_scaling};
}

static ct_attn_params attn_params(const ct_model *m, int l, const step *s) {
    bool sliding = layer_sliding(m, l);
    return (ct_attn_params){.B = s->B, .T = s->T, .H = m->H, .KVH = m->KVH, .D = m->D, .pos_offset = 0,
                            .kv_stride = s->T, .scale = m->attn_scale,
                            .window = sliding ? (int)m->cfg.sliding_window : 0, .softcap = 0};
}

// a->x_in (N, C) -> x_out (N, C), filling a (x_out may alias a->x_in for frozen blocks).
static ct_status block_forward(ct_model *m, int l, const block_acts *a, float *x_out, const step *s,
                               ct_error *err) {
    ct_backend *be = m->be;
    ct_train_state *ts = m->train;
    const ct_layer_params *p = &m->layers[l];
    int64_t N = (int64_t)s->B * s->T;
    float eps = (float)m->cfg.rms_norm_eps, off = m->norm_offset;
    float *q = p->q_norm ? a->q_raw : a->q, *k = p->q_norm ? a->k_raw : a->k;

    be->rmsnorm_forward(be, a->h1, a->rstd1, a->x_in, p->attn_norm, N, m->C, eps, off);
    CT_TRY(model_linear_apply(m, l, CT_LIN_Q, q, a->h1, N, s->train, s->seed, err));
    CT_TRY(model_linear_apply(m, l, CT_LIN_K, k, a->h1, N, s->train, s->seed, err));
    CT_TRY(model_linear_apply(m, l, CT_LIN_V, a->v, a->h1, N, s->train, s->seed, err));
    if (p->q_norm) {
        be->rmsnorm_forward(be, a->q, a->q_rstd, a->q_raw, p->q_norm, N * m->H, m->D, eps, off);
        be->rmsnorm_forward(be, a->k, a->k_rstd, a->k_raw, p->k_norm, N * m->KVH, m->D, eps, off);
    }
    layer_rope r = rope_of_layer(m, l, s);
    be->rope_forward(be, a->q, a->q, r.inv_freq, r.scaling, s->B, s->T, m->H, m->D, m->rot_dims, 0);
    be->rope_forward(be, a->k, a->k, r.inv_freq, r.scaling, s->B, s->T, m->KVH, m->D, m->rot_dims, 0);
    ct_attn_params ap = attn_params(m, l, s);
    be->attention_forward(be, a->att, a->lse, a->q, a->k, a->v, &ap);
    CT_TRY(model_linear_apply(m, l, CT_LIN_O, p->post_attn_norm ? a->o_attn : ts->o, a->att, N, s->train, s->seed,
                              err));
    if (p->post_attn_norm)
        be->rmsnorm_forward(be, ts->o, a->rstd_pa, a->o_attn, p->post_attn_norm, N, m->C, eps, off);
    be->add(be, a->x_mid, a->x_in, ts->o, N * m->C);

    be->rmsnorm_forward(be, a->h2, a->rstd2, a->x_mid, p->ffn_norm, N, m->C, eps, off);
    CT_TRY(model_linear_apply(m, l, CT_LIN_GATE, a->gate, a->h2, N, s->train, s->seed, err));
    CT_TRY(model_linear_apply(m, l, CT_LIN_UP, a->up, a->h2, N, s->train, s->seed, err));
    be->glu_forward(be, a->act, a->gate, a->up, N * m->I, m->act);
    CT_TRY(model_linear_apply(m, l, CT_LIN_DOWN, p->post_ffn_norm ? a->o_mlp : ts->o, a->act, N, s->train, s->seed,
                              err));
    if (p->post_ffn_norm)
        be->rmsnorm_forward(be, ts->o, a->rstd_pf, a->o_mlp, p->post_ffn_norm, N, m->C, eps, off);
    be->add(be, x_out, a->x_mid, ts->o, N * m->C);
    return CT_OK;
}

static float *block_output(const ct_train_state *ts, const ct_model *m, int l) {
    return l + 1 < m->L ? ts->blocks[l + 1].x_in : ts->x_top;
}

// ---- backward

static void zero(ct_model *m, float *p, int64_t n) { m->be->zero(m->be, p, (size_t)n * sizeof(float)); }

// d y (N, C) of a branch output y = norm(o) (gemma's post-norm; weight NULL = none) -> d o: ts->dpost, or
// dout itself without a post-norm. The norm weight's gradient dw (may be NULL) +=.
static const float *post_norm_backward(ct_model *m, float *dw, const float *dout, const float *o, const float *weight,
                                       const float *rstd, int64_t N) {
    if (!weight)
        return dout;
    ct_train_state *ts = m->train;
    zero(m, ts->dpost, N * m->C);
    m->be->rmsnorm_backward(m->be, ts->dpost, dw, dout, o, weight, rstd, N, m->C, m->norm_offset);
    return ts->dpost;
}

// ts->dres (N, C): d x_out on entry, d x_in on exit (when need_dx). Parameter gradients +=.
static void block_backward(ct_model *m, int l, const block_acts *a, const step *s, bool need_dx) {
    ct_backend *be = m->be;
    ct_train_state *ts = m->train;
    const ct_layer_params *p = &m->layers[l];
    const ct_layer_grads *g = m->layer_grads ? &m->layer_grads[l] : NULL;
    int64_t N = (int64_t)s->B * s->T, qd = (int64_t)m->H * m->D, kvd = (int64_t)m->KVH * m->D;
    float off = m->norm_offset;
    bool attn = need_dx || attn_trainable(m, l);

    // mlp: x_out = x_mid + post_norm(down(act(gate(h2)) * up(h2))), h2 = norm(x_mid)
    const float *dmlp = post_norm_backward(m, g ? g->post_ffn_norm : NULL, ts->dres, a->o_mlp, p->post_ffn_norm,
                                           a->rstd_pf, N);
    zero(m, ts->dact, N * m->I);
    model_linear_backward(m, l, CT_LIN_DOWN, ts->dact, dmlp, a->act, N);
    zero(m, ts->dgate, N * m->I);
    zero(m, ts->dup, N * m->I);
    be->glu_backward(be, ts->dgate, ts->dup, ts->dact, a->gate, a->up, N * m->I, m->act);
    zero(m, ts->dh, N * m->C);
    model_linear_backward(m, l, CT_LIN_GATE, ts->dh, ts->dgate, a->h2, N);
    model_linear_backward(m, l, CT_LIN_UP, ts->dh, ts->dup, a->h2, N);
    be->rmsnorm_backward(be, attn ? ts->dres : NULL, g ? g->ffn_norm : NULL, ts->dh, a->x_mid, p->ffn_norm,
                         a->rstd2, N, m->C, off);
    if (!attn)
        return;

    // attention: x_mid = x_in + post_norm(o(attn(rope(norm(q(h1))), rope(norm(k(h1))), v(h1)))), h1 = norm(x_in)
    const float *dattn = post_norm_backward(m, g ? g->post_attn_norm : NULL, ts->dres, a->o_attn, p->post_attn_norm,
                                            a->rstd_pa, N);
    zero(m, ts->datt, N * qd);
    model_linear_backward(m, l, CT_LIN_O, ts->datt, dattn, a->att, N);
    zero(m, ts->dq, N * qd);
    zero(m, ts->dk, N * kvd);
    zero(m, ts->dv, N * kvd);
    ct_attn_params ap = attn_params(m, l, s);
    be->attention_backward(be, ts->dq, ts->dk, ts->dv, ts->datt, a->q, a->k, a->v, a->att, a->lse, &ap);
    zero(m, ts->dq2, N * qd);
    zero(m, ts->dk2, N * kvd);
    layer_rope r = rope_of_layer(m, l, s);
    be->rope_backward(be, ts->dq2, ts->dq, r.inv_freq, r.scaling, s->B, s->T, m->H, m->D, m->rot_dims, 0);
    be->rope_backward(be, ts->dk2, ts->dk, r.inv_freq, r.scaling, s->B, s->T, m->KVH, m->D, m->rot_dims, 0);
    float *dq = ts->dq2, *dk = ts->dk2;
    if (p->q_norm) {
        zero(m, ts->dq, N * qd);
        zero(m, ts->dk, N * kvd);
        be->rmsnorm_backward(be, ts->dq, g ? g->q_norm : NULL, ts->dq2, a->q_raw, p->q_norm, a->q_rstd, N * m->H,
                             m->D, off);
        be->rmsnorm_backward(be, ts->dk, g ? g->k_norm : NULL, ts->dk2, a->k_raw, p->k_norm, a->k_rstd,
                             N * m->KVH, m->D, off);
        dq = ts->dq, dk = ts->dk;
    }
    bool need_h1 = need_dx || (g && g->attn_norm);
    float *dh = need_h1 ? ts->dh : NULL;
    if (need_h1)
        zero(m, ts->dh, N * m->C);
    model_linear_backward(m, l, CT_LIN_Q, dh, dq, a->h1, N);
    model_linear_backward(m, l, CT_LIN_K, dh, dk, a->h1, N);
    model_linear_backward(m, l, CT_LIN_V, dh, ts->dv, a->h1, N);
    if (need_h1)
        be->rmsnorm_backward(be, need_dx ? ts->dres : NULL, g ? g->attn_norm : NULL, ts->dh, a->x_in, p->attn_norm,
                             a->rstd1, N, m->C, off);
}

// ---- the head and the loss

// d logits (n, V) of rows h (n, C) -> the head's parameter gradients and dh (n, C) += (may be NULL).
static void head_backward(ct_model *m, float *dh, const float *dlogits, const float *h, int64_t n) {
    ct_backend *be = m->be;
    ct_model_adapters *ad = m->adapters;
    const ct_extra_grads *x = m->extra_grads;
    if (ad && ad->head) {
        ct_adapter_linear_backward(be, ad->head, &ad->head_cache, dh, dlogits, h, &m->lm_head.w, n);
        return;
    }
    if (ad && ad->embed && m->cfg.tie_word_embeddings) {
        ct_adapter_as_linear_backward(be, ad->embed, &ad->head_cache, dh, dlogits, h, &m->embed, n);
        return;
    }
    float *dw = !x ? NULL : m->cfg.tie_word_embeddings ? x->embed : x->lm_head;
    if (dh || dw)
        be->linear_backward(be, dh, dw, NULL, dlogits, h, &m->lm_head.w, n);
}

// The logits of rows [0, N) of ts->hf, HEAD_CHUNK rows at a time, through fn
// (and with training, back into the head's parameters and ts->dhf when
// need_dh). Chunks whose rows are all 0 in skip (host, (N); NULL = none) are
// not computed.
static ct_status head_chunks(ct_model *m, const float *skip, int64_t N, const step *s, bool need_dh,
                             ct_logits_loss_fn fn, void *ctx, double *sum, ct_error *err) {
    ct_train_state *ts = m->train;
    for (int64_t r0 = 0; r0 < N; r0 += HEAD_CHUNK) {
        int64_t n = N - r0 < HEAD_CHUNK ? N - r0 : HEAD_CHUNK, live = !skip;
        for (int64_t i = r0; !live && i < r0 + n; i++)
            live = skip[i] != 0.0f;
        if (!live)
            continue;
        const float *h = ts->hf + r0 * m->C;
        CT_TRY(model_head_apply(m, ts->logits, h, n, s->train, s->seed + (uint64_t)r0, err));
        if (s->train)
            zero(m, ts->dlogits, n * m->V);
        CT_TRY(fn(ctx, r0, n, ts->logits, s->train ? ts->dlogits : NULL, sum, err));
        if (s->train)
            head_backward(m, need_dh ? ts->dhf + r0 * m->C : NULL, ts->dlogits, h, n);
    }
    return CT_OK;
}

// ---- the step

static ct_status check_trainable_arch(const ct_model *m, ct_error *err) {
    ct_arch a = m->cfg.arch;
    if (a != CT_ARCH_LLAMA && a != CT_ARCH_MISTRAL && a != CT_ARCH_QWEN2 && a != CT_ARCH_QWEN3 && a != CT_ARCH_GEMMA3)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "training %s models is not supported yet (llama, mistral, qwen2, qwen3, gemma3)",
                       ct_arch_name(a));
    return CT_OK;
}

// Host ids (B*T) -> ts->ids, each checked against the vocabulary.
static ct_status upload_ids(ct_model *m, const int32_t *ids, int B, int T, ct_error *err) {
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= m->V)
            return ct_fail(err, CT_ERR_INVALID, "training: token id %d at row %lld, position %lld is outside the "
                           "vocabulary (%d)", ids[i], (long long)(i / T), (long long)(i % T), m->V);
    m->be->upload(m->be, m->train->ids, ids, sizeof(int32_t) * (size_t)B * (size_t)T);
    return CT_OK;
}

static ct_status train_forward(ct_model *m, const step *s, ct_error *err) {
    ct_train_state *ts = m->train;
    int64_t N = (int64_t)s->B * s->T;
    CT_TRY(model_embed_apply(m, ts->blocks[0].x_in, ts->ids, N, s->train, s->seed, err));
    // blocks below the first trainable one share one stream (x_in == output), updated in place
    for (int l = 0; l < m->L; l++)
        CT_TRY(block_forward(m, l, &ts->blocks[l], block_output(ts, m, l), s, err));
    m->be->rmsnorm_forward(m->be, ts->hf, ts->rstd_f, ts->x_top, m->final_norm, N, m->C,
                           (float)m->cfg.rms_norm_eps, m->norm_offset);
    return CT_OK;
}

static ct_status train_backward(ct_model *m, int first, const step *s, ct_error *err) {
    ct_backend *be = m->be;
    ct_train_state *ts = m->train;
    int64_t N = (int64_t)s->B * s->T;
    bool embed = embed_trainable(m);
    float *dnorm = m->extra_grads ? m->extra_grads->final_norm : NULL;
    zero(m, ts->dres, N * m->C);
    be->rmsnorm_backward(be, ts->dres, dnorm, ts->dhf, ts->x_top, m->final_norm, ts->rstd_f, N, m->C,
                         m->norm_offset);
    for (int l = m->L - 1; l >= first; l--) {
        if (ts->ckpt)
            CT_TRY(block_forward(m, l, &ts->blocks[l], block_output(ts, m, l), s, err));
        block_backward(m, l, &ts->blocks[l], s, l > first || embed);
    }
    if (!embed)
        return CT_OK;
    if (m->embed_scale != 1.0f)
        be->scale(be, ts->dres, m->embed_scale, N * m->C);
    if (m->adapters && m->adapters->embed)
        ct_adapter_embedding_backward(be, m->adapters->embed, &m->adapters->embed_cache, ts->dres, ts->ids, N);
    if (m->extra_grads && m->extra_grads->embed)
        be->embedding_backward(be, m->extra_grads->embed, ts->dres, ts->ids, N, m->C);
    return CT_OK;
}

// Checks the call and lays out the training state for a (B, T) batch; -> the first block the backward reaches.
static ct_status train_prepare(ct_model *m, int B, int T, bool grad, int *first, ct_error *err) {
    CT_TRY(check_trainable_arch(m, err));
    if (B <= 0 || T < 1)
        return ct_fail(err, CT_ERR_INVALID, "training: a batch needs rows and positions (got %d x %d)", B, T);
    int64_t N = (int64_t)B * T;
    *first = grad ? first_trainable_block(m) : m->L;
    // Evaluation keeps nothing: it uses the layout of the last training call when there is one.
    if (!grad && m->train && m->train->N >= N)
        *first = m->train->first;
    return ensure_state(m, N, *first, err);
}

// Forward of ids (B, T), the loss through fn chunk by chunk, and with grad the backward.
static ct_status train_run(ct_model *m, const int32_t *ids, int B, int T, bool grad, uint64_t seed, int first,
                           const float *skip, ct_logits_loss_fn fn, void *ctx, double *sum, ct_error *err) {
    step s = {.B = B, .T = T, .train = grad, .seed = seed};
    int64_t N = (int64_t)B * T;
    CT_TRY(model_rope_upload(m, T, false, m->train->inv_freq, &s.rope_scaling, err));
    if (m->cfg.arch == CT_ARCH_GEMMA3)
        CT_TRY(model_rope_upload(m, T, true, m->train->inv_freq_local, &s.rope_scaling_local, err));
    CT_TRY(upload_ids(m, ids, B, T, err));
    CT_TRY(train_forward(m, &s, err));
    bool need_dh = first < m->L || embed_trainable(m) || (m->extra_grads && m->extra_grads->final_norm);
    if (grad && need_dh)
        zero(m, m->train->dhf, N * m->C);
    CT_TRY(head_chunks(m, skip, N, &s, need_dh, fn, ctx, sum, err));
    if (grad && need_dh)
        CT_TRY(train_backward(m, first, &s, err));
    return CT_OK;
}

ct_status ct_model_train_logits(ct_model *m, const int32_t *ids, int B, int T, bool grad, ct_logits_loss_fn fn,
                                void *ctx, double *loss, ct_error *err) {
    *loss = 0;
    int first;
    CT_TRY(train_prepare(m, B, T, grad, &first, err));
    return train_run(m, ids, B, T, grad, 0, first, NULL, fn, ctx, loss, err);
}

// ---- the next-token cross-entropy as a logits loss

typedef struct ce_ctx {
    ct_model *m;
    const float *mask; // host (N)
    int64_t count;     // masked rows of the batch
} ce_ctx;

// Adds mean CE of the chunk * (its masked rows / count); gradient scaled alike.
static ct_status ce_chunk(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits, double *sum,
                          ct_error *err) {
    (void)err;
    ce_ctx *c = ctx;
    ct_backend *be = c->m->be;
    ct_train_state *ts = c->m->train;
    int64_t rows = 0;
    for (int64_t i = row0; i < row0 + n; i++)
        rows += c->mask[i] != 0.0f;
    if (rows == 0)
        return CT_OK;
    float mean;
    be->cross_entropy_forward(be, ts->loss, logits, ts->targets + row0, ts->mask + row0, n, c->m->V);
    be->download(be, &mean, ts->loss, sizeof mean);
    double w = (double)rows / (double)c->count;
    *sum += (double)mean * w;
    if (dlogits)
        be->cross_entropy_backward(be, dlogits, (float)w, logits, ts->targets + row0, ts->mask + row0, n, c->m->V);
    return CT_OK;
}

ct_status ct_model_train_loss(ct_model *m, const int32_t *tokens, const float *mask, int B, int W, bool grad,
                              uint64_t dropout_seed, double *loss, int64_t *ntok, ct_error *err) {
    *loss = 0;
    *ntok = 0;
    if (W < 2)
        return ct_fail(err, CT_ERR_INVALID, "training: a batch needs rows and at least 2 tokens (got %d x %d)", B, W);
    int T = W - 1, first;
    int64_t N = (int64_t)B * T;
    CT_TRY(train_prepare(m, B, T, grad, &first, err));
    ce_ctx c = {.m = m, .mask = mask};
    for (int64_t i = 0; i < N; i++)
        c.count += mask[i] != 0.0f;
    if (c.count == 0)
        return CT_OK;
    int32_t *host = malloc(sizeof(int32_t) * (size_t)N * 2); // inputs tokens[:, :T], targets tokens[:, 1:]
    if (!host)
        return ct_fail(err, CT_ERR_NOMEM, "training: out of memory");
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            host[(int64_t)b * T + t] = tokens[(int64_t)b * W + t];
            host[N + (int64_t)b * T + t] = tokens[(int64_t)b * W + t + 1];
        }
    ct_status st = CT_OK;
    for (int64_t i = 0; i < N && st == CT_OK; i++)
        if (host[N + i] < 0 || host[N + i] >= m->V)
            st = ct_fail(err, CT_ERR_INVALID, "training: token id %d at row %lld, position %lld is outside the "
                         "vocabulary (%d)", host[N + i], (long long)(i / T), (long long)(i % T + 1), m->V);
    if (st == CT_OK) {
        m->be->upload(m->be, m->train->targets, host + N, sizeof(int32_t) * (size_t)N);
        m->be->upload(m->be, m->train->mask, mask, sizeof(float) * (size_t)N);
        st = train_run(m, host, B, T, grad, dropout_seed, first, mask, ce_chunk, &c, loss, err);
    }
    free(host);
    CT_TRY(st);
    *ntok = c.count;
    return CT_OK;
}
