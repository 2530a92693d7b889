// dataset.h: training data for `ctune lora`, from files to padded batches.
//
// 1. Loading (dataset.c): JSON Lines (or JSON arrays) in mlx-lm's three
//    formats, detected per file from its first record as mlx-lm does:
//      completions  {"prompt": "...", "completion": "..."}        (checked first)
//      chat         {"messages": [{"role": "...", "content": "..."}, ...], "tools": [...]}
//      text         {"text": "..."}
//    with custom key names. Every record is validated (errors name file:line)
//    and kept as parsed JSON, normalised to the default key names above.
//    Sources: a local folder with {train,valid,test}.{jsonl,json}, a Hugging
//    Face dataset id, or hf_dataset entries with split slices (train[:80%]).
// 2. Tokenizing: a caller-supplied callback (the tokenizer and chat template
//    live elsewhere) turns each record into (ids, prompt offset).
// 3. Batching (batching.c): mlx-lm's iterate_batches with its bugs fixed:
//    examples sorted by token count, batches of neighbours in a seeded
//    shuffled order, pad to min(1 + 32*ceil(maxL/32), max_seq_length), a loss
//    mask without pad tokens and with clamped prompt offsets, per-rank rows,
//    and a position (epoch, index) that can be saved and restored exactly.
#ifndef CTUNE_DATASET_H
#define CTUNE_DATASET_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"
#include "ctune/hub.h"
#include "ctune/lora_args.h"

typedef enum ct_dataset_format { CT_DATA_TEXT, CT_DATA_CHAT, CT_DATA_COMPLETIONS } ct_dataset_format;
const char *ct_dataset_format_name(ct_dataset_format f); // "text", "chat", "completions"

// Key names in the files; NULL members mean the defaults
// ("text", "messages", "prompt", "completion").
typedef struct ct_feature_names {
    const char *text, *chat, *prompt, *completion;
} ct_feature_names;

typedef struct ct_data_source {
    char *name;               // file path, or "org/id:train[:80%]" for hub slices
    ct_dataset_format format;
} ct_data_source;

typedef struct ct_data_record {
    cJSON *json;     // normalised: {"text"} | {"messages", "tools"?} | {"prompt", "completion", "tools"?}
    uint32_t source; // index into ct_dataset.sources
    uint32_t line;   // 1-based line (JSONL) or element number (JSON array)
} ct_data_record;

typedef struct ct_dataset {
    ct_data_record *records;
    size_t n, cap;
    ct_data_source *sources;
    size_t n_sources;
} ct_dataset;

void ct_dataset_free(ct_dataset *ds);

// Appends one JSONL/JSON file as a new source (an empty file adds nothing).
// mask_prompt on a text file is an error, as in mlx-lm.
ct_status ct_dataset_load_file(ct_dataset *ds, const char *path, const ct_feature_names *keys, bool mask_prompt,
                               ct_error *err);
// Moves every record and source of src to the end of dst (src is left empty):
// mlx-lm's ConcatenatedDataset.
ct_status ct_dataset_concat(ct_dataset *dst, ct_dataset *src, ct_error *err);
// Keeps records [begin, end) (used for split slices).
void ct_dataset_keep_range(ct_dataset *ds, size_t begin, size_t end);

// A folder with train/valid/test .jsonl (or .json); a missing file is an empty split.
ct_status ct_dataset_load_local(const char *dir, const ct_feature_names *keys, bool mask_prompt, ct_dataset *train,
                                ct_dataset *valid, ct_dataset *test, ct_error *err);

// A split expression "name", "name[a:b]" with a, b integers or percentages
// (negative from the end), as the datasets library reads them.
typedef struct ct_split_spec {
    char name[64];
    bool has_begin, has_end, begin_pct, end_pct;
    double begin, end;
} ct_split_spec;
ct_status ct_split_spec_parse(const char *text, ct_split_spec *out, ct_error *err);
// The [begin, end) record range of a split of n records (percentages round half to even).
void ct_split_spec_range(const ct_split_spec *s, size_t n, size_t *begin, size_t *end);

// The whole of mlx-lm's load_dataset: hf_dataset entries, else a local
// folder (if args->data exists), else a hub dataset id; then the split
// checks ("Training set not found or empty. ..." and the like). hub may be
// NULL to forbid hub access.
ct_status ct_dataset_load_for_args(const ct_lora_args *args, const ct_hub_options *hub, ct_dataset *train,
                                   ct_dataset *valid, ct_dataset *test, ct_error *err);

// ---------------------------------------------------------------------------
// Tokenizing.

// Turns one normalised record into token ids. *ids is malloc'd by the
// callback and freed by the caller; *n tokens; *prompt_len the number of
// leading tokens excluded from the loss (0 unless mask_prompt).
typedef ct_status (*ct_encode_fn)(void *ctx, const cJSON *record, ct_dataset_format fmt, bool mask_prompt,
                                  int32_t **ids, size_t *n, size_t *prompt_len, ct_error *err);

typedef struct ct_example {
    size_t start;    // first token in ct_examples.tokens
    uint32_t len;    // tokens (before truncation)
    uint32_t offset; // prompt length: targets at positions >= offset are trained
    uint32_t source; // index into ct_examples.sources
    uint32_t line;
} ct_example;

typedef struct ct_examples {
    int32_t *tokens; // all examples' ids, back to back
    size_t n_tokens, cap_tokens;
    ct_example *items;
    size_t n, cap;
    char **sources; // copies of the dataset's source names
    size_t n_sources;
} ct_examples;

// Encodes every record. Examples without a supervised token once truncated to
// max_seq_length are dropped with a warning naming file:line; if every
// example is dropped, that is an error.
ct_status ct_dataset_tokenize(const ct_dataset *ds, ct_encode_fn encode, void *ctx, bool mask_prompt,
                              int64_t max_seq_length, ct_examples *out, ct_error *err);
void ct_examples_free(ct_examples *ex);

// ---------------------------------------------------------------------------
// Batching.

typedef struct ct_batch_options {
    size_t batch_size;      // global rows per batch (all ranks together)
    int64_t max_seq_length; // truncation length
    uint64_t seed;          // batch order; the same seed gives the same order
    bool shuffle;           // false: batches in length order (evaluation)
    bool loop;              // true: epochs repeat forever (training)
    int rank, world_size;   // this process's rows: [rank::world_size] of each batch
} ct_batch_options;

// Where the iterator is: batch `index` of epoch `epoch`'s permutation is next.
typedef struct ct_batch_position {
    uint64_t epoch, index;
} ct_batch_position;

typedef struct ct_batch {
    size_t rows, width;     // tokens (rows, width); rows = batch_size / world_size
    int32_t *tokens;        // (rows, width), right-padded with 0
    int32_t *lengths;       // (rows,) real tokens after truncation
    int32_t *offsets;       // (rows,) first trained position, clamped to [1, lengths]
    float *mask;            // (rows, width - 1): 1 where target tokens[r][t + 1] is trained
    int64_t n_targets;      // sum of mask
    const size_t *examples; // (rows,) example indices, for messages
} ct_batch;

typedef struct ct_batcher {
    const ct_examples *ex;
    ct_batch_options opt;
    size_t *sorted;      // example indices sorted by length (stable)
    size_t n_batches;    // full batches (the remainder is dropped, as mlx-lm)
    size_t *perm;        // this epoch's batch order
    uint64_t perm_epoch; // the epoch perm belongs to
    ct_batch_position pos;
    uint8_t *warned;     // per example: truncation already reported
    ct_batch batch;      // buffers reused by every call
    size_t cap_width;
    size_t *row_examples;
} ct_batcher;

ct_status ct_batcher_init(ct_batcher *b, const ct_examples *ex, const ct_batch_options *opt, ct_error *err);
// Fills *out with the next batch (buffers owned by b, valid until the next
// call). *done is set when a non-looping pass is over.
ct_status ct_batcher_next(ct_batcher *b, ct_batch *out, bool *done, ct_error *err);
ct_batch_position ct_batcher_tell(const ct_batcher *b);
ct_status ct_batcher_seek(ct_batcher *b, ct_batch_position pos, ct_error *err);
void ct_batcher_free(ct_batcher *b);

#endif
