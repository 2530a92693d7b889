// fuse.h: `ctune fuse` (mlx_lm.fuse's job) and the exports that take a
// fine-tuned model to where users deploy it.
//
// ct_fuse loads a model (Hugging Face / MLX folder, dense or MLX-quantized,
// or a .gguf file), applies a LoRA or DoRA adapter folder (mlx-lm's or
// PEFT's layout), folds every adapter into its base weight with
// ct_adapter_fuse, and writes the model as an MLX / Hugging Face folder
// through ct_convert (same layout, config.json, tokenizer files, shards):
//   dense base      W' keeps the base's dtype;
//   MLX-quantized   W' is re-quantized with the module's bits and group size
//                   (config.json keeps its quantization block), or with
//                   dequantize every module becomes dense in its scales' dtype;
//   GGUF base       treated as its de-quantized dense weights (as convert
//                   does): every tensor, fused or not, is written as float16.
// Each fused module's ct_fuse_report says how much of the adapter's delta the
// stored weight lost (re-quantization, or rounding to f16/bf16).
//
// Optional exports: a GGUF v3 file of the fused model (ct_gguf_export, into
// the output folder before it is renamed into place) and the adapters in
// PEFT's layout (ct_adapter_save_peft). Output folders appear whole or not at all.
#ifndef CTUNE_FUSE_H
#define CTUNE_FUSE_H

#include <stdbool.h>

#include "ctune/adapter.h"
#include "ctune/convert.h"
#include "ctune/error.h"
#include "ctune/ggml_quants.h"

// ---- GGUF export (src/quant/gguf_export.c)

typedef struct ct_gguf_export_opts {
    const char *model_dir;      // dense HF folder: config.json, *.safetensors, tokenizer files
    const char *path;           // output .gguf (written atomically)
    ct_ggml_type type;          // 2-D weights: F16, BF16, F32, Q8_0 or Q4_0 (rows not a multiple of 32: F16);
                                // 1-D tensors (norms, biases) are always F32
    const char *tokenizer_gguf; // a .gguf whose tokenizer.* keys are copied, or NULL: from
                                // model_dir's tokenizer.json (byte-level BPE) and tokenizer_config.json
} ct_gguf_export_opts;

// Writes model_dir as a llama.cpp GGUF: architecture llama (llama and
// mistral; q/k rows permuted to llama.cpp's RoPE order), qwen2 or qwen3,
// llama.cpp's tensor names ("blk.N.attn_q.weight", "token_embd.weight", ...)
// and metadata keys ("<arch>.block_count", ..., "tokenizer.ggml.*",
// "tokenizer.chat_template"). Errors: quantized or unsupported model, a
// tensor without a llama.cpp name, a tokenizer that is not byte-level BPE.
ct_status ct_gguf_export(const ct_gguf_export_opts *o, ct_error *err);

// "f16", "bf16", "f32", "q8_0", "q4_0" (any case) -> type; false if unknown.
bool ct_gguf_export_type_parse(const char *name, ct_ggml_type *out);

// ---- fuse (src/quant/fuse.c)

typedef struct ct_fuse_opts {
    const char *model;        // folder or .gguf
    const char *adapter_path; // mlx-lm or PEFT adapter folder
    const char *save_path;    // output folder; must not exist
    bool dequantize;          // MLX-quantized base: write every module dense
    bool export_gguf;
    const char *gguf_path;    // relative: inside save_path (default "ggml-model-f16.gguf")
    const char *gguf_type;    // "f16" (NULL: default), "bf16", "f32", "q8_0", "q4_0"
    const char *export_peft;  // folder for a PEFT copy of the adapters, or NULL
    double lost_threshold;    // a module "loses" its delta above this (0: 0.5)
} ct_fuse_opts;

typedef struct ct_fuse_module {
    char *path;               // "model.layers.1.self_attn.q_proj"
    ct_fuse_report report;
    bool lost;                // report.lost > threshold
} ct_fuse_module;

typedef struct ct_fuse_result {
    int n_modules;            // fused
    ct_fuse_module *modules;  // [n_modules]
    int n_lost;               // modules whose delta was mostly lost
    bool requantized;         // stored re-quantized (else rounded to a float dtype)
    ct_convert_stats stats;   // of the written folder
} ct_fuse_result;
void ct_fuse_result_free(ct_fuse_result *r);

// Runs the whole fuse (and exports). res may be NULL. Progress and INFO lines
// go to the log; the caller reports res (the lost-delta warning).
ct_status ct_fuse(const ct_fuse_opts *o, ct_fuse_result *res, ct_error *err);

#endif
