// st_copy IN OUT: reads IN with ct_safetensors_open and writes every tensor and
// the metadata to OUT with ct_safetensors_write (the interop test's round trip).
#include <stdio.h>
#include <stdlib.h>

#include "ctune/safetensors.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: st_copy IN.safetensors OUT.safetensors\n");
        return 2;
    }
    ct_error err;
    ct_safetensors st;
    if (ct_safetensors_open(&st, argv[1], &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    ct_status s = ct_safetensors_write(argv[2], st.tensors, st.n_tensors, (const char *const *)st.meta, st.n_meta, &err);
    ct_safetensors_close(&st);
    if (s != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
