// model_gguf.c: GGUF tensors as model weights. F32/F16/BF16 stay dense in
// their type; Q4_0, Q4_1 and Q8_0 become MLX affine group-32 weights without
// loss (Q4_1: scale d, bias m; Q4_0: codes q, bias -8d; Q8_0: 8-bit codes
// q+128, bias -128d; scales and biases in f16, where d*8 and d*128 are exact);
// other block types are dequantized to f32. llama.cpp's convert script permutes
// the q/k rows of llama models (interleaved RoPE pairs): permute_heads undoes it.
// It stores gemma3's RMSNorm weights as w + 1 (Gemma3RMSNorm scales by 1 + w):
// model_gguf_norm subtracts the source's shift again.
#include <stdlib.h>
#include <string.h>

#include "ctune/dtype.h"
#include "model_internal.h"

static ct_status find(ct_model *m, const char *name, int64_t rows, int64_t cols, const ct_gguf_tensor **out,
                      ct_error *err) {
    const ct_gguf_tensor *t = ct_gguf_find_tensor(&m->src->gguf, name);
    if (!t)
        return ct_fail(err, CT_ERR_FORMAT, "missing tensor %s", name);
    bool ok = rows < 0 ? (t->ndim == 1 && t->ne[0] == cols) : (t->ndim == 2 && t->ne[0] == cols && t->ne[1] == rows);
    if (!ok) {
        if (rows < 0)
            return ct_fail(err, CT_ERR_FORMAT, "tensor %s: expected shape (%lld), found ne = [%lld, %lld] (ndim %u)",
                           name, (long long)cols, (long long)t->ne[0], (long long)t->ne[1], t->ndim);
        return ct_fail(err, CT_ERR_FORMAT,
                       "tensor %s: expected shape (%lld, %lld) (GGUF ne [%lld, %lld]), found ne = [%lld, %lld] (ndim %u)",
                       name, (long long)rows, (long long)cols, (long long)cols, (long long)rows, (long long)t->ne[0],
                       (long long)t->ne[1], t->ndim);
    }
    *out = t;
    return CT_OK;
}

// A vector (n) as f32 on the device, minus shift.
static ct_status vector_shifted(ct_model *m, const char *name, int64_t n, bool optional, float shift, float **out,
                                ct_error *err) {
    *out = NULL;
    if (optional && !ct_gguf_find_tensor(&m->src->gguf, name))
        return CT_OK;
    const ct_gguf_tensor *t;
    CT_TRY(find(m, name, -1, n, &t, err));
    float *host = malloc(sizeof(float) * (size_t)n);
    if (!host)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
    ct_status st = ct_gguf_tensor_to_f32(&m->src->gguf, t, host, err);
    for (int64_t i = 0; st == CT_OK && shift != 0.0f && i < n; i++)
        host[i] -= shift;
    if (st == CT_OK)
        st = model_device_buffer(m, host, sizeof(float) * (size_t)n, (void **)out, err);
    free(host);
    return st;
}

ct_status model_gguf_vector(ct_model *m, const char *name, int64_t n, bool optional, float **out, ct_error *err) {
    return vector_shifted(m, name, n, optional, 0.0f, out, err);
}

ct_status model_gguf_norm(ct_model *m, const char *name, int64_t n, float **out, ct_error *err) {
    return vector_shifted(m, name, n, false, m->src->gguf_norm_shift, out, err);
}

// One GGUF block row (cols elements) of Q4_0/Q4_1/Q8_0 -> affine codes, scales, biases (f16).
static void block_row_to_affine(ct_ggml_type type, const uint8_t *src, int64_t cols, uint8_t *codes,
                                uint16_t *scales, uint16_t *biases) {
    int64_t nb = cols / 32;
    for (int64_t b = 0; b < nb; b++) {
        uint16_t d;
        memcpy(&d, src, 2);
        float df = ct_f16_to_f32(d);
        scales[b] = d;
        if (type == CT_GGML_Q8_0) {
            const int8_t *qs = (const int8_t *)(src + 2);
            for (int k = 0; k < 32; k++)
                codes[b * 32 + k] = (uint8_t)(qs[k] + 128);
            biases[b] = ct_f32_to_f16(-128.0f * df);
            src += 34;
            continue;
        }
        const uint8_t *qs;
        if (type == CT_GGML_Q4_1) {
            memcpy(&biases[b], src + 2, 2);
            qs = src + 4;
            src += 20;
        } else {
            biases[b] = ct_f32_to_f16(-8.0f * df);
            qs = src + 2;
            src += 18;
        }
        // ggml: element j < 16 is qs[j] & 15, element j + 16 is qs[j] >> 4;
        // MLX 4-bit: element k is nibble k of the LSB-first stream.
        uint8_t *out = codes + b * 16;
        for (int k = 0; k < 16; k++) {
            int e0 = 2 * k, e1 = 2 * k + 1;
            uint8_t c0 = e0 < 16 ? (qs[e0] & 15) : (qs[e0 - 16] >> 4);
            uint8_t c1 = e1 < 16 ? (qs[e1] & 15) : (qs[e1 - 16] >> 4);
            out[k] = (uint8_t)(c0 | (c1 << 4));
        }
    }
}

static ct_status affine_weight(ct_model *m, const ct_gguf_tensor *t, int64_t rows, int64_t cols, int heads,
                               ct_weight *w, ct_error *err) {
    int bits = t->type == CT_GGML_Q8_0 ? 8 : 4;
    size_t code_row = (size_t)cols * (size_t)bits / 8, sb_row = (size_t)(cols / 32);
    size_t src_row = ct_ggml_row_size(t->type, cols);
    uint8_t *codes = malloc(code_row * (size_t)rows);
    uint16_t *scales = malloc(sizeof(uint16_t) * sb_row * (size_t)rows);
    uint16_t *biases = malloc(sizeof(uint16_t) * sb_row * (size_t)rows);
    ct_status st = CT_OK;
    if (!codes || !scales || !biases)
        st = ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    for (int64_t r = 0; st == CT_OK && r < rows; r++)
        block_row_to_affine(t->type, (const uint8_t *)t->data + src_row * (size_t)ct_gguf_llama_qk_row(r, rows, heads), cols,
                            codes + code_row * (size_t)r, scales + sb_row * (size_t)r, biases + sb_row * (size_t)r);
    w->bits = bits;
    w->group_size = 32;
    w->dtype = CT_F16;
    if (st == CT_OK)
        st = model_device_buffer(m, codes, code_row * (size_t)rows, (void **)&w->data, err);
    if (st == CT_OK)
        st = model_device_buffer(m, scales, sizeof(uint16_t) * sb_row * (size_t)rows, (void **)&w->scales, err);
    if (st == CT_OK)
        st = model_device_buffer(m, biases, sizeof(uint16_t) * sb_row * (size_t)rows, (void **)&w->biases, err);
    free(codes);
    free(scales);
    free(biases);
    return st;
}

// Dense rows in HF order: F32/F16/BF16 as stored (uploaded straight from the
// mapping when no permutation is needed), other types dequantized to f32.
static ct_status dense_weight(ct_model *m, const ct_gguf_tensor *t, int64_t rows, int64_t cols, int heads,
                              ct_weight *w, ct_error *err) {
    bool keep = t->type == CT_GGML_F32 || t->type == CT_GGML_F16 || t->type == CT_GGML_BF16;
    w->dtype = t->type == CT_GGML_F16 ? CT_F16 : t->type == CT_GGML_BF16 ? CT_BF16 : CT_F32;
    size_t src_row = ct_ggml_row_size(t->type, cols);
    size_t dst_row = (size_t)cols * ct_dtype_size(w->dtype);
    if (keep && heads == 0)
        return model_device_buffer(m, t->data, dst_row * (size_t)rows, (void **)&w->data, err);
    uint8_t *host = malloc(dst_row * (size_t)rows);
    if (!host)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    ct_status st = CT_OK;
    for (int64_t r = 0; st == CT_OK && r < rows; r++) {
        const uint8_t *src = (const uint8_t *)t->data + src_row * (size_t)ct_gguf_llama_qk_row(r, rows, heads);
        if (keep)
            memcpy(host + dst_row * (size_t)r, src, dst_row);
        else
            st = ct_ggml_dequantize(t->type, src, (float *)(host + dst_row * (size_t)r), cols, err);
    }
    if (st == CT_OK)
        st = model_device_buffer(m, host, dst_row * (size_t)rows, (void **)&w->data, err);
    free(host);
    if (st != CT_OK)
        ct_error_context(err, "tensor %s", t->name);
    return st;
}

ct_status model_gguf_weight(ct_model *m, const char *name, int64_t rows, int64_t cols, int permute_heads,
                            ct_weight *out, ct_error *err) {
    const ct_gguf_tensor *t;
    CT_TRY(find(m, name, rows, cols, &t, err));
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    if (permute_heads > 0 && (rows % permute_heads || (rows / permute_heads) % 2))
        return ct_fail(err, CT_ERR_FORMAT, "tensor %s: %lld rows do not split into %d heads of even size", name,
                       (long long)rows, permute_heads);
    if (t->type == CT_GGML_Q4_0 || t->type == CT_GGML_Q4_1 || t->type == CT_GGML_Q8_0)
        return affine_weight(m, t, rows, cols, permute_heads, out, err);
    if (!ct_ggml_can_dequantize(t->type))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "tensor %s: unsupported GGUF type %s", name,
                       ct_ggml_type_name(t->type) ? ct_ggml_type_name(t->type) : "?");
    return dense_weight(m, t, rows, cols, permute_heads, out, err);
}
