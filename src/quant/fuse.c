// fuse.c: ctune fuse (see fuse.h). The model is loaded on the CPU backend
// with the adapters attached (ct_model_apply_adapters); every adapted module
// is fused on the host (ct_adapter_fuse) and handed to ct_convert as a
// replacement, so the output folder is convert's (same names, dtypes, config,
// tokenizer files, shards, atomic rename). The GGUF export runs inside
// convert's temporary folder, so it is part of the same all-or-nothing output.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/fuse.h"
#include "ctune/log.h"
#include "ctune/model.h"
#include "ctune/progress.h"
#include "ctune/tuned_model.h"

// One adapted module of the loaded model and the weight it adapts.
typedef struct fuse_item {
    const ct_adapter_layer *layer;
    const ct_weight *w;
} fuse_item;

typedef struct fuse_job {
    const ct_fuse_opts *o;
    ct_backend *be;
    ct_model m;
    bool model_loaded;
    ct_tuned_model *tuned;
    bool is_gguf;
    int n;
    fuse_item *items;             // [n]
    ct_fused_weight *fused;       // [n]
    ct_convert_module *replace;   // [n]
    ct_fuse_result res;
} fuse_job;

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void ct_fuse_result_free(ct_fuse_result *r) {
    for (int i = 0; i < r->n_modules; i++)
        free(r->modules[i].path);
    free(r->modules);
    memset(r, 0, sizeof *r);
}

static ct_status check_opts(const ct_fuse_opts *o, ct_error *err) {
    if (!o->model || !o->adapter_path || !o->save_path)
        return ct_fail(err, CT_ERR_INVALID, "fuse: a model, an adapter path and a save path are needed");
    if (!ct_is_dir(o->adapter_path))
        return ct_fail(err, CT_ERR_IO, "The adapter path does not exist: %s", o->adapter_path);
    if (ct_path_exists(o->save_path))
        return ct_fail(err, CT_ERR_INVALID, "cannot save to %s: it already exists (delete it or choose another "
                                            "--save-path)", o->save_path);
    ct_ggml_type t;
    if (o->gguf_type && !ct_gguf_export_type_parse(o->gguf_type, &t))
        return ct_fail(err, CT_ERR_INVALID, "--gguf-type: '%s' is not one of f16, bf16, f32, q8_0, q4_0", o->gguf_type);
    return CT_OK;
}

// The adapted modules of the loaded model, in the model's order.
static ct_status collect_items(fuse_job *j, ct_error *err) {
    const ct_model_adapters *a = j->m.adapters;
    if (!a)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "%s: full fine-tuning weights are not adapters; there is nothing to fuse (load the model "
                       "with --adapter-path instead)", j->o->adapter_path);
    int cap = j->m.L * CT_LIN_COUNT + 2;
    j->items = calloc((size_t)cap, sizeof *j->items);
    if (!j->items)
        return ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
    for (int l = 0; l < j->m.L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++)
            if (a->lin[l * CT_LIN_COUNT + id])
                j->items[j->n++] = (fuse_item){a->lin[l * CT_LIN_COUNT + id], &j->m.layers[l].lin[id].w};
    if (a->embed)
        j->items[j->n++] = (fuse_item){a->embed, &j->m.embed};
    if (a->head)
        j->items[j->n++] = (fuse_item){a->head, &j->m.lm_head.w};
    if (j->n == 0)
        return ct_fail(err, CT_ERR_INVALID, "%s: the adapters select no module of %s", j->o->adapter_path,
                       j->o->model);
    return CT_OK;
}

// Fuses every item (progress bar over the modules) and fills the replacements and the report.
static ct_status fuse_items(fuse_job *j, ct_error *err) {
    const ct_fuse_opts *o = j->o;
    double threshold = o->lost_threshold > 0 ? o->lost_threshold : 0.5;
    j->fused = calloc((size_t)j->n, sizeof *j->fused);
    j->replace = calloc((size_t)j->n, sizeof *j->replace);
    j->res.modules = calloc((size_t)j->n, sizeof *j->res.modules);
    if (!j->fused || !j->replace || !j->res.modules)
        return ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
    ct_progress p;
    ct_progress_begin(&p, "Fusing", j->n);
    ct_status st = CT_OK;
    for (int i = 0; st == CT_OK && i < j->n; i++) {
        const ct_weight *w = j->items[i].w;
        // A GGUF base is written de-quantized (as convert writes it), so it is fused in f32.
        bool dequantize = o->dequantize || j->is_gguf;
        ct_fuse_module *r = &j->res.modules[i];
        st = ct_adapter_fuse(j->be, j->items[i].layer, w, dequantize, &j->fused[i], &r->report, err);
        if (st != CT_OK)
            break;
        j->res.n_modules++;
        r->path = strdup(j->items[i].layer->mod.path);
        if (!r->path)
            st = ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
        r->lost = r->report.delta_rel > 0 && r->report.lost > threshold;
        j->res.n_lost += r->lost;
        j->res.requantized |= j->fused[i].w.bits > 0;
        // dense: the base's dtype (a quantized base: its scales' dtype, as mlx's dequantize gives)
        j->replace[i] = (ct_convert_module){j->items[i].layer->mod.path, j->fused[i].w, w->dtype};
        ct_progress_update(&p, i + 1);
    }
    ct_progress_end(&p);
    return st;
}

// convert's finish hook: the GGUF export, written into the temporary folder
// (a relative --gguf-path) or at its absolute path.
static ct_status export_gguf(void *ctx, const char *tmp_dir, ct_error *err) {
    fuse_job *j = ctx;
    const char *name = j->o->gguf_path ? j->o->gguf_path : "ggml-model-f16.gguf";
    char path[4096];
    if (name[0] == '/')
        snprintf(path, sizeof path, "%s", name);
    else
        CT_TRY(ct_path_join(path, sizeof path, tmp_dir, name, err));
    ct_gguf_export_opts g = {.model_dir = tmp_dir, .path = path, .type = CT_GGML_F16,
                             .tokenizer_gguf = j->is_gguf ? j->o->model : NULL};
    if (j->o->gguf_type)
        ct_gguf_export_type_parse(j->o->gguf_type, &g.type);
    ct_log_info("[INFO] Exporting GGUF %s (%s)", name, ct_ggml_type_name(g.type));
    return ct_gguf_export(&g, err);
}

static ct_status write_folder(fuse_job *j, ct_error *err) {
    const ct_fuse_opts *o = j->o;
    ct_convert_opts c = {
        .model = o->model,
        .mlx_path = o->save_path,
        .dequantize = o->dequantize && j->m.cfg.quant.quantized,
        .keep_dtypes = true,
        .replace = j->replace,
        .n_replace = j->n,
        .finish = o->export_gguf ? export_gguf : NULL,
        .finish_ctx = j,
    };
    return ct_convert(&c, &j->res.stats, err);
}

// The adapters in PEFT's layout; rank, scale, dropout and type come from the layers.
static ct_status export_peft(fuse_job *j, ct_error *err) {
    ct_adapter_layer *layers = malloc(sizeof *layers * (size_t)j->n);
    if (!layers)
        return ct_fail(err, CT_ERR_NOMEM, "fuse: out of memory");
    for (int i = 0; i < j->n; i++)
        layers[i] = *j->items[i].layer;
    ct_adapter_config cfg;
    ct_adapter_config_default(&cfg);
    cfg.type = layers[0].type;
    cfg.rank = layers[0].rank;
    cfg.scale = layers[0].scale;
    cfg.dropout = layers[0].dropout;
    ct_status st = ct_adapter_save_peft(j->o->export_peft, &cfg, layers, j->n, j->be, err);
    ct_adapter_config_free(&cfg);
    free(layers);
    if (st == CT_OK)
        ct_log_info("[INFO] Wrote the PEFT adapters to %s", j->o->export_peft);
    return st;
}

static ct_status load(fuse_job *j, ct_error *err) {
    const ct_fuse_opts *o = j->o;
    j->is_gguf = !ct_is_dir(o->model) && has_suffix(o->model, ".gguf");
    CT_TRY(ct_backend_cpu_create(&j->be, err));
    ct_log_info("[INFO] Loading %s", o->model);
    CT_TRY(ct_model_load(&j->m, o->model, j->be, err));
    j->model_loaded = true;
    if (o->export_gguf && j->m.cfg.quant.quantized && !o->dequantize)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "%s: the GGUF export needs a dense model; add --dequantize to fuse into dense weights", o->model);
    CT_TRY(ct_model_apply_adapters(&j->m, o->adapter_path, &j->tuned, err));
    return collect_items(j, err);
}

static void job_free(fuse_job *j) {
    for (int i = 0; j->fused && i < j->n; i++)
        ct_fused_weight_free(&j->fused[i]);
    free(j->fused);
    free(j->replace);
    free(j->items);
    if (j->tuned)
        ct_tuned_model_free(j->tuned);
    if (j->model_loaded)
        ct_model_free(&j->m);
    if (j->be)
        ct_backend_destroy(j->be);
}

ct_status ct_fuse(const ct_fuse_opts *o, ct_fuse_result *res, ct_error *err) {
    fuse_job j = {.o = o};
    ct_status st = check_opts(o, err);
    if (st == CT_OK)
        st = load(&j, err);
    if (st == CT_OK)
        st = fuse_items(&j, err);
    if (st == CT_OK)
        st = write_folder(&j, err);
    if (st == CT_OK && o->export_peft)
        st = export_peft(&j, err);
    if (st == CT_OK && res)
        *res = j.res;
    else
        ct_fuse_result_free(&j.res);
    job_free(&j);
    return st;
}
