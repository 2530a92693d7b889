// Dataset records to token ids (see include/ctune/data_encode.h).
#include "ctune/data_encode.h"

#include <stdlib.h>
#include <string.h>

ct_status ct_data_encoder_init(ct_data_encoder *e, ct_tokenizer *tok, ct_error *err) {
    memset(e, 0, sizeof *e);
    e->tok = tok;
    if (ct_tokenizer_chat_template(tok, NULL)) {
        CT_TRY(ct_chat_open(&e->chat, tok, NULL, err));
        e->has_chat = true;
    }
    return CT_OK;
}

void ct_data_encoder_free(ct_data_encoder *e) {
    if (e->has_chat)
        ct_chat_close(&e->chat);
    e->has_chat = false;
}

static ct_status encode_text(ct_data_encoder *e, const cJSON *record, int32_t **ids, size_t *n, ct_error *err) {
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(record, "text"));
    if (!text)
        return ct_fail(err, CT_ERR_FORMAT, "\"text\" must be a string");
    CT_TRY(ct_tokenizer_encode(e->tok, text, strlen(text), true, ids, n, err));
    int32_t eos = ct_tokenizer_get_specials(e->tok)->eos_id;
    if (eos >= 0 && (*n == 0 || (*ids)[*n - 1] != eos)) {
        int32_t *grown = realloc(*ids, (*n + 1) * sizeof **ids);
        if (!grown)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        *ids = grown;
        (*ids)[(*n)++] = eos;
    }
    return CT_OK;
}

// Tokens of the conversation, and with mask_prompt the length of everything
// before the final message.
static ct_status encode_conversation(ct_data_encoder *e, const cJSON *messages, const cJSON *tools, bool mask_prompt,
                                     int32_t **ids, size_t *n, size_t *prompt_len, ct_error *err) {
    if (!e->has_chat)
        return ct_fail(err, CT_ERR_INVALID,
                       "chat and completions data need a chat template, and this tokenizer has none (use the text "
                       "format: {\"text\": ...})");
    CT_TRY(ct_chat_encode(&e->chat, messages, tools, false, ids, n, err));
    int count = cJSON_GetArraySize(messages);
    if (!mask_prompt || count < 2) // a lone message is trained whole
        return CT_OK;
    cJSON *head = cJSON_CreateArray();
    int k = 0;
    for (const cJSON *m = messages->child; m && k < count - 1; m = m->next, k++)
        cJSON_AddItemReferenceToArray(head, (cJSON *)m);
    const cJSON *last = cJSON_GetArrayItem(messages, count - 1);
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "role"));
    bool gen = role && !strcmp(role, "assistant");
    int32_t *pids = NULL;
    size_t pn = 0;
    ct_status st = ct_chat_encode(&e->chat, head, tools, gen, &pids, &pn, err);
    cJSON_Delete(head);
    if (st != CT_OK) {
        free(*ids);
        *ids = NULL;
        return st;
    }
    *prompt_len = pn < *n ? pn : *n;
    free(pids);
    return CT_OK;
}

ct_status ct_data_encode(void *ctx, const cJSON *record, ct_dataset_format fmt, bool mask_prompt, int32_t **ids,
                         size_t *n, size_t *prompt_len, ct_error *err) {
    ct_data_encoder *e = ctx;
    *ids = NULL;
    *n = 0;
    *prompt_len = 0;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(record, "tools");
    switch (fmt) {
    case CT_DATA_TEXT: return encode_text(e, record, ids, n, err);
    case CT_DATA_CHAT:
        return encode_conversation(e, cJSON_GetObjectItemCaseSensitive(record, "messages"), tools, mask_prompt, ids, n,
                                   prompt_len, err);
    case CT_DATA_COMPLETIONS: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(record, "prompt"),
                    *c = cJSON_GetObjectItemCaseSensitive(record, "completion");
        cJSON *msgs = cJSON_CreateArray(), *u = cJSON_CreateObject(), *a = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddItemReferenceToObject(u, "content", (cJSON *)p);
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddItemReferenceToObject(a, "content", (cJSON *)c);
        cJSON_AddItemToArray(msgs, u);
        cJSON_AddItemToArray(msgs, a);
        ct_status st = encode_conversation(e, msgs, tools, mask_prompt, ids, n, prompt_len, err);
        cJSON_Delete(msgs);
        return st;
    }
    }
    return ct_fail(err, CT_ERR_INVALID, "unknown dataset format");
}
