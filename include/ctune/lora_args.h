// lora_args.h: the configuration of `ctune lora`, the same flags and YAML
// keys as mlx_lm.lora with the same defaults, resolved as CLI > YAML >
// defaults. One table drives the CLI parser, the YAML reader, the --help text
// and adapter_config.json, so every key is settable everywhere it makes sense.
//
// Fixes over mlx-lm (see docs/fine-tuning.md): every YAML key is settable
// (clear_cache_threshold, trust_remote_code too); num_layers 0 is an error and
// -1 means all; lora_parameters merge over the defaults (a YAML block without
// scale is fine); `alpha` is accepted beside `scale` (scale = alpha / rank);
// unknown keys are errors naming the file:line with a "did you mean" hint.
#ifndef CTUNE_LORA_ARGS_H
#define CTUNE_LORA_ARGS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"

// lora_parameters: LoRA/DoRA layer settings.
typedef struct ct_lora_params {
    int64_t rank;     // r, default 8
    double scale;     // the adapter output multiplier, default 20.0
    double alpha;     // PEFT-style alpha (only meaningful when alpha_set); scale = alpha / rank
    bool alpha_set;
    double dropout;   // in [0, 1), default 0.0
    char **keys;      // module paths relative to a block ("self_attn.q_proj"); NULL = all linears
    size_t n_keys;
} ct_lora_params;

// lr_schedule: mlx-lm's build_schedule input. name is one of cosine_decay,
// exponential_decay, linear_schedule, step_decay; arguments are its positional
// arguments (arguments[0] is the initial learning rate). warmup is a number of
// optimizer updates ramping linearly from warmup_init.
typedef struct ct_lr_schedule {
    char *name;
    double *arguments;
    size_t n_arguments;
    int64_t warmup;
    double warmup_init;
    bool warmup_set, warmup_init_set;
} ct_lr_schedule;

// One hf_dataset entry (YAML dict, or one element of a list of dicts).
typedef struct ct_hf_dataset_entry {
    char *path;          // Hugging Face dataset id (or a local folder)
    char *train_split;   // default "train[:80%]"
    char *valid_split;   // default "train[-10%:]"
    char *test_split;    // default NULL (no test set)
    const cJSON *config; // the entry's "config" mapping (borrowed from hf_dataset_json), or NULL
    char *prompt_feature, *completion_feature, *text_feature, *chat_feature; // NULL = global
} ct_hf_dataset_entry;

typedef struct ct_lora_args {
    char *model;                  // local folder or HF id, default "Qwen/Qwen3-0.6b"
    bool train;
    char *fine_tune_type;         // "lora" | "dora" | "full"
    char *optimizer;              // "adam" | "adamw" | "muon" | "sgd" | "adafactor"
    cJSON *optimizer_config;      // {optimizer name: {constructor kwargs}} (owned)
    char *data;                   // folder with train/valid/test.jsonl or HF dataset id
    int64_t seed;
    int64_t num_layers;           // last N blocks; -1 = all (0 rejected)
    int64_t batch_size;
    int64_t iters;
    int64_t val_batches;          // -1 = whole validation set
    double learning_rate;         // ignored when lr_schedule is set
    int64_t steps_per_report;
    int64_t steps_per_eval;
    char *resume_adapter_file;    // NULL unless given: load these adapter weights first
    char *adapter_path;           // output folder, default "adapters"
    int64_t save_every;
    bool test;
    int64_t test_batches;         // -1 = whole test set
    int64_t max_seq_length;
    char *config;                 // the YAML file given with -c/--config, or NULL
    bool grad_checkpoint;
    int64_t grad_accumulation_steps;
    int64_t clear_cache_threshold; // bytes ("512M", "4.1GB" accepted), 0 = off
    ct_lr_schedule lr_schedule;   // valid when lr_schedule_set
    bool lr_schedule_set;
    ct_lora_params lora_parameters;
    bool mask_prompt;
    char *report_to;              // NULL or "wandb", "swanlab", "wandb,swanlab"
    char *project_name;
    bool trust_remote_code;
    bool resume;                  // ctune: continue from the latest full checkpoint in adapter_path
    // YAML-only dataset keys (NULL = not given: "prompt", "completion", "text", "messages").
    char *prompt_feature, *completion_feature, *text_feature, *chat_feature;
    ct_hf_dataset_entry *hf_dataset; // n_hf_dataset entries, NULL if not given
    size_t n_hf_dataset;
    cJSON *hf_dataset_json;       // the hf_dataset value as written (owned), for adapter_config.json

    bool help;                    // -h/--help was given; nothing else is validated
} ct_lora_args;

// Fills args with mlx-lm's defaults (CONFIG_DEFAULTS).
ct_status ct_lora_args_defaults(ct_lora_args *args, ct_error *err);

// Parses the arguments after `ctune lora` (argv[0] is the first option), reads
// the -c/--config YAML if given, and resolves CLI > YAML > defaults. Accepts
// "--flag value", "--flag=value" and unambiguous prefixes of flags as argparse
// does. On failure args is left freed (nothing to release).
ct_status ct_lora_args_parse(ct_lora_args *args, int argc, char *const *argv, ct_error *err);

// Applies one YAML file over args (used by ct_lora_args_parse; exposed for tests).
ct_status ct_lora_args_apply_yaml(ct_lora_args *args, const char *path, ct_error *err);

// Checks value ranges and cross-key rules (num_layers, alpha vs scale, ...).
ct_status ct_lora_args_validate(ct_lora_args *args, ct_error *err);

void ct_lora_args_free(ct_lora_args *args);

// The resolved configuration as mlx-lm's save_config writes it: every key,
// top level sorted, indent 4, Python's float formatting. Returns a malloc'd
// NUL-terminated string.
ct_status ct_lora_args_to_json(const ct_lora_args *args, char **out, ct_error *err);
// Writes <adapter_path>/adapter_config.json atomically (creating the folder).
ct_status ct_lora_args_save_config(const ct_lora_args *args, ct_error *err);

// The `ctune lora --help` text: every flag with its default, then the
// YAML-only keys. Returns a malloc'd string.
char *ct_lora_args_help(void);

#endif
