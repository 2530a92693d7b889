#include "ctune/dtype.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[CT_DTYPE_COUNT] = {
    [CT_F32] = {"F32", 4},   [CT_F16] = {"F16", 2},     [CT_BF16] = {"BF16", 2},
    [CT_F64] = {"F64", 8},   [CT_I64] = {"I64", 8},     [CT_I32] = {"I32", 4},
    [CT_I16] = {"I16", 2},   [CT_I8] = {"I8", 1},       [CT_U64] = {"U64", 8},
    [CT_U32] = {"U32", 4},   [CT_U16] = {"U16", 2},     [CT_U8] = {"U8", 1},
    [CT_BOOL] = {"BOOL", 1}, [CT_F8_E4M3] = {"F8_E4M3", 1}, [CT_F8_E5M2] = {"F8_E5M2", 1},
};

size_t ct_dtype_size(ct_dtype t) { return (unsigned)t < CT_DTYPE_COUNT ? DTYPES[t].size : 0; }
const char *ct_dtype_name(ct_dtype t) { return (unsigned)t < CT_DTYPE_COUNT ? DTYPES[t].name : "?"; }

bool ct_dtype_from_name(const char *name, ct_dtype *out) {
    for (int i = 0; i < CT_DTYPE_COUNT; i++) {
        if (!strcmp(name, DTYPES[i].name)) {
            *out = (ct_dtype)i;
            return true;
        }
    }
    return false;
}

bool ct_dtype_is_float(ct_dtype t) {
    return t == CT_F32 || t == CT_F16 || t == CT_BF16 || t == CT_F64 || t == CT_F8_E4M3 || t == CT_F8_E5M2;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float ct_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_to_f32(sign | 0x7f800000u | (man << 13)); // inf / nan
    if (exp == 0) {
        float v = ldexpf((float)man, -24); // subnormal or zero
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ct_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00; // nan
    if (a >= 0x47800000u) {   // >= 65536: overflow to inf (65520 rounds to inf too, below)
        return sign | 0x7c00;
    }
    if (a < 0x38800000u) { // below the smallest normal f16 (2^-14): subnormal, RNE
        float v = bits_to_f32(a);
        float q = v * 16777216.0f; // v / 2^-24, exact scaling
        uint32_t m = (uint32_t)nearbyintf(q); // default rounding mode: ties to even
        return sign | (uint16_t)m;
    }
    uint32_t exp = (a >> 23) - 112, man = a & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++; // may carry into the exponent, up to inf: correct
    return sign | (uint16_t)h;
}

float ct_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t ct_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); // quiet nan
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float ct_f8e4m3_to_f32(uint8_t v) {
    int sign = v & 0x80, exp = (v >> 3) & 0xf, man = v & 7;
    float r;
    if (exp == 0xf && man == 7)
        r = NAN;
    else if (exp == 0)
        r = ldexpf((float)man, -9);
    else
        r = ldexpf((float)(8 + man), exp - 10);
    return sign ? -r : r;
}

float ct_f8e5m2_to_f32(uint8_t v) { return ct_f16_to_f32((uint16_t)(v << 8)); }

void ct_convert_to_f32(float *dst, const void *src, ct_dtype t, size_t n) {
    switch (t) {
    case CT_F32: memcpy(dst, src, n * 4); break;
    case CT_F16: for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, (const char *)src + 2 * i, 2); dst[i] = ct_f16_to_f32(h); } break;
    case CT_BF16: for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, (const char *)src + 2 * i, 2); dst[i] = ct_bf16_to_f32(h); } break;
    case CT_F64: for (size_t i = 0; i < n; i++) { double d; memcpy(&d, (const char *)src + 8 * i, 8); dst[i] = (float)d; } break;
    case CT_I64: for (size_t i = 0; i < n; i++) { int64_t x; memcpy(&x, (const char *)src + 8 * i, 8); dst[i] = (float)x; } break;
    case CT_I32: for (size_t i = 0; i < n; i++) { int32_t x; memcpy(&x, (const char *)src + 4 * i, 4); dst[i] = (float)x; } break;
    case CT_I16: for (size_t i = 0; i < n; i++) { int16_t x; memcpy(&x, (const char *)src + 2 * i, 2); dst[i] = (float)x; } break;
    case CT_I8: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)src)[i]; break;
    case CT_U64: for (size_t i = 0; i < n; i++) { uint64_t x; memcpy(&x, (const char *)src + 8 * i, 8); dst[i] = (float)x; } break;
    case CT_U32: for (size_t i = 0; i < n; i++) { uint32_t x; memcpy(&x, (const char *)src + 4 * i, 4); dst[i] = (float)x; } break;
    case CT_U16: for (size_t i = 0; i < n; i++) { uint16_t x; memcpy(&x, (const char *)src + 2 * i, 2); dst[i] = (float)x; } break;
    case CT_U8: case CT_BOOL: for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i]; break;
    case CT_F8_E4M3: for (size_t i = 0; i < n; i++) dst[i] = ct_f8e4m3_to_f32(((const uint8_t *)src)[i]); break;
    case CT_F8_E5M2: for (size_t i = 0; i < n; i++) dst[i] = ct_f8e5m2_to_f32(((const uint8_t *)src)[i]); break;
    case CT_DTYPE_COUNT: break;
    }
}
