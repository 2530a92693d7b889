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

// Frees m->acts (model_forward.c).
void model_activations_free(ct_model *m);

#endif
