// Unit tests for src/io/safetensors.c: reading the reference fixtures made by
// tools/make_safetensors_fixtures.py (Python safetensors + huggingface_hub),
// byte-exact writing, model weights (single and sharded), and one test per
// malformed-file case asserting its specific message.
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ctune/fs.h"
#include "ctune/log.h"
#include "ctune/safetensors.h"
#include "harness.h"

#define ALL_DTYPES "safetensors/all_dtypes.safetensors"
#define SHARDED "safetensors/sharded"

static bool files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    ct_error err;
    if (ct_read_file(a, &x, &nx, &err) != CT_OK)
        return false;
    if (ct_read_file(b, &y, &ny, &err) != CT_OK) {
        free(x);
        return false;
    }
    bool eq = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

// ------------------------------------------------------------ reading fixtures

// The fixture's formulas (see the script): value of element i for each dtype.
static double expected_value(ct_dtype t, int i) {
    switch (t) {
    case CT_F64: case CT_F32: case CT_F16: case CT_BF16: case CT_F8_E4M3: case CT_F8_E5M2: return (i - 2) * 0.5;
    case CT_I64: case CT_I32: case CT_I16: case CT_I8: return (i - 2) * 3;
    case CT_U64: case CT_U32: case CT_U16: case CT_U8: return i * 40;
    default: return i % 2;
    }
}

TEST(st_reads_every_dtype_exactly) {
    ct_error err;
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, ct_test_fixture(ALL_DTYPES), &err), &err);
    CHECK_EQ(st.n_tensors, 19);
    int seen = 0;
    for (int d = 0; d < CT_DTYPE_COUNT; d++) {
        char name[32] = "t_";
        for (const char *p = ct_dtype_name((ct_dtype)d); *p; p++)
            name[strlen(name)] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        const ct_tensor_view *t = ct_safetensors_find(&st, name);
        CHECK_MSG(t != NULL, "tensor %s missing", name);
        CHECK_EQ((int)t->dtype, d);
        CHECK_EQ(t->ndim, 2);
        CHECK_EQ(t->shape[0], 2);
        CHECK_EQ(t->shape[1], 3);
        CHECK_EQ(t->nbytes, 6 * ct_dtype_size((ct_dtype)d));
        float v[6];
        if (d == CT_BOOL)
            for (int i = 0; i < 6; i++)
                v[i] = ((const uint8_t *)t->data)[i];
        else
            ct_convert_to_f32(v, t->data, (ct_dtype)d, 6);
        for (int i = 0; i < 6; i++)
            CHECK_MSG(v[i] == expected_value((ct_dtype)d, i), "%s[%d] = %g, want %g", name, i, v[i],
                      expected_value((ct_dtype)d, i));
        seen++;
    }
    CHECK_EQ(seen, CT_DTYPE_COUNT);
    ct_safetensors_close(&st);
}

TEST(st_reads_integer_extremes_bit_exact) {
    ct_error err;
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, ct_test_fixture(ALL_DTYPES), &err), &err);
    const ct_tensor_view *t = ct_safetensors_find(&st, "i64_extremes");
    CHECK(t && t->dtype == CT_I64 && t->nbytes == 24);
    int64_t v[3];
    memcpy(v, t->data, sizeof v);
    CHECK(v[0] == INT64_MIN && v[1] == INT64_MAX && v[2] == -1);
    t = ct_safetensors_find(&st, "u64_max");
    uint64_t u;
    memcpy(&u, t->data, 8);
    CHECK(u == UINT64_MAX);
    ct_safetensors_close(&st);
}

TEST(st_reads_scalar_empty_and_metadata) {
    ct_error err;
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, ct_test_fixture(ALL_DTYPES), &err), &err);
    const ct_tensor_view *s = ct_safetensors_find(&st, "scalar");
    CHECK(s && s->ndim == 0 && s->nbytes == 4 && ct_tensor_numel(s) == 1);
    float f;
    memcpy(&f, s->data, 4);
    CHECK_EQ(f, 3.5f);
    const ct_tensor_view *e = ct_safetensors_find(&st, "empty");
    CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 4 && e->nbytes == 0 && e->dtype == CT_F16);
    CHECK_STREQ(ct_safetensors_meta(&st, "format"), "pt");
    CHECK_STREQ(ct_safetensors_meta(&st, "note"), "ctune fixture");
    CHECK(ct_safetensors_meta(&st, "absent") == NULL);
    CHECK(ct_safetensors_find(&st, "absent") == NULL);
    // File order is the Python layout: U64 tensors first, BOOL last.
    CHECK_STREQ(st.tensors[0].name, "t_u64");
    CHECK_STREQ(st.tensors[st.n_tensors - 1].name, "t_bool");
    ct_safetensors_close(&st);
}

// ------------------------------------------------------------ writing

TEST(st_write_reproduces_python_file_byte_for_byte) {
    ct_error err;
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, ct_test_fixture(ALL_DTYPES), &err), &err);
    // Shuffle the input order: the writer must sort into the Python layout itself.
    ct_tensor_view rev[32];
    for (int i = 0; i < st.n_tensors; i++)
        rev[i] = st.tensors[st.n_tensors - 1 - i];
    char out[1024];
    snprintf(out, sizeof out, "%s/copy.safetensors", ct_test_tmpdir());
    CHECK_OK(ct_safetensors_write(out, rev, st.n_tensors, (const char *const *)st.meta, st.n_meta, &err), &err);
    ct_safetensors_close(&st);
    CHECK(files_equal(out, ct_test_fixture(ALL_DTYPES)));
}

TEST(st_write_pads_header_and_round_trips) {
    ct_error err;
    uint16_t h[3] = {1, 2, 3};
    double d = -2.25;
    ct_tensor_view t[2] = {
        {.name = "b", .dtype = CT_F16, .ndim = 1, .shape = {3}, .data = h, .nbytes = 6},
        {.name = "a\"\n\xc3\xa9", .dtype = CT_F64, .ndim = 0, .data = &d, .nbytes = 8},
    };
    const char *meta[] = {"k", "v\t\x01"};
    char out[1024];
    snprintf(out, sizeof out, "%s/rt.safetensors", ct_test_tmpdir());
    CHECK_OK(ct_safetensors_write(out, t, 2, meta, 1, &err), &err);
    char *buf;
    size_t n;
    CHECK_OK(ct_read_file(out, &buf, &n, &err), &err);
    uint64_t hl;
    memcpy(&hl, buf, 8);
    CHECK_EQ(hl % 8, 0);
    CHECK_EQ(buf[8 + hl - 1], ' ');
    CHECK_EQ(n, 8 + hl + 14);
    free(buf);
    ct_safetensors st;
    CHECK_OK(ct_safetensors_open(&st, out, &err), &err);
    CHECK_STREQ(st.tensors[0].name, "a\"\n\xc3\xa9"); // F64 sorts before F16
    CHECK(memcmp(st.tensors[0].data, &d, 8) == 0 && memcmp(st.tensors[1].data, h, 6) == 0);
    CHECK_STREQ(ct_safetensors_meta(&st, "k"), "v\t\x01");
    ct_safetensors_close(&st);
}

static bool no_temp_left(const char *path) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    return !ct_path_exists(path) && !ct_path_exists(tmp);
}

TEST(st_write_rejects_duplicate_names_and_leaves_no_file) {
    ct_error err;
    float x = 1;
    ct_tensor_view t[2] = {{.name = "w", .dtype = CT_F32, .ndim = 1, .shape = {1}, .data = &x, .nbytes = 4},
                           {.name = "w", .dtype = CT_F32, .ndim = 1, .shape = {1}, .data = &x, .nbytes = 4}};
    char out[1024];
    snprintf(out, sizeof out, "%s/dup_written.safetensors", ct_test_tmpdir());
    CHECK_FAILS(ct_safetensors_write(out, t, 2, NULL, 0, &err), &err, "duplicate tensor name \"w\"");
    CHECK(no_temp_left(out));
}

TEST(st_write_rejects_size_mismatch) {
    ct_error err;
    float x[2] = {1, 2};
    ct_tensor_view t = {.name = "w", .dtype = CT_F32, .ndim = 2, .shape = {2, 2}, .data = x, .nbytes = 8};
    char out[1024];
    snprintf(out, sizeof out, "%s/mismatch.safetensors", ct_test_tmpdir());
    CHECK_FAILS(ct_safetensors_write(out, &t, 1, NULL, 0, &err), &err, "tensor \"w\": nbytes 8 does not match");
    CHECK(no_temp_left(out));
}

TEST(st_write_to_missing_dir_fails_cleanly) {
    ct_error err;
    float x = 1;
    ct_tensor_view t = {.name = "w", .dtype = CT_F32, .ndim = 1, .shape = {1}, .data = &x, .nbytes = 4};
    CHECK_FAILS(ct_safetensors_write("/nonexistent-dir/a.safetensors", &t, 1, NULL, 0, &err), &err, "cannot create");
}

// ------------------------------------------------------------ model weights

TEST(weights_open_sharded_fixture) {
    ct_error err;
    ct_weights w;
    CHECK_OK(ct_weights_open(&w, ct_test_fixture(SHARDED), &err), &err);
    CHECK_EQ(w.n, 5);
    CHECK_EQ(w.n_shards, 3);
    const ct_tensor_view *up = ct_weights_find(&w, "model.layers.0.mlp.up_proj.weight");
    CHECK(up && up->dtype == CT_F32 && up->shape[0] == 6 && up->shape[1] == 6);
    const ct_tensor_view *ln = ct_weights_find(&w, "model.layers.0.input_layernorm.weight");
    CHECK(ln && ln->dtype == CT_BF16);
    float v[6];
    ct_convert_to_f32(v, ln->data, CT_BF16, 6);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(v[i], 1.0f);
    CHECK(ct_weights_find(&w, "lm_head.weight")->dtype == CT_F16);
    CHECK(ct_weights_find(&w, "nope") == NULL);
    ct_weights_close(&w);
}

// Copies the sharded fixture's tensors in the order the script saved them.
static const char *SD_ORDER[] = {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
                                 "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"};

TEST(write_sharded_matches_transformers_layout_byte_for_byte) {
    ct_error err;
    ct_weights w;
    CHECK_OK(ct_weights_open(&w, ct_test_fixture(SHARDED), &err), &err);
    ct_tensor_view t[5];
    for (int i = 0; i < 5; i++)
        t[i] = *ct_weights_find(&w, SD_ORDER[i]);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sharded_out", ct_test_tmpdir());
    const char *meta[] = {"format", "pt"};
    CHECK_OK(ct_safetensors_write_sharded(dir, t, 5, 100, meta, 1, &err), &err);
    ct_weights_close(&w);
    const char *files[] = {"model.safetensors.index.json", "model-00001-of-00003.safetensors",
                           "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    for (int i = 0; i < 4; i++) {
        char a[1200], b[1200];
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", ct_test_fixture(SHARDED), files[i]);
        CHECK_MSG(files_equal(a, b), "%s differs from the reference", files[i]);
    }
}

TEST(write_sharded_single_shard_and_stale_cleanup) {
    ct_error err;
    float x[4] = {1, 2, 3, 4};
    ct_tensor_view t[2] = {{.name = "a", .dtype = CT_F32, .ndim = 1, .shape = {2}, .data = x, .nbytes = 8},
                           {.name = "b", .dtype = CT_F32, .ndim = 1, .shape = {2}, .data = x + 2, .nbytes = 8}};
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s/relayout", ct_test_tmpdir());
    CHECK_OK(ct_safetensors_write_sharded(dir, t, 2, 8, NULL, 0, &err), &err);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(ct_path_exists(p));
    CHECK_OK(ct_safetensors_write_sharded(dir, t, 2, 1000, NULL, 0, &err), &err);
    CHECK(!ct_path_exists(p));
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(!ct_path_exists(p));
    ct_weights w;
    CHECK_OK(ct_weights_open(&w, dir, &err), &err);
    CHECK_EQ(w.n, 2);
    CHECK(memcmp(ct_weights_find(&w, "b")->data, x + 2, 8) == 0);
    ct_weights_close(&w);
    // Back to sharded: the single file must go, or readers would prefer it.
    CHECK_OK(ct_safetensors_write_sharded(dir, t, 2, 8, NULL, 0, &err), &err);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(!ct_path_exists(p));
    CHECK_OK(ct_weights_open(&w, dir, &err), &err);
    CHECK_EQ(w.n_shards, 2);
    ct_weights_close(&w);
}

TEST(weights_missing_lists_what_was_looked_for) {
    ct_error err;
    ct_weights w;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/noweights", ct_test_tmpdir());
    CHECK_OK(ct_mkdir_p(dir, &err), &err);
    ct_test_write_tmp("noweights/adapters.safetensors", "x", 1);
    CHECK_FAILS(ct_weights_open(&w, dir, &err), &err, "looked for model.safetensors and model.safetensors.index.json");
    CHECK_CONTAINS(err.msg, "adapters.safetensors");
}

// A folder with the fixture's shards and a given index text.
static const char *sharded_copy(const char *name, const char *index) {
    static char dir[1024];
    char p[1200];
    ct_error err;
    snprintf(dir, sizeof dir, "%s/%s", ct_test_tmpdir(), name);
    if (ct_mkdir_p(dir, &err) != CT_OK)
        return NULL;
    for (int k = 1; k <= 3; k++) {
        char f[64], *buf;
        size_t n;
        snprintf(f, sizeof f, "model-%05d-of-00003.safetensors", k);
        snprintf(p, sizeof p, "%s/%s", ct_test_fixture(SHARDED), f);
        if (ct_read_file(p, &buf, &n, &err) != CT_OK)
            return NULL;
        snprintf(p, sizeof p, "%s/%s", name, f);
        ct_test_write_tmp(p, buf, n);
        free(buf);
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", name);
    ct_test_write_tmp(p, index, strlen(index));
    return dir;
}

TEST(weights_index_entry_missing_from_shard) {
    ct_error err;
    ct_weights w;
    const char *dir = sharded_copy("idx_missing", "{\"weight_map\": {\"lm_head.weight\": \"model-00001-of-00003.safetensors\"}}");
    CHECK(dir != NULL);
    CHECK_FAILS(ct_weights_open(&w, dir, &err), &err,
                "weight_map maps \"lm_head.weight\" to model-00001-of-00003.safetensors, which does not hold it");
}

TEST(weights_index_shard_file_missing) {
    ct_error err;
    ct_weights w;
    const char *dir = sharded_copy("idx_nofile", "{\"weight_map\": {\"x\": \"model-00009-of-00009.safetensors\"}}");
    CHECK_FAILS(ct_weights_open(&w, dir, &err), &err, "model-00009-of-00009.safetensors: cannot open");
}

TEST(weights_index_rejects_path_escape) {
    ct_error err;
    ct_weights w;
    const char *dir = sharded_copy("idx_escape", "{\"weight_map\": {\"x\": \"../secret.safetensors\"}}");
    CHECK_FAILS(ct_weights_open(&w, dir, &err), &err, "must be a file name inside the folder");
}

TEST(weights_index_without_weight_map) {
    ct_error err;
    ct_weights w;
    const char *dir = sharded_copy("idx_nomap", "{\"metadata\": {}}");
    CHECK_FAILS(ct_weights_open(&w, dir, &err), &err, "\"weight_map\" must be an object, got nothing");
}

TEST(weights_unindexed_tensors_are_skipped) {
    ct_error err;
    ct_weights w;
    const char *dir = sharded_copy("idx_partial", "{\"weight_map\": {\"model.norm.weight\": \"model-00003-of-00003.safetensors\"}}");
    ct_log_level old = ct_log_get_level();
    ct_log_set_level(CT_LOG_QUIET); // the skipped tensors are warned about
    ct_status s = ct_weights_open(&w, dir, &err);
    ct_log_set_level(old);
    CHECK_OK(s, &err);
    CHECK_EQ(w.n, 1);
    CHECK_EQ(w.n_shards, 1);
    CHECK(ct_weights_find(&w, "model.norm.weight") != NULL);
    CHECK(ct_weights_find(&w, "lm_head.weight") == NULL);
    ct_weights_close(&w);
}

// ------------------------------------------------------------ malformed files

// Writes an 8-byte length (declared, or the header's real length if declared < 0), the header and
// n_data zero bytes; opens it and expects failure with needle in a message that also names the file.
static ct_status open_bad(const char *name, int64_t declared, const char *header, size_t n_data, ct_error *err) {
    size_t hl = strlen(header);
    size_t total = 8 + hl + n_data;
    unsigned char *buf = calloc(1, total);
    uint64_t n = declared < 0 ? hl : (uint64_t)declared;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, hl);
    const char *path = ct_test_write_tmp(name, buf, total);
    free(buf);
    ct_safetensors st;
    ct_status s = ct_safetensors_open(&st, path, err);
    if (s == CT_OK) {
        ct_safetensors_close(&st);
        return s;
    }
    if (!strstr(err->msg, name)) // every message names the file
        snprintf(err->msg, sizeof err->msg, "message does not name the file");
    return s;
}

#define ONE_F32 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"

TEST(st_good_minimal_file_opens) {
    ct_error err;
    CHECK_OK(open_bad("good.safetensors", -1, ONE_F32, 4, &err), &err);
}

// mx.save_safetensors (mlx-lm's adapters.safetensors) writes "__metadata__": null.
TEST(st_null_metadata_is_no_metadata) {
    ct_error err;
    CHECK_OK(open_bad("nullmeta.safetensors", -1,
                      "{\"__metadata__\":null,\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      &err),
             &err);
    CHECK_FAILS(open_bad("listmeta.safetensors", -1,
                         "{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                         4, &err),
                &err, "__metadata__ must be an object");
}

TEST(st_bad_shorter_than_8_bytes) {
    ct_error err;
    ct_safetensors st;
    const char *p = ct_test_write_tmp("short.safetensors", "\x05\0\0", 3);
    CHECK_FAILS(ct_safetensors_open(&st, p, &err), &err, "short.safetensors: file is 3 bytes, shorter than the 8-byte header length");
}

TEST(st_bad_empty_file) {
    ct_error err;
    ct_safetensors st;
    const char *p = ct_test_write_tmp("empty.safetensors", "", 0);
    CHECK_FAILS(ct_safetensors_open(&st, p, &err), &err, "file is 0 bytes");
}

TEST(st_bad_missing_file) {
    ct_error err;
    ct_safetensors st;
    CHECK_FAILS(ct_safetensors_open(&st, "/nonexistent/x.safetensors", &err), &err, "/nonexistent/x.safetensors: cannot open");
}

TEST(st_bad_header_absurdly_large) {
    ct_error err;
    CHECK_FAILS(open_bad("huge.safetensors", 200000000, ONE_F32, 4, &err), &err,
                "header length 200000000 is too large (limit 100000000 bytes)");
}

TEST(st_bad_header_past_eof) {
    ct_error err;
    CHECK_FAILS(open_bad("pasteof.safetensors", 1000, ONE_F32, 4, &err), &err,
                "header length 1000 runs past the end of the file (66 bytes)");
}

TEST(st_bad_header_length_max_u64) {
    ct_error err;
    CHECK_FAILS(open_bad("maxlen.safetensors", INT64_MAX, ONE_F32, 4, &err), &err, "is too large");
}

TEST(st_bad_json_gives_line_col) {
    ct_error err;
    CHECK_FAILS(open_bad("badjson.safetensors", -1, "{\"a\":\n {\"dtype\" \"F32\"}}", 0, &err), &err,
                "badjson.safetensors: header:2:");
    CHECK_CONTAINS(err.msg, "malformed JSON");
}

TEST(st_bad_header_not_object) {
    ct_error err;
    CHECK_FAILS(open_bad("array.safetensors", -1, "[1, 2]", 0, &err), &err, "header must be a JSON object, got an array");
}

TEST(st_bad_header_not_utf8) {
    ct_error err;
    CHECK_FAILS(open_bad("utf8.safetensors", -1, "{\"\xff\":1}", 0, &err), &err, "header is not valid UTF-8 (byte 2");
}

TEST(st_bad_entry_not_object) {
    ct_error err;
    CHECK_FAILS(open_bad("entry.safetensors", -1, "{\"a\": [1]}", 0, &err), &err,
                "tensor \"a\": entry must be an object, got an array");
}

TEST(st_bad_missing_dtype) {
    ct_error err;
    CHECK_FAILS(open_bad("nodtype.safetensors", -1, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err), &err,
                "tensor \"a\": missing \"dtype\"");
}

TEST(st_bad_missing_data_offsets) {
    ct_error err;
    CHECK_FAILS(open_bad("nooffs.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, &err), &err,
                "tensor \"a\": missing \"data_offsets\"");
}

TEST(st_bad_dtype_not_string) {
    ct_error err;
    CHECK_FAILS(open_bad("dtypenum.safetensors", -1, "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": \"dtype\" must be a string, got a number");
}

TEST(st_bad_unknown_dtype) {
    ct_error err;
    CHECK_FAILS(open_bad("dtype.safetensors", -1, "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": unknown dtype \"F128\"");
}

TEST(st_bad_shape_not_array) {
    ct_error err;
    CHECK_FAILS(open_bad("shape.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": \"shape\" must be an array, got a number");
}

TEST(st_bad_shape_fraction) {
    ct_error err;
    CHECK_FAILS(open_bad("frac.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": shape[0] must be an integer");
}

TEST(st_bad_negative_dim) {
    ct_error err;
    CHECK_FAILS(open_bad("neg.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": negative dimension -2 in shape");
}

TEST(st_bad_too_many_dims) {
    ct_error err;
    CHECK_FAILS(open_bad("dims.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": shape has 9 dimensions (at most 8 supported)");
}

TEST(st_bad_size_overflow) {
    ct_error err;
    CHECK_FAILS(open_bad("ovf.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}",
                         4, &err),
                &err, "tensor \"a\": shape's element count overflows");
}

TEST(st_bad_byte_size_overflow) {
    ct_error err;
    CHECK_FAILS(open_bad("bovf.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,4]}}", 4, &err),
                &err, "tensor \"a\": shape's byte size overflows");
}

TEST(st_bad_offsets_shape) {
    ct_error err;
    CHECK_FAILS(open_bad("offs1.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, &err),
                &err, "tensor \"a\": \"data_offsets\" must be [begin, end] with non-negative integers");
}

TEST(st_bad_offsets_negative) {
    ct_error err;
    CHECK_FAILS(open_bad("offsneg.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, &err),
                &err, "\"data_offsets\" must be [begin, end]");
}

TEST(st_bad_offsets_begin_after_end) {
    ct_error err;
    CHECK_FAILS(open_bad("order.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, &err),
                &err, "tensor \"a\": data_offsets begin 8 > end 4");
}

TEST(st_bad_offsets_past_data) {
    ct_error err;
    CHECK_FAILS(open_bad("range.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[100,104]}}", 4, &err),
                &err, "tensor \"a\": data_offsets [100, 104] run past the end of the data (4 bytes)");
}

TEST(st_bad_offsets_overlap) {
    ct_error err;
    CHECK_FAILS(open_bad("overlap.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                         12, &err),
                &err, "tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" [0, 8]");
}

TEST(st_bad_empty_tensor_inside_another) {
    ct_error err;
    CHECK_FAILS(open_bad("inside.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                         8, &err),
                &err, "tensor \"e\": data_offsets [4, 4] overlap tensor \"a\"");
}

TEST(st_bad_offsets_hole) {
    ct_error err;
    CHECK_FAILS(open_bad("hole.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                         12, &err),
                &err, "data bytes [4, 8) belong to no tensor (a hole)");
}

TEST(st_bad_trailing_bytes) {
    ct_error err;
    CHECK_FAILS(open_bad("trailing.safetensors", -1, ONE_F32, 6, &err), &err,
                "data bytes [4, 6) belong to no tensor (trailing bytes)");
}

TEST(st_bad_byte_size_mismatch) {
    ct_error err;
    CHECK_FAILS(open_bad("size.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, &err),
                &err, "tensor \"a\": data_offsets span 8 bytes but F32 shape needs 12");
}

TEST(st_bad_duplicate_tensor) {
    ct_error err;
    CHECK_FAILS(open_bad("dup.safetensors", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                         8, &err),
                &err, "duplicate tensor \"a\" in the header");
}

TEST(st_bad_metadata_not_object) {
    ct_error err;
    CHECK_FAILS(open_bad("meta1.safetensors", -1, "{\"__metadata__\": \"x\"}", 0, &err), &err,
                "__metadata__ must be an object of strings, got a string");
}

TEST(st_bad_metadata_value_not_string) {
    ct_error err;
    CHECK_FAILS(open_bad("meta2.safetensors", -1, "{\"__metadata__\": {\"k\": 3}}", 0, &err), &err,
                "__metadata__ \"k\" must be a string, got a number");
}

TEST(st_bad_metadata_twice) {
    ct_error err;
    CHECK_FAILS(open_bad("meta3.safetensors", -1, "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, &err), &err,
                "duplicate \"__metadata__\"");
}

// Every truncation and many single-byte corruptions of a real file: no crash,
// leak or UB (ASan/UBSan run this), and every truncation is refused.
TEST(st_corrupted_fixture_never_crashes) {
    ct_error err;
    char *buf;
    size_t n;
    CHECK_OK(ct_read_file(ct_test_fixture(ALL_DTYPES), &buf, &n, &err), &err);
    int refused = 0, opened = 0;
    for (size_t len = 0; len < n; len++) {
        const char *p = ct_test_write_tmp("trunc.safetensors", buf, len);
        ct_safetensors st;
        if (ct_safetensors_open(&st, p, &err) == CT_OK)
            ct_safetensors_close(&st);
        else
            refused++;
    }
    CHECK_EQ(refused, (int)n);
    static const unsigned char flips[] = {0x00, '"', '9', '-', 0xff};
    for (size_t pos = 0; pos < 8 + 600 && pos < n; pos++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            char saved = buf[pos];
            buf[pos] = (char)flips[k];
            const char *p = ct_test_write_tmp("flip.safetensors", buf, n);
            buf[pos] = saved;
            ct_safetensors st;
            if (ct_safetensors_open(&st, p, &err) == CT_OK) {
                opened++;
                ct_safetensors_close(&st);
            }
        }
    }
    CHECK(opened > 0); // some flips (e.g. inside names) stay valid
    free(buf);
}
