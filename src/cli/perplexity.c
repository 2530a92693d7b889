// ctune perplexity: a model's perplexity on a text file. The file is
// tokenized once (with BOS if the tokenizer adds it), cut into
// non-overlapping windows of --sequence-length tokens (a shorter tail is
// dropped), and exp(mean negative log-likelihood) is taken over every
// predicted position of every window. With --reference R, also the mean
// KL(p_R || p_model) in nats over the same positions: how far a quantized or
// fine-tuned model's next-token distributions moved from R's.
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
               "  --reference R           also the mean KL divergence KL(R || model) per predicted token\n"
               "                          (R: a model folder or .gguf with the same vocabulary)\n"
               "  --json                  print {\"perplexity\": X, \"tokens\": N[, \"mean_kl\": K]}\n");
}

typedef struct ppl_opts {
    const char *model, *adapter, *data, *reference;
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
        } else if (!strcmp(a, "--reference")) {
            o->reference = v;
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

// log-softmax of logits (V) into out (V), in double.
static void log_softmax(const float *logits, int V, double *out) {
    double mx = logits[0], z = 0;
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < V; i++)
        z += exp((double)logits[i] - mx);
    double lz = mx + log(z);
    for (int i = 0; i < V; i++)
        out[i] = (double)logits[i] - lz;
}

// Full-sequence logits (T, V) of ids (T) on the host (a copy of the device's).
static ct_status window_logits(ct_model *m, ct_kv_cache *kv, const int32_t *ids, int T, float *host, ct_error *err) {
    const float *logits;
    ct_kv_cache_reset(kv);
    CT_TRY(ct_model_forward(m, kv, ids, 1, T, false, &logits, err));
    m->be->download(m->be, host, logits, sizeof(float) * (size_t)T * (size_t)m->V);
    return CT_OK;
}

// Adds to *kl_sum the KL(p_ref || p_m) of the first T-1 positions of ids (T),
// the positions whose next token the perplexity predicts, and to *nll_sum
// their negative log-likelihood under m (one forward of each model).
static ct_status window_kl(ct_model *m, ct_kv_cache *kv, ct_model *ref, ct_kv_cache *rkv, const int32_t *ids, int T,
                           float *lm, float *lr, double *lp, double *lq, double *kl_sum, double *nll_sum,
                           ct_error *err) {
    CT_TRY(window_logits(m, kv, ids, T, lm, err));
    CT_TRY(window_logits(ref, rkv, ids, T, lr, err));
    int V = m->V;
    for (int t = 0; t + 1 < T; t++) {
        log_softmax(lr + (size_t)t * (size_t)V, V, lp);
        log_softmax(lm + (size_t)t * (size_t)V, V, lq);
        double kl = 0;
        for (int i = 0; i < V; i++)
            kl += exp(lp[i]) * (lp[i] - lq[i]);
        *kl_sum += kl;
        *nll_sum -= lq[ids[t + 1]];
    }
    return CT_OK;
}

typedef struct kl_state {
    ct_model *ref;
    ct_kv_cache rkv;  // the reference's (the model uses evaluate's)
    float *lm, *lr;   // (T, V) logits of the model and the reference
    double *lp, *lq;  // (V) log-probabilities of one position
    double sum;       // KL summed over positions
} kl_state;

static ct_status kl_init(kl_state *k, ct_model *m, ct_model *ref, int T, ct_error *err) {
    k->ref = ref;
    CT_TRY(ct_kv_cache_init(&k->rkv, ref, 1, T, err));
    size_t tv = (size_t)T * (size_t)m->V;
    k->lm = malloc(sizeof(float) * tv);
    k->lr = malloc(sizeof(float) * tv);
    k->lp = malloc(sizeof(double) * (size_t)m->V);
    k->lq = malloc(sizeof(double) * (size_t)m->V);
    if (!k->lm || !k->lr || !k->lp || !k->lq)
        return ct_fail(err, CT_ERR_NOMEM, "perplexity: out of memory for %d x %d logits", T, m->V);
    return CT_OK;
}

static void kl_free(kl_state *k) {
    if (k->rkv.k)
        ct_kv_cache_free(&k->rkv, k->ref);
    free(k->lm);
    free(k->lr);
    free(k->lp);
    free(k->lq);
}

static ct_status evaluate(ct_model *m, const int32_t *ids, size_t n, const ppl_opts *o, kl_state *kl, double *ppl,
                          int64_t *count, ct_error *err) {
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
        const int32_t *win = ids + (size_t)w * (size_t)o->seq_len;
        if (kl->ref) {
            s = 0;
            k = o->seq_len - 1;
            st = window_kl(m, &kv, kl->ref, &kl->rkv, win, (int)o->seq_len, kl->lm, kl->lr, kl->lp, kl->lq,
                           &kl->sum, &s, err);
        } else {
            st = ct_model_sequence_nll(m, &kv, win, (int)o->seq_len, &s, &k, err);
        }
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
    ct_model m = {0}, ref = {0};
    kl_state kl = {0};
    ct_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    ct_tuned_model *adapters = NULL;
    st = ct_model_load(&m, o->model, be, err);
    if (st == CT_OK && o->adapter)
        st = ct_model_apply_adapters(&m, o->adapter, &adapters, err);
    if (st == CT_OK && o->reference) {
        st = ct_model_load(&ref, o->reference, be, err);
        if (st == CT_OK && ref.V != m.V)
            st = ct_fail(err, CT_ERR_INVALID, "--reference %s: vocabulary of %d tokens, but %s has %d", o->reference,
                         ref.V, o->model, m.V);
        if (st == CT_OK)
            st = kl_init(&kl, &m, &ref, (int)o->seq_len, err);
    }
    if (st == CT_OK)
        st = ct_tokenizer_load(&tok, o->model, err);
    if (st == CT_OK)
        st = ct_tokenizer_encode(tok, text, len, true, &ids, &n, err);
    double ppl = 0;
    int64_t count = 0;
    if (st == CT_OK)
        st = evaluate(&m, ids, n, o, &kl, &ppl, &count, err);
    double mean_kl = count ? kl.sum / (double)count : 0;
    if (st == CT_OK && o->json && o->reference)
        printf("{\"perplexity\": %.9g, \"tokens\": %lld, \"mean_kl\": %.9g}\n", ppl, (long long)count, mean_kl);
    else if (st == CT_OK && o->json)
        printf("{\"perplexity\": %.9g, \"tokens\": %lld}\n", ppl, (long long)count);
    else if (st == CT_OK)
        printf("Perplexity: %.3f (%lld predicted tokens)\n", ppl, (long long)count);
    if (st == CT_OK && o->reference && !o->json)
        printf("Mean KL(reference || model): %.6f nats per token\n", mean_kl);
    free(ids);
    free(text);
    if (tok)
        ct_tokenizer_free(tok);
    ct_tuned_model_free(adapters);
    kl_free(&kl);
    if (ref.be)
        ct_model_free(&ref);
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
