// adapter_io.c: adapter files in mlx-lm's layout (adapters.safetensors +
// adapter_config.json) and PEFT's (adapter_model.safetensors +
// adapter_config.json). Loading validates names and shapes against the model's
// module list the way mlx-lm's load_adapters does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/adapter.h"
#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/safetensors.h"
#include "ctune/strmap.h"

enum { LEAF_A, LEAF_B, LEAF_M };

void ct_adapter_set_free(ct_adapter_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->entries[i].lora_a);
        free(s->entries[i].lora_b);
        free(s->entries[i].m);
    }
    free(s->entries);
    ct_adapter_config_free(&s->cfg);
    memset(s, 0, sizeof *s);
}

// mlx shape of leaf k of module m (2-d; m: (len, 0)).
static void leaf_shape(const ct_module_desc *m, int k, int rank, int64_t shape[2]) {
    if (k == LEAF_A)
        shape[0] = m->in, shape[1] = rank;
    else if (k == LEAF_B)
        shape[0] = rank, shape[1] = m->out;
    else
        shape[0] = m->kind == CT_MODULE_LINEAR ? m->out : m->in, shape[1] = 0;
}

static float **entry_leaf(ct_adapter_entry *e, int k) { return k == LEAF_A ? &e->lora_a : k == LEAF_B ? &e->lora_b : &e->m; }

// ---- writing

typedef struct tensor_list {
    ct_tensor_view *v;
    char **names;
    float **data;
    int n, cap;
} tensor_list;

static void tensor_list_free(tensor_list *t) {
    for (int i = 0; i < t->n; i++)
        free(t->names[i]), free(t->data[i]);
    free(t->v), free(t->names), free(t->data);
}

// Appends name (owned copy) with data (taken) of shape (d0[, d1]).
static ct_status tensor_list_add(tensor_list *t, const char *name, float *data, int64_t d0, int64_t d1,
                                 ct_error *err) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        ct_tensor_view *v = realloc(t->v, sizeof *v * (size_t)cap);
        if (v)
            t->v = v;
        char **nm = realloc(t->names, sizeof *nm * (size_t)cap);
        if (nm)
            t->names = nm;
        float **dt = realloc(t->data, sizeof *dt * (size_t)cap);
        if (dt)
            t->data = dt;
        if (!v || !nm || !dt) {
            free(data);
            return ct_fail(err, CT_ERR_NOMEM, "adapter save: out of memory");
        }
        t->cap = cap;
    }
    char *nc = strdup(name);
    if (!nc) {
        free(data);
        return ct_fail(err, CT_ERR_NOMEM, "adapter save: out of memory");
    }
    t->names[t->n] = nc, t->data[t->n] = data;
    t->v[t->n] = (ct_tensor_view){.name = nc, .dtype = CT_F32, .ndim = d1 ? 2 : 1, .shape = {d0, d1}, .data = data,
                                  .nbytes = (size_t)(d0 * (d1 ? d1 : 1)) * sizeof(float)};
    t->n++;
    return CT_OK;
}

static float *transposed(const float *src, int64_t rows, int64_t cols) {
    float *t = malloc(sizeof(float) * (size_t)(rows * cols));
    if (t)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                t[j * rows + i] = src[i * cols + j];
    return t;
}

// Host copies of a layer's parameters in mlx's layout (m NULL for LoRA).
static ct_status layer_host(const ct_adapter_layer *l, ct_backend *be, float *p[3], ct_error *err) {
    int64_t s[3][2];
    p[0] = p[1] = p[2] = NULL;
    for (int k = 0; k < 3; k++) {
        leaf_shape(&l->mod, k, l->rank, s[k]);
        if (k == LEAF_M && l->type != CT_ADAPTER_DORA)
            break;
        p[k] = malloc(sizeof(float) * (size_t)(s[k][0] * (s[k][1] ? s[k][1] : 1)));
        if (!p[k]) {
            free(p[0]), free(p[1]);
            return ct_fail(err, CT_ERR_NOMEM, "adapter %s: out of memory", l->mod.path);
        }
    }
    ct_adapter_layer_get(l, be, p[0], p[1], p[2]);
    return CT_OK;
}

static ct_status collect(const ct_adapter_layer *layers, int n, ct_backend *be, bool peft, tensor_list *t,
                         ct_error *err) {
    static const char *mlx_leaf[] = {"lora_a", "lora_b", "m"};
    for (int i = 0; i < n; i++) {
        const ct_adapter_layer *l = &layers[i];
        float *p[3];
        CT_TRY(layer_host(l, be, p, err));
        for (int k = 0; k < 3; k++) {
            if (!p[k])
                continue;
            int64_t s[2];
            leaf_shape(&l->mod, k, l->rank, s);
            char name[1024];
            float *data = p[k];
            if (!peft) {
                snprintf(name, sizeof name, "%s.%s", l->mod.path, mlx_leaf[k]);
            } else {
                bool emb = l->mod.kind == CT_MODULE_EMBEDDING;
                const char *leaf = k == LEAF_M ? "lora_magnitude_vector"
                                   : emb       ? (k == LEAF_A ? "lora_embedding_A" : "lora_embedding_B")
                                               : (k == LEAF_A ? "lora_A.weight" : "lora_B.weight");
                snprintf(name, sizeof name, "base_model.model.%s.%s", l->mod.path, leaf);
                if (k != LEAF_M) { // PEFT stores the transposes of mlx's A and B
                    data = transposed(p[k], s[0], s[1]);
                    free(p[k]);
                    int64_t tmp = s[0];
                    s[0] = s[1], s[1] = tmp;
                }
            }
            ct_status st = data ? tensor_list_add(t, name, data, s[0], s[1], err)
                                : ct_fail(err, CT_ERR_NOMEM, "adapter save: out of memory");
            if (st != CT_OK) {
                for (int j = k + 1; j < 3; j++)
                    free(p[j]);
                return st;
            }
        }
    }
    return CT_OK;
}

static ct_status write_json(const char *path, cJSON *root, ct_error *err) {
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    ct_status st = ct_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

static cJSON *keys_array(const ct_adapter_config *cfg) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < cfg->n_keys; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(cfg->keys[i]));
    return a;
}

static ct_status save_files(const char *dir, const char *st_name, const char *cfg_name, cJSON *cfg_json,
                            const ct_adapter_layer *layers, int n, ct_backend *be, bool peft, ct_error *err) {
    char path[4096];
    tensor_list t = {0};
    ct_status st = ct_mkdir_p(dir, err);
    if (st == CT_OK)
        st = collect(layers, n, be, peft, &t, err);
    if (st == CT_OK)
        st = ct_path_join(path, sizeof path, dir, st_name, err);
    if (st == CT_OK)
        st = ct_safetensors_write(path, t.v, t.n, NULL, 0, err);
    tensor_list_free(&t);
    if (st == CT_OK)
        st = ct_path_join(path, sizeof path, dir, cfg_name, err);
    if (st == CT_OK)
        return write_json(path, cfg_json, err);
    cJSON_Delete(cfg_json);
    return st;
}

ct_status ct_adapter_save_mlx(const char *dir, const ct_adapter_config *cfg, const ct_adapter_layer *layers, int n,
                              ct_backend *be, ct_error *err) {
    cJSON *root = cJSON_CreateObject(), *lp = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "fine_tune_type", cfg->type == CT_ADAPTER_DORA ? "dora" : "lora");
    cJSON_AddNumberToObject(root, "num_layers", cfg->num_layers);
    cJSON_AddNumberToObject(lp, "rank", cfg->rank);
    cJSON_AddNumberToObject(lp, "scale", cfg->scale);
    cJSON_AddNumberToObject(lp, "dropout", cfg->dropout);
    if (cfg->n_keys)
        cJSON_AddItemToObject(lp, "keys", keys_array(cfg));
    cJSON_AddItemToObject(root, "lora_parameters", lp);
    return save_files(dir, "adapters.safetensors", "adapter_config.json", root, layers, n, be, false, err);
}

// PEFT target_modules: block-relative paths, or the full path outside blocks (unique, in order).
static cJSON *peft_targets(const ct_adapter_layer *layers, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        int b;
        const char *rel = layers[i].mod.path;
        if (!ct_module_block(rel, &b, &rel))
            rel = layers[i].mod.path;
        bool seen = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, a) seen |= strcmp(it->valuestring, rel) == 0;
        if (!seen)
            cJSON_AddItemToArray(a, cJSON_CreateString(rel));
    }
    return a;
}

ct_status ct_adapter_save_peft(const char *dir, const ct_adapter_config *cfg, const ct_adapter_layer *layers, int n,
                               ct_backend *be, ct_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "peft_type", "LORA");
    cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(root, "r", cfg->rank);
    cJSON_AddNumberToObject(root, "lora_alpha", (double)cfg->scale * cfg->rank);
    cJSON_AddNumberToObject(root, "lora_dropout", cfg->dropout);
    cJSON_AddBoolToObject(root, "use_dora", cfg->type == CT_ADAPTER_DORA);
    cJSON_AddStringToObject(root, "bias", "none");
    cJSON_AddItemToObject(root, "target_modules", peft_targets(layers, n));
    return save_files(dir, "adapter_model.safetensors", "adapter_config.json", root, layers, n, be, true, err);
}

// ---- reading

// Problems found while validating, collected into one message as mlx-lm does.
typedef struct problems {
    char text[1536];
    int n;
} problems;

static void problem(problems *p, const char *fmt, const char *name, const char *detail) {
    size_t len = strlen(p->text);
    if (len + 4 < sizeof p->text)
        snprintf(p->text + len, sizeof p->text - len, fmt, name, detail);
    p->n++;
}

static void shape_str(char *buf, size_t n, const int64_t *s, int ndim) {
    int off = snprintf(buf, n, "(");
    for (int i = 0; i < ndim && off < (int)n; i++)
        off += snprintf(buf + off, n - (size_t)off, i + 1 < ndim ? "%lld, " : ndim == 1 ? "%lld," : "%lld",
                        (long long)s[i]);
    if (off < (int)n)
        snprintf(buf + off, n - (size_t)off, ")");
}

// Copies tensor t (any float dtype) into the entry's leaf k, transposing when
// the file holds the transpose of mlx's (rows, cols).
static ct_status take_tensor(ct_adapter_entry *e, int k, const ct_tensor_view *t, const int64_t want[2],
                             bool file_transposed, ct_error *err) {
    int64_t n = want[0] * (want[1] ? want[1] : 1);
    float *tmp = malloc(sizeof(float) * (size_t)n);
    if (!tmp)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", t->name);
    ct_convert_to_f32(tmp, t->data, t->dtype, (size_t)n);
    float **dst = entry_leaf(e, k);
    if (file_transposed && want[1]) {
        *dst = transposed(tmp, want[1], want[0]);
        free(tmp);
        if (!*dst)
            return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", t->name);
    } else {
        *dst = tmp;
    }
    return CT_OK;
}

// Builds out->entries for the selected modules (entry index per module in slot).
static ct_status make_entries(const ct_module_desc *mods, int n_mods, const bool *sel, ct_adapter_set *out,
                              int *slot, ct_error *err) {
    out->entries = calloc((size_t)(n_mods ? n_mods : 1), sizeof *out->entries);
    if (!out->entries)
        return ct_fail(err, CT_ERR_NOMEM, "adapters: out of memory");
    for (int i = 0; i < n_mods; i++) {
        slot[i] = sel[i] ? out->n : -1;
        if (sel[i])
            out->entries[out->n++].module = i;
    }
    return CT_OK;
}

// Splits name into module path and leaf: mlx "<path>.lora_a|lora_b|m", PEFT
// "base_model.model.<path>.lora_A.weight|lora_B.weight|lora_embedding_A|
// lora_embedding_B|lora_magnitude_vector[.weight]". Returns the leaf (LEAF_*)
// or -1; path (size n) gets the module path.
static int split_name(const char *name, bool peft, char *path, size_t n) {
    static const char *mlx[] = {".lora_a", ".lora_b", ".m"};
    static const struct { const char *suffix; int leaf; } pf[] = {
        {".lora_A.weight", LEAF_A}, {".lora_B.weight", LEAF_B}, {".lora_embedding_A", LEAF_A},
        {".lora_embedding_B", LEAF_B}, {".lora_magnitude_vector", LEAF_M}, {".lora_magnitude_vector.weight", LEAF_M}};
    const char *prefix = "base_model.model.";
    if (peft && strncmp(name, prefix, strlen(prefix)) != 0)
        return -1;
    const char *body = peft ? name + strlen(prefix) : name;
    size_t len = strlen(body);
    int count = peft ? 6 : 3;
    for (int i = 0; i < count; i++) {
        const char *suf = peft ? pf[i].suffix : mlx[i];
        size_t sl = strlen(suf);
        if (len > sl && strcmp(body + len - sl, suf) == 0 && len - sl < n) {
            memcpy(path, body, len - sl);
            path[len - sl] = 0;
            return peft ? pf[i].leaf : i;
        }
    }
    return -1;
}

static ct_status module_index(const ct_module_desc *mods, int n, ct_strmap *map, ct_error *err) {
    ct_strmap_init(map);
    for (int i = 0; i < n; i++)
        CT_TRY(ct_strmap_puts(map, mods[i].path, i, NULL, err));
    return CT_OK;
}

// Validates every tensor of st against the selected modules and fills out.
static ct_status take_tensors(const ct_safetensors *st, const char *dir, const ct_module_desc *mods, int n_mods,
                              const int *slot, bool peft, ct_adapter_set *out, ct_error *err) {
    ct_strmap map;
    problems pr = {{0}, 0};
    ct_status s = module_index(mods, n_mods, &map, err);
    for (int i = 0; s == CT_OK && i < st->n_tensors; i++) {
        const ct_tensor_view *t = &st->tensors[i];
        char path[1024], a[64], b[64];
        int k = split_name(t->name, peft, path, sizeof path);
        int64_t mi = -1;
        if (k < 0 || !ct_strmap_gets(&map, path, &mi) || slot[mi] < 0 ||
            (k == LEAF_M && out->cfg.type != CT_ADAPTER_DORA)) {
            problem(&pr, "\n  %s: not an adapter parameter in the model%s", t->name, "");
            continue;
        }
        int64_t want[2], file[2];
        leaf_shape(&mods[mi], k, out->cfg.rank, want);
        bool tr = peft && k != LEAF_M;
        file[0] = tr ? want[1] : want[0], file[1] = tr ? want[0] : want[1];
        int wdim = want[1] ? 2 : 1;
        if (t->ndim != wdim || t->shape[0] != file[0] || (wdim == 2 && t->shape[1] != file[1]) ||
            !ct_dtype_is_float(t->dtype)) {
            shape_str(a, sizeof a, t->shape, t->ndim);
            shape_str(b, sizeof b, file, wdim);
            char detail[256];
            snprintf(detail, sizeof detail, "adapter shape %s%s does not match model parameter shape %s", a,
                     ct_dtype_is_float(t->dtype) ? "" : " (not a float type)", b);
            problem(&pr, "\n  %s: %s", t->name, detail);
            continue;
        }
        ct_adapter_entry *e = &out->entries[slot[mi]];
        if (*entry_leaf(e, k))
            problem(&pr, "\n  %s: %s", t->name, "given twice");
        else
            s = take_tensor(e, k, t, want, tr, err);
    }
    for (int i = 0; s == CT_OK && i < out->n; i++) {
        ct_adapter_entry *e = &out->entries[i];
        if (!e->lora_a || !e->lora_b || (out->cfg.type == CT_ADAPTER_DORA && !e->m))
            problem(&pr, "\n  %s: %s", mods[e->module].path, "adapter tensors missing from the file");
    }
    ct_strmap_free(&map);
    if (s == CT_OK && pr.n)
        s = ct_fail(err, CT_ERR_FORMAT, "Adapter at %s contains incompatible tensors:%s", dir, pr.text);
    return s;
}

static ct_status read_tensors(const char *dir, const char *file, const ct_module_desc *mods, int n_mods,
                              const bool *sel, bool peft, ct_adapter_set *out, ct_error *err) {
    char path[4096];
    ct_safetensors st;
    int *slot = malloc(sizeof(int) * (size_t)(n_mods ? n_mods : 1));
    if (!slot)
        return ct_fail(err, CT_ERR_NOMEM, "adapters: out of memory");
    ct_status s = make_entries(mods, n_mods, sel, out, slot, err);
    if (s == CT_OK)
        s = ct_path_join(path, sizeof path, dir, file, err);
    if (s == CT_OK && (s = ct_safetensors_open(&st, path, err)) == CT_OK) {
        s = take_tensors(&st, dir, mods, n_mods, slot, peft, out, err);
        ct_safetensors_close(&st);
    }
    free(slot);
    return s;
}

static ct_status open_config(const char *dir, cJSON **root, ct_error *err) {
    char path[4096];
    if (!ct_is_dir(dir))
        return ct_fail(err, CT_ERR_IO, "The adapter path does not exist: %s", dir);
    CT_TRY(ct_path_join(path, sizeof path, dir, "adapter_config.json", err));
    return ct_json_load_file(path, root, err);
}

static ct_status read_keys(const cJSON *arr, ct_adapter_config *cfg, ct_error *err) {
    if (!arr || cJSON_IsNull(arr))
        return CT_OK;
    if (!cJSON_IsArray(arr))
        return ct_fail(err, CT_ERR_FORMAT, "\"keys\" must be a list of module paths");
    int n = cJSON_GetArraySize(arr);
    const char **k = calloc((size_t)(n ? n : 1), sizeof *k);
    if (!k)
        return ct_fail(err, CT_ERR_NOMEM, "keys: out of memory");
    ct_status s = CT_OK;
    for (int i = 0; i < n && s == CT_OK; i++) {
        const cJSON *it = cJSON_GetArrayItem(arr, i);
        if (cJSON_IsString(it))
            k[i] = it->valuestring;
        else
            s = ct_fail(err, CT_ERR_FORMAT, "\"keys\"[%d] must be a string, not %s", i, ct_json_type_name(it));
    }
    if (s == CT_OK)
        s = ct_adapter_config_set_keys(cfg, k, n, err);
    free(k);
    return s;
}

// adapter_config.json of mlx-lm -> cfg.
static ct_status parse_mlx_config(const cJSON *root, ct_adapter_config *cfg, ct_error *err) {
    const char *ft = "lora";
    int64_t nl, rank = cfg->rank;
    double scale = cfg->scale, dropout = cfg->dropout, alpha = 0;
    CT_TRY(ct_json_string(root, "fine_tune_type", &ft, err));
    if (strcmp(ft, "lora") != 0 && strcmp(ft, "dora") != 0)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "fine_tune_type \"%s\" has no adapters (lora or dora)", ft);
    cfg->type = strcmp(ft, "dora") == 0 ? CT_ADAPTER_DORA : CT_ADAPTER_LORA;
    CT_TRY(ct_json_need_int(root, "num_layers", &nl, err));
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "lora_parameters");
    if (!cJSON_IsObject(lp))
        return ct_fail(err, CT_ERR_FORMAT, "missing \"lora_parameters\" object");
    CT_TRY(ct_json_int(lp, "rank", &rank, err));
    CT_TRY(ct_json_double(lp, "scale", &scale, err));
    CT_TRY(ct_json_double(lp, "alpha", &alpha, err));
    CT_TRY(ct_json_double(lp, "dropout", &dropout, err));
    if (rank <= 0 || rank > 1 << 20)
        return ct_fail(err, CT_ERR_FORMAT, "lora_parameters.rank must be positive (got %lld)", (long long)rank);
    if (alpha > 0) // ctune accepts alpha beside scale: scale = alpha / rank
        scale = alpha / (double)rank;
    cfg->num_layers = (int)nl, cfg->rank = (int)rank, cfg->scale = (float)scale, cfg->dropout = (float)dropout;
    return read_keys(cJSON_GetObjectItemCaseSensitive(lp, "keys"), cfg, err);
}

ct_status ct_adapter_load_mlx(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                              ct_error *err) {
    memset(out, 0, sizeof *out);
    ct_adapter_config_default(&out->cfg);
    cJSON *root = NULL;
    bool *sel = calloc((size_t)(n_mods ? n_mods : 1), sizeof *sel);
    ct_status s = sel ? open_config(dir, &root, err) : ct_fail(err, CT_ERR_NOMEM, "adapters: out of memory");
    if (s == CT_OK && (s = parse_mlx_config(root, &out->cfg, err)) != CT_OK)
        ct_error_context(err, "%s/adapter_config.json", dir);
    if (s == CT_OK)
        s = ct_adapter_select(mods, n_mods, &out->cfg, sel, err);
    if (s == CT_OK)
        s = read_tensors(dir, "adapters.safetensors", mods, n_mods, sel, false, out, err);
    cJSON_Delete(root);
    free(sel);
    if (s != CT_OK)
        ct_adapter_set_free(out);
    return s;
}

// adapter_config.json of PEFT -> cfg (the modules come from the tensor names).
static ct_status parse_peft_config(const cJSON *root, ct_adapter_config *cfg, ct_error *err) {
    const char *type = "LORA";
    int64_t r;
    double alpha, dropout = 0;
    bool dora = false;
    CT_TRY(ct_json_string(root, "peft_type", &type, err));
    if (strcmp(type, "LORA") != 0)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "peft_type \"%s\" (only LORA)", type);
    CT_TRY(ct_json_need_int(root, "r", &r, err));
    alpha = (double)r;
    CT_TRY(ct_json_double(root, "lora_alpha", &alpha, err));
    CT_TRY(ct_json_double(root, "lora_dropout", &dropout, err));
    CT_TRY(ct_json_bool(root, "use_dora", &dora, err));
    const char *patterns[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, patterns[i]);
        if (p && cJSON_GetArraySize(p) > 0)
            return ct_fail(err, CT_ERR_UNSUPPORTED, "%s (per-module ranks or alphas) is not supported", patterns[i]);
    }
    bool rs = false;
    CT_TRY(ct_json_bool(root, "use_rslora", &rs, err));
    if (r <= 0 || r > 1 << 20)
        return ct_fail(err, CT_ERR_FORMAT, "\"r\" must be positive (got %lld)", (long long)r);
    if (rs)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "use_rslora (scale alpha/sqrt(r)) is not supported");
    cfg->type = dora ? CT_ADAPTER_DORA : CT_ADAPTER_LORA;
    cfg->rank = (int)r, cfg->scale = (float)(alpha / (double)r), cfg->dropout = (float)dropout;
    cfg->num_layers = -1;
    return CT_OK;
}

// Modules named by the file's lora_A tensors, as cfg->keys (full paths) and sel.
static ct_status peft_modules(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out, bool *sel,
                              ct_error *err) {
    char path[4096], mp[1024];
    ct_safetensors st;
    CT_TRY(ct_path_join(path, sizeof path, dir, "adapter_model.safetensors", err));
    CT_TRY(ct_safetensors_open(&st, path, err));
    ct_strmap map;
    ct_status s = module_index(mods, n_mods, &map, err);
    for (int i = 0; s == CT_OK && i < st.n_tensors; i++) {
        int64_t mi;
        if (split_name(st.tensors[i].name, true, mp, sizeof mp) == LEAF_A && ct_strmap_gets(&map, mp, &mi))
            sel[mi] = true;
    }
    ct_strmap_free(&map);
    ct_safetensors_close(&st);
    int n = 0;
    const char **keys = calloc((size_t)(n_mods ? n_mods : 1), sizeof *keys);
    if (s == CT_OK && !keys)
        s = ct_fail(err, CT_ERR_NOMEM, "adapters: out of memory");
    for (int i = 0; s == CT_OK && i < n_mods; i++)
        if (sel[i])
            keys[n++] = mods[i].path;
    if (s == CT_OK)
        s = ct_adapter_config_set_keys(&out->cfg, keys, n, err);
    free(keys);
    return s;
}

ct_status ct_adapter_load_peft(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                               ct_error *err) {
    memset(out, 0, sizeof *out);
    ct_adapter_config_default(&out->cfg);
    cJSON *root = NULL;
    bool *sel = calloc((size_t)(n_mods ? n_mods : 1), sizeof *sel);
    ct_status s = sel ? open_config(dir, &root, err) : ct_fail(err, CT_ERR_NOMEM, "adapters: out of memory");
    if (s == CT_OK && (s = parse_peft_config(root, &out->cfg, err)) != CT_OK)
        ct_error_context(err, "%s/adapter_config.json", dir);
    if (s == CT_OK)
        s = peft_modules(dir, mods, n_mods, out, sel, err);
    if (s == CT_OK)
        s = read_tensors(dir, "adapter_model.safetensors", mods, n_mods, sel, true, out, err);
    cJSON_Delete(root);
    free(sel);
    if (s != CT_OK)
        ct_adapter_set_free(out);
    return s;
}

ct_status ct_adapter_load(const char *dir, const ct_module_desc *mods, int n_mods, ct_adapter_set *out,
                          ct_error *err) {
    char path[4096];
    CT_TRY(ct_path_join(path, sizeof path, dir, "adapter_model.safetensors", err));
    if (ct_path_exists(path))
        return ct_adapter_load_peft(dir, mods, n_mods, out, err);
    return ct_adapter_load_mlx(dir, mods, n_mods, out, err);
}
