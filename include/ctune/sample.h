// sample.h: choosing the next token from a row of logits, as mlx-lm's
// make_sampler / make_logits_processors do: repetition penalty on the recent
// context, then (temp > 0) top-p, min-p and top-k filters on the untempered
// probabilities and a draw from softmax(logits / temp) with a seeded RNG;
// temp == 0 is greedy (argmax, lowest id on ties).
#ifndef CTUNE_SAMPLE_H
#define CTUNE_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctune/error.h"

typedef struct ct_sampler_params {
    float temp;               // 0 = greedy
    float top_p;              // keep the smallest set of most likely tokens with mass >= top_p (0 or 1 = off)
    float min_p;              // keep tokens with p >= min_p * p_max (0 = off)
    int top_k;                // keep the k most likely tokens (0 = off)
    float repetition_penalty; // divides positive (multiplies negative) logits of recent tokens (0 or 1 = off)
    int repetition_context;   // how many recent tokens the penalty looks at (0 = 20, mlx-lm's default)
    uint64_t seed;
} ct_sampler_params;

typedef struct ct_sampler {
    ct_sampler_params p;
    int V;
    uint64_t rng;     // xorshift64* state
    int32_t *order;   // (V) scratch: token ids sorted by probability
    float *probs;     // (V) scratch
} ct_sampler;

ct_status ct_sampler_init(ct_sampler *s, const ct_sampler_params *p, int vocab, ct_error *err);
void ct_sampler_free(ct_sampler *s);

// logits (V) host, modified in place; history (n) the tokens so far (prompt
// and generated) for the repetition penalty. Returns the chosen id.
int32_t ct_sampler_next(ct_sampler *s, float *logits, const int32_t *history, int n);

// A uniform double in [0, 1) from the sampler's RNG.
double ct_sampler_uniform(ct_sampler *s);

// True if id is one of the n eos ids.
bool ct_is_eos(int32_t id, const int64_t *eos, int n);

#endif
