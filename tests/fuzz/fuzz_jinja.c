// libFuzzer target: Jinja template compilation and rendering on a chat context.
#include <stdlib.h>

#include "ctune/jinja.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ct_jinja_template *t;
    ct_error err;
    if (ct_jinja_compile(&t, (const char *)data, size, "fuzz", &err) != CT_OK)
        return 0;
    static cJSON *ctx;
    if (!ctx)
        ctx = cJSON_Parse("{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", "
                          "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\", \"tool_calls\": "
                          "[{\"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1}}}]}], \"tools\": null, "
                          "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
    char *out;
    if (ct_jinja_render(t, ctx, &out, &err) == CT_OK)
        free(out);
    ct_jinja_free(t);
    return 0;
}
