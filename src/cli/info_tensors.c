// ctune info FILE.safetensors [--json]: the tensors of one safetensors file.
#include <inttypes.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "ctune/safetensors.h"

static void shape_text(const ct_tensor_view *t, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(out + k, n - k, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    if (k < n)
        snprintf(out + k, n - k, "]");
}

static void print_text(const ct_safetensors *st) {
    int64_t params = 0, bytes = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const ct_tensor_view *t = &st->tensors[i];
        char shape[256];
        shape_text(t, shape, sizeof shape);
        printf("%-60s %-8s %s\n", t->name, ct_dtype_name(t->dtype), shape);
        params += ct_tensor_numel(t);
        bytes += (int64_t)t->nbytes;
    }
    for (int i = 0; i < st->n_meta; i++)
        printf("metadata %s = %s\n", st->meta[2 * i], st->meta[2 * i + 1]);
    printf("%d tensors, %" PRId64 " parameters, %" PRId64 " bytes\n", st->n_tensors, params, bytes);
}

static int print_json(const ct_safetensors *st) {
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "tensors");
    double params = 0, bytes = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const ct_tensor_view *t = &st->tensors[i];
        cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "dtype", ct_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(o, "shape", shape);
        cJSON_AddItemToArray(list, o);
        params += (double)ct_tensor_numel(t);
        bytes += (double)t->nbytes;
    }
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    for (int i = 0; i < st->n_meta; i++)
        cJSON_AddStringToObject(meta, st->meta[2 * i], st->meta[2 * i + 1]);
    cJSON_AddNumberToObject(root, "parameters", params);
    cJSON_AddNumberToObject(root, "bytes", bytes);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

int info_tensors_file(const char *path, bool json) {
    ct_error err;
    ct_safetensors st;
    if (ct_safetensors_open(&st, path, &err) != CT_OK)
        return cli_report(&err);
    int rc = 0;
    if (json)
        rc = print_json(&st);
    else
        print_text(&st);
    ct_safetensors_close(&st);
    return rc;
}
