// ctune info MODEL [--json]: what a model holds. MODEL is a Hugging Face or
// MLX folder (config.json + safetensors), a .gguf file, or a .safetensors file
// (a tensor listing, info_tensors.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/config.h"
#include "ctune/fs.h"
#include "ctune/ggml_quants.h"
#include "ctune/gguf.h"
#include "ctune/gguf_config.h"
#include "ctune/hub.h"
#include "ctune/json.h"
#include "ctune/safetensors.h"

typedef struct model_summary {
    int64_t parameters; // logical parameters (quantized weights counted unpacked)
    int64_t bytes;      // stored tensor bytes
    int n_tensors;
    cJSON *dtypes;      // {"F32": count, ...}
    cJSON *quant;       // null or {"bits", "group_size", "mode", "overrides"} / {"gguf_types": ...}
    cJSON *tokenizer;   // {"files": [...], "chat_template": bool, ...}
} model_summary;

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static void count_dtype(cJSON *dtypes, const char *name) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(dtypes, name);
    if (it)
        cJSON_SetNumberValue(it, it->valuedouble + 1);
    else
        cJSON_AddNumberToObject(dtypes, name, 1);
}

// Parameters of a folder's tensors; a quantized weight (U32 with a sibling
// .scales) counts its unpacked size, and its scales/biases are not parameters
// (as mlx-lm's get_total_parameters counts them).
static void summarize_weights(const ct_weights *w, const ct_model_config *c, model_summary *s) {
    for (int i = 0; i < w->n; i++) {
        const ct_tensor_view *t = &w->views[i];
        int64_t n = ct_tensor_numel(t);
        s->bytes += (int64_t)t->nbytes;
        s->n_tensors++;
        count_dtype(s->dtypes, ct_dtype_name(t->dtype));
        size_t len = strlen(t->name);
        char module[1024];
        if (len < sizeof module && (ends_with(t->name, ".scales") || ends_with(t->name, ".biases"))) {
            snprintf(module, sizeof module, "%.*s.weight", (int)(len - 7), t->name);
            const ct_tensor_view *wt = ct_weights_find(w, module);
            if (wt && wt->dtype == CT_U32)
                continue;
        }
        if (t->dtype == CT_U32 && ends_with(t->name, ".weight") && len < sizeof module) {
            snprintf(module, sizeof module, "%.*s", (int)(len - 7), t->name);
            char scales[1100];
            snprintf(scales, sizeof scales, "%s.scales", module);
            ct_quant_spec q = ct_model_config_quant_for(c, module);
            if (ct_weights_find(w, scales) && q.quantized && q.bits > 0)
                n = n * 32 / q.bits;
        }
        s->parameters += n;
    }
}

static cJSON *tokenizer_files(const char *dir) {
    static const char *const FILES[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                        "generation_config.json", "special_tokens_map.json", "tokenizer.model"};
    cJSON *tok = cJSON_CreateObject(), *files = cJSON_AddArrayToObject(tok, "files");
    bool template = false;
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char path[4096];
        if (ct_path_join(path, sizeof path, dir, FILES[i], NULL) != CT_OK || !ct_path_exists(path))
            continue;
        cJSON_AddItemToArray(files, cJSON_CreateString(FILES[i]));
        if (!strcmp(FILES[i], "chat_template.jinja"))
            template = true;
        if (!strcmp(FILES[i], "tokenizer_config.json")) {
            cJSON *cfg;
            ct_error ignored;
            if (ct_json_load_file(path, &cfg, &ignored) == CT_OK) {
                const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
                template |= cJSON_IsString(ct) || (cJSON_IsArray(ct) && cJSON_GetArraySize(ct) > 0);
                cJSON_Delete(cfg);
            }
        }
    }
    cJSON_AddBoolToObject(tok, "chat_template", template);
    return tok;
}

static cJSON *quant_json(const ct_model_config *c) {
    if (!c->quant.quantized && c->n_quant_overrides == 0)
        return cJSON_CreateNull();
    cJSON *q = cJSON_CreateObject();
    cJSON_AddNumberToObject(q, "bits", c->quant.bits);
    cJSON_AddNumberToObject(q, "group_size", c->quant.group_size);
    cJSON_AddStringToObject(q, "mode", c->quant.mode);
    cJSON_AddNumberToObject(q, "overrides", c->n_quant_overrides);
    return q;
}

static cJSON *config_json(const ct_model_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model_type", c->model_type);
    cJSON_AddNumberToObject(j, "layers", (double)c->num_hidden_layers);
    cJSON_AddNumberToObject(j, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(j, "attention_heads", (double)c->num_attention_heads);
    cJSON_AddNumberToObject(j, "kv_heads", (double)c->num_key_value_heads);
    cJSON_AddNumberToObject(j, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(j, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON *r = cJSON_AddObjectToObject(j, "rope");
    cJSON_AddStringToObject(r, "type", ct_rope_type_name(c->rope.type));
    cJSON_AddNumberToObject(r, "theta", c->rope.theta);
    if (c->num_experts > 0) {
        cJSON_AddNumberToObject(j, "experts", (double)c->num_experts);
        cJSON_AddNumberToObject(j, "experts_per_token", (double)c->num_experts_per_tok);
    }
    return j;
}

static const char *human_count(int64_t n, char *buf, size_t len) {
    if (n >= 1000000000)
        snprintf(buf, len, "%.2fB", (double)n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, len, "%.1fM", (double)n / 1e6);
    else if (n >= 1000)
        snprintf(buf, len, "%.1fK", (double)n / 1e3);
    else
        snprintf(buf, len, "%lld", (long long)n);
    return buf;
}

static void print_human(const char *path, const char *format, const cJSON *cfg, const model_summary *s) {
    char a[32], b[32];
    int64_t heads = (int64_t)cJSON_GetObjectItem(cfg, "attention_heads")->valuedouble;
    int64_t kv = (int64_t)cJSON_GetObjectItem(cfg, "kv_heads")->valuedouble;
    printf("%-16s %s (%s)\n", "model", path, format);
    printf("%-16s %s\n", "architecture", cJSON_GetObjectItem(cfg, "model_type")->valuestring);
    printf("%-16s %d\n", "layers", (int)cJSON_GetObjectItem(cfg, "layers")->valuedouble);
    printf("%-16s %d (MLP %d)\n", "hidden size", (int)cJSON_GetObjectItem(cfg, "hidden_size")->valuedouble,
           (int)cJSON_GetObjectItem(cfg, "intermediate_size")->valuedouble);
    char gqa[64] = "";
    if (kv < heads)
        snprintf(gqa, sizeof gqa, " (GQA %lld/%lld)", (long long)heads, (long long)kv);
    printf("%-16s %lld query / %lld key-value%s, head dim %d\n", "attention heads", (long long)heads, (long long)kv,
           gqa, (int)cJSON_GetObjectItem(cfg, "head_dim")->valuedouble);
    if (cJSON_GetObjectItem(cfg, "experts"))
        printf("%-16s %d, %d per token\n", "experts", (int)cJSON_GetObjectItem(cfg, "experts")->valuedouble,
               (int)cJSON_GetObjectItem(cfg, "experts_per_token")->valuedouble);
    printf("%-16s %d\n", "vocabulary", (int)cJSON_GetObjectItem(cfg, "vocab_size")->valuedouble);
    printf("%-16s %d\n", "context", (int)cJSON_GetObjectItem(cfg, "max_position_embeddings")->valuedouble);
    const cJSON *rope = cJSON_GetObjectItem(cfg, "rope");
    printf("%-16s %s, theta %g\n", "rope", cJSON_GetObjectItem(rope, "type")->valuestring,
           cJSON_GetObjectItem(rope, "theta")->valuedouble);
    printf("%-16s %s\n", "embeddings",
           cJSON_IsTrue(cJSON_GetObjectItem(cfg, "tie_word_embeddings")) ? "tied (lm_head = embed_tokens)" : "separate lm_head");
    printf("%-16s %s (%lld)\n", "parameters", human_count(s->parameters, a, sizeof a), (long long)s->parameters);
    printf("%-16s %d tensors, %s bytes%s", "storage", s->n_tensors, human_count(s->bytes, b, sizeof b),
           s->n_tensors ? ":" : " (vocabulary only: no weights)");
    for (const cJSON *d = s->dtypes->child; d; d = d->next)
        printf(" %s x%d", d->string, (int)d->valuedouble);
    printf("\n");
    if (cJSON_IsNull(s->quant))
        printf("%-16s none\n", "quantization");
    else if (cJSON_GetObjectItem(s->quant, "bits"))
        printf("%-16s %s %d-bit, group %d, %d per-layer overrides\n", "quantization",
               cJSON_GetObjectItem(s->quant, "mode")->valuestring, (int)cJSON_GetObjectItem(s->quant, "bits")->valuedouble,
               (int)cJSON_GetObjectItem(s->quant, "group_size")->valuedouble,
               (int)cJSON_GetObjectItem(s->quant, "overrides")->valuedouble);
    else
        printf("%-16s GGUF block formats (see storage)\n", "quantization");
    const cJSON *files = cJSON_GetObjectItem(s->tokenizer, "files");
    const cJSON *model = cJSON_GetObjectItem(s->tokenizer, "model");
    printf("%-16s ", "tokenizer");
    if (model)
        printf("embedded (%s, %d tokens)", model->valuestring,
               (int)cJSON_GetObjectItem(s->tokenizer, "tokens")->valuedouble);
    else if (cJSON_GetArraySize(files) == 0)
        printf("no tokenizer files found");
    for (const cJSON *f = files ? files->child : NULL; f; f = f->next)
        printf("%s%s", f == files->child ? "" : ", ", f->valuestring);
    printf("\n%-16s %s\n", "chat template",
           cJSON_IsTrue(cJSON_GetObjectItem(s->tokenizer, "chat_template")) ? "present" : "absent");
}

static int report(const char *path, const char *format, cJSON *cfg, model_summary *s, bool json) {
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "path", path);
        cJSON_AddStringToObject(j, "format", format);
        cJSON_AddItemToObject(j, "config", cfg);
        cJSON_AddNumberToObject(j, "parameters", (double)s->parameters);
        cJSON_AddNumberToObject(j, "tensors", s->n_tensors);
        cJSON_AddNumberToObject(j, "bytes", (double)s->bytes);
        cJSON_AddItemToObject(j, "dtypes", s->dtypes);
        cJSON_AddItemToObject(j, "quantization", s->quant);
        cJSON_AddItemToObject(j, "tokenizer", s->tokenizer);
        char *text = cJSON_Print(j);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(j);
    } else {
        print_human(path, format, cfg, s);
        cJSON_Delete(cfg);
        cJSON_Delete(s->dtypes);
        cJSON_Delete(s->quant);
        cJSON_Delete(s->tokenizer);
    }
    return 0;
}

static int info_folder(const char *dir, bool json) {
    ct_error err;
    ct_model_config c;
    if (ct_model_config_load(&c, dir, &err) != CT_OK)
        return cli_report(&err);
    ct_weights w;
    if (ct_weights_open(&w, dir, &err) != CT_OK) {
        ct_model_config_free(&c);
        return cli_report(&err);
    }
    model_summary s = {0};
    s.dtypes = cJSON_CreateObject();
    summarize_weights(&w, &c, &s);
    s.quant = quant_json(&c);
    s.tokenizer = tokenizer_files(dir);
    cJSON *cfg = config_json(&c);
    ct_weights_close(&w);
    ct_model_config_free(&c);
    return report(dir, c.quant.quantized ? "MLX quantized" : "Hugging Face", cfg, &s, json);
}

static int info_gguf(const char *path, bool json) {
    ct_error err;
    ct_gguf g;
    if (ct_gguf_open(&g, path, &err) != CT_OK)
        return cli_report(&err);
    ct_model_config c;
    if (ct_model_config_from_gguf(&c, &g, &err) != CT_OK) {
        ct_gguf_close(&g);
        return cli_report(&err);
    }
    model_summary s = {0};
    s.dtypes = cJSON_CreateObject();
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        s.parameters += g.tensors[i].nelements;
        s.bytes += (int64_t)g.tensors[i].nbytes;
        s.n_tensors++;
        count_dtype(s.dtypes, ct_ggml_type_name(g.tensors[i].type));
    }
    s.quant = cJSON_CreateObject();
    cJSON_AddStringToObject(s.quant, "format", "gguf");
    s.tokenizer = cJSON_CreateObject();
    cJSON_AddArrayToObject(s.tokenizer, "files");
    const char *model;
    size_t len;
    const ct_gguf_kv *tokens = ct_gguf_find_kv(&g, "tokenizer.ggml.tokens");
    if (ct_gguf_get_str(&g, "tokenizer.ggml.model", &model, &len) && tokens) {
        cJSON_AddStringToObject(s.tokenizer, "model", model);
        cJSON_AddNumberToObject(s.tokenizer, "tokens", (double)ct_gguf_arr_count(tokens));
    }
    cJSON_AddBoolToObject(s.tokenizer, "chat_template", ct_gguf_find_kv(&g, "tokenizer.chat_template") != NULL);
    cJSON *cfg = config_json(&c);
    ct_model_config_free(&c);
    ct_gguf_close(&g);
    return report(path, "GGUF", cfg, &s, json);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: ctune info MODEL [--json]\n\n"
                   "Describes a model: a Hugging Face or MLX folder (config.json + safetensors),\n"
                   "a .gguf file, or a single .safetensors file (lists its tensors).\n\n"
                   "  --json   print machine-readable JSON\n");
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_usage_error("info", "more than one model given ('%s' and '%s')", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path)
        return cli_usage_error("info", "no model given");
    char resolved[4096];
    ct_error err;
    if (!ct_path_exists(path) && !ends_with(path, ".safetensors") && !ends_with(path, ".gguf")) { // a hub id
        if (ct_hub_model_path(path, resolved, sizeof resolved, &err) != CT_OK)
            return cli_report(&err);
        path = resolved;
    }
    if (ends_with(path, ".safetensors"))
        return info_tensors_file(path, json);
    if (ends_with(path, ".gguf"))
        return info_gguf(path, json);
    if (!ct_is_dir(path)) {
        ct_fail(&err, CT_ERR_IO, "%s: not a model folder, .gguf or .safetensors file", path);
        return cli_report(&err);
    }
    return info_folder(path, json);
}
