// libFuzzer target: config.json parsing (JSON glue, architectures, RoPE, quantization).
#include "ctune/config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size, "-config.json");
    ct_model_config c;
    ct_error err;
    if (ct_model_config_load(&c, path, &err) == CT_OK) {
        (void)ct_model_config_quant_for(&c, "model.layers.0.mlp.down_proj");
        ct_model_config_free(&c);
    }
    return 0;
}
