// dynamic_quant.h: `ctune quant dynamic` (mlx_lm.dynamic_quant's job): mixed
// precision for a target bits per weight. Every module mlx-lm can quantize
// gets either a low (bits, group size) or a high one; which ones get the high
// setting comes from per-module sensitivities estimated on calibration data:
//
//   student = the model with every candidate weight replaced by
//             W_low = dequantize(quantize(W, low)) (RTN);
//   loss    = mean over positions of KL(p_teacher || q_student);
//   g       = mean over batches of d loss / d W_low;
//   sensitivity = sum(g * (W_low - W_high)) / (numel(W) / 1e6),
//
// a first-order estimate of the loss removed by giving that module the high
// setting, per million weights. A threshold tau is then found by bisection
// (as mlx-lm: between the smallest and largest sensitivity, tolerance
// 1e-3 (max - min)) so that modules with sensitivity > tau at the high
// setting and the rest at the low one reach the target bits per weight; the
// bits per weight are computed arithmetically from the tensor shapes, as
// mlx-lm's compute_bits_per_weight measures the model it would save.
// The output is an MLX folder written by ct_convert: the top-level
// quantization block holds the low setting, each high module an override.
#ifndef CTUNE_DYNAMIC_QUANT_H
#define CTUNE_DYNAMIC_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/convert.h"
#include "ctune/dtype.h"
#include "ctune/error.h"
#include "ctune/gptq.h"
#include "ctune/model.h"

// One quantization setting (MLX affine).
typedef struct ct_dq_setting {
    int bits;       // 2, 3, 4, 5, 6, 8
    int group_size; // 32, 64, 128
} ct_dq_setting;

// ---- the candidate modules of a model and the size of its output

typedef struct ct_dq_layout {
    int n;                 // candidate modules, in the source's tensor-name order
    char **paths;          // [n] "model.embed_tokens", "model.layers.0.mlp.down_proj", ...
    int64_t *rows, *in;    // [n] weight shape (rows, in)
    ct_dtype *sb;          // [n] output type of its scales/biases (and of its weight if left dense)
    uint64_t fixed_bytes;  // bytes of every other output tensor (norms, biases, integers)
    uint64_t fixed_params; // their elements
} ct_dq_layout;

// Reads the tensor list of a dense Hugging Face / MLX folder (no data is
// read). Tensors are typed as ct_convert writes them: dtype ("float16",
// "bfloat16", "float32"), else config.json's torch_dtype, else each its own.
// A tied lm_head.weight and rotary inv_freq buffers are dropped, as convert
// drops them. Fails on an already-quantized model.
ct_status ct_dq_layout_load(ct_dq_layout *lay, const char *model_dir, const char *dtype, ct_error *err);
void ct_dq_layout_free(ct_dq_layout *lay);
// Index of a module path, or -1.
int ct_dq_layout_find(const ct_dq_layout *lay, const char *path);

// The setting module i gets: quantized iff its in is a multiple of the group size.
ct_quant_spec ct_dq_module_spec(const ct_dq_layout *lay, int i, bool high, ct_dq_setting lo, ct_dq_setting hi);

// Bits per weight of the output when module i is at hi if high[i], else at lo:
// 8 * (all bytes) / (logical parameters), a quantized weight counting
// rows*in parameters (mlx-lm's compute_bits_per_weight; equals ct_convert's
// stats.bits_per_weight for the same choice).
double ct_dq_bpw(const ct_dq_layout *lay, const bool *high, ct_dq_setting lo, ct_dq_setting hi);

// ---- the threshold

typedef struct ct_dq_split {
    double threshold; // tau: modules with sensitivity > tau get the high setting
    double bpw;       // bits per weight at tau
    int n_high;
} ct_dq_split;

// Fails unless target_bpw lies between the all-low and all-high bits per
// weight of lay (checked before any sensitivity is estimated).
ct_status ct_dq_check_target(const ct_dq_layout *lay, double target_bpw, ct_dq_setting lo, ct_dq_setting hi,
                             ct_error *err);
// Bisection on tau between min and max of sens (n = lay->n), as mlx-lm's
// estimate_threshold (tolerance 1e-3 (max - min)), answering the upper end of
// the final bracket (bpw <= target; mlx-lm answers its midpoint). A target below the all-low bits per weight or above
// the all-high one is an error that names the reachable range.
ct_status ct_dq_threshold(const ct_dq_layout *lay, const double *sens, double target_bpw, ct_dq_setting lo,
                          ct_dq_setting hi, ct_dq_split *out, ct_error *err);

// ---- the sensitivities file: mlx-lm's JSON, [[module path, value], ...]

// Writes sens (one per layout module) to path atomically.
ct_status ct_dq_sens_save(const char *path, const ct_dq_layout *lay, const double *sens, ct_error *err);
// Reads path into sens (lay->n, in layout order). Errors name the file and the
// entry: not a [string, number] pair, a non-finite value, an unknown module,
// a duplicate, or a candidate module with no entry.
ct_status ct_dq_sens_load(const char *path, const ct_dq_layout *lay, double *sens, ct_error *err);
// mlx-lm's file name: "<model with '/' -> '_'>_sensitivities.json" (in the
// current directory) into out (size n).
void ct_dq_sens_default_path(const char *model, char *out, size_t n);

// ---- the sensitivities

// The KL sensitivity of every layout module, estimated on ids (n_seq, T)
// in batches of batch_size: see the top of this file. m is the dense model
// the layout was read from (llama, mistral, qwen2, qwen3); its weights are
// restored on return. W_low and W_high are computed from the weights rounded
// to the output type, with scales of that type (so W_low is exactly what a
// low module of the output holds). sens (lay->n) receives the values.
ct_status ct_dq_sensitivities(ct_model *m, const ct_dq_layout *lay, const int32_t *ids, int n_seq, int T,
                              int batch_size, ct_dq_setting lo, ct_dq_setting hi, double *sens, ct_error *err);

// ---- the whole job

typedef struct ct_dq_opts {
    const char *model;         // a dense Hugging Face / MLX folder
    const char *mlx_path;      // output folder; must not exist
    const char *sensitivities; // a file to reuse (NULL: estimate, and save to sens_out)
    const char *sens_out;      // where estimated sensitivities go (NULL: ct_dq_sens_default_path)
    double target_bpw;
    ct_dq_setting low, high;
    ct_calib_opts calib;       // needed unless sensitivities are given and report_ppl is off
    int batch_size;            // sequences per sensitivity batch (0: 4)
    const char *dtype;         // as ct_convert_opts.dtype
    bool report_ppl;           // perplexity on the calibration data before and after
    bool grad_checkpoint;
} ct_dq_opts;

typedef struct ct_dq_stats {
    int n_sequences;           // calibration sequences (0 when none were loaded)
    char sens_path[4096];      // the file written ("" when the sensitivities were given)
    ct_dq_split split;
    int n_modules;
    double ppl_before, ppl_after; // NAN unless report_ppl
    ct_convert_stats convert;
} ct_dq_stats;

ct_status ct_dynamic_quant(const ct_dq_opts *o, ct_dq_stats *stats, ct_error *err);

#endif
