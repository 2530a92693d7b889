// libFuzzer target: JSONL dataset loading and validation.
#include "ctune/dataset.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size, "-train.jsonl");
    ct_dataset ds = {0};
    ct_error err;
    (void)ct_dataset_load_file(&ds, path, NULL, size % 2 == 0, &err);
    ct_dataset_free(&ds);
    return 0;
}
