// test_gemma.c: gemma3 GGUF files (tests/fixtures/gemma/, tools/make_gemma_fixtures.py):
// a tiny random gemma3 GGUF written as llama.cpp's converter writes one (norms
// stored as w + 1, 6 layers with the last global, window 4, Q8_0/Q5_0/F16/F32
// tensors, a SentencePiece vocab) against transformers' logits and token ids
// for it; the same after `convert` to a Hugging Face folder; bad files.
#include <math.h>
#include <stdlib.h>

#include "ctune/convert.h"
#include "ctune/fs.h"
#include "ctune/gguf.h"
#include "ctune/gguf_config.h"
#include "ctune/json.h"
#include "ctune/model.h"
#include "ctune/safetensors.h"
#include "ctune/tokenizer.h"
#include "harness.h"

#define TINY "gemma/tiny_gemma3.gguf"

// max |a - b| / max |b| over n values
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs(b[i]));
    }
    return d / (mx > 0 ? mx : 1);
}

// Relative error of model's logits (the optional tweak applied first) against transformers'.
static double logits_err(const char *model, void (*tweak)(ct_model *), ct_error *err, ct_status *st) {
    char path[512];
    snprintf(path, sizeof path, "%s/tiny_expected.safetensors", ct_test_fixture("gemma"));
    ct_safetensors exp;
    ct_backend *be = NULL;
    ct_model m = {0};
    ct_kv_cache kv = {0};
    double e = 1e9;
    *st = ct_safetensors_open(&exp, path, err);
    if (*st != CT_OK)
        return e;
    const ct_tensor_view *ids = ct_safetensors_find(&exp, "ids"), *ref = ct_safetensors_find(&exp, "logits");
    int T = (int)ids->shape[1];
    int64_t V = ref->shape[2];
    *st = ct_backend_cpu_create(&be, err);
    if (*st == CT_OK)
        *st = ct_model_load(&m, model, be, err);
    if (*st == CT_OK && tweak)
        tweak(&m);
    if (*st == CT_OK)
        *st = ct_kv_cache_init(&kv, &m, 1, T, err);
    const float *dev;
    if (*st == CT_OK)
        *st = ct_model_forward(&m, &kv, ids->data, 1, T, false, &dev, err);
    if (*st == CT_OK) {
        float *out = malloc(sizeof(float) * (size_t)(T * V));
        be->download(be, out, dev, sizeof(float) * (size_t)(T * V));
        e = rel_err(out, ref->data, T * V);
        free(out);
    }
    if (kv.k)
        ct_kv_cache_free(&kv, &m);
    if (m.be)
        ct_model_free(&m);
    if (be)
        ct_backend_destroy(be);
    ct_safetensors_close(&exp);
    return e;
}

TEST(gemma_gguf_config_fills_llama_cpp_defaults) {
    ct_gguf g;
    ct_model_config c;
    ct_error err = {0};
    CHECK_OK(ct_gguf_open(&g, ct_test_fixture(TINY), &err), &err);
    CHECK_OK(ct_model_config_from_gguf(&c, &g, &err), &err);
    CHECK_EQ(c.arch, CT_ARCH_GEMMA3);
    CHECK_EQ(c.hidden_act, CT_ACT_GELU_TANH);
    CHECK_EQ(c.head_dim, 32);
    CHECK_NEAR(c.query_pre_attn_scalar, 32, 0); // llama.cpp: 1/sqrt(head_dim)
    CHECK_NEAR(c.rope_local_base_freq, 1e4, 0);
    CHECK_NEAR(c.rope.theta, 1e6, 0);
    CHECK_EQ(c.sliding_window, 4);
    CHECK(c.tie_word_embeddings);
    CHECK(c.qk_norm);
    for (int l = 0; l < 6; l++)
        CHECK_EQ(c.layer_attn[l], l == 5 ? CT_ATTN_FULL : CT_ATTN_SLIDING);
    ct_model_config_free(&c);
    ct_gguf_close(&g);
}

TEST(gemma_gguf_logits_match_transformers) {
    ct_error err = {0};
    ct_status st;
    double e = logits_err(ct_test_fixture(TINY), NULL, &err, &st);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_MSG(e < 1e-4, "logits relative error %.3g", e);
}

// The GGUF stores 1 + w: the loaded weight is w (the forward adds the 1).
TEST(gemma_gguf_norms_unshifted) {
    ct_gguf g;
    ct_backend *be;
    ct_model m;
    ct_error err = {0};
    CHECK_OK(ct_gguf_open(&g, ct_test_fixture(TINY), &err), &err);
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    CHECK_OK(ct_model_load(&m, ct_test_fixture(TINY), be, &err), &err);
    const ct_gguf_tensor *t = ct_gguf_find_tensor(&g, "blk.2.post_ffw_norm.weight");
    float stored[64], loaded[64];
    CHECK_OK(ct_gguf_tensor_to_f32(&g, t, stored, &err), &err);
    be->download(be, loaded, m.layers[2].post_ffn_norm, sizeof loaded);
    double d = 0;
    for (int i = 0; i < 64; i++)
        d = fmax(d, fabs(loaded[i] - (stored[i] - 1.0f)));
    CHECK_MSG(d < 1e-7, "max |loaded - (stored - 1)| = %g", d);
    ct_model_free(&m);
    ct_backend_destroy(be);
    ct_gguf_close(&g);
}

static void scale_q_norm(ct_model *m) { m->be->scale(m->be, m->layers[0].q_norm, 1.01f, m->D); }

// The 1e-4 bar catches a 1% error in one layer's q norm weights.
TEST(gemma_tolerance_catches_small_perturbation) {
    ct_error err = {0};
    ct_status st;
    double e = logits_err(ct_test_fixture(TINY), scale_q_norm, &err, &st);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_MSG(e > 1e-4, "perturbed logits error %.3g should exceed 1e-4", e);
}

// transformers' ids for the texts in tiny_tokens.json; skip_spaces: leave out
// texts with runs of spaces (the GGUF tokenizer matches llama.cpp there: its
// user-defined "  " tokens whole, where transformers respells them "▁▁").
static void check_tokens(const char *model, bool skip_spaces) {
    char path[512];
    snprintf(path, sizeof path, "%s/tiny_tokens.json", ct_test_fixture("gemma"));
    char *text;
    size_t len;
    ct_error err = {0};
    ct_tokenizer *tok;
    CHECK_OK(ct_read_file(path, &text, &len, &err), &err);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK_OK(ct_tokenizer_load(&tok, model, &err), &err);
    int checked = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, doc) {
        const char *s = cJSON_GetObjectItemCaseSensitive(e, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, "ids");
        if (skip_spaces && strstr(s, "  "))
            continue;
        int32_t *ids;
        size_t n;
        CHECK_OK(ct_tokenizer_encode(tok, s, strlen(s), true, &ids, &n, &err), &err);
        bool same = (int)n == cJSON_GetArraySize(want);
        for (size_t i = 0; same && i < n; i++)
            same = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        CHECK_MSG(same, "%s: \"%s\": %zu ids differ from transformers'", model, s, n);
        free(ids);
        checked++;
    }
    CHECK(checked >= 5);
    ct_tokenizer_free(tok);
    cJSON_Delete(doc);
}

TEST(gemma_gguf_tokenizer_matches_transformers) { check_tokens(ct_test_fixture(TINY), true); }

// convert --dtype float32: the folder gives the same logits and, through the
// tokenizer.json written for the SentencePiece vocab, transformers' ids.
TEST(gemma_convert_to_folder) {
    char out[512];
    ct_error err = {0};
    snprintf(out, sizeof out, "%s/gemma_tiny_f32", ct_test_tmpdir());
    ct_remove_tree(out, &err);
    ct_convert_opts o = {.model = ct_test_fixture(TINY), .mlx_path = out, .dtype = "float32"};
    CHECK_OK(ct_convert(&o, NULL, &err), &err);
    ct_weights w;
    CHECK_OK(ct_weights_open(&w, out, &err), &err);
    CHECK(ct_weights_find(&w, "model.layers.0.pre_feedforward_layernorm.weight") != NULL);
    CHECK(ct_weights_find(&w, "model.layers.5.post_feedforward_layernorm.weight") != NULL);
    CHECK(ct_weights_find(&w, "model.layers.5.self_attn.q_norm.weight") != NULL);
    CHECK(ct_weights_find(&w, "lm_head.weight") == NULL);
    ct_weights_close(&w);
    ct_status st;
    double e = logits_err(out, NULL, &err, &st);
    CHECK_MSG(st == CT_OK, "%s", err.msg);
    CHECK_MSG(e < 1e-4, "converted folder: logits relative error %.3g", e);
    check_tokens(out, false);
    ct_remove_tree(out, &err);
}

// A copy of the tiny GGUF with the first occurrence of find replaced by repl (same length).
static const char *patched(const char *name, const char *find, const void *repl, size_t off, size_t n) {
    char *data;
    size_t len;
    ct_error err = {0};
    if (ct_read_file(ct_test_fixture(TINY), &data, &len, &err) != CT_OK)
        return NULL;
    char *at = memmem(data, len, find, strlen(find));
    if (at)
        memcpy(at + off, repl, n);
    const char *path = at ? ct_test_write_tmp(name, data, len) : NULL;
    free(data);
    return path;
}

TEST(gemma_gguf_missing_norm_names_tensor) {
    const char *p = patched("gemma_no_norm.gguf", "blk.3.post_ffw_norm.weight", "X", 5, 1);
    CHECK(p != NULL);
    ct_backend *be;
    ct_model m;
    ct_error err = {0};
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    CHECK_FAILS(ct_model_load(&m, p, be, &err), &err, "missing tensor blk.3.post_ffw_norm.weight");
    ct_backend_destroy(be);
}

TEST(gemma_gguf_wrong_key_length_names_key) {
    // key string, then its type (u32) and value: 32 -> 64
    uint32_t v = 64;
    const char *key = "gemma3.attention.key_length";
    const char *p = patched("gemma_key_length.gguf", key, &v, strlen(key) + 4, 4);
    CHECK(p != NULL);
    ct_gguf g;
    ct_model_config c;
    ct_error err = {0};
    CHECK_OK(ct_gguf_open(&g, p, &err), &err);
    CHECK_FAILS(ct_model_config_from_gguf(&c, &g, &err), &err, "gemma3.attention.key_length = 64");
    CHECK_CONTAINS(err.msg, "blk.0.attn_q.weight");
    ct_gguf_close(&g);
}
