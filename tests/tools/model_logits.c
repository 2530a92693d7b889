// model_logits: runs a model on token ids and writes the logits (T, V) as raw
// little-endian f32 to OUT. Used by tools/compare_model_logits.py and the
// assets checks and tools/adapter_interop.py (with an adapter folder).
// usage: model_logits MODEL IDS(comma-separated) OUT [ADAPTER_DIR]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/model.h"
#include "ctune/tuned_model.h"

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: model_logits MODEL IDS OUT [ADAPTER_DIR]\n");
        return 2;
    }
    int32_t ids[4096];
    int T = 0;
    for (char *s = argv[2]; *s && T < 4096;) {
        ids[T++] = (int32_t)strtol(s, &s, 10);
        while (*s == ',')
            s++;
    }
    ct_error err = {0};
    ct_backend *be;
    ct_model m;
    ct_kv_cache kv;
    ct_tuned_model *adapters = NULL;
    const float *dev;
    if (ct_backend_cpu_create(&be, &err) != CT_OK)
        goto fail;
    if (ct_model_load(&m, argv[1], be, &err) != CT_OK)
        goto fail;
    if (argc == 5 && ct_model_apply_adapters(&m, argv[4], &adapters, &err) != CT_OK)
        goto fail;
    if (ct_kv_cache_init(&kv, &m, 1, T, &err) != CT_OK || ct_model_forward(&m, &kv, ids, 1, T, false, &dev, &err) != CT_OK)
        goto fail;
    size_t n = (size_t)T * (size_t)m.V;
    float *out = malloc(sizeof(float) * n);
    be->download(be, out, dev, sizeof(float) * n);
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof(float), n, f) != n) {
        fprintf(stderr, "error: cannot write %s\n", argv[3]);
        return 1;
    }
    fclose(f);
    free(out);
    ct_kv_cache_free(&kv, &m);
    ct_tuned_model_free(adapters);
    ct_model_free(&m);
    ct_backend_destroy(be);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
}
