// gguf_export.c: a dense Hugging Face folder as a llama.cpp GGUF v3 file
// (see fuse.h), laid out as llama.cpp's convert_hf_to_gguf.py writes it for
// LlamaModel (llama, mistral), Qwen2Model and Qwen3Model: its tensor names
// (convert_gguf.c's table, read backwards), its metadata keys, q/k rows of
// llama permuted so that RoPE pairs are interleaved, 1-D tensors in F32.
// The tokenizer comes from a GGUF (its tokenizer.* keys copied) or from a
// byte-level BPE tokenizer.json ("gpt2" vocab: tokens, token types, merges).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convert_internal.h"
#include "ctune/fuse.h"
#include "ctune/log.h"

typedef struct gx_job {
    const ct_gguf_export_opts *o;
    ct_model_config cfg;
    bool cfg_ok;
    ct_weights wts;
    bool wts_open;
    ct_gguf_writer *w;
    const char *arch;  // llama.cpp's architecture name
    void **bufs;       // tensor data kept until the file is written
    int n_bufs, cap_bufs;
} gx_job;

bool ct_gguf_export_type_parse(const char *name, ct_ggml_type *out) {
    static const struct {
        const char *name;
        ct_ggml_type t;
    } T[] = {{"f16", CT_GGML_F16}, {"bf16", CT_GGML_BF16}, {"f32", CT_GGML_F32}, {"q8_0", CT_GGML_Q8_0},
             {"q4_0", CT_GGML_Q4_0}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcasecmp(name, T[i].name)) {
            *out = T[i].t;
            return true;
        }
    return false;
}

// llama.cpp's general.file_type (LLAMA_FTYPE_*) of a file whose weights are t.
static uint32_t file_type(ct_ggml_type t) {
    switch (t) {
    case CT_GGML_F32: return 0;
    case CT_GGML_F16: return 1;
    case CT_GGML_Q4_0: return 2;
    case CT_GGML_Q8_0: return 7;
    default: return 32; // BF16
    }
}

static ct_status keep_buf(gx_job *j, void *p, ct_error *err) {
    if (j->n_bufs == j->cap_bufs) {
        int cap = j->cap_bufs ? 2 * j->cap_bufs : 64;
        void **b = realloc(j->bufs, sizeof *b * (size_t)cap);
        if (!b) {
            free(p);
            return ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
        }
        j->bufs = b, j->cap_bufs = cap;
    }
    j->bufs[j->n_bufs++] = p;
    return CT_OK;
}

// ---- model metadata

static ct_status add_model_kv(gx_job *j, ct_error *err) {
    const ct_model_config *c = &j->cfg;
    ct_gguf_writer *w = j->w;
    char k[128];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", j->arch, suffix), k)
    CT_TRY(ct_gguf_writer_add_str(w, "general.architecture", j->arch, err));
    CT_TRY(ct_gguf_writer_add_str(w, "general.name", "ctune fused model", err));
    CT_TRY(ct_gguf_writer_add_u32(w, "general.file_type", file_type(j->o->type), err));
    if (j->o->type == CT_GGML_Q8_0 || j->o->type == CT_GGML_Q4_0)
        CT_TRY(ct_gguf_writer_add_u32(w, "general.quantization_version", 2, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)c->max_position_embeddings, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)c->hidden_size, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)c->num_hidden_layers, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)c->num_attention_heads, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->num_key_value_heads, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim, err));
    CT_TRY(ct_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->rms_norm_eps, err));
    CT_TRY(ct_gguf_writer_add_f32(w, KEY("rope.freq_base"), (float)c->rope.theta, err));
    CT_TRY(ct_gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)c->rotary_dim, err));
    if (c->rope.type == CT_ROPE_LINEAR) {
        CT_TRY(ct_gguf_writer_add_str(w, KEY("rope.scaling.type"), "linear", err));
        CT_TRY(ct_gguf_writer_add_f32(w, KEY("rope.scaling.factor"), (float)c->rope.factor, err));
    } else if (c->rope.type != CT_ROPE_DEFAULT) {
        ct_log_warn("GGUF export: rope_scaling type %s is not written; llama.cpp will use plain RoPE",
                    ct_rope_type_name(c->rope.type));
    }
    if (c->sliding_window > 0)
        ct_log_warn("GGUF export: sliding_window %lld is not written (llama.cpp's llama has none)",
                    (long long)c->sliding_window);
#undef KEY
    return CT_OK;
}

// ---- tokenizer from a GGUF: every tokenizer.* pair copied

static ct_status copy_kv(gx_job *j, const ct_gguf_kv *kv, ct_error *err) {
    if (kv->elem_type == CT_GGUF_STRING) {
        const char **s = malloc(sizeof *s * (size_t)(kv->count ? kv->count : 1));
        size_t *len = malloc(sizeof *len * (size_t)(kv->count ? kv->count : 1));
        ct_status st = s && len ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
        for (uint64_t i = 0; st == CT_OK && i < kv->count; i++)
            s[i] = kv->strs[i].ptr, len[i] = kv->strs[i].len;
        if (st == CT_OK)
            st = kv->type == CT_GGUF_ARRAY ? ct_gguf_writer_add_str_array(j->w, kv->key, s, len, kv->count, err)
                                           : ct_gguf_writer_add_str(j->w, kv->key, s[0], err);
        free(s), free(len);
        return st;
    }
    size_t size = ct_gguf_type_size(kv->elem_type);
    if (!size)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: key %s: nested arrays are not copied", kv->key);
    void *v = malloc(size * (size_t)(kv->count ? kv->count : 1)); // aligned copy of the packed values
    if (!v)
        return ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
    memcpy(v, kv->data, size * (size_t)kv->count);
    ct_status st = kv->type == CT_GGUF_ARRAY ? ct_gguf_writer_add_array(j->w, kv->key, kv->elem_type, v, kv->count, err)
                                             : ct_gguf_writer_add_scalar(j->w, kv->key, kv->type, v, err);
    free(v);
    return st;
}

static ct_status tokenizer_from_gguf(gx_job *j, ct_error *err) {
    ct_gguf g;
    CT_TRY(ct_gguf_open(&g, j->o->tokenizer_gguf, err));
    ct_status st = CT_OK;
    for (uint64_t i = 0; st == CT_OK && i < g.n_kv; i++)
        if (!strncmp(g.kv[i].key, "tokenizer.", 10))
            st = copy_kv(j, &g.kv[i], err);
    ct_gguf_close(&g);
    return st;
}

// ---- tokenizer from tokenizer.json (byte-level BPE)

static cJSON *read_json(const char *dir, const char *file, ct_error *err) {
    char path[4096], *text;
    size_t len;
    if (ct_path_join(path, sizeof path, dir, file, err) != CT_OK || !ct_path_exists(path))
        return NULL;
    if (ct_read_file(path, &text, &len, err) != CT_OK)
        return NULL;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    return doc;
}

static bool has_byte_level(const cJSON *pt) {
    if (!pt)
        return false;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "ByteLevel"))
        return true;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers")) if (has_byte_level(it)) return true;
    return false;
}

// A special token of tokenizer_config.json ("bos_token": "<s>" or {"content": "<s>"}) -> id, or -1.
static int64_t special_id(const cJSON *tcfg, const char *key, const cJSON *vocab, const cJSON *added) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tcfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (cJSON_IsString(c) && !strcmp(c->valuestring, v->valuestring))
            return (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(vocab, v->valuestring);
    return cJSON_IsNumber(id) ? (int64_t)id->valuedouble : -1;
}

// tokens and token types (n = vocab_size; ids the tokenizer lacks get "[PAD<i>]",
// type UNUSED, as llama.cpp does; owned[i] marks those strings).
static ct_status vocab_arrays(gx_job *j, const cJSON *vocab, const cJSON *added, char ***tokens, int32_t **types,
                              bool **owned, ct_error *err) {
    int64_t n = j->cfg.vocab_size;
    *tokens = calloc((size_t)n, sizeof **tokens);
    *types = calloc((size_t)n, sizeof **types);
    *owned = calloc((size_t)n, sizeof **owned);
    if (!*tokens || !*types || !*owned)
        return ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < (double)n) {
        int64_t id = (int64_t)it->valuedouble;
        (*tokens)[id] = it->string, (*types)[id] = 1; // NORMAL
    }
    cJSON_ArrayForEach(it, added) {
        double id = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(c) || !(id >= 0 && id < (double)n))
            continue;
        (*tokens)[(int64_t)id] = c->valuestring;
        (*types)[(int64_t)id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? 3 : 4; // CONTROL : USER
    }
    for (int64_t i = 0; i < n; i++)
        if (!(*tokens)[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
            (*tokens)[i] = strdup(pad);
            (*types)[i] = 5; // UNUSED
            (*owned)[i] = true;
            if (!(*tokens)[i])
                return ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
        }
    return CT_OK;
}

static ct_status add_merges(gx_job *j, const cJSON *merges, ct_error *err) {
    int n = cJSON_GetArraySize(merges), k = 0;
    char **m = calloc((size_t)(n ? n : 1), sizeof *m);
    ct_status st = m ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        if (st != CT_OK)
            break;
        if (cJSON_IsString(it)) {
            m[k] = strdup(it->valuestring);
        } else if (cJSON_GetArraySize(it) == 2) { // newer tokenizers: ["a", "b"]
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
            const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            size_t len = (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + 2;
            if (a && b && (m[k] = malloc(len)))
                snprintf(m[k], len, "%s %s", a, b);
        }
        if (!m[k++])
            st = ct_fail(err, CT_ERR_FORMAT, "tokenizer.json: merge %d is not \"a b\" or [a, b]", k - 1);
    }
    if (st == CT_OK)
        st = ct_gguf_writer_add_str_array(j->w, "tokenizer.ggml.merges", (const char *const *)m, NULL, (uint64_t)n, err);
    for (int i = 0; m && i < n; i++)
        free(m[i]);
    free(m);
    return st;
}

static ct_status add_chat_template(gx_job *j, const cJSON *tcfg, ct_error *err) {
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tcfg, "chat_template"));
    if (t)
        return ct_gguf_writer_add_str(j->w, "tokenizer.chat_template", t, err);
    char path[4096], *text;
    size_t len;
    CT_TRY(ct_path_join(path, sizeof path, j->o->model_dir, "chat_template.jinja", err));
    if (!ct_path_exists(path))
        return CT_OK;
    CT_TRY(ct_read_file(path, &text, &len, err));
    ct_status st = ct_gguf_writer_add_str(j->w, "tokenizer.chat_template", text, err);
    free(text);
    return st;
}

static ct_status add_special_ids(gx_job *j, const cJSON *tcfg, const cJSON *vocab, const cJSON *added,
                                 ct_error *err) {
    static const char *const keys[][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                          {"eos_token", "tokenizer.ggml.eos_token_id"},
                                          {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                          {"pad_token", "tokenizer.ggml.padding_token_id"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t id = special_id(tcfg, keys[i][0], vocab, added);
        if (id < 0 && i == 0)
            id = j->cfg.bos_token_id;
        if (id < 0 && i == 1 && j->cfg.n_eos_token_ids > 0)
            id = j->cfg.eos_token_ids[0];
        if (id >= 0)
            CT_TRY(ct_gguf_writer_add_u32(j->w, keys[i][1], (uint32_t)id, err));
    }
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(tcfg, "add_bos_token");
    CT_TRY(ct_gguf_writer_add_bool(j->w, "tokenizer.ggml.add_bos_token", cJSON_IsTrue(add_bos), err));
    return ct_gguf_writer_add_bool(j->w, "tokenizer.ggml.add_eos_token", false, err);
}

static ct_status tokenizer_from_json(gx_job *j, const cJSON *tok, const cJSON *tcfg, ct_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer");
    CT_TRY(ct_gguf_writer_add_str(j->w, "tokenizer.ggml.model", "gpt2", err));
    CT_TRY(ct_gguf_writer_add_str(j->w, "tokenizer.ggml.pre", cv_gguf_pre_name(pt), err));
    char **tokens = NULL;
    int32_t *types = NULL;
    int64_t n = j->cfg.vocab_size;
    bool *owned = NULL;
    ct_status st = vocab_arrays(j, vocab, added, &tokens, &types, &owned, err);
    if (st == CT_OK)
        st = ct_gguf_writer_add_str_array(j->w, "tokenizer.ggml.tokens", (const char *const *)tokens, NULL,
                                          (uint64_t)n, err);
    if (st == CT_OK)
        st = ct_gguf_writer_add_array(j->w, "tokenizer.ggml.token_type", CT_GGUF_I32, types, (uint64_t)n, err);
    if (st == CT_OK)
        st = add_merges(j, cJSON_GetObjectItemCaseSensitive(model, "merges"), err);
    if (st == CT_OK)
        st = add_special_ids(j, tcfg, vocab, added, err);
    if (st == CT_OK)
        st = add_chat_template(j, tcfg, err);
    for (int64_t i = 0; owned && tokens && i < n; i++)
        if (owned[i])
            free(tokens[i]);
    free(owned), free(tokens), free(types);
    return st;
}

static ct_status add_tokenizer(gx_job *j, ct_error *err) {
    if (j->o->tokenizer_gguf)
        return tokenizer_from_gguf(j, err);
    cJSON *tok = read_json(j->o->model_dir, "tokenizer.json", err);
    cJSON *tcfg = read_json(j->o->model_dir, "tokenizer_config.json", err);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    ct_status st = CT_OK;
    if (!tok || !type || strcmp(type, "BPE") || !has_byte_level(cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer")))
        ct_log_warn("GGUF export: the model has no byte-level BPE tokenizer.json; the GGUF gets no tokenizer "
                    "(llama.cpp needs one: export from a GGUF base, or add it with llama.cpp's tools)");
    else
        st = tokenizer_from_json(j, tok, tcfg, err);
    cJSON_Delete(tok);
    cJSON_Delete(tcfg);
    return st;
}

// ---- tensors

// Rows of w (rows, cols) into llama.cpp's order (see ct_gguf_llama_qk_row).
static ct_status permute(const char *name, float *w, int64_t rows, int64_t cols, int64_t heads, ct_error *err) {
    if (heads <= 0 || rows % heads || (rows / heads) % 2)
        return ct_fail(err, CT_ERR_FORMAT, "tensor %s: %lld rows do not split into %lld heads of even size", name,
                       (long long)rows, (long long)heads);
    float *tmp = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!tmp)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", name);
    for (int64_t r = 0; r < rows; r++) {
        int64_t dst = ct_gguf_llama_qk_row(r, rows, heads);
        memcpy(tmp + dst * cols, w + r * cols, sizeof(float) * (size_t)cols);
    }
    memcpy(w, tmp, sizeof(float) * (size_t)(rows * cols));
    free(tmp);
    return CT_OK;
}

static ct_status add_tensor(gx_job *j, const ct_tensor_view *t, ct_error *err) {
    char name[256];
    if (!cv_gguf_name(t->name, name, sizeof name))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: tensor %s has no llama.cpp name", t->name);
    if (!ct_dtype_is_float(t->dtype) || t->ndim < 1 || t->ndim > 2)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: tensor %s: %s with %d dimensions (a dense model is "
                                                "needed; fuse with --dequantize)", t->name, ct_dtype_name(t->dtype), t->ndim);
    int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->shape[t->ndim - 1], n = rows * cols;
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!f)
        return ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    ct_convert_to_f32(f, t->data, t->dtype, (size_t)n);
    ct_status st = CT_OK;
    bool q = strstr(name, ".attn_q.weight") != NULL, k = strstr(name, ".attn_k.weight") != NULL;
    if (!strcmp(j->arch, "llama") && (q || k))
        st = permute(t->name, f, rows, cols, q ? j->cfg.num_attention_heads : j->cfg.num_key_value_heads, err);
    ct_ggml_type type = t->ndim == 1 ? CT_GGML_F32 : j->o->type;
    if (ct_ggml_block_size(type) > 1 && cols % ct_ggml_block_size(type))
        type = CT_GGML_F16;
    void *data = st == CT_OK ? malloc(ct_ggml_row_size(type, cols) * (size_t)rows) : NULL;
    if (st == CT_OK && !data)
        st = ct_fail(err, CT_ERR_NOMEM, "tensor %s: out of memory", t->name);
    if (st == CT_OK)
        st = ct_ggml_quantize(type, f, data, n, err);
    free(f);
    if (st != CT_OK) {
        free(data);
        return ct_error_context(err, "GGUF export: tensor %s", t->name);
    }
    CT_TRY(keep_buf(j, data, err));
    int64_t ne[2] = {cols, rows};
    return ct_gguf_writer_add_tensor(j->w, name, type, (uint32_t)t->ndim, ne, data, err);
}

static int cmp_views(const void *a, const void *b) {
    return strcmp(((const ct_tensor_view *)a)->name, ((const ct_tensor_view *)b)->name);
}

static ct_status add_tensors(gx_job *j, ct_error *err) {
    CT_TRY(ct_weights_open(&j->wts, j->o->model_dir, err));
    j->wts_open = true;
    ct_tensor_view *order = malloc(sizeof *order * (size_t)(j->wts.n ? j->wts.n : 1));
    if (!order)
        return ct_fail(err, CT_ERR_NOMEM, "GGUF export: out of memory");
    memcpy(order, j->wts.views, sizeof *order * (size_t)j->wts.n);
    qsort(order, (size_t)j->wts.n, sizeof *order, cmp_views);
    ct_status st = CT_OK;
    for (int i = 0; st == CT_OK && i < j->wts.n; i++)
        st = add_tensor(j, &order[i], err);
    free(order);
    return st;
}

static ct_status check_model(gx_job *j, ct_error *err) {
    CT_TRY(ct_model_config_load(&j->cfg, j->o->model_dir, err));
    j->cfg_ok = true;
    ct_arch a = j->cfg.arch;
    j->arch = a == CT_ARCH_LLAMA || a == CT_ARCH_MISTRAL ? "llama" : a == CT_ARCH_QWEN2 ? "qwen2"
                                                         : a == CT_ARCH_QWEN3          ? "qwen3"
                                                                                       : NULL;
    if (!j->arch)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: %s: model_type %s (llama, mistral, qwen2, qwen3 are "
                                                "supported)", j->o->model_dir, j->cfg.model_type);
    if (j->cfg.quant.quantized)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: %s is MLX-quantized; fuse with --dequantize",
                       j->o->model_dir);
    ct_ggml_type t = j->o->type;
    if (t != CT_GGML_F16 && t != CT_GGML_BF16 && t != CT_GGML_F32 && t != CT_GGML_Q8_0 && t != CT_GGML_Q4_0)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "GGUF export: tensor type %s (F16, BF16, F32, Q8_0, Q4_0 are "
                                                "supported)", ct_ggml_type_name(t) ? ct_ggml_type_name(t) : "?");
    return CT_OK;
}

ct_status ct_gguf_export(const ct_gguf_export_opts *o, ct_error *err) {
    gx_job j = {.o = o};
    ct_status st = check_model(&j, err);
    if (st == CT_OK)
        st = ct_gguf_writer_new(&j.w, err);
    if (st == CT_OK)
        st = add_model_kv(&j, err);
    if (st == CT_OK)
        st = add_tokenizer(&j, err);
    if (st == CT_OK)
        st = add_tensors(&j, err);
    if (st == CT_OK)
        st = ct_gguf_writer_write(j.w, o->path, err);
    if (j.w)
        ct_gguf_writer_free(j.w);
    for (int i = 0; i < j.n_bufs; i++)
        free(j.bufs[i]);
    free(j.bufs);
    if (j.wts_open)
        ct_weights_close(&j.wts);
    if (j.cfg_ok)
        ct_model_config_free(&j.cfg);
    return st;
}
