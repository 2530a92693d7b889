// harness.h: the unit-test harness. Each test file defines TEST(name) blocks;
// they register themselves at load time (no central list to edit). A test
// passes when it made at least one check and none failed: a test that asserts
// nothing is reported as a failure.
#ifndef CTUNE_TEST_HARNESS_H
#define CTUNE_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctune/error.h"

typedef void (*ct_test_fn)(void);
void ct_test_register(const char *name, const char *file, ct_test_fn fn);
void ct_test_check_failed(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ct_test_check_passed(void);
// Path of a committed fixture: "tests/fixtures/<name>" (tests run from the repo root).
const char *ct_test_fixture(const char *name);
// A fresh temporary directory for this test run (removed at exit).
const char *ct_test_tmpdir(void);
// Writes bytes to <tmpdir>/<name> and returns the path (static buffer per call site: copy it).
const char *ct_test_write_tmp(const char *name, const void *data, size_t len);

#define TEST(name)                                                                    \
    static void name(void);                                                           \
    __attribute__((constructor)) static void ct_register_##name(void) {               \
        ct_test_register(#name, __FILE__, name);                                      \
    }                                                                                 \
    static void name(void)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        if (!(cond)) {                                                                \
            ct_test_check_failed(__FILE__, __LINE__, __VA_ARGS__);                    \
            return;                                                                   \
        }                                                                             \
        ct_test_check_passed();                                                       \
    } while (0)

#define CHECK(cond) CHECK_MSG(cond, "%s", #cond)
#define CHECK_EQ(a, b) \
    CHECK_MSG((a) == (b), "%s == %s (%lld vs %lld)", #a, #b, (long long)(a), (long long)(b))
#define CHECK_NEAR(a, b, tol) \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%s ~ %s (%.9g vs %.9g, tol %g)", #a, #b, (double)(a), (double)(b), (double)(tol))
#define CHECK_STREQ(a, b) \
    CHECK_MSG(strcmp((a), (b)) == 0, "%s == %s (\"%s\" vs \"%s\")", #a, #b, (a), (b))
#define CHECK_CONTAINS(hay, needle) \
    CHECK_MSG(strstr((hay), (needle)) != NULL, "\"%s\" should contain \"%s\"", (hay), (needle))
// A call that must succeed: on failure the error message is shown.
#define CHECK_OK(call, errp)                                                          \
    do {                                                                              \
        ct_status ct_s_ = (call);                                                     \
        CHECK_MSG(ct_s_ == CT_OK, "%s failed: %s", #call, (errp)->msg);               \
    } while (0)
// A call that must fail with a message containing needle.
#define CHECK_FAILS(call, errp, needle)                                               \
    do {                                                                              \
        (errp)->msg[0] = 0;                                                           \
        ct_status ct_s_ = (call);                                                     \
        CHECK_MSG(ct_s_ != CT_OK, "%s should have failed", #call);                    \
        CHECK_CONTAINS((errp)->msg, (needle));                                        \
    } while (0)

#endif
