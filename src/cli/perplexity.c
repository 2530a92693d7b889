// ctune perplexity: a model's perplexity on a text file. The file is
// tokenized once (with BOS if the tokenizer adds it), cut into
// non-overlapping windows of --sequence-length tokens (a shorter tail is
// dropped), and exp(mean negative log-likelihood) is taken over every
// predicted position of every window.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/fs.h"
#include "ctune/model.h"
#include "ctune/tuned_model.h"
#include "ctune/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune perplexity --model M --data FILE [options]\n"
               "  --model M               model folder or .gguf file\n"
               "  --adapter-path A        adapter folder to apply (mlx-lm or PEFT layout)\n"
               "  --data FILE             a UTF-8 text file\n"
               "  --sequence-length L     tokens per window (default 512)\n"
               "  --num-samples N         evaluate the first N windows (default all)\n"
               "  --json                  print {\"perplexity\": X, \"tokens\": N}\n");
}

typedef struct ppl_opts {
    const char *model, *adapter, *data;
    long seq_len, num_samples;
    bool json;
} ppl_opts;

static int parse_args(int argc, char **argv, ppl_opts *o) {
    o->seq_len = 512;
    o->num_samples = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc)
            return cli_usage_error("perplexity", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        char *end;
        if (!strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--adapter-path")) {
            o->adapter = v;
        } else if (!strcmp(a, "--data")) {
            o->data = v;
        } else if (!strcmp(a, "--sequence-length") || !strcmp(a, "--num-samples")) {
            long n = strtol(v, &end, 10);
            if (!*v || *end || (n < 2 && a[2] == 's') || (n < 1 && n != -1))
                return cli_usage_error("perplexity", "%s: '%s' is not a valid count", a, v);
            *(a[2] == 's' ? &o->seq_len : &o->num_samples) = n;
        } else {
            return cli_usage_error("perplexity", "unknown option '%s'", a);
        }
    }
    if (!o->model || !o->data)
        return cli_usage_error("perplexity", "--model and --data are required");
    return 0;
}

static ct_status evaluate(ct_model *m, const int32_t *ids, size_t n, const ppl_opts *o, double *ppl, int64_t *count,
                          ct_error *err) {
    long windows = (long)(n / (size_t)o->seq_len);
    if (o->num_samples > 0 && o->num_samples < windows)
        windows = o->num_samples;
    if (windows == 0)
        return ct_fail(err, CT_ERR_INVALID, "%s: %zu tokens, fewer than one window of %ld", o->data, n, o->seq_len);
    ct_kv_cache kv;
    CT_TRY(ct_kv_cache_init(&kv, m, 1, (int)o->seq_len, err));
    double sum = 0;
    *count = 0;
    ct_status st = CT_OK;
    for (long w = 0; st == CT_OK && w < windows; w++) {
        double s;
        int64_t k;
        st = ct_model_sequence_nll(m, &kv, ids + (size_t)w * (size_t)o->seq_len, (int)o->seq_len, &s, &k, err);
        sum += s;
        *count += k;
    }
    ct_kv_cache_free(&kv, m);
    *ppl = exp(sum / (double)*count);
    return st;
}

static ct_status run(const ppl_opts *o, ct_error *err) {
    char *text;
    size_t len;
    CT_TRY(ct_read_file(o->data, &text, &len, err));
    ct_backend *be;
    ct_status st = ct_backend_cpu_create(&be, err);
    if (st != CT_OK) {
        free(text);
        return st;
    }
    ct_model m = {0};
    ct_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    ct_tuned_model *adapters = NULL;
    st = ct_model_load(&m, o->model, be, err);
    if (st == CT_OK && o->adapter)
        st = ct_model_apply_adapters(&m, o->adapter, &adapters, err);
    if (st == CT_OK)
        st = ct_tokenizer_load(&tok, o->model, err);
    if (st == CT_OK)
        st = ct_tokenizer_encode(tok, text, len, true, &ids, &n, err);
    double ppl = 0;
    int64_t count = 0;
    if (st == CT_OK)
        st = evaluate(&m, ids, n, o, &ppl, &count, err);
    if (st == CT_OK && o->json)
        printf("{\"perplexity\": %.9g, \"tokens\": %lld}\n", ppl, (long long)count);
    else if (st == CT_OK)
        printf("Perplexity: %.3f (%lld predicted tokens)\n", ppl, (long long)count);
    free(ids);
    free(text);
    if (tok)
        ct_tokenizer_free(tok);
    ct_tuned_model_free(adapters);
    if (m.be)
        ct_model_free(&m);
    ct_backend_destroy(be);
    return st;
}

int cmd_perplexity(int argc, char **argv) {
    ppl_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    return run(&o, &err) == CT_OK ? 0 : cli_report(&err);
}
