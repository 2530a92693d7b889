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

// Converts rows [r0, r0+n) of w to f32: dst (n, w.cols).
void ct_cpu_weight_rows(const ct_weight *w, int64_t r0, int64_t n, float *dst);

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
void ct_cpu_divergence_forward(ct_backend *be, float *out, const float *logits_q, const float *logits_p, int64_t N,
                               int V, float tau, int js);
void ct_cpu_divergence_backward(ct_backend *be, float *dlogits_q, const float *dout, const float *logits_q,
                                const float *logits_p, int64_t N, int V, float tau, int js);

#endif
