// cpu_elementwise.c: RMSNorm, gated activations, residual add, scaling,
// softmax and soft-capping on the CPU, parallel over rows.
#include <math.h>

#include "cpu_ops.h"

// inp (N, C), weight (C) -> out (N, C), rstd (N)
void ct_cpu_rmsnorm_forward(ct_backend *be, float *out, float *rstd, const float *inp, const float *weight, int64_t N,
                            int C, float eps, float w_offset) {
    (void)be;
#pragma omp parallel for schedule(static) if (N * C >= CT_CPU_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++)
            ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        if (rstd)
            rstd[n] = r;
        for (int c = 0; c < C; c++)
            out[n * C + c] = x[c] * r * (weight[c] + w_offset);
    }
}

// out = x * r * w'  =>  dx = r * w' * dout - x * r^3 / C * sum(dout * w' * x);  dw += dout * x * r
void ct_cpu_rmsnorm_backward(ct_backend *be, float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int64_t N, int C, float w_offset) {
    (void)be;
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *d = dout + n * C;
            float r = rstd[n], dot = 0.0f;
            for (int c = 0; c < C; c++)
                dot += d[c] * (weight[c] + w_offset) * x[c];
            float k = dot * r * r * r / (float)C;
            for (int c = 0; c < C; c++)
                dinp[n * C + c] += r * (weight[c] + w_offset) * d[c] - k * x[c];
        }
    }
    if (dweight) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int64_t n = 0; n < N; n++)
                s += dout[n * C + c] * inp[n * C + c] * rstd[n];
            dweight[c] += s;
        }
    }
}

static const float GELU_K = 0.7978845608028654f; // sqrt(2/pi)

static float act_fwd(float g, ct_glu_act act) {
    if (act == CT_GLU_SILU)
        return g / (1.0f + expf(-g));
    return 0.5f * g * (1.0f + tanhf(GELU_K * (g + 0.044715f * g * g * g)));
}

static float act_grad(float g, ct_glu_act act) {
    if (act == CT_GLU_SILU) {
        float s = 1.0f / (1.0f + expf(-g));
        return s * (1.0f + g * (1.0f - s));
    }
    float u = GELU_K * (g + 0.044715f * g * g * g);
    float t = tanhf(u);
    return 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * g * g);
}

// gate (n), up (n) -> out (n)
void ct_cpu_glu_forward(ct_backend *be, float *out, const float *gate, const float *up, int64_t n, ct_glu_act act) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CT_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = act_fwd(gate[i], act) * up[i];
}

void ct_cpu_glu_backward(ct_backend *be, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, int64_t n, ct_glu_act act) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        if (dgate)
            dgate[i] += dout[i] * up[i] * act_grad(gate[i], act);
        if (dup)
            dup[i] += dout[i] * act_fwd(gate[i], act);
    }
}

void ct_cpu_add(ct_backend *be, float *out, const float *a, const float *b, int64_t n) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n >= CT_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void ct_cpu_scale(ct_backend *be, float *x, float s, int64_t n) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n >= CT_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}

// inp (N, V) -> out (N, V)
void ct_cpu_softmax_forward(ct_backend *be, float *out, const float *inp, int64_t N, int V, int log) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * V;
        float *y = out + n * V;
        float m = -INFINITY, sum = 0.0f;
        for (int v = 0; v < V; v++)
            m = x[v] > m ? x[v] : m;
        for (int v = 0; v < V; v++)
            sum += expf(x[v] - m);
        float lse = m + logf(sum);
        for (int v = 0; v < V; v++)
            y[v] = log ? x[v] - lse : expf(x[v] - lse);
    }
}

void ct_cpu_softcap_forward(ct_backend *be, float *out, const float *inp, float cap, int64_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = cap * tanhf(inp[i] / cap);
}

void ct_cpu_softcap_backward(ct_backend *be, float *dinp, const float *dout, const float *out, float cap, int64_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float t = out[i] / cap;
        dinp[i] += dout[i] * (1.0f - t * t);
    }
}
