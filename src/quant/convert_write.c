// convert_write.c: the output folder of ctune convert, laid out as mlx-lm's
// save() writes it: model.safetensors (or 5 GiB shards) with metadata
// {"format": "mlx"}, model.safetensors.index.json (always, as mlx-lm does),
// config.json (top-level keys sorted, "quantization" mirrored into
// "quantization_config"), tokenizer files, generation_config.json, *.py, and a
// README.md model card. Everything goes into "<out>.tmp-<pid>-XXXXXX", renamed to
// <out> at the end; on failure that folder is removed.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert_internal.h"
#include "ctune/log.h"

#define MAX_SHARD_BYTES ((size_t)5 << 30) // mlx-lm's MAX_FILE_SIZE_GB

ct_status cv_write_json(const char *dir, const char *file, const cJSON *doc, ct_error *err) {
    char path[4096];
    CT_TRY(ct_path_join(path, sizeof path, dir, file, err));
    char *text = cJSON_Print(doc);
    if (!text)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    ct_status st = ct_write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    return st;
}

static int cmp_item(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

// Re-adds obj's members in key order (save_config sorts the top level).
static ct_status sort_keys(cJSON *obj, ct_error *err) {
    int n = cJSON_GetArraySize(obj);
    cJSON **items = malloc(sizeof *items * (size_t)(n ? n : 1));
    if (!items)
        return ct_fail(err, CT_ERR_NOMEM, "config.json: out of memory");
    int k = 0;
    for (cJSON *it = obj->child; it; it = it->next)
        items[k++] = it;
    qsort(items, (size_t)n, sizeof *items, cmp_item);
    for (int i = 0; i < n; i++)
        cJSON_DetachItemViaPointer(obj, items[i]);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToObject(obj, items[i]->string, items[i]); // (re-uses the detached item)
    free(items);
    return CT_OK;
}

// The quantization block: {group_size, bits, mode} plus the per-module overrides.
static cJSON *quant_block(const cv_job *j) {
    cJSON *q = cJSON_CreateObject();
    if (!q)
        return NULL;
    cJSON_AddNumberToObject(q, "group_size", j->rtn.group_size);
    cJSON_AddNumberToObject(q, "bits", j->rtn.bits);
    cJSON_AddStringToObject(q, "mode", "affine");
    for (const cJSON *it = j->overrides->child; it; it = it->next)
        cJSON_AddItemToObject(q, it->string, cJSON_Duplicate(it, true));
    return q;
}

static ct_status write_config(cv_job *j, const char *dir, ct_error *err) {
    cJSON *c = cJSON_Duplicate(j->config, true);
    if (!c)
        return ct_fail(err, CT_ERR_NOMEM, "config.json: out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "_name_or_path");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "vision_config");
    if (j->o->quantize || j->o->dequantize) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "quantization");
        cJSON_DeleteItemFromObjectCaseSensitive(c, "quantization_config");
    }
    if (j->is_gguf && j->dtype_set) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "torch_dtype");
        cJSON_AddStringToObject(c, "torch_dtype", j->dtype == CT_F16 ? "float16" : j->dtype == CT_BF16 ? "bfloat16"
                                                                                                        : "float32");
    }
    ct_status st = CT_OK;
    if (j->o->quantize) {
        cJSON *q = quant_block(j), *qc = q ? cJSON_Duplicate(q, true) : NULL;
        if (!q || !qc) {
            cJSON_Delete(q);
            cJSON_Delete(qc);
            st = ct_fail(err, CT_ERR_NOMEM, "config.json: out of memory");
        } else {
            cJSON_AddItemToObject(c, "quantization", q);
            cJSON_AddItemToObject(c, "quantization_config", qc);
        }
    }
    if (st == CT_OK)
        st = sort_keys(c, err);
    if (st == CT_OK)
        st = cv_write_json(dir, "config.json", c, err);
    cJSON_Delete(c);
    return st;
}

// Shards as mlx-lm's make_shards cuts them: a new shard when the next tensor
// would take the current one past the limit. shard_of[i] gets each tensor's.
static int plan_shards(const ct_tensor_view *t, int n, int *shard_of) {
    int k = -1;
    size_t size = 0;
    for (int i = 0; i < n; i++) {
        if (k < 0 || size + t[i].nbytes > MAX_SHARD_BYTES) {
            k++;
            size = 0;
        }
        shard_of[i] = k;
        size += t[i].nbytes;
    }
    return k + 1;
}

static void shard_file(char *out, size_t n, int k, int n_shards) {
    if (n_shards > 1)
        snprintf(out, n, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
    else
        snprintf(out, n, "model.safetensors");
}

// model.safetensors.index.json as mlx-lm's save_model writes it (also for one file).
static ct_status write_index(cv_job *j, const char *dir, const int *shard_of, int n_shards, ct_error *err) {
    cJSON *doc = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(doc, "metadata");
    cJSON *map = cJSON_AddObjectToObject(doc, "weight_map");
    if (!meta || !map) {
        cJSON_Delete(doc);
        return ct_fail(err, CT_ERR_NOMEM, "index: out of memory");
    }
    cJSON_AddNumberToObject(meta, "total_size", (double)j->stats.total_bytes);
    cJSON_AddNumberToObject(meta, "total_parameters", (double)j->stats.total_parameters);
    for (int i = 0; i < j->n_out; i++) {
        char f[64];
        shard_file(f, sizeof f, shard_of[i], n_shards);
        cJSON_AddStringToObject(map, j->out[i].name, f);
    }
    ct_status st = sort_keys(map, err);
    if (st == CT_OK)
        st = cv_write_json(dir, "model.safetensors.index.json", doc, err);
    cJSON_Delete(doc);
    return st;
}

static int cmp_views(const void *a, const void *b) {
    return strcmp(((const ct_tensor_view *)a)->name, ((const ct_tensor_view *)b)->name);
}

static ct_status write_weights(cv_job *j, const char *dir, ct_error *err) {
    // Sort by name (with the owned pointers alongside) so shards are stable.
    for (int i = 0; i < j->n_out; i++)
        for (int k = i; k > 0 && cmp_views(&j->out[k - 1], &j->out[k]) > 0; k--) {
            ct_tensor_view tv = j->out[k];
            j->out[k] = j->out[k - 1];
            j->out[k - 1] = tv;
            void *o = j->owned[k];
            j->owned[k] = j->owned[k - 1];
            j->owned[k - 1] = o;
        }
    int *shard_of = malloc(sizeof(int) * (size_t)(j->n_out + 1));
    if (!shard_of)
        return ct_fail(err, CT_ERR_NOMEM, "convert: out of memory");
    int n_shards = plan_shards(j->out, j->n_out, shard_of);
    j->stats.n_tensors = j->n_out;
    j->stats.n_shards = n_shards;
    j->stats.total_bytes = 0;
    for (int i = 0; i < j->n_out; i++)
        j->stats.total_bytes += j->out[i].nbytes;
    j->stats.bits_per_weight =
        j->stats.total_parameters ? 8.0 * (double)j->stats.total_bytes / (double)j->stats.total_parameters : 0;
    static const char *const meta[] = {"format", "mlx"};
    ct_status st = ct_safetensors_write_sharded(dir, j->out, j->n_out, MAX_SHARD_BYTES, meta, 1, err);
    if (st == CT_OK)
        st = write_index(j, dir, shard_of, n_shards, err);
    free(shard_of);
    return st;
}

static ct_status copy_file(const char *src_dir, const char *name, const char *dir, ct_error *err) {
    char src[4096], dst[4096], *data;
    size_t len;
    CT_TRY(ct_path_join(src, sizeof src, src_dir, name, err));
    if (!ct_path_exists(src))
        return CT_OK;
    CT_TRY(ct_path_join(dst, sizeof dst, dir, name, err));
    CT_TRY(ct_read_file(src, &data, &len, err));
    ct_status st = ct_write_file_atomic(dst, data, len, err);
    free(data);
    return st;
}

// Tokenizer files, generation_config.json and *.py of a folder source.
static ct_status copy_side_files(const cv_job *j, const char *dir, ct_error *err) {
    static const char *const files[] = {
        "tokenizer.json",     "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
        "vocab.json",         "merges.txt",            "added_tokens.json",       "chat_template.jinja",
        "chat_template.json", "generation_config.json",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CT_TRY(copy_file(j->o->model, files[i], dir, err));
    DIR *d = opendir(j->o->model);
    if (!d)
        return ct_fail(err, CT_ERR_IO, "%s: %s", j->o->model, strerror(errno));
    ct_status st = CT_OK;
    for (struct dirent *e; st == CT_OK && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > 3 && !strcmp(e->d_name + n - 3, ".py"))
            st = copy_file(j->o->model, e->d_name, dir, err);
    }
    closedir(d);
    return st;
}

static ct_status write_model_card(const cv_job *j, const char *dir, ct_error *err) {
    char path[4096], text[5000];
    CT_TRY(ct_path_join(path, sizeof path, dir, "README.md", err));
    int n = snprintf(text, sizeof text,
                     "---\nbase_model: %s\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n",
                     j->o->model);
    return ct_write_file_atomic(path, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1, err);
}

ct_status cv_write_folder(cv_job *j, ct_error *err) {
    char tmp[4200];
    CT_TRY(ct_temp_dir_create(j->o->mlx_path, tmp, sizeof tmp, err));
    ct_status st = write_weights(j, tmp, err);
    if (st == CT_OK)
        st = write_config(j, tmp, err);
    if (st == CT_OK)
        st = j->is_gguf ? cv_gguf_tokenizer(j, tmp, err) : copy_side_files(j, tmp, err);
    if (st == CT_OK)
        st = write_model_card(j, tmp, err);
    if (st == CT_OK && j->o->finish)
        st = j->o->finish(j->o->finish_ctx, tmp, err);
    if (st == CT_OK && rename(tmp, j->o->mlx_path) != 0)
        st = ct_fail(err, CT_ERR_IO, "%s: cannot move the finished folder into place: %s", j->o->mlx_path,
                     strerror(errno));
    if (st != CT_OK)
        ct_remove_tree(tmp, NULL);
    return st;
}
