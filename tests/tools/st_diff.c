// st_diff [-f] A B: compares two safetensors files tensor by tensor (same
// names and shapes required). Prints the largest relative difference over the
// tensors, max|a - b| / max|b| (with -f: the norm ratio ||a - b|| / ||b||), and
// the tensor it occurs in; exits 1 when the files differ in names or shapes.
// Used by tests/e2e/t_mpi.sh.
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/dtype.h"
#include "ctune/safetensors.h"

static double tensor_rel_diff(const ct_tensor_view *a, const ct_tensor_view *b, bool norm) {
    size_t n = (size_t)ct_tensor_numel(a);
    float *x = malloc((n ? n : 1) * sizeof *x), *y = malloc((n ? n : 1) * sizeof *y);
    double diff = 0, scale = 0, d2 = 0, s2 = 0;
    if (!x || !y) {
        free(x);
        free(y);
        return INFINITY;
    }
    ct_convert_to_f32(x, a->data, a->dtype, n);
    ct_convert_to_f32(y, b->data, b->dtype, n);
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)x[i] - y[i]));
        scale = fmax(scale, fabs((double)y[i]));
        d2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s2 += (double)y[i] * y[i];
    }
    free(x);
    free(y);
    if (norm)
        return s2 > 0 ? sqrt(d2 / s2) : sqrt(d2);
    return scale > 0 ? diff / scale : diff;
}

int main(int argc, char **argv) {
    bool norm = argc == 4 && !strcmp(argv[1], "-f");
    argv += norm;
    argc -= norm;
    if (argc != 3) {
        fprintf(stderr, "usage: st_diff [-f] A.safetensors B.safetensors\n");
        return 2;
    }
    ct_error err;
    ct_safetensors a, b;
    if (ct_safetensors_open(&a, argv[1], &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    if (ct_safetensors_open(&b, argv[2], &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        ct_safetensors_close(&a);
        return 1;
    }
    int rc = a.n_tensors == b.n_tensors ? 0 : 1;
    double worst = 0;
    const char *where = "";
    for (int i = 0; i < a.n_tensors && rc == 0; i++) {
        const ct_tensor_view *ta = &a.tensors[i], *tb = ct_safetensors_find(&b, ta->name);
        if (!tb || ct_tensor_numel(ta) != ct_tensor_numel(tb) || ta->ndim != tb->ndim) {
            fprintf(stderr, "error: %s: missing or of another shape in %s\n", ta->name, argv[2]);
            rc = 1;
            break;
        }
        double d = tensor_rel_diff(ta, tb, norm);
        if (!(d <= worst)) {
            worst = d;
            where = ta->name;
        }
    }
    if (rc == 0)
        printf("%.3e %s\n", worst, where);
    else if (a.n_tensors != b.n_tensors)
        fprintf(stderr, "error: %d tensors in %s, %d in %s\n", a.n_tensors, argv[1], b.n_tensors, argv[2]);
    ct_safetensors_close(&a);
    ct_safetensors_close(&b);
    return rc;
}
