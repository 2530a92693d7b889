// cpu_ops.h: the CPU backend's kernels (private to src/backend/cpu). Each is
// the implementation of the ct_backend entry of the same name; see
// include/ctune/backend.h for shapes and semantics.
#ifndef CTUNE_CPU_OPS_H
#define CTUNE_CPU_OPS_H

#include "ctune/backend.h"

// `omp simd` is a vectorisation hint; clang warns when it cannot honour it
// (sanitizer builds at -O1), which must not fail the -Werror build.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include <cblas.h>

// Threading policy: OpenMP threads only. OpenBLAS is set to one thread when
// the backend is created, and products that are worth splitting are split
// across the OpenMP threads by ct_cpu_sgemm, each calling sgemm on its part
// (two thread pools on the same cores made the products erratic and slow).

// C (M, N) = alpha op(A) op(B) + beta C (row-major, cblas argument order),
// the columns (or rows, whichever is longer) of C split across OpenMP threads.
// Call it outside parallel regions.
void ct_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

// Elementwise work below this many elements runs on the calling thread: a
// parallel region costs more than it saves there (decoding has hundreds of
// such small ops per token).
#define CT_CPU_PAR_MIN 32768

// Converts rows [r0, r0+n) of w to f32: dst (n, w.cols).
void ct_cpu_weight_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst);

// ---- MLX affine kernels (cpu_affine.c)
enum { CT_CPU_QDOT_MAX_N = 8 }; // input rows per fused product
// 0 when the environment sets CTUNE_CPU_NO_SIMD (tests run the portable kernels that way).
int ct_cpu_simd_enabled(void);
// Floats of scratch for ct_cpu_affine_prepare with N input rows.
size_t ct_cpu_affine_scratch_floats(const ct_weight *w, int64_t N);
// inp (N, w.cols), N <= CT_CPU_QDOT_MAX_N -> scratch (the input as the fused kernel reads it, and group sums)
void ct_cpu_affine_prepare(const ct_weight *w, const float *inp, int64_t N, float *scratch);
// out (N, w.rows) columns [o0, o1) = inp . deq(W)^T, fused (no dequantized row is written)
void ct_cpu_affine_matvec(const ct_weight *w, const float *scratch, int64_t N, int64_t o0, int64_t o1, float *out);
// rows [r0, r0+n) of deq(W) -> dst (n, w.cols)
void ct_cpu_affine_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst);

void ct_cpu_embedding_forward(ct_backend *be, float *out, const int32_t *ids, const ct_weight *w, int64_t n);
void ct_cpu_embedding_backward(ct_backend *be, float *dw, const float *dout, const int32_t *ids, int64_t n, int C);
void ct_cpu_rmsnorm_forward(ct_backend *be, float *out, float *rstd, const float *inp, const float *weight, int64_t N,
                            int C, float eps, float w_offset);
void ct_cpu_rmsnorm_backward(ct_backend *be, float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int64_t N, int C, float w_offset);
void ct_cpu_rope_forward(ct_backend *be, float *out, const float *x, const float *inv_freq, float attn_scaling, int B,
                         int T, int H, int D, int rot_dims, int pos_offset);
void ct_cpu_rope_backward(ct_backend *be, float *dx, const float *dout, const float *inv_freq, float attn_scaling,
                          int B, int T, int H, int D, int rot_dims, int pos_offset);
void ct_cpu_attention_forward(ct_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                              const ct_attn_params *p);
void ct_cpu_attention_backward(ct_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               const ct_attn_params *p);
void ct_cpu_glu_forward(ct_backend *be, float *out, const float *gate, const float *up, int64_t n, ct_glu_act act);
void ct_cpu_glu_backward(ct_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n, ct_glu_act act);
void ct_cpu_linear_forward(ct_backend *be, float *out, const float *inp, const ct_weight *w, const float *bias,
                           int64_t N);
void ct_cpu_linear_backward(ct_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const ct_weight *w, int64_t N);
void ct_cpu_add(ct_backend *be, float *out, const float *a, const float *b, int64_t n);
void ct_cpu_scale(ct_backend *be, float *x, float s, int64_t n);
void ct_cpu_softmax_forward(ct_backend *be, float *out, const float *inp, int64_t N, int V, int log);
void ct_cpu_softcap_forward(ct_backend *be, float *out, const float *inp, float cap, int64_t n);
void ct_cpu_softcap_backward(ct_backend *be, float *dinp, const float *dout, const float *out, float cap, int64_t n);
void ct_cpu_cross_entropy_forward(ct_backend *be, float *loss, const float *logits, const int32_t *targets,
                                  const float *mask, int64_t N, int V);
void ct_cpu_cross_entropy_backward(ct_backend *be, float *dlogits, float dloss, const float *logits,
                                   const int32_t *targets, const float *mask, int64_t N, int V);
void ct_cpu_gather_cols(ct_backend *be, float *out, const float *inp, const int32_t *idx, int64_t N, int V, int k);
void ct_cpu_scatter_add_cols(ct_backend *be, float *dinp, const float *dout, const int32_t *idx, int64_t N, int V,
                             int k);
void ct_cpu_divergence_forward(ct_backend *be, float *out, const float *logits_q, const float *logits_p, int64_t N,
                               int V, float tau, int js);
void ct_cpu_divergence_backward(ct_backend *be, float *dlogits_q, const float *dout, const float *logits_q,
                                const float *logits_p, int64_t N, int V, float tau, int js);

#endif
