// backend.h: the ops interface. The model and the trainer are written once
// against a ct_backend (a table of functions); each backend (CPU now, CUDA
// next) implements every op. Buffers are "device pointers": model code gets
// them from be->alloc, fills them with be->upload, reads them with
// be->download, and never dereferences them itself.
//
// Conventions (llm.c style): activations are flat row-major fp32 buffers with
// their shapes in the comment of each op; B batch, T positions, C channels,
// H query heads, KVH key/value heads, D head size, V vocabulary. Every
// *_backward ACCUMULATES (+=) into its gradient outputs; the caller zeroes
// them. A gradient output passed as NULL is not computed.
#ifndef CTUNE_BACKEND_H
#define CTUNE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ctune/dtype.h"
#include "ctune/error.h"

// A weight matrix W (rows=out, cols=in), stored dense (dtype F32, F16 or
// BF16; data is (rows, cols)) or MLX affine-quantized (bits > 0: data is u32
// (rows, cols*bits/32), scales and biases (rows, cols/group_size) of dtype).
// All pointers are device pointers.
typedef struct ct_weight {
    int64_t rows, cols;
    ct_dtype dtype; // dense element type, or the scales/biases type when bits > 0
    int bits;       // 0 = dense; 2,3,4,5,6,8 = affine quantized
    int group_size;
    const void *data;
    const void *scales, *biases;
} ct_weight;

typedef enum ct_glu_act {
    CT_GLU_SILU,      // SwiGLU (llama, qwen): silu(gate) * up
    CT_GLU_GELU_TANH, // GeGLU (gemma): gelu_tanh(gate) * up
} ct_glu_act;

// Causal attention of T queries at positions [pos_offset, pos_offset+T) over
// keys at [0, pos_offset+T) (a KV cache): q/out (B, T, H, D); k, v
// (B, kv_stride, KVH, D) of which rows [0, pos_offset+T) are used. Query head
// h reads kv head h / (H/KVH). A query at p sees key j when j <= p and, with
// a window w > 0, p - j < w. scores = scale * q.k, then softcap*tanh(s/softcap)
// when softcap > 0.
typedef struct ct_attn_params {
    int B, T, H, KVH, D;
    int pos_offset;
    int kv_stride;
    float scale;
    int window;    // 0 = no sliding window
    float softcap; // 0 = no soft-capping
} ct_attn_params;

typedef struct ct_backend ct_backend;
struct ct_backend {
    const char *name;
    void *ctx; // backend-private state (handles, streams, scratch)

    // ---- memory
    ct_status (*alloc)(ct_backend *be, size_t bytes, void **out, ct_error *err); // zero-filled
    void (*free)(ct_backend *be, void *p);
    void (*upload)(ct_backend *be, void *dst, const void *src, size_t bytes);   // host -> device
    void (*download)(ct_backend *be, void *dst, const void *src, size_t bytes); // device -> host
    void (*copy)(ct_backend *be, void *dst, const void *src, size_t bytes);     // device -> device
    void (*zero)(ct_backend *be, void *p, size_t bytes);

    // ---- forward
    // ids (n) in [0, w.rows), w (V, C) any format -> out (n, C)
    void (*embedding_forward)(ct_backend *be, float *out, const int32_t *ids, const ct_weight *w, int64_t n);
    // inp (N, C), weight (C) -> out (N, C), rstd (N) (may be NULL).
    // out = inp * rstd * (weight + w_offset), rstd = 1/sqrt(mean(inp^2) + eps); w_offset 1 is Gemma's (1+w)
    void (*rmsnorm_forward)(ct_backend *be, float *out, float *rstd, const float *inp, const float *weight,
                            int64_t N, int C, float eps, float w_offset);
    // x (B, T, H, D) -> out (B, T, H, D), may alias. Rotate-half (HF / mlx
    // traditional=False) on the first rot_dims of each head; the rest pass
    // through. angle(t, i) = (pos_offset + t) * inv_freq[i], i < rot_dims/2;
    // cos and sin are multiplied by attn_scaling (yarn, longrope; else 1).
    void (*rope_forward)(ct_backend *be, float *out, const float *x, const float *inv_freq, float attn_scaling,
                         int B, int T, int H, int D, int rot_dims, int pos_offset);
    // see ct_attn_params -> out (B, T, H, D), lse (B, H, T) (log-sum-exp of each score row, for backward; may be NULL)
    void (*attention_forward)(ct_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                              const ct_attn_params *p);
    // gate (n), up (n) -> out (n) = act(gate) * up
    void (*glu_forward)(ct_backend *be, float *out, const float *gate, const float *up, int64_t n, ct_glu_act act);
    // inp (N, w.cols), w (w.rows, w.cols), bias (w.rows) or NULL -> out (N, w.rows) = inp . W^T + bias
    void (*linear_forward)(ct_backend *be, float *out, const float *inp, const ct_weight *w, const float *bias,
                           int64_t N);
    // out (n) = a + b (out may alias a or b)
    void (*add)(ct_backend *be, float *out, const float *a, const float *b, int64_t n);
    // x (n) *= s
    void (*scale)(ct_backend *be, float *x, float s, int64_t n);
    // inp (N, V) -> out (N, V): softmax, or log-softmax when log != 0
    void (*softmax_forward)(ct_backend *be, float *out, const float *inp, int64_t N, int V, int log);
    // inp (n) -> out (n) = cap * tanh(inp / cap) (Gemma 2 final logits)
    void (*softcap_forward)(ct_backend *be, float *out, const float *inp, float cap, int64_t n);
    // logits (N, V), targets (N), mask (N) (1 = supervised, NULL = all) -> loss[0] =
    // sum over masked rows of (logsumexp(row) - row[target]) / count (0 when count is 0)
    void (*cross_entropy_forward)(ct_backend *be, float *loss, const float *logits, const int32_t *targets,
                                  const float *mask, int64_t N, int V);
    // KL(p||q) per row with temperature tau: p = softmax(logits_p/tau), q = softmax(logits_q/tau);
    // logits_q, logits_p (N, V) -> out (N). js != 0: Jensen-Shannon 1/2 KL(p||m) + 1/2 KL(q||m), m = (p+q)/2.
    void (*divergence_forward)(ct_backend *be, float *out, const float *logits_q, const float *logits_p, int64_t N,
                               int V, float tau, int js);
    // inp (N, V), idx (N, k) in [0, V) -> out (N, k) = inp[n, idx[n, j]] (a row's top-k support)
    void (*gather_cols)(ct_backend *be, float *out, const float *inp, const int32_t *idx, int64_t N, int V, int k);

    // ---- backward (accumulate into d*; a NULL gradient output is skipped)
    // dw (V, C) += scatter of dout (n, C) at ids (n)
    void (*embedding_backward)(ct_backend *be, float *dw, const float *dout, const int32_t *ids, int64_t n, int C);
    // dinp (N, C), dweight (C) from dout (N, C), inp, weight, rstd (N) of the forward
    void (*rmsnorm_backward)(ct_backend *be, float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int64_t N, int C, float w_offset);
    // dx (B, T, H, D) += R^T dout (the inverse rotation)
    void (*rope_backward)(ct_backend *be, float *dx, const float *dout, const float *inv_freq, float attn_scaling,
                          int B, int T, int H, int D, int rot_dims, int pos_offset);
    // dq (B, T, H, D), dk, dv (B, kv_stride, KVH, D) from dout (B, T, H, D) and the forward's q, k, v, out, lse
    void (*attention_backward)(ct_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               const ct_attn_params *p);
    void (*glu_backward)(ct_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n, ct_glu_act act);
    // dinp (N, w.cols) += dout . W (any format); dweight (w.rows, w.cols) f32 += dout^T . inp;
    // dbias (w.rows) += column sums of dout (N, w.rows)
    void (*linear_backward)(ct_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const ct_weight *w, int64_t N);
    // dinp (n) += dout * (1 - (out/cap)^2), out the forward's output
    void (*softcap_backward)(ct_backend *be, float *dinp, const float *dout, const float *out, float cap, int64_t n);
    // dlogits (N, V) += dloss * d(loss)/d(logits) for cross_entropy_forward's loss
    void (*cross_entropy_backward)(ct_backend *be, float *dlogits, float dloss, const float *logits,
                                   const int32_t *targets, const float *mask, int64_t N, int V);
    // dinp (N, V) += scatter of dout (N, k) at idx (N, k) (gather_cols' backward)
    void (*scatter_add_cols)(ct_backend *be, float *dinp, const float *dout, const int32_t *idx, int64_t N, int V,
                             int k);
    // dlogits_q (N, V) += dout (N) * d(out)/d(logits_q) (the target p is a constant, as in mlx-lm)
    void (*divergence_backward)(ct_backend *be, float *dlogits_q, const float *dout, const float *logits_q,
                                const float *logits_p, int64_t N, int V, float tau, int js);
};

// The CPU backend: fp32 compute, OpenBLAS sgemm, OpenMP threads (OMP_NUM_THREADS).
ct_status ct_backend_cpu_create(ct_backend **out, ct_error *err);
void ct_backend_destroy(ct_backend *be);

// Bytes of a weight's data, scales and biases buffers (scales/biases 0 when dense).
size_t ct_weight_data_bytes(const ct_weight *w);
size_t ct_weight_scales_bytes(const ct_weight *w);

#endif
