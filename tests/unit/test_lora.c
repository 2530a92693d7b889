// Adapter backward passes against finite differences, from one table of
// cases (LoRA and DoRA on dense and 4-bit linears, embeddings, the tied
// head, with and without dropout). L = sum(out * R) in double for a fixed
// random R; the analytic gradients come from the backward with dout = R.
// DoRA's row norm is a stop-gradient constant, so for DoRA only dx and dm
// are checked here (the norm does not depend on x or m); its dA and dB are
// checked against PyTorch in test_dora.c.
#include <stdlib.h>

#include "ctune/adapter.h"
#include "ctune/affine_quant.h"
#include "harness.h"

static uint64_t rs = 0x243f6a8885a308d3ull;
static float rnd(void) { // uniform in [-1, 1)
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static void fill(float *p, int64_t n, float amp) {
    for (int64_t i = 0; i < n; i++)
        p[i] = rnd() * amp;
}

typedef enum { LINEAR, EMBED, HEAD } site;
typedef struct grad_case {
    const char *name;
    ct_adapter_type type;
    site where;
    int bits; // 0 dense f32, else 4-bit g32 with f32 scales
    int in, out, r, N;
    float dropout;
    bool bias;
} grad_case;

static const grad_case CASES[] = {
    {"lora linear", CT_ADAPTER_LORA, LINEAR, 0, 7, 5, 3, 4, 0.0f, true},
    {"lora linear dropout", CT_ADAPTER_LORA, LINEAR, 0, 6, 5, 2, 3, 0.3f, false},
    {"lora linear q4", CT_ADAPTER_LORA, LINEAR, 4, 64, 6, 4, 3, 0.2f, true},
    {"dora linear", CT_ADAPTER_DORA, LINEAR, 0, 7, 5, 3, 4, 0.0f, true},
    {"dora linear dropout q4", CT_ADAPTER_DORA, LINEAR, 4, 32, 5, 2, 3, 0.25f, false},
    {"lora embedding", CT_ADAPTER_LORA, EMBED, 0, 9, 6, 3, 5, 0.0f, false},
    {"lora embedding dropout q4", CT_ADAPTER_LORA, EMBED, 4, 8, 32, 2, 5, 0.3f, false},
    {"dora embedding", CT_ADAPTER_DORA, EMBED, 0, 9, 6, 3, 5, 0.2f, false},
    {"lora tied head", CT_ADAPTER_LORA, HEAD, 0, 9, 6, 3, 4, 0.0f, false},
    {"lora tied head dropout q4", CT_ADAPTER_LORA, HEAD, 4, 7, 32, 2, 3, 0.4f, false},
};

typedef struct run {
    const grad_case *c;
    ct_backend *be;
    ct_adapter_layer l;
    ct_adapter_cache cache;
    ct_weight w;
    float *wf, *bias, *x, *R, *y;
    uint32_t *wq;
    float *sc, *bi;
    int32_t ids[5];
    int64_t nx, ny;
} run;

static double loss(run *t) {
    ct_error err;
    const grad_case *c = t->c;
    if (c->where == LINEAR)
        ct_adapter_linear_forward(t->be, &t->l, &t->cache, t->y, t->x, &t->w, t->bias, c->N, true, 77, &err);
    else if (c->where == EMBED)
        ct_adapter_embedding_forward(t->be, &t->l, &t->cache, t->y, t->ids, &t->w, c->N, true, 77, &err);
    else
        ct_adapter_as_linear_forward(t->be, &t->l, &t->cache, t->y, t->x, &t->w, c->N, true, 77, &err);
    double L = 0;
    for (int64_t i = 0; i < t->ny; i++)
        L += (double)t->y[i] * t->R[i];
    return L;
}

static void backward(run *t, float *dx) {
    const grad_case *c = t->c;
    if (c->where == LINEAR)
        ct_adapter_linear_backward(t->be, &t->l, &t->cache, dx, t->R, t->x, &t->w, c->N);
    else if (c->where == EMBED)
        ct_adapter_embedding_backward(t->be, &t->l, &t->cache, t->R, t->ids, c->N);
    else
        ct_adapter_as_linear_backward(t->be, &t->l, &t->cache, dx, t->R, t->x, &t->w, c->N);
}

// max |numeric - analytic| / max |analytic| over the elements of p.
static double fd_error(run *t, float *p, const float *grad, int64_t n) {
    const float eps = 1e-2f;
    double md = 0, mg = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + eps;
        double lp = loss(t);
        p[i] = keep - eps;
        double lm = loss(t);
        p[i] = keep;
        double num = (lp - lm) / (2 * eps), d = fabs(num - grad[i]);
        md = d > md ? d : md;
        mg = fabs(grad[i]) > mg ? fabs(grad[i]) : mg;
    }
    return md / mg;
}

static void setup(run *t, const grad_case *c, ct_backend *be) {
    memset(t, 0, sizeof *t);
    t->c = c, t->be = be;
    bool emb = c->where != LINEAR;
    int64_t rows = emb ? c->in : c->out, cols = emb ? c->out : c->in; // W (rows, cols)
    t->wf = malloc(sizeof(float) * (size_t)(rows * cols));
    fill(t->wf, rows * cols, 1.0f);
    t->w = (ct_weight){.rows = rows, .cols = cols, .dtype = CT_F32, .data = t->wf};
    if (c->bits) {
        int64_t g = rows * cols / 32;
        t->wq = malloc(4 * (size_t)(rows * ct_affine_row_words(cols, c->bits)));
        t->sc = malloc(sizeof(float) * (size_t)g), t->bi = malloc(sizeof(float) * (size_t)g);
        ct_error err;
        ct_affine_quantize(t->wf, rows, cols, c->bits, 32, t->wq, t->sc, t->bi, CT_F32, &err);
        t->w = (ct_weight){rows, cols, CT_F32, c->bits, 32, t->wq, t->sc, t->bi};
    }
    t->nx = (int64_t)c->N * (c->where == HEAD ? c->out : c->in);
    t->ny = (int64_t)c->N * (c->where == HEAD ? c->in : c->out);
    t->x = malloc(sizeof(float) * (size_t)t->nx), t->R = malloc(sizeof(float) * (size_t)t->ny);
    t->y = malloc(sizeof(float) * (size_t)t->ny);
    fill(t->x, t->nx, 1.0f), fill(t->R, t->ny, 1.0f);
    if (c->bias) {
        t->bias = malloc(sizeof(float) * (size_t)c->out);
        fill(t->bias, c->out, 1.0f);
    }
    for (int i = 0; i < 5; i++)
        t->ids[i] = (int32_t)((i * 3 + 1) % c->in); // repeats ids when in < 15
}

static void teardown(run *t) {
    ct_adapter_cache_free(&t->cache, t->be);
    ct_adapter_layer_free(&t->l, t->be);
    free(t->wf), free(t->wq), free(t->sc), free(t->bi);
    free(t->x), free(t->R), free(t->y), free(t->bias);
}

TEST(adapter_backward_matches_finite_differences) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    for (size_t k = 0; k < sizeof CASES / sizeof *CASES; k++) {
        const grad_case *c = &CASES[k];
        run t;
        setup(&t, c, be);
        ct_module_desc md = {"m", c->where == LINEAR ? CT_MODULE_LINEAR : CT_MODULE_EMBEDDING, c->in, c->out,
                             c->bits, 32, c->bias};
        ct_adapter_config cfg;
        ct_adapter_config_default(&cfg);
        cfg.type = c->type, cfg.rank = c->r, cfg.scale = 1.7f, cfg.dropout = c->dropout;
        CHECK_OK(ct_adapter_layer_init(&t.l, be, &md, &cfg, &t.w, 5, &err), &err);
        ct_adapter_param p[3];
        int np = ct_adapter_param_info(&t.l, p);
        for (int i = 0; i < np; i++) // b nonzero so that every path carries gradient
            fill(p[i].value, p[i].numel, i == 2 ? 2.0f : 0.5f);
        float *dx = calloc((size_t)t.nx, sizeof(float));
        loss(&t);
        backward(&t, c->where == EMBED ? NULL : dx);
        double e[4] = {0};
        if (c->where != EMBED)
            e[0] = fd_error(&t, t.x, dx, t.nx);
        if (c->type == CT_ADAPTER_LORA) {
            e[1] = fd_error(&t, p[0].value, p[0].grad, p[0].numel);
            e[2] = fd_error(&t, p[1].value, p[1].grad, p[1].numel);
        } else {
            e[3] = fd_error(&t, p[2].value, p[2].grad, p[2].numel);
        }
        fprintf(stderr, "  %-28s dx %.1e  da %.1e  db %.1e  dm %.1e\n", c->name, e[0], e[1], e[2], e[3]);
        free(dx);
        teardown(&t);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(e[i] < 5e-4, "%s: gradient %d off by %g", c->name, i, e[i]);
    }
    ct_backend_destroy(be);
}

// The dropout mask is drawn from the seed: the same seed gives the same
// output, another seed another mask; eval mode applies none.
TEST(adapter_dropout_is_seeded) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    run t;
    setup(&t, &CASES[1], be);
    ct_module_desc md = {"m", CT_MODULE_LINEAR, 6, 5, 0, 0, false};
    ct_adapter_config cfg;
    ct_adapter_config_default(&cfg);
    cfg.rank = 2, cfg.dropout = 0.5f;
    CHECK_OK(ct_adapter_layer_init(&t.l, be, &md, &cfg, &t.w, 5, &err), &err);
    fill(t.l.b, 10, 1.0f);
    float y1[15], y2[15], y3[15], y4[15];
    CHECK_OK(ct_adapter_linear_forward(be, &t.l, &t.cache, y1, t.x, &t.w, NULL, 3, true, 1, &err), &err);
    CHECK_OK(ct_adapter_linear_forward(be, &t.l, &t.cache, y2, t.x, &t.w, NULL, 3, true, 1, &err), &err);
    CHECK_OK(ct_adapter_linear_forward(be, &t.l, &t.cache, y3, t.x, &t.w, NULL, 3, true, 2, &err), &err);
    CHECK_OK(ct_adapter_linear_forward(be, &t.l, &t.cache, y4, t.x, &t.w, NULL, 3, false, 2, &err), &err);
    CHECK(memcmp(y1, y2, sizeof y1) == 0);
    CHECK(memcmp(y1, y3, sizeof y1) != 0);
    CHECK(!t.cache.dropped);
    teardown(&t);
    ct_backend_destroy(be);
}

// mlx-lm's init: A ~ U(+-1/sqrt(in)) (embedding: 1/sqrt(V)), B = 0, seeded;
// DoRA's m = row norms of the dequantized base weight.
TEST(adapter_init_follows_mlx) {
    ct_backend *be;
    ct_error err;
    CHECK_OK(ct_backend_cpu_create(&be, &err), &err);
    float w[64 * 4];
    fill(w, 64 * 4, 1.0f);
    ct_weight wd = {.rows = 4, .cols = 64, .dtype = CT_F32, .data = w};
    ct_module_desc md = {"m", CT_MODULE_LINEAR, 64, 4, 0, 0, false};
    ct_adapter_config cfg;
    ct_adapter_config_default(&cfg);
    cfg.type = CT_ADAPTER_DORA;
    ct_adapter_layer l1, l2;
    CHECK_OK(ct_adapter_layer_init(&l1, be, &md, &cfg, &wd, 9, &err), &err);
    CHECK_OK(ct_adapter_layer_init(&l2, be, &md, &cfg, &wd, 9, &err), &err);
    float a[64 * 8], b[8 * 4], m[4];
    ct_adapter_layer_get(&l1, be, a, b, m);
    double amax = 0, bsum = 0;
    for (int i = 0; i < 64 * 8; i++)
        amax = fabs(a[i]) > amax ? fabs(a[i]) : amax;
    for (int i = 0; i < 32; i++)
        bsum += fabs(b[i]);
    CHECK(amax <= 0.125 && amax > 0.1);
    CHECK(bsum == 0);
    CHECK(memcmp(l1.a, l2.a, sizeof a) == 0);
    double n0 = 0;
    for (int j = 0; j < 64; j++)
        n0 += (double)w[j] * w[j];
    CHECK_NEAR(m[0], sqrt(n0), 1e-5);
    ct_module_desc me = {"e", CT_MODULE_EMBEDDING, 4, 64, 0, 0, false};
    ct_adapter_layer l3;
    cfg.rank = 2, cfg.type = CT_ADAPTER_LORA;
    CHECK_OK(ct_adapter_layer_init(&l3, be, &me, &cfg, &wd, 3, &err), &err);
    for (int i = 0; i < 8; i++)
        CHECK(fabsf(l3.a[i]) <= 0.5f);
    ct_adapter_layer_free(&l3, be);
    ct_module_desc bad = {"bad", CT_MODULE_LINEAR, 32, 4, 0, 0, false};
    CHECK_FAILS(ct_adapter_layer_init(&l3, be, &bad, &cfg, &wd, 3, &err), &err, "base weight is (4, 64)");
    ct_adapter_layer_free(&l1, be);
    ct_adapter_layer_free(&l2, be);
    ct_backend_destroy(be);
}
