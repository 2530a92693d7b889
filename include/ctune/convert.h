// convert.h: `ctune convert` (mlx_lm.convert's job) and round-to-nearest (RTN)
// quantization in MLX's affine format.
//
// A model (a Hugging Face folder, an MLX-quantized folder, or a .gguf file of a
// llama/mistral/qwen2/qwen3 model) is read, its floating tensors cast to the
// chosen dtype, optionally quantized (RTN, bit-exact with mlx.core.quantize) or
// de-quantized, and written as an MLX folder exactly as mlx_lm.convert lays it
// out: model.safetensors (shards of at most 5 GiB above that) plus
// model.safetensors.index.json, config.json with the "quantization" and
// "quantization_config" blocks, tokenizer files, generation_config.json and a
// README.md model card. The folder appears in one rename: nothing is left at
// the output path on failure.
#ifndef CTUNE_CONVERT_H
#define CTUNE_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/backend.h"
#include "ctune/config.h"
#include "ctune/dtype.h"
#include "ctune/error.h"

// ---- RTN: which modules are quantized, and how (src/quant/rtn.c) ----

// mlx_lm.convert --quant-predicate recipes: v_proj and down_proj of the
// "sensitive" layers (index < L/8, >= 7L/8, or (index - L/8) % 3 == 2) and
// lm_head get the high bits, every other quantized module the low bits.
typedef enum ct_quant_recipe {
    CT_RECIPE_NONE = 0,
    CT_RECIPE_MIXED_2_6, // low 2, high 6
    CT_RECIPE_MIXED_3_4, // low 3, high 4
    CT_RECIPE_MIXED_3_6, // low 3, high 6
    CT_RECIPE_MIXED_4_6, // low 4, high 6
} ct_quant_recipe;

// "mixed_2_6" ... -> recipe; false if unknown.
bool ct_quant_recipe_parse(const char *name, ct_quant_recipe *out);
const char *ct_quant_recipe_name(ct_quant_recipe r); // "none" for CT_RECIPE_NONE

typedef struct ct_rtn_params {
    int bits;       // 2, 3, 4, 5, 6, 8 (ignored by recipes, which set their own)
    int group_size; // 32, 64, 128
    ct_quant_recipe recipe;
} ct_rtn_params;

// Whether a tensor is the weight of a module mlx-lm can quantize (Linear or
// Embedding): a 2-D floating "<module>.weight" (norm weights are 1-D). The
// module path (name without ".weight") goes to module (size n).
bool ct_rtn_is_quantizable(const char *tensor_name, int ndim, ct_dtype dtype, char *module, size_t n);

// The quantization of one module of a model with num_layers layers, whose
// weight has in_features columns, as mlx-lm's quantize_model decides it:
// quantized=false when in_features is not a multiple of the group size, else
// the recipe's choice for module_path, else bits/group_size. *override is set
// when the config must list the module (recipes list every quantized module).
ct_quant_spec ct_rtn_module_spec(const ct_rtn_params *p, const char *module_path, int64_t in_features,
                                 int64_t num_layers, bool *override);

// ---- convert (src/quant/convert.c) ----

// A module whose weight replaces the source's in the output (ctune fuse):
// "<path>.weight" (and, for affine, ".scales" / ".biases") come from w, a host
// weight that must stay valid until ct_convert returns. Dense w (rows, cols)
// is stored as dtype (f32, f16, bf16) (rows 0: a vector (cols), written 1-D,
// such as a norm weight); an affine w keeps its bits, group size and scales
// type, and the config's quantization block is kept as it is.
typedef struct ct_convert_module {
    const char *path; // "model.layers.0.self_attn.q_proj"
    ct_weight w;
    ct_dtype dtype;   // dense only
} ct_convert_module;

// Quantization decided elsewhere (ctune quant gptq/awq): with -q, every
// module mlx-lm can quantize asks the hook.
typedef struct ct_convert_hook {
    void *ctx;
    // The spec of module (weight (rows, in)); *override: list it in the config.
    ct_quant_spec (*spec)(void *ctx, const char *module, int64_t in, bool *override);
    // Quantized weights of module computed by the caller: fills wq (rows,
    // in*bits/32), scales and biases (rows, in/g) of type sb and sets *done;
    // *done = false leaves it to RTN of w (rows, in) f32. May be NULL.
    ct_status (*quantize)(void *ctx, const char *module, const float *w, int64_t rows, int64_t in,
                          const ct_quant_spec *s, ct_dtype sb, uint32_t *wq, void *scales, void *biases, bool *done,
                          ct_error *err);
} ct_convert_hook;

typedef struct ct_convert_opts {
    const char *model;    // Hugging Face / MLX folder, or a .gguf file
    const char *mlx_path; // output folder; must not exist (as in mlx-lm)
    bool quantize;        // -q
    bool dequantize;      // --dequantize (MLX-quantized input -> dense)
    int q_bits;           // 0: 4 (recipes: their own)
    int q_group_size;     // 0: 64
    ct_quant_recipe recipe;
    const char *dtype;    // "float16", "bfloat16", "float32" or NULL: config.json's torch_dtype
                          // if it is one of those, else each tensor keeps its own (GGUF: float16)
    // ---- for ctune fuse (zero for convert)
    bool keep_dtypes;     // folder sources: no torch_dtype default, each tensor keeps its own
    const ct_convert_module *replace; // modules written from replace[i].w instead of the source
    int n_replace;
    // Called with the finished temporary folder before it is renamed into
    // place (extra files: a GGUF export); an error removes the folder.
    ct_status (*finish)(void *ctx, const char *tmp_dir, ct_error *err);
    void *finish_ctx;
    const ct_convert_hook *hook; // NULL: RTN as mlx_lm.convert (q_bits/q_group_size are then the config's top level)
} ct_convert_opts;

typedef struct ct_convert_stats {
    int n_tensors;            // written
    int n_quantized;          // modules quantized
    int n_dequantized;        // modules de-quantized
    int n_shards;
    uint64_t total_bytes;     // of all written tensors
    uint64_t total_parameters; // as mlx-lm counts them (quantized weights at 32/bits per word)
    double bits_per_weight;   // 8 * total_bytes / total_parameters
} ct_convert_stats;

// Runs the whole conversion. stats may be NULL. Progress goes to the log.
ct_status ct_convert(const ct_convert_opts *o, ct_convert_stats *stats, ct_error *err);

#endif
