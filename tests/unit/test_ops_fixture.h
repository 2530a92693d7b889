// test_ops_fixture.h: reads the ops module's reference fixtures
// (tests/fixtures/ops/*.safetensors, written by tools/make_ops_fixtures.py)
// and compares float arrays. Test-only; a tiny reader so the ops tests do not
// depend on the io module.
#ifndef CTUNE_TEST_OPS_FIXTURE_H
#define CTUNE_TEST_OPS_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "harness.h"

typedef struct fx_file {
    char *buf;
    size_t len;
    cJSON *hdr;
    size_t data_off;
} fx_file;

// Opens tests/fixtures/ops/<name>; false (and a message on stderr) on failure.
static inline int fx_open(fx_file *f, const char *name) {
    char path[512];
    ct_error err = {0};
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "ops/%s", name);
    if (ct_read_file(ct_test_fixture(path), &f->buf, &f->len, &err) != CT_OK || f->len < 8) {
        fprintf(stderr, "fixture %s: %s\n", path, err.msg);
        return 0;
    }
    uint64_t n;
    memcpy(&n, f->buf, 8);
    if (8 + n > f->len || ct_json_parse(f->buf + 8, n, path, &f->hdr, &err) != CT_OK) {
        fprintf(stderr, "fixture %s: bad header %s\n", path, err.msg);
        return 0;
    }
    f->data_off = 8 + n;
    return 1;
}

static inline void fx_close(fx_file *f) {
    cJSON_Delete(f->hdr);
    free(f->buf);
}

// The data of tensor `name` if it has dtype `dtype` and nelem elements; else NULL.
static inline const void *fx_get(const fx_file *f, const char *name, const char *dtype, int64_t nelem) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, name);
    if (!t) {
        fprintf(stderr, "fixture tensor %s missing\n", name);
        return NULL;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    int64_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(t, "shape")) n *= (int64_t)d->valuedouble;
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, dtype) != 0 || n != nelem) {
        fprintf(stderr, "fixture tensor %s: want %s[%lld]\n", name, dtype, (long long)nelem);
        return NULL;
    }
    return f->buf + f->data_off + (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
}

// max |a-b| / max(max|b|, floor): a relative error against the reference's scale.
static inline double fx_rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        md = d > md || d != d ? d : md;
        mb = fabs((double)b[i]) > mb ? fabs((double)b[i]) : mb;
    }
    return md / mb;
}

#endif
