// data_encode.h: dataset records to token ids, as mlx-lm's dataset classes do.
//   text:        encode(text) with the tokenizer's special tokens, EOS appended
//                when the last token is not EOS; offset 0
//   chat:        the chat template over messages (and tools); with mask_prompt
//                only the final message is trained: offset = tokens of the
//                conversation without it, with the generation prompt when it
//                is an assistant turn
//   completions: a user/assistant pair built from prompt and completion, then
//                as chat (offset = the prompt with the generation prompt)
// Plug into ct_dataset_tokenize with ct_data_encode as the callback.
#ifndef CTUNE_DATA_ENCODE_H
#define CTUNE_DATA_ENCODE_H

#include "ctune/chat.h"
#include "ctune/dataset.h"
#include "ctune/tokenizer.h"

typedef struct ct_data_encoder {
    ct_tokenizer *tok; // borrowed
    ct_chat chat;
    bool has_chat;     // the tokenizer has a chat template
} ct_data_encoder;

ct_status ct_data_encoder_init(ct_data_encoder *e, ct_tokenizer *tok, ct_error *err);
void ct_data_encoder_free(ct_data_encoder *e);
// A ct_encode_fn; ctx is a ct_data_encoder.
ct_status ct_data_encode(void *ctx, const cJSON *record, ct_dataset_format fmt, bool mask_prompt, int32_t **ids,
                         size_t *n, size_t *prompt_len, ct_error *err);

#endif
