// The training loop (see include/ctune/trainer.h).
#include "ctune/trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/log.h"
#include "ctune/loss_curve.h"
#include "ctune/progress.h"
#include "ctune/hub.h"
#include "ctune/safetensors.h"

#define STATE_FORMAT "ctune-trainer-1"

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t dropout_seed(uint64_t seed, int64_t it) { return splitmix64(seed * 0x100000001b3ull ^ (uint64_t)it) | 1; }

ct_status ct_evaluate(const ct_train_target *t, const ct_examples *ex, int64_t batch_size, int64_t max_batches,
                      int64_t max_seq_length, uint64_t seed, ct_comm *comm, double *loss, int64_t *ntok,
                      ct_error *err) {
    *loss = NAN;
    *ntok = 0;
    ct_batch_options bo = {(size_t)batch_size, max_seq_length, seed, true, false, ct_comm_rank(comm),
                           ct_comm_size(comm)};
    ct_batcher b;
    CT_TRY(ct_batcher_init(&b, ex, &bo, err));
    double sums[2] = {0, 0}; // loss * targets, targets
    ct_status st = CT_OK;
    for (int64_t i = 0; max_batches < 0 || i < max_batches; i++) {
        ct_batch batch;
        bool done;
        if ((st = ct_batcher_next(&b, &batch, &done, err)) != CT_OK || done)
            break;
        double l;
        int64_t k;
        if ((st = t->loss(t->ctx, &batch, false, 0, &l, &k, err)) != CT_OK)
            break;
        sums[0] += l * (double)k;
        sums[1] += (double)k;
    }
    ct_batcher_free(&b);
    if (st == CT_OK)
        st = ct_comm_allreduce_sum_f64(comm, sums, 2, err);
    if (st == CT_OK && sums[1] > 0)
        *loss = sums[0] / sums[1];
    *ntok = (int64_t)sums[1];
    return st;
}

int64_t ct_train_latest_checkpoint(const char *dir) {
    int64_t best = 0;
    char **files;
    size_t n;
    if (ct_hub_list_dir(dir, &files, &n, NULL) != CT_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int64_t it;
        char tail[64];
        if (sscanf(files[i], "%7" SCNd64 "_%63s", &it, tail) != 2 || strcmp(tail, "state.safetensors") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%07" PRId64 "_adapters.safetensors", dir, it);
        if (it > best && ct_path_exists(path))
            best = it;
    }
    ct_hub_free_list(files, n);
    return best;
}

// ---- checkpoint state

typedef struct train_state {
    int64_t iteration;     // last completed iteration
    int64_t pending;       // micro-batches accumulated since the last update
    int64_t trained_tokens;
    ct_batch_position data;
} train_state;

static ct_status save_state(const char *path, const ct_train_target *t, const ct_optimizer *o, const train_state *s,
                            ct_error *err) {
    int cap = t->n_params * 4, n = 0;
    ct_tensor_view *views = calloc((size_t)cap, sizeof *views);
    char **names = calloc((size_t)cap, sizeof *names);
    ct_status st = CT_OK;
    if (!views || !names) {
        st = ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < t->n_params; i++) {
        const char *bn[3];
        float *bufs[4];
        int64_t lens[4];
        int k = ct_optimizer_state_buffers(o, i, bn, bufs, lens);
        for (int j = 0; j <= k; j++) {
            bool grad = j == k;
            if (grad && s->pending == 0)
                break;
            size_t len = strlen(t->names[i]) + 32;
            names[n] = malloc(len);
            if (!names[n]) {
                st = ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            snprintf(names[n], len, "%s.%s%s", t->names[i], grad ? "grad" : "opt.", grad ? "" : bn[j]);
            int64_t count = grad ? t->params[i].rows * t->params[i].cols : lens[j];
            views[n] = (ct_tensor_view){names[n], CT_F32, 1, {count}, grad ? t->params[i].g : bufs[j],
                                        (size_t)count * sizeof(float)};
            n++;
        }
    }
    char it[32], step[32], pend[32], tok[32], ep[32], idx[32];
    snprintf(it, sizeof it, "%" PRId64, s->iteration);
    snprintf(step, sizeof step, "%" PRIu64, o->step);
    snprintf(pend, sizeof pend, "%" PRId64, s->pending);
    snprintf(tok, sizeof tok, "%" PRId64, s->trained_tokens);
    snprintf(ep, sizeof ep, "%" PRIu64, s->data.epoch);
    snprintf(idx, sizeof idx, "%" PRIu64, s->data.index);
    const char *meta[] = {"format", STATE_FORMAT, "optimizer", ct_optim_kind_name(o->cfg.kind), "iteration", it,
                          "optimizer_step", step, "pending_micro_batches", pend, "trained_tokens", tok,
                          "data_epoch", ep, "data_index", idx};
    st = ct_safetensors_write(path, views, n, meta, 8, err);
done:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(views);
    return st;
}

static ct_status meta_int(const ct_safetensors *st, const char *key, int64_t *out, ct_error *err) {
    const char *v = ct_safetensors_meta(st, key);
    char *end;
    if (!v || (errno = 0, *out = strtoll(v, &end, 10), errno != 0 || *end))
        return ct_fail(err, CT_ERR_FORMAT, "%s: missing or invalid \"%s\" in the metadata", st->path, key);
    return CT_OK;
}

static ct_status load_state(const char *path, const ct_train_target *t, ct_optimizer *o, train_state *s,
                            ct_error *err) {
    ct_safetensors st;
    CT_TRY(ct_safetensors_open(&st, path, err));
    ct_status rc = CT_OK;
    const char *fmt = ct_safetensors_meta(&st, "format"), *kind = ct_safetensors_meta(&st, "optimizer");
    int64_t step = 0, epoch = 0, index = 0;
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0) {
        rc = ct_fail(err, CT_ERR_FORMAT, "%s: not a ctune trainer state (format \"%s\")", path, fmt ? fmt : "");
        goto done;
    }
    if (!kind || strcmp(kind, ct_optim_kind_name(o->cfg.kind)) != 0) {
        rc = ct_fail(err, CT_ERR_INVALID, "%s: saved with optimizer %s, but this run uses %s", path,
                     kind ? kind : "?", ct_optim_kind_name(o->cfg.kind));
        goto done;
    }
    if ((rc = meta_int(&st, "iteration", &s->iteration, err)) || (rc = meta_int(&st, "optimizer_step", &step, err)) ||
        (rc = meta_int(&st, "pending_micro_batches", &s->pending, err)) ||
        (rc = meta_int(&st, "trained_tokens", &s->trained_tokens, err)) ||
        (rc = meta_int(&st, "data_epoch", &epoch, err)) || (rc = meta_int(&st, "data_index", &index, err)))
        goto done;
    o->step = (uint64_t)step;
    s->data = (ct_batch_position){(uint64_t)epoch, (uint64_t)index};
    for (int i = 0; i < t->n_params && rc == CT_OK; i++) {
        const char *bn[3];
        float *bufs[4];
        int64_t lens[4];
        int k = ct_optimizer_state_buffers(o, i, bn, bufs, lens);
        bufs[k] = t->params[i].g;
        lens[k] = t->params[i].rows * t->params[i].cols;
        for (int j = 0; j <= k; j++) {
            bool grad = j == k;
            char name[1024];
            snprintf(name, sizeof name, "%s.%s%s", t->names[i], grad ? "grad" : "opt.", grad ? "" : bn[j]);
            const ct_tensor_view *v = ct_safetensors_find(&st, name);
            if (grad && s->pending == 0)
                break;
            if (!v || v->dtype != CT_F32 || v->nbytes != (size_t)lens[j] * sizeof(float)) {
                rc = ct_fail(err, CT_ERR_FORMAT, "%s: tensor %s is %s", path, name,
                             v ? "of the wrong type or size for this run" : "missing");
                break;
            }
            memcpy(bufs[j], v->data, v->nbytes);
        }
    }
done:
    ct_safetensors_close(&st);
    return rc;
}

// ---- metrics.jsonl (one object per report or validation) and the loss curve

static ct_status append_metrics(const char *dir, const cJSON *obj, ct_error *err) {
    char path[4096];
    CT_TRY(ct_path_join(path, sizeof path, dir, "metrics.jsonl", err));
    char *line = cJSON_PrintUnformatted(obj);
    FILE *f = fopen(path, "a");
    bool ok = f && line && fprintf(f, "%s\n", line) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    free(line);
    if (!ok)
        return ct_fail(err, CT_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
    char svg[4096];
    CT_TRY(ct_path_join(svg, sizeof svg, dir, "loss_curve.svg", err));
    return ct_loss_curve_from_metrics(path, svg, err);
}

// On resume, drop records past the checkpoint (written before a kill).
static ct_status trim_metrics(const char *dir, int64_t last_it, ct_error *err) {
    char path[4096];
    CT_TRY(ct_path_join(path, sizeof path, dir, "metrics.jsonl", err));
    if (!ct_path_exists(path))
        return CT_OK;
    char *text;
    size_t len;
    CT_TRY(ct_read_file(path, &text, &len, err));
    char *out = malloc(len + 1);
    size_t n = 0;
    if (!out) {
        free(text);
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    }
    for (char *line = text, *nl; line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            nl = text + len;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
        const cJSON *it = j ? cJSON_GetObjectItem(j, "iteration") : NULL;
        if (cJSON_IsNumber(it) && it->valuedouble <= (double)last_it) {
            memcpy(out + n, line, (size_t)(nl - line));
            n += (size_t)(nl - line);
            out[n++] = '\n';
        }
        cJSON_Delete(j);
    }
    ct_status st = ct_write_file_atomic(path, out, n, err);
    free(out);
    free(text);
    return st;
}

// A new run in a folder that holds an earlier one: its metrics and trainer
// states would mix into this run's curve and a later --resume, so they go.
// (Earlier adapter files stay; this run overwrites the ones it writes.)
static ct_status start_fresh(const char *dir, ct_error *err) {
    char **files;
    size_t n;
    if (ct_hub_list_dir(dir, &files, &n, NULL) != CT_OK)
        return CT_OK;
    int removed = 0;
    ct_status st = CT_OK;
    for (size_t i = 0; i < n && st == CT_OK; i++) {
        int64_t it;
        char tail[64], path[4096];
        bool state = sscanf(files[i], "%7" SCNd64 "_%63s", &it, tail) == 2 && !strcmp(tail, "state.safetensors");
        if (!state && strcmp(files[i], "metrics.jsonl") != 0)
            continue;
        st = ct_path_join(path, sizeof path, dir, files[i], err);
        if (st == CT_OK && remove(path) != 0)
            st = ct_fail(err, CT_ERR_IO, "%s: cannot remove the previous run's file: %s", path, strerror(errno));
        removed++;
    }
    ct_hub_free_list(files, n);
    if (st == CT_OK && removed)
        ct_log_warn("%s holds an earlier run: its metrics and trainer states were removed (use --resume to continue it)",
                    dir);
    return st;
}

// ---- data parallel: the ranks' share of each micro-batch and the gradient sum

typedef struct data_parallel {
    ct_comm *comm;  // NULL: one process
    int rank, world;
    double gscale;  // this rank's accumulated gradient is gscale * params[i].g
    bool grads_zero; // every .g is zero (nothing accumulated yet)
    float *bucket;  // (bucket_len,) flattened gradients for the all-reduce
    size_t bucket_len;
} data_parallel;

static int64_t grad_len(const ct_train_target *t, int i) { return t->params[i].rows * t->params[i].cols; }

static void scale_grads(const ct_train_target *t, float k) {
    for (int i = 0; i < t->n_params; i++)
        for (int64_t j = 0; j < grad_len(t, i); j++)
            t->params[i].g[j] *= k;
}

static void zero_grads(const ct_train_target *t, data_parallel *dp) {
    for (int i = 0; i < t->n_params; i++)
        memset(t->params[i].g, 0, (size_t)grad_len(t, i) * sizeof(float));
    dp->gscale = 1;
    dp->grads_zero = true;
}

static ct_status dp_init(data_parallel *dp, const ct_train_target *t, ct_comm *comm, ct_error *err) {
    *dp = (data_parallel){comm, ct_comm_rank(comm), ct_comm_size(comm), 1, true, NULL, 0};
    if (dp->world == 1)
        return CT_OK;
    size_t total = 0;
    for (int i = 0; i < t->n_params; i++)
        total += (size_t)grad_len(t, i);
    size_t cap = CT_TRAIN_BUCKET_BYTES / sizeof(float);
    dp->bucket_len = total < cap ? total : cap;
    dp->bucket = malloc((dp->bucket_len ? dp->bucket_len : 1) * sizeof(float));
    if (!dp->bucket)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory for a %zu-float gradient bucket", dp->bucket_len);
    return CT_OK;
}

// Copies elements [lo, lo + n) of the concatenated gradients to (gather) or
// from (scatter) the bucket.
static void bucket_copy(const ct_train_target *t, float *bucket, size_t lo, size_t n, bool gather) {
    size_t base = 0;
    for (int i = 0; i < t->n_params && n > 0; i++) {
        size_t len = (size_t)grad_len(t, i);
        if (lo < base + len) {
            size_t off = lo - base, k = len - off < n ? len - off : n;
            float *g = t->params[i].g + off;
            memcpy(gather ? bucket : g, gather ? g : bucket, k * sizeof(float));
            bucket += k;
            lo += k;
            n -= k;
        }
        base += len;
    }
}

// Brings the accumulated gradient to its true scale and sums it across
// ranks, bucket by bucket: afterwards every rank holds the global gradient.
static ct_status allreduce_grads(const ct_train_target *t, data_parallel *dp, ct_error *err) {
    if (dp->world == 1)
        return CT_OK;
    if (dp->gscale != 1)
        scale_grads(t, (float)dp->gscale);
    dp->gscale = 1;
    size_t total = 0;
    for (int i = 0; i < t->n_params; i++)
        total += (size_t)grad_len(t, i);
    for (size_t lo = 0; lo < total; lo += dp->bucket_len) {
        size_t n = total - lo < dp->bucket_len ? total - lo : dp->bucket_len;
        bucket_copy(t, dp->bucket, lo, n, true);
        CT_TRY(ct_comm_allreduce_sum_f32(dp->comm, dp->bucket, n, err));
        bucket_copy(t, dp->bucket, lo, n, false);
    }
    dp->grads_zero = false;
    return CT_OK;
}

// One micro-batch on this rank's rows. The global batch's mean loss is
// sum_r n_r * loss_r / N (n_r: rank r's targets, N their sum) and its
// gradient sum_r (n_r / N) * grad(loss_r): each rank's gradient enters the
// accumulation with weight w = n_r / N. target->loss ADDS grad(loss_r) to .g,
// so .g is kept in units of the current weight (accumulated = gscale * .g):
// rescaling .g by gscale / w first makes the addition land with weight w.
// With one rank w = 1 and nothing is rescaled.
static ct_status micro_batch(const ct_train_target *t, data_parallel *dp, const ct_batch *b, uint64_t seed,
                             double *loss, int64_t *ntok, ct_error *err) {
    if (dp->world == 1) {
        dp->grads_zero = false;
        return t->loss(t->ctx, b, true, seed, loss, ntok, err);
    }
    double n = (double)b->n_targets, sum = 0;
    CT_TRY(ct_comm_allreduce_sum_f64(dp->comm, &n, 1, err));
    if (b->n_targets > 0) {
        double w = (double)b->n_targets / n, l;
        int64_t k;
        if (!dp->grads_zero && w != dp->gscale)
            scale_grads(t, (float)(dp->gscale / w));
        dp->gscale = w;
        dp->grads_zero = false;
        CT_TRY(t->loss(t->ctx, b, true, seed, &l, &k, err));
        sum = l * (double)k;
    }
    CT_TRY(ct_comm_allreduce_sum_f64(dp->comm, &sum, 1, err));
    *loss = sum / n;
    *ntok = (int64_t)n;
    return CT_OK;
}

// Before a state file is written in the middle of an accumulation: the
// ranks' pending gradients are summed onto rank 0 (the others zero theirs),
// so rank 0's file holds the whole pending sum and the next all-reduce still
// counts it once.
static ct_status gather_pending(const ct_train_target *t, data_parallel *dp, ct_error *err) {
    CT_TRY(allreduce_grads(t, dp, err));
    if (dp->rank != 0)
        zero_grads(t, dp);
    return CT_OK;
}

// ---- the loop

typedef struct report_window {
    double loss_sum, time, comm_time;
    int64_t steps, tokens;
    uint64_t comm_bytes;
} report_window;

static ct_status optimizer_step(const ct_train_target *t, ct_optimizer *o, const ct_train_options *opt,
                                data_parallel *dp, int64_t pending, double *lr_used, ct_error *err) {
    CT_TRY(allreduce_grads(t, dp, err));
    if (pending > 1)
        scale_grads(t, 1.0f / (float)pending);
    if (opt->max_grad_norm > 0) {
        float **g = malloc((size_t)t->n_params * sizeof *g);
        int64_t *lens = malloc((size_t)t->n_params * sizeof *lens);
        if (g && lens) {
            for (int i = 0; i < t->n_params; i++) {
                g[i] = t->params[i].g;
                lens[i] = grad_len(t, i);
            }
            ct_clip_grad_norm(g, lens, t->n_params, opt->max_grad_norm);
        }
        free(g);
        free(lens);
    }
    *lr_used = ct_schedule_lr(&opt->schedule, (int64_t)o->step);
    ct_optimizer_update(o, (float)*lr_used, t->params);
    zero_grads(t, dp);
    return CT_OK;
}

static ct_status checkpoint(const ct_train_target *t, const ct_optimizer *o, const ct_train_options *opt,
                            data_parallel *dp, const train_state *s, bool numbered, ct_error *err) {
    char path[4096];
    if (numbered && s->pending > 0)
        CT_TRY(gather_pending(t, dp, err));
    if (dp->rank != 0)
        return CT_OK;
    if (numbered) {
        snprintf(path, sizeof path, "%s/%07" PRId64 "_state.safetensors", opt->adapter_path, s->iteration);
        CT_TRY(save_state(path, t, o, s, err));
        snprintf(path, sizeof path, "%s/%07" PRId64 "_adapters.safetensors", opt->adapter_path, s->iteration);
        CT_TRY(t->save(t->ctx, path, err));
    }
    snprintf(path, sizeof path, "%s/adapters.safetensors", opt->adapter_path);
    return t->save(t->ctx, path, err);
}

static ct_status validate(const ct_train_target *t, const ct_examples *valid, const ct_train_options *opt, int64_t it,
                          bool root, ct_train_result *res, ct_error *err) {
    double t0 = ct_now(), loss;
    int64_t ntok;
    CT_TRY(ct_evaluate(t, valid, opt->batch_size, opt->val_batches, opt->max_seq_length, opt->seed, opt->comm, &loss,
                       &ntok, err));
    double took = ct_now() - t0;
    if (isnan(res->first_val_loss))
        res->first_val_loss = loss;
    res->last_val_loss = loss;
    if (!root)
        return CT_OK;
    fprintf(opt->out, "Iter %" PRId64 ": Val loss %.3f, Val took %.3fs\n", it, loss, took);
    fflush(opt->out);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "iteration", (double)it);
    cJSON_AddNumberToObject(m, "val_loss", loss);
    cJSON_AddNumberToObject(m, "val_time", took);
    ct_status st = append_metrics(opt->adapter_path, m, err);
    cJSON_Delete(m);
    return st;
}

static ct_status report(const ct_train_options *opt, int64_t it, double lr, const data_parallel *dp,
                        report_window *w, train_state *s, ct_train_result *res, ct_error *err) {
    double loss = w->loss_sum / (double)w->steps, its = w->steps / w->time, tps = (double)w->tokens / w->time;
    double peak = (double)ct_peak_rss_bytes() / 1e9;
    double comm_bytes = (double)w->comm_bytes / (double)w->steps, comm_share = w->comm_time / w->time;
    s->trained_tokens += w->tokens;
    res->last_train_loss = loss;
    ct_status st = CT_OK;
    if (dp->rank == 0) {
        fprintf(opt->out,
                "Iter %" PRId64 ": Train loss %.3f, Learning Rate %.3e, It/sec %.3f, Tokens/sec %.3f, "
                "Trained Tokens %" PRId64 ", Peak mem %.3f GB\n",
                it, loss, lr, its, tps, s->trained_tokens, peak);
        if (dp->world > 1)
            fprintf(opt->out, "Iter %" PRId64 ": %d ranks, reduced %.3f MB per step, %.1f%% of the time communicating\n",
                    it, dp->world, comm_bytes / 1e6, 100 * comm_share);
        fflush(opt->out);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "iteration", (double)it);
        cJSON_AddNumberToObject(m, "train_loss", loss);
        cJSON_AddNumberToObject(m, "learning_rate", lr);
        cJSON_AddNumberToObject(m, "iterations_per_second", its);
        cJSON_AddNumberToObject(m, "tokens_per_second", tps);
        cJSON_AddNumberToObject(m, "trained_tokens", (double)s->trained_tokens);
        cJSON_AddNumberToObject(m, "peak_memory", peak);
        if (dp->world > 1) {
            cJSON_AddNumberToObject(m, "ranks", dp->world);
            cJSON_AddNumberToObject(m, "comm_bytes_per_step", comm_bytes);
            cJSON_AddNumberToObject(m, "comm_time_fraction", comm_share);
        }
        st = append_metrics(opt->adapter_path, m, err);
        cJSON_Delete(m);
    }
    *w = (report_window){0};
    return st;
}

// Restores the latest checkpoint of opt->adapter_path into t, o, s and b.
static ct_status resume(const ct_train_target *t, ct_optimizer *o, const ct_train_options *opt, data_parallel *dp,
                        ct_batcher *b, train_state *s, ct_error *err) {
    int64_t n = ct_train_latest_checkpoint(opt->adapter_path);
    char path[4096];
    if (n == 0)
        return ct_fail(err, CT_ERR_INVALID, "--resume: no checkpoint (NNNNNNN_state.safetensors) in %s",
                       opt->adapter_path);
    snprintf(path, sizeof path, "%s/%07" PRId64 "_state.safetensors", opt->adapter_path, n);
    CT_TRY(load_state(path, t, o, s, err));
    dp->grads_zero = s->pending == 0;
    if (dp->rank != 0 && s->pending > 0) // rank 0 carries the pending sum (gather_pending)
        zero_grads(t, dp);
    snprintf(path, sizeof path, "%s/%07" PRId64 "_adapters.safetensors", opt->adapter_path, n);
    CT_TRY(t->load(t->ctx, path, err));
    CT_TRY(ct_batcher_seek(b, s->data, err));
    if (dp->rank == 0) {
        CT_TRY(trim_metrics(opt->adapter_path, s->iteration, err));
        ct_log_info("Resuming from iteration %" PRId64 " (%s)", s->iteration, opt->adapter_path);
    }
    return CT_OK;
}

static ct_status train_loop(const ct_train_target *t, const ct_examples *valid, const ct_train_options *opt,
                            ct_optimizer *o, ct_batcher *b, data_parallel *dp, train_state *s, ct_train_result *res,
                            ct_error *err) {
    bool have_valid = valid && valid->n > 0, root = dp->rank == 0;
    report_window w = {0};
    double lr = ct_schedule_lr(&opt->schedule, (int64_t)o->step > 0 ? (int64_t)o->step - 1 : 0);
    ct_progress bar = {0};
    if (root) {
        ct_progress_begin(&bar, "train", opt->iters);
        ct_progress_update(&bar, s->iteration);
    }
    ct_status st = ct_comm_barrier(dp->comm, err); // ranks start together: loading is not communication time
    // Resumed from the last iteration's checkpoint (killed before it wrote
    // adapters.safetensors): write it now.
    if (st == CT_OK && s->iteration >= opt->iters)
        st = checkpoint(t, o, opt, dp, s, false, err);
    for (int64_t it = s->iteration + 1; st == CT_OK && it <= opt->iters; it++) {
        if (have_valid && (it == 1 || it % opt->steps_per_eval == 0 || it == opt->iters)) {
            if ((st = validate(t, valid, opt, it, root, res, err)) != CT_OK)
                break;
        }
        double t0 = ct_now(), c0 = dp->comm ? dp->comm->stats.seconds : 0;
        uint64_t b0 = dp->comm ? dp->comm->stats.bytes_reduced : 0;
        ct_batch batch;
        bool done;
        if ((st = ct_batcher_next(b, &batch, &done, err)) != CT_OK)
            break;
        double loss;
        int64_t ntok;
        uint64_t seed = dropout_seed(opt->seed, it);
        if (dp->rank > 0) // the ranks' rows draw different dropout masks
            seed = splitmix64(seed + (uint64_t)dp->rank) | 1;
        if ((st = micro_batch(t, dp, &batch, seed, &loss, &ntok, err)) != CT_OK)
            break;
        if (!isfinite(loss)) {
            st = ct_fail(err, CT_ERR_NUMERIC,
                         "iteration %" PRId64 ": the training loss is %f; lower the learning rate or check the data "
                         "(the last checkpoint is kept)",
                         it, loss);
            break;
        }
        if (++s->pending == opt->grad_accumulation_steps) {
            if ((st = optimizer_step(t, o, opt, dp, s->pending, &lr, err)) != CT_OK)
                break;
            s->pending = 0;
        }
        w.loss_sum += loss;
        w.tokens += ntok;
        w.steps++;
        w.time += ct_now() - t0;
        if (dp->comm) {
            w.comm_time += dp->comm->stats.seconds - c0;
            w.comm_bytes += dp->comm->stats.bytes_reduced - b0;
        }
        s->iteration = it;
        s->data = ct_batcher_tell(b);
        if (it % opt->steps_per_report == 0 || it == opt->iters)
            st = report(opt, it, lr, dp, &w, s, res, err);
        if (st == CT_OK && (it % opt->save_every == 0 || it == opt->iters)) {
            st = checkpoint(t, o, opt, dp, s, it % opt->save_every == 0, err);
            if (st == CT_OK && root && it % opt->save_every == 0)
                ct_log_info("Iter %" PRId64 ": Saved adapter weights to %s/adapters.safetensors and "
                            "%s/%07" PRId64 "_adapters.safetensors.",
                            it, opt->adapter_path, opt->adapter_path, it);
        }
        if (root)
            ct_progress_update(&bar, it);
    }
    if (root && bar.tty)
        ct_progress_end(&bar);
    return st;
}

ct_status ct_train(const ct_train_target *t, const ct_examples *train, const ct_examples *valid,
                   const ct_train_options *opt, ct_train_result *res, ct_error *err) {
    *res = (ct_train_result){0, NAN, NAN, NAN, 0};
    if (opt->grad_accumulation_steps < 1)
        return ct_fail(err, CT_ERR_INVALID, "grad_accumulation_steps must be at least 1");
    data_parallel dp;
    CT_TRY(dp_init(&dp, t, opt->comm, err));
    ct_optimizer o;
    ct_status st = ct_optimizer_init(&o, &opt->optim, t->params, t->n_params, err);
    if (st != CT_OK) {
        free(dp.bucket);
        return st;
    }
    ct_batch_options bo = {(size_t)opt->batch_size, opt->max_seq_length, opt->seed, true, true, dp.rank, dp.world};
    ct_batcher b;
    if ((st = ct_batcher_init(&b, train, &bo, err)) != CT_OK) {
        ct_optimizer_free(&o);
        free(dp.bucket);
        return st;
    }
    train_state s = {0};
    zero_grads(t, &dp);
    if (dp.rank == 0) {
        ct_remove_stale_temps(opt->adapter_path, NULL); // temps of writers killed mid-write
        if (!opt->resume)
            st = start_fresh(opt->adapter_path, err);
    }
    if (st == CT_OK && opt->resume)
        st = resume(t, &o, opt, &dp, &b, &s, err);
    if (st == CT_OK)
        st = train_loop(t, valid, opt, &o, &b, &dp, &s, res, err);
    res->iterations = s.iteration;
    res->trained_tokens = s.trained_tokens;
    ct_batcher_free(&b);
    ct_optimizer_free(&o);
    free(dp.bucket);
    return st;
}
