// ctune generate: text generation with a model, like mlx_lm.generate. The
// prompt goes through the chat template when the tokenizer has one (unless
// --ignore-chat-template), the text is streamed as it is produced, then the
// prompt and generation speeds and the peak memory are printed.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/chat.h"
#include "ctune/generation.h"
#include "ctune/log.h"
#include "ctune/model.h"
#include "ctune/tuned_model.h"
#include "ctune/sample.h"
#include "ctune/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune generate --model M [--prompt P | --prompt-ids IDS] [options]\n"
               "  --model M               model folder or .gguf file\n"
               "  --adapter-path A        adapter folder to apply (mlx-lm or PEFT layout)\n"
               "  --prompt P              the user message (default \"hello\"; \"-\" reads stdin)\n"
               "  --prompt-ids IDS        comma-separated token ids instead of a text prompt\n"
               "  --system-prompt S       a system message for the chat template\n"
               "  --ignore-chat-template  encode the prompt as plain text\n"
               "  --max-tokens N          tokens to generate (default 100)\n"
               "  --temp T                sampling temperature (default 0: greedy)\n"
               "  --top-p P               nucleus sampling mass (default 1: off)\n"
               "  --min-p P               minimum probability relative to the top token (default 0: off)\n"
               "  --top-k K               keep the K most likely tokens (default 0: off)\n"
               "  --repetition-penalty R  penalty on the last 20 tokens (default 1: off)\n"
               "  --seed S                random seed (default 0)\n"
               "  --print-ids             print the generated token ids after the text\n");
}

typedef struct gen_opts {
    const char *model, *adapter, *prompt, *prompt_ids, *system;
    bool ignore_template, print_ids;
    int max_tokens;
    ct_sampler_params sp;
} gen_opts;

static int parse_number(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || d < lo || d > hi)
        return cli_usage_error("generate", "%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    *out = d;
    return 0;
}

static int parse_args(int argc, char **argv, gen_opts *o) {
    o->prompt = "hello";
    o->max_tokens = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--ignore-chat-template")) {
            o->ignore_template = true;
            continue;
        }
        if (!strcmp(a, "--print-ids")) {
            o->print_ids = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc)
            return cli_usage_error("generate", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        double d = 0;
        int rc = 0;
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--adapter-path"))
            o->adapter = v;
        else if (!strcmp(a, "--prompt") || !strcmp(a, "-p"))
            o->prompt = v;
        else if (!strcmp(a, "--prompt-ids"))
            o->prompt_ids = v;
        else if (!strcmp(a, "--system-prompt"))
            o->system = v;
        else if (!strcmp(a, "--max-tokens") || !strcmp(a, "-m"))
            rc = parse_number(a, v, 0, 1e9, &d), o->max_tokens = (int)d;
        else if (!strcmp(a, "--temp"))
            rc = parse_number(a, v, 0, 1e6, &d), o->sp.temp = (float)d;
        else if (!strcmp(a, "--top-p"))
            rc = parse_number(a, v, 0, 1, &d), o->sp.top_p = (float)d;
        else if (!strcmp(a, "--min-p"))
            rc = parse_number(a, v, 0, 1, &d), o->sp.min_p = (float)d;
        else if (!strcmp(a, "--top-k"))
            rc = parse_number(a, v, 0, 1e9, &d), o->sp.top_k = (int)d;
        else if (!strcmp(a, "--repetition-penalty"))
            rc = parse_number(a, v, 0, 1e6, &d), o->sp.repetition_penalty = (float)d;
        else if (!strcmp(a, "--seed"))
            rc = parse_number(a, v, 0, 1.8e19, &d), o->sp.seed = (uint64_t)d;
        else
            return cli_usage_error("generate", "unknown option '%s'", a);
        if (rc)
            return rc;
    }
    if (!o->model)
        return cli_usage_error("generate", "--model is required");
    return 0;
}

static ct_status parse_ids(const char *s, int32_t **ids, int *n, ct_error *err) {
    *n = 0;
    *ids = malloc(sizeof(int32_t) * (strlen(s) / 2 + 1));
    if (!*ids)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX)
            return ct_fail(err, CT_ERR_INVALID, "--prompt-ids: bad id at '%s'", s);
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    if (*n == 0)
        return ct_fail(err, CT_ERR_INVALID, "--prompt-ids: no ids");
    return CT_OK;
}

// The chat template rendered with [system], user prompt and the generation prompt.
static ct_status render_chat(ct_tokenizer *tok, const gen_opts *o, char **out, ct_error *err) {
    ct_chat chat;
    CT_TRY(ct_chat_open(&chat, tok, NULL, err));
    cJSON *msgs = cJSON_CreateArray();
    if (o->system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", o->system);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", o->prompt);
    cJSON_AddItemToArray(msgs, m);
    ct_status st = ct_chat_render(&chat, msgs, NULL, true, out, err);
    cJSON_Delete(msgs);
    ct_chat_close(&chat);
    return st;
}

// Prompt text -> ids, as mlx_lm: the chat template when there is one; special
// tokens (BOS) are added unless the rendered text already starts with BOS.
static ct_status encode_prompt(ct_tokenizer *tok, const gen_opts *o, int32_t **ids, int *n, ct_error *err) {
    bool use_template = !o->ignore_template && ct_tokenizer_chat_template(tok, NULL);
    char *text = NULL;
    if (use_template)
        CT_TRY(render_chat(tok, o, &text, err));
    const char *p = text ? text : o->prompt;
    const ct_tokenizer_specials *sp = ct_tokenizer_get_specials(tok);
    bool add_special = !sp->bos_token || strncmp(p, sp->bos_token, strlen(sp->bos_token)) != 0;
    size_t len;
    ct_status st = ct_tokenizer_encode(tok, p, strlen(p), add_special, ids, &len, err);
    free(text);
    *n = (int)len;
    if (st == CT_OK && len == 0)
        st = ct_fail(err, CT_ERR_INVALID, "the prompt encodes to no tokens");
    return st;
}

typedef struct streamer {
    const ct_tokenizer *tok;
    size_t printed; // bytes of the decoded text already written
} streamer;

// Decodes all generated ids and prints what is new, holding back an incomplete UTF-8 tail.
static ct_status stream_text(void *ctx, const int32_t *ids, int n, bool final, ct_error *err) {
    streamer *s = ctx;
    if (!s->tok)
        return CT_OK;
    char *text;
    CT_TRY(ct_tokenizer_decode(s->tok, ids, (size_t)n, true, &text, err));
    size_t len = strlen(text);
    bool partial = len >= 3 && !memcmp(text + len - 3, "\xEF\xBF\xBD", 3);
    if ((final || !partial) && len > s->printed) {
        fwrite(text + s->printed, 1, len - s->printed, stdout);
        fflush(stdout);
        s->printed = len;
    }
    free(text);
    return CT_OK;
}

static ct_status generate(ct_model *m, ct_tokenizer *tok, const gen_opts *o, const int32_t *prompt, int np,
                          int32_t *out, ct_generation *g, ct_error *err) {
    ct_sampler smp;
    CT_TRY(ct_sampler_init(&smp, &o->sp, m->V, err));
    const ct_tokenizer_specials *sp = tok ? ct_tokenizer_get_specials(tok) : NULL;
    streamer sr = {.tok = tok};
    ct_status st = ct_model_generate(m, &smp, prompt, np, o->max_tokens, sp ? sp->eos_ids : NULL, sp ? sp->n_eos : 0,
                                     out, g, stream_text, &sr, err);
    ct_sampler_free(&smp);
    return st;
}

static ct_status run(const gen_opts *o, ct_error *err) {
    ct_backend *be;
    CT_TRY(ct_backend_cpu_create(&be, err));
    ct_model m;
    ct_tokenizer *tok = NULL;
    int32_t *prompt = NULL, *out = NULL;
    int np = 0;
    ct_generation gs = {0};
    ct_tuned_model *adapters = NULL;
    ct_status st = ct_model_load(&m, o->model, be, err);
    if (st != CT_OK) {
        ct_backend_destroy(be);
        return st;
    }
    if (o->adapter)
        st = ct_model_apply_adapters(&m, o->adapter, &adapters, err);
    if (st != CT_OK) {
    } else if (o->prompt_ids) {
        st = parse_ids(o->prompt_ids, &prompt, &np, err);
        if (ct_tokenizer_load(&tok, o->model, err) != CT_OK)
            tok = NULL; // ids in, ids out: a tokenizer only adds the text
    } else {
        st = ct_tokenizer_load(&tok, o->model, err);
        if (st == CT_OK)
            st = encode_prompt(tok, o, &prompt, &np, err);
    }
    out = malloc(sizeof(int32_t) * (size_t)(o->max_tokens + 1));
    if (st == CT_OK) {
        printf("==========\n");
        st = generate(&m, tok, o, prompt, np, out, &gs, err);
    }
    if (st == CT_OK) {
        printf("\n==========\n");
        if (o->print_ids) {
            printf("ids:");
            for (int i = 0; i < gs.n; i++)
                printf(" %d", out[i]);
            printf("\n");
        }
        printf("Prompt: %d tokens, %.3f tokens-per-sec\n", np, np / (gs.prompt_s > 0 ? gs.prompt_s : 1e-9));
        printf("Generation: %d tokens, %.3f tokens-per-sec\n", gs.n, gs.n / (gs.gen_s > 0 ? gs.gen_s : 1e-9));
        printf("Peak memory: %.3f GB\n", (double)ct_peak_rss_bytes() / 1e9);
    }
    free(prompt);
    free(out);
    if (tok)
        ct_tokenizer_free(tok);
    ct_tuned_model_free(adapters);
    ct_model_free(&m);
    ct_backend_destroy(be);
    return st;
}

int cmd_generate(int argc, char **argv) {
    gen_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    return run(&o, &err) == CT_OK ? 0 : cli_report(&err);
}
