// Records to ids and prompt offsets, against transformers' apply_chat_template
// and mlx-lm's dataset rules (fixtures: tools/make_encode_fixtures.py).
#include <stdlib.h>

#include "ctune/data_encode.h"
#include "ctune/json.h"
#include "harness.h"

static ct_dataset_format format_of(const char *s) {
    return !strcmp(s, "text") ? CT_DATA_TEXT : !strcmp(s, "chat") ? CT_DATA_CHAT : CT_DATA_COMPLETIONS;
}

TEST(data_encode_matches_transformers) {
    ct_error err;
    ct_tokenizer *tok;
    CHECK_OK(ct_tokenizer_load(&tok, ct_test_fixture("encode"), &err), &err);
    ct_data_encoder enc;
    CHECK_OK(ct_data_encoder_init(&enc, tok, &err), &err);
    cJSON *cases;
    CHECK_OK(ct_json_load_file(ct_test_fixture("encode/cases.json"), &cases, &err), &err);
    int k = 0;
    for (const cJSON *c = cases->child; c; c = c->next, k++) {
        const char *fmt = cJSON_GetObjectItem(c, "format")->valuestring;
        bool mask = cJSON_IsTrue(cJSON_GetObjectItem(c, "mask_prompt"));
        int32_t *ids;
        size_t n, off;
        CHECK_OK(ct_data_encode(&enc, cJSON_GetObjectItem(c, "record"), format_of(fmt), mask, &ids, &n, &off, &err),
                 &err);
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        CHECK_MSG((int)n == cJSON_GetArraySize(want), "case %d (%s): %zu ids, want %d", k, fmt, n,
                  cJSON_GetArraySize(want));
        int i = 0;
        for (const cJSON *w = want->child; w; w = w->next, i++)
            CHECK_MSG(ids[i] == w->valueint, "case %d (%s): id %d is %d, want %d", k, fmt, i, ids[i], w->valueint);
        CHECK_MSG((int)off == cJSON_GetObjectItem(c, "offset")->valueint, "case %d (%s, mask %d): offset %zu, want %d",
                  k, fmt, mask, off, cJSON_GetObjectItem(c, "offset")->valueint);
        free(ids);
    }
    CHECK_EQ(k, 19);
    cJSON_Delete(cases);
    ct_data_encoder_free(&enc);
    ct_tokenizer_free(tok);
}

TEST(data_encode_chat_without_template_fails) {
    ct_error err;
    ct_tokenizer *tok;
    CHECK_OK(ct_tokenizer_load(&tok, ct_test_fixture("tokenizer/spm.json"), &err), &err);
    ct_data_encoder enc;
    CHECK_OK(ct_data_encoder_init(&enc, tok, &err), &err);
    cJSON *rec = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
    int32_t *ids;
    size_t n, off;
    CHECK_FAILS(ct_data_encode(&enc, rec, CT_DATA_CHAT, false, &ids, &n, &off, &err), &err, "need a chat template");
    cJSON_Delete(rec);
    ct_data_encoder_free(&enc);
    ct_tokenizer_free(tok);
}
