// model_internal.h: what the model's source files share (not public).
#ifndef CTUNE_MODEL_INTERNAL_H
#define CTUNE_MODEL_INTERNAL_H

#include "ctune/gguf.h"
#include "ctune/model.h"
#include "ctune/safetensors.h"
#include "ctune/rope.h"

struct ct_model_source {
    bool is_gguf;
    bool gguf_llama_permuted; // llama.cpp's convert permuted q/k rows (architecture "llama")
    float gguf_norm_shift;    // llama.cpp stores gemma3 norm weights as w + 1: this 1 is subtracted
    ct_weights st;            // folder weights (when !is_gguf)
    ct_gguf gguf;             // the .gguf file (when is_gguf)
};

// A device buffer owned by the model (freed by ct_model_free), filled from host when src != NULL.
ct_status model_device_buffer(ct_model *m, const void *src, size_t bytes, void **out, ct_error *err);

// GGUF loading (model_gguf.c). name is the GGUF tensor name ("blk.3.attn_q").
// A weight (rows, cols): F32/F16/BF16 kept, Q4_0/Q4_1/Q8_0 as MLX affine group 32,
// other types dequantized to f32. permute_heads > 0 undoes llama.cpp's q/k row permutation.
ct_status model_gguf_weight(ct_model *m, const char *name, int64_t rows, int64_t cols, int permute_heads,
                            ct_weight *out, ct_error *err);
// A vector (n) as f32; missing tensors fail unless optional (then *out = NULL).
ct_status model_gguf_vector(ct_model *m, const char *name, int64_t n, bool optional, float **out, ct_error *err);
// An RMSNorm weight (n) as f32, minus the source's gguf_norm_shift; a missing tensor fails.
ct_status model_gguf_norm(ct_model *m, const char *name, int64_t n, float **out, ct_error *err);

// Frees m->acts (model_forward.c).
void model_activations_free(ct_model *m);

// inv_freq (rot_dims/2, device) and the cos/sin factor of RoPE for a forward
// reaching seq_len positions (local: gemma3's sliding layers).
ct_status model_rope_upload(ct_model *m, int seq_len, bool local, float *inv_freq, float *scaling, ct_error *err);

// The adapted entry points shared by inference and training (model_forward.c).
// Layer l's linear id: inp (N, in) -> out (N, out), through its adapter if any
// (train: dropout with a seed derived from seed).
ct_status model_linear_apply(ct_model *m, int layer, ct_linear_id id, float *out, const float *inp, int64_t N,
                             bool train, uint64_t seed, ct_error *err);
// dout (N, out) -> dinp (N, in) += (may be NULL), adapter or full fine-tuning weight/bias grads +=.
void model_linear_backward(ct_model *m, int layer, ct_linear_id id, float *dinp, const float *dout,
                           const float *inp, int64_t N);
// ids (N) device -> out (N, C) (embed_scale applied)
ct_status model_embed_apply(ct_model *m, float *out, const int32_t *ids, int64_t N, bool train, uint64_t seed,
                            ct_error *err);
// hidden (N, C) -> logits (N, V): lm_head, the tied embedding, or their adapters; soft-capping applied.
ct_status model_head_apply(ct_model *m, float *logits, const float *hidden, int64_t N, bool train, uint64_t seed,
                           ct_error *err);

#endif
