// sample.c: next-token sampling (see sample.h).
#include "ctune/sample.h"

#include <math.h>
#include <stdlib.h>

ct_status ct_sampler_init(ct_sampler *s, const ct_sampler_params *p, int vocab, ct_error *err) {
    s->p = *p;
    s->V = vocab;
    // splitmix64 of the seed: a non-zero xorshift state for every seed
    uint64_t z = p->seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    s->rng = (z ^ (z >> 31)) | 1;
    s->order = malloc(sizeof(int32_t) * (size_t)vocab);
    s->probs = malloc(sizeof(float) * (size_t)vocab);
    if (!s->order || !s->probs) {
        ct_sampler_free(s);
        return ct_fail(err, CT_ERR_NOMEM, "sampler: out of memory");
    }
    return CT_OK;
}

void ct_sampler_free(ct_sampler *s) {
    free(s->order);
    free(s->probs);
    s->order = NULL;
    s->probs = NULL;
}

double ct_sampler_uniform(ct_sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

bool ct_is_eos(int32_t id, const int64_t *eos, int n) {
    for (int i = 0; i < n; i++)
        if (eos[i] == id)
            return true;
    return false;
}

static void repetition_penalty(const ct_sampler *s, float *logits, const int32_t *history, int n) {
    float pen = s->p.repetition_penalty;
    if (pen <= 0 || pen == 1)
        return;
    int ctx = s->p.repetition_context > 0 ? s->p.repetition_context : 20;
    for (int i = n > ctx ? n - ctx : 0; i < n; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= s->V)
            continue;
        // a token repeated in the window is penalised once, as mlx-lm's indexed update
        bool seen = false;
        for (int j = n > ctx ? n - ctx : 0; j < i && !seen; j++)
            seen = history[j] == t;
        if (!seen)
            logits[t] = logits[t] < 0 ? logits[t] * pen : logits[t] / pen;
    }
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b, void *key) {
    const float *p = key;
    float pa = p[*(const int32_t *)a], pb = p[*(const int32_t *)b];
    if (pa != pb)
        return pa < pb ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

// softmax of logits * inv_t -> out (n)
static void softmax(const float *logits, float inv_t, float *out, int n) {
    float mx = logits[argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        out[i] = expf((logits[i] - mx) * inv_t);
        sum += out[i];
    }
    for (int i = 0; i < n; i++)
        out[i] = (float)(out[i] / sum);
}

int32_t ct_sampler_next(ct_sampler *s, float *logits, const int32_t *history, int n) {
    repetition_penalty(s, logits, history, n);
    if (s->p.temp <= 0)
        return argmax(logits, s->V);
    int V = s->V;
    // filters on the untempered distribution: how many of the sorted tokens to keep
    softmax(logits, 1.0f, s->probs, V);
    for (int i = 0; i < V; i++)
        s->order[i] = i;
    qsort_r(s->order, (size_t)V, sizeof(int32_t), by_prob_desc, s->probs);
    int keep = V;
    if (s->p.top_p > 0 && s->p.top_p < 1) {
        double mass = 0;
        int k = 0;
        while (k < V && mass < s->p.top_p)
            mass += s->probs[s->order[k++]];
        keep = k < keep ? k : keep;
    }
    if (s->p.min_p > 0) {
        float thr = s->p.min_p * s->probs[s->order[0]];
        int k = 1;
        while (k < V && s->probs[s->order[k]] >= thr)
            k++;
        keep = k < keep ? k : keep;
    }
    if (s->p.top_k > 0 && s->p.top_k < keep)
        keep = s->p.top_k;
    // draw from softmax(logits / temp) over the kept tokens
    float mx = logits[s->order[0]];
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += exp((double)(logits[s->order[i]] - mx) / s->p.temp);
    double u = ct_sampler_uniform(s) * total, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += exp((double)(logits[s->order[i]] - mx) / s->p.temp);
        if (u < acc)
            return s->order[i];
    }
    return s->order[keep - 1];
}
