// dwq.h: distilled weight quantization, `ctune quant dwq` (mlx_lm.dwq's job):
// a quantized student learns its quantization scales and biases, and its
// norm weights, by distillation from the dense teacher it was made from.
//
// The student is the round-to-nearest quantization of the teacher (or an
// existing MLX-quantized folder). Its codes stay fixed; the scales and biases
// of every module quantized with fewer than 8 bits (the layer linears, the
// embedding, an untied head) and the norm weights train, as fp32 master
// copies, with Adam (bias correction) over one pass of the calibration
// sequences. The loss of a batch is the mean over its positions t with
// t + 1 < length of KL(softmax(teacher / tau) || softmax(student / tau)), over
// the full vocabulary or the teacher's top-k logits (student renormalised
// over the same k). Each forward uses the dequantized student weights
// s*q + b with s, b cast to the output dtype (straight-through: the gradient
// goes to the fp32 masters), recomputed after every step, so the written
// folder computes exactly the logits the student had in memory.
//
// Every trainable gradient lives in one flat fp32 buffer (a data-parallel
// all-reduce goes right after the backward). CPU backend.
#ifndef CTUNE_DWQ_H
#define CTUNE_DWQ_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/convert.h"
#include "ctune/error.h"
#include "ctune/gptq.h"

typedef struct ct_dwq_opts {
    const char *model;           // teacher: a dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3)
    const char *quantized_model; // student folder (MLX-quantized); NULL: RTN of the teacher at bits/group_size
    const char *mlx_path;        // output folder; must not exist
    int bits, group_size;        // the RTN student (4, 64)
    ct_calib_opts calib;         // data; num_samples training sequences (2048; -1 all) plus up to 32
                                 // for validation; sequence_length = --max-seq-length (1025); seed (123)
    double learning_rate;        // 1e-6
    int batch_size;              // 4
    bool grad_checkpoint;
    float temperature;           // 2.0
    int top_k;                   // 1024; 0 = the full vocabulary
    const char *dtype;           // scales, biases and norms of the output (NULL: config.json's torch_dtype)
    int steps_per_report;        // 0: 20
    int steps_per_eval;          // 0: 200
} ct_dwq_opts;

typedef struct ct_dwq_stats {
    int n_train, n_valid;        // sequences
    int steps;
    int64_t tokens;              // trained positions
    int64_t n_trainable;         // parameters
    double initial_valid_loss, final_valid_loss;
    double seconds;              // training time
    ct_convert_stats convert;
} ct_dwq_stats;

// Runs the whole job and writes an MLX folder through ct_convert (the
// student's layout, learned scales/biases and norms in the dtype). stats may be NULL.
ct_status ct_dwq(const ct_dwq_opts *o, ct_dwq_stats *stats, ct_error *err);

#endif
