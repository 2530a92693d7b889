// ctune evaluate: how often a model's greedy answer equals the reference, on
// held-out chat or completions records (the final assistant message is the
// reference, everything before it the prompt). Prints each miss when asked and
// "Exact match: k/n (p%)". The comparison ignores surrounding whitespace.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/chat.h"
#include "ctune/dataset.h"
#include "ctune/generation.h"
#include "ctune/hub.h"
#include "ctune/log.h"
#include "ctune/model.h"
#include "ctune/sample.h"
#include "ctune/tokenizer.h"
#include "ctune/tuned_model.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune evaluate --model M --data FILE.jsonl [options]\n"
               "  --model M            model folder, .gguf file or Hugging Face id\n"
               "  --adapter-path A     adapters to apply (mlx-lm or PEFT folder)\n"
               "  --data F             chat ({\"messages\"}) or completions ({\"prompt\", \"completion\"}) JSONL\n"
               "  --num-examples N     evaluate the first N records (default: all)\n"
               "  --max-tokens N       longest answer generated (default 128)\n"
               "  --show N             print the first N answers next to the references (default 0)\n"
               "  --json               print {\"exact_match\": k, \"total\": n, \"accuracy\": p}\n");
}

typedef struct eval_opts {
    const char *model, *adapter, *data;
    int num_examples, max_tokens, show;
    bool json;
} eval_opts;

static int parse_int(const char *flag, const char *v, int lo, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > 1000000)
        return cli_usage_error("evaluate", "%s: '%s' is not an integer >= %d", flag, v, lo);
    *out = (int)x;
    return 0;
}

static int parse_args(int argc, char **argv, eval_opts *o) {
    o->num_examples = -1;
    o->max_tokens = 128;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("evaluate", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--adapter-path"))
            o->adapter = v;
        else if (!strcmp(a, "--num-examples"))
            rc = parse_int(a, v, 1, &o->num_examples);
        else if (!strcmp(a, "--max-tokens"))
            rc = parse_int(a, v, 1, &o->max_tokens);
        else if (!strcmp(a, "--show"))
            rc = parse_int(a, v, 0, &o->show);
        else
            return cli_usage_error("evaluate", "unknown option '%s'", a);
        if (rc)
            return rc;
    }
    if (!o->model || !o->data)
        return cli_usage_error("evaluate", "--model and --data are required");
    return 0;
}

// The prompt messages (all but the last) and the reference answer of a record.
static ct_status split_record(const cJSON *rec, ct_dataset_format fmt, cJSON **prompt, const char **answer,
                              ct_error *err) {
    *prompt = cJSON_CreateArray();
    if (fmt == CT_DATA_COMPLETIONS) {
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddItemReferenceToObject(u, "content", cJSON_GetObjectItemCaseSensitive(rec, "prompt"));
        cJSON_AddItemToArray(*prompt, u);
        *answer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "completion"));
        return CT_OK;
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, "messages");
    int n = cJSON_GetArraySize(msgs), k = 0;
    for (const cJSON *m = msgs ? msgs->child : NULL; m && k < n - 1; m = m->next, k++)
        cJSON_AddItemReferenceToArray(*prompt, (cJSON *)m);
    const cJSON *last = cJSON_GetArrayItem(msgs, n - 1);
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "role"));
    *answer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "content"));
    if (n < 2 || !role || strcmp(role, "assistant") != 0 || !*answer)
        return ct_fail(err, CT_ERR_FORMAT, "the record does not end with an assistant message to compare against");
    return CT_OK;
}

static bool same_answer(const char *a, const char *b) {
    while (isspace((unsigned char)*a))
        a++;
    while (isspace((unsigned char)*b))
        b++;
    size_t la = strlen(a), lb = strlen(b);
    while (la && isspace((unsigned char)a[la - 1]))
        la--;
    while (lb && isspace((unsigned char)b[lb - 1]))
        lb--;
    return la == lb && !memcmp(a, b, la);
}

// Greedy continuation of prompt until an end-of-sequence id or max_new tokens; *text is malloc'd.
static ct_status greedy(ct_model *m, ct_sampler *smp, ct_tokenizer *tok, const int32_t *prompt, int np, int max_new,
                        char **text, ct_error *err) {
    int32_t *out = malloc(sizeof(int32_t) * (size_t)max_new);
    if (!out)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    const ct_tokenizer_specials *sp = ct_tokenizer_get_specials(tok);
    ct_generation g;
    ct_status st = ct_model_generate(m, smp, prompt, np, max_new, sp->eos_ids, sp->n_eos, out, &g, NULL, NULL, err);
    if (st == CT_OK)
        st = ct_tokenizer_decode(tok, out, (size_t)g.n, true, text, err);
    free(out);
    return st;
}

static ct_status run(const eval_opts *o, ct_model *m, ct_tokenizer *tok, ct_error *err) {
    ct_dataset ds = {0};
    ct_chat chat = {0};
    ct_status st = ct_dataset_load_file(&ds, o->data, NULL, false, err);
    if (st == CT_OK && ds.n == 0)
        st = ct_fail(err, CT_ERR_INVALID, "%s: no records", o->data);
    if (st == CT_OK && ds.sources[0].format == CT_DATA_TEXT)
        st = ct_fail(err, CT_ERR_INVALID, "%s: text records have no reference answer (use chat or completions data)",
                     o->data);
    ct_sampler smp = {0}; // temperature 0: greedy
    if (st == CT_OK)
        st = ct_sampler_init(&smp, &(ct_sampler_params){0}, m->V, err);
    if (st == CT_OK)
        st = ct_chat_open(&chat, tok, NULL, err);
    size_t total = o->num_examples > 0 && (size_t)o->num_examples < ds.n ? (size_t)o->num_examples : ds.n, hits = 0;
    for (size_t i = 0; st == CT_OK && i < total; i++) {
        cJSON *prompt;
        const char *answer;
        int32_t *ids = NULL;
        size_t n = 0;
        char *text = NULL;
        st = split_record(ds.records[i].json, ds.sources[ds.records[i].source].format, &prompt, &answer, err);
        if (st == CT_OK)
            st = ct_chat_encode(&chat, prompt, cJSON_GetObjectItemCaseSensitive(ds.records[i].json, "tools"), true,
                                &ids, &n, err);
        if (st == CT_OK)
            st = greedy(m, &smp, tok, ids, (int)n, o->max_tokens, &text, err);
        if (st == CT_OK) {
            bool ok = same_answer(text, answer);
            hits += ok;
            if ((int)i < o->show)
                printf("[%zu] %s\n  model:     %s\n  reference: %s\n", i + 1, ok ? "match" : "MISS", text, answer);
        } else {
            ct_error_context(err, "%s:%u", o->data, ds.records[i].line);
        }
        free(text);
        free(ids);
        cJSON_Delete(prompt);
    }
    if (st == CT_OK) {
        double pct = total ? 100.0 * (double)hits / (double)total : 0;
        if (o->json)
            printf("{\"exact_match\": %zu, \"total\": %zu, \"accuracy\": %.4f}\n", hits, total, pct / 100);
        else
            printf("Exact match: %zu/%zu (%.1f%%)\n", hits, total, pct);
    }
    if (chat.template)
        ct_chat_close(&chat);
    ct_sampler_free(&smp);
    ct_dataset_free(&ds);
    return st;
}

int cmd_evaluate(int argc, char **argv) {
    eval_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err;
    char path[4096];
    if (ct_hub_model_path(o.model, path, sizeof path, &err) != CT_OK)
        return cli_report(&err);
    ct_backend *be;
    if (ct_backend_cpu_create(&be, &err) != CT_OK)
        return cli_report(&err);
    ct_model m;
    ct_tokenizer *tok = NULL;
    ct_tuned_model *adapters = NULL;
    ct_status st = ct_model_load(&m, path, be, &err);
    bool loaded = st == CT_OK;
    if (st == CT_OK && o.adapter)
        st = ct_model_apply_adapters(&m, o.adapter, &adapters, &err);
    if (st == CT_OK)
        st = ct_tokenizer_load(&tok, path, &err);
    if (st == CT_OK)
        st = run(&o, &m, tok, &err);
    if (tok)
        ct_tokenizer_free(tok);
    ct_tuned_model_free(adapters);
    if (loaded)
        ct_model_free(&m);
    ct_backend_destroy(be);
    return st == CT_OK ? 0 : cli_report(&err);
}
