// adapter_ops.h: internals shared by lora.c, dora.c and adapter_io.c: the
// cache buffer slots, a seeded RNG, and a few small kernels the ops interface
// (backend.h) does not have yet.
//
// CPU-ONLY: the adapter_k_* kernels dereference device buffers, which is only
// valid for the CPU backend. They must move into the ct_backend vtable
// (dropout forward/backward, row norms, DoRA's magnitude scaling) before a
// second backend exists.
#ifndef CTUNE_ADAPTER_OPS_H
#define CTUNE_ADAPTER_OPS_H

#include <stdint.h>

#include "ctune/adapter.h"

// Cache slots (sizes in elements).
enum {
    AC_XD,    // (N, in)  f32 dropped input (linear / as_linear, when dropped)
    AC_U,     // (N, r)   f32 low-rank activation
    AC_DU,    // (N, r)   f32 scratch
    AC_Z,     // (N, out) f32 scratch (embedding / as_linear: (N, d) or (N, V))
    AC_V,     // (N, out) f32 DoRA: output before the magnitude scaling
    AC_NORM,  // (rows)   f32 DoRA: row norms of the adapted weight (embedding: per looked-up row)
    AC_WFULL, // (rows, cols) f32 DoRA: adapted weight
    AC_BS,    // (out, r) f32 DoRA: s * b
    AC_IOTA,  // (rows)   i32 0..rows-1
    AC_DIN,   // (N, in)  f32 scratch
    AC_DV,    // (N, out) f32 DoRA scratch
};

// Device buffer of the slot with at least n elements of elsize bytes (grown as needed).
ct_status adapter_cache_get(ct_adapter_cache *c, ct_backend *be, int slot, int64_t n, size_t elsize, void **out,
                            ct_error *err);
// slot AC_IOTA filled with 0..n-1 (uploaded once per growth).
ct_status adapter_cache_iota(ct_adapter_cache *c, ct_backend *be, int64_t n, const int32_t **out, ct_error *err);

// A dense f32 matrix (rows, cols) as a ct_weight.
ct_weight adapter_dense(const float *p, int64_t rows, int64_t cols);

// splitmix64: the next 64 random bits of *state.
uint64_t adapter_rng_next(uint64_t *state);
// Uniform in [lo, hi) from 24 random bits.
float adapter_rng_uniform(uint64_t *state, float lo, float hi);

// ---- CPU-only kernels (see the note at the top)
// Inverted dropout with keep probability 1-p; element i is kept when
// hash(seed, i) >= p, so backward regenerates the mask from seed.
// out (n) = x * mask / (1-p) (may alias x)
void adapter_k_dropout_forward(float *out, const float *x, int64_t n, float p, uint64_t seed);
// dx (n) += dout * mask / (1-p)
void adapter_k_dropout_backward(float *dx, const float *dout, int64_t n, float p, uint64_t seed);
// w (rows, cols) -> norm (rows) = sqrt(sum w^2) (double accumulation)
void adapter_k_row_norms(float *norm, const float *w, int64_t rows, int64_t cols);
// DoRA linear: y (N, C) = m[c] / norm[c] * v + bias[c] (bias may be NULL)
void adapter_k_dora_scale_cols(float *y, const float *v, const float *m, const float *norm, const float *bias,
                               int64_t N, int64_t C);
// dv (N, C) = dy * m[c] / norm[c]; dm (C) += sum_n dy * v / norm[c]
void adapter_k_dora_scale_cols_backward(float *dv, float *dm, const float *dy, const float *v, const float *m,
                                        const float *norm, int64_t N, int64_t C);
// DoRA embedding: y (N, C) = m[ids[n]] / norm[n] * v
void adapter_k_dora_scale_rows(float *y, const float *v, const float *m, const int32_t *ids, const float *norm,
                               int64_t N, int64_t C);
// dv (N, C) = dy * m[ids[n]] / norm[n]; dm[ids[n]] += sum_c dy * v / norm[n]
void adapter_k_dora_scale_rows_backward(float *dv, float *dm, const float *dy, const float *v, const float *m,
                                        const int32_t *ids, const float *norm, int64_t N, int64_t C);

// LoRA branch of a linear, shared with DoRA: y (N, out) += s * (drop(x).A).B,
// keeping what backward needs in c (AC_XD when dropped, AC_U).
ct_status adapter_lora_branch_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                      const float *x, int64_t N, bool train, uint64_t seed, ct_error *err);
// dy (N, out) of the branch -> da, db +=, dx (N, in) += (dx may be NULL).
void adapter_lora_branch_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                  const float *dy, const float *x, int64_t N);

// Branch of an embedding: dy (N, d) of drop(s * A[ids].B) -> da, db +=.
void adapter_lora_embedding_branch_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                            const float *dy, const int32_t *ids, int64_t N);

// DoRA entry points called by the ct_adapter_* dispatchers in lora.c.
ct_status adapter_dora_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                      const float *x, const ct_weight *w, const float *bias, int64_t N, bool train,
                                      uint64_t seed, ct_error *err);
void adapter_dora_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                  const float *dy, const float *x, const ct_weight *w, int64_t N);
ct_status adapter_dora_embedding_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                         const int32_t *ids, const ct_weight *w, int64_t N, bool train,
                                         uint64_t seed, ct_error *err);
void adapter_dora_embedding_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                     const float *dy, const int32_t *ids, int64_t N);
// The adapted weight W + s*(A.B)^T (linear) or W + s*A.B (embedding), fp32,
// in the cache slot AC_WFULL (rows, cols of w); norm (rows) of it when norm != NULL.
ct_status adapter_adapted_weight(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, const ct_weight *w,
                                 float **wfull, float *norm, ct_error *err);

#endif
