// cpu_backend.c: the CPU backend's table and memory functions. Device memory
// is host memory: upload and download are copies.
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "ctune/affine_quant.h"

static ct_status cpu_alloc(ct_backend *be, size_t bytes, void **out, ct_error *err) {
    (void)be;
    *out = calloc(1, bytes ? bytes : 1);
    if (!*out)
        return ct_fail(err, CT_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    return CT_OK;
}

static void cpu_free(ct_backend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_copy(ct_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes)
        memmove(dst, src, bytes);
}

static void cpu_zero(ct_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes)
        memset(p, 0, bytes);
}

// OpenMP wait policy. libgomp reads its environment when it is loaded, before
// main(); the executable's .preinit_array runs before any shared library's
// constructors, so this is the one place where a default can still be set.
// Idle OpenMP threads spin by default: on a machine shared with other jobs a
// spinning thread eats the time slice its sibling needs, and every parallel
// region then waits for the scheduler (SmolLM2 decode measured 10 tokens/s
// with 2 spinning threads against 59 passive, 46 with one thread, at load 8).
// PASSIVE unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT.
static void cpu_omp_defaults(int argc, char **argv, char **envp) {
    (void)argc, (void)argv, (void)envp;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"))
        setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
}
__attribute__((section(".preinit_array"), used)) static void (*cpu_omp_preinit)(int, char **, char **) =
    cpu_omp_defaults;

static const ct_backend cpu_table = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .embedding_forward = ct_cpu_embedding_forward,
    .rmsnorm_forward = ct_cpu_rmsnorm_forward,
    .rope_forward = ct_cpu_rope_forward,
    .attention_forward = ct_cpu_attention_forward,
    .glu_forward = ct_cpu_glu_forward,
    .linear_forward = ct_cpu_linear_forward,
    .add = ct_cpu_add,
    .scale = ct_cpu_scale,
    .softmax_forward = ct_cpu_softmax_forward,
    .softcap_forward = ct_cpu_softcap_forward,
    .cross_entropy_forward = ct_cpu_cross_entropy_forward,
    .divergence_forward = ct_cpu_divergence_forward,
    .gather_cols = ct_cpu_gather_cols,
    .embedding_backward = ct_cpu_embedding_backward,
    .rmsnorm_backward = ct_cpu_rmsnorm_backward,
    .rope_backward = ct_cpu_rope_backward,
    .attention_backward = ct_cpu_attention_backward,
    .glu_backward = ct_cpu_glu_backward,
    .linear_backward = ct_cpu_linear_backward,
    .softcap_backward = ct_cpu_softcap_backward,
    .cross_entropy_backward = ct_cpu_cross_entropy_backward,
    .divergence_backward = ct_cpu_divergence_backward,
    .scatter_add_cols = ct_cpu_scatter_add_cols,
};

ct_status ct_backend_cpu_create(ct_backend **out, ct_error *err) {
    openblas_set_num_threads(1); // the threading policy of cpu_ops.h: OpenMP threads only
    *out = malloc(sizeof **out);
    if (!*out)
        return ct_fail(err, CT_ERR_NOMEM, "cpu backend: out of memory");
    **out = cpu_table;
    return CT_OK;
}

void ct_backend_destroy(ct_backend *be) { free(be); }

size_t ct_weight_data_bytes(const ct_weight *w) {
    if (w->bits > 0)
        return (size_t)(w->rows * ct_affine_row_words(w->cols, w->bits)) * 4;
    return (size_t)(w->rows * w->cols) * ct_dtype_size(w->dtype);
}

size_t ct_weight_scales_bytes(const ct_weight *w) {
    if (w->bits == 0)
        return 0;
    return (size_t)(w->rows * (w->cols / w->group_size)) * ct_dtype_size(w->dtype);
}
