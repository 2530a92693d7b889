// model.h: a decoder LLM on a ct_backend: loading its weights (Hugging Face
// folder, MLX-quantized folder, or GGUF file), the forward pass with a KV
// cache, and the negative log-likelihood of a sequence (perplexity).
//
// Architectures: llama (Mistral, SmolLM, TinyLlama), mistral, qwen2, qwen3,
// phi3, gemma2, gemma3 (dense; MoE is not supported). Weights keep their
// stored format (f32/f16/bf16 dense or MLX affine-quantized) on the device;
// activations are fp32. The forward is written only against the backend's
// ops (device pointers), llm.c style: one function per layer over an
// activations struct (src/model/model_forward.c). Training (the next-token
// loss and its gradients, src/model/model_train.c) keeps each block's
// activations (or recomputes them under gradient checkpointing) and runs the
// backward from the loss down to the earliest trainable block only.
//
// Shapes: B batch, T positions, C hidden, H query heads, KVH kv heads, D head
// size, I MLP width, V vocabulary.
#ifndef CTUNE_MODEL_H
#define CTUNE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/adapter.h"
#include "ctune/backend.h"
#include "ctune/config.h"
#include "ctune/error.h"

// The linears of a layer, named as in Hugging Face llama (phi3's fused
// qkv_proj and gate_up_proj are split into these at load).
typedef enum ct_linear_id {
    CT_LIN_Q = 0,
    CT_LIN_K,
    CT_LIN_V,
    CT_LIN_O,
    CT_LIN_GATE,
    CT_LIN_UP,
    CT_LIN_DOWN,
    CT_LIN_COUNT
} ct_linear_id;
// "q_proj", "k_proj", ..., "down_proj"
const char *ct_linear_name(ct_linear_id id);

// A linear layer: weight W (out, in) in any ct_weight format and an optional
// bias (out) in f32. Device pointers.
typedef struct ct_linear {
    ct_weight w;
    float *bias; // NULL when the layer has none
} ct_linear;

// One decoder layer's parameters (device pointers; f32 norm weights).
typedef struct ct_layer_params {
    float *attn_norm;       // (C) input_layernorm
    float *ffn_norm;        // (C) post_attention_layernorm (gemma: pre_feedforward_layernorm)
    float *post_attn_norm;  // (C) gemma2/3 post_attention_layernorm, else NULL
    float *post_ffn_norm;   // (C) gemma2/3 post_feedforward_layernorm, else NULL
    float *q_norm, *k_norm; // (D) qwen3 / gemma3 per-head norms, else NULL
    ct_linear lin[CT_LIN_COUNT];
} ct_layer_params;

// What a model trains (attached by ct_tuned_model; NULL pointers = frozen).
// Adapters: lin[l * CT_LIN_COUNT + id] is layer l's adapted linear id; embed
// adapts model.embed_tokens (and the tied head through its as_linear); head
// adapts an untied lm_head. Each adapter has its own cache (one forward in
// flight per module). Every adapter is also used by the inference forward.
typedef struct ct_model_adapters {
    ct_adapter_layer **lin;       // [L * CT_LIN_COUNT]
    ct_adapter_cache *lin_cache;  // [L * CT_LIN_COUNT]
    ct_adapter_layer *embed, *head;
    ct_adapter_cache embed_cache, head_cache;
} ct_model_adapters;

// Full fine-tuning: gradients (f32 device buffers, ACCUMULATED into) of a
// block's parameters; a non-NULL entry makes that parameter trainable. The
// matching weight must then be dense f32 (ct_tuned_model converts it).
typedef struct ct_layer_grads {
    float *attn_norm, *ffn_norm; // (C)
    float *post_attn_norm, *post_ffn_norm; // (C) gemma3's sandwich norms (NULL when the model has none)
    float *q_norm, *k_norm;      // (D)
    float *w[CT_LIN_COUNT];      // (out, in)
    float *bias[CT_LIN_COUNT];   // (out)
} ct_layer_grads;

// Gradients (f32 device buffers, ACCUMULATED into) of the parameters outside
// the blocks; a non-NULL member makes that parameter trainable, and its weight
// must then be dense f32 (as for ct_layer_grads). Post-training quantization
// (DWQ) trains them; SmolLM2's tied embedding is a fifth of its parameters.
typedef struct ct_extra_grads {
    float *embed;      // (V, C): the lookup rows, plus the head's use when tied
    float *lm_head;    // (V, C): an untied head
    float *final_norm; // (C)
} ct_extra_grads;

// Post-training quantization (GPTQ) sees the input of every layer linear in
// the inference forward through this hook: inp (N, in) is a device pointer,
// valid only during the call. q/k/v (and gate/up) share one input and are
// each reported. Not called by training.
typedef void (*ct_linear_hook)(void *ctx, int layer, ct_linear_id id, const float *inp, int64_t N, int64_t in);

typedef struct ct_model_source ct_model_source; // open weight files (private)
typedef struct ct_activations ct_activations;   // forward scratch (private)
typedef struct ct_train_state ct_train_state;   // training activations (private)

typedef struct ct_model {
    ct_model_config cfg;
    ct_backend *be;          // borrowed
    int C, H, KVH, D, I, V, L, rot_dims;
    float attn_scale;        // scores scale: head_dim^-0.5 (gemma: query_pre_attn_scalar^-0.5)
    float norm_offset;       // 1 for gemma's (1 + w) norms, else 0
    float embed_scale;       // sqrt(C) for gemma, else 1
    ct_glu_act act;

    ct_weight embed;         // (V, C)
    ct_linear lm_head;       // (V, C); the embedding itself when tied
    float *final_norm;       // (C)
    ct_layer_params *layers; // [L]

    ct_model_adapters *adapters;  // NULL = none (borrowed from a ct_tuned_model)
    ct_layer_grads *layer_grads; // [L] or NULL: full fine-tuning (borrowed)
    ct_extra_grads *extra_grads; // NULL = embedding, head and final norm frozen (borrowed)
    bool grad_checkpoint;        // training: recompute each block in backward
    ct_linear_hook linear_hook;  // NULL = none (see ct_linear_hook)
    void *linear_hook_ctx;

    // private
    ct_model_source *src;
    ct_activations *acts;
    ct_train_state *train;
    void **owned;            // device buffers to free
    int n_owned, cap_owned;
} ct_model;

// Loads a model folder (config.json + model.safetensors or shards; dense or
// MLX-quantized) or a .gguf file onto be. Errors name the tensor (missing,
// wrong shape "expected (r, c), found (...)", unsupported dtype or type).
ct_status ct_model_load(ct_model *m, const char *path, ct_backend *be, ct_error *err);
void ct_model_free(ct_model *m);

// A KV cache: per layer, keys and values (B, max_T, KVH, D) on the device.
typedef struct ct_kv_cache {
    int B, max_T, L, KVH, D;
    int pos;          // positions filled so far (the next forward starts here)
    float **k, **v;   // [L] device buffers
} ct_kv_cache;

ct_status ct_kv_cache_init(ct_kv_cache *c, const ct_model *m, int B, int max_T, ct_error *err);
void ct_kv_cache_reset(ct_kv_cache *c); // back to pos 0 (contents are overwritten)
void ct_kv_cache_free(ct_kv_cache *c, const ct_model *m);

// Runs ids (B, T) (host array) at positions [kv->pos, kv->pos + T) and
// advances kv->pos. *logits (device, valid until the next forward) receives
// (B, T, V), or (B, 1, V) of the last position when last_only.
ct_status ct_model_forward(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int B, int T, bool last_only,
                           const float **logits, ct_error *err);

// Sum over t in [1, T) of -log p(ids[t] | ids[<t]) for one sequence ids (T),
// in one forward from position 0 (kv is reset). *n_predicted = T - 1.
ct_status ct_model_sequence_nll(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int T, double *nll_sum,
                                int64_t *n_predicted, ct_error *err);

// ---- layer by layer (post-training quantization drives the blocks itself)

// ids (N) host -> x (N, C) host: the embedding rows (embed_scale applied).
ct_status ct_model_embed_rows(ct_model *m, const int32_t *ids, int64_t N, float *x, ct_error *err);
// x (B, T, C) host, B sequences at positions [0, T) -> x after decoder layer
// l (in place). kv must hold B sequences of at least T positions; it is
// reset and only its layer-l buffers are used (so a cache whose k[i], v[i]
// all point to one buffer pair serves every layer).
ct_status ct_model_layer_forward(ct_model *m, ct_kv_cache *kv, int l, float *x, int B, int T, ct_error *err);

// The two halves of a decoder layer without norms or residuals (AWQ scores
// its scale candidates on them). h (B, T, C) host, the normed input of layer
// l's attention -> out (B, T, C) host: o_proj's output (kv as in
// ct_model_layer_forward).
ct_status ct_model_attention_forward(ct_model *m, ct_kv_cache *kv, int l, const float *h, int B, int T, float *out,
                                     ct_error *err);
// h (N, C) host, the normed input of layer l's MLP -> out (N, C) host: down_proj's output.
ct_status ct_model_mlp_forward(ct_model *m, int l, const float *h, int64_t N, float *out, ct_error *err);

// ---- training (src/model/model_train.c)
// Trainable: adapters (m->adapters), block parameters (m->layer_grads) and the
// embedding, untied head and final norm (m->extra_grads).

// The masked next-token loss of a batch tokens (B, W) (host): inputs
// tokens[:, :W-1], targets tokens[:, 1:], mask (B, W-1) host (1 = trained).
// *loss = sum of masked cross-entropies / count (NAN when count is 0; double
// accumulation), *ntok = count. With grad, d(*loss)/d(params) is ADDED to the
// adapters' gradients and m->layer_grads; adapters run in training mode
// (dropout; module k of a call draws its mask from a seed derived from
// dropout_seed). The backward stops at the earliest trainable block.
// Architectures: llama, mistral, qwen2, qwen3, gemma3 (others: CT_ERR_UNSUPPORTED).
ct_status ct_model_train_loss(ct_model *m, const int32_t *tokens, const float *mask, int B, int W, bool grad,
                              uint64_t dropout_seed, double *loss, int64_t *ntok, ct_error *err);
// The loss of rows [row0, row0 + n) of a (B*T)-row batch given their logits
// (n, V) (device). Adds the chunk's loss to *loss_sum. When dlogits (n, V)
// (device, zeroed) is non-NULL, writes d(total loss)/d(logits) into it.
typedef ct_status (*ct_logits_loss_fn)(void *ctx, int64_t row0, int64_t n, const float *logits,
                                       float *dlogits, double *loss_sum, ct_error *err);

// Forward of ids (B, T) (host) over every position (row b*T + t is position t
// of sequence b); fn sees every chunk of rows, in order (the logits exist a
// chunk at a time). With grad, backward into the trainable parameters
// (m->layer_grads, m->extra_grads, adapters in training mode with dropout
// seed 0). *loss = the sum of fn's contributions. ct_model_train_loss is
// this with a masked cross-entropy fn. Architectures as ct_model_train_loss.
ct_status ct_model_train_logits(ct_model *m, const int32_t *ids, int B, int T, bool grad, ct_logits_loss_fn fn,
                                void *ctx, double *loss, ct_error *err);

// Frees the training activations (kept between calls; ct_model_free frees them too).
void ct_model_train_free(ct_model *m);

// The dropout seed of one adapted module in one call: a mix of the call's
// seed and the module's place (layer, linear id; layer -1 = embedding/head).
uint64_t ct_model_module_seed(uint64_t call_seed, int layer, int id);

#endif
