// The training loop on a toy target: a bigram model (logits = W[previous token])
// whose loss and gradient are exact, so the loop's bookkeeping is what is tested:
// loss falls, report lines, metrics and loss curve, checkpoints, and that a run
// resumed from a checkpoint ends bit-identical to an uninterrupted one.
#include <math.h>
#include <pthread.h>
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

// ---- data parallel: two ranks as two threads of this process, summing through
// shared memory (comm.h's semantics without MPI), against one process with the
// same global batch. The ranks' token counts differ, so mlx-lm's mean of
// per-rank means would not match.

typedef struct thread_world {
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    double sum[V * V];
} thread_world;

typedef struct thread_rank {
    thread_world *world;
    int rank;
    ct_comm comm;
    bigram model;
    ct_train_target target;
    const ct_examples *train, *valid;
    ct_train_options opt;
    ct_train_result res;
    ct_error err;
    ct_status st;
} thread_rank;

static int tr_rank(const ct_comm *c) { return ((const thread_rank *)c->impl)->rank; }
static int tr_size(const ct_comm *c) { return 2; }

static ct_status tr_sum(ct_comm *c, void *buf, size_t n, bool f32, ct_error *err) {
    thread_rank *r = c->impl;
    thread_world *w = r->world;
    if (n > V * V)
        return ct_fail(err, CT_ERR_INVALID, "test comm: %zu elements", n);
    if (r->rank == 0)
        memset(w->sum, 0, sizeof w->sum);
    pthread_barrier_wait(&w->bar);
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++)
        w->sum[i] += f32 ? ((float *)buf)[i] : ((double *)buf)[i];
    pthread_mutex_unlock(&w->mu);
    pthread_barrier_wait(&w->bar);
    for (size_t i = 0; i < n; i++) {
        if (f32)
            ((float *)buf)[i] = (float)w->sum[i];
        else
            ((double *)buf)[i] = w->sum[i];
    }
    pthread_barrier_wait(&w->bar);
    return CT_OK;
}

static ct_status tr_sum_f32(ct_comm *c, float *buf, size_t n, ct_error *err) { return tr_sum(c, buf, n, true, err); }
static ct_status tr_sum_f64(ct_comm *c, double *buf, size_t n, ct_error *err) { return tr_sum(c, buf, n, false, err); }
static ct_status tr_barrier(ct_comm *c, ct_error *err) {
    pthread_barrier_wait(&((thread_rank *)c->impl)->world->bar);
    return CT_OK;
}
static void tr_finalize(ct_comm *c, bool abort) {}

static void *rank_main(void *arg) {
    thread_rank *r = arg;
    r->st = ct_train(&r->target, r->train, r->valid, &r->opt, &r->res, &r->err);
    return NULL;
}

// Trains both ranks (continuing from their current weights when opt.resume).
static void run_two_ranks(thread_rank rk[2], const ct_train_options *opt) {
    thread_world w;
    pthread_barrier_init(&w.bar, NULL, 2);
    pthread_mutex_init(&w.mu, NULL);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        rk[i].world = &w;
        rk[i].rank = i;
        rk[i].comm = (ct_comm){"threads", tr_rank, tr_size, tr_sum_f32, tr_sum_f64, tr_barrier, tr_finalize, &rk[i], 0,
                               {0, 0, 0}};
        rk[i].opt = *opt;
        rk[i].opt.comm = &rk[i].comm;
        pthread_create(&th[i], NULL, rank_main, &rk[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&w.bar);
    pthread_mutex_destroy(&w.mu);
}

static double max_rel_diff(const float *a, const float *b, int n) {
    double d = 0, s = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)a[i]));
    }
    return d / s;
}

static void data_parallel_case(int accum, bool resume) {
    ct_examples tr, va;
    make_examples(&tr, 24, 0);
    make_examples(&va, 8, 5);
    FILE *devnull = fopen("/dev/null", "w");
    char name[64];
    snprintf(name, sizeof name, "dp-single-%d-%d", accum, resume);
    ct_train_options o = options(fresh_dir(name), devnull);
    o.iters = 12;
    o.grad_accumulation_steps = accum;
    o.optim = ct_optim_defaults(CT_OPT_SGD);
    bigram one;
    ct_train_target t1;
    make_target(&one, &t1);
    ct_train_result r1;
    ct_error err;
    CHECK_OK(ct_train(&t1, &tr, &va, &o, &r1, &err), &err);
    static thread_rank rk[2]; // large: off the stack
    memset(rk, 0, sizeof rk);
    for (int i = 0; i < 2; i++) {
        make_target(&rk[i].model, &rk[i].target);
        rk[i].train = &tr;
        rk[i].valid = &va;
    }
    snprintf(name, sizeof name, "dp-two-%d-%d", accum, resume);
    o.adapter_path = fresh_dir(name);
    if (resume) { // stop after iteration 7 (checkpoint at 5, in the middle of an accumulation), then resume
        o.iters = 7;
        run_two_ranks(rk, &o);
        for (int i = 0; i < 2; i++)
            make_target(&rk[i].model, &rk[i].target);
        o.iters = 12;
        o.resume = true;
    }
    run_two_ranks(rk, &o);
    CHECK_MSG(rk[0].st == CT_OK && rk[1].st == CT_OK, "ranks failed: %s / %s", rk[0].err.msg, rk[1].err.msg);
    CHECK_MSG(memcmp(rk[0].model.w, rk[1].model.w, sizeof one.w) == 0, "the ranks' weights differ");
    double d = max_rel_diff(one.w, rk[0].model.w, V * V);
    CHECK_MSG(d < 1e-6, "accum %d: two ranks vs one process: max relative weight difference %.3g", accum, d);
    CHECK_NEAR(rk[0].res.last_train_loss, r1.last_train_loss, 1e-6 * r1.last_train_loss);
    CHECK_NEAR(rk[1].res.last_val_loss, r1.last_val_loss, 1e-6 * r1.last_val_loss);
    CHECK_EQ(rk[1].res.trained_tokens, r1.trained_tokens);
    CHECK(rk[0].comm.stats.bytes_reduced > 0 && rk[0].comm.stats.bytes_reduced == rk[1].comm.stats.bytes_reduced);
    fclose(devnull);
    ct_examples_free(&tr);
    ct_examples_free(&va);
}

TEST(trainer_two_ranks_equal_one_process) { data_parallel_case(1, false); }
TEST(trainer_two_ranks_equal_one_process_accumulating) { data_parallel_case(2, false); }
TEST(trainer_two_ranks_resume_mid_accumulation) { data_parallel_case(2, true); }

TEST(trainer_batch_not_divisible_by_ranks) {
    ct_examples tr;
    make_examples(&tr, 24, 0);
    static thread_rank rk[2];
    memset(rk, 0, sizeof rk);
    for (int i = 0; i < 2; i++) {
        make_target(&rk[i].model, &rk[i].target);
        rk[i].train = &tr;
    }
    ct_train_options o = options(fresh_dir("dp-odd"), stdout);
    o.batch_size = 3;
    run_two_ranks(rk, &o);
    CHECK(rk[0].st == CT_ERR_INVALID && rk[1].st == CT_ERR_INVALID);
    CHECK_CONTAINS(rk[1].err.msg, "(batch 3, 2 workers)");
    ct_examples_free(&tr);
}
