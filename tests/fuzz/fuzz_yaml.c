// libFuzzer target: `ctune lora -c FILE.yaml` parsing and validation.
#include "ctune/lora_args.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size, ".yaml");
    ct_lora_args a;
    ct_error err;
    if (ct_lora_args_defaults(&a, &err) != CT_OK)
        return 0;
    if (ct_lora_args_apply_yaml(&a, path, &err) == CT_OK)
        (void)ct_lora_args_validate(&a, &err);
    ct_lora_args_free(&a);
    return 0;
}
