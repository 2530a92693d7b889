// The unit-test runner: runs every registered test (or those whose name
// contains argv[1]) and ends with "N passed, N failed".
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctune/fs.h"
#include "ctune/log.h"

typedef struct test_case {
    const char *name, *file;
    ct_test_fn fn;
} test_case;

static test_case g_tests[4096];
static int g_ntests, g_checks, g_failed_now;
static char g_tmpdir[256];

void ct_test_register(const char *name, const char *file, ct_test_fn fn) {
    if (g_ntests < (int)(sizeof g_tests / sizeof g_tests[0]))
        g_tests[g_ntests++] = (test_case){name, file, fn};
}

void ct_test_check_failed(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: check failed: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    g_failed_now = 1;
}

void ct_test_check_passed(void) { g_checks++; }

const char *ct_test_fixture(const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "tests/fixtures/%s", name);
    return b;
}

const char *ct_test_tmpdir(void) {
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/ctune-test-XXXXXX");
        if (!mkdtemp(g_tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return g_tmpdir;
}

const char *ct_test_write_tmp(const char *name, const void *data, size_t len) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", ct_test_tmpdir(), name);
    FILE *f = fopen(b, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len)) {
        perror(b);
        exit(2);
    }
    fclose(f);
    return b;
}

static int cmp_case(const void *a, const void *b) {
    const test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    ct_log_set_level(CT_LOG_WARN); // info lines (progress, "Saved ...") would drown the results
    qsort(g_tests, (size_t)g_ntests, sizeof g_tests[0], cmp_case);
    int passed = 0, failed = 0;
    for (int i = 0; i < g_ntests; i++) {
        test_case *t = &g_tests[i];
        if (filter && !strstr(t->name, filter) && !strstr(t->file, filter))
            continue;
        g_checks = 0;
        g_failed_now = 0;
        t->fn();
        if (!g_failed_now && g_checks == 0) {
            fprintf(stdout, "    %s: made no checks\n", t->name);
            g_failed_now = 1;
        }
        fprintf(stdout, "%s %s (%s)\n", g_failed_now ? "FAIL" : "ok  ", t->name, t->file);
        fflush(stdout);
        if (g_failed_now)
            failed++;
        else
            passed++;
    }
    if (g_tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", g_tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
