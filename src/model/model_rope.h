// model_rope.h: the bridge between a model's config and ct_rope_init (not public).
#ifndef CTUNE_MODEL_ROPE_H
#define CTUNE_MODEL_ROPE_H

#include "ctune/error.h"

// RoPE settings copied out of a ct_model_config (config.h and rope.h both
// declare ct_rope_type, so no file can include both: model_rope.c converts
// this plain struct into ct_rope_params). type uses the shared numbering.
typedef struct model_rope_fields {
    int type;
    double theta, partial_rotary_factor, factor, low_freq_factor, high_freq_factor;
    int head_dim, max_position_embeddings, original_max_position_embeddings;
    double beta_fast, beta_slow, mscale, mscale_all_dim, attention_factor;
    int truncate;
    const double *long_factor, *short_factor;
    int n_factors;
} model_rope_fields;

// inv_freq (rot_dims/2) and the cos/sin scaling for a forward reaching seq_len positions.
ct_status model_rope_compute(const model_rope_fields *f, int seq_len, float *inv_freq, float *attn_scaling,
                             ct_error *err);

#endif
