// gptq.h: post-training quantization with calibration data: `ctune quant
// gptq` (mlx_lm.gptq's job, with the textbook block update) into MLX's affine
// format, and the calibration token sequences it (and AWQ) runs.
//
// GPTQ (Frantar et al. 2022) quantizes a linear W (out, in) column by column,
// compensating each column's rounding error on the columns not yet quantized
// through the inverse Hessian of the layer's squared output error,
// H = sum over calibration tokens of x^T x (in, in). The columns are cut into
// blocks of group_size; each block's MLX scale and bias per row come from the
// error-compensated weights of that block (min-max, MLX's rounding rule), or,
// with act-order, from the original weights of each group.
#ifndef CTUNE_GPTQ_H
#define CTUNE_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/convert.h"
#include "ctune/dtype.h"
#include "ctune/error.h"
#include "ctune/tokenizer.h"

// ---- calibration data (src/quant/calib.c)

typedef struct ct_calib_opts {
    const char *data;    // a UTF-8 text file, a .jsonl/.json dataset file, or a
                         // dataset folder (its train.jsonl); required
    int num_samples;     // sequences kept after shuffling; -1 = all
    int sequence_length; // tokens per sequence
    uint64_t seed;       // row shuffle
} ct_calib_opts;

// Tokenizes the data (text: one encode with the tokenizer's specials; dataset
// records: as `ctune lora` encodes text/chat/completions records, joined),
// drops the tail that does not fill a sequence, shuffles the sequences
// (seeded) and keeps num_samples. *ids (n_seq, sequence_length) is malloc'd.
// Fails on empty data and on data shorter than one sequence.
ct_status ct_calib_load(ct_tokenizer *tok, const ct_calib_opts *o, int32_t **ids, int *n_seq, ct_error *err);

// ---- one layer (src/quant/gptq.c)

// w (rows, in) f32: in, the weight; out, the quantized weight s*q + b.
// H (in, in) f64 (row-major; its upper triangle is read): sum of x^T x over
// calibration rows; destroyed. Damping 0.01 * mean(diag H) is added; columns
// with H[i,i] == 0 (never active) are zeroed. Scales and biases are rounded to
// sb (F32, F16 or BF16) before codes are chosen, so w's output is exactly what
// the stored model computes. act_order ("static groups"): every group's scale
// and bias come from the original weights up front, then the columns are
// quantized in order of decreasing H[i,i] (ties in column order) with their
// own group's parameters; the results are in the original column order, so
// the MLX format needs no permutation. Without it, the columns go in order
// and each group's parameters come from its error-compensated weights.
// -> codes (rows, in) in [0, 2^bits - 1]; scales, biases (rows,
// in/group_size) f32 holding sb's values.
ct_status ct_gptq_quantize_layer(float *w, double *H, int64_t rows, int64_t in, int bits, int group_size,
                                 ct_dtype sb, bool act_order, uint8_t *codes, float *scales, float *biases,
                                 ct_error *err);

// codes (rows, in) -> wq (rows, in*bits/32): MLX's LSB-first packing.
void ct_gptq_pack_codes(const uint8_t *codes, int64_t rows, int64_t in, int bits, uint32_t *wq);

// ---- a whole model (src/quant/gptq.c)

typedef struct ct_gptq_opts {
    const char *model;       // a dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3)
    const char *mlx_path;    // output folder; must not exist
    int bits, group_size;    // the layer linears (GPTQ)
    int fallback_bits, fallback_group_size; // embeddings and lm_head (RTN)
    ct_calib_opts calib;
    const char *dtype;       // as ct_convert_opts.dtype (NULL: config.json's torch_dtype)
    int batch_size;          // calibration sequences per forward (0: 8)
    bool act_order;          // columns by decreasing H[i,i], static groups (see ct_gptq_quantize_layer)
} ct_gptq_opts;

typedef struct ct_gptq_stats {
    int n_sequences;         // calibration sequences used
    int n_gptq;              // linears quantized with GPTQ
    ct_convert_stats convert;
} ct_gptq_stats;

// Block by block: the calibration hidden states go through decoder layer l
// with its float weights while the inputs of its linears are summed into
// their H; the seven linears are quantized; the same states go through the
// quantized layer and become layer l+1's inputs (so later layers see the
// quantization errors of earlier ones, as in the GPTQ paper; mlx-lm feeds
// float outputs). Memory: the model, its quantized linears, and the hidden
// states (n_seq, T, C) of one block. Writes an MLX folder with ct_convert.
ct_status ct_gptq(const ct_gptq_opts *o, ct_gptq_stats *stats, ct_error *err);

#endif
