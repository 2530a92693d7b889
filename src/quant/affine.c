// affine.c: MLX affine quantization (see include/ctune/affine_quant.h).
// The packed stream is read and written as bytes: on a little-endian host
// the bytes of the uint32 words are the LSB-first stream MLX defines.
#include "ctune/affine_quant.h"

#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ctune's packed formats assume a little-endian host"
#endif

ct_status ct_affine_check(int bits, int group_size, int64_t in, const char *what, ct_error *err) {
    if (bits != 2 && bits != 3 && bits != 4 && bits != 5 && bits != 6 && bits != 8)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: affine quantization with %d bits (supported: 2, 3, 4, 5, 6, 8)",
                       what, bits);
    if (group_size != 32 && group_size != 64 && group_size != 128)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: affine group size %d (supported: 32, 64, 128)", what,
                       group_size);
    if (in <= 0 || in % group_size != 0)
        return ct_fail(err, CT_ERR_INVALID, "%s: last dimension %lld is not a multiple of the group size %d", what,
                       (long long)in, group_size);
    return CT_OK;
}

int64_t ct_affine_row_words(int64_t in, int bits) { return in * bits / 32; }

static float load_param(const void *p, ct_dtype t, int64_t i) {
    switch (t) {
    case CT_F16: return ct_f16_to_f32(((const uint16_t *)p)[i]);
    case CT_BF16: return ct_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static void store_param(void *p, ct_dtype t, int64_t i, float v) {
    switch (t) {
    case CT_F16: ((uint16_t *)p)[i] = ct_f32_to_f16(v); break;
    case CT_BF16: ((uint16_t *)p)[i] = ct_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

// mlx/backend/cpu/quantized.cpp's per-group rule, in fp32: the edge value
// (the one of min/max with the larger magnitude) is made exactly a code, so
// that 0.0 is representable; the scale is negative when that edge is the max.
static void group_params(const float *w, int g, int bits, float *scale_out, float *bias_out) {
    float n_bins = (float)((1 << bits) - 1);
    float w_min = INFINITY, w_max = -INFINITY;
    for (int j = 0; j < g; j++) {
        w_max = w[j] > w_max ? w[j] : w_max;
        w_min = w[j] < w_min ? w[j] : w_min;
    }
    int mask = fabsf(w_min) > fabsf(w_max);
    float scale = (w_max - w_min) / n_bins;
    scale = scale < 1e-7f ? 1e-7f : scale;
    scale = mask ? scale : -scale;
    float edge = mask ? w_min : w_max;
    float q0 = rintf(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
    }
    *scale_out = scale;
    *bias_out = bias;
}

static void put_code(uint8_t *bytes, int64_t k, int bits, unsigned code) {
    int64_t bit = k * bits;
    unsigned v = code << (bit & 7);
    bytes[bit >> 3] |= (uint8_t)v;
    if ((bit & 7) + bits > 8)
        bytes[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
}

ct_status ct_affine_quantize(const float *w, int64_t rows, int64_t in, int bits, int group_size,
                             uint32_t *wq, void *scales, void *biases, ct_dtype sb, ct_error *err) {
    CT_TRY(ct_affine_check(bits, group_size, in, "quantize", err));
    if (sb != CT_F32 && sb != CT_F16 && sb != CT_BF16)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "quantize: scales of type %s (use F32, F16 or BF16)",
                       ct_dtype_name(sb));
    float n_bins = (float)((1 << bits) - 1);
    int64_t words = ct_affine_row_words(in, bits), groups = in / group_size;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *bytes = (uint8_t *)(wq + r * words);
        memset(bytes, 0, (size_t)words * 4);
        for (int64_t gi = 0; gi < groups; gi++) {
            const float *wg = w + r * in + gi * group_size;
            float scale, bias;
            group_params(wg, group_size, bits, &scale, &bias);
            store_param(scales, sb, r * groups + gi, scale);
            store_param(biases, sb, r * groups + gi, bias);
            for (int j = 0; j < group_size; j++) {
                float q = rintf((wg[j] - bias) / scale);
                q = q > 0.0f ? q : 0.0f;
                q = q < n_bins ? q : n_bins;
                put_code(bytes, gi * group_size + j, bits, (unsigned)q);
            }
        }
    }
    return CT_OK;
}

void ct_affine_unpack(const void *packed, int64_t n, int bits, uint8_t *codes) {
    const uint8_t *bytes = packed;
    int64_t in = n;
    unsigned mask = (1u << bits) - 1;
    if (bits == 8) {
        memcpy(codes, bytes, (size_t)in);
    } else if (bits == 4) {
        for (int64_t i = 0; i < in / 2; i++) {
            codes[2 * i] = bytes[i] & 15;
            codes[2 * i + 1] = bytes[i] >> 4;
        }
    } else {
        for (int64_t k = 0; k < in; k++) {
            int64_t bit = k * bits;
            unsigned v = bytes[bit >> 3];
            if ((bit & 7) + bits > 8)
                v |= (unsigned)bytes[(bit >> 3) + 1] << 8;
            codes[k] = (uint8_t)((v >> (bit & 7)) & mask);
        }
    }
}

void ct_affine_dequantize_row(const uint32_t *wq_row, const void *scales_row, const void *biases_row,
                              ct_dtype sb, int64_t in, int bits, int group_size, float *out) {
    uint8_t codes[128];
    const uint8_t *bytes = (const uint8_t *)wq_row;
    for (int64_t g0 = 0; g0 < in; g0 += group_size) {
        float s = load_param(scales_row, sb, g0 / group_size);
        float b = load_param(biases_row, sb, g0 / group_size);
        // a group is a whole number of bytes: group_size*bits is a multiple of 8
        ct_affine_unpack(bytes + g0 * bits / 8, group_size, bits, codes);
        for (int j = 0; j < group_size; j++)
            out[g0 + j] = s * (float)codes[j] + b;
    }
}

void ct_affine_dequantize(const uint32_t *wq, const void *scales, const void *biases, ct_dtype sb,
                          int64_t rows, int64_t in, int bits, int group_size, float *out) {
    int64_t words = ct_affine_row_words(in, bits), groups = in / group_size;
    size_t esz = ct_dtype_size(sb);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        ct_affine_dequantize_row(wq + r * words, (const char *)scales + r * groups * esz,
                                 (const char *)biases + r * groups * esz, sb, in, bits, group_size,
                                 out + r * in);
}
