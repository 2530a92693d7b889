// quant_internal.h: what the calibrated quantizers (gptq.c, awq.c) share:
// module names, the output scales' type, the architectures they handle, and
// the store of quantized weights they compute, which a ct_convert hook hands
// to the writer (ct_convert then lays out the folder as `ctune convert -q`).
#ifndef CTUNE_QUANT_INTERNAL_H
#define CTUNE_QUANT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/convert.h"
#include "ctune/model.h"

// Layer l's linear id as a module path: "model.layers.<l>.self_attn.q_proj", "...mlp.down_proj".
void quant_module_name(char *buf, size_t n, int l, ct_linear_id id);
// The distinct linear inputs of a decoder block, QUANT_SLOTS of them: 0 the
// attention input (q/k/v), 1 o_proj's, 2 the MLP input (gate/up), 3 down_proj's.
enum { QUANT_SLOTS = 4 };
// The slot whose input the hook reports for linear id (q, o, gate, down), or
// -1 for the linears that share another's input (k, v, up).
int quant_input_slot(ct_linear_id id);
// The slot whose input feeds linear id's weight (any linear).
int quant_weight_slot(ct_linear_id id);
// x rounded to sb's precision (what storing it as sb keeps).
float quant_round_sb(float x, ct_dtype sb);
// f32 x (n) -> dst (n) of type sb (F32, F16 or BF16).
void quant_store_sb(void *dst, const float *x, size_t n, ct_dtype sb);
// The scales' type ct_convert will write: dtype (--dtype), else config.json's
// torch_dtype if a float name, else the layers' own type.
ct_status quant_output_dtype(const char *dtype, const ct_model *m, ct_dtype *sb, ct_error *err);
// Fails unless m is a llama, mistral, qwen2, qwen3 or gemma3 model; the
// message names path, method ("gptq", "awq") and the model type.
ct_status quant_check_arch(const ct_model *m, const char *path, const char *method, ct_error *err);
// The file name of a block's MLP input norm (ct_layer_params.ffn_norm):
// "post_attention_layernorm", or gemma's "pre_feedforward_layernorm" (its
// post_attention_layernorm normalizes the attention output).
const char *quant_ffn_norm_name(const ct_model *m);

// One module's quantized weight (host memory): wq (rows, in*bits/32), scales
// and biases (rows, in/group_size) of the store's type sb.
typedef struct quant_result {
    char module[96];
    int64_t rows, in;
    int bits, group_size;
    uint32_t *wq;
    void *scales, *biases;
} quant_result;

typedef struct quant_results {
    quant_result *r;
    int n, cap;
    ct_dtype sb;
} quant_results;

// Appends module's result; takes ownership of wq, scales and biases (freed
// here on failure).
ct_status quant_results_add(quant_results *R, const char *module, int64_t rows, int64_t in, int bits,
                            int group_size, uint32_t *wq, void *scales, void *biases, ct_error *err);
const quant_result *quant_results_find(const quant_results *R, const char *module);
void quant_results_free(quant_results *R);
// The body of a ct_convert_hook.spec for a calibrated method: a layer
// module is quantized at (bits, group_size) when R holds its result (else
// left dense); every other module (embeddings, lm_head) gets round-to-nearest
// at (other_bits, other_group_size) when its input divides, as an override.
ct_quant_spec quant_results_spec(const quant_results *R, const char *module, int64_t in, int bits, int group_size,
                                 int other_bits, int other_group_size, bool *override);
// The body of a ct_convert_hook.quantize: copies module's stored result into
// wq, scales, biases and sets *done; *done = false when module has none.
// Fails when the writer's dtype or shape differs from the stored one.
ct_status quant_results_emit(const quant_results *R, const char *module, int64_t rows, int64_t in,
                             const ct_quant_spec *s, ct_dtype sb, uint32_t *wq, void *scales, void *biases,
                             bool *done, ct_error *err);

#endif
