// cpu_linear.c: linear layers (x . W^T + b) and embeddings over weights stored
// as f32, f16, bf16 or MLX affine codes, and the threaded sgemm they use.
// - Few input rows (decoding): one pass over W split across threads; affine
//   weights use the fused dequantize-and-dot of cpu_affine.c, f16/bf16 rows
//   are converted and dotted.
// - More rows: non-f32 weights are converted to f32 one block of rows at a
//   time inside the product (never a full f32 copy); each thread converts its
//   own blocks and multiplies them with a single-threaded sgemm.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "ctune/affine_quant.h"

// ROW_BLOCK: rows of W converted per block (64 x 4096 floats = 1 MiB).
// MATVEC_CHUNK: rows of W per task of the few-rows product.
// SMALL_N: up to this many input rows the fused few-rows path wins (measured
// on SmolLM2's 576 x 1536 layers: 8 rows fused 0.35 ms vs 0.5 ms blocked).
enum { ROW_BLOCK = 64, MATVEC_CHUNK = 64, SMALL_N = CT_CPU_QDOT_MAX_N, SPLIT_ALIGN = 16 };
// Products below this many multiply-adds run on one thread.
static const double SGEMM_SPLIT_MIN = 1 << 18;

int ct_cpu_simd_enabled(void) { return getenv("CTUNE_CPU_NO_SIMD") == NULL; }

// Thread t's share [*lo, *hi) of n items split in nt parts aligned to `align`.
static void thread_range(int64_t n, int t, int nt, int64_t align, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *lo = (int64_t)t * per < n ? (int64_t)t * per : n;
    *hi = *lo + per < n ? *lo + per : n;
}

void ct_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    if ((double)M * N * K < SGEMM_SPLIT_MIN || omp_get_max_threads() == 1) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_cols = N >= M;
#pragma omp parallel
    {
        int64_t lo, hi;
        thread_range(split_cols ? N : M, omp_get_thread_num(), omp_get_num_threads(), SPLIT_ALIGN, &lo, &hi);
        if (hi > lo && split_cols) // columns lo..hi of C: columns of op(B)
            cblas_sgemm(CblasRowMajor, ta, tb, M, (int)(hi - lo), K, alpha, A, lda,
                        B + (tb == CblasNoTrans ? lo : lo * ldb), ldb, beta, C + lo, ldc);
        else if (hi > lo) // rows lo..hi of C: rows of op(A)
            cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), N, K, alpha, A + (ta == CblasNoTrans ? lo * lda : lo),
                        lda, B, ldb, beta, C + lo * ldc, ldc);
    }
}

static void convert_row(const ct_weight *w, int64_t r, float *dst) {
    int64_t C = w->cols;
    if (w->bits > 0)
        ct_cpu_affine_rows(w, r, 1, dst);
    else if (w->dtype == CT_F32)
        memcpy(dst, (const float *)w->data + r * C, (size_t)C * sizeof(float));
    else
        ct_convert_to_f32(dst, (const char *)w->data + (size_t)(r * C) * ct_dtype_size(w->dtype), w->dtype,
                          (size_t)C);
}

void ct_cpu_weight_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst) {
    if (w->bits > 0) {
        ct_cpu_affine_rows(w, r0, n, dst);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        convert_row(w, r0 + i, dst + i * w->cols);
}

// ids (n), w (V, C) -> out (n, C)
void ct_cpu_embedding_forward(ct_backend *be, float *out, const int32_t *ids, const ct_weight *w, int64_t n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n * w->cols >= CT_CPU_PAR_MIN)
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
#pragma omp parallel for schedule(static) if (N * O >= CT_CPU_PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            out[n * O + o] += bias[o];
}

// Few input rows, affine weight: one fused pass over W, in chunks of rows
// handed out dynamically (the machine may be shared: a static split waits for
// the slowest thread).
static void linear_forward_affine_rows(float *out, const float *inp, const ct_weight *w, int64_t N) {
    float *scratch = malloc(sizeof(float) * ct_cpu_affine_scratch_floats(w, N));
    ct_cpu_affine_prepare(w, inp, N, scratch);
    int64_t chunks = (w->rows + MATVEC_CHUNK - 1) / MATVEC_CHUNK;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * MATVEC_CHUNK, hi = lo + MATVEC_CHUNK < w->rows ? lo + MATVEC_CHUNK : w->rows;
        ct_cpu_affine_matvec(w, scratch, N, lo, hi, out);
    }
    free(scratch);
}

// Few input rows, f16/bf16 weight: each converted row dotted with every input row.
static void linear_forward_dense_rows(float *out, const float *inp, const ct_weight *w, int64_t N) {
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

// Many input rows, non-f32 weight: threads take blocks of W's rows
// dynamically, convert them and multiply them with a single-threaded sgemm.
static void linear_forward_blocks(float *out, const float *inp, const ct_weight *w, int64_t N) {
    int64_t O = w->rows, In = w->cols, nblocks = (O + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel
    {
        float *blk = malloc(sizeof(float) * (size_t)(ROW_BLOCK * In));
#pragma omp for schedule(dynamic, 1)
        for (int64_t bi = 0; bi < nblocks; bi++) {
            int64_t r0 = bi * ROW_BLOCK, nr = O - r0 < ROW_BLOCK ? O - r0 : ROW_BLOCK;
            ct_cpu_weight_rows(w, r0, nr, blk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)nr, (int)In, 1.0f, inp, (int)In, blk,
                        (int)In, 0.0f, out + r0, (int)O);
        }
        free(blk);
    }
}

// inp (N, In), W (O, In), bias (O) -> out (N, O)  (In: "I" is complex.h's, via cblas.h)
void ct_cpu_linear_forward(ct_backend *be, float *out, const float *inp, const ct_weight *w, const float *bias,
                           int64_t N) {
    (void)be;
    int64_t O = w->rows, In = w->cols;
    if (w->bits == 0 && w->dtype == CT_F32)
        ct_cpu_sgemm(CblasNoTrans, CblasTrans, (int)N, (int)O, (int)In, 1.0f, inp, (int)In, w->data, (int)In, 0.0f,
                     out, (int)O);
    else if (N <= SMALL_N && w->bits > 0)
        linear_forward_affine_rows(out, inp, w, N);
    else if (N <= SMALL_N)
        linear_forward_dense_rows(out, inp, w, N);
    else
        linear_forward_blocks(out, inp, w, N);
    add_bias(out, bias, N, O);
}

// dout (N, O), inp (N, In), W (O, In) -> dinp (N, In) +=, dweight (O, In) +=, dbias (O) +=
void ct_cpu_linear_backward(ct_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const ct_weight *w, int64_t N) {
    (void)be;
    int64_t O = w->rows, In = w->cols;
    if (dinp && w->bits == 0 && w->dtype == CT_F32) {
        ct_cpu_sgemm(CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)O, 1.0f, dout, (int)O, w->data, (int)In, 1.0f,
                     dinp, (int)In);
    } else if (dinp) { // blocks of W converted in parallel, then a split sgemm adds each block's share
        float *blk = malloc((size_t)(ROW_BLOCK * In) * sizeof(float));
        for (int64_t r0 = 0; r0 < O; r0 += ROW_BLOCK) {
            int64_t nr = O - r0 < ROW_BLOCK ? O - r0 : ROW_BLOCK;
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < nr; r++)
                ct_cpu_weight_rows(w, r0 + r, 1, blk + r * In);
            ct_cpu_sgemm(CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)nr, 1.0f, dout + r0, (int)O, blk, (int)In,
                         1.0f, dinp, (int)In);
        }
        free(blk);
    }
    if (dweight)
        ct_cpu_sgemm(CblasTrans, CblasNoTrans, (int)O, (int)In, (int)N, 1.0f, dout, (int)O, inp, (int)In, 1.0f,
                     dweight, (int)In);
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
