// tuned_model.h: a model made trainable — LoRA or DoRA adapters on the
// modules mlx-lm's keys rules select, or full fine-tuning of the last N
// blocks — and the ct_train_target the trainer drives (loss with gradients,
// save/load of the trainable tensors under mlx-lm's names). Also applies a
// trained adapter folder (mlx-lm or PEFT layout) for inference.
//
// Parameters as the trainer sees them (ct_train_target.params): fp32 host
// arrays in mlx-lm's layout and names:
//   lora/dora: model.layers.N.self_attn.q_proj.lora_a (in, r), .lora_b (r, out), .m (out)
//              (embeddings: lora_a (V, r), lora_b (r, d), m (V))
//   full:      model.layers.N.<module>.weight (out, in), .bias, the norms' .weight
// The optimizer updates .w in place; loss() uploads every .w into the
// adapter layers before its forward (adapters keep some matrices transposed
// on the device, see adapter.h), and adds the device gradients into .g after
// its backward. On the CPU backend a parameter whose device layout is the mlx
// layout (full fine-tuning weights, DoRA's m, an embedding's lora_a) IS the
// array the forward reads (.w/.g alias the device buffers; nothing is copied).
//
// Full fine-tuning converts the selected blocks' linear weights (any format)
// to f32 trainable copies, and copies their norms and biases; embeddings,
// the final norm and lm_head stay frozen (as mlx-lm). Freeing the tuned model
// restores the model's original weights and detaches everything.
#ifndef CTUNE_TUNED_MODEL_H
#define CTUNE_TUNED_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/error.h"
#include "ctune/model.h"
#include "ctune/trainer.h"

typedef struct ct_tune_config {
    const char *fine_tune_type; // "lora" | "dora" | "full"
    int num_layers;             // last N blocks; -1 = all (0 is an error)
    int rank;
    double scale, dropout;
    char **keys;                // lora/dora (mlx-lm keys rules; NULL/0 = every linear of the blocks)
    int n_keys;
    bool grad_checkpoint;       // recompute each block's activations in backward
    uint64_t seed;              // adapter init
} ct_tune_config;

typedef struct ct_tuned_model ct_tuned_model;

// Attaches adapters (or trainable copies) to m, which must outlive the tuned
// model. Errors: unknown fine_tune_type, num_layers 0 or < -1, a key that
// matches no module, an architecture training does not support.
ct_status ct_tuned_model_create(ct_tuned_model **out, ct_model *m, const ct_tune_config *cfg, ct_error *err);
void ct_tuned_model_free(ct_tuned_model *t);
// The trainer's view (valid while t lives).
void ct_tuned_model_target(ct_tuned_model *t, ct_train_target *out);
// print_trainable_parameters's numbers: trainable parameters, and the frozen
// model's total as mlx-lm counts it (quantized weights unpacked; adapters not included).
void ct_tuned_model_counts(const ct_tuned_model *t, int64_t *trainable, int64_t *total);
// Reads the trainable tensors from a safetensors file (mlx-lm names and
// shapes, any float dtype). Every tensor must be a trainable parameter of
// the right shape and every parameter must be present (errors name them).
ct_status ct_tuned_model_load_weights(ct_tuned_model *t, const char *adapters_safetensors, ct_error *err);
// Writes the trainable tensors (f32, mlx-lm layout) to path atomically.
ct_status ct_tuned_model_save_weights(ct_tuned_model *t, const char *path, ct_error *err);

// Inference with a trained adapter folder: mlx-lm's (adapter_config.json +
// adapters.safetensors; fine_tune_type lora, dora or full) or PEFT's
// (adapter_model.safetensors). The adapters stay attached to m until *out is freed.
ct_status ct_model_apply_adapters(ct_model *m, const char *adapter_dir, ct_tuned_model **out, ct_error *err);

#endif
