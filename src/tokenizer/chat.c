// Chat templates applied to conversations (see include/ctune/chat.h).
#include "ctune/chat.h"

#include <stdlib.h>
#include <string.h>

ct_status ct_chat_open(ct_chat *c, ct_tokenizer *tok, const char *name, ct_error *err) {
    c->tok = tok;
    c->template = NULL;
    const char *src = ct_tokenizer_chat_template(tok, name);
    if (!src) {
        if (name)
            return ct_fail(err, CT_ERR_INVALID, "the tokenizer has no chat template named '%s'", name);
        return ct_fail(err, CT_ERR_INVALID,
                       "the tokenizer has no chat template (tokenizer_config.json \"chat_template\" or "
                       "chat_template.jinja); use a text dataset or --ignore-chat-template");
    }
    return ct_jinja_compile(&c->template, src, strlen(src), "chat_template", err);
}

void ct_chat_close(ct_chat *c) {
    ct_jinja_free(c->template);
    c->template = NULL;
}

ct_status ct_chat_render(const ct_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                         char **out, ct_error *err) {
    *out = NULL;
    if (!cJSON_IsArray(messages))
        return ct_fail(err, CT_ERR_INVALID, "messages must be a list of {\"role\", \"content\"} objects");
    const ct_tokenizer_specials *sp = ct_tokenizer_get_specials(c->tok);
    cJSON *ctx = cJSON_CreateObject();
    // Borrow the caller's arrays for the render; detach them again afterwards.
    cJSON_AddItemReferenceToObject(ctx, "messages", (cJSON *)messages);
    if (tools && !cJSON_IsNull(tools))
        cJSON_AddItemReferenceToObject(ctx, "tools", (cJSON *)tools);
    else
        cJSON_AddNullToObject(ctx, "tools");
    cJSON_AddNullToObject(ctx, "documents");
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt);
    if (sp->bos_token)
        cJSON_AddStringToObject(ctx, "bos_token", sp->bos_token);
    if (sp->eos_token)
        cJSON_AddStringToObject(ctx, "eos_token", sp->eos_token);
    ct_status st = ct_jinja_render(c->template, ctx, out, err);
    cJSON_Delete(ctx); // references are not freed with it
    return st;
}

ct_status ct_chat_encode(const ct_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                         int32_t **ids, size_t *n, ct_error *err) {
    char *text;
    CT_TRY(ct_chat_render(c, messages, tools, add_generation_prompt, &text, err));
    ct_status st = ct_tokenizer_encode(c->tok, text, strlen(text), false, ids, n, err);
    free(text);
    return st;
}
