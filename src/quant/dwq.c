// dwq.c: distilled weight quantization (see dwq.h). The student is a
// ct_model whose trained modules run as dense f32 weights s*q + b; the
// backward gives d(loss)/d(weight) (ct_layer_grads / ct_extra_grads) and
// ct_affine_scale_bias_grad turns it into the scale and bias gradients.
//
// Differences from mlx-lm's quant/dwq.py, on purpose:
// - data: the sequences of ct_calib_load (fixed length, shuffled with --seed)
//   from --data, not the tulu-3 SFT dataset; validation takes the 32
//   sequences after the training ones (fewer when the data is short);
// - the teacher's top-k targets are computed per batch (never stored on disk);
// - dense (unquantized) linears and linear biases stay frozen.
// The CPU backend's device memory is host memory: the gradient conversion
// and the optimizer read the device buffers directly.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "ctune/comm.h"
#include "ctune/dwq.h"
#include "ctune/fs.h"
#include "ctune/log.h"
#include "ctune/losses.h"
#include "ctune/model.h"
#include "ctune/optim.h"
#include "ctune/progress.h"
#include "ctune/tokenizer.h"
#include "quant_internal.h"

enum { MAX_VALID = 32 };

// A quantized module the student trains: its weight slot runs dense.
typedef struct dq_module {
    char path[96];
    ct_weight *slot;        // the model's weight (a layer linear, the embedding, an untied head)
    ct_weight q;            // the quantized original (its codes stay)
    float *dense;           // (rows, in) f32: s*q + b, the slot's data while training
    float *dw;              // (rows, in) f32: d loss / d dense
    int64_t off_s, off_b;   // scales, biases (rows, in/g) in the flat buffers
} dq_module;

// A norm weight the student trains: the model's buffer holds the master cast to the dtype.
typedef struct dq_vector {
    char path[96];
    float *weight;          // (n) the model's buffer
    float **grad;           // where its gradient pointer goes (layer or extra grads)
    int64_t off, n;
} dq_vector;

typedef struct dq_job {
    const ct_dwq_opts *o;
    ct_backend *be;
    ct_model teacher, student;
    bool teacher_loaded, student_loaded;
    char student_dir[4200]; // the RTN student (temporary), or empty
    ct_dtype sb;            // scales, biases and norms of the output
    dq_module *mods;
    int n_mods;
    dq_vector *vecs;
    int n_vecs;
    float *P, *G;           // flat fp32 masters and gradients (device)
    int64_t n_params;
    ct_optim_param *oparams;
    ct_optimizer opt;
    bool opt_ready;
    ct_layer_grads *lg;
    ct_extra_grads xg;
    ct_distill_loss loss;
    bool loss_ready;
    // one batch (B*T rows)
    int B, T;
    int32_t *ids;           // (B, T) host
    float *t_vals;          // (rows, k) or (rows, V): the teacher's targets (device)
    int32_t *t_idx;         // (rows, k) (device; top-k only)
    float *row_w;           // (rows) host
    float *round_s, *round_b; // host scratch (rows * in/g) of the largest module
    ct_comm *comm;          // data-parallel ranks (NULL: one process)
    int rank, world;
} dq_job;

// ---- small helpers

static ct_status dev_alloc(dq_job *j, size_t bytes, void *out, ct_error *err) {
    return j->be->alloc(j->be, bytes ? bytes : 1, (void **)out, err);
}

static void dev_free(dq_job *j, void *p) {
    if (p)
        j->be->free(j->be, p);
}

static int64_t groups(const ct_weight *w) { return w->rows * (w->cols / w->group_size); }

// Removes a flat folder (the temporary student).
static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

// ---- the student

// The RTN student: ct_convert -q of the teacher into a temporary folder beside the output.
static ct_status make_rtn_student(dq_job *j, ct_error *err) {
    const ct_dwq_opts *o = j->o;
    if ((size_t)snprintf(j->student_dir, sizeof j->student_dir, "%s.student-XXXXXX", o->mlx_path) >=
        sizeof j->student_dir)
        return ct_fail(err, CT_ERR_INVALID, "%s: path too long", o->mlx_path);
    if (!mkdtemp(j->student_dir)) {
        j->student_dir[0] = 0;
        return ct_fail(err, CT_ERR_IO, "cannot create a temporary folder beside %s", o->mlx_path);
    }
    rmdir(j->student_dir); // ct_convert wants a path that does not exist
    ct_log_info("[INFO] Quantizing the teacher (RTN %d-bit, group %d) into the student", o->bits, o->group_size);
    ct_convert_opts co = {.model = o->model, .mlx_path = j->student_dir, .quantize = true, .q_bits = o->bits,
                          .q_group_size = o->group_size, .dtype = o->dtype};
    ct_status st = ct_convert(&co, NULL, err);
    if (st != CT_OK)
        j->student_dir[0] = 0;
    return st;
}

static ct_status load_student(dq_job *j, ct_error *err) {
    const ct_dwq_opts *o = j->o;
    const char *path = o->quantized_model;
    if (!path) {
        CT_TRY(make_rtn_student(j, err));
        path = j->student_dir;
    }
    CT_TRY(ct_model_load(&j->student, path, j->be, err));
    j->student_loaded = true;
    if (!j->student.cfg.quant.quantized)
        return ct_fail(err, CT_ERR_INVALID, "%s: the quantized model must already be quantized (its config.json has "
                       "no \"quantization\" block)", path);
    if (j->student.V != j->teacher.V || j->student.C != j->teacher.C || j->student.L != j->teacher.L)
        return ct_fail(err, CT_ERR_INVALID, "%s: the student (V %d, C %d, %d layers) does not match the teacher "
                       "%s (V %d, C %d, %d layers)", path, j->student.V, j->student.C, j->student.L, o->model,
                       j->teacher.V, j->teacher.C, j->teacher.L);
    if (o->dtype)
        return quant_output_dtype(o->dtype, &j->student, &j->sb, err); // parses the --dtype name
    ct_dtype own = CT_F32;
    for (int l = 0; l < j->student.L && own == CT_F32; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++)
            if (j->student.layers[l].lin[id].w.bits)
                own = j->student.layers[l].lin[id].w.dtype;
    j->sb = own;
    return CT_OK;
}

// ---- the trainable parameters

static void add_module(dq_job *j, ct_weight *w, const char *path, int64_t *off) {
    if (w->bits <= 0 || w->bits >= 8)
        return; // dense, or 8-bit (mlx-lm trains bits < 8)
    dq_module *d = &j->mods[j->n_mods++];
    snprintf(d->path, sizeof d->path, "%s", path);
    d->slot = w;
    d->q = *w;
    d->off_s = *off;
    d->off_b = *off + groups(w);
    *off += 2 * groups(w);
}

static void add_vector(dq_job *j, float *weight, float **grad, int64_t n, const char *path, int64_t *off) {
    if (!weight)
        return;
    dq_vector *v = &j->vecs[j->n_vecs++];
    snprintf(v->path, sizeof v->path, "%s", path);
    v->weight = weight;
    v->grad = grad;
    v->off = *off;
    v->n = n;
    *off += n;
}

// Lists the trained modules and vectors and lays them out in the flat buffers.
static void list_params(dq_job *j) {
    ct_model *m = &j->student;
    int64_t off = 0;
    char path[96];
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++) {
            bool attn = id <= CT_LIN_O;
            snprintf(path, sizeof path, "model.layers.%d.%s.%s", l, attn ? "self_attn" : "mlp",
                     ct_linear_name((ct_linear_id)id));
            add_module(j, &m->layers[l].lin[id].w, path, &off);
        }
    add_module(j, &m->embed, "model.embed_tokens", &off);
    if (!m->cfg.tie_word_embeddings)
        add_module(j, &m->lm_head.w, "lm_head", &off);
    for (int l = 0; l < m->L; l++) {
        ct_layer_params *p = &m->layers[l];
        ct_layer_grads *g = &j->lg[l];
        snprintf(path, sizeof path, "model.layers.%d.input_layernorm", l);
        add_vector(j, p->attn_norm, &g->attn_norm, m->C, path, &off);
        snprintf(path, sizeof path, "model.layers.%d.%s", l, quant_ffn_norm_name(m));
        add_vector(j, p->ffn_norm, &g->ffn_norm, m->C, path, &off);
        snprintf(path, sizeof path, "model.layers.%d.post_attention_layernorm", l); // gemma's sandwich norms
        add_vector(j, p->post_attn_norm, &g->post_attn_norm, m->C, path, &off);
        snprintf(path, sizeof path, "model.layers.%d.post_feedforward_layernorm", l);
        add_vector(j, p->post_ffn_norm, &g->post_ffn_norm, m->C, path, &off);
        snprintf(path, sizeof path, "model.layers.%d.self_attn.q_norm", l);
        add_vector(j, p->q_norm, &g->q_norm, m->D, path, &off);
        snprintf(path, sizeof path, "model.layers.%d.self_attn.k_norm", l);
        add_vector(j, p->k_norm, &g->k_norm, m->D, path, &off);
    }
    add_vector(j, m->final_norm, &j->xg.final_norm, m->C, "model.norm", &off);
    j->n_params = off;
}

// The slot's dense weight from the masters: s, b cast to the dtype, times the fixed codes.
static void refresh_module(dq_job *j, dq_module *d) {
    const ct_weight *w = &d->q;
    int64_t ng = groups(w);
    for (int64_t i = 0; i < ng; i++) {
        j->round_s[i] = quant_round_sb(j->P[d->off_s + i], j->sb);
        j->round_b[i] = quant_round_sb(j->P[d->off_b + i], j->sb);
    }
    ct_affine_dequantize(w->data, j->round_s, j->round_b, CT_F32, w->rows, w->cols, w->bits, w->group_size,
                         d->dense);
}

static void refresh_all(dq_job *j) {
    for (int i = 0; i < j->n_mods; i++)
        refresh_module(j, &j->mods[i]);
    for (int i = 0; i < j->n_vecs; i++)
        for (int64_t k = 0; k < j->vecs[i].n; k++)
            j->vecs[i].weight[k] = quant_round_sb(j->P[j->vecs[i].off + k], j->sb);
}

// Masters from the student's stored scales/biases and norms; dense slots and gradients wired into the model.
static ct_status setup_params(dq_job *j, ct_error *err) {
    ct_model *m = &j->student;
    int max_mods = m->L * CT_LIN_COUNT + 2, max_vecs = 6 * m->L + 1;
    j->mods = calloc((size_t)max_mods, sizeof *j->mods);
    j->vecs = calloc((size_t)max_vecs, sizeof *j->vecs);
    j->lg = calloc((size_t)m->L, sizeof *j->lg);
    if (!j->mods || !j->vecs || !j->lg)
        return ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
    list_params(j);
    if (j->n_mods == 0)
        return ct_fail(err, CT_ERR_INVALID, "dwq: the student has no module quantized with fewer than 8 bits");
    CT_TRY(dev_alloc(j, sizeof(float) * (size_t)j->n_params, &j->P, err));
    CT_TRY(dev_alloc(j, sizeof(float) * (size_t)j->n_params, &j->G, err));
    int64_t max_g = 0;
    for (int i = 0; i < j->n_mods; i++) {
        dq_module *d = &j->mods[i];
        const ct_weight *w = &d->q;
        int64_t ng = groups(w);
        max_g = ng > max_g ? ng : max_g;
        ct_convert_to_f32(j->P + d->off_s, w->scales, w->dtype, (size_t)ng);
        ct_convert_to_f32(j->P + d->off_b, w->biases, w->dtype, (size_t)ng);
        size_t bytes = sizeof(float) * (size_t)(w->rows * w->cols);
        CT_TRY(dev_alloc(j, bytes, &d->dense, err));
        CT_TRY(dev_alloc(j, bytes, &d->dw, err));
        *d->slot = (ct_weight){.rows = w->rows, .cols = w->cols, .dtype = CT_F32, .data = d->dense};
    }
    if (m->cfg.tie_word_embeddings)
        m->lm_head.w = m->embed;
    j->round_s = malloc(sizeof(float) * (size_t)max_g);
    j->round_b = malloc(sizeof(float) * (size_t)max_g);
    if (!j->round_s || !j->round_b)
        return ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++)
            for (int i = 0; i < j->n_mods; i++)
                if (j->mods[i].slot == &m->layers[l].lin[id].w)
                    j->lg[l].w[id] = j->mods[i].dw;
    for (int i = 0; i < j->n_mods; i++) {
        if (j->mods[i].slot == &m->embed)
            j->xg.embed = j->mods[i].dw;
        else if (j->mods[i].slot == &m->lm_head.w)
            j->xg.lm_head = j->mods[i].dw;
    }
    for (int i = 0; i < j->n_vecs; i++) {
        dq_vector *v = &j->vecs[i];
        memcpy(j->P + v->off, v->weight, sizeof(float) * (size_t)v->n);
        *v->grad = j->G + v->off;
    }
    m->layer_grads = j->lg;
    m->extra_grads = &j->xg;
    m->grad_checkpoint = j->o->grad_checkpoint;
    refresh_all(j);
    return CT_OK;
}

static ct_status setup_optimizer(dq_job *j, ct_error *err) {
    int n = 2 * j->n_mods + j->n_vecs, k = 0;
    j->oparams = calloc((size_t)n, sizeof *j->oparams);
    if (!j->oparams)
        return ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
    for (int i = 0; i < j->n_mods; i++) {
        const dq_module *d = &j->mods[i];
        int64_t ng = d->q.cols / d->q.group_size;
        j->oparams[k++] = (ct_optim_param){j->P + d->off_s, j->G + d->off_s, 2, d->q.rows, ng};
        j->oparams[k++] = (ct_optim_param){j->P + d->off_b, j->G + d->off_b, 2, d->q.rows, ng};
    }
    for (int i = 0; i < j->n_vecs; i++)
        j->oparams[k++] = (ct_optim_param){j->P + j->vecs[i].off, j->G + j->vecs[i].off, 1, 1, j->vecs[i].n};
    ct_optim_config cfg = ct_optim_defaults(CT_OPT_ADAM);
    cfg.bias_correction = true;
    CT_TRY(ct_optimizer_init(&j->opt, &cfg, j->oparams, n, err));
    j->opt_ready = true;
    return CT_OK;
}

// ---- one batch

// Teacher logits of a chunk -> its targets (top-k values and indices, or every logit).
static ct_status capture_targets(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits,
                                 double *sum, ct_error *err) {
    (void)dlogits, (void)sum, (void)err;
    dq_job *j = ctx;
    int V = j->teacher.V, k = j->o->top_k;
    if (k > 0)
        ct_logits_top_k(logits, n, V, k, j->t_vals + row0 * k, j->t_idx + row0 * k);
    else
        j->be->copy(j->be, j->t_vals + row0 * V, logits, sizeof(float) * (size_t)(n * V));
    return CT_OK;
}

static ct_status student_loss(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits, double *sum,
                              ct_error *err) {
    dq_job *j = ctx;
    int V = j->student.V, k = j->o->top_k, width = k > 0 ? k : V;
    return ct_distill_loss_apply(&j->loss, logits, j->t_vals + row0 * width, k > 0 ? j->t_idx + row0 * k : NULL,
                                 j->row_w + row0, n, V, dlogits, sum, err);
}

// This rank's share of sequences [s0, s0 + nb) of seqs (n, L), the sequences
// s0 + b with b % world == rank (mlx-lm's [rank::world] rows): their inputs
// tokens[:, :L-1] into j->ids, row weights 1/(nb*T) (the batch's global mean).
// Returns how many sequences this rank took.
static int load_batch(dq_job *j, const int32_t *seqs, int s0, int nb) {
    int L = j->T + 1, mine = 0;
    for (int b = j->rank; b < nb; b += j->world, mine++)
        memcpy(j->ids + (int64_t)mine * j->T, seqs + (int64_t)(s0 + b) * L, sizeof(int32_t) * (size_t)j->T);
    int64_t rows = (int64_t)mine * j->T;
    for (int64_t r = 0; r < rows; r++)
        j->row_w[r] = (float)(1.0 / ((double)nb * j->T));
    return mine;
}

// The mean KL of nb sequences from s0 over every rank (with grad: this
// rank's part of the gradient into G).
static ct_status batch_loss(dq_job *j, const int32_t *seqs, int s0, int nb, bool grad, double *loss, ct_error *err) {
    double unused;
    int mine = load_batch(j, seqs, s0, nb);
    *loss = 0;
    if (mine > 0) {
        CT_TRY(ct_model_train_logits(&j->teacher, j->ids, mine, j->T, false, capture_targets, j, &unused, err));
        CT_TRY(ct_model_train_logits(&j->student, j->ids, mine, j->T, grad, student_loss, j, loss, err));
    }
    return ct_comm_allreduce_sum_f64(j->comm, loss, 1, err);
}

static ct_status valid_loss(dq_job *j, const int32_t *seqs, int n_valid, double *out, ct_error *err) {
    double sum = 0;
    for (int s0 = 0; s0 < n_valid; s0 += j->B) {
        int nb = n_valid - s0 < j->B ? n_valid - s0 : j->B;
        double l;
        CT_TRY(batch_loss(j, seqs, s0, nb, false, &l, err));
        sum += l * nb;
    }
    *out = sum / n_valid;
    return CT_OK;
}

// One optimizer step on sequences [s0, s0 + B).
static ct_status train_step(dq_job *j, const int32_t *seqs, int s0, double *loss, ct_error *err) {
    ct_backend *be = j->be;
    be->zero(be, j->G, sizeof(float) * (size_t)j->n_params);
    for (int i = 0; i < j->n_mods; i++)
        be->zero(be, j->mods[i].dw, sizeof(float) * (size_t)(j->mods[i].q.rows * j->mods[i].q.cols));
    CT_TRY(batch_loss(j, seqs, s0, j->B, true, loss, err));
    for (int i = 0; i < j->n_mods; i++) {
        const dq_module *d = &j->mods[i];
        ct_affine_scale_bias_grad(d->dw, d->q.data, d->q.rows, d->q.cols, d->q.bits, d->q.group_size,
                                  j->G + d->off_s, j->G + d->off_b);
    }
    CT_TRY(ct_comm_allreduce_sum_f32(j->comm, j->G, (size_t)j->n_params, err)); // every rank: the global gradient
    ct_optimizer_update(&j->opt, (float)j->o->learning_rate, j->oparams);
    refresh_all(j);
    return CT_OK;
}

static ct_status alloc_batch(dq_job *j, ct_error *err) {
    int64_t rows = (int64_t)j->B * j->T;
    int width = j->o->top_k > 0 ? j->o->top_k : j->student.V;
    j->ids = malloc(sizeof(int32_t) * (size_t)rows);
    j->row_w = malloc(sizeof(float) * (size_t)rows);
    if (!j->ids || !j->row_w)
        return ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
    CT_TRY(dev_alloc(j, sizeof(float) * (size_t)rows * (size_t)width, &j->t_vals, err));
    if (j->o->top_k > 0)
        CT_TRY(dev_alloc(j, sizeof(int32_t) * (size_t)rows * (size_t)width, &j->t_idx, err));
    CT_TRY(ct_distill_loss_init(&j->loss, j->be, j->o->temperature, false, j->o->top_k, err));
    j->loss_ready = true;
    return CT_OK;
}

// ---- training

static void report(const dq_job *j, int step, double loss_sum, int n, int64_t tokens, double t0) {
    double dt = ct_now() - t0;
    ct_log_info("Iter %d: loss %.4f, tokens %lld, tok/s %.1f, peak mem %.3f GB", step, loss_sum / n,
                (long long)tokens, dt > 0 ? (double)tokens / dt : 0.0, (double)ct_peak_rss_bytes() / 1e9);
    (void)j;
}

static ct_status train(dq_job *j, const int32_t *seqs, int n_train, int n_valid, ct_dwq_stats *s, ct_error *err) {
    const int32_t *valid = seqs + (int64_t)n_train * (j->T + 1);
    int steps = n_train / j->B, every_report = j->o->steps_per_report > 0 ? j->o->steps_per_report : 20;
    int every_eval = j->o->steps_per_eval > 0 ? j->o->steps_per_eval : 200;
    CT_TRY(valid_loss(j, valid, n_valid, &s->initial_valid_loss, err));
    ct_log_info("Initial validation loss: %.4f", s->initial_valid_loss);
    ct_progress prog;
    ct_progress_begin(&prog, "dwq", steps);
    double t0 = ct_now(), window = 0;
    int in_window = 0;
    ct_status st = CT_OK;
    for (int it = 1; it <= steps && st == CT_OK; it++) {
        double loss;
        st = train_step(j, seqs, (it - 1) * j->B, &loss, err);
        if (st != CT_OK)
            break;
        s->tokens += (int64_t)j->B * j->T;
        window += loss, in_window++;
        if (it % every_report == 0 || it == steps) {
            report(j, it, window, in_window, s->tokens, t0);
            window = 0, in_window = 0;
        }
        if (it % every_eval == 0 && it < steps) {
            double v;
            st = valid_loss(j, valid, n_valid, &v, err);
            if (st == CT_OK)
                ct_log_info("Iter %d: validation loss %.4f", it, v);
        }
        ct_progress_update(&prog, it);
    }
    ct_progress_end(&prog);
    CT_TRY(st);
    s->steps = steps;
    s->seconds = ct_now() - t0;
    CT_TRY(valid_loss(j, valid, n_valid, &s->final_valid_loss, err));
    ct_log_info("Final validation loss: %.4f", s->final_valid_loss);
    if (s->final_valid_loss > s->initial_valid_loss)
        ct_log_warn("the validation loss got worse (%.4f -> %.4f): model quality will likely be degraded (try a "
                    "lower --learning-rate)", s->initial_valid_loss, s->final_valid_loss);
    return CT_OK;
}

// ---- the output

static ct_status write_output(dq_job *j, ct_convert_stats *cs, ct_error *err) {
    int n = j->n_mods + j->n_vecs;
    ct_convert_module *rep = calloc((size_t)n, sizeof *rep);
    void **host = calloc((size_t)(2 * j->n_mods + j->n_vecs), sizeof *host);
    ct_status st = rep && host ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
    size_t sbz = ct_dtype_size(j->sb);
    for (int i = 0; st == CT_OK && i < j->n_mods; i++) {
        const dq_module *d = &j->mods[i];
        size_t ng = (size_t)groups(&d->q);
        void *s = host[2 * i] = malloc(sbz * ng), *b = host[2 * i + 1] = malloc(sbz * ng);
        if (!s || !b) {
            st = ct_fail(err, CT_ERR_NOMEM, "dwq: out of memory");
            break;
        }
        quant_store_sb(s, j->P + d->off_s, ng, j->sb);
        quant_store_sb(b, j->P + d->off_b, ng, j->sb);
        ct_weight w = d->q;
        w.dtype = j->sb, w.scales = s, w.biases = b;
        rep[i] = (ct_convert_module){.path = d->path, .w = w};
    }
    for (int i = 0; st == CT_OK && i < j->n_vecs; i++) { // the model's buffers hold the masters cast to the dtype
        const dq_vector *v = &j->vecs[i];
        ct_weight w = {.rows = 0, .cols = v->n, .dtype = CT_F32, .data = v->weight}; // rows 0: a vector
        rep[j->n_mods + i] = (ct_convert_module){.path = v->path, .w = w, .dtype = j->sb};
    }
    const char *src = j->o->quantized_model ? j->o->quantized_model : j->student_dir;
    const char *dtype = j->sb == CT_F16 ? "float16" : j->sb == CT_BF16 ? "bfloat16" : "float32";
    if (st == CT_OK) {
        ct_convert_opts co = {.model = src, .mlx_path = j->o->mlx_path, .dtype = dtype, .replace = rep,
                              .n_replace = n};
        st = ct_convert(&co, cs, err);
    }
    for (int i = 0; host && i < 2 * j->n_mods + j->n_vecs; i++)
        free(host[i]);
    free(host);
    free(rep);
    return st;
}

// ---- the job

static ct_status check_opts(const ct_dwq_opts *o, ct_error *err) {
    if (!o->model || !o->mlx_path)
        return ct_fail(err, CT_ERR_INVALID, "dwq: a teacher model and an output path are needed");
    if (!o->calib.data)
        return ct_fail(err, CT_ERR_INVALID, "dwq: --data is required (a text file, a .jsonl file or a dataset "
                       "folder; mlx-lm's default allenai/tulu-3-sft-mixture must be downloaded first)");
    if (!o->quantized_model)
        CT_TRY(ct_affine_check(o->bits, o->group_size, o->group_size, "--bits/--group-size", err));
    if (o->batch_size < 1 || o->calib.sequence_length < 2 || !(o->learning_rate > 0) || !(o->temperature > 0) ||
        o->top_k < 0)
        return ct_fail(err, CT_ERR_INVALID, "dwq: --batch-size must be >= 1, --max-seq-length >= 2, "
                       "--learning-rate and --temperature > 0, --top-k >= 0");
    if (ct_path_exists(o->mlx_path))
        return ct_fail(err, CT_ERR_INVALID,
                       "cannot save to %s: it already exists (delete it or choose another --mlx-path)", o->mlx_path);
    int world = ct_comm_size(o->comm);
    if (o->batch_size % world != 0)
        return ct_fail(err, CT_ERR_INVALID, "dwq: the batch size must be divisible by the number of workers for "
                       "data-parallel training (batch %d, %d workers)", o->batch_size, world);
    return CT_OK;
}

// Calibration sequences: the training ones, then up to MAX_VALID for validation.
static ct_status load_data(dq_job *j, int32_t **seqs, int *n_train, int *n_valid, ct_error *err) {
    const ct_dwq_opts *o = j->o;
    ct_calib_opts c = o->calib;
    if (c.num_samples > 0)
        c.num_samples += MAX_VALID;
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load(&tok, o->model, err));
    int n = 0;
    ct_status st = ct_calib_load(tok, &c, seqs, &n, err);
    ct_tokenizer_free(tok);
    CT_TRY(st);
    int valid = n >= o->calib.num_samples + MAX_VALID && o->calib.num_samples > 0 ? MAX_VALID : n / 8;
    valid = valid < 1 ? 1 : valid > MAX_VALID ? MAX_VALID : valid;
    *n_valid = valid;
    *n_train = n - valid;
    if (o->calib.num_samples > 0 && *n_train > o->calib.num_samples)
        *n_train = o->calib.num_samples;
    if (*n_train < o->batch_size)
        return ct_fail(err, CT_ERR_INVALID, "%s: too little data: %d sequences of %d tokens (%d for training, %d "
                       "for validation), fewer than one batch of %d", o->calib.data, n, c.sequence_length, *n_train,
                       valid, o->batch_size);
    // valid rows follow the training rows
    if (*n_train + valid < n)
        memmove(*seqs + (int64_t)*n_train * c.sequence_length, *seqs + (int64_t)(n - valid) * c.sequence_length,
                sizeof(int32_t) * (size_t)valid * (size_t)c.sequence_length);
    return CT_OK;
}

static ct_status load_teacher(dq_job *j, ct_error *err) {
    CT_TRY(ct_model_load(&j->teacher, j->o->model, j->be, err));
    j->teacher_loaded = true;
    CT_TRY(quant_check_arch(&j->teacher, j->o->model, "dwq", err));
    if (j->o->top_k > j->teacher.V)
        return ct_fail(err, CT_ERR_INVALID, "--top-k %d is larger than the vocabulary (%d)", j->o->top_k,
                       j->teacher.V);
    return CT_OK;
}

static void job_free(dq_job *j) {
    for (int i = 0; j->mods && i < j->n_mods; i++) {
        dev_free(j, j->mods[i].dense);
        dev_free(j, j->mods[i].dw);
    }
    if (j->student_loaded) {
        j->student.layer_grads = NULL;
        j->student.extra_grads = NULL;
        ct_model_free(&j->student);
    }
    if (j->teacher_loaded)
        ct_model_free(&j->teacher);
    if (j->opt_ready)
        ct_optimizer_free(&j->opt);
    if (j->loss_ready)
        ct_distill_loss_free(&j->loss);
    dev_free(j, j->P), dev_free(j, j->G), dev_free(j, j->t_vals), dev_free(j, j->t_idx);
    free(j->mods), free(j->vecs), free(j->lg), free(j->oparams), free(j->ids), free(j->row_w);
    free(j->round_s), free(j->round_b);
    if (j->student_dir[0])
        remove_folder(j->student_dir);
    if (j->be)
        ct_backend_destroy(j->be);
}

ct_status ct_dwq(const ct_dwq_opts *o, ct_dwq_stats *stats, ct_error *err) {
    CT_TRY(check_opts(o, err));
    dq_job j = {.o = o, .B = o->batch_size, .T = o->calib.sequence_length - 1, .comm = o->comm,
                .rank = ct_comm_rank(o->comm), .world = ct_comm_size(o->comm)};
    ct_dwq_stats s = {0};
    int32_t *seqs = NULL;
    ct_status st = ct_backend_cpu_create(&j.be, err);
    if (st == CT_OK)
        st = load_teacher(&j, err);
    if (st == CT_OK)
        st = load_data(&j, &seqs, &s.n_train, &s.n_valid, err);
    if (st == CT_OK)
        st = load_student(&j, err);
    if (st == CT_OK)
        st = setup_params(&j, err);
    if (st == CT_OK)
        st = setup_optimizer(&j, err);
    if (st == CT_OK)
        st = alloc_batch(&j, err);
    if (st == CT_OK) {
        s.n_trainable = j.n_params;
        ct_log_info("[INFO] DWQ: %d modules and %d norms, %lld trainable parameters; %d training and %d validation "
                    "sequences of %d tokens", j.n_mods, j.n_vecs, (long long)j.n_params, s.n_train, s.n_valid,
                    o->calib.sequence_length);
        st = train(&j, seqs, s.n_train, s.n_valid, &s, err);
    }
    free(seqs);
    if (st == CT_OK && j.rank == 0)
        st = write_output(&j, &s.convert, err);
    if (st == CT_OK) // the others wait, so that every rank ends with the output written
        st = ct_comm_barrier(j.comm, err);
    if (st == CT_OK && stats)
        *stats = s;
    job_free(&j);
    return st;
}
