// Unit tests for the Jinja interpreter: every template in
// tests/fixtures/jinja/cases.json (made by tools/make_jinja_fixtures.py with
// Python Jinja2 configured as transformers does) must render byte for byte;
// every syntax and runtime error kind gives its message and line:col.
#include <stdlib.h>

#include "ctune/fs.h"
#include "ctune/jinja.h"
#include "ctune/json.h"
#include "harness.h"

// Renders src with ctx (a JSON object text); returns the output or NULL (err set).
static char *render(const char *src, const char *ctx_json, ct_error *err) {
    ct_jinja_template *t;
    if (ct_jinja_compile(&t, src, strlen(src), "t.jinja", err) != CT_OK)
        return NULL;
    cJSON *ctx = cJSON_Parse(ctx_json);
    char *out = NULL;
    ct_jinja_render(t, ctx, &out, err);
    cJSON_Delete(ctx);
    ct_jinja_free(t);
    return out;
}

static ct_status compile_error(const char *src, ct_error *err) {
    ct_jinja_template *t = NULL;
    ct_status st = ct_jinja_compile(&t, src, strlen(src), "t.jinja", err);
    ct_jinja_free(t);
    return st;
}

// Renders one fixture case on each of its contexts; counts mismatches.
static int check_case(const cJSON *c, const cJSON *contexts, int *renderings) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *src = cJSON_GetObjectItem(c, "template")->valuestring;
    ct_error err;
    ct_jinja_template *t;
    if (ct_jinja_compile(&t, src, strlen(src), name, &err) != CT_OK) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        return 1;
    }
    int bad = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(c, "results")) {
        int ci = cJSON_GetObjectItem(r, "context")->valueint;
        const cJSON *ok = cJSON_GetObjectItem(r, "ok"), *error = cJSON_GetObjectItem(r, "error");
        char *out = NULL;
        ct_status st = ct_jinja_render(t, cJSON_GetArrayItem(contexts, ci), &out, &err);
        (*renderings)++;
        if (ok && (st != CT_OK || strcmp(out, ok->valuestring) != 0)) {
            fprintf(stderr, "  %s (context %d): expected\n%s\n  got\n%s\n", name, ci, ok->valuestring, st == CT_OK ? out : err.msg);
            bad++;
        } else if (error && (st == CT_OK || !strstr(err.msg, error->valuestring))) {
            fprintf(stderr, "  %s (context %d): expected error \"%s\", got \"%s\"\n", name, ci, error->valuestring, st == CT_OK ? out : err.msg);
            bad++;
        }
        free(out);
    }
    ct_jinja_free(t);
    return bad;
}

TEST(jinja_fixtures_render_like_python_jinja2) {
    ct_error err;
    cJSON *fx;
    CHECK_OK(ct_json_load_file(ct_test_fixture("jinja/cases.json"), &fx, &err), &err);
    const cJSON *contexts = cJSON_GetObjectItem(fx, "contexts"), *c;
    int bad = 0, cases = 0, renderings = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases")) {
        bad += check_case(c, contexts, &renderings);
        cases++;
    }
    cJSON_Delete(fx);
    CHECK(cases >= 70);
    CHECK(renderings >= 200);
    CHECK_MSG(bad == 0, "%d of %d renderings differ from Python Jinja2", bad, renderings);
}

TEST(jinja_fixture_comparison_catches_a_one_byte_change) {
    ct_error err;
    char *out = render("{{ messages[0].content }}{{ '\\n' if add_generation_prompt }}", "{\"messages\":[{\"content\":\"hi\"}],\"add_generation_prompt\":true}", &err);
    CHECK(out != NULL);
    CHECK_STREQ(out, "hi\n");
    CHECK(strcmp(out, "hi") != 0);
    free(out);
}

TEST(jinja_integer_vs_float_context_values) {
    ct_error err;
    char *out = render("{{ a }} {{ b }} {{ c }} {{ d }}", "{\"a\": 3, \"b\": 2.5, \"c\": 1e300, \"d\": null}", &err);
    CHECK(out != NULL);
    CHECK_STREQ(out, "3 2.5 1e+300 None");
    free(out);
}

// ---- syntax errors: one per kind, with line:col
TEST(jinja_syntax_unknown_tag) {
    ct_error err;
    CHECK_FAILS(compile_error("x\n  {% frobnicate %}", &err), &err, "t.jinja:2:6: Encountered unknown tag 'frobnicate'.");
}

TEST(jinja_syntax_unclosed_block) {
    ct_error err;
    CHECK_FAILS(compile_error("{% for x in y %}\nbody", &err), &err, "t.jinja:2:5: unexpected end of template, expected 'endfor'");
}

TEST(jinja_syntax_unclosed_if) {
    ct_error err;
    CHECK_FAILS(compile_error("{% if a %}{% else %}", &err), &err, "t.jinja:1:21: unexpected end of template, expected 'endif'");
}

TEST(jinja_syntax_stray_end_tag) {
    ct_error err;
    CHECK_FAILS(compile_error("{% endif %}", &err), &err, "t.jinja:1:4: Encountered unknown tag 'endif'.");
}

TEST(jinja_syntax_expected_end_of_print) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ a b }}", &err), &err, "t.jinja:1:6: expected end of print statement, got 'b'");
}

TEST(jinja_syntax_unknown_filter) {
    ct_error err;
    CHECK_FAILS(compile_error("\n{{ x | nosuchfilter }}", &err), &err, "t.jinja:2:8: No filter named 'nosuchfilter'.");
}

TEST(jinja_syntax_unknown_test) {
    ct_error err;
    CHECK_FAILS(compile_error("{% if x is nosuchtest %}{% endif %}", &err), &err, "t.jinja:1:12: No test named 'nosuchtest'.");
}

TEST(jinja_syntax_unterminated_string) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ 'abc }}", &err), &err, "t.jinja:1:4: unexpected end of string literal");
}

TEST(jinja_syntax_unclosed_comment) {
    ct_error err;
    CHECK_FAILS(compile_error("a {# never closed", &err), &err, "t.jinja:1:3: missing end of comment tag");
}

TEST(jinja_syntax_unclosed_tag) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ a ", &err), &err, "t.jinja:1:3: unexpected end of template, expected '}}'");
}

TEST(jinja_syntax_unexpected_char) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ a ? b }}", &err), &err, "t.jinja:1:6: unexpected char '?'");
}

TEST(jinja_syntax_unbalanced_bracket) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ (a] }}", &err), &err, "t.jinja:1:6: unexpected ']'");
}

TEST(jinja_syntax_missing_endraw) {
    ct_error err;
    CHECK_FAILS(compile_error("{% raw %}abc", &err), &err, "t.jinja:1:1: missing end of raw directive");
}

TEST(jinja_syntax_bad_expression) {
    ct_error err;
    CHECK_FAILS(compile_error("{% set x = %}", &err), &err, "t.jinja:1:12: expected an expression, got end of statement block");
}

TEST(jinja_syntax_chained_tests) {
    ct_error err;
    CHECK_FAILS(compile_error("{{ a is eq is b }}", &err), &err, "You cannot chain multiple tests with is");
}

// ---- runtime errors
static void expect_runtime_error(const char *src, const char *needle, int *ok) {
    ct_error err;
    err.msg[0] = 0;
    char *out = render(src, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &err);
    *ok = out == NULL && strstr(err.msg, needle) != NULL;
    if (!*ok)
        fprintf(stderr, "  %s: got \"%s\"\n", src, out ? out : err.msg);
    free(out);
}

TEST(jinja_runtime_raise_exception_is_the_message) {
    ct_error err;
    char *out = render("{{ raise_exception('Roles must alternate') }}", "{}", &err);
    CHECK(out == NULL);
    CHECK_STREQ(err.msg, "Roles must alternate");
}

TEST(jinja_runtime_undefined_attribute) {
    int ok;
    expect_runtime_error("\n  {{ messages[0].nope.x }}", "t.jinja:2:23: 'dict object' has no attribute 'nope'", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_undefined_name) {
    int ok;
    expect_runtime_error("{{ foo.bar }}", "t.jinja:1:8: 'foo' is undefined", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_undefined_method) {
    int ok;
    expect_runtime_error("{{ 'abc'.nosuch() }}", "'str object' has no attribute 'nosuch'", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_type_error) {
    int ok;
    expect_runtime_error("{{ 'a' + 1 }}", "t.jinja:1:8: can only concatenate str (not \"int\") to str", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_sandbox_refuses_list_append) {
    int ok;
    expect_runtime_error("{% set xs = [] %}{{ xs.append(1) }}", "access to attribute 'append' of 'list' object is unsafe.", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_set_attribute_on_non_namespace) {
    int ok;
    expect_runtime_error("{% set d = {} %}{% set d.x = 1 %}", "cannot assign attribute on non-namespace object", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_not_iterable) {
    int ok;
    expect_runtime_error("{% for x in 3 %}{% endfor %}", "'int' object is not iterable", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_ordering_error) {
    int ok;
    expect_runtime_error("{{ 'a' < 1 }}", "'<' not supported between instances of 'str' and 'int'", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_not_callable) {
    int ok;
    expect_runtime_error("{{ messages() }}", "'list' object is not callable", &ok);
    CHECK(ok);
}

TEST(jinja_runtime_macro_recursion_is_bounded) {
    int ok;
    expect_runtime_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "maximum macro recursion depth exceeded", &ok);
    CHECK(ok);
}

TEST(jinja_render_rejects_non_object_context) {
    ct_jinja_template *t;
    ct_error err;
    CHECK_OK(ct_jinja_compile(&t, "x", 1, "t.jinja", &err), &err);
    cJSON *arr = cJSON_CreateArray();
    char *out;
    CHECK_FAILS(ct_jinja_render(t, arr, &out, &err), &err, "must be a JSON object");
    cJSON_Delete(arr);
    ct_jinja_free(t);
}
