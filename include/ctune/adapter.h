// adapter.h: LoRA and DoRA adapters (mlx-lm's math, init and file layout),
// independent of the model code. The model is seen only as a list of module
// descriptions (ct_module_desc); the trainer calls the forward/backward
// functions below from the model's linear and embedding hooks.
//
// Math (mlx-lm tuner/lora.py, dora.py), s = scale, drop = inverted dropout:
//   LoRA linear     y = x.W^T + b + s * (drop(x).A).B
//   LoRA embedding  y = W[ids] + drop(s * A[ids].B);  as_linear(h) = h.W^T + s * (drop(h).B^T).A^T
//   DoRA linear     y = (m / n) * (x.W^T + s * (drop(x).A).B) + b,  n = stop_grad(||W + s*(A.B)^T||_row)
//   DoRA embedding  y = (m[ids] / n[ids]) * (W[ids] + drop(s * A[ids].B)), n = ||W + s*A.B||_row
// with mlx's shapes A (in, r), B (r, out) for a linear (W (out, in)) and
// A (V, r), B (r, d) for an embedding (W (V, d)); m (out) for a linear, (V)
// for an embedding. Init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (embedding: 1/sqrt(V)),
// B = 0, m = row norms of the dequantized W in fp32.
//
// Device storage is NOT mlx's orientation for every matrix: each matrix is kept
// so that the forward is a plain linear_forward / embedding lookup of the ops
// interface (see ct_adapter_layer). Files (mlx and PEFT) are converted on save
// and load. ct_adapter_param_info gives each parameter's mlx shape (optimizers
// whose update depends on shape, like Muon, must use it).
#ifndef CTUNE_ADAPTER_H
#define CTUNE_ADAPTER_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/backend.h"
#include "ctune/error.h"

// ---- the model as adapters see it

typedef enum ct_module_kind { CT_MODULE_LINEAR, CT_MODULE_EMBEDDING } ct_module_kind;

// One linear or embedding module of the model. Linear: W (out, in).
// Embedding: W (in, out) = (V, d) (in is the vocabulary, out the width).
typedef struct ct_module_desc {
    const char *path;   // full path: "model.layers.3.self_attn.q_proj", "lm_head", "model.embed_tokens"
    ct_module_kind kind;
    int64_t in, out;
    int bits;           // 0 = dense, else MLX affine bits
    int group_size;
    bool has_bias;
} ct_module_desc;

typedef enum ct_adapter_type { CT_ADAPTER_LORA, CT_ADAPTER_DORA } ct_adapter_type;

// mlx-lm's lora_parameters plus the fields of adapter_config.json that
// decide which modules get adapters.
typedef struct ct_adapter_config {
    ct_adapter_type type; // fine_tune_type "lora" | "dora"
    int num_layers;       // last N blocks; -1 = all; 0 is an error
    int rank;
    float scale;
    float dropout;
    int n_keys;           // 0 = default keys (every linear of the selected blocks)
    char **keys;          // owned; relative to a block ("self_attn.q_proj") or full ("lm_head")
} ct_adapter_config;

// Defaults of mlx_lm.lora: LoRA, 16 layers, rank 8, scale 20, dropout 0, default keys.
void ct_adapter_config_default(ct_adapter_config *c);
void ct_adapter_config_free(ct_adapter_config *c);
// Replaces the keys with a copy of keys[0..n).
ct_status ct_adapter_config_set_keys(ct_adapter_config *c, const char *const *keys, int n, ct_error *err);

// ---- selection (mlx-lm's linear_to_lora_layers keys rules)

// Block index and block-relative path of a module path "...layers.N.rel";
// returns false when the path is not inside a block.
bool ct_module_block(const char *path, int *block, const char **rel);

// selected (n) <- 1 for every module that gets an adapter: default keys =
// every linear inside the last num_layers blocks; explicit keys match a
// block-relative path inside those blocks or a full path anywhere. Errors:
// num_layers 0 or < -1, a key that matches no module (named), DoRA on a
// quantized embedding (mlx-lm's DoRAEmbedding has no quantized support).
ct_status ct_adapter_select(const ct_module_desc *mods, int n, const ct_adapter_config *cfg, bool *selected,
                            ct_error *err);

// Parameter count of a module as mlx-lm's get_total_parameters counts it
// (quantized weights unpacked: out*in; plus the bias). Embedding: V*d.
int64_t ct_module_param_count(const ct_module_desc *m);
// Trainable adapter parameters of one module: r*(in+out), plus m for DoRA.
int64_t ct_adapter_param_count(const ct_module_desc *m, ct_adapter_type type, int rank);
// "Trainable parameters: 0.123% (0.456M/123.456M)" (mlx-lm's text, no newline)
// into buf (size n). total counts the model's frozen parameters (adapters not included).
void ct_format_trainable_parameters(char *buf, size_t n, int64_t trainable, int64_t total);

// ---- adapter layers on a backend

// One adapted module. Parameters (and their gradients, which backward
// ACCUMULATES into; the caller zeroes them) are fp32 device buffers:
//   linear     a (r, in)  = mlx lora_a^T   b (out, r) = mlx lora_b^T   m (out)
//   embedding  a (V, r)   = mlx lora_a     b (d, r)   = mlx lora_b^T   m (V)
// so that u = x.a^T and z = u.b^T are linear_forward calls (embedding: u = a[ids]).
typedef struct ct_adapter_layer {
    ct_adapter_type type;
    ct_module_desc mod; // copied; path not owned
    int rank;
    float scale, dropout;
    float *a, *b, *m;
    float *da, *db, *dm;
} ct_adapter_layer;

// Allocates the parameters and their (zeroed) gradients on be and initialises
// them as mlx-lm: a uniform from a seeded RNG, b zero. DoRA's m is the row
// norms of the base weight w (device; any format), computed in fp32.
ct_status ct_adapter_layer_init(ct_adapter_layer *l, ct_backend *be, const ct_module_desc *mod,
                                const ct_adapter_config *cfg, const ct_weight *w, uint64_t seed, ct_error *err);
void ct_adapter_layer_free(ct_adapter_layer *l, ct_backend *be);

// Host copies in mlx's layout: lora_a, lora_b, m (m NULL for LoRA). Set
// uploads them, get downloads them (sizes as ct_adapter_param_info).
void ct_adapter_layer_set(ct_adapter_layer *l, ct_backend *be, const float *lora_a, const float *lora_b,
                          const float *m);
void ct_adapter_layer_get(const ct_adapter_layer *l, ct_backend *be, float *lora_a, float *lora_b, float *m);

// The trainable parameters of a layer in mlx's naming and shapes, for the
// optimizer: i = 0 lora_a, 1 lora_b, 2 m (DoRA only). Returns the count.
typedef struct ct_adapter_param {
    const char *leaf;    // "lora_a", "lora_b", "m"
    float *value, *grad; // device
    int64_t numel;
    int ndim;
    int64_t mlx_shape[2];
    bool transposed;     // stored as the transpose of mlx_shape
} ct_adapter_param;
int ct_adapter_param_info(const ct_adapter_layer *l, ct_adapter_param out[3]);

// Activations a forward keeps for its backward, and scratch. Buffers grow on
// demand and are reused across calls (the first call at the largest N
// allocates); one cache per adapted module and forward. Free with
// ct_adapter_cache_free. A backward needs the cache of its own forward.
enum { CT_ADAPTER_CACHE_BUFS = 11 };
typedef struct ct_adapter_cache {
    int64_t N;          // rows of the last forward
    bool dropped;       // dropout was applied (train and p > 0)
    uint64_t drop_seed; // regenerates the dropout mask in backward
    void *buf[CT_ADAPTER_CACHE_BUFS]; // device buffers, see src/tuner/adapter_ops.h
    size_t cap[CT_ADAPTER_CACHE_BUFS];
} ct_adapter_cache;
void ct_adapter_cache_free(ct_adapter_cache *c, ct_backend *be);

// Linear (LoRA or DoRA): x (N, in), w (out, in) any format, bias (out) or NULL
// -> y (N, out). train enables dropout with a mask drawn from seed (a new seed
// per call gives a new mask; backward regenerates the same one).
ct_status ct_adapter_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                    const float *x, const ct_weight *w, const float *bias, int64_t N, bool train,
                                    uint64_t seed, ct_error *err);
// dy (N, out), the forward's x -> dx (N, in) += (may be NULL: only adapter
// grads), l->da, l->db (and l->dm for DoRA) +=. The base weight is frozen.
void ct_adapter_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                const float *dy, const float *x, const ct_weight *w, int64_t N);

// Embedding lookup: ids (N) device, w (V, d) -> y (N, d). No input gradient.
ct_status ct_adapter_embedding_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                       const int32_t *ids, const ct_weight *w, int64_t N, bool train, uint64_t seed,
                                       ct_error *err);
void ct_adapter_embedding_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                   const float *dy, const int32_t *ids, int64_t N);

// Tied output head through an adapted embedding (LoRA only, as mlx-lm's
// LoRAEmbedding.as_linear): h (N, d), w (V, d) -> logits (N, V).
ct_status ct_adapter_as_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                       float *logits, const float *h, const ct_weight *w, int64_t N, bool train,
                                       uint64_t seed, ct_error *err);
void ct_adapter_as_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dh,
                                   const float *dlogits, const float *h, const ct_weight *w, int64_t N);

// ---- fuse

// How much of the adapter's delta survives storage in the base's format.
// delta = W' - W (fp32, exact), kept = stored(W') - W, where W is the
// dequantized base and stored() is re-quantization (or rounding to f16/bf16):
//   delta_rel = ||delta||_F / ||W||_F
//   lost      = ||kept - delta||_F / ||delta||_F  (0: all kept; 1: as if no adapter)
typedef struct ct_fuse_report {
    double delta_rel;
    double lost;
} ct_fuse_report;

// Host result of a fuse: dense (bits 0, data (rows, cols) of dtype) or affine
// with the base's bits, group size and scale dtype. Owned buffers.
typedef struct ct_fused_weight {
    ct_weight w; // host pointers into the owned buffers below
    void *data, *scales, *biases;
} ct_fused_weight;
void ct_fused_weight_free(ct_fused_weight *f);

// W' = W + s*(A.B)^T (LoRA) or (m / ||W + s*(A.B)^T||_row) * (W + s*(A.B)^T)
// (DoRA), from the base w (device, any format). A quantized base is
// re-quantized with its bits and group size unless dequantize (then f32);
// a dense base keeps its dtype. report (may be NULL) measures the delta lost.
ct_status ct_adapter_fuse(ct_backend *be, const ct_adapter_layer *l, const ct_weight *w, bool dequantize,
                          ct_fused_weight *out, ct_fuse_report *report, ct_error *err);

// ---- files

// A set of adapters read from disk: config, and for every selected module
// (index into the model's modules) host tensors in mlx's layout.
typedef struct ct_adapter_entry {
    int module;              // index into the module list
    float *lora_a, *lora_b;  // (in, r), (r, out) (embedding: (V, r), (r, d))
    float *m;                // (out) or (V); NULL for LoRA
} ct_adapter_entry;

typedef struct ct_adapter_set {
    ct_adapter_config cfg;
    int n;
    ct_adapter_entry *entries;
} ct_adapter_set;
void ct_adapter_set_free(ct_adapter_set *s);

// mlx-lm layout: dir/adapters.safetensors ("<path>.lora_a" (in, r), ".lora_b"
// (r, out), ".m") and dir/adapter_config.json (fine_tune_type, num_layers,
// lora_parameters {rank, scale, dropout, keys}). Both written atomically.
// layers[i] belong to the modules the config selects.
ct_status ct_adapter_save_mlx(const char *dir, const ct_adapter_config *cfg, const ct_adapter_layer *layers, int n,
                              ct_backend *be, ct_error *err);
// Reads dir, selects modules with the file's config, and validates every
// tensor as mlx-lm's load_adapters does: names must be adapter parameters
// (lora_a, lora_b, m) of selected modules, shapes must match; every selected
// module must have its tensors.
ct_status ct_adapter_load_mlx(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                              ct_error *err);

// PEFT layout: dir/adapter_model.safetensors ("base_model.model.<path>.lora_A.weight"
// (r, in), "lora_B.weight" (out, r), "lora_magnitude_vector" (out); embeddings
// "lora_embedding_A" (r, V) and "lora_embedding_B" (d, r)) and
// dir/adapter_config.json (peft_type LORA, r, lora_alpha = scale*r,
// target_modules, use_dora, lora_dropout). scale = lora_alpha / r on import.
ct_status ct_adapter_save_peft(const char *dir, const ct_adapter_config *cfg, const ct_adapter_layer *layers, int n,
                               ct_backend *be, ct_error *err);
ct_status ct_adapter_load_peft(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                               ct_error *err);
// A folder with adapter_model.safetensors is PEFT, else mlx.
ct_status ct_adapter_load(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                          ct_error *err);

#endif
