// The training loop on a toy target: a bigram model (logits = W[previous token])
// whose loss and gradient are exact, so the loop's bookkeeping is what is tested:
// loss falls, report lines, metrics and loss curve, checkpoints, and that a run
// resumed from a checkpoint ends bit-identical to an uninterrupted one.
#include <math.h>
#include <stdlib.h>

#include "ctune/fs.h"
#include "ctune/safetensors.h"
#include "ctune/trainer.h"
#include "harness.h"

enum { V = 8 };

typedef struct bigram {
    float w[V * V], g[V * V];
    ct_optim_param param;
    const char *name;
} bigram;

static ct_status bigram_loss(void *ctx, const ct_batch *b, bool grad, uint64_t seed, double *loss, int64_t *ntok,
                             ct_error *err) {
    bigram *m = ctx;
    double sum = 0;
    int64_t n = 0;
    float dl[V * V] = {0};
    for (size_t r = 0; r < b->rows; r++) {
        for (size_t t = 0; t + 1 < b->width; t++) {
            if (b->mask[r * (b->width - 1) + t] == 0)
                continue;
            int prev = b->tokens[r * b->width + t], next = b->tokens[r * b->width + t + 1];
            const float *row = m->w + prev * V;
            double mx = row[0], z = 0;
            for (int v = 1; v < V; v++)
                mx = fmax(mx, row[v]);
            for (int v = 0; v < V; v++)
                z += exp(row[v] - mx);
            sum += mx + log(z) - row[next];
            for (int v = 0; v < V; v++)
                dl[prev * V + v] += (float)(exp(row[v] - mx) / z) - (v == next);
            n++;
        }
    }
    *loss = n ? sum / (double)n : NAN;
    *ntok = n;
    if (grad)
        for (int i = 0; i < V * V; i++)
            m->g[i] += dl[i] / (float)n;
    return CT_OK;
}

static ct_status bigram_save(void *ctx, const char *path, ct_error *err) {
    bigram *m = ctx;
    ct_tensor_view v = {m->name, CT_F32, 2, {V, V}, m->w, sizeof m->w};
    return ct_safetensors_write(path, &v, 1, NULL, 0, err);
}

static ct_status bigram_load(void *ctx, const char *path, ct_error *err) {
    bigram *m = ctx;
    ct_safetensors st;
    CT_TRY(ct_safetensors_open(&st, path, err));
    const ct_tensor_view *v = ct_safetensors_find(&st, m->name);
    ct_status rc = v && v->nbytes == sizeof m->w ? CT_OK : ct_fail(err, CT_ERR_FORMAT, "%s: bad tensor", path);
    if (rc == CT_OK)
        memcpy(m->w, v->data, sizeof m->w);
    ct_safetensors_close(&st);
    return rc;
}

static void make_target(bigram *m, ct_train_target *t) {
    memset(m, 0, sizeof *m);
    m->name = "model.bigram.weight";
    m->param = (ct_optim_param){m->w, m->g, 2, V, V};
    *t = (ct_train_target){m, 1, &m->param, &m->name, bigram_loss, bigram_save, bigram_load};
}

// Sequences that cycle 1,2,3,... (mod V, skipping 0 = pad) with varying lengths.
static void make_examples(ct_examples *ex, int n, int seed) {
    memset(ex, 0, sizeof *ex);
    ex->tokens = malloc(4096 * sizeof(int32_t));
    ex->items = calloc((size_t)n, sizeof *ex->items);
    ex->n = ex->cap = (size_t)n;
    ex->cap_tokens = 4096;
    for (int i = 0; i < n; i++) {
        int len = 5 + (i * 7 + seed) % 11, start = (i + seed) % (V - 1);
        ex->items[i] = (ct_example){ex->n_tokens, (uint32_t)len, 0, 0, (uint32_t)i + 1};
        for (int k = 0; k < len; k++)
            ex->tokens[ex->n_tokens++] = 1 + (start + k) % (V - 1);
    }
}

static ct_train_options options(const char *dir, FILE *out) {
    ct_train_options o = {0};
    o.iters = 20;
    o.batch_size = 4;
    o.val_batches = -1;
    o.steps_per_report = 5;
    o.steps_per_eval = 10;
    o.save_every = 5;
    o.grad_accumulation_steps = 1;
    o.max_seq_length = 64;
    o.seed = 3;
    o.optim = ct_optim_defaults(CT_OPT_ADAM);
    o.schedule = ct_schedule_constant(0.1);
    o.adapter_path = dir;
    o.out = out;
    return o;
}

static const char *fresh_dir(const char *name) {
    static char path[8][1024];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 1024, "%s/%s", ct_test_tmpdir(), name);
    ct_error err;
    ct_mkdir_p(p, &err);
    return p;
}

TEST(trainer_loss_falls_and_reports) {
    bigram m;
    ct_train_target t;
    make_target(&m, &t);
    ct_examples tr, va;
    make_examples(&tr, 24, 0);
    make_examples(&va, 8, 5);
    const char *dir = fresh_dir("run1");
    char log_path[1100];
    snprintf(log_path, sizeof log_path, "%s/out.txt", dir);
    FILE *out = fopen(log_path, "w");
    ct_train_options o = options(dir, out);
    ct_train_result r;
    ct_error err;
    CHECK_OK(ct_train(&t, &tr, &va, &o, &r, &err), &err);
    fclose(out);
    CHECK_EQ(r.iterations, 20);
    CHECK(r.last_val_loss < 0.5 * r.first_val_loss);
    CHECK_NEAR(r.first_val_loss, log(V), 1e-6); // W = 0 at the start: uniform
    char *text;
    CHECK_OK(ct_read_file(log_path, &text, NULL, &err), &err);
    CHECK_CONTAINS(text, "Iter 1: Val loss 2.079, Val took ");
    CHECK_CONTAINS(text, "Iter 5: Train loss ");
    CHECK_CONTAINS(text, ", Learning Rate 1.000e-01, It/sec ");
    CHECK_CONTAINS(text, "Iter 20: Val loss ");
    free(text);
    char p[1200];
    snprintf(p, sizeof p, "%s/0000010_adapters.safetensors", dir);
    CHECK(ct_path_exists(p));
    snprintf(p, sizeof p, "%s/0000020_state.safetensors", dir);
    CHECK(ct_path_exists(p));
    snprintf(p, sizeof p, "%s/loss_curve.svg", dir);
    CHECK_OK(ct_read_file(p, &text, NULL, &err), &err);
    CHECK_CONTAINS(text, "<polyline");
    free(text);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    CHECK_OK(ct_read_file(p, &text, NULL, &err), &err);
    CHECK_CONTAINS(text, "\"train_loss\"");
    free(text);
    CHECK_EQ(ct_train_latest_checkpoint(dir), 20);
    ct_examples_free(&tr);
    ct_examples_free(&va);
}

static void resume_case(int accum, ct_optim_kind kind) {
    ct_error err;
    ct_examples tr, va;
    make_examples(&tr, 24, 0);
    make_examples(&va, 8, 5);
    FILE *devnull = fopen("/dev/null", "w");
    bigram a, b;
    ct_train_target ta, tb;
    ct_train_result r;
    // Uninterrupted.
    make_target(&a, &ta);
    char name[64];
    snprintf(name, sizeof name, "full-%d-%d", accum, kind);
    ct_train_options o = options(fresh_dir(name), devnull);
    o.grad_accumulation_steps = accum;
    o.optim = ct_optim_defaults(kind);
    double args[2] = {0.1, 20};
    ct_schedule_from_config(&o.schedule, "cosine_decay", args, 2, 3, 0.0, &err);
    CHECK_OK(ct_train(&ta, &tr, &va, &o, &r, &err), &err);
    // Stopped after iteration 12 (checkpoint at 10), then resumed in a new process state.
    make_target(&b, &tb);
    snprintf(name, sizeof name, "resumed-%d-%d", accum, kind);
    o.adapter_path = fresh_dir(name);
    o.iters = 12;
    CHECK_OK(ct_train(&tb, &tr, &va, &o, &r, &err), &err);
    make_target(&b, &tb); // fresh weights: everything must come from the checkpoint
    o.iters = 20;
    o.resume = true;
    CHECK_OK(ct_train(&tb, &tr, &va, &o, &r, &err), &err);
    CHECK_EQ(r.iterations, 20);
    CHECK_MSG(memcmp(a.w, b.w, sizeof a.w) == 0, "accum %d %s: resumed weights differ (w[9] %.9g vs %.9g)", accum,
              ct_optim_kind_name(kind), a.w[9], b.w[9]);
    fclose(devnull);
    ct_examples_free(&tr);
    ct_examples_free(&va);
}

TEST(trainer_resume_equals_uninterrupted_adam) { resume_case(1, CT_OPT_ADAM); }
TEST(trainer_resume_equals_uninterrupted_accumulating_adamw) { resume_case(3, CT_OPT_ADAMW); }
TEST(trainer_resume_equals_uninterrupted_adafactor) { resume_case(2, CT_OPT_ADAFACTOR); }

TEST(trainer_resume_without_checkpoint_fails) {
    bigram m;
    ct_train_target t;
    make_target(&m, &t);
    ct_examples tr;
    make_examples(&tr, 8, 0);
    ct_train_options o = options(fresh_dir("empty"), stdout);
    o.resume = true;
    ct_train_result r;
    ct_error err;
    CHECK_FAILS(ct_train(&t, &tr, NULL, &o, &r, &err), &err, "--resume: no checkpoint");
    ct_examples_free(&tr);
}

TEST(trainer_nan_loss_stops_with_message) {
    bigram m;
    ct_train_target t;
    make_target(&m, &t);
    ct_examples tr;
    make_examples(&tr, 8, 0);
    ct_train_options o = options(fresh_dir("nan"), stdout);
    for (int i = 0; i < V * V; i++)
        m.w[i] = NAN; // a diverged model
    ct_train_result r;
    ct_error err;
    CHECK_FAILS(ct_train(&t, &tr, NULL, &o, &r, &err), &err, "the training loss is");
    ct_examples_free(&tr);
}
