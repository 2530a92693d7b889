// awq.c: AWQ into MLX's affine format (see awq.h): the pieces (channel
// statistics, scale grid, fake quantization, clip search, folding into a
// layer) and the model driver (calibration layer by layer, then ct_convert
// with a hook that hands over the quantized linears and the rescaled norms).
//
// As mlx-lm's quant/awq.py (reference notes 7.4), except: the scales'
// arithmetic is f32 whatever the model's dtype; the losses are summed in
// f64; every linear's input must be a multiple of the group size (mlx-lm
// fails inside mx.quantize); the scale candidates and the before/after
// losses are scored on the first SEARCH_TOKENS calibration tokens (whole
// sequences; mlx-lm uses all, which costs ~25 layer forwards over the whole
// set per layer), while mean |x| and the layer outputs use every token.
#include <cblas.h>
#undef I // complex.h's, via cblas.h; ct_model has a field I (MLP width)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"
#include "ctune/awq.h"
#include "ctune/fs.h"
#include "ctune/log.h"
#include "ctune/progress.h"
#include "quant_internal.h"

enum { CLIP_ROWS = 64, CLIP_TOKENS = 512 }; // mlx-lm's batch_size and n_frames of search_best_clip
// Tokens (whole sequences, at least one) on which the scale candidates and
// the RTN fallback are scored; mlx-lm scores on all (see the file comment).
enum { SEARCH_TOKENS = 2048 };

// ---- the pieces

void ct_awq_mean_abs(const float *x, int64_t N, int64_t C, float *xbar) {
    double *sum = calloc((size_t)C, sizeof *sum);
    for (int64_t n = 0; sum && n < N; n++)
        for (int64_t c = 0; c < C; c++)
            sum[c] += fabsf(x[n * C + c]);
    for (int64_t c = 0; c < C; c++)
        xbar[c] = sum && N > 0 ? (float)(sum[c] / (double)N) : 0.0f;
    free(sum);
}

void ct_awq_grid_scale(const float *xbar, int64_t C, double alpha, float *s) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t c = 0; c < C; c++) {
        s[c] = fmaxf(powf(xbar[c], (float)alpha), 1e-4f);
        lo = fminf(lo, s[c]);
        hi = fmaxf(hi, s[c]);
    }
    float norm = sqrtf(hi * lo);
    for (int64_t c = 0; c < C; c++)
        s[c] /= norm;
}

ct_status ct_awq_fake_quant(const float *w, int64_t rows, int64_t in, const float *s, int bits, int group_size,
                            ct_dtype sb, float *out, ct_error *err) {
    CT_TRY(ct_affine_check(bits, group_size, in, "awq", err));
    int64_t ng = in / group_size;
    uint32_t *wq = malloc(sizeof *wq * (size_t)(rows * ct_affine_row_words(in, bits)));
    void *sc = malloc(ct_dtype_size(sb) * (size_t)(rows * ng)), *bi = malloc(ct_dtype_size(sb) * (size_t)(rows * ng));
    ct_status st = wq && sc && bi ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "awq: out of memory (%lld x %lld)",
                                                    (long long)rows, (long long)in);
    if (st == CT_OK) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < in; c++)
                out[r * in + c] = s ? w[r * in + c] * s[c] : w[r * in + c];
        st = ct_affine_quantize(out, rows, in, bits, group_size, wq, sc, bi, sb, err);
    }
    if (st == CT_OK) {
        ct_affine_dequantize(wq, sc, bi, sb, rows, in, bits, group_size, out);
        for (int64_t r = 0; s && r < rows; r++)
            for (int64_t c = 0; c < in; c++)
                out[r * in + c] /= s[c];
    }
    free(wq), free(sc), free(bi);
    return st;
}

ct_status ct_awq_search_scale(const float *xbar, int64_t C, int n_grid, ct_awq_loss_fn loss, void *ctx, float *best,
                              double *best_loss, ct_error *err) {
    float *s = malloc(sizeof *s * (size_t)C);
    if (!s)
        return ct_fail(err, CT_ERR_NOMEM, "awq: out of memory");
    *best_loss = INFINITY;
    bool found = false;
    ct_status st = CT_OK;
    for (int r = 0; st == CT_OK && r < n_grid; r++) {
        ct_awq_grid_scale(xbar, C, (double)r / n_grid, s);
        double l;
        st = loss(ctx, s, &l, err);
        if (st == CT_OK && l < *best_loss) {
            *best_loss = l;
            memcpy(best, s, sizeof *s * (size_t)C);
            found = true;
        }
    }
    free(s);
    CT_TRY(st);
    if (!found)
        return ct_fail(err, CT_ERR_INVALID, "awq: every scale candidate gave a non-finite output error");
    return CT_OK;
}

// Per group g: out[g] (nb, nr) = xs[:, g] (nb, gs) . w[:, g]^T (nr, gs); xs (nb, in), w (nr, in).
static void group_outputs(const float *xs, int64_t nb, const float *w, int64_t nr, int64_t in, int gs, float *out) {
    for (int64_t g = 0; g < in / gs; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nr, gs, 1.0f, xs + g * gs, (int)in,
                    w + g * gs, (int)in, 0.0f, out + g * nb * nr, (int)nr);
}

// Clip search of one chunk w (nr, in) (see ct_awq_clip); buffers sized for
// CLIP_ROWS rows. ref/outq (ng, nb, nr), wc (nr, in), wmax/best (nr, ng) f32, err (nr, ng).
typedef struct clip_buf {
    float *ref, *outq, *wc, *amax, *best;
    double *err;
} clip_buf;

static ct_status clip_chunk(float *w, int64_t nr, int64_t in, const float *xs, int64_t nb, int bits, int gs,
                            ct_dtype sb, int n_grid, clip_buf *b, ct_error *err) {
    int64_t ng = in / gs;
    for (int64_t r = 0; r < nr; r++)
        for (int64_t g = 0; g < ng; g++) {
            float m = 0;
            for (int k = 0; k < gs; k++)
                m = fmaxf(m, fabsf(w[r * in + g * gs + k]));
            b->amax[r * ng + g] = m;
            b->err[r * ng + g] = INFINITY;
            b->best[r * ng + g] = m;
        }
    group_outputs(xs, nb, w, nr, in, gs, b->ref);
    for (int i = 0; i < (int)(0.5 * n_grid); i++) {
        float p = 1.0f - (float)i / (float)n_grid;
        for (int64_t r = 0; r < nr; r++)
            for (int64_t c = 0; c < in; c++) {
                float lim = p * b->amax[r * ng + c / gs];
                b->wc[r * in + c] = fminf(fmaxf(w[r * in + c], -lim), lim);
            }
        CT_TRY(ct_awq_fake_quant(b->wc, nr, in, NULL, bits, gs, sb, b->wc, err));
        group_outputs(xs, nb, b->wc, nr, in, gs, b->outq);
        for (int64_t g = 0; g < ng; g++)
            for (int64_t r = 0; r < nr; r++) {
                double l = 0;
                for (int64_t t = 0; t < nb; t++) {
                    double d = (double)b->ref[(g * nb + t) * nr + r] - b->outq[(g * nb + t) * nr + r];
                    l += d * d;
                }
                l /= (double)nb;
                if (l < b->err[r * ng + g]) {
                    b->err[r * ng + g] = l;
                    b->best[r * ng + g] = p * b->amax[r * ng + g];
                }
            }
    }
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < in; c++) {
            float lim = b->best[r * ng + c / gs];
            w[r * in + c] = fminf(fmaxf(w[r * in + c], -lim), lim);
        }
    return CT_OK;
}

ct_status ct_awq_clip(float *w, int64_t rows, int64_t in, const float *x, int64_t N, int bits, int group_size,
                      ct_dtype sb, int n_grid, ct_error *err) {
    CT_TRY(ct_affine_check(bits, group_size, in, "awq clip", err));
    if (N <= 0)
        return ct_fail(err, CT_ERR_INVALID, "awq clip: no input rows");
    int64_t stride = (N + CLIP_TOKENS - 1) / CLIP_TOKENS, nb = (N + stride - 1) / stride, ng = in / group_size;
    float *xs = malloc(sizeof *xs * (size_t)(nb * in));
    clip_buf b = {
        .ref = malloc(sizeof(float) * (size_t)(ng * nb * CLIP_ROWS)),
        .outq = malloc(sizeof(float) * (size_t)(ng * nb * CLIP_ROWS)),
        .wc = malloc(sizeof(float) * (size_t)(CLIP_ROWS * in)),
        .amax = malloc(sizeof(float) * (size_t)(CLIP_ROWS * ng)),
        .best = malloc(sizeof(float) * (size_t)(CLIP_ROWS * ng)),
        .err = malloc(sizeof(double) * (size_t)(CLIP_ROWS * ng)),
    };
    ct_status st = xs && b.ref && b.outq && b.wc && b.amax && b.best && b.err
                       ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "awq clip: out of memory");
    for (int64_t t = 0; st == CT_OK && t < nb; t++)
        memcpy(xs + t * in, x + t * stride * in, sizeof(float) * (size_t)in);
    for (int64_t r0 = 0; st == CT_OK && r0 < rows; r0 += CLIP_ROWS) {
        int64_t nr = rows - r0 < CLIP_ROWS ? rows - r0 : CLIP_ROWS;
        st = clip_chunk(w + r0 * in, nr, in, xs, nb, bits, group_size, sb, n_grid, &b, err);
    }
    free(xs), free(b.ref), free(b.outq), free(b.wc), free(b.amax), free(b.best), free(b.err);
    return st;
}

// ---- one layer of a model

ct_status ct_awq_layer_open(ct_awq_layer *L, ct_model *m, int l, ct_dtype sb, ct_error *err) {
    *L = (ct_awq_layer){.m = m, .l = l};
    ct_backend *be = m->be;
    ct_layer_params *p = &m->layers[l];
    size_t C = (size_t)m->C;
    L->attn_norm = malloc(sizeof(float) * C), L->ffn_norm = malloc(sizeof(float) * C);
    L->norm0[0] = malloc(sizeof(float) * C), L->norm0[1] = malloc(sizeof(float) * C);
    if (!L->attn_norm || !L->ffn_norm || !L->norm0[0] || !L->norm0[1]) {
        ct_awq_layer_close(L);
        return ct_fail(err, CT_ERR_NOMEM, "awq: out of memory");
    }
    be->download(be, L->norm0[0], p->attn_norm, sizeof(float) * C);
    be->download(be, L->norm0[1], p->ffn_norm, sizeof(float) * C);
    memcpy(L->attn_norm, L->norm0[0], sizeof(float) * C);
    memcpy(L->ffn_norm, L->norm0[1], sizeof(float) * C);
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        ct_weight *w = &p->lin[id].w;
        char module[96];
        quant_module_name(module, sizeof module, l, (ct_linear_id)id);
        if (w->bits) {
            ct_awq_layer_close(L);
            return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: the model is already quantized; AWQ needs a dense model "
                           "(ctune convert --dequantize first)", module);
        }
        size_t n = (size_t)(w->rows * w->cols);
        void *raw = malloc(n * ct_dtype_size(w->dtype));
        L->w[id] = malloc(sizeof(float) * n);
        ct_status st = raw && L->w[id] ? be->alloc(be, sizeof(float) * n, &L->dev[id], err)
                                       : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
        if (st == CT_OK) {
            be->download(be, raw, w->data, n * ct_dtype_size(w->dtype));
            ct_convert_to_f32(L->w[id], raw, w->dtype, n);
            for (size_t i = 0; i < n; i++) // as ct_convert casts before quantizing
                L->w[id][i] = quant_round_sb(L->w[id][i], sb);
            L->rows[id] = w->rows, L->in[id] = w->cols;
            L->own[id] = *w;
            *w = (ct_weight){.rows = w->rows, .cols = w->cols, .dtype = CT_F32, .data = L->dev[id]};
        }
        free(raw);
        if (st != CT_OK) {
            ct_awq_layer_close(L);
            return st;
        }
    }
    ct_awq_layer_sync(L);
    return CT_OK;
}

void ct_awq_layer_set(ct_awq_layer *L, ct_linear_id id, const float *values) {
    L->m->be->upload(L->m->be, L->dev[id], values, sizeof(float) * (size_t)(L->rows[id] * L->in[id]));
}

void ct_awq_layer_sync(ct_awq_layer *L) {
    ct_backend *be = L->m->be;
    ct_layer_params *p = &L->m->layers[L->l];
    for (int id = 0; id < CT_LIN_COUNT; id++)
        ct_awq_layer_set(L, (ct_linear_id)id, L->w[id]);
    be->upload(be, p->attn_norm, L->attn_norm, sizeof(float) * (size_t)L->m->C);
    be->upload(be, p->ffn_norm, L->ffn_norm, sizeof(float) * (size_t)L->m->C);
}

void ct_awq_layer_close(ct_awq_layer *L) {
    if (!L->m)
        return; // closed already
    ct_backend *be = L->m->be;
    ct_layer_params *p = &L->m->layers[L->l];
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        if (L->dev[id]) {
            p->lin[id].w = L->own[id];
            be->free(be, L->dev[id]);
        }
        free(L->w[id]);
    }
    if (L->norm0[0] && L->norm0[1]) {
        be->upload(be, p->attn_norm, L->norm0[0], sizeof(float) * (size_t)L->m->C);
        be->upload(be, p->ffn_norm, L->norm0[1], sizeof(float) * (size_t)L->m->C);
    }
    free(L->attn_norm), free(L->ffn_norm), free(L->norm0[0]), free(L->norm0[1]);
    memset(L, 0, sizeof *L);
}

// w (rows, in): columns *= s (in).
static void scale_columns(float *w, int64_t rows, int64_t in, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < in; c++)
            w[r * in + c] *= s[c];
}

void ct_awq_fold_scale(ct_awq_layer *L, ct_awq_group g, const float *s) {
    if (g == CT_AWQ_DOWN) {
        int64_t in = L->in[CT_LIN_UP];
        for (int64_t r = 0; r < L->rows[CT_LIN_UP]; r++) // up_proj row r feeds down_proj column r
            for (int64_t c = 0; c < in; c++)
                L->w[CT_LIN_UP][r * in + c] /= s[r];
        // up_proj has no bias in the llama family
        scale_columns(L->w[CT_LIN_DOWN], L->rows[CT_LIN_DOWN], L->in[CT_LIN_DOWN], s);
        return;
    }
    float *norm = g == CT_AWQ_QKV ? L->attn_norm : L->ffn_norm, off = L->m->norm_offset; // gemma: 1 + w
    for (int64_t c = 0; c < L->m->C; c++)
        norm[c] = (off + norm[c]) / s[c] - off;
    ct_linear_id first = g == CT_AWQ_QKV ? CT_LIN_Q : CT_LIN_GATE, last = g == CT_AWQ_QKV ? CT_LIN_V : CT_LIN_UP;
    for (int id = first; id <= (int)last; id++)
        scale_columns(L->w[id], L->rows[id], L->in[id], s);
}

// ---- the model


typedef struct aw_job {
    const ct_awq_opts *o;
    ct_backend *be;
    ct_model m;
    bool model_loaded;
    ct_dtype sb;
    int L, C;               // the model's layers and width (kept after it is freed)
    int B, T, n_seq;        // batch (sequences per forward), sequence length, sequences
    int n_search;           // the first n_search sequences score the candidates
    int64_t N, Ns;          // calibration tokens n_seq * T, scoring tokens n_search * T
    bool capture;           // the hook records the linears' inputs
    float *feat[QUANT_SLOTS];   // (N, in of the slot): the float layer's linear inputs
    int64_t feat_in[QUANT_SLOTS], feat_rows[QUANT_SLOTS];
    float *x, *ref, *tmp;   // (N, C): layer input, float layer output, scratch output
    float *sub_ref;         // (N, C): the float output of the sub-block being searched
    float *trial[3];        // (max linear size): a scale candidate's weights
    ct_kv_cache kv;
    float *kbuf, *vbuf;     // device: one key/value pair serving every layer
    quant_results res;      // the quantized linears (host), for the writer
    float *norms;           // (L, 2, C): the final input_layernorm / MLP input norm weights
    const char *ffn_norm_name; // the MLP input norm's file name (quant_ffn_norm_name)
    int n_fallback;
    double ratio_sum;
} aw_job;

// ct_linear_hook: appends the input of the slot's linear to feat[slot].
static void capture_hook(void *ctx, int layer, ct_linear_id id, const float *inp, int64_t N, int64_t in) {
    (void)layer;
    aw_job *j = ctx;
    int s = quant_input_slot(id);
    if (!j->capture || s < 0 || j->feat_rows[s] + N > j->N)
        return;
    j->be->download(j->be, j->feat[s] + j->feat_rows[s] * in, inp, sizeof(float) * (size_t)(N * in));
    j->feat_rows[s] += N;
}

// The first n_seq sequences of x (N, C) through layer l -> out, B sequences at a time.
static ct_status run_layer(aw_job *j, int l, const float *x, float *out, int n_seq, ct_error *err) {
    size_t row = (size_t)j->T * (size_t)j->m.C;
    memcpy(out, x, sizeof(float) * row * (size_t)n_seq);
    for (int b0 = 0; b0 < n_seq; b0 += j->B) {
        int nb = n_seq - b0 < j->B ? n_seq - b0 : j->B;
        j->kv.B = nb;
        CT_TRY(ct_model_layer_forward(&j->m, &j->kv, l, out + (size_t)b0 * row, nb, j->T, err));
    }
    return CT_OK;
}

// The sub-block of group g on the scoring sequences of its input x -> out (Ns, C): the attention
// (q/k/v group), down_proj alone with weight down (host), or the MLP.
static ct_status run_sub(aw_job *j, int l, ct_awq_group g, const float *x, const float *down, float *out,
                         ct_error *err) {
    ct_model *m = &j->m;
    if (g == CT_AWQ_DOWN) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->Ns, m->C, m->I, 1.0f, x, m->I, down, m->I, 0.0f,
                    out, m->C);
        return CT_OK;
    }
    size_t row = (size_t)j->T * (size_t)m->C;
    for (int b0 = 0; b0 < j->n_search; b0 += j->B) {
        int nb = j->n_search - b0 < j->B ? j->n_search - b0 : j->B;
        const float *xb = x + (size_t)b0 * row;
        float *ob = out + (size_t)b0 * row;
        j->kv.B = nb;
        if (g == CT_AWQ_QKV)
            CT_TRY(ct_model_attention_forward(m, &j->kv, l, xb, nb, j->T, ob, err));
        else
            CT_TRY(ct_model_mlp_forward(m, l, xb, (int64_t)nb * j->T, ob, err));
    }
    return CT_OK;
}

static double mse(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return s / (double)n;
}

// The output error of layer l (scoring sequences of j->x, reference j->ref) with every
// linear at Q(W): its current w (the model then computes with w again).
static ct_status rtn_loss(aw_job *j, ct_awq_layer *L, double *loss, ct_error *err) {
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        CT_TRY(ct_awq_fake_quant(L->w[id], L->rows[id], L->in[id], NULL, j->o->bits, j->o->group_size, j->sb,
                                 j->trial[0], err));
        ct_awq_layer_set(L, (ct_linear_id)id, j->trial[0]);
    }
    CT_TRY(run_layer(j, L->l, j->x, j->tmp, j->n_search, err));
    ct_awq_layer_sync(L);
    *loss = mse(j->tmp, j->ref, j->Ns * j->m.C);
    return CT_OK;
}

static const ct_linear_id GROUP_LINEARS[CT_AWQ_N_GROUPS][3] = {
    {CT_LIN_Q, CT_LIN_K, CT_LIN_V}, {CT_LIN_DOWN, CT_LIN_COUNT, CT_LIN_COUNT}, {CT_LIN_GATE, CT_LIN_UP, CT_LIN_COUNT}};
static const ct_linear_id GROUP_INPUT[CT_AWQ_N_GROUPS] = {CT_LIN_Q, CT_LIN_DOWN, CT_LIN_GATE};

typedef struct trial_ctx {
    aw_job *j;
    ct_awq_layer *L;
    ct_awq_group g;
} trial_ctx;

// ct_awq_loss_fn: the sub-block's output error with the group's linears at Q(W diag(s)) diag(s)^-1.
static ct_status trial_loss(void *ctx, const float *s, double *loss, ct_error *err) {
    trial_ctx *t = ctx;
    aw_job *j = t->j;
    ct_awq_layer *L = t->L;
    for (int k = 0; k < 3 && GROUP_LINEARS[t->g][k] != CT_LIN_COUNT; k++) {
        ct_linear_id id = GROUP_LINEARS[t->g][k];
        CT_TRY(ct_awq_fake_quant(L->w[id], L->rows[id], L->in[id], s, j->o->bits, j->o->group_size, j->sb,
                                 j->trial[k], err));
        ct_awq_layer_set(L, id, j->trial[k]);
    }
    CT_TRY(run_sub(j, L->l, t->g, j->feat[quant_input_slot(GROUP_INPUT[t->g])], j->trial[0], j->tmp, err));
    *loss = mse(j->tmp, j->sub_ref, j->Ns * j->m.C);
    return CT_OK;
}

// Searches group g's scale and folds it into L (and into the recorded inputs).
static ct_status scale_group(aw_job *j, ct_awq_layer *L, ct_awq_group g, ct_error *err) {
    ct_linear_id first = GROUP_INPUT[g];
    int slot = quant_input_slot(first);
    int64_t in = L->in[first];
    float *xbar = malloc(sizeof *xbar * (size_t)in), *best = malloc(sizeof *best * (size_t)in);
    ct_status st = xbar && best ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "awq: out of memory");
    if (st == CT_OK) {
        ct_awq_mean_abs(j->feat[slot], j->N, in, xbar);
        st = run_sub(j, L->l, g, j->feat[slot], L->w[CT_LIN_DOWN], j->sub_ref, err);
    }
    double loss;
    trial_ctx t = {.j = j, .L = L, .g = g};
    if (st == CT_OK)
        st = ct_awq_search_scale(xbar, in, j->o->n_grid, trial_loss, &t, best, &loss, err);
    if (st == CT_OK) {
        ct_awq_fold_scale(L, g, best);
        for (int64_t n = 0; n < j->N; n++) // the recorded inputs of the group are now x / s
            for (int64_t c = 0; c < in; c++)
                j->feat[slot][n * in + c] /= best[c];
    }
    ct_awq_layer_sync(L);
    free(xbar), free(best);
    return st;
}

// Quantizes L's linears into the results (final weights of layer l).
static ct_status store_layer(aw_job *j, ct_awq_layer *L, ct_error *err) {
    int bits = j->o->bits, gs = j->o->group_size;
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        int64_t rows = L->rows[id], in = L->in[id], ng = in / gs;
        char module[96];
        quant_module_name(module, sizeof module, L->l, (ct_linear_id)id);
        uint32_t *wq = malloc(sizeof *wq * (size_t)(rows * ct_affine_row_words(in, bits)));
        void *sc = malloc(ct_dtype_size(j->sb) * (size_t)(rows * ng));
        void *bi = malloc(ct_dtype_size(j->sb) * (size_t)(rows * ng));
        ct_status st = wq && sc && bi ? ct_affine_quantize(L->w[id], rows, in, bits, gs, wq, sc, bi, j->sb, err)
                                      : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
        if (st != CT_OK) {
            free(wq), free(sc), free(bi);
            return ct_error_context(err, "%s", module);
        }
        CT_TRY(quant_results_add(&j->res, module, rows, in, bits, gs, wq, sc, bi, err));
    }
    size_t C = (size_t)j->m.C;
    memcpy(j->norms + (size_t)L->l * 2 * C, L->attn_norm, sizeof(float) * C);
    memcpy(j->norms + ((size_t)L->l * 2 + 1) * C, L->ffn_norm, sizeof(float) * C);
    return CT_OK;
}

// AWQ of layer l on j->x; j->ref receives the float output.
static ct_status quantize_layer(aw_job *j, ct_awq_layer *L, int l, ct_error *err) {
    CT_TRY(ct_awq_layer_open(L, &j->m, l, j->sb, err));
    memset(j->feat_rows, 0, sizeof j->feat_rows);
    j->capture = true;
    ct_status st = run_layer(j, l, j->x, j->ref, j->n_seq, err);
    j->capture = false;
    double before = 0, after = 0;
    if (st == CT_OK)
        st = rtn_loss(j, L, &before, err);
    for (int g = 0; st == CT_OK && g < CT_AWQ_N_GROUPS; g++)
        st = scale_group(j, L, (ct_awq_group)g, err);
    static const ct_linear_id clipped[] = {CT_LIN_V, CT_LIN_O, CT_LIN_GATE, CT_LIN_UP, CT_LIN_DOWN};
    for (size_t k = 0; st == CT_OK && k < sizeof clipped / sizeof clipped[0]; k++) {
        ct_linear_id id = clipped[k];
        st = ct_awq_clip(L->w[id], L->rows[id], L->in[id], j->feat[quant_weight_slot(id)], j->N, j->o->bits,
                         j->o->group_size, j->sb, j->o->n_grid, err);
    }
    if (st == CT_OK)
        st = rtn_loss(j, L, &after, err);
    if (st == CT_OK && after > before) {
        ct_log_info("[INFO] layer %d: AWQ output error %.4g > plain RTN's %.4g; falling back to plain RTN", l,
                    after, before);
        ct_awq_layer_close(L);
        st = ct_awq_layer_open(L, &j->m, l, j->sb, err);
        j->n_fallback++;
        after = before;
    } else if (st == CT_OK) {
        ct_log_info("[INFO] layer %d: output error %.4g, plain RTN's %.4g (ratio %.3f)", l, after, before,
                    before > 0 ? after / before : 1.0);
    }
    j->ratio_sum += before > 0 ? after / before : 1.0;
    if (st == CT_OK)
        st = store_layer(j, L, err);
    ct_awq_layer_close(L);
    return st;
}

// ids (N) -> j->x (N, C): rows of the embedding quantized at the embed bits
// (what the written model computes; dense when C is not a multiple of the group).
static ct_status embed_rows(aw_job *j, const int32_t *ids, ct_error *err) {
    ct_model *m = &j->m;
    const ct_weight *e = &m->embed;
    int bits = j->o->embed_bits, gs = j->o->embed_group_size;
    int64_t C = m->C, ng = C / gs;
    if (e->bits)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "model.embed_tokens: the model is already quantized; AWQ needs a "
                       "dense model (ctune convert --dequantize first)");
    size_t esz = ct_dtype_size(e->dtype);
    void *raw = malloc(esz * (size_t)C);
    uint32_t *wq = malloc(sizeof *wq * (size_t)ct_affine_row_words(C, bits));
    float *sc = malloc(sizeof *sc * (size_t)(ng + 1)), *bi = malloc(sizeof *bi * (size_t)(ng + 1));
    ct_status st = raw && wq && sc && bi ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "awq: out of memory");
    for (int64_t t = 0; st == CT_OK && t < j->N; t++) {
        if (ids[t] < 0 || ids[t] >= m->V) {
            st = ct_fail(err, CT_ERR_INVALID, "awq: token id %d outside the vocabulary (%d)", ids[t], m->V);
            break;
        }
        float *row = j->x + t * C;
        j->be->download(j->be, raw, (const char *)e->data + (size_t)ids[t] * (size_t)C * esz, esz * (size_t)C);
        ct_convert_to_f32(row, raw, e->dtype, (size_t)C);
        for (int64_t c = 0; c < C; c++)
            row[c] = quant_round_sb(row[c], j->sb);
        if (C % gs == 0) {
            st = ct_affine_quantize(row, 1, C, bits, gs, wq, sc, bi, CT_F32, err);
            for (int64_t g = 0; g < ng; g++) // stored as sb
                sc[g] = quant_round_sb(sc[g], j->sb), bi[g] = quant_round_sb(bi[g], j->sb);
            ct_affine_dequantize_row(wq, sc, bi, CT_F32, C, bits, gs, row);
        }
        for (int64_t c = 0; c < C; c++)
            row[c] *= m->embed_scale;
    }
    free(raw), free(wq), free(sc), free(bi);
    return st;
}

static ct_status alloc_buffers(aw_job *j, ct_error *err) {
    ct_model *m = &j->m;
    int64_t qd = (int64_t)m->H * m->D, slot_in[QUANT_SLOTS] = {m->C, qd, m->C, m->I}, max_w = 0;
    size_t nc = sizeof(float) * (size_t)(j->N * m->C), ns = sizeof(float) * (size_t)(j->Ns * m->C);
    j->x = malloc(nc), j->ref = malloc(nc), j->tmp = malloc(ns), j->sub_ref = malloc(ns);
    bool ok = j->x && j->ref && j->tmp && j->sub_ref;
    for (int s = 0; s < QUANT_SLOTS; s++) {
        j->feat_in[s] = slot_in[s];
        j->feat[s] = malloc(sizeof(float) * (size_t)(j->N * slot_in[s]));
        ok = ok && j->feat[s];
    }
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        const ct_weight *w = &m->layers[0].lin[id].w;
        max_w = w->rows * w->cols > max_w ? w->rows * w->cols : max_w;
    }
    for (int k = 0; k < 3; k++) {
        j->trial[k] = malloc(sizeof(float) * (size_t)max_w);
        ok = ok && j->trial[k];
    }
    j->norms = malloc(sizeof(float) * (size_t)m->L * 2 * (size_t)m->C);
    j->kv.k = calloc((size_t)m->L, sizeof *j->kv.k), j->kv.v = calloc((size_t)m->L, sizeof *j->kv.v);
    if (!ok || !j->norms || !j->kv.k || !j->kv.v)
        return ct_fail(err, CT_ERR_NOMEM, "awq: out of memory for the calibration activations (%lld tokens)",
                       (long long)j->N);
    size_t kv_bytes = sizeof(float) * (size_t)j->B * (size_t)j->T * (size_t)(m->KVH * m->D);
    CT_TRY(m->be->alloc(m->be, kv_bytes, (void **)&j->kbuf, err));
    CT_TRY(m->be->alloc(m->be, kv_bytes, (void **)&j->vbuf, err));
    for (int l = 0; l < m->L; l++) // the layers run one at a time
        j->kv.k[l] = j->kbuf, j->kv.v[l] = j->vbuf;
    j->kv = (ct_kv_cache){.B = j->B, .max_T = j->T, .L = m->L, .KVH = m->KVH, .D = m->D, .k = j->kv.k, .v = j->kv.v};
    return CT_OK;
}

static ct_status quantize_layers(aw_job *j, const int32_t *ids, ct_error *err) {
    CT_TRY(alloc_buffers(j, err));
    CT_TRY(embed_rows(j, ids, err));
    ct_progress prog;
    ct_progress_begin(&prog, "awq layers", j->m.L);
    ct_status st = CT_OK;
    for (int l = 0; st == CT_OK && l < j->m.L; l++) {
        ct_awq_layer L = {0};
        st = quantize_layer(j, &L, l, err);
        float *t = j->x; // the next layer's input is this layer's float output
        j->x = j->ref, j->ref = t;
        ct_progress_update(&prog, l + 1);
    }
    ct_progress_end(&prog);
    return st;
}

// ---- the output (ct_convert hook)

static ct_quant_spec hook_spec(void *ctx, const char *module, int64_t in, bool *override) {
    const aw_job *j = ctx; // embeddings, lm_head: RTN at the embed bits
    return quant_results_spec(&j->res, module, in, j->o->bits, j->o->group_size, j->o->embed_bits,
                              j->o->embed_group_size, override);
}

static ct_status hook_quantize(void *ctx, const char *module, const float *w, int64_t rows, int64_t in,
                               const ct_quant_spec *s, ct_dtype sb, uint32_t *wq, void *scales, void *biases,
                               bool *done, ct_error *err) {
    (void)w;
    const aw_job *j = ctx;
    return quant_results_emit(&j->res, module, rows, in, s, sb, wq, scales, biases, done, err);
}

// The rescaled norm weights replace the source's.
static ct_status hook_tensor(void *ctx, const char *name, float *w, size_t n, ct_error *err) {
    const aw_job *j = ctx;
    int l, used = 0;
    char which[64];
    if (sscanf(name, "model.layers.%d.%63[a-z_].weight%n", &l, which, &used) != 2 || name[used] || l < 0 ||
        l >= j->L)
        return CT_OK;
    int k = !strcmp(which, "input_layernorm") ? 0 : !strcmp(which, j->ffn_norm_name) ? 1 : -1;
    if (k < 0)
        return CT_OK;
    if (n != (size_t)j->C)
        return ct_fail(err, CT_ERR_INVALID, "%s: %zu values, expected %d", name, n, j->C);
    memcpy(w, j->norms + ((size_t)l * 2 + (size_t)k) * n, sizeof(float) * n);
    return CT_OK;
}

// ---- the job

static ct_status check_opts(const ct_awq_opts *o, ct_error *err) {
    if (!o->model || !o->mlx_path)
        return ct_fail(err, CT_ERR_INVALID, "awq: a model and an output path are needed");
    CT_TRY(ct_affine_check(o->bits, o->group_size, o->group_size, "--bits/--group-size", err));
    CT_TRY(ct_affine_check(o->embed_bits, o->embed_group_size, o->embed_group_size,
                           "--embed-bits/--embed-group-size", err));
    if (o->n_grid < 1)
        return ct_fail(err, CT_ERR_INVALID, "--n-grid: %d, must be at least 1", o->n_grid);
    if (ct_path_exists(o->mlx_path))
        return ct_fail(err, CT_ERR_INVALID,
                       "cannot save to %s: it already exists (delete it or choose another --mlx-path)", o->mlx_path);
    return CT_OK;
}

// Every layer linear's input must be a multiple of the group size, and up_proj has no bias.
static ct_status check_shapes(const aw_job *j, ct_error *err) {
    const ct_model *m = &j->m;
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++) {
            char module[96];
            quant_module_name(module, sizeof module, l, (ct_linear_id)id);
            int64_t in = m->layers[l].lin[id].w.cols;
            if (in % j->o->group_size)
                return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: %lld inputs, not a multiple of --group-size %d (AWQ "
                               "quantizes every layer linear)", module, (long long)in, j->o->group_size);
            if (id == CT_LIN_UP && m->layers[l].lin[id].bias)
                return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: a bias (mlp_bias) is not supported by awq", module);
        }
    return CT_OK;
}

static ct_status load(aw_job *j, int32_t **ids, ct_error *err) {
    const ct_awq_opts *o = j->o;
    CT_TRY(ct_backend_cpu_create(&j->be, err));
    CT_TRY(ct_model_load(&j->m, o->model, j->be, err));
    j->model_loaded = true;
    CT_TRY(quant_check_arch(&j->m, o->model, "awq", err));
    j->ffn_norm_name = quant_ffn_norm_name(&j->m);
    CT_TRY(quant_output_dtype(o->dtype, &j->m, &j->sb, err));
    j->res.sb = j->sb;
    j->L = j->m.L, j->C = j->m.C;
    CT_TRY(check_shapes(j, err));
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load(&tok, o->model, err));
    ct_status st = ct_calib_load(tok, &o->calib, ids, &j->n_seq, err);
    ct_tokenizer_free(tok);
    CT_TRY(st);
    j->T = o->calib.sequence_length;
    j->N = (int64_t)j->n_seq * j->T;
    j->B = o->batch_size > 0 ? o->batch_size : 8;
    j->B = j->B < j->n_seq ? j->B : j->n_seq;
    j->n_search = SEARCH_TOKENS / j->T;
    j->n_search = j->n_search < 1 ? 1 : j->n_search > j->n_seq ? j->n_seq : j->n_search;
    j->Ns = (int64_t)j->n_search * j->T;
    return CT_OK;
}

static void job_free(aw_job *j) {
    free(j->x), free(j->ref), free(j->tmp), free(j->sub_ref), free(j->norms);
    for (int s = 0; s < QUANT_SLOTS; s++)
        free(j->feat[s]);
    for (int k = 0; k < 3; k++)
        free(j->trial[k]);
    if (j->kbuf)
        j->be->free(j->be, j->kbuf);
    if (j->vbuf)
        j->be->free(j->be, j->vbuf);
    free(j->kv.k), free(j->kv.v);
    quant_results_free(&j->res);
    if (j->model_loaded)
        ct_model_free(&j->m);
    if (j->be)
        ct_backend_destroy(j->be);
}

ct_status ct_awq(const ct_awq_opts *o, ct_awq_stats *stats, ct_error *err) {
    CT_TRY(check_opts(o, err));
    aw_job j = {.o = o};
    int32_t *ids = NULL;
    double t0 = ct_now();
    ct_status st = load(&j, &ids, err);
    if (st == CT_OK) {
        ct_log_info("[INFO] AWQ %d-bit group %d (embedding %d-bit group %d) on %d calibration sequences of %d tokens",
                    o->bits, o->group_size, o->embed_bits, o->embed_group_size, j.n_seq, j.T);
        j.m.linear_hook = capture_hook;
        j.m.linear_hook_ctx = &j;
        st = quantize_layers(&j, ids, err);
        j.m.linear_hook = NULL;
        ct_model_free(&j.m); // the results live in the job's own buffers
        j.model_loaded = false;
    }
    free(ids);
    int L = j.L;
    if (st == CT_OK) {
        ct_log_info("[INFO] %d layers quantized with AWQ in %.1f s (%d fell back to plain RTN; mean output error "
                    "vs RTN %.3f); writing %s", L, ct_now() - t0, j.n_fallback, j.ratio_sum / L, o->mlx_path);
        ct_convert_hook hook = {.ctx = &j, .spec = hook_spec, .quantize = hook_quantize, .tensor = hook_tensor};
        ct_convert_opts co = {.model = o->model, .mlx_path = o->mlx_path, .quantize = true, .q_bits = o->bits,
                              .q_group_size = o->group_size, .dtype = o->dtype, .hook = &hook};
        ct_convert_stats cs;
        st = ct_convert(&co, &cs, err);
        if (st == CT_OK && stats)
            *stats = (ct_awq_stats){.n_sequences = j.n_seq, .n_layers = L, .n_fallback = j.n_fallback,
                                    .mean_ratio = j.ratio_sum / L, .convert = cs};
    }
    job_free(&j);
    return st;
}
