// dora.c: DoRA (weight-decomposed low-rank adaptation) as mlx-lm's DoRALinear
// and DoRAEmbedding, and fuse for LoRA and DoRA layers. The row norms of the
// adapted weight are a constant for backward (mlx-lm's stop_gradient).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_ops.h"
#include "ctune/affine_quant.h"

ct_status adapter_adapted_weight(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, const ct_weight *w,
                                 float **wfull, float *norm, ct_error *err) {
    int64_t rows = w->rows, cols = w->cols, r = l->rank;
    const int32_t *iota;
    float *full, *tmp;
    CT_TRY(adapter_cache_iota(c, be, rows, &iota, err));
    CT_TRY(adapter_cache_get(c, be, AC_WFULL, rows * cols, sizeof(float), (void **)&full, err));
    be->embedding_forward(be, full, iota, w, rows); // the (dequantized) base, fp32
    if (l->mod.kind == CT_MODULE_LINEAR) {
        // full (out, in) += (s*b).a, b (out, r), a (r, in): the input-gradient product of a linear
        CT_TRY(adapter_cache_get(c, be, AC_BS, rows * r, sizeof(float), (void **)&tmp, err));
        be->copy(be, tmp, l->b, (size_t)(rows * r) * sizeof(float));
        be->scale(be, tmp, l->scale, rows * r);
        ct_weight wa = adapter_dense(l->a, r, cols);
        be->linear_backward(be, full, NULL, NULL, tmp, NULL, &wa, rows);
    } else {
        // full (V, d) += s * a.b^T, a (V, r), b (d, r)
        CT_TRY(adapter_cache_get(c, be, AC_BS, rows * cols, sizeof(float), (void **)&tmp, err));
        ct_weight wb = adapter_dense(l->b, cols, r);
        be->linear_forward(be, tmp, l->a, &wb, NULL, rows);
        be->scale(be, tmp, l->scale, rows * cols);
        be->add(be, full, full, tmp, rows * cols);
    }
    if (norm)
        adapter_k_row_norms(norm, full, rows, cols);
    *wfull = full;
    return CT_OK;
}

// ---- linear: y = (m / n) * (x.W^T + s * (drop(x).A).B) + b

ct_status adapter_dora_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                      const float *x, const ct_weight *w, const float *bias, int64_t N, bool train,
                                      uint64_t seed, ct_error *err) {
    int64_t out = l->mod.out;
    float *v, *norm, *full;
    CT_TRY(adapter_cache_get(c, be, AC_V, N * out, sizeof(float), (void **)&v, err));
    CT_TRY(adapter_cache_get(c, be, AC_NORM, out, sizeof(float), (void **)&norm, err));
    be->linear_forward(be, v, x, w, NULL, N);
    CT_TRY(adapter_lora_branch_forward(be, l, c, v, x, N, train, seed, err));
    CT_TRY(adapter_adapted_weight(be, l, c, w, &full, norm, err));
    adapter_k_dora_scale_cols(y, v, l->m, norm, bias, N, out);
    return CT_OK;
}

void adapter_dora_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                  const float *dy, const float *x, const ct_weight *w, int64_t N) {
    int64_t out = l->mod.out;
    float *dv;
    ct_error err;
    if (adapter_cache_get(c, be, AC_DV, N * out, sizeof(float), (void **)&dv, &err) != CT_OK)
        return;
    adapter_k_dora_scale_cols_backward(dv, l->dm, dy, c->buf[AC_V], l->m, c->buf[AC_NORM], N, out);
    if (dx)
        be->linear_backward(be, dx, NULL, NULL, dv, x, w, N);
    adapter_lora_branch_backward(be, l, c, dx, dv, x, N);
}

// ---- embedding: y = (m[ids] / ||W[ids] + z||) * (W[ids] + drop(z)), z = s * A[ids].B

ct_status adapter_dora_embedding_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                         const int32_t *ids, const ct_weight *w, int64_t N, bool train,
                                         uint64_t seed, ct_error *err) {
    int64_t V = l->mod.in, d = l->mod.out, r = l->rank;
    float *u, *z, *v, *norm, *sum;
    c->N = N, c->dropped = train && l->dropout > 0.0f, c->drop_seed = seed;
    CT_TRY(adapter_cache_get(c, be, AC_U, N * r, sizeof(float), (void **)&u, err));
    CT_TRY(adapter_cache_get(c, be, AC_Z, N * d, sizeof(float), (void **)&z, err));
    CT_TRY(adapter_cache_get(c, be, AC_V, N * d, sizeof(float), (void **)&v, err));
    CT_TRY(adapter_cache_get(c, be, AC_DV, N * d, sizeof(float), (void **)&sum, err));
    CT_TRY(adapter_cache_get(c, be, AC_NORM, N, sizeof(float), (void **)&norm, err));
    ct_weight wa = adapter_dense(l->a, V, r), wb = adapter_dense(l->b, d, r);
    be->embedding_forward(be, v, ids, w, N);
    be->embedding_forward(be, u, ids, &wa, N);
    be->linear_forward(be, z, u, &wb, NULL, N);
    be->scale(be, z, l->scale, N * d);
    be->add(be, sum, v, z, N * d); // the norm is taken before dropout, as mlx-lm
    adapter_k_row_norms(norm, sum, N, d);
    if (c->dropped)
        adapter_k_dropout_forward(z, z, N * d, l->dropout, seed);
    be->add(be, v, v, z, N * d);
    adapter_k_dora_scale_rows(y, v, l->m, ids, norm, N, d);
    return CT_OK;
}

void adapter_dora_embedding_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                     const float *dy, const int32_t *ids, int64_t N) {
    float *dv = c->buf[AC_DV];
    adapter_k_dora_scale_rows_backward(dv, l->dm, dy, c->buf[AC_V], l->m, ids, c->buf[AC_NORM], N, l->mod.out);
    adapter_lora_embedding_branch_backward(be, l, c, dv, ids, N);
}

// ---- fuse

void ct_fused_weight_free(ct_fused_weight *f) {
    free(f->data);
    free(f->scales);
    free(f->biases);
    memset(f, 0, sizeof *f);
}

// Host copies of the dequantized base (base) and the fused weight (fused), both (rows, cols) f32.
static ct_status fused_f32(ct_backend *be, const ct_adapter_layer *l, const ct_weight *w, float *base, float *fused,
                           ct_error *err) {
    int64_t rows = w->rows, cols = w->cols;
    size_t bytes = (size_t)(rows * cols) * sizeof(float);
    ct_adapter_cache c = {0};
    const int32_t *iota;
    float *full, *norm = NULL;
    ct_status st = adapter_cache_iota(&c, be, rows, &iota, err);
    if (st == CT_OK)
        st = adapter_cache_get(&c, be, AC_NORM, rows, sizeof(float), (void **)&norm, err);
    if (st == CT_OK)
        st = adapter_cache_get(&c, be, AC_DIN, rows * cols, sizeof(float), (void **)&full, err);
    if (st == CT_OK) {
        be->embedding_forward(be, full, iota, w, rows);
        be->download(be, base, full, bytes);
        st = adapter_adapted_weight(be, l, &c, w, &full, norm, err);
    }
    if (st == CT_OK && l->type == CT_ADAPTER_DORA) // rows scaled by m / ||row||
        adapter_k_dora_scale_rows(full, full, l->m, iota, norm, rows, cols);
    if (st == CT_OK)
        be->download(be, fused, full, bytes);
    ct_adapter_cache_free(&c, be);
    return st;
}

// out <- fused stored in the requested format; stored <- what it reads back as.
static ct_status store_fused(const ct_weight *w, bool dequantize, const float *fused, float *stored,
                             ct_fused_weight *out, ct_error *err) {
    int64_t rows = w->rows, cols = w->cols, n = rows * cols;
    ct_weight *o = &out->w;
    *o = (ct_weight){.rows = rows, .cols = cols, .dtype = dequantize && w->bits ? CT_F32 : w->dtype};
    if (w->bits > 0 && !dequantize) {
        size_t sb = (size_t)(rows * (cols / w->group_size)) * ct_dtype_size(w->dtype);
        o->bits = w->bits, o->group_size = w->group_size;
        out->data = malloc((size_t)(rows * ct_affine_row_words(cols, w->bits)) * 4);
        out->scales = malloc(sb), out->biases = malloc(sb);
        if (!out->data || !out->scales || !out->biases)
            return ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
        CT_TRY(ct_affine_quantize(fused, rows, cols, w->bits, w->group_size, out->data, out->scales, out->biases,
                                  w->dtype, err));
        ct_affine_dequantize(out->data, out->scales, out->biases, w->dtype, rows, cols, w->bits, w->group_size,
                             stored);
    } else {
        size_t es = ct_dtype_size(o->dtype);
        if (!(out->data = malloc((size_t)n * es)))
            return ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
        for (int64_t i = 0; i < n; i++) {
            if (o->dtype == CT_F32) {
                ((float *)out->data)[i] = fused[i];
            } else if (o->dtype == CT_F16) {
                ((uint16_t *)out->data)[i] = ct_f32_to_f16(fused[i]);
            } else {
                ((uint16_t *)out->data)[i] = ct_f32_to_bf16(fused[i]);
            }
        }
        ct_convert_to_f32(stored, out->data, o->dtype, (size_t)n);
    }
    o->data = out->data, o->scales = out->scales, o->biases = out->biases;
    return CT_OK;
}

static void measure(const float *base, const float *fused, const float *stored, int64_t n, ct_fuse_report *r) {
    double w2 = 0, d2 = 0, e2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)fused[i] - base[i], e = (double)stored[i] - fused[i];
        w2 += (double)base[i] * base[i], d2 += d * d, e2 += e * e;
    }
    r->delta_rel = w2 > 0 ? sqrt(d2 / w2) : 0;
    r->lost = d2 > 0 ? sqrt(e2 / d2) : 0;
}

ct_status ct_adapter_fuse(ct_backend *be, const ct_adapter_layer *l, const ct_weight *w, bool dequantize,
                          ct_fused_weight *out, ct_fuse_report *report, ct_error *err) {
    memset(out, 0, sizeof *out);
    if (w->bits == 0 && w->dtype != CT_F32 && w->dtype != CT_F16 && w->dtype != CT_BF16)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "fuse %s: base dtype %s", l->mod.path, ct_dtype_name(w->dtype));
    int64_t n = w->rows * w->cols;
    float *base = malloc((size_t)n * sizeof(float)), *fused = malloc((size_t)n * sizeof(float));
    float *stored = malloc((size_t)n * sizeof(float));
    ct_status st = base && fused && stored ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "fuse %s: out of memory", l->mod.path);
    if (st == CT_OK)
        st = fused_f32(be, l, w, base, fused, err);
    if (st == CT_OK)
        st = store_fused(w, dequantize, fused, stored, out, err);
    if (st == CT_OK && report)
        measure(base, fused, stored, n, report);
    if (st != CT_OK) {
        ct_fused_weight_free(out);
        ct_error_context(err, "fuse %s", l->mod.path);
    }
    free(base);
    free(fused);
    free(stored);
    return st;
}
