// quant_internal.c: the pieces gptq.c and awq.c share (see quant_internal.h).
#include "quant_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"

void quant_module_name(char *buf, size_t n, int l, ct_linear_id id) {
    bool attn = id == CT_LIN_Q || id == CT_LIN_K || id == CT_LIN_V || id == CT_LIN_O;
    snprintf(buf, n, "model.layers.%d.%s.%s", l, attn ? "self_attn" : "mlp", ct_linear_name(id));
}

int quant_input_slot(ct_linear_id id) {
    switch (id) {
    case CT_LIN_Q: return 0;
    case CT_LIN_O: return 1;
    case CT_LIN_GATE: return 2;
    case CT_LIN_DOWN: return 3;
    default: return -1;
    }
}

int quant_weight_slot(ct_linear_id id) {
    return id == CT_LIN_K || id == CT_LIN_V ? 0 : id == CT_LIN_UP ? 2 : quant_input_slot(id);
}

float quant_round_sb(float x, ct_dtype sb) {
    if (sb == CT_F16)
        return ct_f16_to_f32(ct_f32_to_f16(x));
    if (sb == CT_BF16)
        return ct_bf16_to_f32(ct_f32_to_bf16(x));
    return x;
}

void quant_store_sb(void *dst, const float *x, size_t n, ct_dtype sb) {
    if (sb == CT_F32) {
        memcpy(dst, x, n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = sb == CT_F16 ? ct_f32_to_f16(x[i]) : ct_f32_to_bf16(x[i]);
}

ct_status quant_output_dtype(const char *dtype, const ct_model *m, ct_dtype *sb, ct_error *err) {
    const char *name = dtype ? dtype : m->cfg.dtype;
    ct_dtype own = m->layers[0].lin[CT_LIN_Q].w.dtype;
    *sb = own == CT_F16 || own == CT_BF16 ? own : CT_F32;
    if (!strcmp(name, "float16"))
        *sb = CT_F16;
    else if (!strcmp(name, "bfloat16"))
        *sb = CT_BF16;
    else if (!strcmp(name, "float32"))
        *sb = CT_F32;
    else if (dtype)
        return ct_fail(err, CT_ERR_INVALID, "--dtype: '%s' is not one of float16, bfloat16, float32", name);
    return CT_OK;
}

ct_status quant_check_arch(const ct_model *m, const char *path, const char *method, ct_error *err) {
    ct_arch a = m->cfg.arch;
    if (a != CT_ARCH_LLAMA && a != CT_ARCH_MISTRAL && a != CT_ARCH_QWEN2 && a != CT_ARCH_QWEN3 &&
        a != CT_ARCH_GEMMA3)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: %s handles llama, mistral, qwen2, qwen3 and gemma3 models, not %s",
                       path, method, m->cfg.model_type);
    return CT_OK;
}

const char *quant_ffn_norm_name(const ct_model *m) {
    return m->cfg.arch == CT_ARCH_GEMMA2 || m->cfg.arch == CT_ARCH_GEMMA3 ? "pre_feedforward_layernorm"
                                                                          : "post_attention_layernorm";
}

ct_status quant_results_add(quant_results *R, const char *module, int64_t rows, int64_t in, int bits,
                            int group_size, uint32_t *wq, void *scales, void *biases, ct_error *err) {
    if (R->n == R->cap) {
        int cap = R->cap ? 2 * R->cap : 64;
        quant_result *r = realloc(R->r, sizeof *r * (size_t)cap);
        if (!r) {
            free(wq), free(scales), free(biases);
            return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
        }
        R->r = r;
        R->cap = cap;
    }
    quant_result *r = &R->r[R->n++];
    *r = (quant_result){.rows = rows, .in = in, .bits = bits, .group_size = group_size, .wq = wq,
                        .scales = scales, .biases = biases};
    snprintf(r->module, sizeof r->module, "%s", module);
    return CT_OK;
}

const quant_result *quant_results_find(const quant_results *R, const char *module) {
    for (int i = 0; i < R->n; i++)
        if (!strcmp(R->r[i].module, module))
            return &R->r[i];
    return NULL;
}

void quant_results_free(quant_results *R) {
    for (int i = 0; i < R->n; i++)
        free(R->r[i].wq), free(R->r[i].scales), free(R->r[i].biases);
    free(R->r);
    R->r = NULL;
    R->n = R->cap = 0;
}

ct_status quant_results_emit(const quant_results *R, const char *module, int64_t rows, int64_t in,
                             const ct_quant_spec *s, ct_dtype sb, uint32_t *wq, void *scales, void *biases,
                             bool *done, ct_error *err) {
    const quant_result *r = quant_results_find(R, module);
    *done = false;
    if (!r)
        return CT_OK;
    if (sb != R->sb || rows != r->rows || in != r->in || s->bits != r->bits || s->group_size != r->group_size)
        return ct_fail(err, CT_ERR_INVALID,
                       "%s: written as %s (%lld, %lld) %d-bit g%d but quantized as %s (%lld, %lld) %d-bit g%d",
                       module, ct_dtype_name(sb), (long long)rows, (long long)in, s->bits, s->group_size,
                       ct_dtype_name(R->sb), (long long)r->rows, (long long)r->in, r->bits, r->group_size);
    size_t ng = (size_t)(in / r->group_size);
    memcpy(wq, r->wq, sizeof(uint32_t) * (size_t)(rows * ct_affine_row_words(in, r->bits)));
    memcpy(scales, r->scales, ct_dtype_size(sb) * (size_t)rows * ng);
    memcpy(biases, r->biases, ct_dtype_size(sb) * (size_t)rows * ng);
    *done = true;
    return CT_OK;
}

ct_quant_spec quant_results_spec(const quant_results *R, const char *module, int64_t in, int bits, int group_size,
                                 int other_bits, int other_group_size, bool *override) {
    ct_quant_spec s = {.quantized = true, .mode = "affine", .bits = bits, .group_size = group_size};
    *override = false;
    if (!strncmp(module, "model.layers.", 13)) {
        s.quantized = quant_results_find(R, module) != NULL;
        return s;
    }
    s.bits = other_bits;
    s.group_size = other_group_size;
    s.quantized = in % s.group_size == 0;
    *override = s.quantized;
    return s;
}
