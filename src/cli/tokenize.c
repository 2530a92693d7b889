// ctune tokenize: encode text or decode ids with a model's tokenizer.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/fs.h"
#include "ctune/chat.h"
#include "ctune/hub.h"
#include "ctune/json.h"
#include "ctune/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune tokenize (--model DIR | --tokenizer FILE) (--text T | --file F | --decode IDS | --chat F |\n"
               "       --print-template)\n"
               "  --model DIR             model folder (tokenizer.json, tokenizer_config.json, ...)\n"
               "  --tokenizer FILE        a tokenizer.json file\n"
               "  --text T                text to encode\n"
               "  --file F                encode the contents of file F\n"
               "  --lines                 with --file: encode each line separately, one line of ids each\n"
               "  --decode IDS            decode comma- or space-separated ids\n"
               "  --no-special            encode without the post-processor's special tokens (BOS...);\n"
               "                          decode skipping special tokens\n"
               "  --json                  print {\"ids\": [...], \"tokens\": [...], \"text\": ...}\n"
               "  --chat FILE.json        render a conversation through the chat template and encode it\n"
               "  --add-generation-prompt with --chat: end with the assistant prompt\n"
               "  --print-template        print the chat template as the tokenizer has it\n");
}

typedef struct opts {
    const char *model, *tokenizer, *text, *file, *decode, *chat;
    bool json, lines, no_special, gen_prompt, print_template;
} opts;

static int parse_args(int argc, char **argv, opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--model")       ? &o->model
                           : !strcmp(a, "--tokenizer") ? &o->tokenizer
                           : !strcmp(a, "--text")      ? &o->text
                           : !strcmp(a, "--file")      ? &o->file
                           : !strcmp(a, "--decode")    ? &o->decode
                           : !strcmp(a, "--chat")      ? &o->chat
                                                       : NULL;
        if (dst) {
            if (i + 1 >= argc)
                return cli_usage_error("tokenize", "%s needs a value", a);
            *dst = argv[++i];
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--lines")) {
            o->lines = true;
        } else if (!strcmp(a, "--no-special")) {
            o->no_special = true;
        } else if (!strcmp(a, "--add-generation-prompt")) {
            o->gen_prompt = true;
        } else if (!strcmp(a, "--print-template")) {
            o->print_template = true;
        } else {
            return cli_usage_error("tokenize", "unknown option '%s'", a);
        }
    }
    if (!o->model == !o->tokenizer)
        return cli_usage_error("tokenize", "give exactly one of --model or --tokenizer");
    if ((o->text != NULL) + (o->file != NULL) + (o->decode != NULL) + (o->chat != NULL) + o->print_template != 1)
        return cli_usage_error("tokenize", "give exactly one of --text, --file, --decode, --chat or --print-template");
    if (o->lines && !o->file)
        return cli_usage_error("tokenize", "--lines needs --file");
    return 0;
}

static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16;
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    while (*ids && *s) {
        while (*s == ',' || *s == ' ' || *s == '\n' || *s == '[' || *s == ']')
            s++;
        if (!*s)
            break;
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX) {
            free(*ids);
            return cli_usage_error("tokenize", "--decode: '%s' is not a list of ids", s);
        }
        if (*n == cap) {
            int32_t *p = realloc(*ids, (cap *= 2) * sizeof **ids);
            if (!p)
                break;
            *ids = p;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 0;
}

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

static int print_json(const ct_tokenizer *t, const int32_t *ids, size_t n, const char *text) {
    cJSON *o = cJSON_CreateObject(), *ja = cJSON_AddArrayToObject(o, "ids"), *ta = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) {
        const char *tok = ct_tokenizer_id_to_token(t, ids[i]);
        cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
        cJSON_AddItemToArray(ta, tok ? cJSON_CreateString(tok) : cJSON_CreateNull());
    }
    cJSON_AddStringToObject(o, "text", text);
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}

static int encode_lines(ct_tokenizer *t, const char *text, size_t len, bool special) {
    ct_error err;
    for (size_t a = 0;;) { // every line, the last one even if empty (like Python's split("\\n"))
        const char *nl = memchr(text + a, '\n', len - a);
        size_t b = nl ? (size_t)(nl - text) : len;
        int32_t *ids;
        size_t n;
        if (ct_tokenizer_encode(t, text + a, b - a, special, &ids, &n, &err) != CT_OK)
            return ct_error_context(&err, "line starting at byte %zu", a), cli_report(&err);
        print_ids(ids, n);
        free(ids);
        if (!nl)
            break;
        a = b + 1;
    }
    return 0;
}

// --chat FILE.json: a list of messages, or {"messages": [...], "tools": [...]}.
static int encode_chat(ct_tokenizer *t, const opts *o) {
    ct_error err;
    cJSON *doc;
    if (ct_json_load_file(o->chat, &doc, &err) != CT_OK)
        return cli_report(&err);
    const cJSON *messages = cJSON_IsArray(doc) ? doc : cJSON_GetObjectItemCaseSensitive(doc, "messages");
    const cJSON *tools = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "tools") : NULL;
    ct_chat chat = {0};
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    if (!cJSON_IsArray(messages)) {
        ct_fail(&err, CT_ERR_FORMAT, "%s: expected a list of messages or {\"messages\": [...]}", o->chat);
        rc = cli_report(&err);
    } else if (ct_chat_open(&chat, t, NULL, &err) != CT_OK ||
               ct_chat_render(&chat, messages, tools, o->gen_prompt, &text, &err) != CT_OK ||
               ct_tokenizer_encode(t, text, strlen(text), false, &ids, &n, &err) != CT_OK) {
        ct_error_context(&err, "%s", o->chat);
        rc = cli_report(&err);
    } else if (o->json) {
        rc = print_json(t, ids, n, text);
    } else {
        fputs(text, stdout);
        if (!*text || text[strlen(text) - 1] != '\n')
            fputc('\n', stdout);
        print_ids(ids, n);
    }
    free(ids);
    free(text);
    ct_chat_close(&chat);
    cJSON_Delete(doc);
    return rc;
}

static int run(ct_tokenizer *t, const opts *o) {
    ct_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    char *buf = NULL, *out = NULL;
    size_t len = 0;
    int rc = 0;
    if (o->chat)
        return encode_chat(t, o);
    if (o->print_template) {
        const char *tpl = ct_tokenizer_chat_template(t, NULL);
        if (!tpl)
            return ct_fail(&err, CT_ERR_INVALID, "the tokenizer has no chat template"), cli_report(&err);
        fputs(tpl, stdout);
        return 0;
    }
    if (o->decode) {
        if ((rc = parse_ids(o->decode, &ids, &n)) != 0)
            return rc;
        if (ct_tokenizer_decode(t, ids, n, o->no_special, &out, &err) != CT_OK)
            rc = cli_report(&err);
        else if (o->json)
            rc = print_json(t, ids, n, out);
        else
            printf("%s\n", out);
        free(ids);
        free(out);
        return rc;
    }
    if (o->file && ct_read_file(o->file, &buf, &len, &err) != CT_OK)
        return cli_report(&err);
    const char *text = o->file ? buf : o->text;
    if (!o->file)
        len = strlen(text);
    if (o->lines) {
        rc = encode_lines(t, text, len, !o->no_special);
    } else if (ct_tokenizer_encode(t, text, len, !o->no_special, &ids, &n, &err) != CT_OK) {
        rc = cli_report(&err);
    } else if (o->json) {
        rc = print_json(t, ids, n, text);
    } else {
        print_ids(ids, n);
    }
    free(ids);
    free(buf);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    ct_tokenizer *t;
    ct_error err;
    char path[4096];
    if (o.model && ct_hub_model_path(o.model, path, sizeof path, &err) != CT_OK)
        return cli_report(&err);
    if (ct_tokenizer_load(&t, o.model ? path : o.tokenizer, &err) != CT_OK)
        return cli_report(&err);
    rc = run(t, &o);
    ct_tokenizer_free(t);
    return rc;
}
