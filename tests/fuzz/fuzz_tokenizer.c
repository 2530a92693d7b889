// libFuzzer target: tokenizer.json loading, then encode/decode of a fixed text.
#include <stdlib.h>
#include <string.h>

#include "ctune/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_log_set_level(CT_LOG_QUIET);
    ct_tokenizer *t;
    ct_error err;
    if (ct_tokenizer_from_json(&t, (const char *)data, size, "fuzz.json", &err) != CT_OK)
        return 0;
    const char *text = "Hello world! 123 <s> caf\xc3\xa9 \xf0\x9f\xa6\x99";
    int32_t *ids;
    size_t n;
    if (ct_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err) == CT_OK) {
        char *out;
        if (ct_tokenizer_decode(t, ids, n, false, &out, &err) == CT_OK)
            free(out);
        free(ids);
    }
    ct_tokenizer_free(t);
    return 0;
}
