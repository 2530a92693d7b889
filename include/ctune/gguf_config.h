// gguf_config.h: a model configuration from a GGUF file's metadata
// ({arch}.block_count, .embedding_length, .attention.head_count, ...), built
// as the equivalent config.json and parsed by the one config parser, so
// defaults and validation are the same as for Hugging Face folders.
#ifndef CTUNE_GGUF_CONFIG_H
#define CTUNE_GGUF_CONFIG_H

#include "ctune/config.h"
#include "ctune/gguf.h"

// The config.json equivalent of g's metadata (caller frees with cJSON_Delete).
ct_status ct_gguf_config_json(const ct_gguf *g, cJSON **out, ct_error *err);
ct_status ct_model_config_from_gguf(ct_model_config *c, const ct_gguf *g, ct_error *err);

#endif
