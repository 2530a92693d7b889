// Optimizers and schedules against trajectories recorded from mlx.optimizers
// (tools/make_optim_fixtures.py): 10 updates of a (6,5) and a (5,) parameter.
#include <stdlib.h>

#include "ctune/json.h"
#include "ctune/optim.h"
#include "harness.h"

static cJSON *load_fixture(void) {
    ct_error err;
    cJSON *j = NULL;
    if (ct_json_load_file(ct_test_fixture("optim/optim.json"), &j, &err) != CT_OK)
        fprintf(stdout, "    %s\n", err.msg);
    return j;
}

static void read_floats(const cJSON *arr, float *out, int n) {
    int i = 0;
    for (const cJSON *it = arr->child; it && i < n; it = it->next)
        out[i++] = (float)it->valuedouble;
}

// Relative max error: max |a - b| over max |b| (the tensor's scale).
static double max_rel_err(const float *a, const float *b, int n) {
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return worst / fmax(scale, 1e-30);
}

TEST(optimizers_match_mlx_trajectories) {
    cJSON *fx = load_fixture();
    CHECK(fx != NULL);
    float w0[30], b0[5], gw[10][30], gb[10][5], ew[30], eb[5];
    read_floats(cJSON_GetObjectItem(fx, "w0"), w0, 30);
    read_floats(cJSON_GetObjectItem(fx, "b0"), b0, 5);
    int s = 0;
    for (const cJSON *g = cJSON_GetObjectItem(fx, "grads")->child; g; g = g->next, s++) {
        read_floats(cJSON_GetObjectItem(g, "w"), gw[s], 30);
        read_floats(cJSON_GetObjectItem(g, "b"), gb[s], 5);
    }
    int ncases = 0;
    for (const cJSON *cs = cJSON_GetObjectItem(fx, "cases")->child; cs; cs = cs->next, ncases++) {
        ct_error err;
        ct_optim_kind kind;
        CHECK_OK(ct_optim_kind_from_name(cJSON_GetObjectItem(cs, "optimizer")->valuestring, &kind, &err), &err);
        ct_optim_config cfg = ct_optim_defaults(kind);
        CHECK_OK(ct_optim_config_apply_json(&cfg, cJSON_GetObjectItem(cs, "config"), &err), &err);
        float lr = (float)cJSON_GetObjectItem(cs, "learning_rate")->valuedouble;
        float w[30], b[5];
        memcpy(w, w0, sizeof w);
        memcpy(b, b0, sizeof b);
        ct_optim_param params[2] = {{w, NULL, 2, 6, 5}, {b, NULL, 1, 1, 5}};
        ct_optimizer opt;
        CHECK_OK(ct_optimizer_init(&opt, &cfg, params, 2, &err), &err);
        int step = 0;
        for (const cJSON *st = cJSON_GetObjectItem(cs, "steps")->child; st; st = st->next, step++) {
            params[0].g = gw[step];
            params[1].g = gb[step];
            ct_optimizer_update(&opt, lr, params);
            read_floats(cJSON_GetObjectItem(st, "w"), ew, 30);
            read_floats(cJSON_GetObjectItem(st, "b"), eb, 5);
            double e = fmax(max_rel_err(w, ew, 30), max_rel_err(b, eb, 5));
            CHECK_MSG(e < 1e-5, "case %d (%s %s) step %d: max rel err %.3g", ncases, ct_optim_kind_name(kind),
                      cJSON_PrintUnformatted(cJSON_GetObjectItem(cs, "config")), step + 1, e);
        }
        CHECK_EQ(step, 10);
        CHECK_EQ(opt.step, 10);
        ct_optimizer_free(&opt);
    }
    CHECK_EQ(ncases, 11);
    cJSON_Delete(fx);
}

TEST(optimizer_tolerance_catches_a_wrong_rule) {
    // Adam with bias correction differs from without by far more than the tolerance.
    float w1[4] = {1, 2, 3, 4}, w2[4] = {1, 2, 3, 4}, g[4] = {0.1f, -0.2f, 0.3f, 0.05f};
    ct_error err;
    ct_optim_config a = ct_optim_defaults(CT_OPT_ADAM), b = a;
    b.bias_correction = true;
    ct_optim_param p1 = {w1, g, 1, 1, 4}, p2 = {w2, g, 1, 1, 4};
    ct_optimizer o1, o2;
    CHECK_OK(ct_optimizer_init(&o1, &a, &p1, 1, &err), &err);
    CHECK_OK(ct_optimizer_init(&o2, &b, &p2, 1, &err), &err);
    ct_optimizer_update(&o1, 1e-2f, &p1);
    ct_optimizer_update(&o2, 1e-2f, &p2);
    CHECK(max_rel_err(w1, w2, 4) > 1e-4);
    ct_optimizer_free(&o1);
    ct_optimizer_free(&o2);
}

TEST(optimizer_config_errors) {
    ct_error err;
    ct_optim_kind k;
    CHECK_FAILS(ct_optim_kind_from_name("lamb", &k, &err), &err, "unsupported optimizer 'lamb'");
    ct_optim_config c = ct_optim_defaults(CT_OPT_ADAM);
    cJSON *j = cJSON_Parse("{\"momentum\": 0.9}");
    CHECK_FAILS(ct_optim_config_apply_json(&c, j, &err), &err, "optimizer_config.adam: unknown key \"momentum\"");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"betas\": [0.9]}");
    CHECK_FAILS(ct_optim_config_apply_json(&c, j, &err), &err, "\"betas\" must be a list of two numbers");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"eps\": \"small\"}");
    CHECK_FAILS(ct_optim_config_apply_json(&c, j, &err), &err, "\"eps\" must be a number");
    cJSON_Delete(j);
    c = ct_optim_defaults(CT_OPT_SGD);
    j = cJSON_Parse("{\"nesterov\": true}");
    CHECK_FAILS(ct_optim_config_apply_json(&c, j, &err), &err, "nesterov momentum requires a momentum");
    cJSON_Delete(j);
}

TEST(schedules_match_mlx) {
    cJSON *fx = load_fixture();
    CHECK(fx != NULL);
    int n = 0;
    for (const cJSON *sc = cJSON_GetObjectItem(fx, "schedules")->child; sc; sc = sc->next, n++) {
        double args[3];
        int na = 0;
        for (const cJSON *a = cJSON_GetObjectItem(sc, "arguments")->child; a; a = a->next)
            args[na++] = a->valuedouble;
        ct_schedule s;
        ct_error err;
        CHECK_OK(ct_schedule_from_config(&s, cJSON_GetObjectItem(sc, "name")->valuestring, args, na, 0, 0, &err), &err);
        int t = 0;
        for (const cJSON *v = cJSON_GetObjectItem(sc, "values")->child; v; v = v->next, t++)
            CHECK_NEAR(ct_schedule_lr(&s, t), v->valuedouble, 1e-7 * fmax(1.0, fabs(v->valuedouble)) + 1e-9);
        CHECK_EQ(t, 30);
    }
    CHECK_EQ(n, 5);
    cJSON_Delete(fx);
}

TEST(schedule_warmup_has_no_flat_step) {
    ct_schedule s;
    ct_error err;
    double args[2] = {1e-3, 100};
    CHECK_OK(ct_schedule_from_config(&s, "cosine_decay", args, 2, 10, 1e-7, &err), &err);
    CHECK_NEAR(ct_schedule_lr(&s, 0), 1e-7, 1e-15);
    CHECK_NEAR(ct_schedule_lr(&s, 5), 1e-7 + 5 * (1e-3 - 1e-7) / 10, 1e-15);
    CHECK_NEAR(ct_schedule_lr(&s, 10), 1e-3, 1e-15);
    CHECK(ct_schedule_lr(&s, 11) < 1e-3); // mlx would repeat 1e-3 here
    CHECK_NEAR(ct_schedule_lr(&s, 11), 1e-3 * 0.5 * (1 + cos(M_PI * 1 / 100)), 1e-15);
    CHECK_FAILS(ct_schedule_from_config(&s, "cosine", args, 2, 0, 0, &err), &err, "unknown schedule 'cosine'");
    CHECK_FAILS(ct_schedule_from_config(&s, "step_decay", args, 2, 0, 0, &err), &err, "[init, decay_rate, step_size]");
}

TEST(clip_grad_norm_scales_only_when_large) {
    float a[2] = {3, 0}, b[1] = {4};
    float *g[2] = {a, b};
    int64_t lens[2] = {2, 1};
    double norm = ct_clip_grad_norm(g, lens, 2, 1.0);
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_NEAR(a[0], 3.0 / (5 + 1e-6), 1e-6);
    CHECK_NEAR(b[0], 4.0 / (5 + 1e-6), 1e-6);
    norm = ct_clip_grad_norm(g, lens, 2, 10.0);
    CHECK_NEAR(a[0], 3.0 / (5 + 1e-6), 1e-6);
}
