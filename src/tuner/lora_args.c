// lora_args.c: `ctune lora` configuration: one option table drives the CLI
// parser, the YAML reader (libyaml, document API, marks for file:line), the
// help text and adapter_config.json (written like mlx-lm's save_config).
#include "ctune/lora_args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ctune/fs.h"
#include "ctune/json.h"

// ---------------------------------------------------------------------------
// The option table.

typedef enum opt_kind {
    K_STR,     // char *, NULL allowed
    K_INT,     // int64_t
    K_FLOAT,   // double
    K_BOOL,    // bool; a store_true flag on the CLI
    K_ENUM,    // char * restricted to choices (lower-cased)
    K_SIZE,    // int64_t bytes, "512M", "4.1GB" (mlx-lm's _parse_size)
    K_SPECIAL, // structured, YAML only: parsed by a function of its own
} opt_kind;

typedef struct opt {
    const char *key;   // YAML key and adapter_config.json key
    const char *flag;  // CLI flag, NULL for YAML-only keys
    opt_kind kind;
    size_t off;        // offsetof(ct_lora_args, field)
    const char *def;   // default, as CLI text (NULL = None/0/false)
    const char *const *choices;
    bool only_if_set;  // written to adapter_config.json only when given (mlx-lm getattr keys)
    const char *help;
} opt;

static const char *const FT_CHOICES[] = {"lora", "dora", "full", NULL};
static const char *const OPT_CHOICES[] = {"adam", "adamw", "muon", "sgd", "adafactor", NULL};
static const char *const SCHEDULES[] = {"cosine_decay", "exponential_decay", "linear_schedule", "step_decay", NULL};

#define F(field) offsetof(ct_lora_args, field)
static const opt OPTS[] = {
    {"model", "--model", K_STR, F(model), "Qwen/Qwen3-0.6b", NULL, false,
     "Model folder or Hugging Face repo id."},
    {"train", "--train", K_BOOL, F(train), NULL, NULL, false, "Do training."},
    {"fine_tune_type", "--fine-tune-type", K_ENUM, F(fine_tune_type), "lora", FT_CHOICES, false,
     "Type of fine-tuning: lora, dora or full."},
    {"optimizer", "--optimizer", K_ENUM, F(optimizer), "adam", OPT_CHOICES, false,
     "Optimizer: adam, adamw, muon, sgd or adafactor."},
    {"optimizer_config", NULL, K_SPECIAL, F(optimizer_config), NULL, NULL, false,
     "Constructor arguments per optimizer, e.g. {adamw: {weight_decay: 0.1}}."},
    {"data", "--data", K_STR, F(data), "mlx-community/WikiSQL", NULL, false,
     "Folder with train/valid/test.jsonl, or a Hugging Face dataset id."},
    {"seed", "--seed", K_INT, F(seed), "0", NULL, false, "The seed for the RNG (data order, init, dropout)."},
    {"num_layers", "--num-layers", K_INT, F(num_layers), "16", NULL, false,
     "Number of layers to fine-tune, from the last; -1 for all."},
    {"batch_size", "--batch-size", K_INT, F(batch_size), "4", NULL, false, "Minibatch size."},
    {"iters", "--iters", K_INT, F(iters), "1000", NULL, false, "Iterations to train for."},
    {"val_batches", "--val-batches", K_INT, F(val_batches), "25", NULL, false,
     "Validation batches per evaluation; -1 for the whole validation set."},
    {"learning_rate", "--learning-rate", K_FLOAT, F(learning_rate), "1e-5", NULL, false,
     "Optimizer learning rate (ignored when lr_schedule is set)."},
    {"steps_per_report", "--steps-per-report", K_INT, F(steps_per_report), "10", NULL, false,
     "Training steps between loss reports."},
    {"steps_per_eval", "--steps-per-eval", K_INT, F(steps_per_eval), "200", NULL, false,
     "Training steps between validations."},
    {"resume_adapter_file", "--resume-adapter-file", K_STR, F(resume_adapter_file), NULL, NULL, false,
     "Load adapter weights from this file before training (weights only, as mlx-lm)."},
    {"adapter_path", "--adapter-path", K_STR, F(adapter_path), "adapters", NULL, false,
     "Folder for adapter weights, checkpoints and adapter_config.json."},
    {"save_every", "--save-every", K_INT, F(save_every), "100", NULL, false, "Save the adapters every N iterations."},
    {"test", "--test", K_BOOL, F(test), NULL, NULL, false, "Evaluate on the test set after training."},
    {"test_batches", "--test-batches", K_INT, F(test_batches), "500", NULL, false,
     "Test batches; -1 for the whole test set."},
    {"max_seq_length", "--max-seq-length", K_INT, F(max_seq_length), "2048", NULL, false,
     "Maximum sequence length (longer examples are truncated)."},
    {"config", "-c, --config", K_STR, F(config), NULL, NULL, false, "A YAML configuration file (CLI flags win)."},
    {"grad_checkpoint", "--grad-checkpoint", K_BOOL, F(grad_checkpoint), NULL, NULL, false,
     "Use gradient checkpointing to reduce memory use."},
    {"grad_accumulation_steps", "--grad-accumulation-steps", K_INT, F(grad_accumulation_steps), "1", NULL, false,
     "Micro-batches accumulated per optimizer update."},
    {"clear_cache_threshold", "--clear-cache-threshold", K_SIZE, F(clear_cache_threshold), "0", NULL, false,
     "Release cached memory above this size, e.g. 512M or 4GB (0 = off)."},
    {"lr_schedule", NULL, K_SPECIAL, F(lr_schedule), NULL, NULL, false,
     "{name, arguments, warmup, warmup_init}: a learning-rate schedule."},
    {"lora_parameters", NULL, K_SPECIAL, F(lora_parameters), NULL, NULL, false,
     "{rank: 8, scale: 20.0, dropout: 0.0, alpha, keys}: merged over the defaults."},
    {"mask_prompt", "--mask-prompt", K_BOOL, F(mask_prompt), NULL, NULL, false,
     "Train only on the completion (the last message of a chat)."},
    {"report_to", "--report-to", K_STR, F(report_to), NULL, NULL, false,
     "Services to report to: wandb, swanlab (comma separated)."},
    {"project_name", "--project-name", K_STR, F(project_name), NULL, NULL, false,
     "Project name for the reporting service."},
    {"trust_remote_code", "--trust-remote-code", K_BOOL, F(trust_remote_code), NULL, NULL, false,
     "Accepted for compatibility (ctune runs no model code)."},
    {"resume", "--resume", K_BOOL, F(resume), NULL, NULL, false,
     "Resume from the latest checkpoint in adapter_path: weights, optimizer, step, schedule, data order."},
    {"hf_dataset", NULL, K_SPECIAL, F(hf_dataset), NULL, NULL, true,
     "Hugging Face dataset(s): {path, train_split, valid_split, test_split, config, *_feature}."},
    {"prompt_feature", NULL, K_STR, F(prompt_feature), NULL, NULL, true, "Prompt key (default \"prompt\")."},
    {"completion_feature", NULL, K_STR, F(completion_feature), NULL, NULL, true,
     "Completion key (default \"completion\")."},
    {"text_feature", NULL, K_STR, F(text_feature), NULL, NULL, true, "Text key (default \"text\")."},
    {"chat_feature", NULL, K_STR, F(chat_feature), NULL, NULL, true, "Chat key (default \"messages\")."},
};
#undef F
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static char **str_field(ct_lora_args *a, const opt *o) { return (char **)((char *)a + o->off); }
static int64_t *int_field(ct_lora_args *a, const opt *o) { return (int64_t *)((char *)a + o->off); }
static double *float_field(ct_lora_args *a, const opt *o) { return (double *)((char *)a + o->off); }
static bool *bool_field(ct_lora_args *a, const opt *o) { return (bool *)((char *)a + o->off); }
static const void *cfield(const ct_lora_args *a, const opt *o) { return (const char *)a + o->off; }

static const opt *find_key(const char *key) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (!strcmp(OPTS[i].key, key))
            return &OPTS[i];
    return NULL;
}

// ---------------------------------------------------------------------------
// "Did you mean": the closest candidate within a small edit distance.

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

// Writes " (did you mean 'x'?)" into hint (or "" when nothing is close).
static void suggest(char *hint, size_t n, const char *word, const char *const *cands, size_t n_cands) {
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; i < n_cands; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    size_t limit = strlen(word) / 3 + 1;
    if (best && best_d <= (limit < 3 ? limit : 3))
        snprintf(hint, n, " (did you mean '%s'?)", best);
    else
        hint[0] = 0;
}

// ---------------------------------------------------------------------------
// Scalars from text (the CLI, and defaults).

static ct_status dup_str(char **dst, const char *s, ct_error *err) {
    char *c = NULL;
    if (s && !(c = strdup(s)))
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = c;
    return CT_OK;
}

static bool parse_int(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

// mlx-lm's _parse_size: leading digits/dots, then "", "M", "MB", "G" or "GB".
static bool parse_size(const char *s, int64_t *out) {
    size_t split = 0;
    while (s[split] && (isdigit((unsigned char)s[split]) || s[split] == '.'))
        split++;
    if (!split)
        return false;
    char num[64];
    if (split >= sizeof num)
        return false;
    memcpy(num, s, split);
    num[split] = 0;
    double v;
    if (!parse_float(num, &v))
        return false;
    const char *unit = s + split;
    while (*unit == ' ')
        unit++;
    double mult;
    if (!*unit)
        mult = 1;
    else if (!strcasecmp(unit, "M") || !strcasecmp(unit, "MB"))
        mult = 1e6;
    else if (!strcasecmp(unit, "G") || !strcasecmp(unit, "GB"))
        mult = 1e9;
    else
        return false;
    *out = (int64_t)(v * mult);
    return true;
}

static ct_status set_enum(ct_lora_args *a, const opt *o, const char *v, const char *where, ct_error *err) {
    char low[64];
    size_t n = strlen(v);
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)v[i]);
    low[n] = 0;
    for (const char *const *c = o->choices; *c; c++)
        if (!strcmp(*c, low))
            return dup_str(str_field(a, o), low, err);
    char list[256] = "";
    for (const char *const *c = o->choices; *c; c++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", c == o->choices ? "" : ", ", *c);
    return ct_fail(err, CT_ERR_INVALID, "%s%s: invalid choice '%s' (choose from %s)", where, o->key, v, list);
}

// Sets a scalar option from text; where prefixes errors ("" or "file:line: ").
static ct_status set_from_text(ct_lora_args *a, const opt *o, const char *v, const char *where, ct_error *err) {
    switch (o->kind) {
    case K_STR:
        return dup_str(str_field(a, o), v, err);
    case K_ENUM:
        return v ? set_enum(a, o, v, where, err) : dup_str(str_field(a, o), NULL, err);
    case K_INT:
        if (!v) {
            *int_field(a, o) = 0;
        } else if (!parse_int(v, int_field(a, o))) {
            return ct_fail(err, CT_ERR_INVALID, "%s%s: expected an integer, got '%s'", where, o->key, v);
        }
        return CT_OK;
    case K_FLOAT:
        if (!v) {
            *float_field(a, o) = 0;
        } else if (!parse_float(v, float_field(a, o))) {
            return ct_fail(err, CT_ERR_INVALID, "%s%s: expected a number, got '%s'", where, o->key, v);
        }
        return CT_OK;
    case K_SIZE:
        if (!v) {
            *int_field(a, o) = 0;
        } else if (!parse_size(v, int_field(a, o))) {
            return ct_fail(err, CT_ERR_INVALID, "%s%s: expected a size such as 512M or 4GB, got '%s'", where, o->key, v);
        }
        return CT_OK;
    case K_BOOL:
        *bool_field(a, o) = v != NULL;
        return CT_OK;
    case K_SPECIAL:
        break;
    }
    return ct_fail(err, CT_ERR_INVALID, "%s%s: cannot be set from text", where, o->key);
}

// ---------------------------------------------------------------------------
// Defaults and freeing.

static void free_lora_params(ct_lora_params *p) {
    for (size_t i = 0; i < p->n_keys; i++)
        free(p->keys[i]);
    free(p->keys);
    p->keys = NULL;
    p->n_keys = 0;
}

static void free_schedule(ct_lr_schedule *s) {
    free(s->name);
    free(s->arguments);
    memset(s, 0, sizeof *s);
}

static void free_hf_entries(ct_lora_args *a) {
    for (size_t i = 0; i < a->n_hf_dataset; i++) {
        ct_hf_dataset_entry *e = &a->hf_dataset[i];
        free(e->path);
        free(e->train_split);
        free(e->valid_split);
        free(e->test_split);
        free(e->prompt_feature);
        free(e->completion_feature);
        free(e->text_feature);
        free(e->chat_feature);
    }
    free(a->hf_dataset);
    a->hf_dataset = NULL;
    a->n_hf_dataset = 0;
    cJSON_Delete(a->hf_dataset_json);
    a->hf_dataset_json = NULL;
}

void ct_lora_args_free(ct_lora_args *a) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (OPTS[i].kind == K_STR || OPTS[i].kind == K_ENUM)
            free(*str_field(a, &OPTS[i]));
    cJSON_Delete(a->optimizer_config);
    free_schedule(&a->lr_schedule);
    free_lora_params(&a->lora_parameters);
    free_hf_entries(a);
    memset(a, 0, sizeof *a);
}

static cJSON *default_optimizer_config(void) {
    cJSON *o = cJSON_CreateObject();
    for (const char *const *c = OPT_CHOICES; o && *c; c++)
        if (!cJSON_AddObjectToObject(o, *c)) {
            cJSON_Delete(o);
            return NULL;
        }
    return o;
}

ct_status ct_lora_args_defaults(ct_lora_args *a, ct_error *err) {
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < N_OPTS; i++) {
        if (OPTS[i].kind == K_SPECIAL)
            continue;
        ct_status st = set_from_text(a, &OPTS[i], OPTS[i].def, "default ", err);
        if (st != CT_OK) {
            ct_lora_args_free(a);
            return st;
        }
    }
    a->lora_parameters.rank = 8;
    a->lora_parameters.scale = 20.0;
    a->lora_parameters.dropout = 0.0;
    if (!(a->optimizer_config = default_optimizer_config())) {
        ct_lora_args_free(a);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    return CT_OK;
}

// ---------------------------------------------------------------------------
// YAML: the document is converted to cJSON, remembering each node's line:col.

typedef struct ymark {
    const cJSON *node;
    int line, col;
} ymark;

typedef struct ydoc {
    const char *path;
    cJSON *root;
    ymark *marks;
    size_t n_marks, cap_marks;
} ydoc;

static ct_status add_mark(ydoc *d, const cJSON *node, yaml_mark_t m, ct_error *err) {
    if (d->n_marks == d->cap_marks) {
        size_t cap = d->cap_marks ? 2 * d->cap_marks : 64;
        ymark *nm = realloc(d->marks, cap * sizeof *nm);
        if (!nm)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        d->marks = nm;
        d->cap_marks = cap;
    }
    d->marks[d->n_marks++] = (ymark){node, (int)m.line + 1, (int)m.column + 1};
    return CT_OK;
}

// "path:line:col: " for a node (or "path: " if unknown), in a caller buffer.
static const char *where(const ydoc *d, const cJSON *node, char *buf, size_t n) {
    for (size_t i = 0; i < d->n_marks; i++)
        if (d->marks[i].node == node) {
            snprintf(buf, n, "%s:%d:%d: ", d->path, d->marks[i].line, d->marks[i].col);
            return buf;
        }
    snprintf(buf, n, "%s: ", d->path);
    return buf;
}

static bool is_one_of(const char *s, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

// Plain YAML scalars resolve like PyYAML's SafeLoader plus mlx-lm's extra
// float rule (so 1e-5, without a dot, is a float).
static cJSON *resolve_plain(const char *s) {
    static const char *const NULLS[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const TRUES[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const FALSES[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (is_one_of(s, NULLS))
        return cJSON_CreateNull();
    if (is_one_of(s, TRUES))
        return cJSON_CreateTrue();
    if (is_one_of(s, FALSES))
        return cJSON_CreateFalse();
    int64_t i;
    if (parse_int(s, &i))
        return cJSON_CreateNumber((double)i);
    const char *p = s + (*s == '-' || *s == '+');
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF"))
        return cJSON_CreateNumber(*s == '-' ? -INFINITY : INFINITY);
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
        return cJSON_CreateNumber(NAN);
    bool numeric_chars = strspn(s, "0123456789+-.eE") == strlen(s) && strpbrk(s, "0123456789");
    double f;
    if (numeric_chars && parse_float(s, &f))
        return cJSON_CreateNumber(f);
    return cJSON_CreateString(s);
}

static ct_status convert_node(ydoc *d, yaml_document_t *doc, yaml_node_t *node, int depth, cJSON **out,
                              ct_error *err);

static ct_status convert_mapping(ydoc *d, yaml_document_t *doc, yaml_node_t *node, int depth, cJSON *obj,
                                 ct_error *err) {
    char wb[512];
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE) {
            snprintf(wb, sizeof wb, "%s:%d:%d: ", d->path, k ? (int)k->start_mark.line + 1 : 0,
                     k ? (int)k->start_mark.column + 1 : 0);
            return ct_fail(err, CT_ERR_FORMAT, "%smapping keys must be plain strings", wb);
        }
        const char *key = (const char *)k->data.scalar.value;
        if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
            return ct_fail(err, CT_ERR_FORMAT, "%s:%d:%d: duplicate key '%s'", d->path, (int)k->start_mark.line + 1,
                           (int)k->start_mark.column + 1, key);
        }
        cJSON *child;
        CT_TRY(convert_node(d, doc, v, depth + 1, &child, err));
        cJSON_AddItemToObject(obj, key, child);
        // The key's position is the useful one for "unknown key" errors: mark
        // the value node with the key's line (values on later lines are rare).
        d->marks[d->n_marks - 1].line = (int)k->start_mark.line + 1;
        d->marks[d->n_marks - 1].col = (int)k->start_mark.column + 1;
    }
    return CT_OK;
}

static ct_status convert_node(ydoc *d, yaml_document_t *doc, yaml_node_t *node, int depth, cJSON **out,
                              ct_error *err) {
    *out = NULL;
    if (depth > 64)
        return ct_fail(err, CT_ERR_FORMAT, "%s:%d: nesting too deep", d->path, (int)node->start_mark.line + 1);
    cJSON *item = NULL;
    ct_status st = CT_OK;
    if (node->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)node->data.scalar.value;
        item = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain(s) : cJSON_CreateString(s);
    } else if (node->type == YAML_SEQUENCE_NODE) {
        item = cJSON_CreateArray();
        for (yaml_node_item_t *it = node->data.sequence.items.start; item && st == CT_OK && it < node->data.sequence.items.top;
             it++) {
            cJSON *child;
            yaml_node_t *cn = yaml_document_get_node(doc, *it);
            if (!cn)
                continue;
            st = convert_node(d, doc, cn, depth + 1, &child, err);
            if (st == CT_OK)
                cJSON_AddItemToArray(item, child);
        }
    } else if (node->type == YAML_MAPPING_NODE) {
        item = cJSON_CreateObject();
        if (item)
            st = convert_mapping(d, doc, node, depth, item, err);
    } else {
        item = cJSON_CreateNull();
    }
    if (!item)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    if (st == CT_OK)
        st = add_mark(d, item, node->start_mark, err);
    if (st != CT_OK) {
        cJSON_Delete(item);
        return st;
    }
    *out = item;
    return CT_OK;
}

static void ydoc_free(ydoc *d) {
    cJSON_Delete(d->root);
    free(d->marks);
    memset(d, 0, sizeof *d);
}

static ct_status ydoc_load(ydoc *d, const char *path, ct_error *err) {
    memset(d, 0, sizeof *d);
    d->path = path;
    char *text;
    size_t len;
    CT_TRY(ct_read_file(path, &text, &len, err));
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    ct_status st = CT_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        st = ct_fail(err, CT_ERR_FORMAT, "%s:%d:%d: malformed YAML: %s", path, (int)parser.problem_mark.line + 1,
                     (int)parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root)
            st = convert_node(d, &doc, root, 0, &d->root, err);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    free(text);
    if (st != CT_OK)
        ydoc_free(d);
    return st;
}


// ---------------------------------------------------------------------------
// Applying YAML values.

static ct_status unknown_key(const ydoc *d, const cJSON *node, const char *what, const char *const *cands, size_t n,
                             ct_error *err) {
    char wb[512], hint[128];
    suggest(hint, sizeof hint, node->string, cands, n);
    return ct_fail(err, CT_ERR_INVALID, "%sunknown %s '%s'%s", where(d, node, wb, sizeof wb), what, node->string, hint);
}

static ct_status wrong_type(const ydoc *d, const cJSON *node, const char *key, const char *want, ct_error *err) {
    char wb[512];
    return ct_fail(err, CT_ERR_INVALID, "%s%s must be %s, got %s", where(d, node, wb, sizeof wb), key, want,
                   ct_json_type_name(node));
}

static ct_status yaml_string(const ydoc *d, const cJSON *v, const char *key, bool nullable, char **dst, ct_error *err) {
    if (cJSON_IsNull(v) && nullable)
        return dup_str(dst, NULL, err);
    if (!cJSON_IsString(v))
        return wrong_type(d, v, key, "a string", err);
    return dup_str(dst, v->valuestring, err);
}

static ct_status yaml_number(const ydoc *d, const cJSON *v, const char *key, double *dst, ct_error *err) {
    if (!cJSON_IsNumber(v))
        return wrong_type(d, v, key, "a number", err);
    *dst = v->valuedouble;
    return CT_OK;
}

static ct_status yaml_int(const ydoc *d, const cJSON *v, const char *key, int64_t *dst, ct_error *err) {
    if (!ct_json_as_int(v, dst))
        return wrong_type(d, v, key, "an integer", err);
    return CT_OK;
}

static ct_status yaml_scalar(ct_lora_args *a, const ydoc *d, const opt *o, const cJSON *v, ct_error *err) {
    char wb[512];
    switch (o->kind) {
    case K_STR:
        return yaml_string(d, v, o->key, true, str_field(a, o), err);
    case K_ENUM:
        if (!cJSON_IsString(v))
            return wrong_type(d, v, o->key, "a string", err);
        return set_enum(a, o, v->valuestring, where(d, v, wb, sizeof wb), err);
    case K_INT:
        return yaml_int(d, v, o->key, int_field(a, o), err);
    case K_FLOAT:
        return yaml_number(d, v, o->key, float_field(a, o), err);
    case K_BOOL:
        if (!cJSON_IsBool(v))
            return wrong_type(d, v, o->key, "true or false", err);
        *bool_field(a, o) = cJSON_IsTrue(v);
        return CT_OK;
    case K_SIZE:
        if (ct_json_as_int(v, int_field(a, o)))
            return CT_OK;
        if (cJSON_IsString(v))
            return set_from_text(a, o, v->valuestring, where(d, v, wb, sizeof wb), err);
        return wrong_type(d, v, o->key, "a size such as 512M", err);
    case K_SPECIAL:
        break;
    }
    return CT_OK;
}

static ct_status yaml_lora_parameters(ct_lora_args *a, const ydoc *d, const cJSON *v, ct_error *err) {
    static const char *const KEYS[] = {"rank", "scale", "alpha", "dropout", "keys"};
    if (cJSON_IsNull(v))
        return CT_OK;
    if (!cJSON_IsObject(v))
        return wrong_type(d, v, "lora_parameters", "a mapping", err);
    ct_lora_params *p = &a->lora_parameters;
    bool scale_given = false;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!strcmp(c->string, "rank")) {
            CT_TRY(yaml_int(d, c, "lora_parameters.rank", &p->rank, err));
        } else if (!strcmp(c->string, "scale")) {
            CT_TRY(yaml_number(d, c, "lora_parameters.scale", &p->scale, err));
            scale_given = true;
        } else if (!strcmp(c->string, "alpha")) {
            CT_TRY(yaml_number(d, c, "lora_parameters.alpha", &p->alpha, err));
            p->alpha_set = true;
        } else if (!strcmp(c->string, "dropout")) {
            CT_TRY(yaml_number(d, c, "lora_parameters.dropout", &p->dropout, err));
        } else if (!strcmp(c->string, "keys")) {
            if (!cJSON_IsArray(c))
                return wrong_type(d, c, "lora_parameters.keys", "a list of strings", err);
            free_lora_params(p);
            size_t n = (size_t)cJSON_GetArraySize(c);
            if (n && !(p->keys = calloc(n, sizeof *p->keys)))
                return ct_fail(err, CT_ERR_NOMEM, "out of memory");
            for (const cJSON *k = c->child; k; k = k->next) {
                if (!cJSON_IsString(k))
                    return wrong_type(d, k, "lora_parameters.keys[]", "a string", err);
                CT_TRY(dup_str(&p->keys[p->n_keys], k->valuestring, err));
                p->n_keys++;
            }
        } else {
            return unknown_key(d, c, "lora_parameters key", KEYS, 5, err);
        }
    }
    if (p->alpha_set && p->rank > 0) {
        double from_alpha = p->alpha / (double)p->rank;
        char wb[512];
        if (!scale_given)
            p->scale = from_alpha;
        else if (fabs(p->scale - from_alpha) > 1e-6 * fmax(fabs(p->scale), 1e-12))
            return ct_fail(err, CT_ERR_INVALID,
                           "%slora_parameters: scale %g disagrees with alpha / rank = %g / %lld = %g "
                           "(give one of scale or alpha)",
                           where(d, v, wb, sizeof wb), p->scale, p->alpha, (long long)p->rank, from_alpha);
    }
    return CT_OK;
}

static ct_status yaml_lr_schedule(ct_lora_args *a, const ydoc *d, const cJSON *v, ct_error *err) {
    static const char *const KEYS[] = {"name", "arguments", "warmup", "warmup_init"};
    ct_lr_schedule *s = &a->lr_schedule;
    free_schedule(s);
    a->lr_schedule_set = false;
    if (cJSON_IsNull(v))
        return CT_OK;
    if (!cJSON_IsObject(v))
        return wrong_type(d, v, "lr_schedule", "a mapping", err);
    char wb[512];
    const cJSON *args = NULL;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!strcmp(c->string, "name")) {
            CT_TRY(yaml_string(d, c, "lr_schedule.name", false, &s->name, err));
            if (!is_one_of(s->name, SCHEDULES)) {
                char hint[128];
                suggest(hint, sizeof hint, s->name, SCHEDULES, 4);
                return ct_fail(err, CT_ERR_INVALID,
                               "%slr_schedule.name: unknown schedule '%s'%s (choose from cosine_decay, "
                               "exponential_decay, linear_schedule, step_decay)",
                               where(d, c, wb, sizeof wb), s->name, hint);
            }
        } else if (!strcmp(c->string, "arguments")) {
            args = c;
        } else if (!strcmp(c->string, "warmup")) {
            CT_TRY(yaml_int(d, c, "lr_schedule.warmup", &s->warmup, err));
            s->warmup_set = true;
        } else if (!strcmp(c->string, "warmup_init")) {
            CT_TRY(yaml_number(d, c, "lr_schedule.warmup_init", &s->warmup_init, err));
            s->warmup_init_set = true;
        } else {
            return unknown_key(d, c, "lr_schedule key", KEYS, 4, err);
        }
    }
    if (!s->name)
        return ct_fail(err, CT_ERR_INVALID, "%slr_schedule: missing 'name'", where(d, v, wb, sizeof wb));
    if (!args || !cJSON_IsArray(args) || cJSON_GetArraySize(args) == 0)
        return ct_fail(err, CT_ERR_INVALID, "%slr_schedule.arguments must be a non-empty list of numbers",
                       where(d, args ? args : v, wb, sizeof wb));
    size_t n = (size_t)cJSON_GetArraySize(args);
    if (!(s->arguments = calloc(n, sizeof *s->arguments)))
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    for (const cJSON *c = args->child; c; c = c->next)
        CT_TRY(yaml_number(d, c, "lr_schedule.arguments[]", &s->arguments[s->n_arguments++], err));
    if (s->warmup < 0)
        return ct_fail(err, CT_ERR_INVALID, "%slr_schedule.warmup must be >= 0", where(d, v, wb, sizeof wb));
    a->lr_schedule_set = true;
    return CT_OK;
}

static ct_status yaml_optimizer_config(ct_lora_args *a, const ydoc *d, const cJSON *v, ct_error *err) {
    if (cJSON_IsNull(v))
        return CT_OK;
    if (!cJSON_IsObject(v))
        return wrong_type(d, v, "optimizer_config", "a mapping of optimizer name to settings", err);
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!is_one_of(c->string, OPT_CHOICES))
            return unknown_key(d, c, "optimizer in optimizer_config:", OPT_CHOICES, 5, err);
        if (!cJSON_IsObject(c) && !cJSON_IsNull(c))
            return wrong_type(d, c, c->string, "a mapping of settings", err);
        cJSON *copy = cJSON_IsNull(c) ? cJSON_CreateObject() : cJSON_Duplicate(c, true);
        if (!copy || !cJSON_ReplaceItemInObjectCaseSensitive(a->optimizer_config, c->string, copy)) {
            cJSON_Delete(copy);
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        }
    }
    return CT_OK;
}

static ct_status yaml_hf_entry(const ydoc *d, const cJSON *v, ct_hf_dataset_entry *e, ct_error *err) {
    static const char *const KEYS[] = {"path", "train_split", "valid_split", "test_split", "config",
                                       "prompt_feature", "completion_feature", "text_feature", "chat_feature",
                                       "mask_prompt"};
    char wb[512];
    if (!cJSON_IsObject(v))
        return wrong_type(d, v, "hf_dataset entry", "a mapping", err);
    struct { const char *key; char **dst; } strs[] = {
        {"path", &e->path}, {"train_split", &e->train_split}, {"valid_split", &e->valid_split},
        {"test_split", &e->test_split}, {"prompt_feature", &e->prompt_feature},
        {"completion_feature", &e->completion_feature}, {"text_feature", &e->text_feature},
        {"chat_feature", &e->chat_feature},
    };
    CT_TRY(dup_str(&e->train_split, "train[:80%]", err));
    CT_TRY(dup_str(&e->valid_split, "train[-10%:]", err));
    for (const cJSON *c = v->child; c; c = c->next) {
        bool done = false;
        for (size_t i = 0; i < sizeof strs / sizeof strs[0] && !done; i++) {
            if (!strcmp(c->string, strs[i].key)) {
                char key[64];
                snprintf(key, sizeof key, "hf_dataset.%s", strs[i].key);
                CT_TRY(yaml_string(d, c, key, true, strs[i].dst, err));
                done = true;
            }
        }
        if (done)
            continue;
        if (!strcmp(c->string, "config")) {
            if (!cJSON_IsObject(c) && !cJSON_IsNull(c))
                return wrong_type(d, c, "hf_dataset.config", "a mapping", err);
            e->config = cJSON_IsObject(c) ? c : NULL;
        } else if (strcmp(c->string, "mask_prompt") != 0) { // mlx-lm copies the global flag in; tolerate it
            return unknown_key(d, c, "hf_dataset key", KEYS, sizeof KEYS / sizeof KEYS[0], err);
        }
    }
    if (!e->path)
        return ct_fail(err, CT_ERR_INVALID, "%shf_dataset entry needs a 'path'", where(d, v, wb, sizeof wb));
    return CT_OK;
}

static ct_status yaml_hf_dataset(ct_lora_args *a, const ydoc *d, const cJSON *v, ct_error *err) {
    free_hf_entries(a);
    if (cJSON_IsNull(v))
        return CT_OK;
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return wrong_type(d, v, "hf_dataset", "a mapping or a list of mappings", err);
    size_t n = cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 1;
    if (!n)
        return CT_OK;
    // Entries borrow their config mapping from hf_dataset_json, so the copy
    // is made first and the entries parsed from it (marks refer to the
    // original nodes, so errors are located through a parallel walk).
    if (!(a->hf_dataset_json = cJSON_Duplicate(v, true)) || !(a->hf_dataset = calloc(n, sizeof *a->hf_dataset)))
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    a->n_hf_dataset = n;
    const cJSON *orig = cJSON_IsArray(v) ? v->child : v;
    const cJSON *copy = cJSON_IsArray(v) ? a->hf_dataset_json->child : a->hf_dataset_json;
    for (size_t i = 0; i < n; i++, orig = orig->next, copy = copy ? copy->next : NULL) {
        CT_TRY(yaml_hf_entry(d, orig, &a->hf_dataset[i], err));
        a->hf_dataset[i].config = a->hf_dataset[i].config ? cJSON_GetObjectItemCaseSensitive(copy, "config") : NULL;
    }
    return CT_OK;
}

ct_status ct_lora_args_apply_yaml(ct_lora_args *a, const char *path, ct_error *err) {
    ydoc d;
    CT_TRY(ydoc_load(&d, path, err));
    ct_status st = CT_OK;
    char wb[512];
    if (d.root && !cJSON_IsNull(d.root) && !cJSON_IsObject(d.root))
        st = ct_fail(err, CT_ERR_INVALID, "%sthe configuration must be a mapping of keys to values",
                     where(&d, d.root, wb, sizeof wb));
    const char *names[N_OPTS];
    for (size_t i = 0; i < N_OPTS; i++)
        names[i] = OPTS[i].key;
    for (const cJSON *c = d.root && cJSON_IsObject(d.root) ? d.root->child : NULL; c && st == CT_OK; c = c->next) {
        const opt *o = find_key(c->string);
        if (!o)
            st = unknown_key(&d, c, "key", names, N_OPTS, err);
        else if (!strcmp(o->key, "config"))
            continue; // a saved adapter_config.json used as a config names its own file: ignore
        else if (!strcmp(o->key, "lora_parameters"))
            st = yaml_lora_parameters(a, &d, c, err);
        else if (!strcmp(o->key, "lr_schedule"))
            st = yaml_lr_schedule(a, &d, c, err);
        else if (!strcmp(o->key, "optimizer_config"))
            st = yaml_optimizer_config(a, &d, c, err);
        else if (!strcmp(o->key, "hf_dataset"))
            st = yaml_hf_dataset(a, &d, c, err);
        else
            st = yaml_scalar(a, &d, o, c, err);
    }
    ydoc_free(&d);
    return st;
}

// ---------------------------------------------------------------------------
// The command line.

static const opt *find_flag(const char *flag, size_t len, ct_error *err) {
    const opt *prefix_match = NULL;
    int n_prefix = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        const char *f = OPTS[i].flag;
        if (!f || !strncmp(f, "-c", 2))
            continue;
        if (strlen(f) == len && !strncmp(f, flag, len))
            return &OPTS[i];
        if (strlen(f) > len && !strncmp(f, flag, len)) {
            prefix_match = &OPTS[i];
            n_prefix++;
        }
    }
    if (n_prefix == 1)
        return prefix_match;
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)len, flag);
    if (n_prefix > 1) {
        ct_fail(err, CT_ERR_INVALID, "ambiguous option %s (it begins more than one flag)", word);
        return NULL;
    }
    const char *flags[N_OPTS];
    size_t n = 0;
    for (size_t i = 0; i < N_OPTS; i++)
        if (OPTS[i].flag && strncmp(OPTS[i].flag, "-c", 2))
            flags[n++] = OPTS[i].flag;
    char hint[128];
    suggest(hint, sizeof hint, word, flags, n);
    ct_fail(err, CT_ERR_INVALID, "unknown option %s%s", word, hint);
    return NULL;
}

typedef struct cli_value {
    const opt *o;
    const char *value; // NULL for store_true flags
} cli_value;

static ct_status scan_argv(int argc, char *const *argv, cli_value *vals, size_t *n_vals, const char **config,
                           bool *help, ct_error *err) {
    *n_vals = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            *help = true;
            return CT_OK;
        }
        if (!strcmp(arg, "-c") || !strcmp(arg, "--config") || !strncmp(arg, "--config=", 9)) {
            if (arg[1] != 'c' && arg[8] == '=') {
                *config = arg + 9;
            } else if (i + 1 < argc) {
                *config = argv[++i];
            } else {
                return ct_fail(err, CT_ERR_INVALID, "%s expects a YAML file", arg);
            }
            continue;
        }
        if (strncmp(arg, "--", 2) != 0)
            return ct_fail(err, CT_ERR_INVALID, "unexpected argument '%s' (options start with --)", arg);
        const char *eq = strchr(arg, '=');
        const opt *o = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg), err);
        if (!o)
            return err->status;
        const char *value = NULL;
        if (o->kind == K_BOOL) {
            if (eq)
                return ct_fail(err, CT_ERR_INVALID, "%s takes no value (got '%s')", o->flag, eq + 1);
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return ct_fail(err, CT_ERR_INVALID, "%s expects a value", o->flag);
        }
        vals[(*n_vals)++] = (cli_value){o, value};
    }
    return CT_OK;
}

ct_status ct_lora_args_parse(ct_lora_args *a, int argc, char *const *argv, ct_error *err) {
    CT_TRY(ct_lora_args_defaults(a, err));
    cli_value *vals = calloc((size_t)argc + 1, sizeof *vals);
    if (!vals) {
        ct_lora_args_free(a);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    size_t n_vals;
    const char *config = NULL;
    ct_status st = scan_argv(argc, argv, vals, &n_vals, &config, &a->help, err);
    if (st == CT_OK && a->help) {
        free(vals);
        return CT_OK;
    }
    if (st == CT_OK && config)
        st = ct_lora_args_apply_yaml(a, config, err);
    for (size_t i = 0; st == CT_OK && i < n_vals; i++) {
        st = set_from_text(a, vals[i].o, vals[i].o->kind == K_BOOL ? "true" : vals[i].value, "", err);
        if (st != CT_OK && vals[i].o->kind != K_ENUM)
            ct_error_context(err, "%s", vals[i].o->flag);
    }
    if (st == CT_OK)
        st = dup_str(&a->config, config, err);
    if (st == CT_OK)
        st = ct_lora_args_validate(a, err);
    free(vals);
    if (st != CT_OK)
        ct_lora_args_free(a);
    return st;
}

// ---------------------------------------------------------------------------
// Validation.

static ct_status check_report_to(const char *s, ct_error *err) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strcmp(tok, "wandb") && strcmp(tok, "swanlab"))
            return ct_fail(err, CT_ERR_INVALID, "report_to: %s callback doesn't exist choose from wandb, swanlab", tok);
    }
    return CT_OK;
}

ct_status ct_lora_args_validate(ct_lora_args *a, ct_error *err) {
    if (a->num_layers == 0)
        return ct_fail(err, CT_ERR_INVALID, "num_layers: 0 layers would train nothing (use -1 for all layers)");
    if (a->num_layers < -1)
        return ct_fail(err, CT_ERR_INVALID, "num_layers: %lld is not valid (a positive count, or -1 for all)",
                       (long long)a->num_layers);
    struct { const char *key; int64_t v, min; } ints[] = {
        {"batch_size", a->batch_size, 1},           {"iters", a->iters, 0},
        {"val_batches", a->val_batches, -1},         {"test_batches", a->test_batches, -1},
        {"steps_per_report", a->steps_per_report, 1}, {"steps_per_eval", a->steps_per_eval, 1},
        {"save_every", a->save_every, 1},            {"max_seq_length", a->max_seq_length, 2},
        {"grad_accumulation_steps", a->grad_accumulation_steps, 1},
        {"clear_cache_threshold", a->clear_cache_threshold, 0},
        {"lora_parameters.rank", a->lora_parameters.rank, 1},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].v < ints[i].min)
            return ct_fail(err, CT_ERR_INVALID, "%s: %lld is too small (minimum %lld)", ints[i].key,
                           (long long)ints[i].v, (long long)ints[i].min);
    if (!isfinite(a->learning_rate) || a->learning_rate < 0)
        return ct_fail(err, CT_ERR_INVALID, "learning_rate: %g is not a valid learning rate", a->learning_rate);
    const ct_lora_params *p = &a->lora_parameters;
    if (!(p->dropout >= 0 && p->dropout < 1))
        return ct_fail(err, CT_ERR_INVALID, "lora_parameters.dropout: %g is not in [0, 1)", p->dropout);
    if (!isfinite(p->scale))
        return ct_fail(err, CT_ERR_INVALID, "lora_parameters.scale: %g is not finite", p->scale);
    if (a->report_to)
        CT_TRY(check_report_to(a->report_to, err));
    if (a->resume && a->resume_adapter_file)
        return ct_fail(err, CT_ERR_INVALID,
                       "--resume continues from adapter_path's latest checkpoint; it cannot be combined with "
                       "--resume-adapter-file (weights only)");
    if (!a->train && !a->test)
        return ct_fail(err, CT_ERR_INVALID, "Must provide at least one of --train or --test");
    return CT_OK;
}

// ---------------------------------------------------------------------------
// adapter_config.json, as Python's json.dump(dict(sorted(cfg.items())), indent=4).

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (w > 0)
        sb_putn(b, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

// Python's repr(float): the shortest digits that round-trip, positional
// notation for exponents in [-4, 16), otherwise d.ddde+XX.
static void py_float(double x, char *out, size_t n) {
    if (isnan(x)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(x)) {
        snprintf(out, n, x > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x)
            break;
    }
    // e = "[-]d[.ddd]e[+-]XX"
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    char digits[32];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (isdigit((unsigned char)*s))
            digits[nd++] = *s;
    int exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    char body[48];
    if (exp10 >= 16 || exp10 < -4) {
        snprintf(body, sizeof body, "%c%s%se%c%02d", digits[0], nd > 1 ? "." : "", digits + 1, exp10 < 0 ? '-' : '+',
                 abs(exp10));
    } else if (exp10 >= 0) {
        size_t k = 0;
        for (int i = 0; i <= exp10; i++)
            body[k++] = (size_t)i < nd ? digits[i] : '0';
        body[k++] = '.';
        if ((size_t)exp10 + 1 < nd)
            for (size_t i = (size_t)exp10 + 1; i < nd; i++)
                body[k++] = digits[i];
        else
            body[k++] = '0';
        body[k] = 0;
    } else {
        snprintf(body, sizeof body, "0.%.*s%s", -exp10 - 1, "0000", digits);
    }
    snprintf(out, n, "%s%s", neg ? "-" : "", body);
}

static void put_json_string(sbuf *b, const char *s) {
    sb_putn(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            sb_putn(b, "\\", 1);
            sb_putn(b, (const char *)p, 1);
            p++;
        } else if (c < 0x20) {
            const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\b' ? "\\b"
                              : c == '\f' ? "\\f" : NULL;
            if (esc)
                sb_puts(b, esc);
            else
                sb_printf(b, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            sb_putn(b, (const char *)p, 1);
            p++;
        } else { // ensure_ascii: \uXXXX, surrogate pairs above the BMP
            int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            unsigned cp = c & (0xFF >> (len + 1));
            int i = 1;
            for (; i < len && (p[i] & 0xC0) == 0x80; i++)
                cp = (cp << 6) | (p[i] & 0x3F);
            p += i;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                sb_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                sb_printf(b, "\\u%04x", cp);
            }
        }
    }
    sb_putn(b, "\"", 1);
}

static void put_indent(sbuf *b, int level) {
    for (int i = 0; i < level * 4; i++)
        sb_putn(b, " ", 1);
}

// Generic cJSON in Python's layout. Raw nodes carry pre-formatted numbers.
static void put_json(sbuf *b, const cJSON *v, int level) {
    char num[64];
    if (cJSON_IsRaw(v)) {
        sb_puts(b, v->valuestring);
    } else if (cJSON_IsNull(v)) {
        sb_puts(b, "null");
    } else if (cJSON_IsBool(v)) {
        sb_puts(b, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        int64_t i;
        if (ct_json_as_int(v, &i)) {
            sb_printf(b, "%lld", (long long)i);
        } else {
            py_float(v->valuedouble, num, sizeof num);
            sb_puts(b, num);
        }
    } else if (cJSON_IsString(v)) {
        put_json_string(b, v->valuestring);
    } else {
        bool obj = cJSON_IsObject(v);
        if (!v->child) {
            sb_puts(b, obj ? "{}" : "[]");
            return;
        }
        sb_puts(b, obj ? "{\n" : "[\n");
        for (const cJSON *c = v->child; c; c = c->next) {
            put_indent(b, level + 1);
            if (obj) {
                put_json_string(b, c->string);
                sb_puts(b, ": ");
            }
            put_json(b, c, level + 1);
            sb_puts(b, c->next ? ",\n" : "\n");
        }
        put_indent(b, level);
        sb_puts(b, obj ? "}" : "]");
    }
}

static cJSON *raw_float(double x) {
    char num[64];
    py_float(x, num, sizeof num);
    return cJSON_CreateRaw(num);
}

static cJSON *lora_params_json(const ct_lora_params *p) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "rank", (double)p->rank);
    cJSON_AddItemToObject(o, "dropout", raw_float(p->dropout));
    cJSON_AddItemToObject(o, "scale", raw_float(p->scale));
    if (p->alpha_set)
        cJSON_AddItemToObject(o, "alpha", raw_float(p->alpha));
    if (p->keys) {
        cJSON *k = cJSON_AddArrayToObject(o, "keys");
        for (size_t i = 0; k && i < p->n_keys; i++)
            cJSON_AddItemToArray(k, cJSON_CreateString(p->keys[i]));
    }
    return o;
}

static cJSON *schedule_json(const ct_lr_schedule *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON *args = cJSON_AddArrayToObject(o, "arguments");
    for (size_t i = 0; args && i < s->n_arguments; i++) {
        double x = s->arguments[i];
        cJSON_AddItemToArray(args, x == floor(x) && fabs(x) < 1e15 ? cJSON_CreateNumber(x) : raw_float(x));
    }
    if (s->warmup_set)
        cJSON_AddNumberToObject(o, "warmup", (double)s->warmup);
    if (s->warmup_init_set)
        cJSON_AddItemToObject(o, "warmup_init", raw_float(s->warmup_init));
    return o;
}

static cJSON *option_json(const ct_lora_args *a, const opt *o) {
    const void *f = cfield(a, o);
    switch (o->kind) {
    case K_STR:
    case K_ENUM: {
        const char *s = *(char *const *)f;
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
    }
    case K_INT:
    case K_SIZE:
        return cJSON_CreateNumber((double)*(const int64_t *)f);
    case K_FLOAT:
        return raw_float(*(const double *)f);
    case K_BOOL:
        return cJSON_CreateBool(*(const bool *)f);
    case K_SPECIAL:
        break;
    }
    if (!strcmp(o->key, "lora_parameters"))
        return lora_params_json(&a->lora_parameters);
    if (!strcmp(o->key, "lr_schedule"))
        return a->lr_schedule_set ? schedule_json(&a->lr_schedule) : cJSON_CreateNull();
    if (!strcmp(o->key, "optimizer_config"))
        return cJSON_Duplicate(a->optimizer_config, true);
    return cJSON_Duplicate(a->hf_dataset_json, true); // hf_dataset
}

static bool option_is_set(const ct_lora_args *a, const opt *o) {
    if (!strcmp(o->key, "hf_dataset"))
        return a->hf_dataset_json != NULL;
    return *(char *const *)cfield(a, o) != NULL; // the only_if_set keys are strings
}

static int cmp_opt_key(const void *x, const void *y) {
    return strcmp((*(const opt *const *)x)->key, (*(const opt *const *)y)->key);
}

ct_status ct_lora_args_to_json(const ct_lora_args *a, char **out, ct_error *err) {
    const opt *sorted[N_OPTS];
    for (size_t i = 0; i < N_OPTS; i++)
        sorted[i] = &OPTS[i];
    qsort(sorted, N_OPTS, sizeof sorted[0], cmp_opt_key);
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    for (size_t i = 0; ok && i < N_OPTS; i++) {
        if (sorted[i]->only_if_set && !option_is_set(a, sorted[i]))
            continue;
        cJSON *v = option_json(a, sorted[i]);
        ok = v && cJSON_AddItemToObject(root, sorted[i]->key, v);
    }
    sbuf b = {0};
    if (ok)
        put_json(&b, root, 0);
    cJSON_Delete(root);
    if (!ok || b.oom) {
        free(b.p);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory writing adapter_config.json");
    }
    *out = b.p;
    return CT_OK;
}

ct_status ct_lora_args_save_config(const ct_lora_args *a, ct_error *err) {
    char path[4096];
    CT_TRY(ct_mkdir_p(a->adapter_path, err));
    CT_TRY(ct_path_join(path, sizeof path, a->adapter_path, "adapter_config.json", err));
    char *text;
    CT_TRY(ct_lora_args_to_json(a, &text, err));
    ct_status st = ct_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

// ---------------------------------------------------------------------------
// --help

char *ct_lora_args_help(void) {
    sbuf b = {0};
    sb_puts(&b, "usage: ctune lora [options]\n\n"
                "Fine-tune a model with LoRA, DoRA or full fine-tuning (the flags and YAML keys of\n"
                "mlx_lm.lora). Values resolve as command line > YAML (-c FILE) > defaults.\n\n"
                "options:\n  -h, --help                   Show this help.\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt *o = &OPTS[i];
        if (!o->flag)
            continue;
        char left[80];
        const char *meta = o->kind == K_BOOL ? "" : o->kind == K_INT ? " N" : o->kind == K_FLOAT ? " X"
                           : o->kind == K_SIZE ? " SIZE" : !strcmp(o->key, "config") ? " FILE.yaml" : " VALUE";
        snprintf(left, sizeof left, "%s%s", o->flag, meta);
        sb_printf(&b, "  %-28s %s", left, o->help);
        if (o->kind == K_BOOL)
            sb_puts(&b, " (default: false)\n");
        else
            sb_printf(&b, " (default: %s)\n", o->def ? o->def : "none");
    }
    sb_puts(&b, "\nYAML-only keys:\n");
    for (size_t i = 0; i < N_OPTS; i++)
        if (!OPTS[i].flag)
            sb_printf(&b, "  %-28s %s\n", OPTS[i].key, OPTS[i].help);
    sb_puts(&b, "\nAny flag can also be set in YAML with underscores (batch_size: 8).\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
