// cpu_loss.c: masked cross-entropy and KL / JS divergences over logits.
// Row statistics are taken in double; results are fp32.
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

static double row_lse(const float *x, int V, double inv_tau) {
    double m = -INFINITY, s = 0.0;
    for (int v = 0; v < V; v++)
        m = x[v] * inv_tau > m ? x[v] * inv_tau : m;
    for (int v = 0; v < V; v++)
        s += exp(x[v] * inv_tau - m);
    return m + log(s);
}

static double mask_count(const float *mask, int64_t N) {
    if (!mask)
        return (double)N;
    double c = 0.0;
    for (int64_t n = 0; n < N; n++)
        c += mask[n];
    return c;
}

// logits (N, V), targets (N), mask (N) -> loss[0]
void ct_cpu_cross_entropy_forward(ct_backend *be, float *loss, const float *logits, const int32_t *targets,
                                  const float *mask, int64_t N, int V) {
    (void)be;
    double total = 0.0, count = mask_count(mask, N);
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        if (mask && mask[n] == 0.0f)
            continue;
        const float *x = logits + n * V;
        total += (row_lse(x, V, 1.0) - x[targets[n]]) * (mask ? mask[n] : 1.0f);
    }
    loss[0] = count > 0.0 ? (float)(total / count) : 0.0f;
}

// dlogits (N, V) += dloss * mask[n] / count * (softmax(row) - onehot(target))
void ct_cpu_cross_entropy_backward(ct_backend *be, float *dlogits, float dloss, const float *logits,
                                   const int32_t *targets, const float *mask, int64_t N, int V) {
    (void)be;
    double count = mask_count(mask, N);
    if (count <= 0.0)
        return;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        if (mask && mask[n] == 0.0f)
            continue;
        const float *x = logits + n * V;
        float *d = dlogits + n * V;
        double lse = row_lse(x, V, 1.0), c = dloss * (mask ? mask[n] : 1.0f) / count;
        for (int v = 0; v < V; v++)
            d[v] += (float)(c * exp(x[v] - lse));
        d[targets[n]] -= (float)c;
    }
}

// log-probabilities of a row at temperature tau: lp (V)
static void row_logprobs(double *lp, const float *x, int V, double tau) {
    double lse = row_lse(x, V, 1.0 / tau);
    for (int v = 0; v < V; v++)
        lp[v] = x[v] / tau - lse;
}

// log m_v with m = (p + q) / 2, computed stably
static double log_mix(double lp, double lq) {
    double hi = lp > lq ? lp : lq, lo = lp > lq ? lq : lp;
    return hi + log1p(exp(lo - hi)) - log(2.0);
}

// per row: KL(p||q) = sum p (lp - lq); JS = 1/2 sum p (lp - lm) + 1/2 sum q (lq - lm)
void ct_cpu_divergence_forward(ct_backend *be, float *out, const float *logits_q, const float *logits_p, int64_t N,
                               int V, float tau, int js) {
    (void)be;
#pragma omp parallel
    {
        double *lq = malloc(sizeof(double) * 2 * (size_t)V), *lp = lq + V;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            row_logprobs(lq, logits_q + n * V, V, tau);
            row_logprobs(lp, logits_p + n * V, V, tau);
            double acc = 0.0;
            for (int v = 0; v < V; v++) {
                if (js) {
                    double lm = log_mix(lp[v], lq[v]);
                    acc += 0.5 * exp(lp[v]) * (lp[v] - lm) + 0.5 * exp(lq[v]) * (lq[v] - lm);
                } else {
                    acc += exp(lp[v]) * (lp[v] - lq[v]);
                }
            }
            out[n] = (float)acc;
        }
        free(lq);
    }
}

// d KL / d logits_q = (q - p) / tau; d JS / d logits_q = q (lq - lm - KL(q||m)) / (2 tau)
void ct_cpu_divergence_backward(ct_backend *be, float *dlogits_q, const float *dout, const float *logits_q,
                                const float *logits_p, int64_t N, int V, float tau, int js) {
    (void)be;
#pragma omp parallel
    {
        double *lq = malloc(sizeof(double) * 2 * (size_t)V), *lp = lq + V;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            row_logprobs(lq, logits_q + n * V, V, tau);
            row_logprobs(lp, logits_p + n * V, V, tau);
            float *d = dlogits_q + n * V;
            double c = dout[n] / tau;
            if (!js) {
                for (int v = 0; v < V; v++)
                    d[v] += (float)(c * (exp(lq[v]) - exp(lp[v])));
                continue;
            }
            double kl_qm = 0.0;
            for (int v = 0; v < V; v++)
                kl_qm += exp(lq[v]) * (lq[v] - log_mix(lp[v], lq[v]));
            for (int v = 0; v < V; v++)
                d[v] += (float)(0.5 * c * exp(lq[v]) * (lq[v] - log_mix(lp[v], lq[v]) - kl_qm));
        }
        free(lq);
    }
}

// inp (N, V), idx (N, k) -> out (N, k)
void ct_cpu_gather_cols(ct_backend *be, float *out, const float *inp, const int32_t *idx, int64_t N, int V, int k) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int j = 0; j < k; j++)
            out[n * k + j] = inp[n * V + idx[n * k + j]];
}

// dinp (N, V) += scatter of dout (N, k) at idx (N, k)
void ct_cpu_scatter_add_cols(ct_backend *be, float *dinp, const float *dout, const int32_t *idx, int64_t N, int V,
                             int k) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int j = 0; j < k; j++)
            dinp[n * V + idx[n * k + j]] += dout[n * k + j];
}
