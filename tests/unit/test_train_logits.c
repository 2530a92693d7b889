// ct_model_train_logits (model.h) on the tiny chat model (tied embedding, f32):
// a distillation loss on the logits with every block parameter, the
// embedding and the final norm trainable, checked by finite differences (the
// same on the tiny gemma3 chat model: (1 + w) norms, the sandwich post-norms,
// q/k norms, a sliding layer with its own RoPE, the scaled embedding);
// and the masked cross-entropy written as a logits loss gives
// ct_model_train_loss's loss and gradients. CPU backend: device = host.
#include <stdlib.h>

#include "ctune/losses.h"
#include "ctune/model.h"
#include "harness.h"

enum { B = 2, T = 7 };

typedef struct setup {
    ct_backend *be;
    ct_model m;
    ct_layer_grads *lg;
    ct_extra_grads xg;
    float *buf;    // every gradient, one allocation
    int64_t total; // its floats
} setup;

static int64_t carve(float **dst, float *buf, int64_t *off, int64_t n) {
    if (buf)
        *dst = buf + *off;
    *off += n;
    return n;
}

// Lays out (buf NULL: counts) the gradients of every parameter the model trains here.
static int64_t layout(setup *s, float *buf) {
    ct_model *m = &s->m;
    int64_t off = 0;
    for (int l = 0; l < m->L; l++) {
        carve(&s->lg[l].attn_norm, buf, &off, m->C);
        carve(&s->lg[l].ffn_norm, buf, &off, m->C);
        if (m->layers[l].post_attn_norm) {
            carve(&s->lg[l].post_attn_norm, buf, &off, m->C);
            carve(&s->lg[l].post_ffn_norm, buf, &off, m->C);
        }
        if (m->layers[l].q_norm) {
            carve(&s->lg[l].q_norm, buf, &off, m->D);
            carve(&s->lg[l].k_norm, buf, &off, m->D);
        }
        for (int id = 0; id < CT_LIN_COUNT; id++)
            carve(&s->lg[l].w[id], buf, &off, m->layers[l].lin[id].w.rows * m->layers[l].lin[id].w.cols);
    }
    carve(&s->xg.embed, buf, &off, (int64_t)m->V * m->C);
    carve(&s->xg.final_norm, buf, &off, m->C);
    return off;
}

static bool setup_open(setup *s, const char *model, bool extra) {
    ct_error err = {0};
    memset(s, 0, sizeof *s);
    if (ct_backend_cpu_create(&s->be, &err) != CT_OK || ct_model_load(&s->m, ct_test_fixture(model), s->be,
                                                                      &err) != CT_OK)
        return false;
    s->lg = calloc((size_t)s->m.L, sizeof *s->lg);
    s->total = layout(s, NULL);
    s->buf = calloc((size_t)s->total, sizeof(float));
    layout(s, s->buf);
    s->m.layer_grads = s->lg;
    s->m.extra_grads = extra ? &s->xg : NULL;
    return s->lg && s->buf;
}

static void setup_close(setup *s) {
    ct_model_free(&s->m);
    if (s->be)
        ct_backend_destroy(s->be);
    free(s->lg);
    free(s->buf);
}

static void fill_ids(int32_t *ids, int n, int V) {
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 37 + 11) % V);
}

// ---- a distillation loss against fixed teacher logits (N, V)

typedef struct kl_ctx {
    ct_distill_loss loss;
    const float *teacher; // (N, V)
    const float *weight;  // (N)
    int V;
} kl_ctx;

static ct_status kl_chunk(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits, double *sum,
                          ct_error *err) {
    kl_ctx *c = ctx;
    return ct_distill_loss_apply(&c->loss, logits, c->teacher + row0 * c->V, NULL, c->weight + row0, n, c->V,
                                 dlogits, sum, err);
}

// The parameter entry with the largest gradient among [p, p + n), checked by central differences.
static void check_fd(setup *s, kl_ctx *c, const int32_t *ids, float *param, const float *grad, int64_t n,
                     const char *what) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (fabsf(grad[i]) > fabsf(grad[best]))
            best = i;
    ct_error err = {0};
    const float h = 1e-2f;
    float x = param[best];
    double lp, lm;
    param[best] = x + h;
    CHECK_OK(ct_model_train_logits(&s->m, ids, B, T, false, kl_chunk, c, &lp, &err), &err);
    param[best] = x - h;
    CHECK_OK(ct_model_train_logits(&s->m, ids, B, T, false, kl_chunk, c, &lm, &err), &err);
    param[best] = x;
    double fd = (lp - lm) / (2.0 * h);
    CHECK_MSG(fabs(fd - grad[best]) <= 0.02 * fabs(grad[best]) + 1e-6, "%s[%lld]: fd %.6g vs grad %.6g", what,
              (long long)best, fd, (double)grad[best]);
    CHECK(grad[best] != 0.0f);
}

// Fixed teacher logits (B*T, V) and row weights (B*T) (one row unweighted) of a KL loss; the caller frees teacher.
static kl_ctx kl_setup(setup *s, float **teacher, float *weight) {
    int V = s->m.V;
    *teacher = malloc(sizeof(float) * B * T * (size_t)V);
    uint64_t r = 99;
    for (int64_t i = 0; *teacher && i < (int64_t)B * T * V; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        (*teacher)[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 6.0 - 3.0);
    }
    for (int i = 0; i < B * T; i++)
        weight[i] = i == 3 ? 0.0f : 1.0f / (B * T - 1);
    return (kl_ctx){.teacher = *teacher, .weight = weight, .V = V};
}

TEST(train_logits_kl_finite_differences) {
    setup s;
    CHECK(setup_open(&s, "chat_model", true));
    ct_model *m = &s.m;
    int V = m->V;
    int32_t ids[B * T];
    fill_ids(ids, B * T, V);
    float *teacher, weight[B * T];
    kl_ctx c = kl_setup(&s, &teacher, weight);
    ct_error err = {0};
    CHECK_OK(ct_distill_loss_init(&c.loss, s.be, 2.0f, false, 0, &err), &err);
    double loss;
    CHECK_OK(ct_model_train_logits(m, ids, B, T, true, kl_chunk, &c, &loss, &err), &err);
    CHECK(loss > 0);
    // a weight of each kind: block norms and linears, the tied embedding (lookup + head), the final norm
    check_fd(&s, &c, ids, m->layers[0].attn_norm, s.lg[0].attn_norm, m->C, "layers.0.attn_norm");
    check_fd(&s, &c, ids, m->layers[1].ffn_norm, s.lg[1].ffn_norm, m->C, "layers.1.ffn_norm");
    check_fd(&s, &c, ids, (float *)m->layers[0].lin[CT_LIN_Q].w.data, s.lg[0].w[CT_LIN_Q],
             m->layers[0].lin[CT_LIN_Q].w.rows * m->C, "layers.0.q_proj");
    check_fd(&s, &c, ids, (float *)m->layers[1].lin[CT_LIN_DOWN].w.data, s.lg[1].w[CT_LIN_DOWN],
             m->layers[1].lin[CT_LIN_DOWN].w.rows * m->I, "layers.1.down_proj");
    check_fd(&s, &c, ids, (float *)m->embed.data, s.xg.embed, (int64_t)V * m->C, "embed_tokens");
    check_fd(&s, &c, ids, m->final_norm, s.xg.final_norm, m->C, "norm");
    // an embedding row used only by the lookup (id 11 is the first input) and one used only by the head
    check_fd(&s, &c, ids, (float *)m->embed.data + 11 * m->C, s.xg.embed + 11 * m->C, m->C, "embed row 11");
    check_fd(&s, &c, ids, (float *)m->embed.data + 5 * m->C, s.xg.embed + 5 * m->C, m->C, "embed row 5");
    ct_distill_loss_free(&c.loss);
    free(teacher);
    setup_close(&s);
}

// gemma3: layer 0 slides (local RoPE base), layer 1 attends fully; each has
// four (1 + w) norms and q/k norms.
TEST(train_logits_gemma3_finite_differences) {
    setup s;
    CHECK(setup_open(&s, "gemma_chat_model", true));
    ct_model *m = &s.m;
    CHECK(m->cfg.arch == CT_ARCH_GEMMA3 && m->layers[0].post_attn_norm && m->layers[0].q_norm);
    CHECK(m->layers[0].lin[CT_LIN_Q].w.dtype == CT_F32); // the linears are perturbed in place
    int32_t ids[B * T];
    fill_ids(ids, B * T, m->V);
    float *teacher, weight[B * T];
    kl_ctx c = kl_setup(&s, &teacher, weight);
    ct_error err = {0};
    CHECK_OK(ct_distill_loss_init(&c.loss, s.be, 2.0f, false, 0, &err), &err);
    double loss;
    CHECK_OK(ct_model_train_logits(m, ids, B, T, true, kl_chunk, &c, &loss, &err), &err);
    CHECK(loss > 0);
    for (int l = 0; l < m->L; l++) {
        const ct_layer_params *p = &m->layers[l];
        const ct_layer_grads *g = &s.lg[l];
        char what[64];
        const char *names[] = {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                               "post_feedforward_layernorm", "q_norm", "k_norm", "q_proj", "k_proj", "o_proj",
                               "down_proj"};
        float *params[] = {p->attn_norm, p->post_attn_norm, p->ffn_norm, p->post_ffn_norm, p->q_norm, p->k_norm,
                           (float *)p->lin[CT_LIN_Q].w.data, (float *)p->lin[CT_LIN_K].w.data,
                           (float *)p->lin[CT_LIN_O].w.data, (float *)p->lin[CT_LIN_DOWN].w.data};
        float *grads[] = {g->attn_norm, g->post_attn_norm, g->ffn_norm, g->post_ffn_norm, g->q_norm, g->k_norm,
                          g->w[CT_LIN_Q], g->w[CT_LIN_K], g->w[CT_LIN_O], g->w[CT_LIN_DOWN]};
        int64_t sizes[] = {m->C, m->C, m->C, m->C, m->D, m->D, p->lin[CT_LIN_Q].w.rows * p->lin[CT_LIN_Q].w.cols,
                           p->lin[CT_LIN_K].w.rows * p->lin[CT_LIN_K].w.cols,
                           p->lin[CT_LIN_O].w.rows * p->lin[CT_LIN_O].w.cols,
                           p->lin[CT_LIN_DOWN].w.rows * p->lin[CT_LIN_DOWN].w.cols};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            snprintf(what, sizeof what, "layers.%d.%s", l, names[i]);
            check_fd(&s, &c, ids, params[i], grads[i], sizes[i], what);
        }
    }
    check_fd(&s, &c, ids, (float *)m->embed.data, s.xg.embed, (int64_t)m->V * m->C, "embed_tokens");
    check_fd(&s, &c, ids, m->final_norm, s.xg.final_norm, m->C, "norm");
    ct_distill_loss_free(&c.loss);
    free(teacher);
    setup_close(&s);
}

// ---- the masked cross-entropy as a logits loss

typedef struct ce_ctx {
    ct_backend *be;
    const int32_t *targets; // (N)
    const float *mask;      // (N)
    int64_t count;
    int V;
    float loss;
} ce_ctx;

static ct_status ce_chunk(void *ctx, int64_t row0, int64_t n, const float *logits, float *dlogits, double *sum,
                          ct_error *err) {
    (void)err;
    ce_ctx *c = ctx;
    int64_t rows = 0;
    for (int64_t i = row0; i < row0 + n; i++)
        rows += c->mask[i] != 0.0f;
    c->be->cross_entropy_forward(c->be, &c->loss, logits, c->targets + row0, c->mask + row0, n, c->V);
    double w = (double)rows / (double)c->count;
    *sum += c->loss * w;
    if (dlogits)
        c->be->cross_entropy_backward(c->be, dlogits, (float)w, logits, c->targets + row0, c->mask + row0, n, c->V);
    return CT_OK;
}

TEST(train_logits_cross_entropy_equals_train_loss) {
    setup s;
    CHECK(setup_open(&s, "chat_model", false));
    int V = s.m.V, W = T + 1;
    int32_t tokens[B * (T + 1)], ids[B * T], targets[B * T];
    float mask[B * T];
    fill_ids(tokens, B * W, V);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            ids[b * T + t] = tokens[b * W + t];
            targets[b * T + t] = tokens[b * W + t + 1];
            mask[b * T + t] = t >= 2 ? 1.0f : 0.0f;
        }
    ct_error err = {0};
    double loss_a, loss_b;
    int64_t ntok;
    CHECK_OK(ct_model_train_loss(&s.m, tokens, mask, B, W, true, 0, &loss_a, &ntok, &err), &err);
    float *ref = malloc(sizeof(float) * (size_t)s.total);
    memcpy(ref, s.buf, sizeof(float) * (size_t)s.total);
    memset(s.buf, 0, sizeof(float) * (size_t)s.total);
    ce_ctx c = {.be = s.be, .targets = targets, .mask = mask, .count = ntok, .V = V};
    CHECK_OK(ct_model_train_logits(&s.m, ids, B, T, true, ce_chunk, &c, &loss_b, &err), &err);
    CHECK_NEAR(loss_a, loss_b, 1e-6 * loss_a);
    double d = 0, mx = 0;
    for (int64_t i = 0; i < s.total; i++) {
        d = fmax(d, fabs((double)s.buf[i] - ref[i]));
        mx = fmax(mx, fabs((double)ref[i]));
    }
    CHECK_MSG(d <= 1e-6 * mx, "gradients differ: %g (max %g)", d, mx);
    CHECK(mx > 0);
    free(ref);
    setup_close(&s);
}

TEST(train_logits_errors) {
    setup s;
    CHECK(setup_open(&s, "chat_model", true));
    int32_t ids[2] = {1, 100000};
    ce_ctx c = {0};
    double loss;
    ct_error err = {0};
    CHECK_FAILS(ct_model_train_logits(&s.m, ids, 1, 2, false, ce_chunk, &c, &loss, &err), &err,
                "token id 100000 at row 0, position 1 is outside the vocabulary (420)");
    CHECK_FAILS(ct_model_train_logits(&s.m, ids, 0, 2, false, ce_chunk, &c, &loss, &err), &err, "needs rows");
    setup_close(&s);
}
