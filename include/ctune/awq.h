// awq.h: activation-aware weight quantization (AWQ, Lin et al. 2023):
// `ctune quant awq`, mlx_lm.awq's job, into MLX's affine format.
//
// Per decoder layer, a per-input-channel scale s is folded into the float
// weights before round-to-nearest: the op feeding a group of linears is
// divided by s (input_layernorm's weight for q/k/v, up_proj's rows for
// down_proj, post_attention_layernorm's weight for gate/up) and the linears'
// columns are multiplied by it, which leaves the float layer unchanged but
// lets channels with large activations keep more precision. s is
// xbar^alpha (xbar = mean |x| per input channel over the calibration tokens),
// alpha chosen on a grid by the output error of the quantized sub-block. Then
// each weight group is clipped to the range that minimises its quantized
// partial output error (not q_proj / k_proj), and the layer is quantized.
#ifndef CTUNE_AWQ_H
#define CTUNE_AWQ_H

#include <stdint.h>

#include "ctune/convert.h"
#include "ctune/dtype.h"
#include "ctune/error.h"
#include "ctune/gptq.h"
#include "ctune/model.h"

// ---- the whole model (src/quant/awq.c)

typedef struct ct_awq_opts {
    const char *model;     // a dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3)
    const char *mlx_path;  // output folder; must not exist
    int bits, group_size;  // the layer linears (AWQ); every linear's input must be a multiple of group_size
    int embed_bits, embed_group_size; // model.embed_tokens and an untied lm_head (RTN)
    int n_grid;            // scale candidates alpha = 0, 1/n, ..., (n-1)/n; clip candidates floor(n/2)
    ct_calib_opts calib;
    const char *dtype;     // as ct_convert_opts.dtype (NULL: config.json's torch_dtype)
    int batch_size;        // calibration sequences per forward (0: 8)
} ct_awq_opts;

typedef struct ct_awq_stats {
    int n_sequences;       // calibration sequences used
    int n_layers;          // decoder layers quantized
    int n_fallback;        // of which fell back to plain RTN (AWQ did not lower their output error)
    double mean_ratio;     // mean over layers of AWQ's output error / RTN's (the kept weights')
    ct_convert_stats convert;
} ct_awq_stats;

// The embedding is quantized first (embed_bits / embed_group_size) and its
// rows are the calibration hidden states. Layer by layer: the float layer's
// output and its linears' inputs are recorded; scales are searched and
// folded for the three groups (q/k/v, down, gate/up), weights clipped, the
// layer quantized; if its output error is above plain RTN's, plain RTN is
// kept. The next layer's input is the float output. Memory: the model and
// one layer's calibration activations. Writes an MLX folder with ct_convert
// (top-level bits/group_size, an override for the embedding and lm_head,
// the rescaled norm weights).
ct_status ct_awq(const ct_awq_opts *o, ct_awq_stats *stats, ct_error *err);

// ---- the pieces (src/quant/awq.c)

// x (N, C) -> xbar (C): the mean over rows of |x|.
void ct_awq_mean_abs(const float *x, int64_t N, int64_t C, float *xbar);
// The scale candidate of ratio alpha: s = max(xbar^alpha, 1e-4), divided by
// sqrt(max(s) * min(s)). xbar (C) -> s (C).
void ct_awq_grid_scale(const float *xbar, int64_t C, double alpha, float *s);
// Q(W diag(s)) diag(s)^-1 with Q MLX's affine quantize-dequantize (scales and
// biases stored as sb): w (rows, in) -> out (rows, in). s (in) NULL: Q(W).
ct_status ct_awq_fake_quant(const float *w, int64_t rows, int64_t in, const float *s, int bits, int group_size,
                            ct_dtype sb, float *out, ct_error *err);

// The output error of one scale candidate s (C); set *loss (NaN is never kept).
typedef ct_status (*ct_awq_loss_fn)(void *ctx, const float *s, double *loss, ct_error *err);
// Tries ct_awq_grid_scale(xbar, C, r / n_grid) for r = 0 .. n_grid-1 (r = 0
// is plain RTN) and keeps the first lowest loss: -> best (C), *best_loss.
ct_status ct_awq_search_scale(const float *xbar, int64_t C, int n_grid, ct_awq_loss_fn loss, void *ctx, float *best,
                              double *best_loss, ct_error *err);

// mlx-lm's clip search. x (N, in): the linear's inputs, of which at most 512
// rows are used (every ceil(N/512)-th). For each row o and group g of w
// (rows, in), tries w_max = p * max|w[o, g]| for p = 1 - i/n_grid,
// i = 0 .. floor(n_grid/2)-1, and keeps the one whose quantized partial
// output sum_k x[b, g, k] Q(clip(w, +-w_max))[o, g, k] has the lowest mean
// squared error over the rows b (p = 1 first; ties keep the larger); w is
// clipped to it in place.
ct_status ct_awq_clip(float *w, int64_t rows, int64_t in, const float *x, int64_t N, int bits, int group_size,
                      ct_dtype sb, int n_grid, ct_error *err);

// The scale groups of a llama-family layer: the op whose output s divides,
// and the linears whose columns it multiplies.
typedef enum ct_awq_group {
    CT_AWQ_QKV = 0,  // input_layernorm -> q_proj, k_proj, v_proj
    CT_AWQ_DOWN,     // up_proj (rows) -> down_proj
    CT_AWQ_GATE_UP,  // post_attention_layernorm -> gate_proj, up_proj
    CT_AWQ_N_GROUPS
} ct_awq_group;

// One decoder layer of a loaded model as AWQ works on it: host f32 copies of
// its linears and norms (rounded to the output dtype sb), which the model
// uses (as f32 device buffers) from ct_awq_layer_open to ct_awq_layer_close.
typedef struct ct_awq_layer {
    ct_model *m;
    int l;
    float *w[CT_LIN_COUNT];       // (rows, in) host
    int64_t rows[CT_LIN_COUNT], in[CT_LIN_COUNT];
    float *attn_norm, *ffn_norm;  // (C) host
    // private
    void *dev[CT_LIN_COUNT];
    ct_weight own[CT_LIN_COUNT];  // the model's weights, restored at close
    float *norm0[2];              // the model's norm values, restored at close
} ct_awq_layer;

// Fails on a quantized layer ("already quantized").
ct_status ct_awq_layer_open(ct_awq_layer *L, ct_model *m, int l, ct_dtype sb, ct_error *err);
// The model computes with values (rows, in) for linear id (AWQ's trials).
void ct_awq_layer_set(ct_awq_layer *L, ct_linear_id id, const float *values);
// The model computes with L's current w and norms.
void ct_awq_layer_sync(ct_awq_layer *L);
// The model gets its own weights and norm values back.
void ct_awq_layer_close(ct_awq_layer *L);
// Folds s (the group's input width) into L: the previous op's output is
// divided by s and the group's linears' columns multiplied by it. In exact
// arithmetic the layer's output does not change. Host values only (sync after).
void ct_awq_fold_scale(ct_awq_layer *L, ct_awq_group g, const float *s);

#endif
