// Gradients of MLX affine scales and biases (see include/ctune/affine_quant.h).
#include <stdlib.h>

#include "ctune/affine_quant.h"

void ct_affine_scale_bias_grad(const float *dw, const uint32_t *wq, int64_t rows, int64_t in, int bits,
                               int group_size, float *dscales, float *dbiases) {
    int64_t words = ct_affine_row_words(in, bits), groups = in / group_size;
#pragma omp parallel
    {
        uint8_t *codes = malloc((size_t)in);
#pragma omp for
        for (int64_t r = 0; r < rows; r++) {
            if (!codes)
                continue;
            ct_affine_unpack(wq + r * words, in, bits, codes);
            const float *g = dw + r * in;
            for (int64_t k = 0; k < groups; k++) {
                double ds = 0, db = 0;
                for (int64_t j = k * group_size; j < (k + 1) * group_size; j++) {
                    ds += (double)g[j] * codes[j];
                    db += g[j];
                }
                dscales[r * groups + k] += (float)ds;
                dbiases[r * groups + k] += (float)db;
            }
        }
        free(codes);
    }
}
