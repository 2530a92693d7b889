// convert_internal.h: the state of one `ctune convert` run, shared by
// convert.c (the job, folder sources), convert_gguf.c (GGUF tensors),
// convert_tokenizer.c (GGUF tokenizers) and convert_write.c (the output folder).
#ifndef CTUNE_CONVERT_INTERNAL_H
#define CTUNE_CONVERT_INTERNAL_H

#include <cjson/cJSON.h>

#include "ctune/config.h"
#include "ctune/convert.h"
#include "ctune/fs.h"
#include "ctune/gguf.h"
#include "ctune/gguf_config.h"
#include "ctune/safetensors.h"

typedef struct cv_job {
    const ct_convert_opts *o;
    ct_rtn_params rtn;        // resolved bits / group size / recipe
    bool dtype_set;           // false: each tensor keeps its own float type
    ct_dtype dtype;
    bool is_gguf;
    ct_gguf gguf;
    bool gguf_open;
    ct_weights weights;
    bool weights_open;
    cJSON *config;            // the source config.json (GGUF: built from metadata)
    ct_model_config cfg;
    bool cfg_parsed;
    cJSON *overrides;         // per-module quantization entries, path -> {group_size, bits, mode}
    int n_out, cap_out;
    ct_tensor_view *out;      // output tensors (names owned)
    void **owned;             // [n_out] data to free, NULL when it points into a mapping
    ct_convert_stats stats;
} cv_job;

ct_status cv_parse_dtype(const char *name, ct_dtype *out, ct_error *err);
// Emits one floating tensor given in f32 (w: owned, freed here): quantized or cast.
ct_status cv_emit_float(cv_job *j, const char *name, ct_dtype src_dt, int ndim, const int64_t *shape, float *w,
                        ct_error *err);
ct_status cv_emit_quantized(cv_job *j, const char *module, const int64_t *shape, float *w, ct_dtype dt,
                         const ct_quant_spec *s, bool override, ct_error *err);
// The replacement of a module (opts.replace), or NULL; emits its tensors.
const ct_convert_module *cv_replacement(const cv_job *j, const char *module);
ct_status cv_emit_replacement(cv_job *j, const ct_convert_module *r, ct_error *err);
// GGUF source: every tensor under its Hugging Face name, de-quantized (convert_gguf.c).
ct_status cv_gguf_tensors(cv_job *j, ct_error *err);
// llama.cpp's name of a Hugging Face tensor name ("model.layers.3.mlp.up_proj.weight"
// -> "blk.3.ffn_up.weight") into out (size n); false if it has none.
bool cv_gguf_name(const char *hf, char *out, size_t n);
// llama.cpp's tokenizer.ggml.pre name of a tokenizer.json pre_tokenizer (one
// convert writes for that name), else "default" (with a warning).
const char *cv_gguf_pre_name(const cJSON *pre_tokenizer);
// One tokenizer.json "added_tokens" entry.
cJSON *cv_added_token(int64_t id, const char *content, bool special, bool normalized);
// A TemplateProcessing post_processor putting BOS first when g says
// add_bos_token (and has a BOS id), else NULL.
cJSON *cv_bos_post_processor(const ct_gguf *g, const ct_gguf_kv *tokens);
// tokenizer.json of a Gemma SentencePiece vocabulary, as transformers' GGUF
// loader builds it (convert_tokenizer_gemma.c).
ct_status cv_gemma_tokenizer_json(const ct_gguf *g, cJSON **out, ct_error *err);
// A GGUF's tokenizer as tokenizer_config.json (+ tokenizer.json for byte-level BPE) in dir.
ct_status cv_gguf_tokenizer(const cv_job *j, const char *dir, ct_error *err);
// Writes doc as dir/file (atomic).
ct_status cv_write_json(const char *dir, const char *file, const cJSON *doc, ct_error *err);
// Writes the output folder atomically (convert_write.c).
ct_status cv_write_folder(cv_job *j, ct_error *err);

#endif
