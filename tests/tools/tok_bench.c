// tok_bench TOKENIZER FILE REPS [lines]: times ct_tokenizer_encode on FILE
// (whole, or each line separately), after one warm-up pass. Prints
// "<seconds per pass> <ids>" for bench/tokenize_bench.py.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctune/fs.h"
#include "ctune/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t encode_pass(ct_tokenizer *t, const char *text, size_t len, int lines, ct_error *err) {
    size_t total = 0;
    for (size_t a = 0; a <= len;) {
        const char *nl = lines ? memchr(text + a, '\n', len - a) : NULL;
        size_t b = nl ? (size_t)(nl - text) : len;
        int32_t *ids;
        size_t n;
        if (ct_tokenizer_encode(t, text + a, b - a, false, &ids, &n, err) != CT_OK)
            return 0;
        free(ids);
        total += n;
        a = b + 1;
    }
    return total;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tok_bench TOKENIZER FILE REPS [lines]\n");
        return 2;
    }
    ct_error err;
    ct_tokenizer *t;
    char *text;
    size_t len;
    int reps = atoi(argv[3]), lines = argc > 4 && !strcmp(argv[4], "lines");
    if (ct_tokenizer_load(&t, argv[1], &err) != CT_OK || ct_read_file(argv[2], &text, &len, &err) != CT_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    size_t n = encode_pass(t, text, len, lines, &err);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        n = encode_pass(t, text, len, lines, &err);
    printf("%.6f %zu\n", (now() - t0) / (reps > 0 ? reps : 1), n);
    free(text);
    ct_tokenizer_free(t);
    return 0;
}
