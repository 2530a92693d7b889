// cpu_linear.c: linear layers (x . W^T + b) and embeddings over weights stored
// as f32, f16, bf16 or MLX affine codes. Non-f32 weights are converted to f32
// one block of rows at a time inside the product (never a full f32 copy):
// convert a block, multiply it with sgemm, move on.
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "ctune/affine_quant.h"

// Rows of W converted per block: a block of 64 rows of 4096 columns is 1 MiB.
enum { ROW_BLOCK = 64, SMALL_N = 4 };

static void convert_row(const ct_weight *w, int64_t r, float *dst) {
    int64_t C = w->cols;
    if (w->bits > 0) {
        int64_t groups = C / w->group_size;
        size_t esz = ct_dtype_size(w->dtype);
        ct_affine_dequantize_row((const uint32_t *)w->data + r * ct_affine_row_words(C, w->bits),
                                 (const char *)w->scales + r * groups * esz,
                                 (const char *)w->biases + r * groups * esz, w->dtype, C, w->bits, w->group_size,
                                 dst);
    } else if (w->dtype == CT_F32) {
        memcpy(dst, (const float *)w->data + r * C, (size_t)C * sizeof(float));
    } else {
        ct_convert_to_f32(dst, (const char *)w->data + (size_t)(r * C) * ct_dtype_size(w->dtype), w->dtype,
                          (size_t)C);
    }
}

// Serial on purpose: it runs between sgemm calls, and waking OpenMP threads
// there fights OpenBLAS's own threads (measured 50x slower on 2 cores).
void ct_cpu_weight_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++)
        convert_row(w, r0 + i, dst + i * w->cols);
}

// ids (n), w (V, C) -> out (n, C)
void ct_cpu_embedding_forward(ct_backend *be, float *out, const int32_t *ids, const ct_weight *w, int64_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        convert_row(w, ids[i], out + i * w->cols);
}

// dout (n, C), ids (n) -> dw (V, C) +=. Serial over tokens: repeated ids add up without races.
void ct_cpu_embedding_backward(ct_backend *be, float *dw, const float *dout, const int32_t *ids, int64_t n, int C) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        float *row = dw + (int64_t)ids[i] * C;
        const float *d = dout + i * C;
        for (int c = 0; c < C; c++)
            row[c] += d[c];
    }
}

static void add_bias(float *out, const float *bias, int64_t N, int64_t O) {
    if (!bias)
        return;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            out[n * O + o] += bias[o];
}

// Few input rows (decode): one pass over W, each converted row dotted with every input row.
static void linear_forward_rows(float *out, const float *inp, const ct_weight *w, int64_t N) {
    int64_t O = w->rows, In = w->cols;
#pragma omp parallel
    {
        float *row = malloc((size_t)In * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t o = 0; o < O; o++) {
            convert_row(w, o, row);
            for (int64_t n = 0; n < N; n++) {
                const float *x = inp + n * In;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int64_t i = 0; i < In; i++)
                    s += x[i] * row[i];
                out[n * O + o] = s;
            }
        }
        free(row);
    }
}

// inp (N, In), W (O, In), bias (O) -> out (N, O)  (In: "I" is complex.h's, via cblas.h)
void ct_cpu_linear_forward(ct_backend *be, float *out, const float *inp, const ct_weight *w, const float *bias,
                           int64_t N) {
    (void)be;
    int64_t O = w->rows, In = w->cols;
    if (w->bits == 0 && w->dtype == CT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)O, (int)In, 1.0f, inp, (int)In, w->data,
                    (int)In, 0.0f, out, (int)O);
    } else if (N <= SMALL_N) {
        linear_forward_rows(out, inp, w, N);
    } else {
        float *blk = malloc((size_t)(ROW_BLOCK * In) * sizeof(float));
        for (int64_t r0 = 0; r0 < O; r0 += ROW_BLOCK) {
            int64_t nr = O - r0 < ROW_BLOCK ? O - r0 : ROW_BLOCK;
            ct_cpu_weight_rows(w, r0, nr, blk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)nr, (int)In, 1.0f, inp, (int)In, blk,
                        (int)In, 0.0f, out + r0, (int)O);
        }
        free(blk);
    }
    add_bias(out, bias, N, O);
}

// dout (N, O), inp (N, In), W (O, In) -> dinp (N, In) +=, dweight (O, In) +=, dbias (O) +=
void ct_cpu_linear_backward(ct_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const ct_weight *w, int64_t N) {
    (void)be;
    int64_t O = w->rows, In = w->cols;
    if (dinp && w->bits == 0 && w->dtype == CT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)O, 1.0f, dout, (int)O, w->data,
                    (int)In, 1.0f, dinp, (int)In);
    } else if (dinp) {
        float *blk = malloc((size_t)(ROW_BLOCK * In) * sizeof(float));
        for (int64_t r0 = 0; r0 < O; r0 += ROW_BLOCK) {
            int64_t nr = O - r0 < ROW_BLOCK ? O - r0 : ROW_BLOCK;
            ct_cpu_weight_rows(w, r0, nr, blk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)nr, 1.0f, dout + r0, (int)O,
                        blk, (int)In, 1.0f, dinp, (int)In);
        }
        free(blk);
    }
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)O, (int)In, (int)N, 1.0f, dout, (int)O, inp, (int)In,
                    1.0f, dweight, (int)In);
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < O; o++) {
            float s = 0.0f;
            for (int64_t n = 0; n < N; n++)
                s += dout[n * O + o];
            dbias[o] += s;
        }
    }
}
