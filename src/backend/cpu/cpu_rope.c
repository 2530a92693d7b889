// cpu_rope.c: rotary position embedding, rotate-half layout (HF, and mlx with
// traditional=False): dims i and i + rot/2 form a pair.
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

// cos/sin (T, rot/2) for positions pos_offset + t, in fp32 as transformers does.
static void rope_tables(float *cs, float *sn, const float *inv_freq, float scaling, int T, int half, int pos_offset) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float a = (float)(pos_offset + t) * inv_freq[i];
            cs[t * half + i] = cosf(a) * scaling;
            sn[t * half + i] = sinf(a) * scaling;
        }
}

// x (B, T, H, D) -> out (B, T, H, D) (may alias x); with backward set, applies
// the transpose rotation and accumulates into out.
static void rope_apply(float *out, const float *x, const float *inv_freq, float scaling, int B, int T, int H, int D,
                       int rot, int pos_offset, int backward) {
    int half = rot / 2;
    float *cs = malloc(sizeof(float) * (size_t)(2 * T * half + 1));
    float *sn = cs + T * half;
    rope_tables(cs, sn, inv_freq, scaling, T, half, pos_offset);
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * T * H * D >= CT_CPU_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *c = cs + t * half, *s = sn + t * half;
            for (int h = 0; h < H; h++) {
                int64_t base = (((int64_t)b * T + t) * H + h) * D;
                const float *xi = x + base;
                float *yo = out + base;
                for (int i = 0; i < half; i++) {
                    float x1 = xi[i], x2 = xi[i + half];
                    if (!backward) {
                        yo[i] = x1 * c[i] + (-x2) * s[i];
                        yo[i + half] = x2 * c[i] + x1 * s[i];
                    } else {
                        yo[i] += x1 * c[i] + x2 * s[i];
                        yo[i + half] += x2 * c[i] - x1 * s[i];
                    }
                }
                for (int i = rot; i < D; i++)
                    yo[i] = backward ? yo[i] + xi[i] : xi[i];
            }
        }
    free(cs);
}

void ct_cpu_rope_forward(ct_backend *be, float *out, const float *x, const float *inv_freq, float attn_scaling, int B,
                         int T, int H, int D, int rot_dims, int pos_offset) {
    (void)be;
    rope_apply(out, x, inv_freq, attn_scaling, B, T, H, D, rot_dims, pos_offset, 0);
}

void ct_cpu_rope_backward(ct_backend *be, float *dx, const float *dout, const float *inv_freq, float attn_scaling,
                          int B, int T, int H, int D, int rot_dims, int pos_offset) {
    (void)be;
    rope_apply(dx, dout, inv_freq, attn_scaling, B, T, H, D, rot_dims, pos_offset, 1);
}
