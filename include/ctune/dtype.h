// dtype.h: element types of stored tensors (the safetensors set, which also
// covers GGUF's plain types) and exact scalar conversions to and from f32.
// Conversions to narrower types round to nearest, ties to even, like PyTorch.
#ifndef CTUNE_DTYPE_H
#define CTUNE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ct_dtype {
    CT_F32 = 0,
    CT_F16,
    CT_BF16,
    CT_F64,
    CT_I64,
    CT_I32,
    CT_I16,
    CT_I8,
    CT_U64,
    CT_U32,
    CT_U16,
    CT_U8,
    CT_BOOL,
    CT_F8_E4M3, // OCP E4M3FN: no infinities, 0x7f/0xff are NaN, max 448
    CT_F8_E5M2, // IEEE-like E5M2 with infinities
    CT_DTYPE_COUNT
} ct_dtype;

size_t ct_dtype_size(ct_dtype t);         // bytes per element
const char *ct_dtype_name(ct_dtype t);    // safetensors spelling: "F32", "BF16", "F8_E4M3", ...
// Parses a safetensors dtype name; false if unknown.
bool ct_dtype_from_name(const char *name, ct_dtype *out);
bool ct_dtype_is_float(ct_dtype t);

float ct_f16_to_f32(uint16_t h);
uint16_t ct_f32_to_f16(float f);
float ct_bf16_to_f32(uint16_t b);
uint16_t ct_f32_to_bf16(float f);
float ct_f8e4m3_to_f32(uint8_t v);
float ct_f8e5m2_to_f32(uint8_t v);

// Converts n elements of type t at src to f32 (any dtype, integers included).
void ct_convert_to_f32(float *dst, const void *src, ct_dtype t, size_t n);

#endif
