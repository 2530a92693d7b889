// generation.h: continuing a prompt with a model, token by token, as
// `ctune generate` and `ctune evaluate` do: one prefill of the prompt into a
// KV cache, then one forward per new token, until an end-of-sequence id or
// max_new tokens.
#ifndef CTUNE_GENERATION_H
#define CTUNE_GENERATION_H

#include "ctune/model.h"
#include "ctune/sample.h"

typedef struct ct_generation {
    int n;                  // new tokens in out
    double prompt_s, gen_s; // prefill and generation times
} ct_generation;

// prompt (np) -> out (max_new capacity). Stops at the model's eos ids and at
// stop_ids (n_stop, e.g. the tokenizer's). on_token (may be NULL) sees the
// tokens generated so far after each new one, and once more with final=true.
ct_status ct_model_generate(ct_model *m, ct_sampler *smp, const int32_t *prompt, int np, int max_new,
                            const int32_t *stop_ids, size_t n_stop, int32_t *out, ct_generation *g,
                            ct_status (*on_token)(void *ctx, const int32_t *out, int n, bool final, ct_error *err),
                            void *ctx, ct_error *err);

#endif
