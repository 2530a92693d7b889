// affine_quant.h: MLX's affine quantization format, bit for bit.
// A weight W (rows, in) is cut into groups of g consecutive elements along a
// row. Each group stores one scale s and one bias b (f32, f16 or bf16) and
// `bits`-bit codes q in [0, 2^bits - 1]; the value is s*q + b. Codes form a
// little-endian LSB-first bit stream per row, packed into uint32 words
// (in*bits/32 words per row); 3-, 5- and 6-bit codes are written byte-wise
// (8 codes in 3 or 5 bytes, 4 codes in 3 bytes), which gives the same stream.
// Quantization follows mlx.core.quantize's rule exactly (fp32 arithmetic, the
// sign trick that makes 0.0 exactly representable): see docs/design-ops.md.
#ifndef CTUNE_AFFINE_QUANT_H
#define CTUNE_AFFINE_QUANT_H

#include <stdint.h>

#include "ctune/dtype.h"
#include "ctune/error.h"

// Fails unless bits is 2,3,4,5,6,8, group_size is 32,64,128 and g divides in.
// `what` names the tensor in the message.
ct_status ct_affine_check(int bits, int group_size, int64_t in, const char *what, ct_error *err);
// uint32 words per row of in codes.
int64_t ct_affine_row_words(int64_t in, int bits);

// w (rows, in) f32 -> wq (rows, in*bits/32) u32, scales and biases (rows, in/g)
// of type sb (CT_F32, CT_F16 or CT_BF16).
ct_status ct_affine_quantize(const float *w, int64_t rows, int64_t in, int bits, int group_size,
                             uint32_t *wq, void *scales, void *biases, ct_dtype sb, ct_error *err);

// Unpacks n codes from the start of a packed stream (n*bits/8 bytes) -> codes (n).
void ct_affine_unpack(const void *packed, int64_t n, int bits, uint8_t *codes);

// One row back to f32: codes of row r times its scales plus its biases.
// wq_row (in*bits/32), scales_row, biases_row (in/g) of type sb -> out (in).
void ct_affine_dequantize_row(const uint32_t *wq_row, const void *scales_row, const void *biases_row,
                              ct_dtype sb, int64_t in, int bits, int group_size, float *out);

// Whole matrix: wq (rows, in*bits/32), scales/biases (rows, in/g) -> out (rows, in).
void ct_affine_dequantize(const uint32_t *wq, const void *scales, const void *biases, ct_dtype sb,
                          int64_t rows, int64_t in, int bits, int group_size, float *out);

// Gradients of the scales and biases (DWQ learns them): with w = s*q + b in
// each group, ds[g] += sum over the group of dW*q and db[g] += sum of dW.
// dw (rows, in) f32 is the gradient of the dequantized weight (a linear's
// dweight); wq (rows, in*bits/32) -> dscales, dbiases (rows, in/g) f32, accumulated.
void ct_affine_scale_bias_grad(const float *dw, const uint32_t *wq, int64_t rows, int64_t in, int bits,
                               int group_size, float *dscales, float *dbiases);

#endif
