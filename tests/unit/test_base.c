// Unit tests for src/base: errors, files, JSON glue, the hash map, progress.
#include <stdlib.h>
#include <sys/stat.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/progress.h"
#include "ctune/strmap.h"
#include "ctune/utf8.h"
#include "harness.h"

TEST(error_context_prefixes_message) {
    ct_error err;
    CHECK_EQ(ct_fail(&err, CT_ERR_FORMAT, "bad value %d", 7), CT_ERR_FORMAT);
    ct_error_context(&err, "config.json");
    CHECK_STREQ(err.msg, "config.json: bad value 7");
    CHECK_EQ(err.status, CT_ERR_FORMAT);
}

TEST(error_context_skips_a_path_already_named) {
    ct_error err;
    ct_fail(&err, CT_ERR_IO, "/m: not a model folder");
    ct_error_context(&err, "/m");
    CHECK_STREQ(err.msg, "/m: not a model folder");
    ct_fail(&err, CT_ERR_FORMAT, "/m/config.json: bad");
    ct_error_context(&err, "/m");
    CHECK_STREQ(err.msg, "/m/config.json: bad");
    ct_fail(&err, CT_ERR_FORMAT, "/mx/config.json: bad");
    ct_error_context(&err, "/m");
    CHECK_STREQ(err.msg, "/m: /mx/config.json: bad");
}

TEST(read_file_missing_names_path) {
    ct_error err;
    char *buf;
    CHECK_FAILS(ct_read_file("/nonexistent/x.json", &buf, NULL, &err), &err, "/nonexistent/x.json: cannot open");
}

TEST(atomic_write_replaces_and_leaves_no_temp) {
    ct_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/atomic.txt", ct_test_tmpdir());
    CHECK_OK(ct_write_file_atomic(path, "one", 3, &err), &err);
    CHECK_OK(ct_write_file_atomic(path, "second", 6, &err), &err);
    char *buf;
    size_t n;
    CHECK_OK(ct_read_file(path, &buf, &n, &err), &err);
    CHECK_EQ(n, 6);
    CHECK_STREQ(buf, "second");
    free(buf);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(!ct_path_exists(tmp));
}

TEST(atomic_abort_keeps_old_file) {
    ct_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/keep.txt", ct_test_tmpdir());
    CHECK_OK(ct_write_file_atomic(path, "old", 3, &err), &err);
    ct_atomic_file w;
    CHECK_OK(ct_atomic_begin(&w, path, &err), &err);
    fputs("partial new content", w.f);
    ct_atomic_abort(&w);
    char *buf;
    CHECK_OK(ct_read_file(path, &buf, NULL, &err), &err);
    CHECK_STREQ(buf, "old");
    free(buf);
    CHECK(!ct_path_exists(w.tmp));
}

TEST(atomic_write_to_missing_dir_fails) {
    ct_error err;
    CHECK_FAILS(ct_write_file_atomic("/nonexistent-dir/x.bin", "a", 1, &err), &err, "cannot create");
}

TEST(mkdir_p_nested) {
    ct_error err;
    char path[1024];
    snprintf(path, sizeof path, "%s/a/b/c", ct_test_tmpdir());
    CHECK_OK(ct_mkdir_p(path, &err), &err);
    CHECK(ct_is_dir(path));
    CHECK_OK(ct_mkdir_p(path, &err), &err);
}

TEST(json_parse_error_has_line_and_column) {
    ct_error err;
    cJSON *j;
    const char *text = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    CHECK_FAILS(ct_json_parse(text, strlen(text), "x.json", &j, &err), &err, "x.json:3:");
    CHECK_CONTAINS(err.msg, "malformed JSON");
}

TEST(json_trailing_garbage_rejected) {
    ct_error err;
    cJSON *j;
    CHECK_FAILS(ct_json_parse("{} x", 4, "t.json", &j, &err), &err, "trailing data");
}

TEST(json_typed_getters) {
    ct_error err;
    cJSON *j;
    const char *text = "{\"n\": 12, \"f\": 1.5, \"s\": \"hi\", \"b\": true, \"z\": null}";
    CHECK_OK(ct_json_parse(text, strlen(text), "t", &j, &err), &err);
    int64_t n = -1, missing = 42;
    double f = 0;
    const char *s = NULL;
    bool b = false;
    CHECK_OK(ct_json_int(j, "n", &n, &err), &err);
    CHECK_EQ(n, 12);
    CHECK_OK(ct_json_int(j, "absent", &missing, &err), &err);
    CHECK_EQ(missing, 42);
    CHECK_OK(ct_json_int(j, "z", &missing, &err), &err);
    CHECK_EQ(missing, 42);
    CHECK_OK(ct_json_double(j, "f", &f, &err), &err);
    CHECK_NEAR(f, 1.5, 0);
    CHECK_OK(ct_json_string(j, "s", &s, &err), &err);
    CHECK_STREQ(s, "hi");
    CHECK_OK(ct_json_bool(j, "b", &b, &err), &err);
    CHECK(b);
    CHECK_FAILS(ct_json_int(j, "f", &n, &err), &err, "\"f\" must be an integer, got a number");
    CHECK_FAILS(ct_json_int(j, "s", &n, &err), &err, "got a string");
    CHECK_FAILS(ct_json_need_int(j, "absent", &n, &err), &err, "missing required \"absent\"");
    cJSON_Delete(j);
}

TEST(strmap_put_get_grow) {
    ct_error err;
    ct_strmap m;
    ct_strmap_init(&m);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "key%d", i);
        bool fresh;
        CHECK_OK(ct_strmap_puts(&m, key, i * 3, &fresh, &err), &err);
        CHECK(fresh);
    }
    CHECK_EQ(m.len, 5000);
    int64_t v;
    CHECK(ct_strmap_gets(&m, "key4321", &v));
    CHECK_EQ(v, 4321 * 3);
    CHECK(!ct_strmap_gets(&m, "key5000", &v));
    bool fresh = true;
    CHECK_OK(ct_strmap_puts(&m, "key7", -1, &fresh, &err), &err);
    CHECK(!fresh);
    CHECK(ct_strmap_gets(&m, "key7", &v));
    CHECK_EQ(v, -1);
    // keys with embedded NUL bytes are distinct
    CHECK_OK(ct_strmap_put(&m, "a\0b", 3, 99, NULL, &err), &err);
    CHECK(ct_strmap_get(&m, "a\0b", 3, &v));
    CHECK_EQ(v, 99);
    CHECK(!ct_strmap_get(&m, "a", 1, &v));
    ct_strmap_free(&m);
}

TEST(progress_render_shows_counts_and_eta) {
    ct_progress p;
    ct_progress_begin(&p, "quantize", 200);
    p.t_start = 100.0;
    p.done = 50;
    char line[256];
    ct_progress_render(&p, 110.0, line, sizeof line);
    CHECK_CONTAINS(line, "quantize [");
    CHECK_CONTAINS(line, "50/200");
    CHECK_CONTAINS(line, "25.0%");
    CHECK_CONTAINS(line, "5.00/s");
    CHECK_CONTAINS(line, "eta 30.0s");
    char d[32];
    CHECK_STREQ(ct_format_duration(3725, d, sizeof d), "1h02m05s");
    CHECK_STREQ(ct_format_duration(125, d, sizeof d), "2m05s");
}

TEST(utf8_validation) {
    uint32_t cp;
    CHECK_EQ(ct_utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    CHECK_EQ(cp, 0x20ac);
    CHECK_EQ(ct_utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp), 0);         // overlong
    CHECK_EQ(ct_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);     // surrogate
    CHECK_EQ(ct_utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0); // > U+10FFFF
    CHECK_EQ(ct_utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp), 0);         // truncated
    CHECK_EQ(ct_utf8_invalid_at("ok \xf0\x9f\x98\x80 then \xff", 14), 13);
    CHECK_EQ(ct_utf8_invalid_at("all good", 8), 8);
}
