// convert.c: ctune convert, mlx_lm.convert's job (see convert.h). The source
// (HF/MLX folder or GGUF file) becomes a list of tensors under Hugging Face
// names; each is cast, quantized or de-quantized into an owned output buffer;
// the folder is written into "<out>.tmp-<pid>-XXXXXX" and renamed into place.
// Peak memory: the output tensors plus one tensor in f32.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_internal.h"
#include "ctune/affine_quant.h"
#include "ctune/log.h"

// ---- output tensors ----

// Appends a tensor; owned data is freed with the job (also on failure here).
// params: its count for total_parameters (-1: its elements).
static ct_status out_add_p(cv_job *j, const char *name, ct_dtype dt, int ndim, const int64_t *shape, void *data,
                           bool owned, int64_t params, ct_error *err) {
    if (j->n_out == j->cap_out) {
        int cap = j->cap_out ? 2 * j->cap_out : 64;
        ct_tensor_view *v = realloc(j->out, sizeof *v * (size_t)cap);
        if (v)
            j->out = v;
        void **d = v ? realloc(j->owned, sizeof *d * (size_t)cap) : NULL;
        if (!v || !d) {
            if (owned)
                free(data);
            return ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
        }
        j->owned = d;
        j->cap_out = cap;
    }
    ct_tensor_view *t = &j->out[j->n_out];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->dtype = dt;
    t->ndim = ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->nbytes = n * ct_dtype_size(dt);
    t->data = data;
    j->stats.total_parameters += params < 0 ? (uint64_t)n : (uint64_t)params;
    j->owned[j->n_out] = owned ? data : NULL;
    j->n_out++;
    if (!t->name)
        return ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
    return CT_OK;
}

static ct_status out_add(cv_job *j, const char *name, ct_dtype dt, int ndim, const int64_t *shape, void *data,
                         bool owned, ct_error *err) {
    return out_add_p(j, name, dt, ndim, shape, data, owned, -1, err);
}

// f32 values (n) -> a new buffer of type dt (f32, f16 or bf16).
static void *from_f32(const float *x, size_t n, ct_dtype dt) {
    void *out = malloc(n * ct_dtype_size(dt));
    if (!out)
        return NULL;
    if (dt == CT_F32) {
        memcpy(out, x, n * sizeof(float));
    } else {
        uint16_t *h = out;
        for (size_t i = 0; i < n; i++)
            h[i] = dt == CT_F16 ? ct_f32_to_f16(x[i]) : ct_f32_to_bf16(x[i]);
    }
    return out;
}

// Rounds x (n) to dt in place, as a cast to dt and back to f32 would.
static void round_to(float *x, size_t n, ct_dtype dt) {
    if (dt == CT_F16)
        for (size_t i = 0; i < n; i++)
            x[i] = ct_f16_to_f32(ct_f32_to_f16(x[i]));
    else if (dt == CT_BF16)
        for (size_t i = 0; i < n; i++)
            x[i] = ct_bf16_to_f32(ct_f32_to_bf16(x[i]));
}

// Adds the config override of one module: {"group_size", "bits", "mode"}.
static ct_status add_override(cv_job *j, const char *module, const ct_quant_spec *s, ct_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "group_size", s->group_size) ||
        !cJSON_AddNumberToObject(o, "bits", s->bits) || !cJSON_AddStringToObject(o, "mode", "affine") ||
        !cJSON_AddItemToObject(j->overrides, module, o)) {
        cJSON_Delete(o);
        return ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
    }
    return CT_OK;
}

// One floating tensor, given in f32 (w, owned here): quantized when it is a
// quantizable module's weight and -q is on, else cast to the output dtype.
ct_status cv_emit_float(cv_job *j, const char *name, ct_dtype src_dt, int ndim, const int64_t *shape, float *w,
                        ct_error *err) {
    ct_dtype dt = j->dtype_set ? j->dtype : src_dt;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    const ct_convert_hook *h = j->o->hook;
    ct_status st = h && h->tensor ? h->tensor(h->ctx, name, w, n, err) : CT_OK;
    if (st != CT_OK) {
        free(w);
        return ct_error_context(err, "tensor %s", name);
    }
    round_to(w, n, dt);
    char module[256];
    if (j->o->quantize && ct_rtn_is_quantizable(name, ndim, dt, module, sizeof module)) {
        bool override;
        ct_quant_spec s = h ? h->spec(h->ctx, module, shape[1], &override)
                            : ct_rtn_module_spec(&j->rtn, module, shape[1], j->cfg.num_hidden_layers, &override);
        if (s.quantized)
            return cv_emit_quantized(j, module, shape, w, dt, &s, override, err);
    }
    void *data = from_f32(w, n, dt);
    free(w);
    if (!data)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
    return out_add(j, name, dt, ndim, shape, data, true, err);
}

ct_status cv_emit_quantized(cv_job *j, const char *module, const int64_t *shape, float *w, ct_dtype dt,
                           const ct_quant_spec *s, bool override, ct_error *err) {
    int64_t rows = shape[0], in = shape[1], words = ct_affine_row_words(in, s->bits), ng = in / s->group_size;
    uint32_t *wq = malloc(sizeof(uint32_t) * (size_t)(rows * words));
    void *sc = malloc(ct_dtype_size(dt) * (size_t)(rows * ng));
    void *bi = malloc(ct_dtype_size(dt) * (size_t)(rows * ng));
    ct_status st = CT_OK;
    if (!wq || !sc || !bi)
        st = ct_fail(err, CT_ERR_NOMEM, "tensor %s.weight: out of memory", module);
    bool done = false;
    const ct_convert_hook *h = j->o->hook;
    if (st == CT_OK && h && h->quantize)
        st = h->quantize(h->ctx, module, w, rows, in, s, dt, wq, sc, bi, &done, err);
    if (st == CT_OK && !done)
        st = ct_affine_quantize(w, rows, in, s->bits, s->group_size, wq, sc, bi, dt, err);
    free(w);
    if (st != CT_OK) {
        free(wq), free(sc), free(bi);
        return ct_error_context(err, "tensor %s.weight", module);
    }
    char name[300];
    int64_t wshape[2] = {rows, words}, sshape[2] = {rows, ng};
    snprintf(name, sizeof name, "%s.weight", module);
    ct_status st2 = out_add_p(j, name, CT_U32, 2, wshape, wq, true, rows * in, err);
    snprintf(name, sizeof name, "%s.scales", module);
    if (st2 == CT_OK)
        st2 = out_add_p(j, name, dt, 2, sshape, sc, true, 0, err);
    else
        free(sc);
    snprintf(name, sizeof name, "%s.biases", module);
    if (st2 == CT_OK)
        st2 = out_add_p(j, name, dt, 2, sshape, bi, true, 0, err);
    else
        free(bi);
    CT_TRY(st2);
    j->stats.n_quantized++;
    if (override)
        CT_TRY(add_override(j, module, s, err));
    return CT_OK;
}

// ---- replaced modules (ctune fuse) ----

const ct_convert_module *cv_replacement(const cv_job *j, const char *module) {
    for (int i = 0; i < j->o->n_replace; i++)
        if (!strcmp(j->o->replace[i].path, module))
            return &j->o->replace[i];
    return NULL;
}

ct_status cv_emit_replacement(cv_job *j, const ct_convert_module *r, ct_error *err) {
    const ct_weight *w = &r->w;
    char name[300];
    snprintf(name, sizeof name, "%s.weight", r->path);
    int64_t shape[2] = {w->rows, w->cols};
    if (w->bits == 0) {
        int ndim = w->rows ? 2 : 1; // rows 0: a vector
        size_t n = (size_t)((w->rows ? w->rows : 1) * w->cols);
        float *f = malloc(sizeof(float) * n);
        if (!f)
            return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
        ct_convert_to_f32(f, w->data, w->dtype, n);
        bool saved = j->dtype_set;
        ct_dtype dt = j->dtype;
        j->dtype_set = true, j->dtype = r->dtype; // the replacement's own type
        ct_status st = cv_emit_float(j, name, r->dtype, ndim, shape + 2 - ndim, f, err);
        j->dtype_set = saved, j->dtype = dt;
        return st;
    }
    int64_t words = ct_affine_row_words(w->cols, w->bits), ng = w->cols / w->group_size;
    int64_t wshape[2] = {w->rows, words}, sshape[2] = {w->rows, ng};
    CT_TRY(out_add_p(j, name, CT_U32, 2, wshape, (void *)w->data, false, w->rows * w->cols, err));
    snprintf(name, sizeof name, "%s.scales", r->path);
    CT_TRY(out_add_p(j, name, w->dtype, 2, sshape, (void *)w->scales, false, 0, err));
    snprintf(name, sizeof name, "%s.biases", r->path);
    return out_add_p(j, name, w->dtype, 2, sshape, (void *)w->biases, false, 0, err);
}

// ---- folder (Hugging Face or MLX) sources ----

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static const ct_tensor_view *sibling(const cv_job *j, const char *module, const char *what) {
    char name[300];
    snprintf(name, sizeof name, "%s.%s", module, what);
    return ct_weights_find(&j->weights, name);
}

// Is t the packed weight of an MLX-quantized module? (module gets its path)
static bool is_packed_weight(const cv_job *j, const ct_tensor_view *t, char *module, size_t n) {
    if (t->dtype != CT_U32 || t->ndim != 2 || !has_suffix(t->name, ".weight") || strlen(t->name) >= n)
        return false;
    snprintf(module, n, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    return sibling(j, module, "scales") != NULL;
}

// mlx.core.dequantize with f16/bf16 scales computes in that type: each
// product s*q and each sum with the bias is rounded (f32 arithmetic, then a
// cast), so ŵ = round(round(s*q) + b). wq (rows, in*bits/32); s32, b32
// (rows, in/g) already in dt's values; out (rows, in) f32 holding dt's values.
// False if out of memory.
static bool dequantize_half(const uint32_t *wq, const float *s32, const float *b32, ct_dtype dt, int64_t rows,
                            int64_t in, int bits, int group, float *out) {
    uint8_t *codes = malloc((size_t)in);
    if (!codes)
        return false;
    int64_t words = ct_affine_row_words(in, bits), ng = in / group;
    for (int64_t r = 0; r < rows; r++) {
        ct_affine_unpack(wq + r * words, in, bits, codes);
        float *o = out + r * in;
        for (int64_t i = 0; i < in; i++) {
            float p = s32[r * ng + i / group] * (float)codes[i];
            round_to(&p, 1, dt);
            float v = p + b32[r * ng + i / group];
            round_to(&v, 1, dt);
            o[i] = v;
        }
    }
    free(codes);
    return true;
}

static ct_status dequantize_module(cv_job *j, const char *module, const ct_tensor_view *wq, ct_error *err) {
    const ct_tensor_view *sc = sibling(j, module, "scales"), *bi = sibling(j, module, "biases");
    ct_quant_spec s = ct_model_config_quant_for(&j->cfg, module);
    if (!s.quantized)
        s = j->cfg.quant; // listed as false but holding scales: mlx-lm would fail; use the defaults
    if (!bi || (sc->dtype != CT_F32 && sc->dtype != CT_F16 && sc->dtype != CT_BF16) || bi->dtype != sc->dtype)
        return ct_fail(err, CT_ERR_FORMAT, "%s: quantized module needs scales and biases of one float dtype", module);
    int64_t rows = wq->shape[0], in = wq->shape[1] * 32 / s.bits;
    if (wq->shape[1] * 32 % s.bits || sc->ndim != 2 || sc->shape[0] != rows || sc->shape[1] * s.group_size != in ||
        bi->ndim != 2 || bi->shape[0] != rows || bi->shape[1] != sc->shape[1])
        return ct_fail(err, CT_ERR_FORMAT, "%s: weight (%lld, %lld), scales and biases do not fit bits %d, group %d",
                       module, (long long)rows, (long long)wq->shape[1], s.bits, s.group_size);
    // mlx-lm casts scales and biases to --dtype first; the result has their dtype.
    ct_dtype dt = j->dtype_set ? j->dtype : sc->dtype;
    size_t ns = (size_t)(rows * sc->shape[1]);
    float *s32 = malloc(sizeof(float) * ns), *b32 = malloc(sizeof(float) * ns);
    float *w = malloc(sizeof(float) * (size_t)(rows * in));
    void *scd = NULL, *bid = NULL, *packed = malloc(wq->nbytes);
    if (s32 && b32) {
        ct_convert_to_f32(s32, sc->data, sc->dtype, ns);
        ct_convert_to_f32(b32, bi->data, bi->dtype, ns);
        scd = from_f32(s32, ns, dt);
        bid = from_f32(b32, ns, dt);
    }
    void *data = NULL;
    if (scd && bid && packed && w) {
        memcpy(packed, wq->data, wq->nbytes); // the mapping may be unaligned
        bool ok = true;
        if (dt == CT_F32) {
            ct_affine_dequantize(packed, scd, bid, dt, rows, in, s.bits, s.group_size, w);
        } else {
            round_to(s32, ns, dt);
            round_to(b32, ns, dt);
            ok = dequantize_half(packed, s32, b32, dt, rows, in, s.bits, s.group_size, w);
        }
        data = ok ? from_f32(w, (size_t)(rows * in), dt) : NULL;
    }
    free(s32), free(b32), free(scd), free(bid), free(packed), free(w);
    if (!data)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", module);
    char name[300];
    snprintf(name, sizeof name, "%s.weight", module);
    int64_t shape[2] = {rows, in};
    j->stats.n_dequantized++;
    return out_add(j, name, dt, 2, shape, data, true, err);
}

static ct_status folder_tensor(cv_job *j, const ct_tensor_view *t, ct_error *err) {
    char module[256];
    if (has_suffix(t->name, "rotary_emb.inv_freq"))
        return CT_OK; // dropped by mlx-lm's sanitize
    if (j->cfg.tie_word_embeddings && !strcmp(t->name, "lm_head.weight"))
        return CT_OK;
    const char *dot = strrchr(t->name, '.');
    if (j->o->n_replace && dot && (!strcmp(dot, ".weight") || !strcmp(dot, ".scales") || !strcmp(dot, ".biases"))) {
        snprintf(module, sizeof module, "%.*s", (int)(dot - t->name), t->name);
        const ct_convert_module *r = cv_replacement(j, module);
        if (r)
            return strcmp(dot, ".weight") ? CT_OK : cv_emit_replacement(j, r, err);
    }
    if (is_packed_weight(j, t, module, sizeof module)) {
        if (j->o->quantize)
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "%s: the model is already quantized (%s.scales); use --dequantize, then -q on the result",
                           j->o->model, module);
        if (j->o->dequantize)
            return dequantize_module(j, module, t, err);
    }
    if (j->o->dequantize && (has_suffix(t->name, ".scales") || has_suffix(t->name, ".biases"))) {
        size_t k = strlen(t->name) - strlen(".scales");
        snprintf(module, sizeof module, "%.*s", (int)k, t->name);
        const ct_tensor_view *w = sibling(j, module, "weight");
        if (w && w->dtype == CT_U32)
            return CT_OK; // consumed by dequantize_module
    }
    if (!ct_dtype_is_float(t->dtype)) // integer tensors pass through untouched
        return out_add(j, t->name, t->dtype, t->ndim, t->shape, (void *)t->data, false, err);
    size_t n = (size_t)ct_tensor_numel(t);
    float *w = malloc(sizeof(float) * (n ? n : 1));
    if (!w)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    ct_convert_to_f32(w, t->data, t->dtype, n);
    ct_dtype src = t->dtype == CT_F16 || t->dtype == CT_BF16 ? t->dtype : CT_F32;
    return cv_emit_float(j, t->name, src, t->ndim, t->shape, w, err);
}

static int cmp_views(const void *a, const void *b) {
    return strcmp(((const ct_tensor_view *)a)->name, ((const ct_tensor_view *)b)->name);
}

static ct_status folder_tensors(cv_job *j, ct_error *err) {
    CT_TRY(ct_weights_open(&j->weights, j->o->model, err));
    j->weights_open = true;
    ct_tensor_view *order = malloc(sizeof *order * (size_t)(j->weights.n ? j->weights.n : 1));
    if (!order)
        return ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
    memcpy(order, j->weights.views, sizeof *order * (size_t)j->weights.n);
    qsort(order, (size_t)j->weights.n, sizeof *order, cmp_views);
    ct_status st = CT_OK;
    for (int i = 0; st == CT_OK && i < j->weights.n; i++)
        st = folder_tensor(j, &order[i], err);
    free(order);
    return st;
}

// ---- the job ----

static ct_status check_opts(cv_job *j, ct_error *err) {
    const ct_convert_opts *o = j->o;
    if (!o->model || !o->mlx_path)
        return ct_fail(err, CT_ERR_INVALID, "convert: a model and an output path are needed");
    if (o->quantize && o->dequantize)
        return ct_fail(err, CT_ERR_INVALID, "choose either quantize (-q) or --dequantize, not both");
    if (o->recipe != CT_RECIPE_NONE && !o->quantize)
        return ct_fail(err, CT_ERR_INVALID, "--quant-predicate %s needs -q", ct_quant_recipe_name(o->recipe));
    j->rtn.bits = o->q_bits ? o->q_bits : 4;
    j->rtn.group_size = o->q_group_size ? o->q_group_size : 64;
    j->rtn.recipe = o->recipe;
    if (o->quantize)
        CT_TRY(ct_affine_check(j->rtn.bits, j->rtn.group_size, j->rtn.group_size, "--q-bits/--q-group-size", err));
    if (o->dtype) {
        CT_TRY(cv_parse_dtype(o->dtype, &j->dtype, err));
        j->dtype_set = true;
    }
    if (ct_path_exists(o->mlx_path))
        return ct_fail(err, CT_ERR_INVALID,
                       "cannot save to %s: it already exists (delete it or choose another --mlx-path)", o->mlx_path);
    return CT_OK;
}

ct_status cv_parse_dtype(const char *name, ct_dtype *out, ct_error *err) {
    if (!strcmp(name, "float16"))
        *out = CT_F16;
    else if (!strcmp(name, "bfloat16"))
        *out = CT_BF16;
    else if (!strcmp(name, "float32"))
        *out = CT_F32;
    else
        return ct_fail(err, CT_ERR_INVALID, "--dtype: '%s' is not one of float16, bfloat16, float32", name);
    return CT_OK;
}

// The default dtype, as mlx_lm.convert picks it: config.json's torch_dtype,
// else text_config.dtype, if one of the three names; GGUF: float16.
static void default_dtype(cv_job *j) {
    if (j->dtype_set || (j->o->keep_dtypes && !j->is_gguf))
        return;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j->config, "torch_dtype");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j->config, "text_config");
    if (!cJSON_IsString(d) && cJSON_IsObject(tc))
        d = cJSON_GetObjectItemCaseSensitive(tc, "dtype");
    if (cJSON_IsString(d) && cv_parse_dtype(d->valuestring, &j->dtype, NULL) == CT_OK)
        j->dtype_set = true;
    else if (j->is_gguf) {
        j->dtype = CT_F16;
        j->dtype_set = true;
    }
}

static ct_status open_source(cv_job *j, ct_error *err) {
    const char *m = j->o->model;
    if (!ct_is_dir(m)) {
        if (!has_suffix(m, ".gguf") || !ct_path_exists(m))
            return ct_fail(err, CT_ERR_IO, "%s: not a model folder or a .gguf file", m);
        j->is_gguf = true;
        CT_TRY(ct_gguf_open(&j->gguf, m, err));
        j->gguf_open = true;
        CT_TRY(ct_gguf_config_json(&j->gguf, &j->config, err));
    } else {
        char path[4096], *text;
        size_t len;
        CT_TRY(ct_path_join(path, sizeof path, m, "config.json", err));
        CT_TRY(ct_read_file(path, &text, &len, err));
        j->config = cJSON_ParseWithLength(text, len);
        free(text);
        if (!j->config || !cJSON_IsObject(j->config))
            return ct_fail(err, CT_ERR_FORMAT, "%s: not a JSON object", path);
    }
    CT_TRY(ct_model_config_parse(&j->cfg, j->config, j->o->model, err));
    j->cfg_parsed = true;
    ct_arch a = j->cfg.arch;
    if (a != CT_ARCH_LLAMA && a != CT_ARCH_MISTRAL && a != CT_ARCH_QWEN2 && a != CT_ARCH_QWEN3 && a != CT_ARCH_GEMMA3)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "%s: convert handles llama, mistral, qwen2, qwen3 and gemma3 models, not %s", m,
                       j->cfg.model_type);
    if (j->o->dequantize && !j->cfg.quant.quantized)
        ct_log_warn("%s: --dequantize: the model has no quantization block; nothing to de-quantize", m);
    return CT_OK;
}

static void job_free(cv_job *j) {
    for (int i = 0; i < j->n_out; i++) {
        free((void *)j->out[i].name);
        free(j->owned[i]);
    }
    free(j->out);
    free(j->owned);
    cJSON_Delete(j->config);
    cJSON_Delete(j->overrides);
    if (j->cfg_parsed)
        ct_model_config_free(&j->cfg);
    if (j->weights_open)
        ct_weights_close(&j->weights);
    if (j->gguf_open)
        ct_gguf_close(&j->gguf);
}

ct_status ct_convert(const ct_convert_opts *o, ct_convert_stats *stats, ct_error *err) {
    cv_job j = {.o = o};
    double t0 = ct_now();
    ct_status st = check_opts(&j, err);
    if (st == CT_OK)
        st = open_source(&j, err);
    if (st == CT_OK) {
        default_dtype(&j);
        j.overrides = cJSON_CreateObject();
        if (!j.overrides)
            st = ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
    }
    if (st == CT_OK) {
        ct_log_info("[INFO] Loading %s%s%s", o->model, j.dtype_set ? ", dtype " : "",
                    !j.dtype_set ? "" : j.dtype == CT_F16 ? "float16" : j.dtype == CT_BF16 ? "bfloat16" : "float32");
        st = j.is_gguf ? cv_gguf_tensors(&j, err) : folder_tensors(&j, err);
    }
    if (st == CT_OK)
        st = cv_write_folder(&j, err);
    if (st == CT_OK) {
        ct_log_info("[INFO] Wrote %s: %d tensors (%d modules quantized, %d de-quantized), %.3f bits per weight, %.1f s",
                    o->mlx_path, j.stats.n_tensors, j.stats.n_quantized, j.stats.n_dequantized,
                    j.stats.bits_per_weight, ct_now() - t0);
        if (stats)
            *stats = j.stats;
    }
    job_free(&j);
    return st;
}
