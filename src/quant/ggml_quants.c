// ggml block formats: type table, dequantize-to-f32, reference quantizers.
// Each block loop mirrors ggml's reference C code (dequantize_row_*,
// quantize_row_*_ref) with the same float operations in the same order, so
// results are bitwise identical to ggml and to gguf-py's numpy versions.
// Expressions like `d * q - m` must not be contracted into fused multiply-adds
// (that would change the rounding): gcc in -std=c11 mode does not contract,
// and the pragma below stops clang.
#include "ctune/ggml_quants.h"

#include <math.h>
#include <string.h>

#include "ctune/dtype.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

typedef struct ggml_type_info {
    const char *name;
    int64_t block_size;
    size_t type_size;
} ggml_type_info;

#define QK_K CT_GGML_QK_K

static const ggml_type_info TYPES[CT_GGML_TYPE_LIMIT] = {
    [CT_GGML_F32] = {"F32", 1, 4},
    [CT_GGML_F16] = {"F16", 1, 2},
    [CT_GGML_Q4_0] = {"Q4_0", 32, 2 + 16},
    [CT_GGML_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [CT_GGML_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [CT_GGML_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [CT_GGML_Q8_0] = {"Q8_0", 32, 2 + 32},
    [CT_GGML_Q8_1] = {"Q8_1", 32, 4 + 4 + 32},
    [CT_GGML_Q2_K] = {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4},
    [CT_GGML_Q3_K] = {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12},
    [CT_GGML_Q4_K] = {"Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12},
    [CT_GGML_Q5_K] = {"Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12},
    [CT_GGML_Q6_K] = {"Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16},
    [CT_GGML_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 8},
    [CT_GGML_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 4},
    [CT_GGML_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32},
    [CT_GGML_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8},
    [CT_GGML_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16},
    [CT_GGML_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [CT_GGML_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4},
    [CT_GGML_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16},
    [CT_GGML_IQ4_XS] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64},
    [CT_GGML_I8] = {"I8", 1, 1},
    [CT_GGML_I16] = {"I16", 1, 2},
    [CT_GGML_I32] = {"I32", 1, 4},
    [CT_GGML_I64] = {"I64", 1, 8},
    [CT_GGML_F64] = {"F64", 1, 8},
    [CT_GGML_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [CT_GGML_BF16] = {"BF16", 1, 2},
    [CT_GGML_TQ1_0] = {"TQ1_0", QK_K, 2 + 4 * 13},
    [CT_GGML_TQ2_0] = {"TQ2_0", QK_K, 2 + 64},
    [CT_GGML_MXFP4] = {"MXFP4", 32, 1 + 16},
};

bool ct_ggml_type_valid(uint32_t t) { return t < CT_GGML_TYPE_LIMIT && TYPES[t].name != NULL; }

const char *ct_ggml_type_name(ct_ggml_type t) { return ct_ggml_type_valid((uint32_t)t) ? TYPES[t].name : NULL; }

int64_t ct_ggml_block_size(ct_ggml_type t) { return ct_ggml_type_valid((uint32_t)t) ? TYPES[t].block_size : 0; }

size_t ct_ggml_type_size(ct_ggml_type t) { return ct_ggml_type_valid((uint32_t)t) ? TYPES[t].type_size : 0; }

size_t ct_ggml_row_size(ct_ggml_type t, int64_t n) {
    int64_t bs = ct_ggml_block_size(t);
    if (bs == 0 || n < 0 || n % bs != 0)
        return 0;
    return (size_t)(n / bs) * TYPES[t].type_size;
}

bool ct_ggml_can_dequantize(ct_ggml_type t) {
    switch (t) {
    case CT_GGML_F32: case CT_GGML_F16: case CT_GGML_BF16: case CT_GGML_F64:
    case CT_GGML_I8: case CT_GGML_I16: case CT_GGML_I32: case CT_GGML_I64:
    case CT_GGML_Q4_0: case CT_GGML_Q4_1: case CT_GGML_Q5_0: case CT_GGML_Q5_1: case CT_GGML_Q8_0:
    case CT_GGML_Q2_K: case CT_GGML_Q3_K: case CT_GGML_Q4_K: case CT_GGML_Q5_K: case CT_GGML_Q6_K:
        return true;
    default:
        return false;
    }
}

bool ct_ggml_can_quantize(ct_ggml_type t) {
    switch (t) {
    case CT_GGML_F32: case CT_GGML_F16: case CT_GGML_BF16:
    case CT_GGML_Q4_0: case CT_GGML_Q4_1: case CT_GGML_Q5_0: case CT_GGML_Q5_1: case CT_GGML_Q8_0:
        return true;
    default:
        return false;
    }
}

// Little-endian loads from possibly unaligned bytes.
static float load_f16(const uint8_t *p) { return ct_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void store_f16(uint8_t *p, float f) {
    uint16_t h = ct_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

// ---- dequantization: one block of the format -> y (block_size floats) ----

// Q4_0: d (f16), qs[16]: element j in the low nibble of qs[j], j+16 in the high nibble.
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        int x0 = (qs[j] & 0x0F) - 8, x1 = (qs[j] >> 4) - 8;
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
    }
}

// Q4_1: d, m (f16), qs[16]: y = q * d + m.
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = load_f16(b), m = load_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        int x0 = qs[j] & 0x0F, x1 = qs[j] >> 4;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

// Q5_0: d (f16), qh (u32: bit j is bit 4 of element j), qs[16] low nibbles.
static void dq_q5_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    uint32_t qh = load_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int xh0 = (int)(((qh >> j) << 4) & 0x10), xh1 = (int)((qh >> (j + 12)) & 0x10);
        int x0 = ((qs[j] & 0x0F) | xh0) - 16, x1 = ((qs[j] >> 4) | xh1) - 16;
        y[j] = x0 * d;
        y[j + 16] = x1 * d;
    }
}

// Q5_1: d, m (f16), qh (u32), qs[16]: y = q * d + m.
static void dq_q5_1(const uint8_t *b, float *y) {
    float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh = load_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int xh0 = (int)(((qh >> j) << 4) & 0x10), xh1 = (int)((qh >> (j + 12)) & 0x10);
        int x0 = (qs[j] & 0x0F) | xh0, x1 = (qs[j] >> 4) | xh1;
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

// Q8_0: d (f16), qs[32] (i8).
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = load_f16(b);
    for (int j = 0; j < 32; j++)
        y[j] = (int8_t)b[2 + j] * d;
}

// Q2_K: scales[16] (4-bit scale | 4-bit min << 4), qs[64] (2-bit), d, dmin (f16).
static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = load_f16(b + 80), min = load_f16(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                int sc = scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
            }
        }
        q += 32;
    }
}

// Q3_K: hmask[32], qs[64] (low 2 bits), scales[12] (sixteen 6-bit scales), d (f16).
static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32, *s = b + 96;
    float d_all = load_f16(b + 108);
    int scales[16];
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        scales[j] = (lo | (hi << 4)) - 32;
    }
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                float dl = d_all * scales[is++];
                for (int l = 0; l < 16; l++) {
                    int k = l + 16 * half;
                    *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                }
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

// The eight 6-bit (scale, min) pairs packed into 12 bytes in Q4_K and Q5_K.
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K: d, dmin (f16), scales[12], qs[128]: y = d*sc * q - dmin*m per 32 elements.
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = load_f16(b), min = load_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int is = 0; is < 8; is += 2) {
        int sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
    }
}

// Q5_K: d, dmin (f16), scales[12], qh[32] (fifth bits), qs[128].
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = load_f16(b), min = load_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2) {
        int sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * sc, m1 = min * m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        ql += 32;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (i8), d (f16).
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = load_f16(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

typedef void (*block_fn)(const uint8_t *b, float *y);

static block_fn block_dequantizer(ct_ggml_type t) {
    switch (t) {
    case CT_GGML_Q4_0: return dq_q4_0;
    case CT_GGML_Q4_1: return dq_q4_1;
    case CT_GGML_Q5_0: return dq_q5_0;
    case CT_GGML_Q5_1: return dq_q5_1;
    case CT_GGML_Q8_0: return dq_q8_0;
    case CT_GGML_Q2_K: return dq_q2_k;
    case CT_GGML_Q3_K: return dq_q3_k;
    case CT_GGML_Q4_K: return dq_q4_k;
    case CT_GGML_Q5_K: return dq_q5_k;
    case CT_GGML_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

// Plain (block size 1) types, converted with the dtype module.
static bool plain_dtype(ct_ggml_type t, ct_dtype *out) {
    switch (t) {
    case CT_GGML_F32: *out = CT_F32; return true;
    case CT_GGML_F16: *out = CT_F16; return true;
    case CT_GGML_BF16: *out = CT_BF16; return true;
    case CT_GGML_F64: *out = CT_F64; return true;
    case CT_GGML_I8: *out = CT_I8; return true;
    case CT_GGML_I16: *out = CT_I16; return true;
    case CT_GGML_I32: *out = CT_I32; return true;
    case CT_GGML_I64: *out = CT_I64; return true;
    default: return false;
    }
}

static ct_status check_row(ct_ggml_type t, int64_t n, bool supported, const char *what, ct_error *err) {
    const char *name = ct_ggml_type_name(t);
    if (!name)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "unknown ggml type %d", (int)t);
    if (!supported)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "cannot %s ggml type %s", what, name);
    int64_t bs = ct_ggml_block_size(t);
    if (n < 0 || n % bs != 0)
        return ct_fail(err, CT_ERR_INVALID, "%s: %lld elements is not a multiple of the block size %lld", name,
                       (long long)n, (long long)bs);
    return CT_OK;
}

ct_status ct_ggml_dequantize(ct_ggml_type t, const void *src, float *dst, int64_t n, ct_error *err) {
    CT_TRY(check_row(t, n, ct_ggml_can_dequantize(t), "dequantize", err));
    ct_dtype dt;
    if (plain_dtype(t, &dt)) {
        ct_convert_to_f32(dst, src, dt, (size_t)n);
        return CT_OK;
    }
    block_fn fn = block_dequantizer(t);
    int64_t bs = ct_ggml_block_size(t);
    size_t ts = ct_ggml_type_size(t);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / bs; i++)
        fn(b + (size_t)i * ts, dst + i * bs);
    return CT_OK;
}

// ---- quantization (ggml's quantize_row_*_ref) ----

// Largest |x| and the signed value that has it (first one on ties).
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo)
            lo = x[j];
        if (x[j] > hi)
            hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static int imin(int a, int b) { return a < b ? a : b; }

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / ((1 << 7) - 1);
    float id = d != 0 ? 1.0f / d : 0.0f;
    store_f16(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void q_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -8;
    float id = d != 0 ? 1.0f / d : 0.0f;
    store_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int xi0 = imin(15, (int8_t)(x[j] * id + 8.5f));
        int xi1 = imin(15, (int8_t)(x[16 + j] * id + 8.5f));
        b[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

static void q_q4_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, 32, &min, &max);
    float d = (max - min) / ((1 << 4) - 1);
    float id = d != 0 ? 1.0f / d : 0.0f;
    store_f16(b, d);
    store_f16(b + 2, min);
    for (int j = 0; j < 16; j++) {
        int xi0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
        int xi1 = imin(15, (int8_t)((x[16 + j] - min) * id + 0.5f));
        b[4 + j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

static void store_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void q_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -16;
    float id = d != 0 ? 1.0f / d : 0.0f;
    store_f16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int xi0 = imin(31, (int8_t)(x[j] * id + 16.5f));
        int xi1 = imin(31, (int8_t)(x[16 + j] * id + 16.5f));
        b[6 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= (uint32_t)((xi0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((xi1 & 0x10) >> 4) << (j + 16);
    }
    store_u32(b + 2, qh);
}

static void q_q5_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, 32, &min, &max);
    float d = (max - min) / ((1 << 5) - 1);
    float id = d != 0 ? 1.0f / d : 0.0f;
    store_f16(b, d);
    store_f16(b + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        int xi0 = imin(31, (uint8_t)((x[j] - min) * id + 0.5f));
        int xi1 = imin(31, (uint8_t)((x[16 + j] - min) * id + 0.5f));
        b[8 + j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= (uint32_t)((xi0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((xi1 & 0x10) >> 4) << (j + 16);
    }
    store_u32(b + 4, qh);
}

// ggml_compute_fp32_to_bf16: NaN stays NaN (quieted), otherwise round to nearest even.
static uint16_t ggml_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

typedef void (*quant_fn)(const float *x, uint8_t *b);

static quant_fn block_quantizer(ct_ggml_type t) {
    switch (t) {
    case CT_GGML_Q8_0: return q_q8_0;
    case CT_GGML_Q4_0: return q_q4_0;
    case CT_GGML_Q4_1: return q_q4_1;
    case CT_GGML_Q5_0: return q_q5_0;
    case CT_GGML_Q5_1: return q_q5_1;
    default: return NULL;
    }
}

ct_status ct_ggml_quantize(ct_ggml_type t, const float *src, void *dst, int64_t n, ct_error *err) {
    CT_TRY(check_row(t, n, ct_ggml_can_quantize(t), "quantize to", err));
    uint8_t *out = dst;
    if (t == CT_GGML_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return CT_OK;
    }
    if (t == CT_GGML_F16 || t == CT_GGML_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = t == CT_GGML_F16 ? ct_f32_to_f16(src[i]) : ggml_bf16(src[i]);
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return CT_OK;
    }
    // The block quantizers convert scaled floats to small integers: a NaN or
    // infinity would make that conversion undefined, so reject them first.
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return ct_fail(err, CT_ERR_NUMERIC, "quantize to %s: element %lld is not finite", ct_ggml_type_name(t),
                           (long long)i);
    quant_fn fn = block_quantizer(t);
    size_t ts = ct_ggml_type_size(t);
    for (int64_t i = 0; i < n / 32; i++)
        fn(src + i * 32, out + (size_t)i * ts);
    return CT_OK;
}
