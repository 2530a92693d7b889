// Unit tests for the GGUF reader and writer: a gguf-py-written file with every
// metadata type, v2, writer round trips, and one test per malformed input.
#include <stdint.h>
#include <stdlib.h>

#include "ctune/fs.h"
#include "ctune/gguf.h"
#include "harness.h"

// ---------------------------------------------------------------- gguf-py fixture

static void check_meta_file(const char *fixture, uint32_t version) {
    ct_error err;
    ct_gguf g;
    CHECK_OK(ct_gguf_open(&g, ct_test_fixture(fixture), &err), &err);
    CHECK_EQ(g.version, version);
    CHECK_EQ(g.alignment, 64);
    uint64_t u;
    int64_t i;
    double f;
    bool b;
    const char *s;
    size_t len;
    CHECK(ct_gguf_get_u64(&g, "test.u8", &u) && u == 200);
    CHECK(ct_gguf_get_i64(&g, "test.i8", &i) && i == -100);
    CHECK(!ct_gguf_get_u64(&g, "test.i8", &u)); // negative does not coerce to unsigned
    CHECK(ct_gguf_get_u64(&g, "test.u16", &u) && u == 60000);
    CHECK(ct_gguf_get_i64(&g, "test.i16", &i) && i == -30000);
    CHECK(ct_gguf_get_u64(&g, "test.u32", &u) && u == 4000000000u);
    CHECK(ct_gguf_get_i64(&g, "test.u32", &i) && i == 4000000000);
    CHECK(ct_gguf_get_i64(&g, "test.i32", &i) && i == -2000000000);
    CHECK(ct_gguf_get_f64(&g, "test.f32", &f) && f == 1.5);
    CHECK(!ct_gguf_get_i64(&g, "test.f32", &i)); // floats are not integers
    CHECK(ct_gguf_get_bool(&g, "test.bool", &b) && b);
    CHECK(!ct_gguf_get_i64(&g, "test.bool", &i));
    CHECK(ct_gguf_get_str(&g, "test.string", &s, &len));
    CHECK_STREQ(s, "h\xc3\xa9llo w\xc3\xb6rld");
    CHECK_EQ(len, 13);
    CHECK(ct_gguf_get_u64(&g, "test.u64", &u) && u == (1ull << 63) + 5);
    CHECK(!ct_gguf_get_i64(&g, "test.u64", &i)); // too big for i64
    CHECK(ct_gguf_get_i64(&g, "test.i64", &i) && i == -(1ll << 62));
    CHECK(ct_gguf_get_f64(&g, "test.f64", &f) && f == 3.141592653589793);
    CHECK(!ct_gguf_get_str(&g, "test.u8", &s, NULL));
    CHECK(!ct_gguf_get_u64(&g, "no.such.key", &u));
    CHECK(ct_gguf_find_kv(&g, "no.such.key") == NULL);
    CHECK(ct_gguf_get_str(&g, "general.architecture", &s, NULL));
    CHECK_STREQ(s, "llama");

    const ct_gguf_kv *kv = ct_gguf_find_kv(&g, "test.arr_u8");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_U8 && ct_gguf_arr_count(kv) == 3);
    CHECK(ct_gguf_arr_i64(kv, 2, &i) && i == 255);
    CHECK(!ct_gguf_arr_i64(kv, 3, &i)); // out of range
    CHECK(!ct_gguf_kv_u64(kv, &u));     // an array is not a scalar
    kv = ct_gguf_find_kv(&g, "test.arr_i16");
    CHECK(kv && ct_gguf_arr_i64(kv, 0, &i) && i == -3);
    kv = ct_gguf_find_kv(&g, "test.arr_i32");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_I32 && ct_gguf_arr_i64(kv, 0, &i) && i == -1);
    kv = ct_gguf_find_kv(&g, "test.arr_u64");
    CHECK(kv && !ct_gguf_arr_i64(kv, 0, &i) && ct_gguf_arr_f64(kv, 1, &f) && f == 3);
    kv = ct_gguf_find_kv(&g, "test.arr_f32");
    CHECK(kv && ct_gguf_arr_f64(kv, 1, &f) && f == -2.25);
    kv = ct_gguf_find_kv(&g, "test.arr_f64");
    CHECK(kv && ct_gguf_arr_f64(kv, 0, &f) && f == 1e300);
    kv = ct_gguf_find_kv(&g, "test.arr_bool");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_BOOL && ct_gguf_arr_count(kv) == 3);
    kv = ct_gguf_find_kv(&g, "test.arr_str");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_STRING && ct_gguf_arr_count(kv) == 4);
    CHECK(ct_gguf_arr_str(kv, 1, &s, &len) && len == 0 && s[0] == 0);
    CHECK(ct_gguf_arr_str(kv, 2, &s, &len) && len == 2 && strcmp(s, "\xc3\xbc") == 0);
    CHECK(ct_gguf_arr_str(kv, 3, &s, NULL) && strcmp(s, "with space") == 0);
    CHECK(!ct_gguf_arr_str(kv, 4, &s, NULL));

    // Tokenizer-shaped arrays.
    CHECK(ct_gguf_get_str(&g, "tokenizer.ggml.model", &s, NULL) && strcmp(s, "gpt2") == 0);
    kv = ct_gguf_find_kv(&g, "tokenizer.ggml.tokens");
    CHECK(kv && ct_gguf_arr_count(kv) == 1000);
    CHECK(ct_gguf_arr_str(kv, 999, &s, NULL) && strcmp(s, "tok999") == 0);
    kv = ct_gguf_find_kv(&g, "tokenizer.ggml.scores");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_F32 && ct_gguf_arr_f64(kv, 10, &f) && f == (double)-1.0f);
    kv = ct_gguf_find_kv(&g, "tokenizer.ggml.token_type");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_I32 && ct_gguf_arr_i64(kv, 13, &i) && i == 1);
    CHECK(ct_gguf_get_u64(&g, "tokenizer.ggml.bos_token_id", &u) && u == 1);
    CHECK(ct_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b) && b);

    // Tensors, placed at 64-byte alignment.
    CHECK_EQ(g.n_tensors, 2);
    CHECK_EQ(g.data_offset % 64, 0);
    const ct_gguf_tensor *a = ct_gguf_find_tensor(&g, "tiny.a"), *t = ct_gguf_find_tensor(&g, "tiny.b");
    CHECK(a && t && ct_gguf_find_tensor(&g, "tiny.c") == NULL);
    CHECK(a->ndim == 2 && a->ne[0] == 5 && a->ne[1] == 3 && a->ne[2] == 1 && a->nelements == 15);
    CHECK(a->type == CT_GGML_F32 && a->nbytes == 60);
    CHECK_EQ(t->offset, 64);
    float va[15], vb[7];
    CHECK_OK(ct_gguf_tensor_to_f32(&g, a, va, &err), &err);
    CHECK_OK(ct_gguf_tensor_to_f32(&g, t, vb, &err), &err);
    CHECK(va[14] == 14.0f && va[6] == 6.0f && vb[6] == -6.0f);
    ct_gguf_close(&g);
}

TEST(reads_gguf_py_file_v3) { check_meta_file("gguf/meta.gguf", 3); }
TEST(reads_gguf_v2) { check_meta_file("gguf/meta_v2.gguf", 2); }

// ---------------------------------------------------------------- writer

TEST(writer_round_trip_all_types) {
    ct_error err;
    ct_gguf_writer *w;
    CHECK_OK(ct_gguf_writer_new(&w, &err), &err);
    uint8_t u8 = 250;
    int8_t i8 = -7;
    uint16_t u16 = 65535;
    int16_t i16 = -32768;
    int64_t i64 = INT64_MIN;
    double f64 = -1e-300;
    CHECK_OK(ct_gguf_writer_add_u32(w, "general.alignment", 128, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.u8", CT_GGUF_U8, &u8, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.i8", CT_GGUF_I8, &i8, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.u16", CT_GGUF_U16, &u16, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.i16", CT_GGUF_I16, &i16, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.i64", CT_GGUF_I64, &i64, &err), &err);
    CHECK_OK(ct_gguf_writer_add_scalar(w, "s.f64", CT_GGUF_F64, &f64, &err), &err);
    CHECK_OK(ct_gguf_writer_add_i32(w, "s.i32", -5, &err), &err);
    CHECK_OK(ct_gguf_writer_add_u64(w, "s.u64", UINT64_MAX, &err), &err);
    CHECK_OK(ct_gguf_writer_add_f32(w, "s.f32", 0.1f, &err), &err);
    CHECK_OK(ct_gguf_writer_add_bool(w, "s.bool", false, &err), &err);
    CHECK_OK(ct_gguf_writer_add_str(w, "s.str", "{% if x %}y{% endif %}", &err), &err);
    int32_t ai[3] = {-1, 2, INT32_MAX};
    float af[2] = {0.25f, -8.0f};
    bool ab[2] = {true, false};
    CHECK_OK(ct_gguf_writer_add_array(w, "a.i32", CT_GGUF_I32, ai, 3, &err), &err);
    CHECK_OK(ct_gguf_writer_add_array(w, "a.f32", CT_GGUF_F32, af, 2, &err), &err);
    CHECK_OK(ct_gguf_writer_add_array(w, "a.bool", CT_GGUF_BOOL, ab, 2, &err), &err);
    const char *strs[3] = {"x", "", "a\0b"};
    size_t lens[3] = {1, 0, 3};
    CHECK_OK(ct_gguf_writer_add_str_array(w, "a.str", strs, lens, 3, &err), &err);
    CHECK_OK(ct_gguf_writer_add_str_array(w, "a.empty", strs, NULL, 0, &err), &err);

    float x[2 * 64];
    for (int k = 0; k < 128; k++)
        x[k] = cosf((float)k);
    uint8_t q4[2 * 36];
    CHECK_OK(ct_ggml_quantize(CT_GGML_Q4_0, x, q4, 128, &err), &err);
    int64_t ne_q[2] = {64, 2}, ne_f[1] = {3};
    CHECK_OK(ct_gguf_writer_add_tensor(w, "w.q4", CT_GGML_Q4_0, 2, ne_q, q4, &err), &err);
    CHECK_OK(ct_gguf_writer_add_tensor(w, "w.f32", CT_GGML_F32, 1, ne_f, x, &err), &err);
    char path[600];
    snprintf(path, sizeof path, "%s/rt.gguf", ct_test_tmpdir());
    ct_status st = ct_gguf_writer_write(w, path, &err);
    ct_gguf_writer_free(w);
    CHECK_MSG(st == CT_OK, "%s", err.msg);

    ct_gguf g;
    CHECK_OK(ct_gguf_open(&g, path, &err), &err);
    CHECK_EQ(g.version, 3);
    CHECK_EQ(g.alignment, 128);
    CHECK_EQ(g.n_kv, 17);
    uint64_t u;
    int64_t i;
    double f;
    bool b = true;
    const char *s;
    size_t len;
    CHECK(ct_gguf_get_u64(&g, "s.u8", &u) && u == 250);
    CHECK(ct_gguf_get_i64(&g, "s.i8", &i) && i == -7);
    CHECK(ct_gguf_get_u64(&g, "s.u16", &u) && u == 65535);
    CHECK(ct_gguf_get_i64(&g, "s.i16", &i) && i == -32768);
    CHECK(ct_gguf_get_i64(&g, "s.i64", &i) && i == INT64_MIN);
    CHECK(ct_gguf_get_f64(&g, "s.f64", &f) && f == -1e-300);
    CHECK(ct_gguf_get_i64(&g, "s.i32", &i) && i == -5);
    CHECK(ct_gguf_get_u64(&g, "s.u64", &u) && u == UINT64_MAX);
    CHECK(ct_gguf_get_f64(&g, "s.f32", &f) && f == (double)0.1f);
    CHECK(ct_gguf_get_bool(&g, "s.bool", &b) && !b);
    CHECK(ct_gguf_get_str(&g, "s.str", &s, NULL) && strcmp(s, "{% if x %}y{% endif %}") == 0);
    const ct_gguf_kv *kv = ct_gguf_find_kv(&g, "a.i32");
    CHECK(kv && ct_gguf_arr_count(kv) == 3 && ct_gguf_arr_i64(kv, 2, &i) && i == INT32_MAX);
    kv = ct_gguf_find_kv(&g, "a.f32");
    CHECK(kv && ct_gguf_arr_f64(kv, 1, &f) && f == -8.0);
    kv = ct_gguf_find_kv(&g, "a.bool");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_BOOL && ((const uint8_t *)kv->data)[0] == 1);
    kv = ct_gguf_find_kv(&g, "a.str");
    CHECK(kv && ct_gguf_arr_str(kv, 2, &s, &len) && len == 3 && memcmp(s, "a\0b", 3) == 0);
    kv = ct_gguf_find_kv(&g, "a.empty");
    CHECK(kv && ct_gguf_arr_type(kv) == CT_GGUF_STRING && ct_gguf_arr_count(kv) == 0);

    const ct_gguf_tensor *tq = ct_gguf_find_tensor(&g, "w.q4"), *tf = ct_gguf_find_tensor(&g, "w.f32");
    CHECK(tq && tf && tq->type == CT_GGML_Q4_0 && tq->ne[0] == 64 && tq->ne[1] == 2);
    CHECK(memcmp(tq->data, q4, sizeof q4) == 0);
    CHECK_EQ(tf->offset, 128);
    CHECK_EQ(((uintptr_t)tf->data - (uintptr_t)g.map.data) % 128, 0);
    CHECK(memcmp(tf->data, x, 12) == 0);
    ct_gguf_close(&g);
    snprintf(path, sizeof path, "%s/rt.gguf.tmp.%ld", ct_test_tmpdir(), (long)getpid());
    CHECK(!ct_path_exists(path)); // the temp file was renamed
}

TEST(writer_rejects_bad_input) {
    ct_error err, e1, e2, e4;
    ct_gguf_writer *w;
    CHECK_OK(ct_gguf_writer_new(&w, &err), &err);
    CHECK_OK(ct_gguf_writer_add_u32(w, "k", 1, &err), &err);
    ct_status st1 = ct_gguf_writer_add_str(w, "k", "again", &e1);
    int64_t ne[2] = {33, 1};
    float data[64] = {0};
    ct_status st2 = ct_gguf_writer_add_tensor(w, "t", CT_GGML_Q8_0, 2, ne, data, &e2);
    ne[0] = 32;
    ct_status st3 = ct_gguf_writer_add_tensor(w, "t", CT_GGML_Q8_0, 2, ne, data, &err);
    ct_status st4 = ct_gguf_writer_add_tensor(w, "t", CT_GGML_F32, 1, ne, data, &e4);
    ct_status st5 = ct_gguf_writer_add_u32(w, "general.alignment", 48, &err);
    ct_gguf_writer_free(w);
    CHECK(st1 != CT_OK);
    CHECK_CONTAINS(e1.msg, "duplicate metadata key 'k'");
    CHECK(st2 != CT_OK);
    CHECK_CONTAINS(e2.msg, "not a multiple of the Q8_0 block size");
    CHECK_EQ(st3, CT_OK);
    CHECK(st4 != CT_OK);
    CHECK_CONTAINS(e4.msg, "duplicate tensor name 't'");
    CHECK(st5 != CT_OK);
}

// ---------------------------------------------------------------- malformed files

typedef struct bytes {
    uint8_t d[1024];
    size_t n;
} bytes;

static void put_le(bytes *b, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        b->d[b->n++] = (uint8_t)(v >> (8 * i));
}
static void put_str(bytes *b, const char *s) {
    put_le(b, strlen(s), 8);
    memcpy(b->d + b->n, s, strlen(s));
    b->n += strlen(s);
}
static void header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    memcpy(b->d, "GGUF", 4);
    b->n = 4;
    put_le(b, version, 4);
    put_le(b, n_tensors, 8);
    put_le(b, n_kv, 8);
}
static void kv_u32(bytes *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_le(b, CT_GGUF_U32, 4);
    put_le(b, v, 4);
}
// A tensor description with ndim dims from ne.
static void tensor_info(bytes *b, const char *name, uint32_t ndim, const uint64_t *ne, uint32_t type, uint64_t off) {
    put_str(b, name);
    put_le(b, ndim, 4);
    for (uint32_t d = 0; d < ndim; d++)
        put_le(b, ne[d], 8);
    put_le(b, type, 4);
    put_le(b, off, 8);
}
// Pads to 32 and appends n data bytes.
static void data(bytes *b, size_t n) {
    while (b->n % 32)
        b->d[b->n++] = 0;
    memset(b->d + b->n, 0x11, n);
    b->n += n;
}

// Opens the bytes as a file; the open must fail with a message containing needle and the file name.
static void expect_error(const bytes *b, const char *needle) {
    const char *p = ct_test_write_tmp("bad.gguf", b->d, b->n);
    char path[600];
    snprintf(path, sizeof path, "%s", p);
    ct_error err;
    ct_gguf g;
    CHECK_FAILS(ct_gguf_open(&g, path, &err), &err, needle);
    CHECK_CONTAINS(err.msg, "bad.gguf: ");
}

TEST(malformed_bad_magic) {
    bytes b;
    header(&b, 3, 0, 0);
    b.d[0] = 'X';
    expect_error(&b, "bad magic");
}
TEST(malformed_too_small) {
    bytes b = {.d = "GGUF", .n = 6};
    expect_error(&b, "too small to be a GGUF file");
}
TEST(malformed_version_1) {
    bytes b;
    header(&b, 1, 0, 0);
    expect_error(&b, "unsupported GGUF version 1");
}
TEST(malformed_version_4) {
    bytes b;
    header(&b, 4, 0, 0);
    expect_error(&b, "unsupported GGUF version 4");
}
TEST(malformed_big_endian) {
    bytes b;
    header(&b, 0x03000000u, 0, 0);
    expect_error(&b, "big-endian GGUF files are not supported");
}
TEST(malformed_kv_count_too_big) {
    bytes b;
    header(&b, 3, 0, 1000);
    expect_error(&b, "metadata count 1000 cannot fit in the file");
}
TEST(malformed_tensor_count_too_big) {
    bytes b;
    header(&b, 3, UINT64_MAX, 0);
    expect_error(&b, "tensor count 18446744073709551615 cannot fit in the file");
}
TEST(malformed_key_length_past_eof) {
    bytes b;
    header(&b, 3, 0, 1);
    put_le(&b, 5000, 8);
    put_le(&b, 0, 8);
    expect_error(&b, "metadata key at offset 24: length 5000 runs past the end of the file");
}
TEST(malformed_unknown_value_type) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.x");
    put_le(&b, 13, 4);
    put_le(&b, 0, 8);
    expect_error(&b, "key 'k.x' (offset 24): unknown value type 13");
}
TEST(malformed_nested_array) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.nest");
    put_le(&b, CT_GGUF_ARRAY, 4);
    put_le(&b, CT_GGUF_ARRAY, 4);
    put_le(&b, 1, 8);
    put_le(&b, 0, 8);
    expect_error(&b, "key 'k.nest': nested arrays (array of arrays) are not supported");
}
TEST(malformed_unknown_array_element_type) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.arr");
    put_le(&b, CT_GGUF_ARRAY, 4);
    put_le(&b, 77, 4);
    put_le(&b, 1, 8);
    expect_error(&b, "key 'k.arr': unknown array element type 77");
}
TEST(malformed_array_count_past_eof) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.arr");
    put_le(&b, CT_GGUF_ARRAY, 4);
    put_le(&b, CT_GGUF_F32, 4);
    put_le(&b, 1ull << 62, 8);
    put_le(&b, 0, 8);
    expect_error(&b, "key 'k.arr': 4611686018427387904 f32 values cannot fit in the file");
}
TEST(malformed_string_array_element_past_eof) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.strs");
    put_le(&b, CT_GGUF_ARRAY, 4);
    put_le(&b, CT_GGUF_STRING, 4);
    put_le(&b, 2, 8);
    put_str(&b, "ok");
    put_le(&b, 99, 8);
    put_le(&b, 0, 4);
    expect_error(&b, "key 'k.strs' element 1: string at offset");
}
TEST(malformed_string_value_past_eof) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.s");
    put_le(&b, CT_GGUF_STRING, 4);
    put_le(&b, 1u << 20, 8);
    expect_error(&b, "length 1048576 runs past the end of the file");
}
TEST(malformed_truncated_value) {
    bytes b;
    header(&b, 3, 0, 1);
    put_str(&b, "k.u64");
    put_le(&b, CT_GGUF_U64, 4);
    put_le(&b, 7, 4);
    put_le(&b, 0, 1); // a u64 value needs 8 bytes; only 5 remain
    expect_error(&b, "key 'k.u64': 1 u64 values cannot fit in the file");
}
TEST(malformed_duplicate_key) {
    bytes b;
    header(&b, 3, 0, 2);
    kv_u32(&b, "k.dup", 1);
    kv_u32(&b, "k.dup", 2);
    expect_error(&b, "duplicate metadata key 'k.dup'");
}
TEST(malformed_bad_alignment) {
    bytes b;
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_error(&b, "'general.alignment' must be a u32 power of two");
}
TEST(malformed_unknown_tensor_type) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {32};
    tensor_info(&b, "w.odd", 1, ne, 42, 0);
    data(&b, 128);
    expect_error(&b, "tensor 'w.odd': unknown ggml type 42");
}
TEST(malformed_ndim_too_big) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[5] = {1, 1, 1, 1, 1};
    tensor_info(&b, "w.5d", 5, ne, CT_GGML_F32, 0);
    data(&b, 32);
    expect_error(&b, "tensor 'w.5d': ndim 5 is not in 1..4");
}
TEST(malformed_zero_dim) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[2] = {4, 0};
    tensor_info(&b, "w.zero", 2, ne, CT_GGML_F32, 0);
    data(&b, 32);
    expect_error(&b, "tensor 'w.zero': dimension 1 is 0 (must be positive)");
}
TEST(malformed_negative_dim) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {(uint64_t)-4};
    tensor_info(&b, "w.neg", 1, ne, CT_GGML_F32, 0);
    data(&b, 32);
    expect_error(&b, "tensor 'w.neg': dimension 0 is -4 (must be positive)");
}
TEST(malformed_element_count_overflow) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[3] = {1ull << 32, 1ull << 20, 1ull << 20};
    tensor_info(&b, "w.huge", 3, ne, CT_GGML_F32, 0);
    data(&b, 32);
    expect_error(&b, "tensor 'w.huge': element count overflows");
}
TEST(malformed_row_not_multiple_of_block) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[2] = {100, 2};
    tensor_info(&b, "w.q", 2, ne, CT_GGML_Q4_K, 0);
    data(&b, 320);
    expect_error(&b, "tensor 'w.q': row of 100 elements is not a multiple of the Q4_K block size 256");
}
TEST(malformed_misaligned_offset) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {4};
    tensor_info(&b, "w.mis", 1, ne, CT_GGML_F32, 8);
    data(&b, 64);
    expect_error(&b, "tensor 'w.mis': offset 8 is not a multiple of the alignment 32");
}
TEST(malformed_data_past_eof) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {64};
    tensor_info(&b, "w.short", 1, ne, CT_GGML_F32, 0);
    data(&b, 100);
    expect_error(&b, "tensor 'w.short': data (offset 0, 256 bytes) runs past the end of the file");
}
TEST(malformed_huge_offset) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {8};
    tensor_info(&b, "w.far", 1, ne, CT_GGML_F32, UINT64_MAX - 31);
    data(&b, 32);
    expect_error(&b, "tensor 'w.far': data (offset 18446744073709551584, 32 bytes) runs past the end");
}
TEST(malformed_overlapping_tensors) {
    bytes b;
    header(&b, 3, 2, 0);
    uint64_t ne[1] = {16};
    tensor_info(&b, "w.a", 1, ne, CT_GGML_F32, 0);
    tensor_info(&b, "w.b", 1, ne, CT_GGML_F32, 32);
    data(&b, 128);
    expect_error(&b, "tensors 'w.a' and 'w.b' overlap");
}
TEST(malformed_duplicate_tensor) {
    bytes b;
    header(&b, 3, 2, 0);
    uint64_t ne[1] = {8};
    tensor_info(&b, "w.same", 1, ne, CT_GGML_F32, 0);
    tensor_info(&b, "w.same", 1, ne, CT_GGML_F32, 32);
    data(&b, 64);
    expect_error(&b, "duplicate tensor name 'w.same'");
}
TEST(malformed_missing_data_section) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[1] = {8};
    tensor_info(&b, "w.none", 1, ne, CT_GGML_F32, 0);
    b.d[b.n++] = 0; // file ends before the padded data section starts
    expect_error(&b, "data section (offset 64) starts past the end of the file");
}
TEST(malformed_truncated_tensor_info) {
    bytes b;
    header(&b, 3, 1, 0);
    uint64_t ne[2] = {8, 2};
    tensor_info(&b, "w.cut", 2, ne, CT_GGML_F32, 0);
    b.n -= 14; // cut inside the second dimension
    put_le(&b, 0, 8);
    expect_error(&b, "tensor 'w.cut': tensor");
}
TEST(missing_file) {
    ct_error err;
    ct_gguf g;
    CHECK_FAILS(ct_gguf_open(&g, "/nonexistent/x.gguf", &err), &err, "/nonexistent/x.gguf: cannot open");
}

// A well-formed minimal file with one tensor opens (the builder itself is right).
TEST(minimal_built_file_opens) {
    bytes b;
    header(&b, 3, 1, 1);
    kv_u32(&b, "k.one", 1);
    uint64_t ne[2] = {32, 2};
    tensor_info(&b, "w.ok", 2, ne, CT_GGML_Q8_0, 0);
    data(&b, 68);
    const char *p = ct_test_write_tmp("ok.gguf", b.d, b.n);
    ct_error err;
    ct_gguf g;
    CHECK_OK(ct_gguf_open(&g, p, &err), &err);
    CHECK_EQ(ct_gguf_find_tensor(&g, "w.ok")->nbytes, 68);
    ct_gguf_close(&g);
}

// Every prefix and random byte corruptions of real files: errors, never crashes
// (the sanitizer build checks for out-of-bounds reads, UB and leaks).
TEST(fuzz_truncations_and_corruptions) {
    static const char *files[2] = {"gguf/meta.gguf", "gguf/types.gguf"};
    int opened = 0, failed = 0;
    uint32_t rng = 12345;
    for (int fi = 0; fi < 2; fi++) {
        char *buf = NULL;
        size_t len = 0;
        ct_error err;
        CHECK_OK(ct_read_file(ct_test_fixture(files[fi]), &buf, &len, &err), &err);
        for (size_t cut = 0; cut < len; cut += cut < 600 ? 1 : 211) {
            const char *p = ct_test_write_tmp("fuzz.gguf", buf, cut);
            ct_gguf g;
            if (ct_gguf_open(&g, p, &err) == CT_OK) {
                opened++;
                ct_gguf_close(&g);
            } else {
                failed++;
            }
        }
        char *copy = malloc(len);
        for (int iter = 0; iter < 400; iter++) {
            memcpy(copy, buf, len);
            for (int k = 0; k < 4; k++) {
                rng = rng * 1103515245u + 12345u;
                size_t at = (rng >> 8) % (len < 1200 ? len : 1200); // the header is where parsing happens
                rng = rng * 1103515245u + 12345u;
                copy[at] = (char)(rng >> 16);
            }
            const char *p = ct_test_write_tmp("fuzz.gguf", copy, len);
            ct_gguf g;
            if (ct_gguf_open(&g, p, &err) == CT_OK) {
                opened++;
                ct_gguf_close(&g);
            } else {
                failed++;
            }
        }
        free(copy);
        free(buf);
    }
    CHECK(failed > 600);
    CHECK(opened + failed > 1000);
}
