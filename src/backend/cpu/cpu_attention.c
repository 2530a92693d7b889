// cpu_attention.c: causal multi-head attention with grouped KV heads, over a
// KV cache, optional sliding window and logit soft-capping. The forward takes
// blocks of QBLOCK queries of one head: scores S = Q K^T and the output P V
// are two sgemm calls (single-threaded, inside the OpenMP loop over (batch,
// head, block)); a few queries (decoding) go row by row. Score storage is one
// block of rows per thread. The forward saves the log-sum-exp of each row so
// the backward recomputes probabilities instead of storing them (flash style).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

// The first key the query at absolute position pos sees (it sees lo..pos).
static int first_key(const ct_attn_params *p, int pos) {
    int lo = p->window > 0 ? pos - p->window + 1 : 0;
    return lo < 0 ? 0 : lo;
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

// scores s[j - lo] for keys lo..pos (scaled, soft-capped)
static void row_scores(float *s, const float *qr, const float *kb, int lo, int pos, int kvs, const ct_attn_params *p) {
    for (int j = lo; j <= pos; j++) {
        float x = p->scale * dot(qr, kb + (int64_t)j * kvs, p->D);
        s[j - lo] = p->softcap > 0.0f ? p->softcap * tanhf(x / p->softcap) : x;
    }
}

// Softmax of one score row over keys klo.. (n of them) for the query at pos:
// keys outside [lo, pos] get probability 0. Returns the log-sum-exp.
static float row_softmax(float *s, int n, int klo, int lo, int pos, const ct_attn_params *p) {
    float m = -INFINITY, sum = 0.0f;
    for (int j = 0; j < n; j++) {
        int key = klo + j;
        if (key < lo || key > pos) {
            s[j] = -INFINITY;
            continue;
        }
        float x = p->scale * s[j];
        s[j] = p->softcap > 0.0f ? p->softcap * tanhf(x / p->softcap) : x;
        m = s[j] > m ? s[j] : m;
    }
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++)
        s[j] *= inv;
    return m + logf(sum);
}

// Queries [t0, t1) of head h of sequence b: S (nq, nk) = Q K[klo..khi]^T,
// softmax per row, out = P V[klo..khi]. s: scratch of nq * nk floats.
static void attention_block(float *out, float *lse, const float *q, const float *k, const float *v,
                            const ct_attn_params *p, int b, int h, int t0, int t1, float *s) {
    int T = p->T, H = p->H, D = p->D, G = p->H / p->KVH, kvs = p->KVH * D, nq = t1 - t0;
    int klo = first_key(p, p->pos_offset + t0), khi = p->pos_offset + t1 - 1, nk = khi - klo + 1;
    int64_t qo = (((int64_t)b * T + t0) * H + h) * D;
    int64_t kvoff = ((int64_t)b * p->kv_stride + klo) * kvs + (int64_t)(h / G) * D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, q + qo, H * D, k + kvoff, kvs, 0.0f, s,
                nk);
    for (int i = 0; i < nq; i++) {
        int pos = p->pos_offset + t0 + i;
        float l = row_softmax(s + (int64_t)i * nk, nk, klo, first_key(p, pos), pos, p);
        if (lse)
            lse[((int64_t)b * H + h) * T + t0 + i] = l;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, s, nk, v + kvoff, kvs, 0.0f, out + qo,
                H * D);
}

enum { QBLOCK = 64, ROWWISE_MAX_T = 4 };

void ct_cpu_attention_forward(ct_backend *be, float *out, float *lse, const float *q, const float *k, const float *v,
                              const ct_attn_params *p) {
    (void)be;
    if (p->T > ROWWISE_MAX_T) {
        int nblocks = (p->T + QBLOCK - 1) / QBLOCK;
#pragma omp parallel
        {
            float *s = malloc(sizeof(float) * (size_t)QBLOCK * (size_t)(p->pos_offset + p->T));
#pragma omp for collapse(3) schedule(dynamic, 1)
            for (int b = 0; b < p->B; b++)
                for (int h = 0; h < p->H; h++)
                    for (int blk = 0; blk < nblocks; blk++) {
                        int t0 = blk * QBLOCK, t1 = t0 + QBLOCK < p->T ? t0 + QBLOCK : p->T;
                        attention_block(out, lse, q, k, v, p, b, h, t0, t1, s);
                    }
            free(s);
        }
        return;
    }
    int B = p->B, T = p->T, H = p->H, D = p->D, G = p->H / p->KVH;
    int kvs = p->KVH * D; // stride between key rows
    int64_t work = (int64_t)B * H * T * (p->pos_offset + T) * D; // multiply-adds of the scores
#pragma omp parallel if (work >= 4 * CT_CPU_PAR_MIN)
    {
        float *s = malloc(sizeof(float) * (size_t)(p->pos_offset + T));
#pragma omp for collapse(3) schedule(dynamic, 8)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    int pos = p->pos_offset + t, lo = first_key(p, pos);
                    const float *qr = q + (((int64_t)b * T + t) * H + h) * D;
                    int64_t kvoff = (int64_t)b * p->kv_stride * kvs + (int64_t)(h / G) * D;
                    const float *kb = k + kvoff, *vb = v + kvoff;
                    row_scores(s, qr, kb, lo, pos, kvs, p);
                    float m = -INFINITY, sum = 0.0f;
                    for (int j = 0; j <= pos - lo; j++)
                        m = s[j] > m ? s[j] : m;
                    for (int j = 0; j <= pos - lo; j++) {
                        s[j] = expf(s[j] - m);
                        sum += s[j];
                    }
                    float *o = out + (((int64_t)b * T + t) * H + h) * D, inv = 1.0f / sum;
                    for (int d = 0; d < D; d++)
                        o[d] = 0.0f;
                    for (int j = lo; j <= pos; j++) {
                        float w = s[j - lo] * inv;
                        const float *vr = vb + (int64_t)j * kvs;
#pragma omp simd
                        for (int d = 0; d < D; d++)
                            o[d] += w * vr[d];
                    }
                    if (lse)
                        lse[((int64_t)b * H + h) * T + t] = m + logf(sum);
                }
        free(s);
    }
}

// P = exp(S - lse); dP = dout . V^T; dS = P * (dP - sum(dout * out)); through
// the soft-cap: dS *= 1 - (S/cap)^2; dq = scale dS . K; dk += scale dS^T . q; dv += P^T . dout.
// Parallel over (b, kv head) so that dk and dv rows have one writer each.
void ct_cpu_attention_backward(ct_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, const float *out, const float *lse,
                               const ct_attn_params *p) {
    (void)be;
    int B = p->B, T = p->T, H = p->H, D = p->D, G = p->H / p->KVH;
    int kvs = p->KVH * D;
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * (size_t)(p->pos_offset + T));
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < p->KVH; kh++)
                for (int h = kh * G; h < (kh + 1) * G; h++)
                    for (int t = 0; t < T; t++) {
                        int pos = p->pos_offset + t, lo = first_key(p, pos);
                        int64_t qo = (((int64_t)b * T + t) * H + h) * D;
                        int64_t kvoff = (int64_t)b * p->kv_stride * kvs + (int64_t)kh * D;
                        const float *qr = q + qo, *dor = dout + qo;
                        row_scores(s, qr, k + kvoff, lo, pos, kvs, p);
                        float l = lse[((int64_t)b * H + h) * T + t];
                        float dsum = dot(dor, out + qo, D);
                        for (int j = lo; j <= pos; j++) {
                            float sc = s[j - lo];
                            float pj = expf(sc - l);
                            int64_t ro = kvoff + (int64_t)j * kvs;
                            float ds = pj * (dot(dor, v + ro, D) - dsum);
                            if (p->softcap > 0.0f)
                                ds *= 1.0f - (sc / p->softcap) * (sc / p->softcap);
                            ds *= p->scale;
                            for (int d = 0; d < D; d++) {
                                if (dq)
                                    dq[qo + d] += ds * k[ro + d];
                                if (dk)
                                    dk[ro + d] += ds * qr[d];
                                if (dv)
                                    dv[ro + d] += pj * dor[d];
                            }
                        }
                    }
        free(s);
    }
}
