// dynamic_quant.c: mixed-precision quantization for a target bits per weight
// (see dynamic_quant.h): the candidate modules and the output's size, the
// threshold search, the sensitivities file, the KL sensitivities, and the job
// (sensitivities -> threshold -> ct_convert with a per-module hook).
//
// Differences from mlx-lm's quant/dynamic_quant.py, on purpose:
// - the calibration data is the user's (--data), as for ctune quant gptq;
// - W_low / W_high come from the weights cast to the output type with scales
//   of that type, so the student is the all-low model that would be written;
// - an unreachable target is an error naming the reachable range (mlx-lm
//   silently returns a threshold at one end of the range);
// - the threshold is the upper end of the final bisection bracket, the
//   smallest tau tried whose bits per weight are <= the target. mlx-lm takes
//   the bracket's midpoint; the bracket always holds the sensitivity of the
//   module whose promotion crosses the target, and about half the time the
//   midpoint falls below it, so mlx-lm's output overshoots the target by
//   that module.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"
#include "ctune/config.h"
#include "ctune/dynamic_quant.h"
#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/log.h"
#include "ctune/losses.h"
#include "ctune/progress.h"
#include "ctune/safetensors.h"
#include "quant_internal.h"

// ---- the candidate modules and the output's size

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// The output type of a float tensor stored as own: dt if set, else own
// (f16/bf16 kept, anything else f32), as ct_convert casts.
static ct_dtype output_type(bool dt_set, ct_dtype dt, ct_dtype own) {
    if (dt_set)
        return dt;
    return own == CT_F16 || own == CT_BF16 ? own : CT_F32;
}

// --dtype, else config.json's torch_dtype when it names a float type (cfg_dtype).
static ct_status layout_dtype(const char *dtype, const char *cfg_dtype, bool *set, ct_dtype *dt, ct_error *err) {
    const char *name = dtype ? dtype : cfg_dtype;
    *set = true;
    if (!strcmp(name, "float16"))
        *dt = CT_F16;
    else if (!strcmp(name, "bfloat16"))
        *dt = CT_BF16;
    else if (!strcmp(name, "float32"))
        *dt = CT_F32;
    else
        *set = false;
    if (dtype && !*set)
        return ct_fail(err, CT_ERR_INVALID, "--dtype: '%s' is not one of float16, bfloat16, float32", dtype);
    return CT_OK;
}

static ct_status layout_add(ct_dq_layout *lay, const char *path, int64_t rows, int64_t in, ct_dtype sb, ct_error *err) {
    int n = lay->n + 1;
    char **p = realloc(lay->paths, sizeof *p * (size_t)n);
    if (p)
        lay->paths = p;
    int64_t *r = p ? realloc(lay->rows, sizeof *r * (size_t)n) : NULL;
    if (r)
        lay->rows = r;
    int64_t *c = r ? realloc(lay->in, sizeof *c * (size_t)n) : NULL;
    if (c)
        lay->in = c;
    ct_dtype *s = c ? realloc(lay->sb, sizeof *s * (size_t)n) : NULL;
    if (s)
        lay->sb = s;
    char *name = s ? strdup(path) : NULL;
    if (!name)
        return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    lay->paths[lay->n] = name;
    lay->rows[lay->n] = rows;
    lay->in[lay->n] = in;
    lay->sb[lay->n] = sb;
    lay->n = n;
    return CT_OK;
}

static int cmp_views(const void *a, const void *b) {
    return strcmp(((const ct_tensor_view *)a)->name, ((const ct_tensor_view *)b)->name);
}

// One source tensor into the layout: a candidate module or fixed bytes.
static ct_status layout_tensor(ct_dq_layout *lay, const ct_weights *w, const ct_tensor_view *t, bool tied,
                               bool dt_set, ct_dtype dt, const char *model_dir, ct_error *err) {
    if (has_suffix(t->name, "rotary_emb.inv_freq") || (tied && !strcmp(t->name, "lm_head.weight")))
        return CT_OK;
    char module[256], sc[300];
    if (ct_rtn_is_quantizable(t->name, t->ndim, t->dtype, module, sizeof module))
        return layout_add(lay, module, t->shape[0], t->shape[1], output_type(dt_set, dt, t->dtype), err);
    if (has_suffix(t->name, ".scales")) {
        snprintf(sc, sizeof sc, "%.*s.weight", (int)(strlen(t->name) - strlen(".scales")), t->name);
        if (ct_weights_find(w, sc))
            return ct_fail(err, CT_ERR_UNSUPPORTED,
                           "%s: the model is already quantized (%s); dynamic quantization needs a dense model "
                           "(ctune convert --dequantize first)", model_dir, t->name);
    }
    uint64_t n = (uint64_t)ct_tensor_numel(t);
    ct_dtype out = ct_dtype_is_float(t->dtype) ? output_type(dt_set, dt, t->dtype) : t->dtype;
    lay->fixed_bytes += n * ct_dtype_size(out);
    lay->fixed_params += n;
    return CT_OK;
}

ct_status ct_dq_layout_load(ct_dq_layout *lay, const char *model_dir, const char *dtype, ct_error *err) {
    memset(lay, 0, sizeof *lay);
    bool dt_set;
    ct_dtype dt = CT_F32;
    ct_model_config cfg;
    CT_TRY(ct_model_config_load(&cfg, model_dir, err));
    bool tied = cfg.tie_word_embeddings;
    ct_status dst = layout_dtype(dtype, cfg.dtype, &dt_set, &dt, err);
    ct_model_config_free(&cfg);
    CT_TRY(dst);
    ct_weights w;
    CT_TRY(ct_weights_open(&w, model_dir, err));
    ct_tensor_view *order = malloc(sizeof *order * (size_t)(w.n ? w.n : 1));
    ct_status st = order ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    if (st == CT_OK) { // convert's order: by name
        memcpy(order, w.views, sizeof *order * (size_t)w.n);
        qsort(order, (size_t)w.n, sizeof *order, cmp_views);
    }
    for (int i = 0; st == CT_OK && i < w.n; i++)
        st = layout_tensor(lay, &w, &order[i], tied, dt_set, dt, model_dir, err);
    free(order);
    ct_weights_close(&w);
    if (st == CT_OK && lay->n == 0)
        st = ct_fail(err, CT_ERR_INVALID, "%s: no module can be quantized (no 2-D floating .weight tensor)",
                     model_dir);
    if (st != CT_OK)
        ct_dq_layout_free(lay);
    return st;
}

void ct_dq_layout_free(ct_dq_layout *lay) {
    for (int i = 0; i < lay->n; i++)
        free(lay->paths[i]);
    free(lay->paths), free(lay->rows), free(lay->in), free(lay->sb);
    memset(lay, 0, sizeof *lay);
}

int ct_dq_layout_find(const ct_dq_layout *lay, const char *path) {
    for (int i = 0; i < lay->n; i++)
        if (!strcmp(lay->paths[i], path))
            return i;
    return -1;
}

ct_quant_spec ct_dq_module_spec(const ct_dq_layout *lay, int i, bool high, ct_dq_setting lo, ct_dq_setting hi) {
    ct_dq_setting s = high ? hi : lo;
    ct_quant_spec q = {.quantized = lay->in[i] % s.group_size == 0, .bits = s.bits, .group_size = s.group_size,
                       .mode = "affine"};
    return q;
}

double ct_dq_bpw(const ct_dq_layout *lay, const bool *high, ct_dq_setting lo, ct_dq_setting hi) {
    uint64_t bytes = lay->fixed_bytes, params = lay->fixed_params;
    for (int i = 0; i < lay->n; i++) {
        ct_quant_spec s = ct_dq_module_spec(lay, i, high[i], lo, hi);
        uint64_t rows = (uint64_t)lay->rows[i], in = (uint64_t)lay->in[i], sb = ct_dtype_size(lay->sb[i]);
        params += rows * in;
        if (s.quantized)
            bytes += rows * 4 * (uint64_t)ct_affine_row_words((int64_t)in, s.bits) +
                     2 * rows * (in / (uint64_t)s.group_size) * sb;
        else
            bytes += rows * in * sb;
    }
    return params ? 8.0 * (double)bytes / (double)params : 0;
}

// ---- the threshold

// Modules above tau -> high (n); returns the bits per weight.
static double bpw_at(const ct_dq_layout *lay, const double *sens, double tau, ct_dq_setting lo, ct_dq_setting hi,
                     bool *high, int *n_high) {
    *n_high = 0;
    for (int i = 0; i < lay->n; i++) {
        high[i] = sens[i] > tau;
        *n_high += high[i];
    }
    return ct_dq_bpw(lay, high, lo, hi);
}

// Fails unless target_bpw lies between the all-low and the all-high bits per
// weight (the message gives that range). high (n) is scratch.
static ct_status check_reachable(const ct_dq_layout *lay, double target_bpw, ct_dq_setting lo, ct_dq_setting hi,
                                 bool *high, ct_error *err) {
    for (int i = 0; i < lay->n; i++)
        high[i] = false;
    double all_low = ct_dq_bpw(lay, high, lo, hi);
    for (int i = 0; i < lay->n; i++)
        high[i] = true;
    double all_high = ct_dq_bpw(lay, high, lo, hi);
    double lo_bpw = all_low < all_high ? all_low : all_high, hi_bpw = all_low < all_high ? all_high : all_low;
    if (target_bpw < lo_bpw || target_bpw > hi_bpw)
        return ct_fail(err, CT_ERR_INVALID,
                       "--target-bpw %g cannot be reached with %d-bit group %d (low) and %d-bit group %d (high): "
                       "this model gives %.4f bits per weight all low and %.4f all high",
                       target_bpw, lo.bits, lo.group_size, hi.bits, hi.group_size, all_low, all_high);
    return CT_OK;
}

ct_status ct_dq_check_target(const ct_dq_layout *lay, double target_bpw, ct_dq_setting lo, ct_dq_setting hi,
                             ct_error *err) {
    bool *high = malloc(sizeof *high * (size_t)(lay->n > 0 ? lay->n : 1));
    if (!high)
        return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    ct_status st = check_reachable(lay, target_bpw, lo, hi, high, err);
    free(high);
    return st;
}

ct_status ct_dq_threshold(const ct_dq_layout *lay, const double *sens, double target_bpw, ct_dq_setting lo,
                          ct_dq_setting hi, ct_dq_split *out, ct_error *err) {
    bool *high = malloc(sizeof *high * (size_t)(lay->n > 0 ? lay->n : 1));
    if (!high)
        return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    double min_t = INFINITY, max_t = -INFINITY;
    for (int i = 0; i < lay->n; i++) {
        min_t = sens[i] < min_t ? sens[i] : min_t;
        max_t = sens[i] > max_t ? sens[i] : max_t;
    }
    ct_status st = check_reachable(lay, target_bpw, lo, hi, high, err);
    if (st == CT_OK) {
        double tol = 1e-3 * (max_t - min_t);
        int n_high;
        while (max_t - min_t > tol) { // mlx-lm's estimate_threshold
            double mid = (max_t + min_t) / 2;
            if (bpw_at(lay, sens, mid, lo, hi, high, &n_high) > target_bpw)
                min_t = mid;
            else
                max_t = mid;
        }
        out->threshold = max_t; // mlx-lm: the midpoint, which may let one module too many be high

        out->bpw = bpw_at(lay, sens, out->threshold, lo, hi, high, &out->n_high);
    }
    free(high);
    return st;
}

// ---- the sensitivities file

ct_status ct_dq_sens_save(const char *path, const ct_dq_layout *lay, const double *sens, ct_error *err) {
    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (int i = 0; ok && i < lay->n; i++) {
        cJSON *pair = cJSON_CreateArray();
        ok = pair && cJSON_AddItemToArray(root, pair) && cJSON_AddItemToArray(pair, cJSON_CreateString(lay->paths[i])) &&
             cJSON_AddItemToArray(pair, cJSON_CreateNumber(sens[i]));
        if (!pair)
            break;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    ct_status st = ct_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

static ct_status sens_entry(const char *path, const cJSON *e, int k, const ct_dq_layout *lay, double *sens,
                            bool *seen, ct_error *err) {
    const cJSON *name = cJSON_GetArrayItem(e, 0), *val = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(name) || !cJSON_IsNumber(val))
        return ct_fail(err, CT_ERR_FORMAT, "%s: entry %d: expected [module path, number], found %s", path, k + 1,
                       cJSON_IsArray(e) ? "a list that is not [string, number]" : ct_json_type_name(e));
    int i = ct_dq_layout_find(lay, name->valuestring);
    if (i < 0)
        return ct_fail(err, CT_ERR_INVALID, "%s: entry %d: '%s' is not a quantizable module of this model", path,
                       k + 1, name->valuestring);
    if (seen[i])
        return ct_fail(err, CT_ERR_FORMAT, "%s: entry %d: '%s' appears twice", path, k + 1, name->valuestring);
    if (!isfinite(val->valuedouble))
        return ct_fail(err, CT_ERR_NUMERIC, "%s: entry %d: the value of '%s' is not finite", path, k + 1,
                       name->valuestring);
    seen[i] = true;
    sens[i] = val->valuedouble;
    return CT_OK;
}

ct_status ct_dq_sens_load(const char *path, const ct_dq_layout *lay, double *sens, ct_error *err) {
    cJSON *root;
    CT_TRY(ct_json_load_file(path, &root, err));
    bool *seen = calloc((size_t)lay->n, sizeof *seen);
    ct_status st = seen ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    if (st == CT_OK && !cJSON_IsArray(root))
        st = ct_fail(err, CT_ERR_FORMAT, "%s: expected a list of [module path, number] pairs, found %s", path,
                     ct_json_type_name(root));
    int k = 0;
    for (const cJSON *e = root ? root->child : NULL; st == CT_OK && e; e = e->next, k++)
        st = sens_entry(path, e, k, lay, sens, seen, err);
    for (int i = 0; st == CT_OK && i < lay->n; i++)
        if (!seen[i])
            st = ct_fail(err, CT_ERR_INVALID, "%s: no sensitivity for module '%s' (the file is for another model?)",
                         path, lay->paths[i]);
    free(seen);
    cJSON_Delete(root);
    return st;
}

void ct_dq_sens_default_path(const char *model, char *out, size_t n) {
    snprintf(out, n, "%s_sensitivities.json", model);
    for (char *p = out; *p; p++)
        if (*p == '/')
            *p = '_';
}

// ---- the sensitivities

// The model's weight of a layout module ("model.embed_tokens", "lm_head",
// "model.layers.3.mlp.up_proj"), or NULL.
static ct_weight *module_weight(ct_model *m, const char *path) {
    if (!strcmp(path, "model.embed_tokens"))
        return &m->embed;
    if (!strcmp(path, "lm_head"))
        return &m->lm_head.w;
    int l, used = 0;
    char part[32], name[32];
    if (sscanf(path, "model.layers.%d.%31[a-z_].%31[a-z_]%n", &l, part, name, &used) != 3 || path[used] ||
        l < 0 || l >= m->L)
        return NULL;
    for (int id = 0; id < CT_LIN_COUNT; id++) {
        bool attn = id <= CT_LIN_O;
        if (!strcmp(name, ct_linear_name((ct_linear_id)id)) && !strcmp(part, attn ? "self_attn" : "mlp"))
            return &m->layers[l].lin[id].w;
    }
    return NULL;
}

typedef struct dq_sens {
    ct_model *m;
    const ct_dq_layout *lay;
    ct_weight **slot;     // [n] the model's weight of each module
    ct_weight *orig;      // [n] the weights as loaded (restored on exit)
    int n_ready;          // modules whose slot and orig are set
    bool tied;            // lm_head.w is the embedding
    float **low, **grad;  // [n] device (rows, in) f32: W_low and the summed gradients
    ct_layer_grads *lg;   // [L]
    ct_extra_grads xg;
    float *teacher;       // (B*T, V) device: the batch's teacher logits
    ct_distill_loss kl;   // KL(p_teacher || q_student), temperature 1
    bool kl_ready;
    float *weight;        // (cap_weight) host: each row's weight in the loss
    int64_t cap_weight;
    double scale;         // 1 / (rows of the batch): the loss is a mean over positions
} dq_sens;

// x (n) rounded to sb's precision in place (what storing it as sb keeps).
static void round_to(float *x, size_t n, ct_dtype sb) {
    for (size_t k = 0; sb != CT_F32 && k < n; k++)
        x[k] = sb == CT_F16 ? ct_f16_to_f32(ct_f32_to_f16(x[k])) : ct_bf16_to_f32(ct_f32_to_bf16(x[k]));
}

// W of module i as f32 rounded to its output type -> w (rows, in) host;
// then the affine round trip dequantize(quantize(W, s)) with scales of that
// type (unless in is not a multiple of the group size: the module then stays
// dense).
static ct_status module_qdq(dq_sens *j, int i, const ct_dq_setting *s, float *w, ct_error *err) {
    const ct_weight *o = &j->orig[i];
    size_t n = (size_t)(o->rows * o->cols), ng = (size_t)(o->cols / s->group_size);
    void *raw = malloc(n * ct_dtype_size(o->dtype));
    if (!raw)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", j->lay->paths[i]);
    j->m->be->download(j->m->be, raw, o->data, n * ct_dtype_size(o->dtype));
    ct_convert_to_f32(w, raw, o->dtype, n);
    free(raw);
    ct_dtype sb = j->lay->sb[i];
    round_to(w, n, sb); // as ct_convert casts before quantizing
    if (o->cols % s->group_size)
        return CT_OK;
    uint32_t *wq = malloc(sizeof *wq * (size_t)(o->rows * ct_affine_row_words(o->cols, s->bits)));
    void *sc = malloc(ct_dtype_size(sb) * (size_t)o->rows * ng), *bi = malloc(ct_dtype_size(sb) * (size_t)o->rows * ng);
    ct_status st = wq && sc && bi ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", j->lay->paths[i]);
    if (st == CT_OK)
        st = ct_affine_quantize(w, o->rows, o->cols, s->bits, s->group_size, wq, sc, bi, sb, err);
    if (st == CT_OK)
        ct_affine_dequantize(wq, sc, bi, sb, o->rows, o->cols, s->bits, s->group_size, w);
    free(wq), free(sc), free(bi);
    return st;
}

// Where the model's backward puts module i's gradient.
static void attach_grad(dq_sens *j, int i) {
    ct_model *m = j->m;
    if (j->slot[i] == &m->embed)
        j->xg.embed = j->grad[i];
    else if (j->slot[i] == &m->lm_head.w)
        j->xg.lm_head = j->grad[i];
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++)
            if (j->slot[i] == &m->layers[l].lin[id].w)
                j->lg[l].w[id] = j->grad[i];
}

// Finds every module's weight, makes W_low and a zeroed gradient for it.
static ct_status sens_setup(dq_sens *j, ct_dq_setting lo, ct_error *err) {
    ct_model *m = j->m;
    int n = j->lay->n;
    j->tied = m->lm_head.w.data == m->embed.data;
    j->slot = calloc((size_t)n, sizeof *j->slot);
    j->orig = calloc((size_t)n, sizeof *j->orig);
    j->low = calloc((size_t)n, sizeof *j->low);
    j->grad = calloc((size_t)n, sizeof *j->grad);
    j->lg = calloc((size_t)m->L, sizeof *j->lg);
    if (!j->slot || !j->orig || !j->low || !j->grad || !j->lg)
        return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    for (int i = 0; i < n; i++) {
        const char *path = j->lay->paths[i];
        j->slot[i] = module_weight(m, path);
        if (!j->slot[i])
            return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: not a module the sensitivity pass knows", path);
        j->orig[i] = *j->slot[i];
        j->n_ready = i + 1;
        if (j->orig[i].bits || j->orig[i].rows != j->lay->rows[i] || j->orig[i].cols != j->lay->in[i])
            return ct_fail(err, CT_ERR_INVALID, "%s: the loaded weight is not the dense (%lld, %lld) of the folder",
                           path, (long long)j->lay->rows[i], (long long)j->lay->in[i]);
        size_t bytes = sizeof(float) * (size_t)(j->orig[i].rows * j->orig[i].cols);
        float *w = malloc(bytes);
        ct_status st = w ? module_qdq(j, i, &lo, w, err) : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
        if (st == CT_OK)
            st = m->be->alloc(m->be, bytes, (void **)&j->low[i], err);
        if (st == CT_OK) {
            m->be->upload(m->be, j->low[i], w, bytes);
            st = m->be->alloc(m->be, bytes, (void **)&j->grad[i], err);
        }
        free(w);
        CT_TRY(st);
        attach_grad(j, i);
    }
    return CT_OK;
}

// The model runs the teacher (as loaded) or the student (every module at
// W_low, with gradients).
static void use_weights(dq_sens *j, bool student) {
    ct_model *m = j->m;
    for (int i = 0; i < j->n_ready; i++) {
        ct_weight w = j->orig[i];
        if (student)
            w = (ct_weight){.rows = w.rows, .cols = w.cols, .dtype = CT_F32, .data = j->low[i]};
        *j->slot[i] = w;
    }
    if (j->tied)
        m->lm_head.w = m->embed;
    m->layer_grads = student ? j->lg : NULL;
    m->extra_grads = student ? &j->xg : NULL;
}

// ct_logits_loss_fn of the teacher pass: keeps the logits.
static ct_status keep_logits(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits,
                             double *loss_sum, ct_error *err) {
    dq_sens *j = ctx;
    (void)dlogits, (void)loss_sum, (void)err;
    size_t V = (size_t)j->m->V;
    j->m->be->copy(j->m->be, j->teacher + (size_t)row0 * V, logits, sizeof(float) * V * (size_t)n);
    return CT_OK;
}

// ct_logits_loss_fn of the student pass: each row weighs 1 / (rows of the
// batch) (the loss is the mean over positions of KL(p_teacher || q_student)).
static ct_status kl_loss(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits,
                         double *loss_sum, ct_error *err) {
    dq_sens *j = ctx;
    if (n > j->cap_weight) {
        float *w = realloc(j->weight, sizeof *w * (size_t)n);
        if (!w)
            return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
        j->weight = w;
        j->cap_weight = n;
    }
    for (int64_t r = 0; r < n; r++)
        j->weight[r] = (float)j->scale;
    return ct_distill_loss_apply(&j->kl, logits, j->teacher + (size_t)row0 * (size_t)j->m->V, NULL, j->weight, n,
                                 j->m->V, dlogits, loss_sum, err);
}

// Sum over batches of d(mean KL)/d(W_low) into the gradients.
static ct_status sens_batches(dq_sens *j, const int32_t *ids, int n_seq, int T, int batch_size, ct_error *err) {
    ct_progress prog;
    int n_batches = (n_seq + batch_size - 1) / batch_size;
    ct_progress_begin(&prog, "sensitivities", n_batches);
    ct_status st = CT_OK;
    for (int b = 0; st == CT_OK && b < n_batches; b++) {
        int b0 = b * batch_size, nb = n_seq - b0 < batch_size ? n_seq - b0 : batch_size;
        const int32_t *x = ids + (size_t)b0 * (size_t)T;
        double loss = 0;
        use_weights(j, false);
        st = ct_model_train_logits(j->m, x, nb, T, false, keep_logits, j, &loss, err);
        use_weights(j, true);
        j->scale = 1.0 / ((double)nb * T);
        if (st == CT_OK)
            st = ct_model_train_logits(j->m, x, nb, T, true, kl_loss, j, &loss, err);
        if (st == CT_OK && !isfinite(loss))
            st = ct_fail(err, CT_ERR_NUMERIC, "dynamic quant: the KL loss of batch %d is %g", b + 1, loss);
        ct_progress_update(&prog, b + 1);
    }
    ct_progress_end(&prog);
    use_weights(j, false);
    return st;
}

// sens[i] = sum(g / n_batches * (W_low - W_high)) / (numel / 1e6).
static ct_status sens_values(dq_sens *j, int n_batches, ct_dq_setting hi, double *sens, ct_error *err) {
    for (int i = 0; i < j->lay->n; i++) {
        size_t n = (size_t)(j->orig[i].rows * j->orig[i].cols);
        float *g = malloc(sizeof *g * n), *wl = malloc(sizeof *wl * n), *wh = malloc(sizeof *wh * n);
        ct_status st = g && wl && wh ? module_qdq(j, i, &hi, wh, err)
                                     : ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", j->lay->paths[i]);
        if (st == CT_OK) {
            j->m->be->download(j->m->be, g, j->grad[i], sizeof(float) * n);
            j->m->be->download(j->m->be, wl, j->low[i], sizeof(float) * n);
            double dot = 0;
            for (size_t k = 0; k < n; k++)
                dot += (double)g[k] * ((double)wl[k] - (double)wh[k]);
            sens[i] = dot / n_batches / ((double)n / 1e6);
            if (!isfinite(sens[i]))
                st = ct_fail(err, CT_ERR_NUMERIC, "%s: the sensitivity is not finite", j->lay->paths[i]);
        }
        free(g), free(wl), free(wh);
        CT_TRY(st);
    }
    return CT_OK;
}

static void sens_free(dq_sens *j) {
    ct_backend *be = j->m->be;
    for (int i = 0; j->low && i < j->lay->n; i++) {
        if (j->low[i])
            be->free(be, j->low[i]);
        if (j->grad[i])
            be->free(be, j->grad[i]);
    }
    use_weights(j, false);
    free(j->slot), free(j->orig), free(j->low), free(j->grad), free(j->lg), free(j->weight);
    if (j->teacher)
        be->free(be, j->teacher);
    if (j->kl_ready)
        ct_distill_loss_free(&j->kl);
}

ct_status ct_dq_sensitivities(ct_model *m, const ct_dq_layout *lay, const int32_t *ids, int n_seq, int T,
                              int batch_size, ct_dq_setting lo, ct_dq_setting hi, double *sens, ct_error *err) {
    if (n_seq < 1 || T < 1 || batch_size < 1)
        return ct_fail(err, CT_ERR_INVALID, "dynamic quant: no calibration data (%d sequences of %d)", n_seq, T);
    dq_sens j = {.m = m, .lay = lay};
    int B = batch_size < n_seq ? batch_size : n_seq;
    ct_status st = sens_setup(&j, lo, err);
    if (st == CT_OK)
        st = m->be->alloc(m->be, sizeof(float) * (size_t)B * (size_t)T * (size_t)m->V, (void **)&j.teacher, err);
    if (st == CT_OK)
        st = ct_distill_loss_init(&j.kl, m->be, 1.0f, false, 0, err);
    j.kl_ready = st == CT_OK;
    if (st == CT_OK)
        st = sens_batches(&j, ids, n_seq, T, B, err);
    if (st == CT_OK)
        st = sens_values(&j, (n_seq + B - 1) / B, hi, sens, err);
    ct_model_train_free(m);
    sens_free(&j);
    return st;
}

// ---- the job

typedef struct dq_job {
    const ct_dq_opts *o;
    ct_dq_layout lay;
    double *sens;      // [lay.n]
    double threshold;
    ct_backend *be;
    ct_model m;
    bool model_loaded;
    int32_t *ids;      // (n_seq, T) calibration tokens
    int n_seq;
} dq_job;

static ct_status check_opts(const ct_dq_opts *o, ct_error *err) {
    if (!o->model || !o->mlx_path)
        return ct_fail(err, CT_ERR_INVALID, "dynamic quant: a model and an output path are needed");
    CT_TRY(ct_affine_check(o->low.bits, o->low.group_size, o->low.group_size, "--low-bits/--low-group-size", err));
    CT_TRY(ct_affine_check(o->high.bits, o->high.group_size, o->high.group_size, "--high-bits/--high-group-size",
                           err));
    if (!isfinite(o->target_bpw) || o->target_bpw <= 0)
        return ct_fail(err, CT_ERR_INVALID, "--target-bpw must be a positive number, not %g", o->target_bpw);
    if ((!o->sensitivities || o->report_ppl) && !o->calib.data)
        return ct_fail(err, CT_ERR_INVALID, "calibration data is needed: --data (a text file, a .jsonl file or a "
                       "dataset folder)%s", o->sensitivities ? " for --report-ppl" : "");
    if (ct_path_exists(o->mlx_path))
        return ct_fail(err, CT_ERR_INVALID,
                       "cannot save to %s: it already exists (delete it or choose another --mlx-path)", o->mlx_path);
    return CT_OK;
}

static ct_status load_model(dq_job *j, ct_error *err) {
    if (j->model_loaded)
        return CT_OK;
    if (!j->be)
        CT_TRY(ct_backend_cpu_create(&j->be, err));
    CT_TRY(ct_model_load(&j->m, j->o->model, j->be, err));
    j->model_loaded = true;
    j->m.grad_checkpoint = j->o->grad_checkpoint;
    return quant_check_arch(&j->m, j->o->model, "dynamic quantization", err);
}

static void free_model(dq_job *j) {
    if (j->model_loaded)
        ct_model_free(&j->m);
    j->model_loaded = false;
}

static ct_status load_calibration(dq_job *j, ct_error *err) {
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load(&tok, j->o->model, err));
    ct_status st = ct_calib_load(tok, &j->o->calib, &j->ids, &j->n_seq, err);
    ct_tokenizer_free(tok);
    return st;
}

// exp(mean next-token cross-entropy) of m over the calibration sequences.
static ct_status perplexity(ct_model *m, const int32_t *ids, int n_seq, int T, double *ppl, ct_error *err) {
    ct_kv_cache kv;
    CT_TRY(ct_kv_cache_init(&kv, m, 1, T, err));
    double nll = 0;
    int64_t count = 0;
    ct_status st = CT_OK;
    for (int s = 0; st == CT_OK && s < n_seq; s++) {
        double part;
        int64_t n;
        st = ct_model_sequence_nll(m, &kv, ids + (size_t)s * (size_t)T, T, &part, &n, err);
        nll += part;
        count += n;
    }
    ct_kv_cache_free(&kv, m);
    *ppl = count ? exp(nll / (double)count) : NAN;
    return st;
}

static ct_status quantized_perplexity(dq_job *j, double *ppl, ct_error *err) {
    ct_model q;
    CT_TRY(ct_model_load(&q, j->o->mlx_path, j->be, err));
    ct_status st = perplexity(&q, j->ids, j->n_seq, j->o->calib.sequence_length, ppl, err);
    ct_model_free(&q);
    return st;
}

static ct_status get_sensitivities(dq_job *j, ct_dq_stats *s, ct_error *err) {
    const ct_dq_opts *o = j->o;
    if (o->sensitivities) {
        CT_TRY(ct_dq_sens_load(o->sensitivities, &j->lay, j->sens, err));
        ct_log_info("[INFO] Read %d sensitivities from %s", j->lay.n, o->sensitivities);
        return CT_OK;
    }
    CT_TRY(load_model(j, err));
    double t0 = ct_now();
    CT_TRY(ct_dq_sensitivities(&j->m, &j->lay, j->ids, j->n_seq, o->calib.sequence_length,
                               o->batch_size > 0 ? o->batch_size : 4, o->low, o->high, j->sens, err));
    if (o->sens_out)
        snprintf(s->sens_path, sizeof s->sens_path, "%s", o->sens_out);
    else
        ct_dq_sens_default_path(o->model, s->sens_path, sizeof s->sens_path);
    CT_TRY(ct_dq_sens_save(s->sens_path, &j->lay, j->sens, err));
    ct_log_info("[INFO] Estimated %d sensitivities in %.1f s; saved them to %s", j->lay.n, ct_now() - t0,
                s->sens_path);
    return CT_OK;
}

// ---- the output (ct_convert hook)

static ct_quant_spec hook_spec(void *ctx, const char *module, int64_t in, bool *override) {
    const dq_job *j = ctx;
    int i = ct_dq_layout_find(&j->lay, module);
    *override = false;
    if (i < 0) { // not in the layout: cannot happen for the folder it was read from
        ct_quant_spec s = {.quantized = in % j->o->low.group_size == 0, .bits = j->o->low.bits,
                           .group_size = j->o->low.group_size, .mode = "affine"};
        return s;
    }
    bool high = j->sens[i] > j->threshold;
    ct_quant_spec s = ct_dq_module_spec(&j->lay, i, high, j->o->low, j->o->high);
    *override = high && s.quantized;
    return s;
}

static ct_status write_output(dq_job *j, ct_convert_stats *cs, ct_error *err) {
    ct_convert_hook hook = {.ctx = j, .spec = hook_spec};
    ct_convert_opts co = {.model = j->o->model, .mlx_path = j->o->mlx_path, .quantize = true,
                          .q_bits = j->o->low.bits, .q_group_size = j->o->low.group_size, .dtype = j->o->dtype,
                          .hook = &hook};
    return ct_convert(&co, cs, err);
}

static ct_status run(dq_job *j, ct_dq_stats *s, ct_error *err) {
    const ct_dq_opts *o = j->o;
    CT_TRY(ct_dq_layout_load(&j->lay, o->model, o->dtype, err));
    s->n_modules = j->lay.n;
    j->sens = malloc(sizeof *j->sens * (size_t)j->lay.n);
    if (!j->sens)
        return ct_fail(err, CT_ERR_NOMEM, "dynamic quant: out of memory");
    if (!o->sensitivities || o->report_ppl) {
        CT_TRY(load_calibration(j, err));
        s->n_sequences = j->n_seq;
    }
    if (!o->sensitivities) // before the costly estimation (a given file is read first: its errors come first)
        CT_TRY(ct_dq_check_target(&j->lay, o->target_bpw, o->low, o->high, err));
    CT_TRY(get_sensitivities(j, s, err));
    CT_TRY(ct_dq_threshold(&j->lay, j->sens, o->target_bpw, o->low, o->high, &s->split, err));
    j->threshold = s->split.threshold;
    ct_log_info("[INFO] Threshold %.6g: %d of %d modules at %d-bit group %d, the rest at %d-bit group %d; "
                "%.4f bits per weight", s->split.threshold, s->split.n_high, j->lay.n, o->high.bits,
                o->high.group_size, o->low.bits, o->low.group_size, s->split.bpw);
    if (o->report_ppl) {
        CT_TRY(load_model(j, err));
        CT_TRY(perplexity(&j->m, j->ids, j->n_seq, o->calib.sequence_length, &s->ppl_before, err));
    }
    free_model(j);
    CT_TRY(write_output(j, &s->convert, err));
    if (o->report_ppl)
        CT_TRY(quantized_perplexity(j, &s->ppl_after, err));
    return CT_OK;
}

ct_status ct_dynamic_quant(const ct_dq_opts *o, ct_dq_stats *stats, ct_error *err) {
    CT_TRY(check_opts(o, err));
    dq_job j = {.o = o};
    ct_dq_stats s;
    memset(&s, 0, sizeof s);
    s.ppl_before = s.ppl_after = NAN;
    ct_status st = run(&j, &s, err);
    free_model(&j);
    if (j.be)
        ct_backend_destroy(j.be);
    free(j.ids), free(j.sens);
    ct_dq_layout_free(&j.lay);
    if (st == CT_OK && stats)
        *stats = s;
    return st;
}

