// Scale and bias gradients of an affine-quantized linear, against finite
// differences in double precision of L = sum(c * (x . deq(W)^T)).
#include <stdlib.h>

#include "ctune/affine_quant.h"
#include "harness.h"

enum { ROWS = 3, IN = 64, N = 5 };

// L(s, b) in double for fixed codes.
static double loss(const uint8_t *codes, const double *s, const double *b, const double *x, const double *c, int gs) {
    double l = 0;
    for (int n = 0; n < N; n++)
        for (int r = 0; r < ROWS; r++) {
            double y = 0;
            for (int j = 0; j < IN; j++) {
                int g = r * (IN / gs) + j / gs;
                y += x[n * IN + j] * (s[g] * codes[r * IN + j] + b[g]);
            }
            l += c[n * ROWS + r] * y;
        }
    return l;
}

TEST(affine_scale_bias_grad_matches_finite_differences) {
    ct_error err;
    const int bit_cases[3] = {2, 4, 8};
    for (int bi = 0; bi < 3; bi++) {
        int bits = bit_cases[bi], gs = 32, G = ROWS * IN / gs;
        float w[ROWS * IN], sc[ROWS * IN / 32], bs[ROWS * IN / 32];
        uint32_t wq[ROWS * IN];
        double x[N * IN], c[N * ROWS];
        srand(7 + bits);
        for (int i = 0; i < ROWS * IN; i++)
            w[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
        for (int i = 0; i < N * IN; i++)
            x[i] = (double)rand() / RAND_MAX - 0.5;
        for (int i = 0; i < N * ROWS; i++)
            c[i] = (double)rand() / RAND_MAX - 0.5;
        CHECK_OK(ct_affine_quantize(w, ROWS, IN, bits, gs, wq, sc, bs, CT_F32, &err), &err);
        uint8_t codes[ROWS * IN];
        for (int r = 0; r < ROWS; r++)
            ct_affine_unpack(wq + r * ct_affine_row_words(IN, bits), IN, bits, codes + r * IN);
        // dW = c^T x (rows, in): the gradient a linear's backward gives.
        float dw[ROWS * IN];
        for (int r = 0; r < ROWS; r++)
            for (int j = 0; j < IN; j++) {
                double acc = 0;
                for (int n = 0; n < N; n++)
                    acc += c[n * ROWS + r] * x[n * IN + j];
                dw[r * IN + j] = (float)acc;
            }
        float ds[ROWS * IN / 32] = {0}, db[ROWS * IN / 32] = {0};
        ct_affine_scale_bias_grad(dw, wq, ROWS, IN, bits, gs, ds, db);
        double s[ROWS * IN / 32], b[ROWS * IN / 32], worst = 0, scale = 0;
        for (int g = 0; g < G; g++)
            s[g] = sc[g], b[g] = bs[g];
        for (int g = 0; g < G; g++) {
            for (int which = 0; which < 2; which++) {
                double *p = which ? b : s, keep = p[g], h = 1e-6;
                p[g] = keep + h;
                double lp = loss(codes, s, b, x, c, gs);
                p[g] = keep - h;
                double lm = loss(codes, s, b, x, c, gs);
                p[g] = keep;
                double fd = (lp - lm) / (2 * h), an = which ? db[g] : ds[g];
                worst = fmax(worst, fabs(fd - an));
                scale = fmax(scale, fabs(fd));
            }
        }
        CHECK_MSG(worst / scale < 1e-5, "bits %d: relative error %.3g", bits, worst / scale);
        // A wrong rule (bias gradient without the codes' weighting swapped) would be far off.
        CHECK(fabs(ds[0] - db[0]) > 1e-3 * scale);
    }
}
