// Dynamic quantization (ctune quant dynamic): the bits-per-weight arithmetic
// against ct_convert's measured output, the threshold search, the
// sensitivities file, and the sensitivity formula against finite differences
// of the KL loss on the tiny chat model fixture.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/affine_quant.h"
#include "ctune/backend.h"
#include "ctune/dynamic_quant.h"
#include "harness.h"

// A layout of n modules (rows, in) with 2-byte scales and no other tensors.
static void toy_layout(ct_dq_layout *lay, int n, int64_t rows, int64_t in) {
    memset(lay, 0, sizeof *lay);
    lay->n = n;
    lay->paths = calloc((size_t)n, sizeof *lay->paths);
    lay->rows = calloc((size_t)n, sizeof *lay->rows);
    lay->in = calloc((size_t)n, sizeof *lay->in);
    lay->sb = calloc((size_t)n, sizeof *lay->sb);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj", i);
        lay->paths[i] = strdup(name);
        lay->rows[i] = rows;
        lay->in[i] = in;
        lay->sb[i] = CT_F16;
    }
}

TEST(dq_bpw_by_hand) {
    ct_dq_layout lay;
    toy_layout(&lay, 1, 128, 256);
    lay.fixed_bytes = 200, lay.fixed_params = 100;
    bool high = false;
    // 4-bit g64: 128*256/2 packed bytes + 2 * 128*4 f16 scales/biases.
    double want = 8.0 * (16384 + 2048 + 200) / (32768 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 64}, (ct_dq_setting){8, 32}), want, 1e-12);
    high = true; // 8-bit g32: 128*256 bytes + 2 * 2 * 128*8
    want = 8.0 * (32768 + 4096 + 200) / (32768 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 64}, (ct_dq_setting){8, 32}), want, 1e-12);
    high = false; // in not a multiple of 128: stays dense (2 bytes per weight)
    ct_dq_layout_free(&lay);
    toy_layout(&lay, 1, 128, 192);
    lay.fixed_bytes = 200, lay.fixed_params = 100;
    want = 8.0 * (128 * 192 * 2 + 200) / (128 * 192 + 100);
    CHECK_NEAR(ct_dq_bpw(&lay, &high, (ct_dq_setting){4, 128}, (ct_dq_setting){8, 32}), want, 1e-12);
    ct_dq_layout_free(&lay);
}

typedef struct { const ct_dq_layout *lay; const bool *high; ct_dq_setting lo, hi; } mix_ctx;

static ct_quant_spec mix_spec(void *ctx, const char *module, int64_t in, bool *override) {
    const mix_ctx *c = ctx;
    int i = ct_dq_layout_find(c->lay, module);
    (void)in;
    ct_quant_spec s = ct_dq_module_spec(c->lay, i < 0 ? 0 : i, i >= 0 && c->high[i], c->lo, c->hi);
    *override = i >= 0 && c->high[i];
    return s;
}

// The arithmetic equals what ct_convert writes, for mixed choices and dtypes.
TEST(dq_bpw_matches_convert) {
    const char *model = ct_test_fixture("chat_model");
    struct { const char *dtype; ct_dq_setting lo, hi; } cases[] = {
        {"float16", {2, 32}, {6, 32}},
        {"float32", {3, 64}, {8, 32}}, // g64: only down_proj (in 64) is quantized at the low setting
        {"bfloat16", {4, 32}, {5, 64}},
    };
    for (int c = 0; c < 3; c++) {
        ct_error err = {0};
        ct_dq_layout lay;
        CHECK_OK(ct_dq_layout_load(&lay, model, cases[c].dtype, &err), &err);
        CHECK_EQ(lay.n, 2 * 7 + 1); // 14 linears and the tied embedding
        CHECK(ct_dq_layout_find(&lay, "model.embed_tokens") >= 0);
        CHECK(ct_dq_layout_find(&lay, "lm_head") < 0);
        bool *high = calloc((size_t)lay.n, sizeof *high);
        for (int i = 0; i < lay.n; i += 2)
            high[i] = true;
        mix_ctx mc = {&lay, high, cases[c].lo, cases[c].hi};
        ct_convert_hook hook = {.ctx = &mc, .spec = mix_spec};
        char out[512];
        snprintf(out, sizeof out, "%s/dq_bpw_%d", ct_test_tmpdir(), c);
        ct_convert_opts o = {.model = model, .mlx_path = out, .quantize = true, .q_bits = cases[c].lo.bits,
                             .q_group_size = cases[c].lo.group_size, .dtype = cases[c].dtype, .hook = &hook};
        ct_convert_stats st;
        CHECK_OK(ct_convert(&o, &st, &err), &err);
        double mine = ct_dq_bpw(&lay, high, cases[c].lo, cases[c].hi);
        CHECK_NEAR(mine, st.bits_per_weight, 1e-12);
        CHECK(st.n_quantized > 0);
        free(high);
        ct_dq_layout_free(&lay);
    }
}

TEST(dq_layout_errors) {
    ct_error err = {0};
    ct_dq_layout lay;
    CHECK_FAILS(ct_dq_layout_load(&lay, ct_test_fixture("chat_model"), "float64", &err), &err, "--dtype");
    CHECK_FAILS(ct_dq_layout_load(&lay, ct_test_fixture("models/mlx_q4_g32"), NULL, &err), &err,
                "already quantized");
}

// Four equal modules at 4.5 bpw low (4-bit g64) and 8.5 high (8-bit g64).
TEST(dq_threshold_search) {
    ct_dq_layout lay;
    toy_layout(&lay, 4, 64, 64);
    double sens[4] = {3.0, 1.0, 4.0, 2.0};
    ct_dq_setting lo = {4, 64}, hi = {8, 64};
    ct_dq_split s;
    ct_error err = {0};
    CHECK_OK(ct_dq_threshold(&lay, sens, 6.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 2); // the two most sensitive
    CHECK_NEAR(s.bpw, 6.5, 1e-12);
    CHECK(s.threshold >= 2.0 && s.threshold < 3.0);
    CHECK_OK(ct_dq_threshold(&lay, sens, 7.4, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 2); // three would give 7.5
    CHECK_OK(ct_dq_threshold(&lay, sens, 7.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 3);
    CHECK(s.threshold >= 1.0 && s.threshold < 2.0);
    // Never over the target (mlx-lm's midpoint would make the top module high: 5.5 bpw).
    CHECK_OK(ct_dq_threshold(&lay, sens, 5.0, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 0);
    CHECK_NEAR(s.bpw, 4.5, 1e-12);
    CHECK_OK(ct_dq_threshold(&lay, sens, 5.5, lo, hi, &s, &err), &err);
    CHECK_EQ(s.n_high, 1);
    CHECK_FAILS(ct_dq_threshold(&lay, sens, 4.0, lo, hi, &s, &err), &err, "4.5000 bits per weight all low");
    CHECK_FAILS(ct_dq_threshold(&lay, sens, 9.0, lo, hi, &s, &err), &err, "8.5000 all high");
    ct_dq_layout_free(&lay);
}

TEST(dq_sensitivities_file) {
    ct_dq_layout lay;
    toy_layout(&lay, 3, 64, 64);
    double sens[3] = {0.1 / 3.0, -2.5e-7, 12345.678901234567}, back[3] = {0};
    ct_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/dq_sens.json", ct_test_tmpdir());
    CHECK_OK(ct_dq_sens_save(path, &lay, sens, &err), &err);
    CHECK_OK(ct_dq_sens_load(path, &lay, back, &err), &err);
    for (int i = 0; i < 3; i++)
        CHECK(back[i] == sens[i]); // exact round trip
    struct { const char *text, *needle; } bad[] = {
        {"{\"a\": 1}", "expected a list of [module path, number] pairs, found an object"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], 3]", "entry 2: expected [module path, number], found a number"},
        {"[[\"model.layers.0.mlp.down_proj\", \"x\"]]", "entry 1: expected [module path, number]"},
        {"[[\"model.layers.9.mlp.down_proj\", 1]]", "entry 1: 'model.layers.9.mlp.down_proj' is not a quantizable"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], [\"model.layers.0.mlp.down_proj\", 2]]", "entry 2: "
                                                                                          "'model.layers.0.mlp.down_proj' appears twice"},
        {"[[\"model.layers.0.mlp.down_proj\", 1e999]]", "is not finite"},
        {"[[\"model.layers.0.mlp.down_proj\", 1], [\"model.layers.2.mlp.down_proj\", 1]]",
         "no sensitivity for module 'model.layers.1.mlp.down_proj'"},
        {"[[\"model.layers.0.mlp.down_proj\", 1]", "bad.json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s", ct_test_write_tmp("bad.json", bad[i].text, strlen(bad[i].text)));
        CHECK_FAILS(ct_dq_sens_load(p, &lay, back, &err), &err, bad[i].needle);
        CHECK_CONTAINS(err.msg, "bad.json");
    }
    ct_dq_layout_free(&lay);
}

TEST(dq_default_path) {
    char p[256];
    ct_dq_sens_default_path("Qwen/Qwen3-0.6B-base", p, sizeof p);
    CHECK_STREQ(p, "Qwen_Qwen3-0.6B-base_sensitivities.json");
    ct_dq_sens_default_path("/work/smol-f32", p, sizeof p);
    CHECK_STREQ(p, "_work_smol-f32_sensitivities.json");
}

// ---- the sensitivity formula against finite differences

enum { FD_SEQ = 3, FD_T = 8, FD_B = 2 }; // 2 batches, the second of 1 sequence

typedef struct fd_model {
    ct_backend *be;
    ct_model m;
    ct_dq_layout lay;
    ct_weight *orig;     // [n] as loaded
    float **low, **delta; // [n] host W_low and W_low - W_high (rows, in)
    float *buf;          // device scratch for the perturbed module
    float **dev_low;     // [n] device W_low
} fd_model;

static ct_weight *fd_slot(ct_model *m, const char *path) {
    if (!strcmp(path, "model.embed_tokens"))
        return &m->embed;
    for (int l = 0; l < m->L; l++)
        for (int id = 0; id < CT_LIN_COUNT; id++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, id <= CT_LIN_O ? "self_attn" : "mlp",
                     ct_linear_name((ct_linear_id)id));
            if (!strcmp(name, path))
                return &m->layers[l].lin[id].w;
        }
    return NULL;
}

// RTN round trip of w (rows, in) f32 at (bits, g) with f32 scales.
static void fd_qdq(const float *w, int64_t rows, int64_t in, ct_dq_setting s, float *out) {
    uint32_t *wq = malloc(sizeof *wq * (size_t)(rows * ct_affine_row_words(in, s.bits)));
    float *sc = malloc(sizeof *sc * (size_t)(rows * in / s.group_size));
    float *bi = malloc(sizeof *bi * (size_t)(rows * in / s.group_size));
    ct_error err;
    if (ct_affine_quantize(w, rows, in, s.bits, s.group_size, wq, sc, bi, CT_F32, &err) == CT_OK)
        ct_affine_dequantize(wq, sc, bi, CT_F32, rows, in, s.bits, s.group_size, out);
    free(wq), free(sc), free(bi);
}

// Every module at W_low, module k (if >= 0) at W_low + eps * delta.
static void fd_student(fd_model *f, int k, double eps) {
    for (int i = 0; i < f->lay.n; i++) {
        ct_weight *w = fd_slot(&f->m, f->lay.paths[i]);
        size_t n = (size_t)(f->orig[i].rows * f->orig[i].cols);
        float *data = f->dev_low[i];
        if (i == k) {
            float *p = malloc(sizeof *p * n);
            for (size_t e = 0; e < n; e++)
                p[e] = (float)(f->low[i][e] + eps * f->delta[i][e]);
            f->be->upload(f->be, f->buf, p, sizeof *p * n);
            free(p);
            data = f->buf;
        }
        *w = (ct_weight){.rows = f->orig[i].rows, .cols = f->orig[i].cols, .dtype = CT_F32, .data = data};
    }
    f->m.lm_head.w = f->m.embed; // tied
}

// Logits (FD_SEQ, FD_T, V) of the model as it stands, through the inference forward.
static void fd_logits(fd_model *f, const int32_t *ids, float *out) {
    ct_kv_cache kv;
    ct_error err;
    const float *logits;
    if (ct_kv_cache_init(&kv, &f->m, FD_SEQ, FD_T, &err) != CT_OK)
        return;
    if (ct_model_forward(&f->m, &kv, ids, FD_SEQ, FD_T, false, &logits, &err) == CT_OK)
        f->be->download(f->be, out, logits, sizeof(float) * FD_SEQ * FD_T * (size_t)f->m.V);
    ct_kv_cache_free(&kv, &f->m);
}

// Mean over batches of the mean over positions of KL(teacher || student), in double.
static double fd_loss(fd_model *f, const int32_t *ids, const float *teacher, float *student) {
    int64_t V = f->m.V;
    fd_logits(f, ids, student);
    double total = 0;
    int n_batches = 0;
    for (int b0 = 0; b0 < FD_SEQ; b0 += FD_B, n_batches++) {
        int nb = FD_SEQ - b0 < FD_B ? FD_SEQ - b0 : FD_B;
        double sum = 0;
        for (int r = b0 * FD_T; r < (b0 + nb) * FD_T; r++) {
            const float *t = teacher + r * V, *s = student + r * V;
            double mt = -INFINITY, ms = -INFINITY, zt = 0, zs = 0;
            for (int64_t v = 0; v < V; v++)
                mt = fmax(mt, t[v]), ms = fmax(ms, s[v]);
            for (int64_t v = 0; v < V; v++)
                zt += exp(t[v] - mt), zs += exp(s[v] - ms);
            for (int64_t v = 0; v < V; v++) {
                double lp = t[v] - mt - log(zt), lq = s[v] - ms - log(zs);
                sum += exp(lp) * (lp - lq);
            }
        }
        total += sum / (nb * FD_T);
    }
    return total / n_batches;
}

TEST(dq_sensitivity_matches_finite_differences) {
    fd_model f;
    memset(&f, 0, sizeof f);
    ct_error err = {0};
    const char *model = ct_test_fixture("chat_model");
    ct_dq_setting lo = {2, 32}, hi = {4, 32};
    CHECK_OK(ct_backend_cpu_create(&f.be, &err), &err);
    CHECK_OK(ct_model_load(&f.m, model, f.be, &err), &err);
    CHECK_OK(ct_dq_layout_load(&f.lay, model, "float32", &err), &err);
    int n = f.lay.n;
    int32_t ids[FD_SEQ * FD_T];
    for (int i = 0; i < FD_SEQ * FD_T; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % f.m.V);
    double *sens = calloc((size_t)n, sizeof *sens);
    CHECK_OK(ct_dq_sensitivities(&f.m, &f.lay, ids, FD_SEQ, FD_T, FD_B, lo, hi, sens, &err), &err);

    f.orig = calloc((size_t)n, sizeof *f.orig);
    f.low = calloc((size_t)n, sizeof *f.low);
    f.delta = calloc((size_t)n, sizeof *f.delta);
    f.dev_low = calloc((size_t)n, sizeof *f.dev_low);
    size_t max_n = 0;
    for (int i = 0; i < n; i++) {
        ct_weight *w = fd_slot(&f.m, f.lay.paths[i]);
        CHECK(w != NULL && w->dtype == CT_F32 && w->bits == 0); // restored as loaded
        f.orig[i] = *w;
        size_t k = (size_t)(w->rows * w->cols);
        max_n = k > max_n ? k : max_n;
        float *wf = malloc(sizeof *wf * k), *wh = malloc(sizeof *wh * k);
        f.low[i] = malloc(sizeof(float) * k);
        f.delta[i] = malloc(sizeof(float) * k);
        f.be->download(f.be, wf, w->data, sizeof *wf * k);
        fd_qdq(wf, w->rows, w->cols, lo, f.low[i]);
        fd_qdq(wf, w->rows, w->cols, hi, wh);
        for (size_t e = 0; e < k; e++)
            f.delta[i][e] = f.low[i][e] - wh[e];
        CHECK_OK(f.be->alloc(f.be, sizeof(float) * k, (void **)&f.dev_low[i], &err), &err);
        f.be->upload(f.be, f.dev_low[i], f.low[i], sizeof(float) * k);
        free(wf), free(wh);
    }
    CHECK_OK(f.be->alloc(f.be, sizeof(float) * max_n, (void **)&f.buf, &err), &err);
    size_t nl = (size_t)FD_SEQ * FD_T * (size_t)f.m.V;
    float *teacher = malloc(sizeof(float) * nl), *student = malloc(sizeof(float) * nl);
    fd_logits(&f, ids, teacher);
    // d/d eps of the loss at W_low + eps * delta is sum(g * delta) = sens * numel / 1e6.
    const char *probe[] = {"model.embed_tokens", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.o_proj",
                           "model.layers.0.mlp.down_proj"};
    const double eps = 0.05;
    for (size_t p = 0; p < sizeof probe / sizeof probe[0]; p++) {
        int i = ct_dq_layout_find(&f.lay, probe[p]);
        CHECK(i >= 0);
        fd_student(&f, i, eps);
        double up = fd_loss(&f, ids, teacher, student);
        fd_student(&f, i, -eps);
        double down = fd_loss(&f, ids, teacher, student);
        double fd = (up - down) / (2 * eps);
        double mine = sens[i] * (double)(f.orig[i].rows * f.orig[i].cols) / 1e6;
        CHECK_MSG(fabs(fd - mine) <= 2e-3 * fabs(fd) + 1e-9, "%s: finite difference %.6g, sensitivity gives %.6g",
                  probe[p], fd, mine);
    }
    for (int i = 0; i < n; i++) {
        free(f.low[i]), free(f.delta[i]);
        f.be->free(f.be, f.dev_low[i]);
        *fd_slot(&f.m, f.lay.paths[i]) = f.orig[i];
    }
    f.m.lm_head.w = f.m.embed;
    f.be->free(f.be, f.buf);
    free(f.orig), free(f.low), free(f.delta), free(f.dev_low), free(teacher), free(student), free(sens);
    ct_dq_layout_free(&f.lay);
    ct_model_free(&f.m);
    ct_backend_destroy(f.be);
}
