// gguf_dump: prints a GGUF file's metadata (key, type, value; arrays shortened)
// and tensors (name, type, ne, offset, bytes). Used by tests and one-off checks.
//   gguf_dump FILE                 metadata and tensors
//   gguf_dump --dequant FILE       also dequantizes every tensor, prints sum and max|x|
//   gguf_dump --raw NAME OUT FILE  writes tensor NAME dequantized to OUT (raw f32)
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/gguf.h"

static void print_elem(const ct_gguf_kv *kv, uint64_t i, bool arr) {
    int64_t iv;
    uint64_t uv;
    double f;
    const char *s;
    if (kv->elem_type == CT_GGUF_STRING) {
        bool ok = arr ? ct_gguf_arr_str(kv, i, &s, NULL) : ct_gguf_kv_str(kv, &s, NULL);
        printf("\"%.80s\"", ok ? s : "?");
    } else if (kv->elem_type == CT_GGUF_BOOL) {
        printf("%s", ((const uint8_t *)kv->data)[i] ? "true" : "false");
    } else if (kv->elem_type == CT_GGUF_F32 || kv->elem_type == CT_GGUF_F64) {
        bool ok = arr ? ct_gguf_arr_f64(kv, i, &f) : ct_gguf_kv_f64(kv, &f);
        printf("%.9g", ok ? f : NAN);
    } else if (arr ? ct_gguf_arr_i64(kv, i, &iv) : ct_gguf_kv_i64(kv, &iv)) {
        printf("%" PRId64, iv);
    } else if (!arr && ct_gguf_kv_u64(kv, &uv)) {
        printf("%" PRIu64, uv);
    } else {
        printf("?");
    }
}

static void print_kv(const ct_gguf_kv *kv) {
    if (kv->type != CT_GGUF_ARRAY) {
        printf("kv %s %s = ", kv->key, ct_gguf_type_name(kv->type));
        print_elem(kv, 0, false);
    } else {
        printf("kv %s array[%s] count=%" PRIu64 " = [", kv->key, ct_gguf_type_name(kv->elem_type), kv->count);
        for (uint64_t i = 0; i < kv->count && i < 5; i++) {
            printf(i ? ", " : "");
            print_elem(kv, i, true);
        }
        printf(kv->count > 5 ? ", ...]" : "]");
    }
    printf("\n");
}

static int dequant_all(const ct_gguf *g) {
    int bad = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const ct_gguf_tensor *t = &g->tensors[i];
        float *x = malloc((size_t)t->nelements * sizeof *x);
        ct_error err;
        if (!x || ct_gguf_tensor_to_f32(g, t, x, &err) != CT_OK) {
            fprintf(stderr, "error: %s\n", x ? err.msg : "out of memory");
            free(x);
            bad++;
            continue;
        }
        double sum = 0, amax = 0;
        for (int64_t k = 0; k < t->nelements; k++) {
            sum += x[k];
            amax = fabs(x[k]) > amax ? fabs(x[k]) : amax;
        }
        printf("dequant %s %s sum=%.9g maxabs=%.9g\n", t->name, ct_ggml_type_name(t->type), sum, amax);
        free(x);
    }
    return bad;
}

static int write_raw(const ct_gguf *g, const char *name, const char *out) {
    const ct_gguf_tensor *t = ct_gguf_find_tensor(g, name);
    if (!t) {
        fprintf(stderr, "error: %s: no tensor '%s'\n", g->path, name);
        return 1;
    }
    float *x = malloc((size_t)t->nelements * sizeof *x);
    ct_error err;
    ct_status st = x ? ct_gguf_tensor_to_f32(g, t, x, &err) : ct_fail(&err, CT_ERR_NOMEM, "out of memory");
    if (st == CT_OK)
        st = ct_write_file_atomic(out, x, (size_t)t->nelements * sizeof *x, &err);
    free(x);
    if (st != CT_OK)
        fprintf(stderr, "error: %s\n", err.msg);
    return st != CT_OK;
}

int main(int argc, char **argv) {
    bool dequant = argc == 3 && strcmp(argv[1], "--dequant") == 0;
    bool raw = argc == 5 && strcmp(argv[1], "--raw") == 0;
    if (argc != 2 && !dequant && !raw) {
        fprintf(stderr, "usage: gguf_dump [--dequant | --raw NAME OUT] FILE\n");
        return 2;
    }
    ct_gguf g;
    ct_error err;
    if (ct_gguf_open(&g, argv[argc - 1], &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (raw) {
        rc = write_raw(&g, argv[2], argv[3]);
    } else {
        printf("version %u alignment %zu kv %" PRIu64 " tensors %" PRIu64 "\n", g.version, g.alignment, g.n_kv,
               g.n_tensors);
        for (uint64_t i = 0; i < g.n_kv; i++)
            print_kv(&g.kv[i]);
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const ct_gguf_tensor *t = &g.tensors[i];
            printf("tensor %s %s ne=[%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "] ndim=%u offset=%" PRIu64
                   " bytes=%zu\n",
                   t->name, ct_ggml_type_name(t->type), t->ne[0], t->ne[1], t->ne[2], t->ne[3], t->ndim, t->offset,
                   t->nbytes);
        }
        if (dequant)
            rc = dequant_all(&g) != 0;
    }
    ct_gguf_close(&g);
    return rc;
}
