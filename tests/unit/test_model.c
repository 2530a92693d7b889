// test_model.c: the forward pass against transformers (dense fixtures) and
// mlx (MLX-quantized fixtures): tests/fixtures/models/<name>/expected.safetensors
// holds ids (B, T) and logits (B, T, V) made by tools/make_model_fixtures.py.
#include <stdlib.h>

#include "ctune/fs.h"
#include "ctune/model.h"
#include "ctune/safetensors.h"
#include "harness.h"

typedef struct fixture {
    ct_backend *be;
    ct_model m;
    ct_safetensors exp;
    const int32_t *ids; // (B, T)
    float *logits;      // (B, T, V) reference
    int B, T, V;
} fixture;

static ct_status fixture_open(fixture *f, const char *name, ct_error *err) {
    char dir[512], path[600];
    memset(f, 0, sizeof *f);
    snprintf(dir, sizeof dir, "%s", ct_test_fixture("models"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    CT_TRY(ct_backend_cpu_create(&f->be, err));
    CT_TRY(ct_model_load(&f->m, dir, f->be, err));
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CT_TRY(ct_safetensors_open(&f->exp, path, err));
    const ct_tensor_view *ids = ct_safetensors_find(&f->exp, "ids");
    const ct_tensor_view *lg = ct_safetensors_find(&f->exp, "logits");
    if (!ids || !lg)
        return ct_fail(err, CT_ERR_FORMAT, "%s: ids or logits missing", path);
    f->B = (int)ids->shape[0];
    f->T = (int)ids->shape[1];
    f->V = (int)lg->shape[2];
    f->ids = ids->data;
    f->logits = malloc(lg->nbytes);
    memcpy(f->logits, lg->data, lg->nbytes);
    return CT_OK;
}

static void fixture_close(fixture *f) {
    ct_model_free(&f->m);
    ct_safetensors_close(&f->exp);
    free(f->logits);
    if (f->be)
        ct_backend_destroy(f->be);
}

// max |a - b| / max |b| over n values
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d ? e : d;
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
    }
    return d / (mx > 0 ? mx : 1);
}

// Full batched forward (B, T) in one call; returns the relative error vs the reference.
static double full_forward_err(fixture *f, ct_error *err, ct_status *st) {
    ct_kv_cache kv;
    double e = 1e9;
    *st = ct_kv_cache_init(&kv, &f->m, f->B, f->T, err);
    if (*st != CT_OK)
        return e;
    const float *dev;
    *st = ct_model_forward(&f->m, &kv, f->ids, f->B, f->T, false, &dev, err);
    if (*st == CT_OK) {
        int64_t n = (int64_t)f->B * f->T * f->V;
        float *out = malloc(sizeof(float) * (size_t)n);
        f->be->download(f->be, out, dev, sizeof(float) * (size_t)n);
        e = rel_err(out, f->logits, n);
        free(out);
    }
    ct_kv_cache_free(&kv, &f->m);
    return e;
}

static void check_model(const char *name) {
    fixture f;
    ct_error err = {0};
    ct_status st = fixture_open(&f, name, &err);
    if (st != CT_OK)
        fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s: %s", name, err.msg);
    double e = full_forward_err(&f, &err, &st);
    fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s: %s", name, err.msg);
    CHECK_MSG(e < 1e-4, "%s: logits relative error %.3g", name, e);
}

TEST(model_llama_default_f32) { check_model("llama_default"); }
TEST(model_llama_h64_bf16) { check_model("llama_h64"); }
TEST(model_llama_rope_linear) { check_model("llama_linear"); }
TEST(model_llama_rope_dynamic) { check_model("llama_dynamic"); }
TEST(model_llama_rope_llama3_f16) { check_model("llama_llama3"); }
TEST(model_llama_rope_yarn) { check_model("llama_yarn"); }
TEST(model_mistral_sliding_window) { check_model("mistral_window"); }
TEST(model_qwen2_qkv_bias) { check_model("qwen2"); }
TEST(model_qwen3_qk_norm) { check_model("qwen3"); }
TEST(model_phi3_fused) { check_model("phi3"); }
TEST(model_phi3_longrope) { check_model("phi3_longrope"); }
TEST(model_gemma2) { check_model("gemma2"); }
TEST(model_gemma3) { check_model("gemma3"); }
TEST(model_mlx_q4_g32_untied_head) { check_model("mlx_q4_g32"); }
TEST(model_mlx_q8_g64_tied_quantized_embedding) { check_model("mlx_q8_g64"); }

// Prefill part of sequence 0, then decode the rest one token at a time: the
// logits of every position equal the reference's full forward.
static void check_kv_cache(const char *name, int prefill) {
    fixture f;
    ct_error err = {0};
    ct_status st = fixture_open(&f, name, &err);
    ct_kv_cache kv = {0};
    if (st == CT_OK)
        st = ct_kv_cache_init(&kv, &f.m, 1, f.T, &err);
    float *out = malloc(sizeof(float) * (size_t)f.T * (size_t)(f.V > 0 ? f.V : 1));
    const float *dev;
    if (st == CT_OK)
        st = ct_model_forward(&f.m, &kv, f.ids, 1, prefill, false, &dev, &err);
    if (st == CT_OK)
        f.be->download(f.be, out, dev, sizeof(float) * (size_t)prefill * (size_t)f.V);
    for (int t = prefill; st == CT_OK && t < f.T; t++) {
        st = ct_model_forward(&f.m, &kv, f.ids + t, 1, 1, true, &dev, &err);
        if (st == CT_OK)
            f.be->download(f.be, out + (int64_t)t * f.V, dev, sizeof(float) * (size_t)f.V);
    }
    double e = st == CT_OK ? rel_err(out, f.logits, (int64_t)f.T * f.V) : 1e9;
    int pos = kv.pos;
    free(out);
    ct_kv_cache_free(&kv, &f.m);
    fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s: %s", name, err.msg);
    CHECK_EQ(pos, 12);
    CHECK_MSG(e < 1e-4, "%s: prefill %d + decode: relative error %.3g", name, prefill, e);
}

TEST(model_kv_cache_llama) { check_kv_cache("llama_default", 5); }
TEST(model_kv_cache_sliding_window) { check_kv_cache("mistral_window", 3); }
TEST(model_kv_cache_gemma3) { check_kv_cache("gemma3", 6); }
TEST(model_kv_cache_quantized) { check_kv_cache("mlx_q4_g32", 1); }

// The tolerance catches a real bug: scaling one norm weight by 1.001 (a 0.1%
// error in the input of layer 1's MLP) moves the logits past 1e-4.
TEST(model_tolerance_catches_small_perturbation) {
    fixture f;
    ct_error err = {0};
    ct_status st = fixture_open(&f, "llama_default", &err);
    if (st == CT_OK)
        f.m.be->scale(f.m.be, f.m.layers[1].ffn_norm, 1.001f, f.m.C);
    double e = st == CT_OK ? full_forward_err(&f, &err, &st) : 0;
    fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_MSG(e > 1e-4, "perturbed logits error %.3g should exceed 1e-4", e);
}

TEST(model_nll_matches_logits) {
    fixture f;
    ct_error err = {0};
    ct_status st = fixture_open(&f, "qwen2", &err);
    ct_kv_cache kv = {0};
    double nll = 0, ref = 0;
    int64_t n = 0;
    if (st == CT_OK)
        st = ct_kv_cache_init(&kv, &f.m, 1, f.T, &err);
    if (st == CT_OK)
        st = ct_model_sequence_nll(&f.m, &kv, f.ids, f.T, &nll, &n, &err);
    for (int t = 0; st == CT_OK && t < f.T - 1; t++) { // log-softmax of the reference logits
        const float *row = f.logits + (int64_t)t * f.V;
        double mx = row[0], s = 0;
        for (int i = 1; i < f.V; i++)
            mx = row[i] > mx ? row[i] : mx;
        for (int i = 0; i < f.V; i++)
            s += exp(row[i] - mx);
        ref += mx + log(s) - row[f.ids[t + 1]];
    }
    ct_kv_cache_free(&kv, &f.m);
    fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_EQ(n, 11);
    CHECK_NEAR(nll / (double)n, ref / 11.0, 1e-4);
}

// ---- load errors

// Copies fixture llama_default to tmp/<sub>, with model.safetensors rewritten by edit.
static const char *broken_copy(const char *sub, void (*edit)(ct_tensor_view *t, int *n), ct_error *err) {
    static char dir[512];
    char src[512], path[700];
    snprintf(src, sizeof src, "%s/llama_default", ct_test_fixture("models"));
    snprintf(dir, sizeof dir, "%s/%s", ct_test_tmpdir(), sub);
    if (ct_mkdir_p(dir, err) != CT_OK)
        return NULL;
    char *cfg;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", src);
    if (ct_read_file(path, &cfg, &len, err) != CT_OK)
        return NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    ct_status st = ct_write_file_atomic(path, cfg, len, err);
    free(cfg);
    ct_safetensors in;
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    if (st != CT_OK || ct_safetensors_open(&in, path, err) != CT_OK)
        return NULL;
    ct_tensor_view *t = malloc(sizeof *t * (size_t)in.n_tensors);
    memcpy(t, in.tensors, sizeof *t * (size_t)in.n_tensors);
    int n = in.n_tensors;
    edit(t, &n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = ct_safetensors_write(path, t, n, NULL, 0, err);
    free(t);
    ct_safetensors_close(&in);
    return st == CT_OK ? dir : NULL;
}

static int find_view(ct_tensor_view *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return i;
    return -1;
}

static void drop_k_proj(ct_tensor_view *t, int *n) {
    int i = find_view(t, *n, "model.layers.1.self_attn.k_proj.weight");
    t[i] = t[--*n];
}

static void reshape_up_proj(ct_tensor_view *t, int *n) {
    int i = find_view(t, *n, "model.layers.0.mlp.up_proj.weight");
    int64_t r = t[i].shape[0], c = t[i].shape[1];
    t[i].shape[0] = c; // (64, 32) -> (32, 64)
    t[i].shape[1] = r;
}

static void int_norm(ct_tensor_view *t, int *n) {
    int i = find_view(t, *n, "model.norm.weight");
    t[i].dtype = CT_I32; // same byte size as f32
}

static void check_load_fails(const char *sub, void (*edit)(ct_tensor_view *, int *), const char *needle) {
    ct_error err = {0};
    const char *dir = broken_copy(sub, edit, &err);
    CHECK_MSG(dir != NULL, "%s", err.msg);
    ct_backend *be;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    ct_model m;
    ct_status st = ct_model_load(&m, dir, be, &err);
    ct_backend_destroy(be);
    CHECK(st != CT_OK);
    CHECK_CONTAINS(err.msg, needle);
}

TEST(model_load_missing_tensor) {
    check_load_fails("missing", drop_k_proj, "missing tensor model.layers.1.self_attn.k_proj.weight");
}
TEST(model_load_wrong_shape) {
    check_load_fails("shape", reshape_up_proj,
                     "tensor model.layers.0.mlp.up_proj.weight: expected shape (64, 32), found (32, 64)");
}
TEST(model_load_bad_dtype) { check_load_fails("dtype", int_norm, "tensor model.norm.weight: unsupported dtype I32"); }

TEST(model_load_not_a_model) {
    ct_error err = {0};
    ct_backend *be;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    ct_model m;
    ct_status st = ct_model_load(&m, "tests/fixtures/models/nope.txt", be, &err);
    ct_backend_destroy(be);
    CHECK(st != CT_OK);
    CHECK_CONTAINS(err.msg, "not a model folder or a .gguf file");
}

// The same model saved as shards (model-0000i-of-0000N + index) gives the same logits.
TEST(model_load_sharded_folder) {
    ct_error err = {0};
    char src[512], dir[512], path[700];
    snprintf(src, sizeof src, "%s/llama_default", ct_test_fixture("models"));
    snprintf(dir, sizeof dir, "%s/sharded", ct_test_tmpdir());
    ct_safetensors in;
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    CHECK_OK(ct_safetensors_open(&in, path, &err), &err);
    ct_status st = ct_safetensors_write_sharded(dir, in.tensors, in.n_tensors, 20000, NULL, 0, &err);
    ct_safetensors_close(&in);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    char *cfg;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", src);
    CHECK_OK(ct_read_file(path, &cfg, &len, &err), &err);
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = ct_write_file_atomic(path, cfg, len, &err);
    free(cfg);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(ct_path_exists(path));
    fixture f;
    st = fixture_open(&f, "llama_default", &err);
    if (st == CT_OK) {
        ct_model_free(&f.m);
        st = ct_model_load(&f.m, dir, f.be, &err);
        if (st != CT_OK)
            memset(&f.m, 0, sizeof f.m);
    }
    double e = st == CT_OK ? full_forward_err(&f, &err, &st) : 1e9;
    fixture_close(&f);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_MSG(e < 1e-4, "sharded: relative error %.3g", e);
}
