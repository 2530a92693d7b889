// Token-by-token generation (see include/ctune/generation.h).
#include "ctune/generation.h"

#include <stdlib.h>
#include <string.h>

#include "ctune/log.h"

static bool is_stop(const ct_model *m, int32_t id, const int32_t *stop_ids, size_t n_stop) {
    if (ct_is_eos(id, m->cfg.eos_token_ids, m->cfg.n_eos_token_ids))
        return true;
    for (size_t i = 0; i < n_stop; i++)
        if (stop_ids[i] == id)
            return true;
    return false;
}

ct_status ct_model_generate(ct_model *m, ct_sampler *smp, const int32_t *prompt, int np, int max_new,
                            const int32_t *stop_ids, size_t n_stop, int32_t *out, ct_generation *g,
                            ct_status (*on_token)(void *ctx, const int32_t *out, int n, bool final, ct_error *err),
                            void *ctx, ct_error *err) {
    *g = (ct_generation){0};
    ct_kv_cache kv;
    CT_TRY(ct_kv_cache_init(&kv, m, 1, np + (max_new > 0 ? max_new : 1), err));
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)(np + max_new + 1));
    float *row = malloc(sizeof(float) * (size_t)m->V);
    ct_status st = hist && row ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "out of memory");
    if (st == CT_OK)
        memcpy(hist, prompt, sizeof(int32_t) * (size_t)np);
    const float *logits;
    double t0 = ct_now();
    if (st == CT_OK && max_new > 0)
        st = ct_model_forward(m, &kv, prompt, 1, np, true, &logits, err);
    g->prompt_s = ct_now() - t0;
    t0 = ct_now();
    int n = 0;
    while (st == CT_OK && n < max_new) {
        m->be->download(m->be, row, logits, sizeof(float) * (size_t)m->V);
        int32_t id = ct_sampler_next(smp, row, hist, np + n);
        if (is_stop(m, id, stop_ids, n_stop))
            break;
        hist[np + n] = out[n] = id;
        n++;
        if (on_token)
            st = on_token(ctx, out, n, false, err);
        if (st == CT_OK && n < max_new)
            st = ct_model_forward(m, &kv, &id, 1, 1, true, &logits, err);
    }
    if (st == CT_OK && on_token)
        st = on_token(ctx, out, n, true, err);
    g->n = n;
    g->gen_s = ct_now() - t0;
    free(hist);
    free(row);
    ct_kv_cache_free(&kv, m);
    return st;
}
