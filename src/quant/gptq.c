// gptq.c: GPTQ into MLX's affine format (see gptq.h): the layer routine
// (textbook GPTQ with lazy block updates, blocks = quantization groups) and
// the model driver (calibration forward block by block, then ct_convert with
// a hook that hands over the GPTQ weights).
//
// Differences from mlx-lm's quant/gptq.py (reference notes 7.3), on purpose:
// - the within-block update touches columns k+1 .. j-1 of the block only
//   (mlx-lm's slice k : k+j overshoots and double-counts the compensation);
// - never-active input columns (H[i,i] == 0) are zeroed, as in the paper's code;
// - later blocks see the outputs of the quantized earlier blocks.
#include <cblas.h>
#undef I // complex.h's, via cblas.h; ct_model has a field I (MLP width)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "ctune/fs.h"
#include "ctune/gptq.h"
#include "ctune/log.h"
#include "ctune/model.h"
#include "ctune/progress.h"
#include "quant_internal.h"

// LAPACK (OpenBLAS), Fortran interface: Cholesky factor, inverse from the factor.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

// ---- one layer

// H (n, n) row-major, upper triangle read -> its upper triangle holds U with
// H^-1 = U^T U. (Column-major 'L' on a row-major array is the upper triangle.)
static ct_status inverse_cholesky_upper(double *H, int n, ct_error *err) {
    int info = 0;
    const char lo = 'L';
    dpotrf_(&lo, &n, H, &n, &info);
    if (info == 0)
        dpotri_(&lo, &n, H, &n, &info);
    if (info == 0)
        dpotrf_(&lo, &n, H, &n, &info);
    if (info != 0)
        return ct_fail(err, CT_ERR_INVALID,
                       "gptq: the Hessian (%d x %d) is not positive definite even after damping (LAPACK info %d)", n,
                       n, info);
    return CT_OK;
}

// MLX's scale and bias of each row of the group W[:, c0 : c0+g] (its current
// values), rounded to sb, into column c0/g of S, B (rows, in/g). blk
// (rows*g + 2*rows) and wq (rows, g*bits/32) are scratch.
static ct_status group_params(const double *W, int64_t rows, int64_t in, int64_t c0, int g, int bits, ct_dtype sb,
                              float *blk, uint32_t *wq, float *S, float *B, ct_error *err) {
    int64_t ng = in / g;
    float *s = blk + rows * g, *b = s + rows;
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < g; c++)
            blk[r * g + c] = (float)W[r * in + c0 + c];
    CT_TRY(ct_affine_quantize(blk, rows, g, bits, g, wq, s, b, CT_F32, err));
    for (int64_t r = 0; r < rows; r++) {
        S[r * ng + c0 / g] = quant_round_sb(s[r], sb);
        B[r * ng + c0 / g] = quant_round_sb(b[r], sb);
    }
    return CT_OK;
}

// Quantizes the processing positions [c0, c0+g) of W (rows, in) in order,
// compensating each column's error on the block's later positions:
// e = (w_k - q_k) / U[k,k], W[:, k+1:c0+g] -= e U[k, k+1:c0+g]. Position k is
// original column perm[k]: its group's S, B (rows, in/g) and its code slot.
// Err (rows, g) receives e.
static void quantize_block(double *W, const double *U, const int64_t *perm, int64_t rows, int64_t in, int64_t c0,
                           int g, int bits, const float *S, const float *B, uint8_t *codes, double *Err) {
    float maxq = (float)((1 << bits) - 1);
    int64_t ng = in / g;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        double *w = W + r * in;
        for (int64_t k = c0; k < c0 + g; k++) {
            float s = S[r * ng + perm[k] / g], b = B[r * ng + perm[k] / g];
            float q = rintf(((float)w[k] - b) / s);
            q = q < 0.0f ? 0.0f : q > maxq ? maxq : q;
            float deq = s * q + b;
            double e = (w[k] - (double)deq) / U[k * in + k];
            for (int64_t c = k + 1; c < c0 + g; c++)
                w[c] -= e * U[k * in + c];
            Err[r * g + (k - c0)] = e;
            w[k] = deq;
            codes[r * in + perm[k]] = (uint8_t)q;
        }
    }
}

typedef struct diag_entry {
    double d;
    int64_t i;
} diag_entry;

static int by_decreasing_diag(const void *pa, const void *pb) {
    const diag_entry *a = pa, *b = pb;
    if (a->d != b->d)
        return a->d < b->d ? 1 : -1;
    return a->i < b->i ? -1 : a->i > b->i; // ties keep their order
}

// perm (in) <- the columns by decreasing H[i,i], ties in column order.
static ct_status act_order_perm(const double *H, int64_t in, int64_t *perm, ct_error *err) {
    diag_entry *e = malloc(sizeof *e * (size_t)in);
    if (!e)
        return ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory (act-order, %lld columns)", (long long)in);
    for (int64_t i = 0; i < in; i++)
        e[i] = (diag_entry){H[i * in + i], i};
    qsort(e, (size_t)in, sizeof *e, by_decreasing_diag);
    for (int64_t i = 0; i < in; i++)
        perm[i] = e[i].i;
    free(e);
    return CT_OK;
}

// W (rows, in) columns and H (in, in, upper triangle read) rows and columns
// -> position k holds original column perm[k]; H's upper triangle is written.
static ct_status permute(double *W, double *H, int64_t rows, int64_t in, const int64_t *perm, ct_error *err) {
    double *t = calloc((size_t)(in * in), sizeof *t); // the lower triangle stays 0 (never read)
    if (!t)
        return ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory (act-order, %lld columns)", (long long)in);
    for (int64_t a = 0; a < in; a++)
        for (int64_t b = a; b < in; b++) {
            int64_t i = perm[a] < perm[b] ? perm[a] : perm[b], j = perm[a] ^ perm[b] ^ i;
            t[a * in + b] = H[i * in + j];
        }
    memcpy(H, t, sizeof *t * (size_t)(in * in));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < in; k++)
            t[k] = W[r * in + perm[k]];
        memcpy(W + r * in, t, sizeof *t * (size_t)in);
    }
    free(t);
    return CT_OK;
}

// Dead columns zeroed, (act-order: every group's parameters from these
// weights, then W and H permuted), damping, U in H.
static ct_status prepare(double *W, double *H, int64_t rows, int64_t in, int g, int bits, ct_dtype sb, bool act_order,
                         int64_t *perm, float *blk, uint32_t *wq, float *S, float *B, ct_error *err) {
    double mean_diag = 0;
    for (int64_t i = 0; i < in; i++)
        mean_diag += H[i * in + i];
    mean_diag /= (double)in;
    for (int64_t i = 0; i < in; i++) {
        perm[i] = i;
        if (H[i * in + i] == 0) { // a never-active input: its column does not matter
            H[i * in + i] = 1;
            for (int64_t r = 0; r < rows; r++)
                W[r * in + i] = 0;
        }
    }
    if (act_order) {
        for (int64_t c0 = 0; c0 < in; c0 += g)
            CT_TRY(group_params(W, rows, in, c0, g, bits, sb, blk, wq, S, B, err));
        CT_TRY(act_order_perm(H, in, perm, err));
        CT_TRY(permute(W, H, rows, in, perm, err));
    }
    for (int64_t i = 0; i < in; i++)
        H[i * in + i] += 0.01 * mean_diag;
    return inverse_cholesky_upper(H, (int)in, err);
}

ct_status ct_gptq_quantize_layer(float *w, double *H, int64_t rows, int64_t in, int bits, int group_size,
                                 ct_dtype sb, bool act_order, uint8_t *codes, float *scales, float *biases,
                                 ct_error *err) {
    CT_TRY(ct_affine_check(bits, group_size, in, "gptq", err));
    int g = group_size;
    double *W = malloc(sizeof *W * (size_t)(rows * in));
    double *Err = malloc(sizeof *Err * (size_t)(rows * g));
    float *blk = malloc(sizeof *blk * (size_t)(rows * (g + 2)));
    uint32_t *wq = malloc(sizeof *wq * (size_t)(rows * g * bits / 32));
    int64_t *perm = malloc(sizeof *perm * (size_t)in);
    ct_status st = CT_OK;
    if (!W || !Err || !blk || !wq || !perm)
        st = ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory (%lld x %lld)", (long long)rows, (long long)in);
    for (int64_t r = 0; st == CT_OK && r < rows * in; r++)
        W[r] = w[r];
    if (st == CT_OK)
        st = prepare(W, H, rows, in, g, bits, sb, act_order, perm, blk, wq, scales, biases, err);
    for (int64_t c0 = 0; st == CT_OK && c0 < in; c0 += g) {
        if (!act_order) // the block's parameters from its error-compensated weights
            st = group_params(W, rows, in, c0, g, bits, sb, blk, wq, scales, biases, err);
        if (st != CT_OK)
            break;
        quantize_block(W, H, perm, rows, in, c0, g, bits, scales, biases, codes, Err);
        if (c0 + g < in) // lazy update of the later columns: W[:, c0+g:] -= Err U[c0:c0+g, c0+g:]
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(in - c0 - g), g, -1.0, Err, g,
                        H + c0 * in + c0 + g, (int)in, 1.0, W + c0 + g, (int)in);
    }
    if (st == CT_OK) // back to the original column order
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < in; k++)
                w[r * in + perm[k]] = (float)W[r * in + k];
    free(W), free(Err), free(blk), free(wq), free(perm);
    return st;
}

void ct_gptq_pack_codes(const uint8_t *codes, int64_t rows, int64_t in, int bits, uint32_t *wq) {
    int64_t words = ct_affine_row_words(in, bits);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *bytes = (uint8_t *)(wq + r * words);
        memset(bytes, 0, (size_t)words * 4);
        for (int64_t k = 0; k < in; k++) { // LSB-first bit stream (little-endian words)
            int64_t bit = k * bits;
            unsigned v = (unsigned)codes[r * in + k] << (bit & 7);
            bytes[bit >> 3] |= (uint8_t)v;
            if ((bit & 7) + bits > 8)
                bytes[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
        }
    }
}

// ---- the model


typedef struct gq_device_weight {
    void *wq, *scales, *biases; // device copies of a result the model uses (freed with the job)
} gq_device_weight;

typedef struct gq_job {
    const ct_gptq_opts *o;
    ct_backend *be;
    ct_model m;
    bool model_loaded;
    ct_dtype sb;            // scales/biases type of the output
    bool capture;           // the hook sums inputs into H
    double *H[QUANT_SLOTS];     // (in, in) upper triangles
    int64_t H_in[QUANT_SLOTS];
    float *inp, *xtx;       // host scratch: one forward's linear input (N, in), its x^T x (in, in)
    quant_results res;      // the GPTQ weights (host), for the writer
    gq_device_weight *dev;  // [res.n] their device copies
} gq_job;

// ct_linear_hook: H[slot] += x^T x (f32 products per forward, summed in f64).
static void capture_hook(void *ctx, int layer, ct_linear_id id, const float *inp, int64_t N, int64_t in) {
    gq_job *j = ctx;
    int s = quant_input_slot(id);
    if (!j->capture || s < 0)
        return;
    j->be->download(j->be, j->inp, inp, sizeof(float) * (size_t)(N * in));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)in, (int)N, 1.0f, j->inp, (int)in, 0.0f, j->xtx,
                (int)in);
    double *H = j->H[s];
    for (int64_t r = 0; r < in; r++)
        for (int64_t c = r; c < in; c++)
            H[r * in + c] += j->xtx[r * in + c];
}

static ct_status device_copy(gq_job *j, const void *host, size_t bytes, void **out, ct_error *err) {
    CT_TRY(j->be->alloc(j->be, bytes, out, err));
    j->be->upload(j->be, *out, host, bytes);
    return CT_OK;
}

// Stores a layer's GPTQ result (host codes, f32 scales/biases) for the
// writer, and as device buffers the model then uses.
static ct_status install_result(gq_job *j, ct_weight *w, const char *module, const uint8_t *codes,
                                const float *s, const float *b, ct_error *err) {
    int64_t rows = w->rows, in = w->cols, ng = in / j->o->group_size;
    size_t wq_bytes = sizeof(uint32_t) * (size_t)(rows * ct_affine_row_words(in, j->o->bits));
    size_t sb_bytes = ct_dtype_size(j->sb) * (size_t)(rows * ng);
    uint32_t *wq = malloc(wq_bytes);
    void *sh = malloc(sb_bytes), *bh = malloc(sb_bytes);
    if (!wq || !sh || !bh) {
        free(wq), free(sh), free(bh);
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
    }
    ct_gptq_pack_codes(codes, rows, in, j->o->bits, wq);
    quant_store_sb(sh, s, (size_t)(rows * ng), j->sb);
    quant_store_sb(bh, b, (size_t)(rows * ng), j->sb);
    CT_TRY(quant_results_add(&j->res, module, rows, in, j->o->bits, j->o->group_size, wq, sh, bh, err));
    gq_device_weight *d = &j->dev[j->res.n - 1]; // from here the job frees whatever buffers were made
    CT_TRY(device_copy(j, wq, wq_bytes, &d->wq, err));
    CT_TRY(device_copy(j, sh, sb_bytes, &d->scales, err));
    CT_TRY(device_copy(j, bh, sb_bytes, &d->biases, err));
    *w = (ct_weight){.rows = rows, .cols = in, .dtype = j->sb, .bits = j->o->bits,
                     .group_size = j->o->group_size, .data = d->wq, .scales = d->scales, .biases = d->biases};
    return CT_OK;
}

// GPTQ of layer l's linear id from H[slot]; the model then uses the result.
static ct_status quantize_linear(gq_job *j, int l, ct_linear_id id, double *Hcopy, ct_error *err) {
    ct_weight *w = &j->m.layers[l].lin[id].w;
    char module[96];
    quant_module_name(module, sizeof module, l, id);
    if (w->bits)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: the model is already quantized; GPTQ needs a dense model "
                       "(ctune convert --dequantize first)", module);
    int64_t rows = w->rows, in = w->cols;
    if (in % j->o->group_size)
        return CT_OK; // left dense, as mlx-lm leaves such layers
    int s = quant_weight_slot(id);
    size_t n = (size_t)(rows * in), ng = (size_t)(in / j->o->group_size);
    void *raw = malloc(n * ct_dtype_size(w->dtype));
    float *wf = malloc(sizeof *wf * n), *sc = malloc(sizeof *sc * (size_t)rows * ng);
    float *bi = malloc(sizeof *bi * (size_t)rows * ng);
    uint8_t *codes = malloc(n);
    ct_status st = raw && wf && sc && bi && codes ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
    if (st == CT_OK) {
        j->be->download(j->be, raw, w->data, n * ct_dtype_size(w->dtype));
        ct_convert_to_f32(wf, raw, w->dtype, n);
        for (size_t i = 0; i < n; i++) // as ct_convert casts before quantizing
            wf[i] = quant_round_sb(wf[i], j->sb);
        memcpy(Hcopy, j->H[s], sizeof(double) * (size_t)(in * in));
        st = ct_gptq_quantize_layer(wf, Hcopy, rows, in, j->o->bits, j->o->group_size, j->sb, j->o->act_order, codes,
                                        sc, bi, err);
    }
    if (st == CT_OK)
        st = install_result(j, w, module, codes, sc, bi, err);
    free(raw), free(wf), free(sc), free(bi), free(codes);
    return st == CT_OK ? CT_OK : ct_error_context(err, "%s", module);
}

// x (n_seq, T, C) host through layer l, batch by batch (in place unless scratch: then x is kept).
static ct_status run_layer(gq_job *j, ct_kv_cache *kv, int l, float *x, int n_seq, int T, float *scratch,
                           ct_error *err) {
    int B = j->o->batch_size > 0 ? j->o->batch_size : 8;
    size_t row = (size_t)T * (size_t)j->m.C;
    for (int b0 = 0; b0 < n_seq; b0 += B) {
        int nb = n_seq - b0 < B ? n_seq - b0 : B;
        float *xb = x + (size_t)b0 * row;
        if (scratch) {
            memcpy(scratch, xb, sizeof(float) * row * (size_t)nb);
            xb = scratch;
        }
        kv->B = nb;
        CT_TRY(ct_model_layer_forward(&j->m, kv, l, xb, nb, T, err));
    }
    return CT_OK;
}

static ct_status quantize_layers(gq_job *j, const int32_t *ids, int n_seq, int T, ct_error *err) {
    ct_model *m = &j->m;
    int B = j->o->batch_size > 0 ? j->o->batch_size : 8;
    B = B < n_seq ? B : n_seq;
    int64_t max_in = m->I > m->C ? m->I : m->C, qd = (int64_t)m->H * m->D;
    max_in = qd > max_in ? qd : max_in;
    size_t row = (size_t)T * (size_t)m->C, kv_bytes = sizeof(float) * (size_t)B * (size_t)T * (size_t)(m->KVH * m->D);
    float *x = malloc(sizeof(float) * row * (size_t)n_seq), *scratch = malloc(sizeof(float) * row * (size_t)B);
    double *Hcopy = malloc(sizeof(double) * (size_t)(max_in * max_in));
    j->inp = malloc(sizeof(float) * (size_t)B * (size_t)T * (size_t)max_in);
    j->xtx = malloc(sizeof(float) * (size_t)(max_in * max_in));
    float **kbufs = calloc((size_t)m->L, sizeof *kbufs), **vbufs = calloc((size_t)m->L, sizeof *vbufs);
    float *kb = NULL, *vb = NULL;
    ct_status st = x && scratch && Hcopy && j->inp && j->xtx && kbufs && vbufs
                       ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory for the calibration activations");
    int64_t slot_in[QUANT_SLOTS] = {m->C, qd, m->C, m->I};
    for (int s = 0; st == CT_OK && s < QUANT_SLOTS; s++) {
        j->H_in[s] = slot_in[s];
        j->H[s] = malloc(sizeof(double) * (size_t)(slot_in[s] * slot_in[s]));
        if (!j->H[s])
            st = ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory");
    }
    if (st == CT_OK)
        st = m->be->alloc(m->be, kv_bytes, (void **)&kb, err);
    if (st == CT_OK)
        st = m->be->alloc(m->be, kv_bytes, (void **)&vb, err);
    // One key/value buffer pair serves every layer: the layers run one at a time.
    for (int l = 0; st == CT_OK && l < m->L; l++)
        kbufs[l] = kb, vbufs[l] = vb;
    ct_kv_cache kv = {.B = B, .max_T = T, .L = m->L, .KVH = m->KVH, .D = m->D, .k = kbufs, .v = vbufs};
    if (st == CT_OK)
        st = ct_model_embed_rows(m, ids, (int64_t)n_seq * T, x, err);
    ct_progress prog;
    ct_progress_begin(&prog, "gptq layers", m->L);
    for (int l = 0; st == CT_OK && l < m->L; l++) {
        for (int s = 0; s < QUANT_SLOTS; s++)
            memset(j->H[s], 0, sizeof(double) * (size_t)(j->H_in[s] * j->H_in[s]));
        j->capture = true;
        st = run_layer(j, &kv, l, x, n_seq, T, scratch, err);
        j->capture = false;
        for (int id = 0; st == CT_OK && id < CT_LIN_COUNT; id++)
            st = quantize_linear(j, l, (ct_linear_id)id, Hcopy, err);
        if (st == CT_OK)
            st = run_layer(j, &kv, l, x, n_seq, T, NULL, err);
        ct_progress_update(&prog, l + 1);
    }
    ct_progress_end(&prog);
    if (kb)
        m->be->free(m->be, kb);
    if (vb)
        m->be->free(m->be, vb);
    free(kbufs), free(vbufs), free(x), free(scratch), free(Hcopy);
    return st;
}

// ---- the output (ct_convert hook)

static ct_quant_spec hook_spec(void *ctx, const char *module, int64_t in, bool *override) {
    const gq_job *j = ctx; // embeddings, lm_head: RTN at the fallback bits
    return quant_results_spec(&j->res, module, in, j->o->bits, j->o->group_size, j->o->fallback_bits,
                              j->o->fallback_group_size, override);
}

static ct_status hook_quantize(void *ctx, const char *module, const float *w, int64_t rows, int64_t in,
                               const ct_quant_spec *s, ct_dtype sb, uint32_t *wq, void *scales, void *biases,
                               bool *done, ct_error *err) {
    (void)w;
    const gq_job *j = ctx;
    return quant_results_emit(&j->res, module, rows, in, s, sb, wq, scales, biases, done, err);
}

// ---- the job

static ct_status check_opts(const ct_gptq_opts *o, ct_error *err) {
    if (!o->model || !o->mlx_path)
        return ct_fail(err, CT_ERR_INVALID, "gptq: a model and an output path are needed");
    CT_TRY(ct_affine_check(o->bits, o->group_size, o->group_size, "--bits/--group-size", err));
    CT_TRY(ct_affine_check(o->fallback_bits, o->fallback_group_size, o->fallback_group_size,
                           "--fallback-bits/--fallback-group-size", err));
    if (ct_path_exists(o->mlx_path))
        return ct_fail(err, CT_ERR_INVALID,
                       "cannot save to %s: it already exists (delete it or choose another --mlx-path)", o->mlx_path);
    return CT_OK;
}

static ct_status load(gq_job *j, int32_t **ids, int *n_seq, ct_error *err) {
    const ct_gptq_opts *o = j->o;
    CT_TRY(ct_backend_cpu_create(&j->be, err));
    CT_TRY(ct_model_load(&j->m, o->model, j->be, err));
    j->model_loaded = true;
    CT_TRY(quant_check_arch(&j->m, o->model, "gptq", err));
    CT_TRY(quant_output_dtype(o->dtype, &j->m, &j->sb, err));
    j->res.sb = j->sb;
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load(&tok, o->model, err));
    ct_status st = ct_calib_load(tok, &o->calib, ids, n_seq, err);
    ct_tokenizer_free(tok);
    if (st == CT_OK)
        j->dev = calloc((size_t)j->m.L * CT_LIN_COUNT, sizeof *j->dev);
    if (st == CT_OK && !j->dev)
        st = ct_fail(err, CT_ERR_NOMEM, "gptq: out of memory");
    return st;
}

static void job_free(gq_job *j) {
    for (int i = 0; j->dev && i < j->res.n; i++) {
        void *bufs[] = {j->dev[i].wq, j->dev[i].scales, j->dev[i].biases};
        for (int k = 0; k < 3; k++)
            if (bufs[k])
                j->be->free(j->be, bufs[k]);
    }
    free(j->dev);
    quant_results_free(&j->res);
    for (int s = 0; s < QUANT_SLOTS; s++)
        free(j->H[s]);
    free(j->inp), free(j->xtx);
    if (j->model_loaded)
        ct_model_free(&j->m);
    if (j->be)
        ct_backend_destroy(j->be);
}

ct_status ct_gptq(const ct_gptq_opts *o, ct_gptq_stats *stats, ct_error *err) {
    CT_TRY(check_opts(o, err));
    gq_job j = {.o = o};
    int32_t *ids = NULL;
    int n_seq = 0;
    double t0 = ct_now();
    ct_status st = load(&j, &ids, &n_seq, err);
    if (st == CT_OK) {
        ct_log_info("[INFO] GPTQ %d-bit group %d%s on %d calibration sequences of %d tokens", o->bits,
                    o->group_size, o->act_order ? " (act-order)" : "", n_seq, o->calib.sequence_length);
        j.m.linear_hook = capture_hook;
        j.m.linear_hook_ctx = &j;
        st = quantize_layers(&j, ids, n_seq, o->calib.sequence_length, err);
        j.m.linear_hook = NULL;
        ct_model_free(&j.m); // the GPTQ results live in the job's own buffers
        j.model_loaded = false;
    }
    free(ids);
    if (st == CT_OK) {
        ct_log_info("[INFO] %d linears quantized with GPTQ in %.1f s; writing %s", j.res.n, ct_now() - t0,
                    o->mlx_path);
        ct_convert_hook hook = {.ctx = &j, .spec = hook_spec, .quantize = hook_quantize};
        ct_convert_opts co = {.model = o->model, .mlx_path = o->mlx_path, .quantize = true, .q_bits = o->bits,
                              .q_group_size = o->group_size, .dtype = o->dtype, .hook = &hook};
        ct_convert_stats cs;
        st = ct_convert(&co, &cs, err);
        if (st == CT_OK && stats)
            *stats = (ct_gptq_stats){.n_sequences = n_seq, .n_gptq = j.res.n, .convert = cs};
    }
    job_free(&j);
    return st;
}
