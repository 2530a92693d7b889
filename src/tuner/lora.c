// lora.c: adapter layers on a backend: parameters, init, the cache, LoRA
// forward/backward for linears, embeddings and the tied head, and the
// CPU-only helper kernels (adapter_ops.h). DoRA is in dora.c.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_ops.h"

// ---- small helpers

ct_weight adapter_dense(const float *p, int64_t rows, int64_t cols) {
    return (ct_weight){.rows = rows, .cols = cols, .dtype = CT_F32, .data = p};
}

uint64_t adapter_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float adapter_rng_uniform(uint64_t *state, float lo, float hi) {
    float u = (float)(adapter_rng_next(state) >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

ct_status adapter_cache_get(ct_adapter_cache *c, ct_backend *be, int slot, int64_t n, size_t elsize, void **out,
                            ct_error *err) {
    size_t bytes = (size_t)(n > 0 ? n : 1) * elsize;
    if (c->cap[slot] < bytes) {
        if (c->buf[slot])
            be->free(be, c->buf[slot]);
        c->buf[slot] = NULL;
        c->cap[slot] = 0;
        CT_TRY(be->alloc(be, bytes, &c->buf[slot], err));
        c->cap[slot] = bytes;
    }
    *out = c->buf[slot];
    return CT_OK;
}

ct_status adapter_cache_iota(ct_adapter_cache *c, ct_backend *be, int64_t n, const int32_t **out, ct_error *err) {
    bool fresh = c->cap[AC_IOTA] < (size_t)n * sizeof(int32_t);
    void *p;
    CT_TRY(adapter_cache_get(c, be, AC_IOTA, n, sizeof(int32_t), &p, err));
    if (fresh) {
        int32_t *host = malloc((size_t)n * sizeof(int32_t));
        if (!host)
            return ct_fail(err, CT_ERR_NOMEM, "adapter: out of memory");
        for (int64_t i = 0; i < n; i++)
            host[i] = (int32_t)i;
        be->upload(be, p, host, (size_t)n * sizeof(int32_t));
        free(host);
    }
    *out = p;
    return CT_OK;
}

void ct_adapter_cache_free(ct_adapter_cache *c, ct_backend *be) {
    for (int i = 0; i < CT_ADAPTER_CACHE_BUFS; i++)
        if (c->buf[i])
            be->free(be, c->buf[i]);
    memset(c, 0, sizeof *c);
}

// ---- CPU-only kernels (adapter_ops.h: these must move into the backend vtable)

static float keep_scale(uint64_t seed, int64_t i, float p) {
    uint64_t st = seed ^ ((uint64_t)i * 0xd1b54a32d192ed03ull);
    float u = (float)(adapter_rng_next(&st) >> 40) * (1.0f / 16777216.0f);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
}

void adapter_k_dropout_forward(float *out, const float *x, int64_t n, float p, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * keep_scale(seed, i, p);
}

void adapter_k_dropout_backward(float *dx, const float *dout, int64_t n, float p, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dout[i] * keep_scale(seed, i, p);
}

void adapter_k_row_norms(float *norm, const float *w, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++)
            s += (double)w[r * cols + j] * w[r * cols + j];
        norm[r] = (float)sqrt(s);
    }
}

void adapter_k_dora_scale_cols(float *y, const float *v, const float *m, const float *norm, const float *bias,
                               int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            y[n * C + c] = m[c] / norm[c] * v[n * C + c] + (bias ? bias[c] : 0.0f);
}

void adapter_k_dora_scale_cols_backward(float *dv, float *dm, const float *dy, const float *v, const float *m,
                                        const float *norm, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            dv[n * C + c] = dy[n * C + c] * (m[c] / norm[c]);
            s += (double)dy[n * C + c] * v[n * C + c];
        }
        if (dm)
            dm[c] += (float)(s / norm[c]);
    }
}

void adapter_k_dora_scale_rows(float *y, const float *v, const float *m, const int32_t *ids, const float *norm,
                               int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float g = m[ids[n]] / norm[n];
        for (int64_t c = 0; c < C; c++)
            y[n * C + c] = g * v[n * C + c];
    }
}

// Serial: repeated ids add into the same dm element.
void adapter_k_dora_scale_rows_backward(float *dv, float *dm, const float *dy, const float *v, const float *m,
                                        const int32_t *ids, const float *norm, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) {
        float g = m[ids[n]] / norm[n];
        double s = 0;
        for (int64_t c = 0; c < C; c++) {
            dv[n * C + c] = dy[n * C + c] * g;
            s += (double)dy[n * C + c] * v[n * C + c];
        }
        if (dm)
            dm[ids[n]] += (float)(s / norm[n]);
    }
}

// ---- parameters

// mlx shapes of lora_a and lora_b, and sizes of m.
static void mlx_shapes(const ct_adapter_layer *l, int64_t a[2], int64_t b[2], int64_t *m) {
    a[0] = l->mod.in, a[1] = l->rank;
    b[0] = l->rank, b[1] = l->mod.out;
    *m = l->mod.kind == CT_MODULE_LINEAR ? l->mod.out : l->mod.in;
}

int ct_adapter_param_info(const ct_adapter_layer *l, ct_adapter_param out[3]) {
    int64_t a[2], b[2], m;
    mlx_shapes(l, a, b, &m);
    bool lin = l->mod.kind == CT_MODULE_LINEAR;
    out[0] = (ct_adapter_param){"lora_a", l->a, l->da, a[0] * a[1], 2, {a[0], a[1]}, lin};
    out[1] = (ct_adapter_param){"lora_b", l->b, l->db, b[0] * b[1], 2, {b[0], b[1]}, true};
    if (l->type != CT_ADAPTER_DORA)
        return 2;
    out[2] = (ct_adapter_param){"m", l->m, l->dm, m, 1, {m, 0}, false};
    return 3;
}

void ct_adapter_layer_free(ct_adapter_layer *l, ct_backend *be) {
    float *bufs[] = {l->a, l->b, l->m, l->da, l->db, l->dm};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i])
            be->free(be, bufs[i]);
    memset(l, 0, sizeof *l);
}

// Host (rows, cols) -> (cols, rows).
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

// One parameter between host mlx layout and device storage.
static ct_status move_param(ct_backend *be, const ct_adapter_param *p, float *host, bool upload, ct_error *err) {
    size_t bytes = (size_t)p->numel * sizeof(float);
    if (!p->transposed) {
        if (upload)
            be->upload(be, p->value, host, bytes);
        else
            be->download(be, host, p->value, bytes);
        return CT_OK;
    }
    float *tmp = malloc(bytes);
    if (!tmp)
        return ct_fail(err, CT_ERR_NOMEM, "adapter %s: out of memory", p->leaf);
    if (upload) {
        transpose(tmp, host, p->mlx_shape[0], p->mlx_shape[1]);
        be->upload(be, p->value, tmp, bytes);
    } else {
        be->download(be, tmp, p->value, bytes);
        transpose(host, tmp, p->mlx_shape[1], p->mlx_shape[0]);
    }
    free(tmp);
    return CT_OK;
}

static ct_status move_params(const ct_adapter_layer *l, ct_backend *be, float *a, float *b, float *m, bool upload,
                             ct_error *err) {
    ct_adapter_param p[3];
    int n = ct_adapter_param_info(l, p);
    float *host[3] = {a, b, m};
    for (int i = 0; i < n; i++)
        if (host[i])
            CT_TRY(move_param(be, &p[i], host[i], upload, err));
    return CT_OK;
}

void ct_adapter_layer_set(ct_adapter_layer *l, ct_backend *be, const float *lora_a, const float *lora_b,
                          const float *m) {
    ct_error err;
    (void)move_params(l, be, (float *)lora_a, (float *)lora_b, (float *)m, true, &err);
}

void ct_adapter_layer_get(const ct_adapter_layer *l, ct_backend *be, float *lora_a, float *lora_b, float *m) {
    ct_error err;
    (void)move_params(l, be, lora_a, lora_b, m, false, &err);
}

// DoRA's m: fp32 row norms of the (dequantized) base weight.
static ct_status init_magnitude(ct_adapter_layer *l, ct_backend *be, const ct_weight *w, ct_error *err) {
    ct_adapter_cache c = {0};
    const int32_t *iota;
    void *rows;
    ct_status st = adapter_cache_iota(&c, be, w->rows, &iota, err);
    if (st == CT_OK)
        st = adapter_cache_get(&c, be, AC_WFULL, w->rows * w->cols, sizeof(float), &rows, err);
    if (st == CT_OK) {
        be->embedding_forward(be, rows, iota, w, w->rows);
        adapter_k_row_norms(l->m, rows, w->rows, w->cols);
    }
    ct_adapter_cache_free(&c, be);
    return st;
}

static ct_status alloc_params(ct_adapter_layer *l, ct_backend *be, ct_error *err) {
    int64_t a[2], b[2], m;
    mlx_shapes(l, a, b, &m);
    size_t fa = (size_t)(a[0] * a[1]) * sizeof(float), fb = (size_t)(b[0] * b[1]) * sizeof(float);
    CT_TRY(be->alloc(be, fa, (void **)&l->a, err));
    CT_TRY(be->alloc(be, fb, (void **)&l->b, err));
    CT_TRY(be->alloc(be, fa, (void **)&l->da, err));
    CT_TRY(be->alloc(be, fb, (void **)&l->db, err));
    if (l->type == CT_ADAPTER_DORA) {
        CT_TRY(be->alloc(be, (size_t)m * sizeof(float), (void **)&l->m, err));
        CT_TRY(be->alloc(be, (size_t)m * sizeof(float), (void **)&l->dm, err));
    }
    return CT_OK;
}

static ct_status layer_init(ct_adapter_layer *l, ct_backend *be, const ct_weight *w, uint64_t seed, ct_error *err) {
    CT_TRY(alloc_params(l, be, err));
    if (l->type == CT_ADAPTER_DORA)
        CT_TRY(init_magnitude(l, be, w, err));
    int64_t n = l->mod.in * l->rank;
    float *a = malloc((size_t)n * sizeof(float));
    if (!a)
        return ct_fail(err, CT_ERR_NOMEM, "adapter %s: out of memory", l->mod.path);
    float bound = 1.0f / sqrtf((float)l->mod.in); // in, or V for an embedding
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++)
        a[i] = adapter_rng_uniform(&st, -bound, bound);
    ct_adapter_param p[3];
    ct_adapter_param_info(l, p);
    ct_status s = move_param(be, &p[0], a, true, err); // b stays zero (alloc zero-fills)
    free(a);
    return s;
}

ct_status ct_adapter_layer_init(ct_adapter_layer *l, ct_backend *be, const ct_module_desc *mod,
                                const ct_adapter_config *cfg, const ct_weight *w, uint64_t seed, ct_error *err) {
    memset(l, 0, sizeof *l);
    l->type = cfg->type, l->mod = *mod, l->rank = cfg->rank, l->scale = cfg->scale, l->dropout = cfg->dropout;
    if (cfg->rank <= 0)
        return ct_fail(err, CT_ERR_INVALID, "adapter %s: rank must be positive (got %d)", mod->path, cfg->rank);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return ct_fail(err, CT_ERR_INVALID, "adapter %s: dropout must be in [0, 1) (got %g)", mod->path,
                       (double)cfg->dropout);
    bool emb = mod->kind == CT_MODULE_EMBEDDING;
    if (w->rows != (emb ? mod->in : mod->out) || w->cols != (emb ? mod->out : mod->in))
        return ct_fail(err, CT_ERR_INVALID, "adapter %s: base weight is (%lld, %lld), module says in %lld out %lld",
                       mod->path, (long long)w->rows, (long long)w->cols, (long long)mod->in, (long long)mod->out);
    ct_status st = layer_init(l, be, w, seed, err);
    if (st != CT_OK)
        ct_adapter_layer_free(l, be);
    return st;
}

// ---- LoRA on a linear

// Dropout decision shared by every forward.
static void set_dropout(const ct_adapter_layer *l, ct_adapter_cache *c, int64_t N, bool train, uint64_t seed) {
    c->N = N;
    c->dropped = train && l->dropout > 0.0f;
    c->drop_seed = seed;
}

ct_status adapter_lora_branch_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                      const float *x, int64_t N, bool train, uint64_t seed, ct_error *err) {
    int64_t in = l->mod.in, out = l->mod.out, r = l->rank;
    float *u, *z, *xd = NULL;
    set_dropout(l, c, N, train, seed);
    if (c->dropped) {
        CT_TRY(adapter_cache_get(c, be, AC_XD, N * in, sizeof(float), (void **)&xd, err));
        adapter_k_dropout_forward(xd, x, N * in, l->dropout, seed);
    }
    CT_TRY(adapter_cache_get(c, be, AC_U, N * r, sizeof(float), (void **)&u, err));
    CT_TRY(adapter_cache_get(c, be, AC_Z, N * out, sizeof(float), (void **)&z, err));
    ct_weight wa = adapter_dense(l->a, r, in), wb = adapter_dense(l->b, out, r);
    be->linear_forward(be, u, xd ? xd : x, &wa, NULL, N); // u = drop(x).A
    be->linear_forward(be, z, u, &wb, NULL, N);           // z = u.B
    be->scale(be, z, l->scale, N * out);
    be->add(be, y, y, z, N * out);
    return CT_OK;
}

void adapter_lora_branch_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                  const float *dy, const float *x, int64_t N) {
    int64_t in = l->mod.in, out = l->mod.out, r = l->rank;
    float *u = c->buf[AC_U], *z = c->buf[AC_Z], *du, *din = NULL;
    ct_error err;
    // Buffers of the forward's N exist; du and din may need to grow (first backward).
    if (adapter_cache_get(c, be, AC_DU, N * r, sizeof(float), (void **)&du, &err) != CT_OK)
        return;
    ct_weight wa = adapter_dense(l->a, r, in), wb = adapter_dense(l->b, out, r);
    be->copy(be, z, dy, (size_t)(N * out) * sizeof(float));
    be->scale(be, z, l->scale, N * out); // dz = s * dy
    be->zero(be, du, (size_t)(N * r) * sizeof(float));
    be->linear_backward(be, du, l->db, NULL, z, u, &wb, N);
    if (dx && c->dropped) {
        if (adapter_cache_get(c, be, AC_DIN, N * in, sizeof(float), (void **)&din, &err) != CT_OK)
            return;
        be->zero(be, din, (size_t)(N * in) * sizeof(float));
    }
    const float *xin = c->dropped ? c->buf[AC_XD] : x;
    be->linear_backward(be, c->dropped ? din : dx, l->da, NULL, du, xin, &wa, N);
    if (dx && c->dropped)
        adapter_k_dropout_backward(dx, din, N * in, l->dropout, c->drop_seed);
}

ct_status ct_adapter_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                    const float *x, const ct_weight *w, const float *bias, int64_t N, bool train,
                                    uint64_t seed, ct_error *err) {
    if (l->mod.kind != CT_MODULE_LINEAR)
        return ct_fail(err, CT_ERR_INVALID, "adapter %s: not a linear module", l->mod.path);
    if (l->type == CT_ADAPTER_DORA)
        return adapter_dora_linear_forward(be, l, c, y, x, w, bias, N, train, seed, err);
    be->linear_forward(be, y, x, w, bias, N);
    return adapter_lora_branch_forward(be, l, c, y, x, N, train, seed, err);
}

void ct_adapter_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dx,
                                const float *dy, const float *x, const ct_weight *w, int64_t N) {
    if (l->type == CT_ADAPTER_DORA) {
        adapter_dora_linear_backward(be, l, c, dx, dy, x, w, N);
        return;
    }
    if (dx)
        be->linear_backward(be, dx, NULL, NULL, dy, x, w, N);
    adapter_lora_branch_backward(be, l, c, dx, dy, x, N);
}

// ---- LoRA on an embedding: y = W[ids] + drop(s * A[ids].B)

ct_status ct_adapter_embedding_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *y,
                                       const int32_t *ids, const ct_weight *w, int64_t N, bool train, uint64_t seed,
                                       ct_error *err) {
    if (l->mod.kind != CT_MODULE_EMBEDDING)
        return ct_fail(err, CT_ERR_INVALID, "adapter %s: not an embedding", l->mod.path);
    if (l->type == CT_ADAPTER_DORA)
        return adapter_dora_embedding_forward(be, l, c, y, ids, w, N, train, seed, err);
    int64_t V = l->mod.in, d = l->mod.out, r = l->rank;
    float *u, *z;
    set_dropout(l, c, N, train, seed);
    CT_TRY(adapter_cache_get(c, be, AC_U, N * r, sizeof(float), (void **)&u, err));
    CT_TRY(adapter_cache_get(c, be, AC_Z, N * d, sizeof(float), (void **)&z, err));
    ct_weight wa = adapter_dense(l->a, V, r), wb = adapter_dense(l->b, d, r);
    be->embedding_forward(be, y, ids, w, N);
    be->embedding_forward(be, u, ids, &wa, N); // u = A[ids]
    be->linear_forward(be, z, u, &wb, NULL, N); // z = u.B
    be->scale(be, z, l->scale, N * d);
    if (c->dropped)
        adapter_k_dropout_forward(z, z, N * d, l->dropout, seed);
    be->add(be, y, y, z, N * d);
    return CT_OK;
}

void ct_adapter_embedding_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                   const float *dy, const int32_t *ids, int64_t N) {
    if (l->type == CT_ADAPTER_DORA)
        adapter_dora_embedding_backward(be, l, c, dy, ids, N);
    else
        adapter_lora_embedding_branch_backward(be, l, c, dy, ids, N);
}

void adapter_lora_embedding_branch_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                            const float *dy, const int32_t *ids, int64_t N) {
    int64_t d = l->mod.out, r = l->rank;
    float *u = c->buf[AC_U], *z = c->buf[AC_Z], *du;
    ct_error err;
    if (adapter_cache_get(c, be, AC_DU, N * r, sizeof(float), (void **)&du, &err) != CT_OK)
        return;
    be->zero(be, z, (size_t)(N * d) * sizeof(float));
    if (c->dropped)
        adapter_k_dropout_backward(z, dy, N * d, l->dropout, c->drop_seed);
    else
        be->add(be, z, z, dy, N * d);
    be->scale(be, z, l->scale, N * d);
    be->zero(be, du, (size_t)(N * r) * sizeof(float));
    ct_weight wb = adapter_dense(l->b, d, r);
    be->linear_backward(be, du, l->db, NULL, z, u, &wb, N);
    be->embedding_backward(be, l->da, du, ids, N, (int)r);
}

// ---- tied head: logits = h.W^T + s * (drop(h).B^T).A^T

ct_status ct_adapter_as_linear_forward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c,
                                       float *logits, const float *h, const ct_weight *w, int64_t N, bool train,
                                       uint64_t seed, ct_error *err) {
    if (l->mod.kind != CT_MODULE_EMBEDDING || l->type != CT_ADAPTER_LORA)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "adapter %s: as_linear needs a LoRA embedding", l->mod.path);
    int64_t V = l->mod.in, d = l->mod.out, r = l->rank;
    float *u, *z, *hd = NULL;
    set_dropout(l, c, N, train, seed);
    if (c->dropped) {
        CT_TRY(adapter_cache_get(c, be, AC_XD, N * d, sizeof(float), (void **)&hd, err));
        adapter_k_dropout_forward(hd, h, N * d, l->dropout, seed);
    }
    CT_TRY(adapter_cache_get(c, be, AC_U, N * r, sizeof(float), (void **)&u, err));
    CT_TRY(adapter_cache_get(c, be, AC_Z, N * V, sizeof(float), (void **)&z, err));
    ct_weight wa = adapter_dense(l->a, V, r), wb = adapter_dense(l->b, d, r);
    be->linear_forward(be, logits, h, w, NULL, N);
    be->zero(be, u, (size_t)(N * r) * sizeof(float));
    be->linear_backward(be, u, NULL, NULL, hd ? hd : h, NULL, &wb, N); // u += drop(h).b = drop(h).B^T
    be->linear_forward(be, z, u, &wa, NULL, N);                        // z = u.A^T
    be->scale(be, z, l->scale, N * V);
    be->add(be, logits, logits, z, N * V);
    return CT_OK;
}

void ct_adapter_as_linear_backward(ct_backend *be, const ct_adapter_layer *l, ct_adapter_cache *c, float *dh,
                                   const float *dlogits, const float *h, const ct_weight *w, int64_t N) {
    int64_t V = l->mod.in, d = l->mod.out, r = l->rank;
    float *u = c->buf[AC_U], *z = c->buf[AC_Z], *du, *din = NULL;
    ct_error err;
    if (adapter_cache_get(c, be, AC_DU, N * r, sizeof(float), (void **)&du, &err) != CT_OK ||
        (dh && adapter_cache_get(c, be, AC_DIN, N * d, sizeof(float), (void **)&din, &err) != CT_OK))
        return;
    const float *hd = c->dropped ? c->buf[AC_XD] : h;
    ct_weight wa = adapter_dense(l->a, V, r), wb = adapter_dense(l->b, d, r);
    be->copy(be, z, dlogits, (size_t)(N * V) * sizeof(float));
    be->scale(be, z, l->scale, N * V);
    be->zero(be, du, (size_t)(N * r) * sizeof(float));
    be->linear_backward(be, du, l->da, NULL, z, u, &wa, N); // du += dz.A, dA += dz^T.u
    be->linear_backward(be, NULL, l->db, NULL, hd, du, &wb, N); // db (d, r) += drop(h)^T.du
    if (!dh)
        return;
    be->linear_backward(be, dh, NULL, NULL, dlogits, h, w, N);
    be->linear_forward(be, din, du, &wb, NULL, N); // d drop(h) = du.b^T
    if (c->dropped)
        adapter_k_dropout_backward(dh, din, N * d, l->dropout, c->drop_seed);
    else
        be->add(be, dh, dh, din, N * d);
}
