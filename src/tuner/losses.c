// losses.c: distillation losses (see losses.h) on the backend's divergence,
// gather and scatter ops, plus the host top-k selection of teacher logits.
#include <stdlib.h>
#include <string.h>

#include "ctune/losses.h"

ct_status ct_distill_loss_init(ct_distill_loss *l, ct_backend *be, float temperature, bool js, int top_k,
                               ct_error *err) {
    memset(l, 0, sizeof *l);
    if (!(temperature > 0.0f))
        return ct_fail(err, CT_ERR_INVALID, "distillation: the temperature must be > 0 (got %g)", (double)temperature);
    if (top_k < 0)
        return ct_fail(err, CT_ERR_INVALID, "distillation: top-k must be >= 0 (got %d)", top_k);
    *l = (ct_distill_loss){.be = be, .temperature = temperature, .js = js, .top_k = top_k};
    return CT_OK;
}

void ct_distill_loss_free(ct_distill_loss *l) {
    float *dev[] = {l->student_k, l->dstudent_k, l->row_loss, l->row_weight};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            l->be->free(l->be, dev[i]);
    free(l->host_loss);
    memset(l, 0, sizeof *l);
}

// Scratch for n rows.
static ct_status reserve(ct_distill_loss *l, int64_t n, ct_error *err) {
    if (n <= l->cap_rows)
        return CT_OK;
    ct_backend *be = l->be;
    int top_k = l->top_k;
    float temperature = l->temperature;
    bool js = l->js;
    ct_distill_loss_free(l);
    *l = (ct_distill_loss){.be = be, .temperature = temperature, .js = js, .top_k = top_k};
    size_t k = (size_t)(top_k > 0 ? top_k : 1), rows = (size_t)n;
    CT_TRY(be->alloc(be, sizeof(float) * rows * k, (void **)&l->student_k, err));
    CT_TRY(be->alloc(be, sizeof(float) * rows * k, (void **)&l->dstudent_k, err));
    CT_TRY(be->alloc(be, sizeof(float) * rows, (void **)&l->row_loss, err));
    CT_TRY(be->alloc(be, sizeof(float) * rows, (void **)&l->row_weight, err));
    l->host_loss = malloc(sizeof(float) * rows);
    if (!l->host_loss)
        return ct_fail(err, CT_ERR_NOMEM, "distillation: out of memory (%lld rows)", (long long)n);
    l->cap_rows = n;
    return CT_OK;
}

ct_status ct_distill_loss_apply(ct_distill_loss *l, const float *student, const float *teacher, const int32_t *idx,
                                const float *weight, int64_t n, int V, float *dstudent, double *loss_sum,
                                ct_error *err) {
    if (l->top_k > V)
        return ct_fail(err, CT_ERR_INVALID, "distillation: top-k %d is larger than the vocabulary (%d)", l->top_k, V);
    CT_TRY(reserve(l, n, err));
    ct_backend *be = l->be;
    int js = l->js ? 1 : 0, width = l->top_k > 0 ? l->top_k : V;
    const float *q = student;
    if (l->top_k > 0) {
        be->gather_cols(be, l->student_k, student, idx, n, V, l->top_k);
        q = l->student_k;
    }
    be->divergence_forward(be, l->row_loss, q, teacher, n, width, l->temperature, js);
    be->download(be, l->host_loss, l->row_loss, sizeof(float) * (size_t)n);
    double sum = 0;
    for (int64_t r = 0; r < n; r++)
        if (weight[r] != 0.0f)
            sum += (double)weight[r] * (double)l->host_loss[r];
    *loss_sum += sum;
    if (!dstudent)
        return CT_OK;
    be->upload(be, l->row_weight, weight, sizeof(float) * (size_t)n);
    if (l->top_k == 0) {
        be->divergence_backward(be, dstudent, l->row_weight, student, teacher, n, V, l->temperature, js);
        return CT_OK;
    }
    be->zero(be, l->dstudent_k, sizeof(float) * (size_t)n * (size_t)l->top_k);
    be->divergence_backward(be, l->dstudent_k, l->row_weight, l->student_k, teacher, n, l->top_k, l->temperature, js);
    be->scatter_add_cols(be, dstudent, l->dstudent_k, idx, n, V, l->top_k);
    return CT_OK;
}

// ---- top-k (a min-heap of the k best entries seen, keyed by (value, -index))

// Whether entry (va, ia) ranks below (vb, ib): smaller value, or equal value and larger index.
static bool below(float va, int32_t ia, float vb, int32_t ib) { return va < vb || (va == vb && ia > ib); }

static void sift_down(float *v, int32_t *ix, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && below(v[c + 1], ix[c + 1], v[c], ix[c]))
            c++;
        if (!below(v[c], ix[c], v[i], ix[i]))
            return;
        float tv = v[i];
        int32_t ti = ix[i];
        v[i] = v[c], ix[i] = ix[c];
        v[c] = tv, ix[c] = ti;
        i = c;
    }
}

// One row (V) -> values, idx (k) in descending order.
static void row_top_k(const float *x, int V, int k, float *v, int32_t *ix) {
    for (int j = 0; j < k; j++)
        v[j] = x[j], ix[j] = j;
    for (int j = k / 2 - 1; j >= 0; j--)
        sift_down(v, ix, k, j);
    for (int c = k; c < V; c++)
        if (below(v[0], ix[0], x[c], c)) {
            v[0] = x[c], ix[0] = c;
            sift_down(v, ix, k, 0);
        }
    for (int end = k - 1; end > 0; end--) { // heap sort: the smallest goes last
        float tv = v[0];
        int32_t ti = ix[0];
        v[0] = v[end], ix[0] = ix[end];
        v[end] = tv, ix[end] = ti;
        sift_down(v, ix, end, 0);
    }
}

void ct_logits_top_k(const float *logits, int64_t n, int V, int k, float *values, int32_t *idx) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++)
        row_top_k(logits + r * V, V, k, values + r * k, idx + r * k);
}
