// chat.h: conversations through a tokenizer's chat template, as transformers'
// apply_chat_template does it. The template sees messages, tools (null when
// absent), documents (null), add_generation_prompt, and the special tokens
// bos_token / eos_token. Encoding the rendered text adds no special tokens of
// its own (the template writes them), like apply_chat_template(tokenize=True).
#ifndef CTUNE_CHAT_H
#define CTUNE_CHAT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/jinja.h"
#include "ctune/tokenizer.h"

typedef struct ct_chat {
    ct_tokenizer *tok;           // borrowed
    ct_jinja_template *template; // compiled once
} ct_chat;

// Compiles the tokenizer's template (name NULL: the default). Errors when the
// tokenizer has none, with a hint (mlx-lm's "chat_template is not set").
ct_status ct_chat_open(ct_chat *c, ct_tokenizer *tok, const char *name, ct_error *err);
void ct_chat_close(ct_chat *c);
// messages: a JSON array of {role, content, ...}; tools: an array or NULL.
ct_status ct_chat_render(const ct_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                         char **out, ct_error *err);
ct_status ct_chat_encode(const ct_chat *c, const cJSON *messages, const cJSON *tools, bool add_generation_prompt,
                         int32_t **ids, size_t *n, ct_error *err);

#endif
