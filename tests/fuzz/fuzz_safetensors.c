// libFuzzer target: the safetensors header parser and validation.
#include "ctune/safetensors.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size, ".safetensors");
    ct_safetensors st;
    ct_error err;
    if (ct_safetensors_open(&st, path, &err) == CT_OK) {
        for (int i = 0; i < st.n_tensors; i++)
            (void)ct_safetensors_find(&st, st.tensors[i].name);
        ct_safetensors_close(&st);
    }
    return 0;
}
