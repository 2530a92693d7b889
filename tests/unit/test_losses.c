// Distillation losses (losses.h) against PyTorch autograd
// (tests/fixtures/losses, made by tools/make_loss_fixtures.py): per-row KL
// and JS at temperature 2 over the full vocabulary and the teacher's top-8
// support, weighted sums and their student gradients; the same gradients by
// finite differences; the host top-k; errors. The CPU backend's device
// buffers are host memory, so host arrays are passed directly.
#include <stdlib.h>

#include "ctune/losses.h"
#include "ctune/safetensors.h"
#include "harness.h"

enum { N = 6, V = 37, K = 8 };

typedef struct fx {
    ct_backend *be;
    ct_safetensors st;
} fx;

static bool fx_open(fx *f) {
    ct_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/losses.safetensors", ct_test_fixture("losses"));
    memset(f, 0, sizeof *f);
    return ct_safetensors_open(&f->st, path, &err) == CT_OK && ct_backend_cpu_create(&f->be, &err) == CT_OK;
}

static void fx_close(fx *f) {
    ct_safetensors_close(&f->st);
    if (f->be)
        ct_backend_destroy(f->be);
}

static const void *get(fx *f, const char *name) {
    const ct_tensor_view *v = ct_safetensors_find(&f->st, name);
    return v ? v->data : NULL;
}

// max |a - b| / max |b|
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

// The weighted loss and gradient of one case (kl/js, full/topk) at temperature tau.
static ct_status run_case(fx *f, bool js, bool topk, float tau, double *loss, float *grad, ct_error *err) {
    ct_distill_loss l;
    CT_TRY(ct_distill_loss_init(&l, f->be, tau, js, topk ? K : 0, err));
    const float *teacher = get(f, topk ? "top_values" : "teacher");
    memset(grad, 0, sizeof(float) * N * V);
    *loss = 0;
    ct_status st = ct_distill_loss_apply(&l, get(f, "student"), teacher, get(f, "top_indices"), get(f, "weight"), N,
                                         V, grad, loss, err);
    ct_distill_loss_free(&l);
    return st;
}

static void check_case(bool js, bool topk) {
    fx f;
    CHECK(fx_open(&f));
    char name[64];
    snprintf(name, sizeof name, "%s_%s_", js ? "js" : "kl", topk ? "topk" : "full");
    char rows_name[80], grad_name[80];
    snprintf(rows_name, sizeof rows_name, "%srows", name);
    snprintf(grad_name, sizeof grad_name, "%sgrad", name);
    const float *rows = get(&f, rows_name), *ref = get(&f, grad_name), *w = get(&f, "weight");
    CHECK(rows && ref && w);
    double want = 0;
    for (int r = 0; r < N; r++)
        want += (double)w[r] * rows[r];
    float grad[N * V];
    double loss;
    ct_error err = {0};
    CHECK_OK(run_case(&f, js, topk, 2.0f, &loss, grad, &err), &err);
    CHECK_NEAR(loss, want, 1e-5 * fabs(want));
    CHECK_MSG(rel_err(grad, ref, N * V) < 1e-5, "%s gradient rel err %g", name, rel_err(grad, ref, N * V));
    for (int v = 0; v < V; v++) // the row of weight 0 gets no gradient
        CHECK(grad[2 * V + v] == 0.0f);
    // The tolerance catches a real bug: the wrong temperature.
    CHECK_OK(run_case(&f, js, topk, 1.0f, &loss, grad, &err), &err);
    CHECK(rel_err(grad, ref, N * V) > 1e-2);
    fx_close(&f);
}

TEST(losses_kl_full_vs_torch) { check_case(false, false); }
TEST(losses_kl_topk_vs_torch) { check_case(false, true); }
TEST(losses_js_full_vs_torch) { check_case(true, false); }
TEST(losses_js_topk_vs_torch) { check_case(true, true); }

// Central differences of the weighted loss (double accumulation) per logit.
static void check_finite_differences(bool js, bool topk) {
    fx f;
    CHECK(fx_open(&f));
    float student[N * V], grad[N * V];
    memcpy(student, get(&f, "student"), sizeof student);
    const float *teacher = get(&f, topk ? "top_values" : "teacher");
    ct_distill_loss l;
    ct_error err = {0};
    CHECK_OK(ct_distill_loss_init(&l, f.be, 2.0f, js, topk ? K : 0, &err), &err);
    double loss = 0, worst = 0, gmax = 0;
    memset(grad, 0, sizeof grad);
    CHECK_OK(ct_distill_loss_apply(&l, student, teacher, get(&f, "top_indices"), get(&f, "weight"), N, V, grad,
                                   &loss, &err), &err);
    const float h = 1e-2f;
    for (int i = 0; i < N * V; i++) {
        float x = student[i];
        double lp = 0, lm = 0;
        student[i] = x + h;
        CHECK_OK(ct_distill_loss_apply(&l, student, teacher, get(&f, "top_indices"), get(&f, "weight"), N, V, NULL,
                                       &lp, &err), &err);
        student[i] = x - h;
        CHECK_OK(ct_distill_loss_apply(&l, student, teacher, get(&f, "top_indices"), get(&f, "weight"), N, V, NULL,
                                       &lm, &err), &err);
        student[i] = x;
        double fd = (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(fd - grad[i]));
        gmax = fmax(gmax, fabs(grad[i]));
    }
    CHECK_MSG(worst < 2e-3 * gmax, "finite differences: max err %g (max grad %g)", worst, gmax);
    ct_distill_loss_free(&l);
    fx_close(&f);
}

TEST(losses_kl_topk_finite_differences) { check_finite_differences(false, true); }
TEST(losses_js_full_finite_differences) { check_finite_differences(true, false); }

TEST(losses_top_k_matches_torch) {
    fx f;
    CHECK(fx_open(&f));
    float vals[N * K];
    int32_t idx[N * K];
    ct_logits_top_k(get(&f, "teacher"), N, V, K, vals, idx);
    CHECK(memcmp(vals, get(&f, "top_values"), sizeof vals) == 0);
    CHECK(memcmp(idx, get(&f, "top_indices"), sizeof idx) == 0);
    float tie[5] = {1, 3, 3, 0, 3};
    ct_logits_top_k(tie, 1, 5, 3, vals, idx); // ties: lower index first
    CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 4 && vals[2] == 3.0f);
    fx_close(&f);
}

TEST(losses_errors) {
    fx f;
    CHECK(fx_open(&f));
    ct_distill_loss l;
    ct_error err = {0};
    CHECK_FAILS(ct_distill_loss_init(&l, f.be, 0.0f, false, 0, &err), &err, "temperature must be > 0");
    CHECK_FAILS(ct_distill_loss_init(&l, f.be, 1.0f, false, -1, &err), &err, "top-k must be >= 0");
    CHECK_OK(ct_distill_loss_init(&l, f.be, 1.0f, false, V + 1, &err), &err);
    double loss = 0;
    CHECK_FAILS(ct_distill_loss_apply(&l, get(&f, "student"), get(&f, "teacher"), NULL, get(&f, "weight"), N, V,
                                      NULL, &loss, &err), &err, "larger than the vocabulary (37)");
    ct_distill_loss_free(&l);
    fx_close(&f);
}
