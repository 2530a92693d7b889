// dataset.c: loading and validating JSONL/JSON datasets (local folders, hub
// ids, hf_dataset entries with split slices) and tokenizing them through a
// caller's callback.
#include "ctune/dataset.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/log.h"
#include "ctune/utf8.h"

const char *ct_dataset_format_name(ct_dataset_format f) {
    return f == CT_DATA_TEXT ? "text" : f == CT_DATA_CHAT ? "chat" : "completions";
}

void ct_dataset_free(ct_dataset *ds) {
    for (size_t i = 0; i < ds->n; i++)
        cJSON_Delete(ds->records[i].json);
    for (size_t i = 0; i < ds->n_sources; i++)
        free(ds->sources[i].name);
    free(ds->records);
    free(ds->sources);
    memset(ds, 0, sizeof *ds);
}

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
// Records: format detection and normalisation.

typedef struct keyset {
    const char *text, *chat, *prompt, *completion;
} keyset;

static keyset resolve_keys(const ct_feature_names *f) {
    keyset k = {"text", "messages", "prompt", "completion"};
    if (f && f->text)
        k.text = f->text;
    if (f && f->chat)
        k.chat = f->chat;
    if (f && f->prompt)
        k.prompt = f->prompt;
    if (f && f->completion)
        k.completion = f->completion;
    return k;
}

static bool has(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key) != NULL; }

static ct_status detect_format(const cJSON *first, const keyset *k, const char *where, ct_dataset_format *fmt,
                               ct_error *err) {
    if (has(first, k->prompt) && has(first, k->completion))
        *fmt = CT_DATA_COMPLETIONS;
    else if (has(first, k->chat))
        *fmt = CT_DATA_CHAT;
    else if (has(first, k->text))
        *fmt = CT_DATA_TEXT;
    else
        return ct_fail(err, CT_ERR_FORMAT,
                       "%s: Unsupported data format: a record needs \"%s\" and \"%s\" (completions), \"%s\" (chat) "
                       "or \"%s\" (text); see docs/fine-tuning.md#data-formats",
                       where, k->prompt, k->completion, k->chat, k->text);
    return CT_OK;
}

static ct_status need_string(const cJSON *rec, const char *key, const char *where, const char *fmt_name,
                             cJSON *out, const char *out_key, ct_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v)
        return ct_fail(err, CT_ERR_FORMAT, "%s: missing \"%s\" (the file is in %s format, detected from its first record)",
                       where, key, fmt_name);
    if (!cJSON_IsString(v))
        return ct_fail(err, CT_ERR_FORMAT, "%s: \"%s\" must be a string, got %s", where, key, ct_json_type_name(v));
    return cJSON_AddStringToObject(out, out_key, v->valuestring) ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "out of memory");
}

static ct_status copy_tools(const cJSON *rec, const char *where, cJSON *out, ct_error *err) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(rec, "tools");
    if (!tools || cJSON_IsNull(tools))
        return CT_OK;
    if (!cJSON_IsArray(tools))
        return ct_fail(err, CT_ERR_FORMAT, "%s: \"tools\" must be a list of tool schemas, got %s", where,
                       ct_json_type_name(tools));
    cJSON *c = cJSON_Duplicate(tools, true);
    if (!c || !cJSON_AddItemToObject(out, "tools", c)) {
        cJSON_Delete(c);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    return CT_OK;
}

static ct_status check_message(const cJSON *m, size_t i, const char *key, const char *where, ct_error *err) {
    if (!cJSON_IsObject(m))
        return ct_fail(err, CT_ERR_FORMAT, "%s: \"%s\"[%zu] must be an object {\"role\", \"content\"}, got %s", where,
                       key, i, ct_json_type_name(m));
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role))
        return ct_fail(err, CT_ERR_FORMAT, "%s: \"%s\"[%zu].role must be a string, got %s", where, key, i,
                       ct_json_type_name(role));
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    bool tool_call = has(m, "tool_calls");
    if (cJSON_IsString(content) || cJSON_IsArray(content) || (tool_call && (!content || cJSON_IsNull(content))))
        return CT_OK;
    return ct_fail(err, CT_ERR_FORMAT, "%s: \"%s\"[%zu].content must be a string, got %s", where, key, i,
                   ct_json_type_name(content));
}

static ct_status normalize(const cJSON *rec, ct_dataset_format fmt, const keyset *k, const char *where, cJSON **out,
                           ct_error *err) {
    *out = NULL;
    if (!cJSON_IsObject(rec))
        return ct_fail(err, CT_ERR_FORMAT, "%s: a record must be a JSON object, got %s", where, ct_json_type_name(rec));
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    ct_status st = CT_OK;
    const char *fname = ct_dataset_format_name(fmt);
    if (fmt == CT_DATA_TEXT) {
        st = need_string(rec, k->text, where, fname, o, "text", err);
    } else if (fmt == CT_DATA_COMPLETIONS) {
        st = need_string(rec, k->prompt, where, fname, o, "prompt", err);
        if (st == CT_OK)
            st = need_string(rec, k->completion, where, fname, o, "completion", err);
        if (st == CT_OK)
            st = copy_tools(rec, where, o, err);
    } else {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, k->chat);
        if (!msgs)
            st = ct_fail(err, CT_ERR_FORMAT, "%s: missing \"%s\" (the file is in chat format, detected from its first record)",
                         where, k->chat);
        else if (!cJSON_IsArray(msgs) || !msgs->child)
            st = ct_fail(err, CT_ERR_FORMAT, "%s: \"%s\" must be a non-empty list of {\"role\", \"content\"}, got %s",
                         where, k->chat, cJSON_IsArray(msgs) ? "an empty list" : ct_json_type_name(msgs));
        size_t i = 0;
        for (const cJSON *m = msgs ? msgs->child : NULL; st == CT_OK && m; m = m->next, i++)
            st = check_message(m, i, k->chat, where, err);
        if (st == CT_OK) {
            cJSON *c = cJSON_Duplicate(msgs, true);
            if (!c || !cJSON_AddItemToObject(o, "messages", c)) {
                cJSON_Delete(c);
                st = ct_fail(err, CT_ERR_NOMEM, "out of memory");
            }
        }
        if (st == CT_OK)
            st = copy_tools(rec, where, o, err);
    }
    if (st != CT_OK) {
        cJSON_Delete(o);
        return st;
    }
    *out = o;
    return CT_OK;
}

// ---------------------------------------------------------------------------
// Files.

static ct_status push_record(ct_dataset *ds, cJSON *json, uint32_t line, ct_error *err) {
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? 2 * ds->cap : 256;
        ct_data_record *nr = realloc(ds->records, cap * sizeof *nr);
        if (!nr) {
            cJSON_Delete(json);
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        }
        ds->records = nr;
        ds->cap = cap;
    }
    ds->records[ds->n++] = (ct_data_record){json, (uint32_t)(ds->n_sources - 1), line};
    return CT_OK;
}

static ct_status add_source(ct_dataset *ds, const char *name, ct_error *err) {
    ct_data_source *ns = realloc(ds->sources, (ds->n_sources + 1) * sizeof *ns);
    if (!ns)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    ds->sources = ns;
    ds->sources[ds->n_sources] = (ct_data_source){strdup(name), CT_DATA_TEXT};
    if (!ds->sources[ds->n_sources].name)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    ds->n_sources++;
    return CT_OK;
}

// One parsed record at `where`: detect the format on the first, validate, keep.
typedef struct file_ctx {
    ct_dataset *ds;
    const keyset *keys;
    bool mask_prompt;
    bool first;
    ct_dataset_format fmt;
} file_ctx;

static ct_status take_record(file_ctx *fc, const cJSON *rec, uint32_t line, const char *where, ct_error *err) {
    if (fc->first) {
        if (!cJSON_IsObject(rec))
            return ct_fail(err, CT_ERR_FORMAT, "%s: a record must be a JSON object, got %s", where, ct_json_type_name(rec));
        CT_TRY(detect_format(rec, fc->keys, where, &fc->fmt, err));
        if (fc->fmt == CT_DATA_TEXT && fc->mask_prompt)
            return ct_fail(err, CT_ERR_INVALID, "%s: Prompt masking not supported for text dataset (mask_prompt needs "
                           "chat or prompt/completion records)", where);
        fc->ds->sources[fc->ds->n_sources - 1].format = fc->fmt;
        fc->first = false;
    }
    cJSON *norm;
    CT_TRY(normalize(rec, fc->fmt, fc->keys, where, &norm, err));
    return push_record(fc->ds, norm, line, err);
}

static ct_status load_jsonl(file_ctx *fc, const char *path, const char *text, size_t len, ct_error *err) {
    size_t pos = 0;
    uint32_t line = 0;
    char where[4200];
    while (pos < len) {
        line++;
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        size_t m = n;
        while (m && isspace((unsigned char)s[m - 1]))
            m--;
        size_t lead = 0;
        while (lead < m && isspace((unsigned char)s[lead]))
            lead++;
        if (lead == m)
            continue; // blank lines are skipped
        snprintf(where, sizeof where, "%s:%u", path, line);
        cJSON *rec;
        if (ct_json_parse(s, m, "record", &rec, err) != CT_OK) {
            // ct_json_parse says "record:1:col: malformed JSON"; give file:line:col.
            const char *col = strchr(err->msg, ':');
            col = col ? strchr(col + 1, ':') : NULL;
            char tail[256];
            snprintf(tail, sizeof tail, "%s", col ? col + 1 : " malformed JSON");
            return ct_fail(err, CT_ERR_FORMAT, "%s:%u:%s", path, line, tail);
        }
        ct_status st = take_record(fc, rec, line, where, err);
        cJSON_Delete(rec);
        CT_TRY(st);
    }
    return CT_OK;
}

static ct_status load_json_array(file_ctx *fc, const char *path, const char *text, size_t len, ct_error *err) {
    cJSON *arr;
    CT_TRY(ct_json_parse(text, len, path, &arr, err));
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return ct_fail(err, CT_ERR_FORMAT, "%s: a .json dataset must be a list of records, got %s", path,
                       ct_json_type_name(arr));
    }
    char where[4200];
    uint32_t i = 0;
    ct_status st = CT_OK;
    for (const cJSON *rec = arr->child; rec && st == CT_OK; rec = rec->next) {
        i++;
        snprintf(where, sizeof where, "%s: record %u", path, i);
        st = take_record(fc, rec, i, where, err);
    }
    cJSON_Delete(arr);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

ct_status ct_dataset_load_file(ct_dataset *ds, const char *path, const ct_feature_names *names, bool mask_prompt,
                               ct_error *err) {
    char *text;
    size_t len;
    CT_TRY(ct_read_file(path, &text, &len, err));
    size_t skip = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0; // a UTF-8 byte order mark
    size_t bad = ct_utf8_invalid_at(text + skip, len - skip);
    if (bad < len - skip) {
        size_t line = 1;
        for (size_t i = skip; i < skip + bad; i++)
            line += text[i] == '\n';
        free(text);
        return ct_fail(err, CT_ERR_FORMAT, "%s:%zu: invalid UTF-8 (byte offset %zu)", path, line, skip + bad);
    }
    ct_status st = add_source(ds, path, err);
    keyset keys = resolve_keys(names);
    file_ctx fc = {ds, &keys, mask_prompt, true, CT_DATA_TEXT};
    size_t before = ds->n;
    if (st == CT_OK) {
        bool array = ends_with(path, ".json");
        st = array ? load_json_array(&fc, path, text + skip, len - skip, err)
                   : load_jsonl(&fc, path, text + skip, len - skip, err);
    }
    free(text);
    if (st != CT_OK) { // leave ds as it was
        for (size_t i = before; i < ds->n; i++)
            cJSON_Delete(ds->records[i].json);
        ds->n = before;
    }
    return st;
}

ct_status ct_dataset_concat(ct_dataset *dst, ct_dataset *src, ct_error *err) {
    size_t base = dst->n_sources;
    ct_data_source *ns = realloc(dst->sources, (dst->n_sources + src->n_sources + 1) * sizeof *ns);
    if (!ns)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    dst->sources = ns;
    if (dst->n + src->n > dst->cap) {
        ct_data_record *nr = realloc(dst->records, (dst->n + src->n) * sizeof *nr);
        if (!nr)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        dst->records = nr;
        dst->cap = dst->n + src->n;
    }
    memcpy(dst->sources + base, src->sources, src->n_sources * sizeof *ns);
    dst->n_sources += src->n_sources;
    for (size_t i = 0; i < src->n; i++) {
        dst->records[dst->n] = src->records[i];
        dst->records[dst->n++].source += (uint32_t)base;
    }
    free(src->records);
    free(src->sources);
    memset(src, 0, sizeof *src);
    return CT_OK;
}

void ct_dataset_keep_range(ct_dataset *ds, size_t begin, size_t end) {
    if (end > ds->n)
        end = ds->n;
    if (begin > end)
        begin = end;
    for (size_t i = 0; i < ds->n; i++)
        if (i < begin || i >= end)
            cJSON_Delete(ds->records[i].json);
    memmove(ds->records, ds->records + begin, (end - begin) * sizeof *ds->records);
    ds->n = end - begin;
}

static ct_status load_split_file(const char *dir, const char *split, const ct_feature_names *keys, bool mask_prompt,
                                 ct_dataset *out, ct_error *err) {
    static const char *const EXTS[] = {".jsonl", ".json"};
    for (size_t i = 0; i < 2; i++) {
        char name[64], path[4096];
        snprintf(name, sizeof name, "%s%s", split, EXTS[i]);
        CT_TRY(ct_path_join(path, sizeof path, dir, name, err));
        if (ct_path_exists(path))
            return ct_dataset_load_file(out, path, keys, mask_prompt, err);
    }
    return CT_OK;
}

ct_status ct_dataset_load_local(const char *dir, const ct_feature_names *keys, bool mask_prompt, ct_dataset *train,
                                ct_dataset *valid, ct_dataset *test, ct_error *err) {
    if (!ct_is_dir(dir))
        return ct_fail(err, CT_ERR_IO, "%s: not a folder (expected train.jsonl, valid.jsonl, test.jsonl inside)", dir);
    if (train)
        CT_TRY(load_split_file(dir, "train", keys, mask_prompt, train, err));
    if (valid)
        CT_TRY(load_split_file(dir, "valid", keys, mask_prompt, valid, err));
    if (test)
        CT_TRY(load_split_file(dir, "test", keys, mask_prompt, test, err));
    return CT_OK;
}

// ---------------------------------------------------------------------------
// Split expressions: "train", "train[:80%]", "train[-10%:]", "train[10:20]".

static ct_status parse_bound(const char *s, size_t n, bool *has_v, bool *pct, double *v, const char *text,
                             ct_error *err) {
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *has_v = n > 0;
    *pct = n > 0 && s[n - 1] == '%';
    if (!n)
        return CT_OK;
    char buf[32];
    size_t m = n - (*pct ? 1 : 0);
    if (m == 0 || m >= sizeof buf)
        return ct_fail(err, CT_ERR_INVALID, "split '%s': bad slice bound", text);
    memcpy(buf, s, m);
    buf[m] = 0;
    char *end;
    *v = strtod(buf, &end);
    if (*end || (!*pct && *v != floor(*v)))
        return ct_fail(err, CT_ERR_INVALID, "split '%s': slice bounds must be integers or percentages", text);
    if (*pct && fabs(*v) > 100)
        return ct_fail(err, CT_ERR_INVALID, "split '%s': percentages must be within [-100%%, 100%%]", text);
    return CT_OK;
}

ct_status ct_split_spec_parse(const char *text, ct_split_spec *s, ct_error *err) {
    memset(s, 0, sizeof *s);
    const char *br = strchr(text, '[');
    size_t name_len = br ? (size_t)(br - text) : strlen(text);
    if (!name_len || name_len >= sizeof s->name)
        return ct_fail(err, CT_ERR_INVALID, "split '%s': expected a name such as train or train[:80%%]", text);
    memcpy(s->name, text, name_len);
    if (!br)
        return CT_OK;
    const char *close = strchr(br, ']');
    const char *colon = strchr(br, ':');
    if (!close || close[1] || !colon || colon > close)
        return ct_fail(err, CT_ERR_INVALID, "split '%s': expected name[begin:end], e.g. train[:80%%] or train[10:20]", text);
    CT_TRY(parse_bound(br + 1, (size_t)(colon - br - 1), &s->has_begin, &s->begin_pct, &s->begin, text, err));
    CT_TRY(parse_bound(colon + 1, (size_t)(close - colon - 1), &s->has_end, &s->end_pct, &s->end, text, err));
    return CT_OK;
}

// Python's round(): to nearest, ties to even (the default FP rounding mode).
static double round_half_even(double x) { return nearbyint(x); }

static size_t bound_to_index(bool has_v, bool pct, double v, size_t n, size_t dflt) {
    if (!has_v)
        return dflt;
    double a = pct ? round_half_even(v * (double)n / 100.0) : v;
    if (a < 0)
        a += (double)n;
    if (a < 0)
        a = 0;
    if (a > (double)n)
        a = (double)n;
    return (size_t)a;
}

void ct_split_spec_range(const ct_split_spec *s, size_t n, size_t *begin, size_t *end) {
    *begin = bound_to_index(s->has_begin, s->begin_pct, s->begin, n, 0);
    *end = bound_to_index(s->has_end, s->end_pct, s->end, n, n);
    if (*end < *begin)
        *end = *begin;
}

// ---------------------------------------------------------------------------
// Hub datasets: which files of a repository belong to a split. The rule
// follows the datasets library's defaults: a path token (split on
// non-alphanumerics) naming the split, e.g. train.jsonl, data/train-0000.jsonl,
// validation/part1.json; synonyms valid/val/dev for validation, testing/eval
// for test. If no file names any split, every data file is "train".

enum { SPLIT_NONE = -1, SPLIT_TRAIN, SPLIT_VALID, SPLIT_TEST };

static int keyword_split(const char *tok) {
    static const char *const W[3][5] = {
        {"train", "training", NULL},
        {"validation", "valid", "val", "dev", NULL},
        {"test", "testing", "eval", "evaluation", NULL},
    };
    for (int s = 0; s < 3; s++)
        for (int i = 0; W[s][i]; i++)
            if (!strcasecmp(tok, W[s][i]))
                return s;
    return SPLIT_NONE;
}

static int file_split(const char *rel, const char *custom) {
    char tok[256];
    const char *p = rel;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && isalnum((unsigned char)p[n]) && n + 1 < sizeof tok)
            n++;
        if (!n)
            break;
        memcpy(tok, p, n);
        tok[n] = 0;
        p += n;
        if (custom && !strcasecmp(tok, custom))
            return 99;
        int s = keyword_split(tok);
        if (s != SPLIT_NONE)
            return s;
    }
    return SPLIT_NONE;
}

static bool is_data_file(const char *rel, const char *const *exts) {
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (!strncmp(base, "dataset_info", 12) || !strncmp(base, "dataset_dict", 12) || !strcmp(base, "state.json"))
        return false;
    for (; *exts; exts++)
        if (ends_with(base, *exts))
            return true;
    return false;
}

static ct_status parquet_only_error(const char *id, const ct_hub_snapshot *snap, ct_error *err) {
    static const char *const OTHER[] = {".parquet", ".arrow", ".csv", ".tsv", ".txt", ".jsonl.gz", ".json.gz", NULL};
    for (size_t i = 0; i < snap->n_files; i++)
        if (is_data_file(snap->files[i], OTHER))
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "Hugging Face dataset '%s' has no JSON Lines or JSON files (it has %s); ctune reads .jsonl "
                           "and .json. Hint: convert it once with Python, e.g. for s in ('train', 'validation', "
                           "'test'): datasets.load_dataset('%s')[s].to_json(f'data/{s}.jsonl'), then pass --data data",
                           id, snap->files[i], id);
    return ct_fail(err, CT_ERR_FORMAT, "Hugging Face dataset '%s' (%s) has no data files", id, snap->dir);
}

// True if rel lies under a folder named subset (a dataset configuration
// such as "en" in en/train.jsonl); NULL matches everything.
static bool in_subset(const char *rel, const char *subset) {
    if (!subset)
        return true;
    size_t n = strlen(subset);
    for (const char *p = rel; (p = strstr(p, subset)); p++)
        if ((p == rel || p[-1] == '/') && p[n] == '/')
            return true;
    return false;
}

// Loads the files of split `name` (canonical or custom) from a snapshot.
static ct_status load_hub_split(const ct_hub_snapshot *snap, const char *id, const char *subset, const char *name,
                                const ct_feature_names *keys, bool mask_prompt, ct_dataset *out, ct_error *err) {
    static const char *const EXTS[] = {".jsonl", ".json", NULL};
    int want = keyword_split(name);
    bool any_data = false, any_split = false;
    for (size_t i = 0; i < snap->n_files; i++) {
        if (!is_data_file(snap->files[i], EXTS) || !in_subset(snap->files[i], subset))
            continue;
        any_data = true;
        any_split |= file_split(snap->files[i], NULL) != SPLIT_NONE;
    }
    if (!any_data && subset)
        return ct_fail(err, CT_ERR_FORMAT, "Hugging Face dataset '%s' has no .jsonl/.json files under a '%s/' folder "
                       "(hf_dataset config name)", id, subset);
    if (!any_data)
        return parquet_only_error(id, snap, err);
    for (size_t i = 0; i < snap->n_files; i++) {
        if (!is_data_file(snap->files[i], EXTS) || !in_subset(snap->files[i], subset))
            continue;
        int s = file_split(snap->files[i], want == SPLIT_NONE ? name : NULL);
        bool match = want == SPLIT_NONE ? s == 99 : (any_split ? s == want : want == SPLIT_TRAIN);
        if (!match)
            continue;
        char path[4096];
        CT_TRY(ct_path_join(path, sizeof path, snap->dir, snap->files[i], err));
        if (!ct_path_exists(path))
            return ct_fail(err, CT_ERR_IO, "%s: listed by the hub for dataset '%s' but missing from the cache", path, id);
        CT_TRY(ct_dataset_load_file(out, path, keys, mask_prompt, err));
    }
    return CT_OK;
}

static ct_status load_hub_slice(const ct_hub_snapshot *snap, const char *id, const char *subset,
                                const char *split_text, const ct_feature_names *keys, bool mask_prompt,
                                ct_dataset *out, ct_error *err) {
    ct_split_spec spec;
    CT_TRY(ct_split_spec_parse(split_text, &spec, err));
    ct_dataset part = {0};
    ct_status st = load_hub_split(snap, id, subset, spec.name, keys, mask_prompt, &part, err);
    if (st == CT_OK) {
        size_t b, e;
        ct_split_spec_range(&spec, part.n, &b, &e);
        ct_dataset_keep_range(&part, b, e);
        st = ct_dataset_concat(out, &part, err);
    }
    ct_dataset_free(&part);
    return st;
}

// A snapshot-like view of a local folder (hf_dataset entries may name one).
static ct_status local_snapshot(const char *dir, ct_hub_snapshot *snap, ct_error *err) {
    memset(snap, 0, sizeof *snap);
    snprintf(snap->dir, sizeof snap->dir, "%s", dir);
    return ct_hub_list_dir(dir, &snap->files, &snap->n_files, err);
}

static ct_status open_dataset_repo(const char *path, const ct_hub_options *hub, ct_hub_snapshot *snap, ct_error *err) {
    if (ct_is_dir(path))
        return local_snapshot(path, snap, err);
    if (!ct_hub_is_repo_id(path))
        return ct_fail(err, CT_ERR_IO, "%s: no such folder, and not a Hugging Face dataset id", path);
    if (!hub)
        return ct_fail(err, CT_ERR_INVALID, "%s: Hugging Face datasets are not available here", path);
    return ct_hub_resolve(hub, CT_HUB_DATASET, path, NULL, CT_HUB_DATASET_PATTERNS, snap, err);
}

static ct_feature_names entry_keys(const ct_lora_args *a, const ct_hf_dataset_entry *e) {
    ct_feature_names f = {a->text_feature, a->chat_feature, a->prompt_feature, a->completion_feature};
    if (e && e->text_feature)
        f.text = e->text_feature;
    if (e && e->chat_feature)
        f.chat = e->chat_feature;
    if (e && e->prompt_feature)
        f.prompt = e->prompt_feature;
    if (e && e->completion_feature)
        f.completion = e->completion_feature;
    return f;
}

static ct_status load_hf_entries(const ct_lora_args *a, const ct_hub_options *hub, ct_dataset *train,
                                 ct_dataset *valid, ct_dataset *test, ct_error *err) {
    for (size_t i = 0; i < a->n_hf_dataset; i++) {
        const ct_hf_dataset_entry *e = &a->hf_dataset[i];
        ct_feature_names keys = entry_keys(a, e);
        // config holds datasets.load_dataset keyword arguments; "name" (the
        // configuration, a folder in the repository) is the one ctune uses.
        const char *subset = NULL;
        for (const cJSON *c = e->config ? e->config->child : NULL; c; c = c->next) {
            if (!strcmp(c->string, "name") && cJSON_IsString(c))
                subset = c->valuestring;
            else
                ct_log_warn("hf_dataset '%s': config key '%s' is ignored by ctune", e->path, c->string);
        }
        ct_hub_snapshot snap;
        CT_TRY(open_dataset_repo(e->path, hub, &snap, err));
        ct_status st = CT_OK;
        if (a->train && e->train_split)
            st = load_hub_slice(&snap, e->path, subset, e->train_split, &keys, a->mask_prompt, train, err);
        if (st == CT_OK && a->train && e->valid_split)
            st = load_hub_slice(&snap, e->path, subset, e->valid_split, &keys, a->mask_prompt, valid, err);
        if (st == CT_OK && a->test && e->test_split)
            st = load_hub_slice(&snap, e->path, subset, e->test_split, &keys, a->mask_prompt, test, err);
        ct_hub_snapshot_free(&snap);
        CT_TRY(st);
    }
    return CT_OK;
}

static ct_status load_hub_dataset(const ct_lora_args *a, const ct_hub_options *hub, ct_dataset *train,
                                  ct_dataset *valid, ct_dataset *test, ct_error *err) {
    ct_feature_names keys = entry_keys(a, NULL);
    ct_hub_snapshot snap;
    CT_TRY(open_dataset_repo(a->data, hub, &snap, err));
    ct_status st = CT_OK;
    if (a->train)
        st = load_hub_split(&snap, a->data, NULL, "train", &keys, a->mask_prompt, train, err);
    if (st == CT_OK && a->train) // "valid" and "validation" (mlx-lm knows only "valid") are one split here
        st = load_hub_split(&snap, a->data, NULL, "validation", &keys, a->mask_prompt, valid, err);
    if (st == CT_OK && a->test)
        st = load_hub_split(&snap, a->data, NULL, "test", &keys, a->mask_prompt, test, err);
    ct_hub_snapshot_free(&snap);
    return st;
}

ct_status ct_dataset_load_for_args(const ct_lora_args *a, const ct_hub_options *hub, ct_dataset *train,
                                   ct_dataset *valid, ct_dataset *test, ct_error *err) {
    ct_status st;
    const char *where = a->data;
    if (a->n_hf_dataset) {
        where = "hf_dataset";
        st = load_hf_entries(a, hub, train, valid, test, err);
    } else if (ct_path_exists(a->data)) {
        ct_feature_names keys = entry_keys(a, NULL);
        // Only the splits this run uses are read (mlx-lm reads all three).
        st = ct_dataset_load_local(a->data, &keys, a->mask_prompt, a->train ? train : NULL, a->train ? valid : NULL,
                                   a->test ? test : NULL, err);
    } else {
        st = load_hub_dataset(a, hub, train, valid, test, err);
    }
    if (st == CT_OK && a->train && train->n == 0)
        st = ct_fail(err, CT_ERR_INVALID,
                     "Training set not found or empty. Must provide training set for fine-tuning. (looked in %s)", where);
    if (st == CT_OK && a->test && test->n == 0)
        st = ct_fail(err, CT_ERR_INVALID,
                     "Test set not found or empty. Must provide test set for evaluation. (looked in %s)", where);
    if (st == CT_OK && a->train && valid->n == 0)
        ct_log_warn("Validation set not found or empty. Training will proceed without validation.");
    if (st != CT_OK) {
        ct_dataset_free(train);
        ct_dataset_free(valid);
        ct_dataset_free(test);
    }
    return st;
}

// ---------------------------------------------------------------------------
// Tokenizing.

void ct_examples_free(ct_examples *ex) {
    for (size_t i = 0; i < ex->n_sources; i++)
        free(ex->sources[i]);
    free(ex->sources);
    free(ex->tokens);
    free(ex->items);
    memset(ex, 0, sizeof *ex);
}

static ct_status push_example(ct_examples *ex, const int32_t *ids, size_t n, size_t offset, uint32_t source,
                              uint32_t line, ct_error *err) {
    if (ex->n_tokens + n > ex->cap_tokens) {
        size_t cap = ex->cap_tokens ? ex->cap_tokens : 4096;
        while (cap < ex->n_tokens + n)
            cap *= 2;
        int32_t *nt = realloc(ex->tokens, cap * sizeof *nt);
        if (!nt)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory for %zu tokens", cap);
        ex->tokens = nt;
        ex->cap_tokens = cap;
    }
    if (ex->n == ex->cap) {
        size_t cap = ex->cap ? 2 * ex->cap : 256;
        ct_example *ni = realloc(ex->items, cap * sizeof *ni);
        if (!ni)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
        ex->items = ni;
        ex->cap = cap;
    }
    memcpy(ex->tokens + ex->n_tokens, ids, n * sizeof *ids);
    ex->items[ex->n++] = (ct_example){ex->n_tokens, (uint32_t)n, (uint32_t)offset, source, line};
    ex->n_tokens += n;
    return CT_OK;
}

// Trained targets once truncated: positions p in [max(offset, 1), min(len, max)).
static int64_t supervised_tokens(size_t len, size_t offset, int64_t max_seq_length) {
    int64_t kept = (int64_t)len < max_seq_length ? (int64_t)len : max_seq_length;
    int64_t first = offset > 1 ? (int64_t)offset : 1;
    return kept - first;
}

ct_status ct_dataset_tokenize(const ct_dataset *ds, ct_encode_fn encode, void *ctx, bool mask_prompt,
                              int64_t max_seq_length, ct_examples *out, ct_error *err) {
    memset(out, 0, sizeof *out);
    ct_status st = CT_OK;
    if (ds->n_sources && !(out->sources = calloc(ds->n_sources, sizeof *out->sources)))
        st = ct_fail(err, CT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == CT_OK && i < ds->n_sources; i++, out->n_sources++)
        if (!(out->sources[i] = strdup(ds->sources[i].name)))
            st = ct_fail(err, CT_ERR_NOMEM, "out of memory");
    size_t dropped = 0;
    for (size_t i = 0; st == CT_OK && i < ds->n; i++) {
        const ct_data_record *r = &ds->records[i];
        const char *src = ds->sources[r->source].name;
        int32_t *ids = NULL;
        size_t n = 0, prompt_len = 0;
        st = encode(ctx, r->json, ds->sources[r->source].format, mask_prompt, &ids, &n, &prompt_len, err);
        if (st != CT_OK) {
            ct_error_context(err, "%s:%u", src, r->line);
        } else if (n > UINT32_MAX || prompt_len > n) {
            st = ct_fail(err, CT_ERR_INVALID, "%s:%u: the encoder returned %zu tokens with a prompt of %zu", src,
                         r->line, n, prompt_len);
        } else if (supervised_tokens(n, prompt_len, max_seq_length) <= 0) {
            ct_log_warn("%s:%u: no token left to train on (%zu tokens, prompt %zu, max_seq_length %lld); "
                        "example skipped",
                        src, r->line, n, prompt_len, (long long)max_seq_length);
            dropped++;
        } else {
            st = push_example(out, ids, n, prompt_len, r->source, r->line, err);
        }
        free(ids);
    }
    if (st == CT_OK && ds->n && out->n == 0)
        st = ct_fail(err, CT_ERR_INVALID,
                     "%s: none of the %zu examples has a token left to train on after prompt masking and truncation "
                     "to max_seq_length %lld",
                     ds->n_sources ? ds->sources[0].name : "dataset", dropped, (long long)max_seq_length);
    if (st != CT_OK)
        ct_examples_free(out);
    return st;
}
