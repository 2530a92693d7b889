// libFuzzer target: the GGUF reader, metadata-to-config mapping and dequantization.
#include <stdlib.h>

#include "ctune/gguf.h"
#include "ctune/gguf_config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size, ".gguf");
    ct_gguf g;
    ct_error err;
    if (ct_gguf_open(&g, path, &err) != CT_OK)
        return 0;
    ct_model_config c;
    if (ct_model_config_from_gguf(&c, &g, &err) == CT_OK)
        ct_model_config_free(&c);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const ct_gguf_tensor *t = &g.tensors[i];
        if (t->nelements > (1 << 16))
            continue;
        float *out = malloc((size_t)t->nelements * sizeof(float) + 1);
        if (out) {
            (void)ct_gguf_tensor_to_f32(&g, t, out, &err);
            free(out);
        }
    }
    ct_gguf_close(&g);
    return 0;
}
