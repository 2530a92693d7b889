// config.h: a model's config.json (Hugging Face, as written by transformers 4
// and 5 and by mlx-lm), parsed into one resolved structure. Absent keys take
// the defaults of transformers' config class for that model_type, so the model
// code never has to know which keys a file left out. Also resolved here: the
// RoPE variant and its parameters, the attention kind of every layer (full or
// sliding window), which layers are mixture-of-experts, and the MLX
// "quantization" block with its per-module overrides.
// Errors name the file and the key ("config.json: rope_scaling: missing
// required \"factor\"").
#ifndef CTUNE_CONFIG_H
#define CTUNE_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctune/error.h"
#include "ctune/rope.h" // ct_rope_type
#include "ctune/strmap.h"

// Architectures (config.json "model_type"). gemma3 (the multimodal wrapper)
// reads its language model from "text_config"; it is then CT_ARCH_GEMMA3.
typedef enum ct_arch {
    CT_ARCH_LLAMA = 0, // also SmolLM, TinyLlama, Llama 2/3
    CT_ARCH_MISTRAL,
    CT_ARCH_QWEN2,
    CT_ARCH_QWEN3,
    CT_ARCH_PHI3,
    CT_ARCH_GEMMA2,
    CT_ARCH_GEMMA3, // model_type gemma3_text, or gemma3's text_config
    CT_ARCH_MIXTRAL,
    CT_ARCH_QWEN3_MOE,
    CT_ARCH_COUNT
} ct_arch;
const char *ct_arch_name(ct_arch a); // the model_type string ("gemma3_text" for CT_ARCH_GEMMA3)

// MLP activation (hidden_act; gemma2/3: hidden_activation).
typedef enum ct_activation {
    CT_ACT_SILU = 0,      // "silu", "swish": x * sigmoid(x)
    CT_ACT_GELU,          // "gelu": exact, x * Phi(x) with erf
    CT_ACT_GELU_TANH,     // "gelu_pytorch_tanh", "gelu_new": the tanh approximation
    CT_ACT_RELU,          // "relu"
} ct_activation;
const char *ct_activation_name(ct_activation a);

const char *ct_rope_type_name(ct_rope_type t);

// RoPE, resolved. Fields a variant does not use are 0 (factor is 1 for default).
typedef struct ct_rope {
    ct_rope_type type;
    double theta;                 // base frequency (rope_theta)
    double factor;                // linear, dynamic, llama3, yarn; longrope: max_pos / original if absent
    double low_freq_factor;       // llama3
    double high_freq_factor;      // llama3
    int64_t original_max_position_embeddings; // llama3, yarn, longrope (default: max_position_embeddings;
                                              // phi3: its top-level key, default 4096)
    double beta_fast, beta_slow;  // yarn (defaults 32, 1)
    double mscale, mscale_all_dim; // yarn (0 when absent)
    bool truncate;                // yarn: floor/ceil the correction range (default true)
    double attention_factor;      // yarn, longrope: cos/sin scale, resolved as transformers does; else 1
    double *long_factor;          // longrope: rotary_dim/2 values (owned)
    double *short_factor;         // longrope: rotary_dim/2 values (owned)
    int n_factors;                // length of long_factor and short_factor
} ct_rope;

typedef enum ct_attn_kind {
    CT_ATTN_FULL = 0,    // causal attention over all previous positions
    CT_ATTN_SLIDING,     // causal, limited to the last sliding_window positions
} ct_attn_kind;

// MLX quantization of one module (affine only is accepted at load).
typedef struct ct_quant_spec {
    bool quantized;
    int bits;       // 2, 3, 4, 5, 6 or 8
    int group_size; // 32, 64 or 128
    char mode[16];  // "affine"
} ct_quant_spec;

typedef struct ct_model_config {
    ct_arch arch;
    char model_type[32];  // as written (top level: "gemma3" for the multimodal wrapper)
    char dtype[32];       // "torch_dtype" or "dtype" ("bfloat16", ...); "" when absent

    // Sizes (all > 0).
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;    // dense MLP width (mixtral: each expert's width)
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads;  // divides num_attention_heads; absent: the class default (mistral,
                                  // mixtral 8; qwen2/3 32; gemma, qwen3_moe 4; else heads); null: heads
    int64_t head_dim;             // explicit, else the class default (qwen3 128, gemma 256), else hidden/heads
    int64_t max_position_embeddings;
    int64_t rotary_dim;           // (int)(head_dim * partial_rotary_factor), even

    double rms_norm_eps;
    double partial_rotary_factor; // fraction of head_dim that RoPE rotates (default 1)
    ct_rope rope;                 // RoPE of full-attention layers (all layers except gemma3's local ones)
    double rope_local_base_freq;  // gemma3 only: theta of the sliding layers, which use unscaled
                                  // default RoPE (default 10000); 0 for other architectures

    ct_activation hidden_act;
    bool tie_word_embeddings;     // lm_head shares embed_tokens
    bool qkv_bias;                // q/k/v projections have a bias (qwen2 always; else attention_bias)
    bool o_bias;                  // o_proj has a bias (attention_bias, except qwen2)
    bool mlp_bias;                // llama "mlp_bias"
    bool qk_norm;                 // per-head RMSNorm of q and k before RoPE (qwen3, qwen3_moe, gemma3)

    // Attention per layer.
    int64_t sliding_window;       // window of CT_ATTN_SLIDING layers; 0 = no layer slides
    ct_attn_kind *layer_attn;     // [num_hidden_layers] (owned)
    double attn_logit_softcapping;  // 0 = none (gemma2: 50)
    double final_logit_softcapping; // 0 = none (gemma2: 30)
    double query_pre_attn_scalar;   // scores are scaled by 1/sqrt(this): gemma2/3 key (default 256), else head_dim

    // Mixture of experts (num_experts == 0 for dense models).
    int64_t num_experts;          // num_local_experts (mixtral) / num_experts (qwen3_moe)
    int64_t num_experts_per_tok;
    int64_t moe_intermediate_size; // each expert's MLP width (mixtral: intermediate_size)
    bool norm_topk_prob;          // renormalise the top-k router weights (mixtral: always)
    int64_t decoder_sparse_step;  // qwen3_moe: layer i is sparse iff (i+1) % step == 0 (default 1)
    double router_aux_loss_coef;  // default 0.001
    bool *layer_moe;              // [num_hidden_layers]: layer uses the sparse MoE block (owned)

    // Special tokens (-1 = none).
    int64_t bos_token_id;
    int64_t pad_token_id;
    int64_t *eos_token_ids;       // an int or a list in the file; always a list here (owned)
    int n_eos_token_ids;

    // MLX quantization ("quantization", or "quantization_config" in MLX form).
    ct_quant_spec quant;          // top-level spec; quantized=false when the model is dense
    int n_quant_overrides;
    char **quant_override_paths;  // full module paths, e.g. "model.layers.0.mlp.down_proj" (owned)
    ct_quant_spec *quant_overrides; // quantized=false for entries written as false
    ct_strmap quant_index;        // path -> index into the two arrays above
} ct_model_config;

// Loads <path>/config.json when path is a directory, else the file at path.
ct_status ct_model_config_load(ct_model_config *c, const char *path, ct_error *err);
// Parses an already-parsed config.json; source names it in errors. On failure c
// holds nothing that needs freeing (but freeing it is harmless).
ct_status ct_model_config_parse(ct_model_config *c, const cJSON *root, const char *source, ct_error *err);
void ct_model_config_free(ct_model_config *c);

// The quantization of one module, by full path ("model.layers.3.self_attn.q_proj"):
// its override when the quantization block lists it, else the top-level spec.
// mlx-lm then quantizes a module that is not listed only if the weights hold
// "<path>.scales"; that check belongs to the weight loader.
ct_quant_spec ct_model_config_quant_for(const ct_model_config *c, const char *module_path);

#endif
