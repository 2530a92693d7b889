// tokenizer.h: text <-> token ids, exactly as Hugging Face `tokenizers` does it.
// Reads tokenizer.json (BPE models: byte-level like GPT-2/Llama-3/Qwen2 and
// SentencePiece-style with byte fallback like Llama-2/Mistral/Phi-3), the
// special-token settings of tokenizer_config.json and generation_config.json,
// and the chat template(s); or builds the same pipeline from the plain arrays
// a GGUF file holds (tokenizer.ggml.*). Pipeline for encode: added tokens are
// matched first, then normalizer -> pre-tokenizer -> BPE -> post-processor.
// Decode runs the decoder chain. Ids are int32; text is UTF-8 bytes.
// A ct_tokenizer keeps a word cache, so one tokenizer must not be used by two
// threads at once (give each thread its own, or serialize calls).
#ifndef CTUNE_TOKENIZER_H
#define CTUNE_TOKENIZER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"

typedef struct ct_tokenizer ct_tokenizer;

// path_or_dir: a tokenizer.json file, a .gguf file (its tokenizer.ggml.*
// metadata, see ct_tokenizer_from_vocab), or a model folder holding tokenizer.json
// and optionally tokenizer_config.json, generation_config.json and
// chat_template.jinja (which wins over tokenizer_config's chat_template).
ct_status ct_tokenizer_load(ct_tokenizer **t, const char *path_or_dir, ct_error *err);
// Parses tokenizer.json text held in memory (len bytes); source names it in errors.
ct_status ct_tokenizer_from_json(ct_tokenizer **t, const char *json, size_t len, const char *source,
                                 ct_error *err);
void ct_tokenizer_free(ct_tokenizer *t);

// Encodes len bytes of UTF-8 text. add_special applies the post-processor
// (e.g. BOS). *ids is malloc'd (free() it), *n its length (may be 0).
ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                              size_t *n, ct_error *err);
// Decodes ids to a malloc'd NUL-terminated UTF-8 string. skip_special drops
// special added tokens. Unknown ids are skipped, as Hugging Face does.
ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                              ct_error *err);

// Number of ids (largest id + 1, added tokens included).
size_t ct_tokenizer_vocab_size(const ct_tokenizer *t);
// The token string of an id (NUL-terminated), or NULL if the id has none.
const char *ct_tokenizer_id_to_token(const ct_tokenizer *t, int32_t id);
// The id of a token string (model vocab or added tokens), or -1.
int32_t ct_tokenizer_token_to_id(const ct_tokenizer *t, const char *token);
bool ct_tokenizer_is_special(const ct_tokenizer *t, int32_t id);

// Special tokens and generation settings. Ids are -1 when absent.
typedef struct ct_tokenizer_specials {
    int32_t bos_id, eos_id, pad_id, unk_id;
    const char *bos_token, *eos_token; // NULL when absent (for chat templates)
    bool add_bos, add_eos;             // whether encode(add_special) adds them
    const int32_t *eos_ids;            // ids that end generation (generation_config.json), n_eos of them
    size_t n_eos;
} ct_tokenizer_specials;
const ct_tokenizer_specials *ct_tokenizer_get_specials(const ct_tokenizer *t);

// Chat templates: name NULL or "default" gives the default one. NULL if none.
const char *ct_tokenizer_chat_template(const ct_tokenizer *t, const char *name);
size_t ct_tokenizer_chat_template_count(const ct_tokenizer *t);
const char *ct_tokenizer_chat_template_name(const ct_tokenizer *t, size_t i);

// The tokenizer.json "pre_tokenizer" object that a llama.cpp pre-type name
// (tokenizer.ggml.pre: default/gpt-2, llama-bpe, qwen2, smollm, ...) stands
// for; NULL if unknown. The caller frees it with cJSON_Delete.
cJSON *ct_tokenizer_gguf_pre_json(const char *pre);

// A tokenizer from plain arrays, as GGUF stores them (tokenizer.ggml.*).
typedef struct ct_tokenizer_vocab {
    const char *model;              // "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE by scores)
    const char *pre;                // pre-tokenizer name ("default", "gpt-2", "llama-bpe", "qwen2", "smollm", ...) or NULL
    size_t n_tokens;
    const char *const *tokens;      // n_tokens strings
    const float *scores;            // n_tokens, or NULL (needed for "llama")
    const int32_t *token_types;     // n_tokens, or NULL: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    size_t n_merges;
    const char *const *merges;      // "a b" strings (for "gpt2")
    int32_t bos_id, eos_id, unk_id, pad_id; // -1 when absent
    bool add_bos, add_eos;
    bool add_space_prefix;          // "llama": prepend U+2581 to the text (GGUF default true)
    const char *chat_template;      // or NULL
} ct_tokenizer_vocab;
ct_status ct_tokenizer_from_vocab(ct_tokenizer **t, const ct_tokenizer_vocab *v, ct_error *err);

#endif
