// LoRA and DoRA linears (dense and 4-bit affine base) against PyTorch
// autograd (tests/fixtures/adapters/reference.safetensors, made by
// tools/make_adapter_fixtures.py): output, dx, dA, dB, dm and the fused
// weight within 1e-4 relative to the reference's largest element.
#include <stdlib.h>

#include "ctune/adapter.h"
#include "ctune/safetensors.h"
#include "harness.h"

enum { IN = 64, OUT = 8, R = 4, N = 5 };

static const float *get(const ct_safetensors *st, const char *c, const char *what) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", c, what);
    const ct_tensor_view *t = ct_safetensors_find(st, name);
    return t ? t->data : NULL;
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md || d != d ? d : md;
        mb = fabs((double)b[i]) > mb ? fabs((double)b[i]) : mb;
    }
    return md / mb;
}

// Device gradient of parameter p -> host in mlx's layout.
static void grad_mlx(const ct_adapter_param *p, float *out) {
    if (!p->transposed) {
        memcpy(out, p->grad, sizeof(float) * (size_t)p->numel);
        return;
    }
    int64_t r = p->mlx_shape[0], c = p->mlx_shape[1];
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            out[i * c + j] = p->grad[j * r + i];
}

static void check_case(const ct_safetensors *st, const char *c, ct_adapter_type type, bool quant) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    ct_weight w = {.rows = OUT, .cols = IN, .dtype = CT_F32, .data = get(st, c, "w")};
    if (quant)
        w = (ct_weight){OUT, IN, CT_F32, 4, 32, get(st, c, "wq"), get(st, c, "scales"), get(st, c, "biases")};
    const float *x = get(st, c, "x"), *Rr = get(st, c, "R"), *bias = get(st, c, "bias");
    CHECK(x && Rr && bias && w.data);
    ct_module_desc md = {c, CT_MODULE_LINEAR, IN, OUT, quant ? 4 : 0, 32, true};
    ct_adapter_config cfg;
    ct_adapter_config_default(&cfg);
    cfg.type = type, cfg.rank = R, cfg.scale = 2.0f;
    ct_adapter_layer l;
    ct_adapter_cache cache = {0};
    CHECK_OK(ct_adapter_layer_init(&l, be, &md, &cfg, &w, 1, &err), &err);
    ct_adapter_layer_set(&l, be, get(st, c, "a"), get(st, c, "b"), type == CT_ADAPTER_DORA ? get(st, c, "m") : NULL);
    float y[N * OUT], dx[N * IN] = {0}, da[IN * R], db[R * OUT], dm[OUT];
    CHECK_OK(ct_adapter_linear_forward(be, &l, &cache, y, x, &w, bias, N, true, 3, &err), &err);
    ct_adapter_linear_backward(be, &l, &cache, dx, Rr, x, &w, N);
    ct_adapter_param p[3];
    int np = ct_adapter_param_info(&l, p);
    grad_mlx(&p[0], da);
    grad_mlx(&p[1], db);
    double e[6] = {rel_err(y, get(st, c, "y"), N * OUT), rel_err(dx, get(st, c, "dx"), N * IN),
                   rel_err(da, get(st, c, "da"), IN * R), rel_err(db, get(st, c, "db"), R * OUT), 0, 0};
    if (np == 3) {
        grad_mlx(&p[2], dm);
        e[4] = rel_err(dm, get(st, c, "dm"), OUT);
    }
    ct_fused_weight fw;
    ct_fuse_report rep;
    CHECK_OK(ct_adapter_fuse(be, &l, &w, true, &fw, &rep, &err), &err);
    CHECK(fw.w.bits == 0 && fw.w.dtype == CT_F32);
    e[5] = rel_err(fw.data, get(st, c, "fused"), OUT * IN);
    CHECK(rep.lost == 0 && rep.delta_rel > 0.01);
    ct_fused_weight_free(&fw);
    fprintf(stderr, "  %-10s y %.1e dx %.1e da %.1e db %.1e dm %.1e fused %.1e\n", c, e[0], e[1], e[2], e[3], e[4],
            e[5]);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(e[i] < 1e-4, "%s: value %d off by %g", c, i, e[i]);
    if (quant) { // re-quantized fuse: same bits/group, a measured loss of the delta
        CHECK_OK(ct_adapter_fuse(be, &l, &w, false, &fw, &rep, &err), &err);
        CHECK(fw.w.bits == 4 && fw.w.group_size == 32 && fw.w.dtype == CT_F32);
        CHECK(rep.lost > 0.001 && rep.lost < 2.0);
        ct_fused_weight_free(&fw);
    }
    ct_adapter_cache_free(&cache, be);
    ct_adapter_layer_free(&l, be);
    ct_backend_destroy(be);
}

TEST(adapter_linears_match_torch) {
    ct_safetensors st;
    ct_error err;
    CHECK_OK(ct_safetensors_open(&st, ct_test_fixture("adapters/reference.safetensors"), &err), &err);
    check_case(&st, "lora_dense", CT_ADAPTER_LORA, false);
    check_case(&st, "lora_q4", CT_ADAPTER_LORA, true);
    check_case(&st, "dora_dense", CT_ADAPTER_DORA, false);
    check_case(&st, "dora_q4", CT_ADAPTER_DORA, true);
    ct_safetensors_close(&st);
}

// A tiny delta mostly vanishes in bf16 storage: lost near 1.
TEST(adapter_fuse_reports_lost_delta) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    float w[4 * 32];
    uint16_t wb[4 * 32];
    for (int i = 0; i < 4 * 32; i++)
        w[i] = (float)((i * 37) % 11) - 5.0f, wb[i] = ct_f32_to_bf16(w[i]);
    ct_weight dense = {.rows = 4, .cols = 32, .dtype = CT_BF16, .data = wb};
    ct_module_desc md = {"m", CT_MODULE_LINEAR, 32, 4, 0, 0, false};
    ct_adapter_config cfg;
    ct_adapter_config_default(&cfg);
    cfg.rank = 2, cfg.scale = 1e-4f;
    ct_adapter_layer l;
    CHECK_OK(ct_adapter_layer_init(&l, be, &md, &cfg, &dense, 1, &err), &err);
    for (int i = 0; i < 8; i++)
        l.b[i] = 1.0f;
    ct_fused_weight fw;
    ct_fuse_report rep;
    CHECK_OK(ct_adapter_fuse(be, &l, &dense, false, &fw, &rep, &err), &err);
    CHECK(fw.w.dtype == CT_BF16);
    CHECK(rep.lost > 0.9); // only the rows of zeros keep it
    ct_fused_weight_free(&fw);
    l.scale = 1.0f; // a delta bf16 can hold: most of it kept
    CHECK_OK(ct_adapter_fuse(be, &l, &dense, false, &fw, &rep, &err), &err);
    CHECK(rep.lost < 0.1);
    ct_fused_weight_free(&fw);
    ct_adapter_layer_free(&l, be);
    ct_backend_destroy(be);
}
