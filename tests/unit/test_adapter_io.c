// Adapter selection (mlx-lm's keys rules), the trainable-parameters line, and
// adapter files: mlx-lm and PEFT layouts, round trips and load validation.
#include <stdlib.h>

#include "ctune/adapter.h"
#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/safetensors.h"
#include "harness.h"

// A tiny model: 2 blocks of q_proj (16->16), v_proj (16->8), down_proj (24->16, 4-bit), plus embed and head.
static const ct_module_desc MODS[] = {
    {"model.embed_tokens", CT_MODULE_EMBEDDING, 32, 16, 0, 0, false},
    {"model.layers.0.self_attn.q_proj", CT_MODULE_LINEAR, 16, 16, 0, 0, true},
    {"model.layers.0.self_attn.v_proj", CT_MODULE_LINEAR, 16, 8, 0, 0, false},
    {"model.layers.0.mlp.down_proj", CT_MODULE_LINEAR, 64, 16, 4, 32, false},
    {"model.layers.1.self_attn.q_proj", CT_MODULE_LINEAR, 16, 16, 0, 0, true},
    {"model.layers.1.self_attn.v_proj", CT_MODULE_LINEAR, 16, 8, 0, 0, false},
    {"model.layers.1.mlp.down_proj", CT_MODULE_LINEAR, 64, 16, 4, 32, false},
    {"lm_head", CT_MODULE_LINEAR, 16, 32, 0, 0, false},
};
enum { NM = sizeof MODS / sizeof *MODS };

static int count_sel(const bool *s) {
    int n = 0;
    for (int i = 0; i < NM; i++)
        n += s[i];
    return n;
}

TEST(adapter_select_follows_mlx_keys_rules) {
    ct_adapter_config c;
    ct_error err;
    bool s[NM];
    ct_adapter_config_default(&c);
    CHECK_OK(ct_adapter_select(MODS, NM, &c, s, &err), &err); // 16 >= 2 blocks: all blocks
    CHECK_EQ(count_sel(s), 6);
    CHECK(!s[0] && !s[7]);
    c.num_layers = 1;
    CHECK_OK(ct_adapter_select(MODS, NM, &c, s, &err), &err);
    CHECK_EQ(count_sel(s), 3);
    CHECK(s[4] && s[5] && s[6]);
    const char *keys[] = {"self_attn.q_proj", "lm_head", "model.embed_tokens"};
    CHECK_OK(ct_adapter_config_set_keys(&c, keys, 3, &err), &err);
    CHECK_OK(ct_adapter_select(MODS, NM, &c, s, &err), &err);
    CHECK_EQ(count_sel(s), 3);
    CHECK(s[0] && s[4] && s[7]);
    const char *bad[] = {"self_attn.q_proj", "q_proj"};
    CHECK_OK(ct_adapter_config_set_keys(&c, bad, 2, &err), &err);
    CHECK_FAILS(ct_adapter_select(MODS, NM, &c, s, &err), &err, "\"q_proj\" matches no module");
    c.num_layers = 0;
    CHECK_FAILS(ct_adapter_select(MODS, NM, &c, s, &err), &err, "num_layers");
    ct_adapter_config_free(&c);
    int b;
    const char *rel;
    CHECK(ct_module_block("model.layers.12.mlp.up_proj", &b, &rel) && b == 12);
    CHECK_STREQ(rel, "mlp.up_proj");
    CHECK(!ct_module_block("lm_head", &b, &rel));
    CHECK(!ct_module_block("model.sublayers.1.x", &b, &rel));
}

TEST(adapter_trainable_parameters_text_matches_mlx) {
    char buf[128];
    ct_format_trainable_parameters(buf, sizeof buf, 1234567, 135000000);
    CHECK_STREQ(buf, "Trainable parameters: 0.914% (1.235M/135.000M)"); // from mlx-lm's f-string
    CHECK_EQ(ct_module_param_count(&MODS[3]), 64 * 16);                 // quantized: unpacked
    CHECK_EQ(ct_module_param_count(&MODS[1]), 16 * 16 + 16);
    CHECK_EQ(ct_adapter_param_count(&MODS[2], CT_ADAPTER_LORA, 8), 8 * (16 + 8));
    CHECK_EQ(ct_adapter_param_count(&MODS[2], CT_ADAPTER_DORA, 8), 8 * (16 + 8) + 8);
    CHECK_EQ(ct_adapter_param_count(&MODS[0], CT_ADAPTER_DORA, 2), 2 * 48 + 32);
}

// Layers for the selected modules, with random parameters (host == device on the CPU backend).
typedef struct fixture {
    ct_backend *be;
    ct_adapter_config cfg;
    ct_adapter_layer layers[NM];
    int n;
    float *w[NM];
} fixture;

static ct_status build(fixture *f, ct_adapter_type type, ct_error *err) {
    memset(f, 0, sizeof *f);
    CT_TRY(ct_backend_cpu_create(&f->be, err));
    ct_adapter_config_default(&f->cfg);
    f->cfg.type = type, f->cfg.rank = 4, f->cfg.scale = 3.0f, f->cfg.num_layers = 1;
    const char *keys[] = {"self_attn.q_proj", "mlp.down_proj", "model.embed_tokens"};
    CT_TRY(ct_adapter_config_set_keys(&f->cfg, keys, 3, err));
    bool sel[NM];
    CT_TRY(ct_adapter_select(MODS, NM, &f->cfg, sel, err));
    uint64_t st = 11;
    for (int i = 0; i < NM; i++) {
        if (!sel[i])
            continue;
        const ct_module_desc *m = &MODS[i];
        int64_t rows = m->kind == CT_MODULE_LINEAR ? m->out : m->in, cols = m->kind == CT_MODULE_LINEAR ? m->in : m->out;
        f->w[i] = malloc(sizeof(float) * (size_t)(rows * cols));
        for (int64_t j = 0; j < rows * cols; j++)
            f->w[i][j] = (float)((j * 7 + i) % 13) - 6.0f;
        ct_weight w = {.rows = rows, .cols = cols, .dtype = CT_F32, .data = f->w[i]};
        ct_module_desc dense = *m;
        dense.bits = 0;
        CT_TRY(ct_adapter_layer_init(&f->layers[f->n], f->be, &dense, &f->cfg, &w, st++, err));
        f->layers[f->n].mod.path = m->path;
        ct_adapter_param p[3];
        int np = ct_adapter_param_info(&f->layers[f->n], p);
        for (int k = 0; k < np; k++)
            for (int64_t j = 0; j < p[k].numel; j++)
                p[k].value[j] = (float)(j % 5) * 0.25f + (float)k + 0.5f * (float)f->n;
        f->n++;
    }
    return CT_OK;
}

static void destroy(fixture *f) {
    for (int i = 0; i < f->n; i++)
        ct_adapter_layer_free(&f->layers[i], f->be);
    for (int i = 0; i < NM; i++)
        free(f->w[i]);
    ct_adapter_config_free(&f->cfg);
    ct_backend_destroy(f->be);
}

// The loaded set equals the layers' parameters in mlx's layout.
static int same_params(fixture *f, const ct_adapter_set *s) {
    if (s->n != f->n)
        return 0;
    for (int i = 0; i < s->n; i++) {
        const ct_adapter_layer *l = &f->layers[i];
        int64_t na = l->mod.in * l->rank, nb = l->rank * l->mod.out, nm = l->mod.kind ? l->mod.in : l->mod.out;
        float *a = malloc(sizeof(float) * (size_t)na), *b = malloc(sizeof(float) * (size_t)nb);
        float *m = malloc(sizeof(float) * (size_t)nm);
        ct_adapter_layer_get(l, f->be, a, b, l->m ? m : NULL);
        const ct_adapter_entry *e = &s->entries[i];
        int ok = strcmp(MODS[e->module].path, l->mod.path) == 0 && memcmp(a, e->lora_a, sizeof(float) * (size_t)na) == 0 &&
                 memcmp(b, e->lora_b, sizeof(float) * (size_t)nb) == 0 &&
                 (!l->m || memcmp(m, e->m, sizeof(float) * (size_t)nm) == 0);
        free(a), free(b), free(m);
        if (!ok)
            return 0;
    }
    return 1;
}

TEST(adapter_mlx_files_round_trip) {
    fixture f;
    ct_error err;
    CHECK_OK(build(&f, CT_ADAPTER_DORA, &err), &err);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/mlx_adapters", ct_test_tmpdir());
    CHECK_OK(ct_adapter_save_mlx(dir, &f.cfg, f.layers, f.n, f.be, &err), &err);
    char path[4200];
    snprintf(path, sizeof path, "%s/adapters.safetensors", dir);
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, path, &err), &err);
    const ct_tensor_view *t = ct_safetensors_find(&st, "model.layers.1.mlp.down_proj.lora_a");
    CHECK(t && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 4); // mlx: (in, r)
    t = ct_safetensors_find(&st, "model.layers.1.self_attn.q_proj.m");
    CHECK(t && t->ndim == 1 && t->shape[0] == 16);
    CHECK_EQ(st.n_tensors, 9);
    ct_safetensors_close(&st);
    ct_adapter_set s;
    CHECK_OK(ct_adapter_load(dir, MODS, NM, &s, &err), &err);
    CHECK(s.cfg.type == CT_ADAPTER_DORA && s.cfg.rank == 4 && s.cfg.scale == 3.0f && s.cfg.num_layers == 1);
    CHECK(same_params(&f, &s));
    ct_adapter_set_free(&s);
    destroy(&f);
}

static void write_config(const char *dir, const char *json) {
    char path[4200];
    ct_error err;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    ct_write_file_atomic(path, json, strlen(json), &err);
}

// load_adapters' validation: unknown names and wrong shapes are named; missing tensors too.
TEST(adapter_mlx_load_validates_names_and_shapes) {
    ct_error err;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/bad_adapters", ct_test_tmpdir());
    CHECK_OK(ct_mkdir_p(dir, &err), &err);
    write_config(dir, "{\"fine_tune_type\": \"lora\", \"num_layers\": 1, "
                      "\"lora_parameters\": {\"rank\": 4, \"scale\": 10, \"dropout\": 0, \"keys\": [\"self_attn.v_proj\"]}}");
    static float zeros[256];
    ct_tensor_view v[3] = {
        {"model.layers.1.self_attn.v_proj.lora_a", CT_F32, 2, {16, 4}, zeros, 16 * 4 * 4},
        {"model.layers.1.self_attn.v_proj.lora_b", CT_F32, 2, {4, 16}, zeros, 16 * 4 * 4},
        {"model.layers.0.self_attn.v_proj.lora_a", CT_F32, 2, {16, 4}, zeros, 16 * 4 * 4},
    };
    snprintf(path, sizeof path, "%s/adapters.safetensors", dir);
    CHECK_OK(ct_safetensors_write(path, v, 3, NULL, 0, &err), &err);
    ct_adapter_set s;
    CHECK_FAILS(ct_adapter_load_mlx(dir, MODS, NM, &s, &err), &err, "contains incompatible tensors");
    CHECK_CONTAINS(err.msg, "model.layers.0.self_attn.v_proj.lora_a: not an adapter parameter in the model");
    CHECK_CONTAINS(err.msg,
                   "model.layers.1.self_attn.v_proj.lora_b: adapter shape (4, 16) does not match model parameter "
                   "shape (4, 8)");
    CHECK_OK(ct_safetensors_write(path, v, 1, NULL, 0, &err), &err);
    CHECK_FAILS(ct_adapter_load_mlx(dir, MODS, NM, &s, &err), &err, "v_proj: adapter tensors missing");
    write_config(dir, "{\"fine_tune_type\": \"lora\", \"num_layers\": 0, \"lora_parameters\": {\"rank\": 4}}");
    CHECK_FAILS(ct_adapter_load_mlx(dir, MODS, NM, &s, &err), &err, "num_layers");
    write_config(dir, "{\"fine_tune_type\": \"lora\", \"lora_parameters\": {\"rank\": 4}}");
    CHECK_FAILS(ct_adapter_load_mlx(dir, MODS, NM, &s, &err), &err, "num_layers");
    CHECK_FAILS(ct_adapter_load("/nonexistent/adapters", MODS, NM, &s, &err), &err,
                "The adapter path does not exist: /nonexistent/adapters");
}

TEST(adapter_peft_files_round_trip) {
    fixture f;
    ct_error err;
    CHECK_OK(build(&f, CT_ADAPTER_DORA, &err), &err);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/peft_adapters", ct_test_tmpdir());
    CHECK_OK(ct_adapter_save_peft(dir, &f.cfg, f.layers, f.n, f.be, &err), &err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, path, &err), &err);
    const ct_tensor_view *t = ct_safetensors_find(&st, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
    CHECK(t && t->shape[0] == 4 && t->shape[1] == 64); // PEFT: (r, in)
    t = ct_safetensors_find(&st, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
    CHECK(t && t->shape[0] == 16 && t->shape[1] == 4); // (out, r)
    t = ct_safetensors_find(&st, "base_model.model.model.embed_tokens.lora_embedding_A");
    CHECK(t && t->shape[0] == 4 && t->shape[1] == 32); // (r, V)
    CHECK(ct_safetensors_find(&st, "base_model.model.model.layers.1.self_attn.q_proj.lora_magnitude_vector"));
    ct_safetensors_close(&st);
    cJSON *cfg;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    CHECK_OK(ct_json_load_file(path, &cfg, &err), &err);
    double alpha = 0;
    bool dora = false;
    CHECK_OK(ct_json_double(cfg, "lora_alpha", &alpha, &err), &err);
    CHECK_OK(ct_json_bool(cfg, "use_dora", &dora, &err), &err);
    CHECK(alpha == 12.0 && dora); // alpha = scale * r
    cJSON_Delete(cfg);
    ct_adapter_set s;
    CHECK_OK(ct_adapter_load(dir, MODS, NM, &s, &err), &err);
    CHECK(s.cfg.type == CT_ADAPTER_DORA && s.cfg.rank == 4 && s.cfg.scale == 3.0f);
    CHECK(same_params(&f, &s));
    ct_adapter_set_free(&s);
    destroy(&f);
}
