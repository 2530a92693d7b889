// Optimizers with MLX's update rules, fp32 state. See include/ctune/optim.h.
#include "ctune/optim.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/json.h"

struct ct_optim_state {
    float *buf[3];
    int64_t len[3];
    const char *name[3];
    int n;
};

static const char *KIND_NAMES[] = {"adam", "adamw", "sgd", "adafactor", "muon"};

const char *ct_optim_kind_name(ct_optim_kind k) { return KIND_NAMES[k]; }

ct_status ct_optim_kind_from_name(const char *name, ct_optim_kind *out, ct_error *err) {
    for (int i = 0; i < 5; i++) {
        if (!strcasecmp(name, KIND_NAMES[i])) {
            *out = (ct_optim_kind)i;
            return CT_OK;
        }
    }
    return ct_fail(err, CT_ERR_INVALID, "unsupported optimizer '%s' (supported: adam, adamw, sgd, adafactor, muon)",
                   name);
}

ct_optim_config ct_optim_defaults(ct_optim_kind kind) {
    ct_optim_config c = {0};
    c.kind = kind;
    c.betas[0] = 0.9;
    c.betas[1] = 0.999;
    c.eps = 1e-8;
    c.eps_pair[0] = 1e-30;
    c.eps_pair[1] = 1e-3;
    c.clip_threshold = 1.0;
    c.decay_rate = -0.8;
    c.scale_parameter = true;
    c.relative_step = true;
    c.ns_steps = 5;
    if (kind == CT_OPT_ADAMW)
        c.weight_decay = 0.01;
    if (kind == CT_OPT_MUON) {
        c.weight_decay = 0.01;
        c.momentum = 0.95;
        c.nesterov = true;
    }
    return c;
}

static ct_status get_float(const cJSON *o, const char *key, double *out, ct_error *err) {
    return ct_json_double(o, key, out, err);
}

ct_status ct_optim_config_apply_json(ct_optim_config *c, const cJSON *obj, ct_error *err) {
    if (!obj)
        return CT_OK;
    if (!cJSON_IsObject(obj))
        return ct_fail(err, CT_ERR_INVALID, "optimizer_config.%s must be a mapping", KIND_NAMES[c->kind]);
    static const char *const ALLOWED[5][12] = {
        [CT_OPT_ADAM] = {"betas", "eps", "bias_correction", "learning_rate"},
        [CT_OPT_ADAMW] = {"betas", "eps", "bias_correction", "weight_decay", "learning_rate"},
        [CT_OPT_SGD] = {"momentum", "weight_decay", "dampening", "nesterov", "learning_rate"},
        [CT_OPT_ADAFACTOR] = {"eps", "clip_threshold", "decay_rate", "beta_1", "weight_decay", "scale_parameter",
                              "relative_step", "warmup_init", "learning_rate"},
        [CT_OPT_MUON] = {"momentum", "weight_decay", "nesterov", "ns_steps", "learning_rate"},
    };
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (int i = 0; i < 12 && ALLOWED[c->kind][i]; i++)
            ok |= !strcmp(it->string, ALLOWED[c->kind][i]);
        if (!ok)
            return ct_fail(err, CT_ERR_INVALID, "optimizer_config.%s: unknown key \"%s\"", KIND_NAMES[c->kind],
                           it->string);
    }
    // Pairs: Adam's betas, Adafactor's eps (a scalar eps elsewhere).
    bool adafactor = c->kind == CT_OPT_ADAFACTOR;
    const cJSON *pair = cJSON_GetObjectItemCaseSensitive(obj, adafactor ? "eps" : "betas");
    if (pair) {
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsNumber(pair->child) ||
            !cJSON_IsNumber(pair->child->next))
            return ct_fail(err, CT_ERR_INVALID, "optimizer_config.%s: \"%s\" must be a list of two numbers",
                           KIND_NAMES[c->kind], pair->string);
        double *dst = adafactor ? c->eps_pair : c->betas;
        dst[0] = pair->child->valuedouble;
        dst[1] = pair->child->next->valuedouble;
    }
    ct_status st = CT_OK;
    if (!adafactor)
        st = get_float(obj, "eps", &c->eps, err);
    if (st == CT_OK) st = ct_json_bool(obj, "bias_correction", &c->bias_correction, err);
    if (st == CT_OK) st = get_float(obj, "weight_decay", &c->weight_decay, err);
    if (st == CT_OK) st = get_float(obj, "momentum", &c->momentum, err);
    if (st == CT_OK) st = get_float(obj, "dampening", &c->dampening, err);
    if (st == CT_OK) st = ct_json_bool(obj, "nesterov", &c->nesterov, err);
    if (st == CT_OK) st = get_float(obj, "clip_threshold", &c->clip_threshold, err);
    if (st == CT_OK) st = get_float(obj, "decay_rate", &c->decay_rate, err);
    if (st == CT_OK && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, "beta_1"))) {
        c->has_beta_1 = true;
        st = get_float(obj, "beta_1", &c->beta_1, err);
    }
    if (st == CT_OK) st = ct_json_bool(obj, "scale_parameter", &c->scale_parameter, err);
    if (st == CT_OK) st = ct_json_bool(obj, "relative_step", &c->relative_step, err);
    if (st == CT_OK) st = ct_json_bool(obj, "warmup_init", &c->warmup_init, err);
    if (st == CT_OK) {
        int64_t ns = c->ns_steps;
        st = ct_json_int(obj, "ns_steps", &ns, err);
        c->ns_steps = (int)ns;
    }
    if (st != CT_OK)
        return ct_error_context(err, "optimizer_config.%s", KIND_NAMES[c->kind]);
    if (c->kind == CT_OPT_SGD && c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        return ct_fail(err, CT_ERR_INVALID, "optimizer_config.sgd: nesterov momentum requires a momentum and zero dampening");
    for (int i = 0; i < 2; i++)
        if ((c->kind == CT_OPT_ADAM || c->kind == CT_OPT_ADAMW) && !(c->betas[i] >= 0 && c->betas[i] < 1))
            return ct_fail(err, CT_ERR_INVALID, "optimizer_config.%s: betas must be in [0, 1)", KIND_NAMES[c->kind]);
    return CT_OK;
}

static ct_status add_buf(ct_optim_state *s, const char *name, int64_t len, ct_error *err) {
    float *b = calloc((size_t)(len > 0 ? len : 1), sizeof(float));
    if (!b)
        return ct_fail(err, CT_ERR_NOMEM, "optimizer state: cannot allocate %lld floats", (long long)len);
    s->buf[s->n] = b;
    s->len[s->n] = len;
    s->name[s->n] = name;
    s->n++;
    return CT_OK;
}

ct_status ct_optimizer_init(ct_optimizer *o, const ct_optim_config *cfg, const ct_optim_param *params, int n,
                            ct_error *err) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n_params = n;
    o->state = calloc((size_t)(n > 0 ? n : 1), sizeof *o->state);
    if (!o->state)
        return ct_fail(err, CT_ERR_NOMEM, "optimizer state: out of memory");
    for (int i = 0; i < n; i++) {
        ct_optim_state *s = &o->state[i];
        int64_t len = params[i].rows * params[i].cols;
        ct_status st = CT_OK;
        switch (cfg->kind) {
        case CT_OPT_ADAM:
        case CT_OPT_ADAMW:
            st = add_buf(s, "m", len, err);
            if (st == CT_OK)
                st = add_buf(s, "v", len, err);
            break;
        case CT_OPT_SGD:
        case CT_OPT_MUON: st = add_buf(s, "v", len, err); break;
        case CT_OPT_ADAFACTOR:
            if (params[i].ndim >= 2) {
                st = add_buf(s, "exp_avg_sq_row", params[i].rows, err);
                if (st == CT_OK)
                    st = add_buf(s, "exp_avg_sq_col", params[i].cols, err);
            } else {
                st = add_buf(s, "exp_avg_sq", len, err);
            }
            if (st == CT_OK && cfg->has_beta_1)
                st = add_buf(s, "exp_avg", len, err);
            break;
        }
        if (st != CT_OK) {
            ct_optimizer_free(o);
            return st;
        }
    }
    return CT_OK;
}

void ct_optimizer_free(ct_optimizer *o) {
    for (int i = 0; o->state && i < o->n_params; i++)
        for (int j = 0; j < o->state[i].n; j++)
            free(o->state[i].buf[j]);
    free(o->state);
    memset(o, 0, sizeof *o);
}

int ct_optimizer_state_buffers(const ct_optimizer *o, int i, const char *names[3], float *bufs[3], int64_t lens[3]) {
    const ct_optim_state *s = &o->state[i];
    for (int j = 0; j < s->n; j++) {
        names[j] = s->name[j];
        bufs[j] = s->buf[j];
        lens[j] = s->len[j];
    }
    return s->n;
}

static void adam_update(const ct_optim_config *c, float lr, uint64_t step, ct_optim_param *p, ct_optim_state *s) {
    int64_t n = p->rows * p->cols;
    float b1 = (float)c->betas[0], b2 = (float)c->betas[1], eps = (float)c->eps;
    float omb1 = (float)(1.0 - c->betas[0]), omb2 = (float)(1.0 - c->betas[1]);
    float *m = s->buf[0], *v = s->buf[1], *w = p->w;
    const float *g = p->g;
    if (c->kind == CT_OPT_ADAMW) {
        float decay = 1.0f - lr * (float)c->weight_decay;
        for (int64_t i = 0; i < n; i++)
            w[i] *= decay;
    }
    if (c->bias_correction) {
        float c1 = lr / (1.0f - powf(b1, (float)step));
        float c2 = 1.0f / sqrtf(1.0f - powf(b2, (float)step));
        for (int64_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + omb1 * g[i];
            v[i] = b2 * v[i] + omb2 * (g[i] * g[i]);
            w[i] -= (c1 * m[i]) / (sqrtf(v[i]) * c2 + eps);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + omb1 * g[i];
            v[i] = b2 * v[i] + omb2 * (g[i] * g[i]);
            w[i] -= lr * m[i] / (sqrtf(v[i]) + eps);
        }
    }
}

static void sgd_update(const ct_optim_config *c, float lr, ct_optim_param *p, ct_optim_state *s) {
    int64_t n = p->rows * p->cols;
    float *v = s->buf[0], *w = p->w, mu = (float)c->momentum, wd = (float)c->weight_decay;
    float omd = (float)(1.0 - c->dampening);
    for (int64_t i = 0; i < n; i++) {
        float g = p->g[i];
        if (c->weight_decay != 0)
            g += wd * w[i];
        if (mu <= 0) {
            w[i] -= lr * g;
            continue;
        }
        v[i] = mu * v[i] + (c->dampening > 0 ? omd * g : g);
        w[i] -= lr * (c->nesterov ? g + mu * v[i] : v[i]);
    }
}

static float rms(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return (float)sqrt(s / (double)n);
}

static void adafactor_update(const ct_optim_config *c, float lr, uint64_t step, ct_optim_param *p,
                             ct_optim_state *s) {
    int64_t R = p->rows, C = p->cols, n = R * C;
    float *w = p->w;
    const float *g = p->g;
    float prms = rms(w, n);
    float t = (float)step;
    float rel = c->relative_step ? fminf(c->warmup_init ? 1e-6f * t : 1e-2f, 1.0f / sqrtf(t)) : lr;
    float alpha = c->scale_parameter ? fmaxf((float)c->eps_pair[1], prms) * rel : rel;
    float beta2 = 1.0f - powf(t, (float)c->decay_rate), omb2 = 1.0f - beta2, eps0 = (float)c->eps_pair[0];
    float *u = malloc((size_t)n * sizeof(float));
    if (!u)
        return; // allocation failure leaves the parameter unchanged
    if (p->ndim >= 2) {
        float *row = s->buf[0], *col = s->buf[1];
        for (int64_t r = 0; r < R; r++) {
            double acc = 0;
            for (int64_t j = 0; j < C; j++)
                acc += g[r * C + j] * g[r * C + j] + eps0;
            row[r] = beta2 * row[r] + omb2 * (float)(acc / (double)C);
        }
        for (int64_t j = 0; j < C; j++) {
            double acc = 0;
            for (int64_t r = 0; r < R; r++)
                acc += g[r * C + j] * g[r * C + j] + eps0;
            col[j] = beta2 * col[j] + omb2 * (float)(acc / (double)R);
        }
        double row_mean = 0;
        for (int64_t r = 0; r < R; r++)
            row_mean += row[r];
        row_mean /= (double)R;
        for (int64_t r = 0; r < R; r++) {
            float rf = 1.0f / sqrtf(row[r] / (float)row_mean);
            for (int64_t j = 0; j < C; j++)
                u[r * C + j] = rf * (1.0f / sqrtf(col[j])) * g[r * C + j];
        }
    } else {
        float *sq = s->buf[0];
        for (int64_t i = 0; i < n; i++) {
            sq[i] = beta2 * sq[i] + omb2 * (g[i] * g[i] + eps0);
            u[i] = g[i] / sqrtf(sq[i]);
        }
    }
    float denom = fmaxf(1.0f, rms(u, n) / (float)c->clip_threshold);
    for (int64_t i = 0; i < n; i++)
        u[i] = alpha * (u[i] / denom);
    if (c->has_beta_1) {
        float *ea = s->buf[p->ndim >= 2 ? 2 : 1];
        for (int64_t i = 0; i < n; i++) {
            ea[i] = (float)c->beta_1 * ea[i] + (float)(1.0 - c->beta_1) * u[i];
            u[i] = ea[i];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (c->weight_decay != 0)
            w[i] += w[i] * ((float)-c->weight_decay * alpha);
        w[i] -= u[i];
    }
    free(u);
}

// X (r, c) with r <= c, in place: Newton-Schulz quintic iteration towards the
// nearest semi-orthogonal matrix. tmp needs 2*r*r + r*c floats.
static void newton_schulz5(float *X, int r, int c, int steps, float *tmp) {
    const float a = 3.4445f, b = -4.7750f, cc = 2.0315f;
    float *A = tmp, *B = tmp + (size_t)r * r, *Y = tmp + 2 * (size_t)r * r;
    double nrm = 0;
    for (int64_t i = 0; i < (int64_t)r * c; i++)
        nrm += (double)X[i] * X[i];
    float inv = 1.0f / ((float)sqrt(nrm) + 1e-7f);
    for (int64_t i = 0; i < (int64_t)r * c; i++)
        X[i] *= inv;
    for (int s = 0; s < steps; s++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, c, 1.0f, X, c, X, c, 0.0f, A, r); // A = X Xt
        memcpy(B, A, (size_t)r * r * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, r, r, cc, A, r, A, r, b, B, r); // B = bA + cAA
        memcpy(Y, X, (size_t)r * c * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, 1.0f, B, r, Y, c, a, X, c); // X = aX + BX
    }
}

static void muon_update(const ct_optim_config *c, float lr, ct_optim_param *p, ct_optim_state *s) {
    int64_t R = p->rows, C = p->cols, n = R * C;
    float *v = s->buf[0], *w = p->w, mu = (float)c->momentum, omm = (float)(1.0 - c->momentum);
    float wd = (float)c->weight_decay;
    float *u = malloc((size_t)n * sizeof(float));
    if (!u)
        return;
    for (int64_t i = 0; i < n; i++) {
        float g = p->g[i];
        if (c->weight_decay != 0)
            g = g + wd * w[i];
        v[i] = mu * v[i] + omm * g;
        u[i] = c->nesterov ? g * omm + v[i] * mu : v[i];
    }
    if (p->ndim >= 2) {
        int64_t r = R < C ? R : C, cols = R < C ? C : R;
        float *X = malloc((size_t)n * sizeof(float)), *tmp = malloc((size_t)(2 * r * r + r * cols) * sizeof(float));
        if (!X || !tmp) {
            free(X);
            free(tmp);
            free(u);
            return;
        }
        if (R > C) { // transpose so rows <= cols
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    X[j * R + i] = u[i * C + j];
        } else {
            memcpy(X, u, (size_t)n * sizeof(float));
        }
        newton_schulz5(X, (int)r, (int)cols, c->ns_steps, tmp);
        if (R > C) {
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    u[i * C + j] = X[j * R + i];
        } else {
            memcpy(u, X, (size_t)n * sizeof(float));
        }
        free(X);
        free(tmp);
        lr *= sqrtf(fmaxf(1.0f, (float)R / (float)C));
    }
    for (int64_t i = 0; i < n; i++)
        w[i] -= lr * u[i];
    free(u);
}

void ct_optimizer_update(ct_optimizer *o, float lr, ct_optim_param *params) {
    o->step++;
    for (int i = 0; i < o->n_params; i++) {
        ct_optim_param *p = &params[i];
        ct_optim_state *s = &o->state[i];
        switch (o->cfg.kind) {
        case CT_OPT_ADAM:
        case CT_OPT_ADAMW: adam_update(&o->cfg, lr, o->step, p, s); break;
        case CT_OPT_SGD: sgd_update(&o->cfg, lr, p, s); break;
        case CT_OPT_ADAFACTOR: adafactor_update(&o->cfg, lr, o->step, p, s); break;
        case CT_OPT_MUON: muon_update(&o->cfg, lr, p, s); break;
        }
    }
}

double ct_clip_grad_norm(float *const *grads, const int64_t *lens, int n, double max_norm) {
    double sq = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < lens[i]; j++)
            sq += (double)grads[i][j] * grads[i][j];
    double norm = sqrt(sq);
    if (norm >= max_norm) {
        float k = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < lens[i]; j++)
                grads[i][j] *= k;
    }
    return norm;
}
