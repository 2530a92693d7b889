// Tests of ctune fuse (src/quant/fuse.c) and the GGUF export
// (src/quant/gguf_export.c) on the tiny fixture models: random adapters
// (non-zero B, perturbed DoRA magnitudes) are saved as an mlx-lm folder; the
// fused model's logits must equal the base+adapter logits.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/fuse.h"
#include "ctune/gguf.h"
#include "ctune/model.h"
#include "ctune/safetensors.h"
#include "ctune/tuned_model.h"
#include "harness.h"

static const int32_t IDS[] = {1, 5, 9, 17, 33, 2, 64, 100, 7, 3, 12, 90};
enum { T = sizeof IDS / sizeof IDS[0] };

// (a static buffer: copy it before the next call)
static const char *model_path(const char *name) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", ct_test_fixture("models"), name);
    return path;
}

static const char *tmp_path(const char *name) {
    static char path[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/fuse-%s", ct_test_tmpdir(), name);
    return path[k];
}

// Logits (T, V) of model (with adapters from adapter_dir when not NULL) into a new array.
static float *logits_of(const char *model, const char *adapter_dir, int *V, ct_error *err) {
    ct_backend *be = NULL;
    ct_model m;
    bool loaded = false;
    ct_tuned_model *t = NULL;
    ct_kv_cache kv = {0};
    float *out = NULL;
    const float *dev;
    ct_status st = ct_backend_cpu_create(&be, err);
    if (st == CT_OK)
        st = ct_model_load(&m, model, be, err);
    loaded = st == CT_OK;
    if (st == CT_OK && adapter_dir)
        st = ct_model_apply_adapters(&m, adapter_dir, &t, err);
    if (st == CT_OK)
        st = ct_kv_cache_init(&kv, &m, 1, T, err);
    if (st == CT_OK)
        st = ct_model_forward(&m, &kv, IDS, 1, T, false, &dev, err);
    if (st == CT_OK && (out = malloc(sizeof(float) * (size_t)(T * m.V)))) {
        be->download(be, out, dev, sizeof(float) * (size_t)(T * m.V));
        *V = m.V;
    }
    if (loaded) {
        ct_kv_cache_free(&kv, &m);
        ct_tuned_model_free(t);
        ct_model_free(&m);
    }
    if (be)
        ct_backend_destroy(be);
    return out;
}

// max |a - b| / max |b|
static double rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

// A random adapter (type "lora"/"dora", every linear of every block, rank 4)
// for model, saved as an mlx-lm folder dir. amp scales lora_b.
static ct_status make_adapter(const char *model, const char *type, float amp, const char *dir, ct_error *err) {
    ct_backend *be;
    ct_model m;
    CT_TRY(ct_backend_cpu_create(&be, err));
    ct_status st = ct_model_load(&m, model, be, err);
    if (st != CT_OK) {
        ct_backend_destroy(be);
        return st;
    }
    ct_tune_config cfg = {.fine_tune_type = type, .num_layers = -1, .rank = 4, .scale = 2.0, .seed = 3};
    ct_tuned_model *t = NULL;
    st = ct_tuned_model_create(&t, &m, &cfg, err);
    if (st == CT_OK) {
        ct_train_target tg;
        ct_tuned_model_target(t, &tg);
        uint32_t s = 12345;
        for (int k = 0; k < tg.n_params; k++) {
            const char *leaf = strrchr(tg.names[k], '.') + 1;
            int64_t n = tg.params[k].ndim == 2 ? tg.params[k].rows * tg.params[k].cols : tg.params[k].cols;
            for (int64_t i = 0; i < n; i++) {
                s = s * 1664525u + 1013904223u;
                float r = (float)(s >> 8) / (float)(1u << 24) - 0.5f; // [-0.5, 0.5)
                if (!strcmp(leaf, "lora_b"))
                    tg.params[k].w[i] = amp * r;
                else if (!strcmp(leaf, "m"))
                    tg.params[k].w[i] *= 1 + 0.2f * r;
            }
        }
        char path[700];
        snprintf(path, sizeof path, "%s/adapters.safetensors", dir);
        st = ct_mkdir_p(dir, err);
        if (st == CT_OK)
            st = ct_tuned_model_save_weights(t, path, err);
        char json[300];
        int len = snprintf(json, sizeof json,
                           "{\"fine_tune_type\": \"%s\", \"num_layers\": -1, \"lora_parameters\": "
                           "{\"rank\": 4, \"scale\": 2.0, \"dropout\": 0.0}}", type);
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        if (st == CT_OK)
            st = ct_write_file_atomic(path, json, (size_t)len, err);
    }
    ct_tuned_model_free(t);
    ct_model_free(&m);
    ct_backend_destroy(be);
    return st;
}

// Fuses model + a random adapter into out and compares logits: returns the relative difference.
static double fuse_and_compare(const char *model, const char *type, float amp, bool dequantize, const char *name,
                               ct_fuse_result *res, ct_error *err) {
    const char *adir = tmp_path(name), *out = tmp_path(name);
    char a[600], o[600];
    snprintf(a, sizeof a, "%s-adapter", adir);
    snprintf(o, sizeof o, "%s-out", out);
    if (make_adapter(model, type, amp, a, err) != CT_OK)
        return INFINITY;
    ct_fuse_opts fo = {.model = model, .adapter_path = a, .save_path = o, .dequantize = dequantize};
    if (ct_fuse(&fo, res, err) != CT_OK)
        return INFINITY;
    int V1 = 0, V2 = 0;
    float *want = logits_of(model, a, &V1, err), *got = logits_of(o, NULL, &V2, err);
    double d = want && got && V1 == V2 ? rel_diff(got, want, (int64_t)T * V1) : INFINITY;
    free(want);
    free(got);
    return d;
}

TEST(fuse_dense_lora_logits_equal_base_plus_adapter) {
    ct_error err = {0};
    ct_fuse_result r = {0};
    double d = fuse_and_compare(model_path("llama_default"), "lora", 0.5f, false, "lora", &r, &err);
    CHECK_MSG(d <= 1e-5, "relative difference %g (%s)", d, err.msg);
    CHECK_EQ(r.n_modules, 2 * 7);
    CHECK_EQ(r.n_lost, 0);
    CHECK(!r.requantized);
    ct_fuse_result_free(&r);
}

TEST(fuse_dense_dora_logits_equal_base_plus_adapter) {
    ct_error err = {0};
    ct_fuse_result r = {0};
    double d = fuse_and_compare(model_path("llama_default"), "dora", 0.5f, false, "dora", &r, &err);
    CHECK_MSG(d <= 1e-5, "relative difference %g (%s)", d, err.msg);
    CHECK_EQ(r.n_modules, 2 * 7);
    ct_fuse_result_free(&r);
}

// A bf16 base (qwen2: biases, tied embeddings) keeps bf16: the fused weights
// are rounded, so the logits agree to bf16 precision only.
TEST(fuse_bf16_dora_qwen2_keeps_dtype) {
    ct_error err = {0};
    ct_fuse_result r = {0};
    double d = fuse_and_compare(model_path("qwen2"), "dora", 0.5f, false, "dora-bf16", &r, &err);
    CHECK_MSG(d <= 3e-2, "relative difference %g (%s)", d, err.msg);
    CHECK_EQ(r.n_lost, 0);
    for (int i = 0; i < r.n_modules; i++)
        CHECK(r.modules[i].report.lost > 0 && r.modules[i].report.lost < 0.1); // bf16 rounding, measured
    ct_weights w;
    char o[700];
    snprintf(o, sizeof o, "%s-out", tmp_path("dora-bf16"));
    CHECK_OK(ct_weights_open(&w, o, &err), &err);
    const ct_tensor_view *q = ct_weights_find(&w, "model.layers.1.self_attn.q_proj.weight");
    CHECK(q && q->dtype == CT_BF16);
    ct_weights_close(&w);
    ct_fuse_result_free(&r);
}

// The check has teeth: the base model alone is far from base+adapter.
TEST(fuse_adapter_changes_logits) {
    ct_error err = {0};
    const char *model = model_path("llama_default");
    char a[600];
    snprintf(a, sizeof a, "%s", tmp_path("teeth"));
    CHECK_OK(make_adapter(model, "lora", 0.5f, a, &err), &err);
    int V1 = 0, V2 = 0;
    float *base = logits_of(model, NULL, &V1, &err), *adapted = logits_of(model, a, &V2, &err);
    CHECK(base && adapted && V1 == V2);
    if (base && adapted)
        CHECK_MSG(rel_diff(base, adapted, (int64_t)T * V1) > 1e-3, "the adapter changes nothing");
    free(base);
    free(adapted);
}

// A quantized base with --dequantize: dense output, same logits as base+adapter.
TEST(fuse_quantized_dequantize_logits_equal) {
    ct_error err = {0};
    ct_fuse_result r = {0};
    double d = fuse_and_compare(model_path("mlx_q4_g32"), "lora", 0.5f, true, "deq", &r, &err);
    // f32 scales: the de-quantized dense weights are f32
    CHECK_MSG(d <= 1e-5, "relative difference %g (%s)", d, err.msg);
    CHECK(!r.requantized);
    char cfg[700], *text = NULL;
    size_t len;
    snprintf(cfg, sizeof cfg, "%s-out/config.json", tmp_path("deq"));
    CHECK_OK(ct_read_file(cfg, &text, &len, &err), &err);
    CHECK(text && !strstr(text, "quantization"));
    free(text);
    ct_fuse_result_free(&r);
}

// Re-quantizing a tiny delta loses most of it: the report says so.
TEST(fuse_requantized_small_delta_is_reported_lost) {
    ct_error err = {0};
    ct_fuse_result r = {0};
    double d = fuse_and_compare(model_path("mlx_q4_g32"), "lora", 1e-4f, false, "lost", &r, &err);
    CHECK_MSG(isfinite(d), "%s", err.msg);
    CHECK(r.requantized);
    CHECK_MSG(r.n_lost > r.n_modules / 2, "%d of %d modules reported lost", r.n_lost, r.n_modules);
    for (int i = 0; i < r.n_modules; i++)
        CHECK(r.modules[i].report.delta_rel > 0 && r.modules[i].report.delta_rel < 1e-2);
    char cfg[700], *text = NULL;
    size_t len;
    snprintf(cfg, sizeof cfg, "%s-out/config.json", tmp_path("lost"));
    CHECK_OK(ct_read_file(cfg, &text, &len, &err), &err);
    CHECK(text && strstr(text, "\"quantization\""));
    free(text);
    ct_fuse_result_free(&r);
    // A large delta survives re-quantization mostly.
    d = fuse_and_compare(model_path("mlx_q4_g32"), "lora", 2.0f, false, "kept", &r, &err);
    CHECK_MSG(isfinite(d), "%s", err.msg);
    CHECK_EQ(r.n_lost, 0);
    ct_fuse_result_free(&r);
}

TEST(fuse_errors) {
    ct_error err = {0};
    ct_fuse_result r;
    char model[600];
    snprintf(model, sizeof model, "%s", model_path("llama_default"));
    ct_fuse_opts o = {.model = model, .adapter_path = tmp_path("none"), .save_path = tmp_path("e-out")};
    CHECK_FAILS(ct_fuse(&o, &r, &err), &err, "adapter path does not exist");
    // An adapter made for another model: the shape mismatch names the tensor.
    char a[600];
    snprintf(a, sizeof a, "%s", tmp_path("other"));
    CHECK_OK(make_adapter(model_path("llama_h64"), "lora", 0.5f, a, &err), &err);
    o.adapter_path = a;
    CHECK_FAILS(ct_fuse(&o, &r, &err), &err, "model.layers.");
    CHECK(!ct_path_exists(o.save_path));
    o.save_path = a; // exists
    CHECK_FAILS(ct_fuse(&o, &r, &err), &err, "already exists");
}

// The GGUF export of a fused llama: llama.cpp's names and keys, q rows
// permuted, F32 tensors equal to the folder's.
TEST(fuse_gguf_export_reads_back) {
    ct_error err = {0};
    const char *model = model_path("llama_default");
    char a[600], o[600], g[700];
    snprintf(a, sizeof a, "%s", tmp_path("g-adapter"));
    snprintf(o, sizeof o, "%s", tmp_path("g-out"));
    CHECK_OK(make_adapter(model, "lora", 0.5f, a, &err), &err);
    ct_fuse_opts fo = {.model = model, .adapter_path = a, .save_path = o, .export_gguf = true, .gguf_path = "m.gguf",
                       .gguf_type = "f32"};
    ct_fuse_result r;
    CHECK_OK(ct_fuse(&fo, &r, &err), &err);
    ct_fuse_result_free(&r);
    snprintf(g, sizeof g, "%s/m.gguf", o);
    ct_gguf gg;
    ct_weights w;
    CHECK_OK(ct_gguf_open(&gg, g, &err), &err);
    CHECK_OK(ct_weights_open(&w, o, &err), &err);
    const char *arch = NULL;
    uint64_t blocks = 0, heads = 0;
    CHECK(ct_gguf_get_str(&gg, "general.architecture", &arch, NULL) && !strcmp(arch, "llama"));
    CHECK(ct_gguf_get_u64(&gg, "llama.block_count", &blocks) && blocks == 2);
    CHECK(ct_gguf_get_u64(&gg, "llama.attention.head_count", &heads) && heads > 0);
    CHECK_EQ((int64_t)gg.n_tensors, w.n);
    const ct_gguf_tensor *q = ct_gguf_find_tensor(&gg, "blk.0.attn_q.weight");
    const ct_gguf_tensor *up = ct_gguf_find_tensor(&gg, "blk.1.ffn_up.weight");
    const ct_tensor_view *hq = ct_weights_find(&w, "model.layers.0.self_attn.q_proj.weight");
    const ct_tensor_view *hup = ct_weights_find(&w, "model.layers.1.mlp.up_proj.weight");
    CHECK(q && up && hq && hup && q->type == CT_GGML_F32 && hq->dtype == CT_F32);
    if (q && up && hq && hup && q->type == CT_GGML_F32 && hq->dtype == CT_F32) {
        CHECK(!memcmp(up->data, hup->data, hup->nbytes));
        int64_t rows = hq->shape[0], cols = hq->shape[1], D = rows / (int64_t)heads, half = D / 2;
        int bad = 0;
        for (int64_t rr = 0; rr < rows; rr++) { // HF row h*D + j*half + i is GGUF row h*D + 2i + j
            int64_t h = rr / D, k = rr % D, dst = h * D + 2 * (k % half) + k / half;
            bad += memcmp((const float *)q->data + dst * cols, (const float *)hq->data + rr * cols,
                          sizeof(float) * (size_t)cols) != 0;
        }
        CHECK_EQ(bad, 0);
        CHECK(memcmp(q->data, hq->data, hq->nbytes) != 0); // the permutation moved rows
    }
    ct_weights_close(&w);
    ct_gguf_close(&gg);
}

// The PEFT export loads back in ctune with the same logits as the mlx-lm folder.
TEST(fuse_peft_export_round_trip) {
    ct_error err = {0};
    const char *model = model_path("qwen2");
    char a[600], o[600], p[600];
    snprintf(a, sizeof a, "%s", tmp_path("p-adapter"));
    snprintf(o, sizeof o, "%s", tmp_path("p-out"));
    snprintf(p, sizeof p, "%s", tmp_path("p-peft"));
    CHECK_OK(make_adapter(model, "dora", 0.5f, a, &err), &err);
    ct_fuse_opts fo = {.model = model, .adapter_path = a, .save_path = o, .export_peft = p};
    ct_fuse_result r;
    CHECK_OK(ct_fuse(&fo, &r, &err), &err);
    ct_fuse_result_free(&r);
    int V1 = 0, V2 = 0;
    float *want = logits_of(model, a, &V1, &err), *got = logits_of(model, p, &V2, &err);
    CHECK_MSG(want && got && V1 == V2, "%s", err.msg);
    if (want && got)
        CHECK(rel_diff(got, want, (int64_t)T * V1) <= 1e-6);
    free(want);
    free(got);
}
