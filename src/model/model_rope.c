// model_rope.c: the model's RoPE settings -> ct_rope_params -> ct_rope_init.
#include <stdlib.h>

#include "ctune/rope.h"
#include "model_rope.h"

ct_status model_rope_compute(const model_rope_fields *f, int seq_len, float *inv_freq, float *attn_scaling,
                             ct_error *err) {
    ct_rope_params p = {
        .type = (ct_rope_type)f->type,
        .theta = f->theta,
        .head_dim = f->head_dim,
        .partial_rotary_factor = f->partial_rotary_factor,
        .max_position_embeddings = f->max_position_embeddings,
        .factor = f->factor,
        .low_freq_factor = f->low_freq_factor,
        .high_freq_factor = f->high_freq_factor,
        .original_max_position_embeddings = f->original_max_position_embeddings,
        .beta_fast = f->beta_fast,
        .beta_slow = f->beta_slow,
        .mscale = f->mscale,
        .mscale_all_dim = f->mscale_all_dim,
        .attention_factor = f->attention_factor,
        .yarn_no_truncate = !f->truncate,
    };
    float *lf = NULL, *sf = NULL;
    if (f->n_factors > 0) {
        lf = malloc(sizeof(float) * (size_t)f->n_factors);
        sf = malloc(sizeof(float) * (size_t)f->n_factors);
        if (!lf || !sf) {
            free(lf);
            free(sf);
            return ct_fail(err, CT_ERR_NOMEM, "rope: out of memory");
        }
        for (int i = 0; i < f->n_factors; i++) {
            lf[i] = (float)f->long_factor[i];
            sf[i] = (float)f->short_factor[i];
        }
        p.long_factor = lf;
        p.short_factor = sf;
    }
    ct_status st = ct_rope_init(&p, seq_len, inv_freq, attn_scaling, err);
    free(lf);
    free(sf);
    return st;
}
