// ggml_quants.h: ggml's tensor element types (the "type" field of a GGUF
// tensor) and their block formats. A row of n elements of a block type is
// n / block_size blocks of type_size bytes each; n must be a multiple of the
// block size. Dequantization to f32 follows ggml's reference C code
// (ggml-quants.c, dequantize_row_*) operation for operation, so results are
// bitwise identical; quantization (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) follows
// ggml's quantize_row_*_ref rounding exactly.
#ifndef CTUNE_GGML_QUANTS_H
#define CTUNE_GGML_QUANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"

// Values are ggml's type numbers as stored in GGUF files.
typedef enum ct_ggml_type {
    CT_GGML_F32 = 0,
    CT_GGML_F16 = 1,
    CT_GGML_Q4_0 = 2,
    CT_GGML_Q4_1 = 3,
    CT_GGML_Q5_0 = 6,
    CT_GGML_Q5_1 = 7,
    CT_GGML_Q8_0 = 8,
    CT_GGML_Q8_1 = 9,
    CT_GGML_Q2_K = 10,
    CT_GGML_Q3_K = 11,
    CT_GGML_Q4_K = 12,
    CT_GGML_Q5_K = 13,
    CT_GGML_Q6_K = 14,
    CT_GGML_Q8_K = 15,
    CT_GGML_IQ2_XXS = 16,
    CT_GGML_IQ2_XS = 17,
    CT_GGML_IQ3_XXS = 18,
    CT_GGML_IQ1_S = 19,
    CT_GGML_IQ4_NL = 20,
    CT_GGML_IQ3_S = 21,
    CT_GGML_IQ2_S = 22,
    CT_GGML_IQ4_XS = 23,
    CT_GGML_I8 = 24,
    CT_GGML_I16 = 25,
    CT_GGML_I32 = 26,
    CT_GGML_I64 = 27,
    CT_GGML_F64 = 28,
    CT_GGML_IQ1_M = 29,
    CT_GGML_BF16 = 30,
    CT_GGML_TQ1_0 = 34,
    CT_GGML_TQ2_0 = 35,
    CT_GGML_MXFP4 = 39,
    CT_GGML_TYPE_LIMIT = 40, // one past the largest type number ctune knows
} ct_ggml_type;

// Elements per block in the K-quant ("super-block") formats.
#define CT_GGML_QK_K 256

// True if t is a type number ggml defines (unused numbers 4, 5, 31-33 are not).
bool ct_ggml_type_valid(uint32_t t);
// ggml's name ("Q4_K", "BF16"), or NULL if t is not valid.
const char *ct_ggml_type_name(ct_ggml_type t);
// Elements per block (1 for plain types) and bytes per block; 0 if t is not valid.
int64_t ct_ggml_block_size(ct_ggml_type t);
size_t ct_ggml_type_size(ct_ggml_type t);
// Bytes of a row of n elements; 0 if t is invalid or n is not a multiple of the block size.
size_t ct_ggml_row_size(ct_ggml_type t, int64_t n);

// True if ct_ggml_dequantize / ct_ggml_quantize handle t.
bool ct_ggml_can_dequantize(ct_ggml_type t);
bool ct_ggml_can_quantize(ct_ggml_type t);

// src: ct_ggml_row_size(t, n) bytes -> dst: n floats. n a multiple of the block size.
ct_status ct_ggml_dequantize(ct_ggml_type t, const void *src, float *dst, int64_t n, ct_error *err);
// src: n floats -> dst: ct_ggml_row_size(t, n) bytes. Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
ct_status ct_ggml_quantize(ct_ggml_type t, const float *src, void *dst, int64_t n, ct_error *err);

#endif
