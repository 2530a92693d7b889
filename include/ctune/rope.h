// rope.h: rotary position embedding parameters. Computes the inverse
// frequencies and the attention (cos/sin) scaling of every RoPE variant the
// way transformers' ROPE_INIT_FUNCTIONS does; the backend's rope_forward
// applies them. Fields left 0 take the documented defaults.
#ifndef CTUNE_ROPE_H
#define CTUNE_ROPE_H

#include "ctune/error.h"

typedef enum ct_rope_type {
    CT_ROPE_DEFAULT,  // theta^(-2i/d)
    CT_ROPE_LINEAR,   // default / factor (position interpolation)
    CT_ROPE_DYNAMIC,  // NTK: theta grows with the sequence past max_position_embeddings
    CT_ROPE_LLAMA3,   // per-wavelength rescaling (factor, low/high_freq_factor, original max)
    CT_ROPE_YARN,     // ramp between interpolation and extrapolation, attention factor
    CT_ROPE_LONGROPE, // phi3 "su"/longrope: per-frequency long/short factors
} ct_rope_type;

typedef struct ct_rope_params {
    ct_rope_type type;
    double theta;                  // rope_theta (base)
    int head_dim;
    double partial_rotary_factor;  // 0 = 1.0; rotated dims = (int)(head_dim * factor)
    int max_position_embeddings;
    double factor;                 // linear, dynamic, llama3, yarn, longrope (0 = max_pos / original_max for yarn/longrope)
    double low_freq_factor;        // llama3
    double high_freq_factor;       // llama3
    int original_max_position_embeddings; // llama3, yarn, longrope
    double beta_fast, beta_slow;   // yarn (0 = 32 and 1)
    double mscale, mscale_all_dim; // yarn (0 = unset)
    double attention_factor;       // yarn, longrope: explicit cos/sin scaling (0 = derived)
    int yarn_no_truncate;          // yarn: 1 = do not floor/ceil the correction range ("truncate": false)
    const double *long_factor;     // longrope: rot_dims/2 values each
    const double *short_factor;
} ct_rope_params;

// "default", "linear", "dynamic", "llama3", "yarn", "longrope" (also "su"). False if unknown.
int ct_rope_type_from_name(const char *name, ct_rope_type *out);
// Rotated dims per head (even).
int ct_rope_rot_dims(const ct_rope_params *p);

// inv_freq (rot_dims/2) and the cos/sin scaling for sequences of seq_len
// positions (dynamic and longrope depend on it; others ignore it). Fails with
// a message naming the missing or bad field.
ct_status ct_rope_init(const ct_rope_params *p, int seq_len, float *inv_freq, float *attn_scaling, ct_error *err);

#endif
