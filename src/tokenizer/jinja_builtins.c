// jinja_builtins.c: Jinja2's filters and tests, the Python methods templates
// call on str, dict and list, and the globals transformers provides
// (range, namespace, dict, raise_exception, strftime_now).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_internal.h"

enum { MAX_PARAMS = 8, MAX_RANGE = 100000 };

typedef struct jargs {
    jv v[MAX_PARAMS];
    bool set[MAX_PARAMS];
} jargs;

static bool name_is(const char *a, const char *b) { return strcmp(a, b) == 0; }

// Binds positional and keyword arguments to names (NULL-terminated list).
static ct_status bind(jrender *r, const jnode *at, const char *fname, const char *const *names, const jv *args, size_t nargs,
                      const jkwarg *kw, size_t nkw, jargs *out) {
    size_t np = 0;
    while (names[np])
        np++;
    memset(out, 0, sizeof *out);
    if (nargs > np)
        return jr_fail(r, at, "%s() takes at most %zu argument(s) (%zu given)", fname, np, nargs);
    for (size_t i = 0; i < nargs; i++) {
        out->v[i] = args[i];
        out->set[i] = true;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < np && !name_is(names[i], kw[k].name))
            i++;
        if (i == np)
            return jr_fail(r, at, "%s() got an unexpected keyword argument '%s'", fname, kw[k].name);
        if (out->set[i])
            return jr_fail(r, at, "%s() got multiple values for argument '%s'", fname, kw[k].name);
        out->v[i] = kw[k].v;
        out->set[i] = true;
    }
    return CT_OK;
}

static jv arg_or(const jargs *a, size_t i, jv dflt) { return a->set[i] ? a->v[i] : dflt; }

static ct_status need_str(jrender *r, const jnode *at, jv v, const char *what) {
    if (v.kind != JV_STR)
        return jr_fail(r, at, "%s must be str, not %s", what, jv_type_name(v));
    return CT_OK;
}

static ct_status need_int(jrender *r, const jnode *at, jv v, const char *what, int64_t *out) {
    if (v.kind == JV_INT)
        *out = v.u.i;
    else if (v.kind == JV_BOOL)
        *out = v.u.b;
    else
        return jr_fail(r, at, "%s: '%s' object cannot be interpreted as an integer", what, jv_type_name(v));
    return CT_OK;
}

static ct_status nomem(jrender *r, const jnode *at) { return jr_fail(r, at, "out of memory"); }

static jv list_v(jlist *l) {
    jv v = {.kind = JV_LIST, .u.l = l};
    return v;
}
static jv tuple2(jarena *a, jv x, jv y) {
    jlist *l = jl_new(a, 2);
    jv v = {.kind = JV_TUPLE, .u.l = l};
    if (l) {
        jl_push(a, l, x);
        jl_push(a, l, y);
    }
    return v;
}

static jv to_str_v(jrender *r, jv v) {
    if (v.kind == JV_STR)
        return v;
    jbuf b = {0};
    jv_to_str(v, &b);
    return jv_str_from_buf(jr_arena(r), &b);
}

// Looks up "a.b.0" the way Jinja's make_attrgetter does (integers index).
static ct_status attr_path(jrender *r, const jnode *at, jv obj, jv path, jv *out) {
    if (path.kind == JV_INT)
        return jr_getitem(r, at, obj, path, out);
    if (path.kind != JV_STR)
        return jr_fail(r, at, "attribute must be a string");
    const char *p = path.u.s.p, *end = p + path.u.s.n;
    *out = obj;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *e = dot ? dot : end;
        bool digits = e > p;
        for (const char *q = p; q < e; q++)
            digits = digits && *q >= '0' && *q <= '9';
        jv key = digits ? jv_int(strtoll(p, NULL, 10)) : jv_str(p, (size_t)(e - p));
        CT_TRY(jr_getitem(r, at, *out, key, out));
        if (!dot)
            break;
        p = dot + 1;
    }
    return CT_OK;
}

// ---- sorting (stable; Python's "<" with Jinja's case folding)
typedef struct sort_ctx {
    jrender *r;
    const jnode *at;
    bool case_sensitive;
    bool failed;
} sort_ctx;

static jv fold(jrender *r, jv v, bool case_sensitive) {
    return !case_sensitive && v.kind == JV_STR ? jstr_lower(jr_arena(r), v) : v;
}

static bool key_lt(sort_ctx *c, jv a, jv b) {
    bool ok;
    bool lt = jv_lt(a, b, &ok);
    if (!ok && !c->failed) {
        c->failed = true;
        jr_fail(c->r, c->at, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
    }
    return lt;
}

// Sorts items by keys (same length) in place; reverse keeps stability like Python.
static ct_status stable_sort(sort_ctx *c, jv *keys, jv *items, size_t n, bool reverse) {
    for (size_t i = 1; i < n && !c->failed; i++) {
        jv k = keys[i], it = items[i];
        size_t j = i;
        while (j > 0 && (reverse ? key_lt(c, keys[j - 1], k) : key_lt(c, k, keys[j - 1]))) {
            keys[j] = keys[j - 1];
            items[j] = items[j - 1];
            j--;
        }
        keys[j] = k;
        items[j] = it;
    }
    return c->failed ? CT_ERR_INVALID : CT_OK;
}

static ct_status copy_items(jrender *r, const jnode *at, jv v, jlist **out) {
    jlist *src;
    CT_TRY(jr_iter(r, at, v, &src));
    jlist *l = jl_new(jr_arena(r), src->n + 1);
    if (!l)
        return nomem(r, at);
    for (size_t i = 0; i < src->n; i++)
        jl_push(jr_arena(r), l, src->v[i]);
    *out = l;
    return CT_OK;
}

static ct_status filter_sort(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jlist *l;
    CT_TRY(copy_items(r, at, v, &l));
    jv *keys = jar_alloc(jr_arena(r), (l->n + 1) * sizeof(jv));
    if (!keys)
        return nomem(r, at);
    bool cs = jv_truthy(arg_or(a, 1, jv_bool(false)));
    for (size_t i = 0; i < l->n; i++) {
        jv k = l->v[i];
        if (a->set[2] && a->v[2].kind != JV_NONE)
            CT_TRY(attr_path(r, at, k, a->v[2], &k));
        keys[i] = fold(r, k, cs);
    }
    sort_ctx c = {r, at, cs, false};
    CT_TRY(stable_sort(&c, keys, l->v, l->n, jv_truthy(arg_or(a, 0, jv_bool(false)))));
    *out = list_v(l);
    return CT_OK;
}

static ct_status filter_dictsort(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    if (v.kind != JV_DICT)
        return jr_fail(r, at, "You can only sort by either \"key\" or \"value\"");
    jlist *l = jl_new(jr_arena(r), v.u.d->n + 1);
    jv *keys = jar_alloc(jr_arena(r), (v.u.d->n + 1) * sizeof(jv));
    if (!l || !keys)
        return nomem(r, at);
    bool cs = jv_truthy(arg_or(a, 0, jv_bool(false)));
    jv by = arg_or(a, 1, jv_str("key", 3));
    bool by_value = by.kind == JV_STR && by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5);
    for (size_t i = 0; i < v.u.d->n; i++) {
        jl_push(jr_arena(r), l, tuple2(jr_arena(r), v.u.d->k[i], v.u.d->v[i]));
        keys[i] = fold(r, by_value ? v.u.d->v[i] : v.u.d->k[i], cs);
    }
    sort_ctx c = {r, at, cs, false};
    CT_TRY(stable_sort(&c, keys, l->v, l->n, jv_truthy(arg_or(a, 2, jv_bool(false)))));
    *out = list_v(l);
    return CT_OK;
}

static ct_status filter_unique(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jlist *src, *l = jl_new(jr_arena(r), 4), *seen = jl_new(jr_arena(r), 4);
    if (!l || !seen)
        return nomem(r, at);
    CT_TRY(jr_iter(r, at, v, &src));
    bool cs = jv_truthy(arg_or(a, 0, jv_bool(false)));
    for (size_t i = 0; i < src->n; i++) {
        jv k = src->v[i];
        if (a->set[1] && a->v[1].kind != JV_NONE)
            CT_TRY(attr_path(r, at, k, a->v[1], &k));
        k = fold(r, k, cs);
        bool dup = false;
        for (size_t j = 0; j < seen->n && !dup; j++)
            dup = jv_eq(seen->v[j], k);
        if (!dup) {
            jl_push(jr_arena(r), seen, k);
            jl_push(jr_arena(r), l, src->v[i]);
        }
    }
    *out = list_v(l);
    return CT_OK;
}

static ct_status filter_minmax(jrender *r, const jnode *at, jv v, const jargs *a, bool want_max, jv *out) {
    jlist *src;
    CT_TRY(jr_iter(r, at, v, &src));
    if (src->n == 0) {
        *out = jv_undef();
        return CT_OK;
    }
    bool cs = jv_truthy(arg_or(a, 0, jv_bool(false)));
    sort_ctx c = {r, at, cs, false};
    jv best = src->v[0], bestk = best;
    if (a->set[1] && a->v[1].kind != JV_NONE)
        CT_TRY(attr_path(r, at, best, a->v[1], &bestk));
    bestk = fold(r, bestk, cs);
    for (size_t i = 1; i < src->n; i++) {
        jv k = src->v[i];
        if (a->set[1] && a->v[1].kind != JV_NONE)
            CT_TRY(attr_path(r, at, k, a->v[1], &k));
        k = fold(r, k, cs);
        if (want_max ? key_lt(&c, bestk, k) : key_lt(&c, k, bestk)) {
            best = src->v[i];
            bestk = k;
        }
        if (c.failed)
            return CT_ERR_INVALID;
    }
    *out = best;
    return CT_OK;
}

// ---- tojson (transformers: json.dumps(x, ensure_ascii=False, indent, separators, sort_keys))
static ct_status filter_tojson(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jjson_opts o = {.item_sep = ", ", .key_sep = ": "};
    o.ensure_ascii = jv_truthy(arg_or(a, 0, jv_bool(false)));
    jv indent = arg_or(a, 1, jv_none());
    char spaces[64];
    if (indent.kind == JV_INT || indent.kind == JV_BOOL) {
        int64_t k = indent.kind == JV_BOOL ? indent.u.b : indent.u.i;
        if (k < 0)
            k = 0;
        if (k > 63)
            return jr_fail(r, at, "tojson: indent too large");
        memset(spaces, ' ', (size_t)k);
        spaces[k] = 0;
        o.indent = spaces;
    } else if (indent.kind == JV_STR) {
        o.indent = jar_strdup(jr_arena(r), indent.u.s.p, indent.u.s.n);
    } else if (indent.kind != JV_NONE) {
        return jr_fail(r, at, "tojson: indent must be an int or a string");
    }
    if (o.indent)
        o.item_sep = ",";
    jv seps = arg_or(a, 2, jv_none());
    if (seps.kind != JV_NONE) {
        if (!jv_is_seq(seps) || seps.u.l->n != 2 || seps.u.l->v[0].kind != JV_STR || seps.u.l->v[1].kind != JV_STR)
            return jr_fail(r, at, "tojson: separators must be a pair of strings");
        o.item_sep = jar_strdup(jr_arena(r), seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
        o.key_sep = jar_strdup(jr_arena(r), seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
    }
    o.sort_keys = jv_truthy(arg_or(a, 3, jv_bool(false)));
    jbuf b = {0};
    const char *bad = NULL;
    if (!jv_to_json(v, &o, 0, &b, &bad)) {
        jb_free(&b);
        if (v.kind == JV_UNDEF || strcmp(bad, "Undefined") == 0)
            return jr_fail(r, at, "Object of type Undefined is not JSON serializable");
        return jr_fail(r, at, "Object of type %s is not JSON serializable", bad);
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

static ct_status filter_indent(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jv s = to_str_v(r, v);
    jv width = arg_or(a, 0, jv_int(4));
    jbuf ind = {0};
    if (width.kind == JV_STR) {
        jb_put(&ind, width.u.s.p, width.u.s.n);
    } else {
        int64_t w = 0;
        CT_TRY(need_int(r, at, width, "indent", &w));
        for (int64_t i = 0; i < w; i++)
            jb_putc(&ind, ' ');
    }
    jv indention = jv_str_from_buf(jr_arena(r), &ind);
    jbuf t = {0};
    jb_put(&t, s.u.s.p, s.u.s.n);
    jb_putc(&t, '\n');
    jlist *lines = jstr_splitlines(jr_arena(r), jv_str_from_buf(jr_arena(r), &t));
    if (!lines)
        return nomem(r, at);
    jbuf b = {0};
    bool blank = jv_truthy(arg_or(a, 2, jv_bool(false)));
    if (jv_truthy(arg_or(a, 1, jv_bool(false))))
        jb_put(&b, indention.u.s.p, indention.u.s.n);
    for (size_t i = 0; i < lines->n; i++) {
        jv line = lines->v[i];
        if (i > 0) {
            jb_putc(&b, '\n');
            if (blank || line.u.s.n > 0)
                jb_put(&b, indention.u.s.p, indention.u.s.n);
        }
        jb_put(&b, line.u.s.p, line.u.s.n);
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

static ct_status filter_round(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    int64_t prec = 0;
    CT_TRY(need_int(r, at, arg_or(a, 0, jv_int(0)), "round", &prec));
    jv method = arg_or(a, 1, jv_str("common", 6));
    if (!jv_is_num(v))
        return jr_fail(r, at, "type %s doesn't define __round__ method", jv_type_name(v));
    double x = v.kind == JV_FLOAT ? v.u.f : (double)(v.kind == JV_BOOL ? v.u.b : v.u.i);
    double p10 = pow(10.0, (double)prec);
    if (method.kind == JV_STR && method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4)) {
        *out = jv_float(ceil(x * p10) / p10);
    } else if (method.kind == JV_STR && method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5)) {
        *out = jv_float(floor(x * p10) / p10);
    } else if (method.kind == JV_STR && method.u.s.n == 6 && !memcmp(method.u.s.p, "common", 6)) {
        if (v.kind != JV_FLOAT) {
            *out = jv_int(v.kind == JV_BOOL ? v.u.b : v.u.i);
            return CT_OK;
        }
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%.*f", (int)(prec < 0 ? 0 : prec > 300 ? 300 : prec), x);
        *out = jv_float(prec < 0 ? round(x * p10) / p10 : strtod(tmp, NULL));
    } else {
        return jr_fail(r, at, "method must be 'common', 'ceil' or 'floor'");
    }
    return CT_OK;
}

static ct_status parse_int_str(jv s, int64_t base, int64_t *out) {
    jv t = jstr_strip(s, jv_none(), true, true);
    char tmp[128];
    size_t k = 0;
    for (size_t i = 0; i < t.u.s.n && k + 1 < sizeof tmp; i++)
        if (t.u.s.p[i] != '_')
            tmp[k++] = t.u.s.p[i];
    tmp[k] = 0;
    if (k == 0 || k != t.u.s.n)
        return CT_ERR_INVALID;
    char *end;
    long long v = strtoll(tmp, &end, (int)base);
    if (*end)
        return CT_ERR_INVALID;
    *out = v;
    return CT_OK;
}

static bool parse_float_str(jv s, double *out) {
    jv t = jstr_strip(s, jv_none(), true, true);
    char tmp[128];
    if (t.u.s.n == 0 || t.u.s.n >= sizeof tmp)
        return false;
    memcpy(tmp, t.u.s.p, t.u.s.n);
    tmp[t.u.s.n] = 0;
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0;
}

static ct_status filter_int(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jv dflt = arg_or(a, 0, jv_int(0));
    int64_t base = 10;
    CT_TRY(need_int(r, at, arg_or(a, 1, jv_int(10)), "int", &base));
    if (v.kind == JV_UNDEF)
        return jr_undefined_error(r, at, v);
    int64_t i;
    double f;
    if (v.kind == JV_INT || v.kind == JV_BOOL)
        *out = jv_int(v.kind == JV_BOOL ? v.u.b : v.u.i);
    else if (v.kind == JV_FLOAT && isfinite(v.u.f))
        *out = jv_int((int64_t)v.u.f);
    else if (v.kind == JV_STR && parse_int_str(v, base, &i) == CT_OK)
        *out = jv_int(i);
    else if (v.kind == JV_STR && parse_float_str(v, &f) && isfinite(f))
        *out = jv_int((int64_t)f);
    else
        *out = dflt;
    return CT_OK;
}

static ct_status filter_float(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    double f;
    if (v.kind == JV_UNDEF)
        return jr_undefined_error(r, at, v);
    if (jv_is_num(v))
        *out = jv_float(v.kind == JV_FLOAT ? v.u.f : (double)(v.kind == JV_BOOL ? v.u.b : v.u.i));
    else if (v.kind == JV_STR && parse_float_str(v, &f))
        *out = jv_float(f);
    else
        *out = arg_or(a, 0, jv_float(0.0));
    return CT_OK;
}

static ct_status filter_join(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jlist *items;
    CT_TRY(jr_iter(r, at, v, &items));
    jv sep = arg_or(a, 0, jv_str("", 0));
    CT_TRY(need_str(r, at, sep, "join separator"));
    jbuf b = {0};
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (a->set[1] && a->v[1].kind != JV_NONE) {
            ct_status st = attr_path(r, at, x, a->v[1], &x);
            if (st != CT_OK) {
                jb_free(&b);
                return st;
            }
        }
        if (i)
            jb_put(&b, sep.u.s.p, sep.u.s.n);
        jv_to_str(x, &b);
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

static ct_status filter_length(jrender *r, const jnode *at, jv v, jv *out) {
    switch (v.kind) {
    case JV_STR: *out = jv_int((int64_t)ju_len(v.u.s.p, v.u.s.n)); return CT_OK;
    case JV_LIST:
    case JV_TUPLE: *out = jv_int((int64_t)v.u.l->n); return CT_OK;
    case JV_DICT: *out = jv_int((int64_t)v.u.d->n); return CT_OK;
    case JV_UNDEF: *out = jv_int(0); return CT_OK;
    default: return jr_fail(r, at, "object of type '%s' has no len()", jv_type_name(v));
    }
}

static ct_status filter_first_last(jrender *r, const jnode *at, jv v, bool last, jv *out) {
    jlist *items;
    CT_TRY(jr_iter(r, at, v, &items));
    if (items->n == 0) {
        jundef *u = jar_alloc(jr_arena(r), sizeof *u);
        if (!u)
            return nomem(r, at);
        u->hint = last ? "No last item, sequence was empty." : "No first item, sequence was empty.";
        out->kind = JV_UNDEF;
        out->u.u = u;
        return CT_OK;
    }
    *out = items->v[last ? items->n - 1 : 0];
    return CT_OK;
}

// select/reject/selectattr/rejectattr: keep items whose test result == want.
static ct_status filter_select(jrender *r, const jnode *at, jv v, const jv *args, size_t nargs, bool by_attr, bool want, jv *out) {
    jlist *items, *kept = jl_new(jr_arena(r), 4);
    if (!kept)
        return nomem(r, at);
    CT_TRY(jr_iter(r, at, v, &items));
    size_t k = 0;
    jv attr = jv_none();
    if (by_attr) {
        if (nargs < 1)
            return jr_fail(r, at, "Missing parameter for attribute name");
        attr = args[k++];
    }
    jv test = k < nargs ? args[k++] : jv_none();
    if (test.kind != JV_NONE && test.kind != JV_STR)
        return jr_fail(r, at, "test name must be a string");
    char tname[64] = "";
    if (test.kind == JV_STR) {
        snprintf(tname, sizeof tname, "%.*s", (int)test.u.s.n, test.u.s.p);
        if (!jinja_test_exists(tname, strlen(tname)))
            return jr_fail(r, at, "No test named '%s'.", tname);
    }
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (by_attr)
            CT_TRY(attr_path(r, at, x, attr, &x));
        bool res;
        if (test.kind == JV_STR)
            CT_TRY(jr_test(r, at, tname, x, args + k, nargs - k, &res));
        else
            res = jv_truthy(x);
        if (res == want)
            jl_push(jr_arena(r), kept, items->v[i]);
    }
    *out = list_v(kept);
    return CT_OK;
}

static ct_status filter_map(jrender *r, const jnode *at, jv v, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    jlist *items, *res = jl_new(jr_arena(r), 4);
    if (!res)
        return nomem(r, at);
    CT_TRY(jr_iter(r, at, v, &items));
    jv attr = jv_none(), dflt = jv_undef();
    bool has_default = false;
    for (size_t k = 0; k < nkw; k++) {
        if (name_is(kw[k].name, "attribute"))
            attr = kw[k].v;
        else if (name_is(kw[k].name, "default")) {
            dflt = kw[k].v;
            has_default = true;
        }
    }
    if (attr.kind != JV_NONE) {
        for (size_t i = 0; i < items->n; i++) {
            jv x;
            CT_TRY(attr_path(r, at, items->v[i], attr, &x));
            if (x.kind == JV_UNDEF && has_default)
                x = dflt;
            jl_push(jr_arena(r), res, x);
        }
        *out = list_v(res);
        return CT_OK;
    }
    if (nargs < 1 || args[0].kind != JV_STR)
        return jr_fail(r, at, "map requires a filter name or attribute=");
    char fname[64];
    snprintf(fname, sizeof fname, "%.*s", (int)args[0].u.s.n, args[0].u.s.p);
    if (!jinja_filter_exists(fname, strlen(fname)))
        return jr_fail(r, at, "No filter named '%s'.", fname);
    for (size_t i = 0; i < items->n; i++) {
        jv x;
        CT_TRY(jr_filter(r, at, fname, items->v[i], args + 1, nargs - 1, kw, nkw, &x));
        jl_push(jr_arena(r), res, x);
    }
    *out = list_v(res);
    return CT_OK;
}

static ct_status filter_batch(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    int64_t size = 0;
    CT_TRY(need_int(r, at, arg_or(a, 0, jv_none()), "batch", &size));
    if (size <= 0)
        return jr_fail(r, at, "batch size must be positive");
    jlist *items, *res = jl_new(jr_arena(r), 4), *cur = NULL;
    if (!res)
        return nomem(r, at);
    CT_TRY(jr_iter(r, at, v, &items));
    for (size_t i = 0; i < items->n; i++) {
        if (!cur || (int64_t)cur->n == size) {
            cur = jl_new(jr_arena(r), (size_t)size);
            if (!cur)
                return nomem(r, at);
            jl_push(jr_arena(r), res, list_v(cur));
        }
        jl_push(jr_arena(r), cur, items->v[i]);
    }
    if (cur && a->set[1] && a->v[1].kind != JV_NONE)
        while ((int64_t)cur->n < size)
            jl_push(jr_arena(r), cur, a->v[1]);
    *out = list_v(res);
    return CT_OK;
}

static ct_status filter_center(jrender *r, const jnode *at, jv s, int64_t width, jv *out) {
    (void)at;
    size_t len = ju_len(s.u.s.p, s.u.s.n);
    if ((int64_t)len >= width) {
        *out = s;
        return CT_OK;
    }
    size_t pad = (size_t)width - len, left = pad / 2 + (pad & (size_t)width & 1);
    jbuf b = {0};
    for (size_t i = 0; i < left; i++)
        jb_putc(&b, ' ');
    jb_put(&b, s.u.s.p, s.u.s.n);
    for (size_t i = 0; i < pad - left; i++)
        jb_putc(&b, ' ');
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

static ct_status html_escape(jrender *r, jv v, jv *out) {
    jv s = to_str_v(r, v);
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char c = s.u.s.p[i];
        if (c == '&')
            jb_puts(&b, "&amp;");
        else if (c == '<')
            jb_puts(&b, "&lt;");
        else if (c == '>')
            jb_puts(&b, "&gt;");
        else if (c == '"')
            jb_puts(&b, "&#34;");
        else if (c == '\'')
            jb_puts(&b, "&#39;");
        else
            jb_putc(&b, c);
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

static ct_status filter_sum(jrender *r, const jnode *at, jv v, const jargs *a, jv *out) {
    jlist *items;
    CT_TRY(jr_iter(r, at, v, &items));
    jv acc = arg_or(a, 1, jv_int(0));
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (a->set[0] && a->v[0].kind != JV_NONE)
            CT_TRY(attr_path(r, at, x, a->v[0], &x));
        CT_TRY(jr_binop(r, at, OP_ADD, acc, x, &acc));
    }
    *out = acc;
    return CT_OK;
}

static const char *const FILTERS[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
    "title", "tojson", "trim", "unique", "upper", "wordcount", NULL,
};

bool jinja_filter_exists(const char *name, size_t n) {
    for (size_t i = 0; FILTERS[i]; i++)
        if (strlen(FILTERS[i]) == n && !memcmp(FILTERS[i], name, n))
            return true;
    return false;
}

#define BIND(...)                                                                   \
    do {                                                                            \
        static const char *const names_[] = {__VA_ARGS__, NULL};                    \
        CT_TRY(bind(r, at, name, names_, args, nargs, kw, nkw, &a));                \
    } while (0)
#define BIND0() CT_TRY(bind(r, at, name, (const char *const[]){NULL}, args, nargs, kw, nkw, &a))

ct_status jb_filter(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    jargs a;
    jarena *ar = jr_arena(r);
    if (name_is(name, "map"))
        return filter_map(r, at, v, args, nargs, kw, nkw, out);
    if (name_is(name, "select") || name_is(name, "reject") || name_is(name, "selectattr") || name_is(name, "rejectattr")) {
        if (nkw)
            return jr_fail(r, at, "%s() takes no keyword arguments", name);
        return filter_select(r, at, v, args, nargs, strstr(name, "attr") != NULL, name[0] == 's', out);
    }
    if (name_is(name, "format")) {
        if (nargs && nkw)
            return jr_fail(r, at, "can't handle positional and keyword arguments at the same time");
        jv fmt = to_str_v(r, v);
        if (nkw) {
            jdict *d = jd_new(ar, nkw);
            if (!d)
                return nomem(r, at);
            for (size_t i = 0; i < nkw; i++)
                jd_set(ar, d, jv_str(kw[i].name, strlen(kw[i].name)), kw[i].v);
            jv dv = {.kind = JV_DICT, .u.d = d};
            return jb_percent_format(r, at, fmt, dv, out);
        }
        jlist *l = jl_new(ar, nargs + 1);
        if (!l)
            return nomem(r, at);
        for (size_t i = 0; i < nargs; i++)
            jl_push(ar, l, args[i]);
        jv t = {.kind = JV_TUPLE, .u.l = l};
        return jb_percent_format(r, at, fmt, t, out);
    }
    if (name_is(name, "default") || name_is(name, "d")) {
        BIND("default_value", "boolean");
        bool use = v.kind == JV_UNDEF || (jv_truthy(arg_or(&a, 1, jv_bool(false))) && !jv_truthy(v));
        *out = use ? arg_or(&a, 0, jv_str("", 0)) : v;
        return CT_OK;
    }
    if (name_is(name, "tojson")) {
        BIND("ensure_ascii", "indent", "separators", "sort_keys");
        return filter_tojson(r, at, v, &a, out);
    }
    if (name_is(name, "length") || name_is(name, "count")) {
        BIND0();
        return filter_length(r, at, v, out);
    }
    if (name_is(name, "string")) {
        BIND0();
        *out = to_str_v(r, v);
        return CT_OK;
    }
    if (name_is(name, "safe")) {
        BIND0();
        *out = v;
        return CT_OK;
    }
    if (name_is(name, "e") || name_is(name, "escape")) {
        BIND0();
        return html_escape(r, v, out);
    }
    if (name_is(name, "first") || name_is(name, "last")) {
        BIND0();
        return filter_first_last(r, at, v, name[0] == 'l', out);
    }
    if (name_is(name, "list")) {
        BIND0();
        jlist *l;
        CT_TRY(copy_items(r, at, v, &l));
        *out = list_v(l);
        return CT_OK;
    }
    if (name_is(name, "items")) {
        BIND0();
        if (v.kind == JV_UNDEF) {
            jlist *l = jl_new(ar, 1);
            *out = list_v(l);
            return l ? CT_OK : nomem(r, at);
        }
        if (v.kind != JV_DICT)
            return jr_fail(r, at, "Can only get item pairs from a mapping.");
        jlist *l = jl_new(ar, v.u.d->n + 1);
        if (!l)
            return nomem(r, at);
        for (size_t i = 0; i < v.u.d->n; i++)
            jl_push(ar, l, tuple2(ar, v.u.d->k[i], v.u.d->v[i]));
        *out = list_v(l);
        return CT_OK;
    }
    if (name_is(name, "reverse")) {
        BIND0();
        if (v.kind == JV_STR) {
            jlist *chars;
            CT_TRY(jr_iter(r, at, v, &chars));
            jbuf b = {0};
            for (size_t i = chars->n; i-- > 0;)
                jb_put(&b, chars->v[i].u.s.p, chars->v[i].u.s.n);
            *out = jv_str_from_buf(ar, &b);
            return CT_OK;
        }
        jlist *l;
        CT_TRY(copy_items(r, at, v, &l));
        for (size_t i = 0; i < l->n / 2; i++) {
            jv t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i];
            l->v[l->n - 1 - i] = t;
        }
        *out = list_v(l);
        return CT_OK;
    }
    if (name_is(name, "join")) {
        BIND("d", "attribute");
        return filter_join(r, at, v, &a, out);
    }
    if (name_is(name, "sort")) {
        BIND("reverse", "case_sensitive", "attribute");
        return filter_sort(r, at, v, &a, out);
    }
    if (name_is(name, "dictsort")) {
        BIND("case_sensitive", "by", "reverse");
        return filter_dictsort(r, at, v, &a, out);
    }
    if (name_is(name, "unique")) {
        BIND("case_sensitive", "attribute");
        return filter_unique(r, at, v, &a, out);
    }
    if (name_is(name, "min") || name_is(name, "max")) {
        BIND("case_sensitive", "attribute");
        return filter_minmax(r, at, v, &a, name[1] == 'a', out);
    }
    if (name_is(name, "sum")) {
        BIND("attribute", "start");
        return filter_sum(r, at, v, &a, out);
    }
    if (name_is(name, "batch")) {
        BIND("linecount", "fill_with");
        return filter_batch(r, at, v, &a, out);
    }
    if (name_is(name, "int")) {
        BIND("default", "base");
        return filter_int(r, at, v, &a, out);
    }
    if (name_is(name, "float")) {
        BIND("default");
        return filter_float(r, at, v, &a, out);
    }
    if (name_is(name, "round")) {
        BIND("precision", "method");
        return filter_round(r, at, v, &a, out);
    }
    if (name_is(name, "abs")) {
        BIND0();
        if (!jv_is_num(v))
            return jr_fail(r, at, "bad operand type for abs(): '%s'", jv_type_name(v));
        *out = v.kind == JV_FLOAT ? jv_float(fabs(v.u.f)) : jv_int(llabs(v.kind == JV_BOOL ? v.u.b : v.u.i));
        return CT_OK;
    }
    if (name_is(name, "attr")) {
        BIND("name");
        CT_TRY(need_str(r, at, arg_or(&a, 0, jv_none()), "attribute name"));
        return jr_getattr(r, at, v, a.v[0].u.s.p, a.v[0].u.s.n, out);
    }
    if (name_is(name, "indent")) {
        BIND("width", "first", "blank");
        return filter_indent(r, at, v, &a, out);
    }
    // string filters: the value goes through str() first
    jv s = to_str_v(r, v);
    if (name_is(name, "upper") || name_is(name, "lower") || name_is(name, "capitalize") || name_is(name, "title") || name_is(name, "wordcount")) {
        BIND0();
        if (name_is(name, "wordcount")) {
            int64_t words = 0;
            bool in_word = false;
            for (size_t i = 0; i < s.u.s.n; i++) {
                unsigned char c = (unsigned char)s.u.s.p[i];
                bool w = c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
                words += w && !in_word;
                in_word = w;
            }
            *out = jv_int(words);
        } else {
            *out = name[0] == 'u' ? jstr_upper(ar, s) : name[0] == 'l' ? jstr_lower(ar, s)
                 : name[0] == 'c' ? jstr_capitalize(ar, s) : jstr_jinja_title(ar, s);
        }
        return CT_OK;
    }
    if (name_is(name, "trim")) {
        BIND("chars");
        *out = jstr_strip(s, arg_or(&a, 0, jv_none()), true, true);
        return CT_OK;
    }
    if (name_is(name, "replace")) {
        BIND("old", "new", "count");
        jv old = to_str_v(r, arg_or(&a, 0, jv_str("", 0))), rep = to_str_v(r, arg_or(&a, 1, jv_str("", 0)));
        int64_t count = -1;
        if (a.set[2] && a.v[2].kind != JV_NONE)
            CT_TRY(need_int(r, at, a.v[2], "replace", &count));
        *out = jstr_replace(ar, s, old, rep, count);
        return CT_OK;
    }
    if (name_is(name, "center")) {
        BIND("width");
        int64_t w = 0;
        CT_TRY(need_int(r, at, arg_or(&a, 0, jv_int(80)), "center", &w));
        return filter_center(r, at, s, w, out);
    }
    return jr_fail(r, at, "No filter named '%s'.", name);
}

// ---- tests
static const char *const TESTS[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
    "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lessthan",
    "lt", "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true",
    "undefined", "upper", NULL,
};

bool jinja_test_exists(const char *name, size_t n) {
    for (size_t i = 0; TESTS[i]; i++)
        if (strlen(TESTS[i]) == n && !memcmp(TESTS[i], name, n))
            return true;
    return false;
}

static ct_status compare_test(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, bool *out) {
    static const struct {
        const char *name;
        jop op;
    } ops[] = {{"eq", OP_EQ}, {"equalto", OP_EQ}, {"==", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE}, {"lt", OP_LT},
               {"lessthan", OP_LT}, {"<", OP_LT}, {"le", OP_LE}, {"<=", OP_LE}, {"gt", OP_GT}, {"greaterthan", OP_GT},
               {">", OP_GT}, {"ge", OP_GE}, {">=", OP_GE}, {"in", OP_IN}};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (!name_is(name, ops[i].name))
            continue;
        if (nargs != 1)
            return jr_fail(r, at, "test '%s' takes exactly one argument", name);
        jv res;
        CT_TRY(jr_binop(r, at, ops[i].op, v, args[0], &res));
        *out = jv_truthy(res);
        return CT_OK;
    }
    return CT_ERR_UNSUPPORTED;
}

static bool str_all_case(jrender *r, jv v, bool upper) {
    jv s = to_str_v(r, v);
    bool any = false;
    for (size_t i = 0; i < s.u.s.n;) {
        size_t adv;
        int32_t c = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
        jv one = jv_str(s.u.s.p + i, adv);
        jv lo = jstr_lower(jr_arena(r), one), up = jstr_upper(jr_arena(r), one);
        bool cased = !jv_eq(lo, up);
        if (cased) {
            any = true;
            if (upper ? jv_eq(one, lo) : jv_eq(one, up))
                return false;
        }
        (void)c;
        i += adv;
    }
    return any;
}

ct_status jb_test(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, bool *out) {
    ct_status st = compare_test(r, at, name, v, args, nargs, out);
    if (st != CT_ERR_UNSUPPORTED)
        return st;
    if (name_is(name, "defined"))
        *out = v.kind != JV_UNDEF;
    else if (name_is(name, "undefined"))
        *out = v.kind == JV_UNDEF;
    else if (name_is(name, "none"))
        *out = v.kind == JV_NONE;
    else if (name_is(name, "boolean"))
        *out = v.kind == JV_BOOL;
    else if (name_is(name, "true") || name_is(name, "false"))
        *out = v.kind == JV_BOOL && v.u.b == (name[0] == 't');
    else if (name_is(name, "string"))
        *out = v.kind == JV_STR;
    else if (name_is(name, "number"))
        *out = jv_is_num(v);
    else if (name_is(name, "integer"))
        *out = v.kind == JV_INT;
    else if (name_is(name, "float"))
        *out = v.kind == JV_FLOAT;
    else if (name_is(name, "mapping"))
        *out = v.kind == JV_DICT;
    else if (name_is(name, "iterable"))
        *out = v.kind == JV_STR || jv_is_seq(v) || v.kind == JV_DICT || v.kind == JV_UNDEF;
    else if (name_is(name, "sequence"))
        *out = v.kind == JV_STR || jv_is_seq(v) || v.kind == JV_DICT || v.kind == JV_UNDEF;
    else if (name_is(name, "callable"))
        *out = v.kind == JV_FUNC || v.kind == JV_UNDEF;
    else if (name_is(name, "escaped"))
        *out = false;
    else if (name_is(name, "lower") || name_is(name, "upper"))
        *out = str_all_case(r, v, name[0] == 'u');
    else if (name_is(name, "filter") || name_is(name, "test")) {
        *out = v.kind == JV_STR && (name[0] == 'f' ? jinja_filter_exists(v.u.s.p, v.u.s.n) : jinja_test_exists(v.u.s.p, v.u.s.n));
    } else if (name_is(name, "sameas")) {
        if (nargs != 1)
            return jr_fail(r, at, "sameas takes one argument");
        jv o = args[0];
        *out = v.kind == o.kind && (v.kind == JV_NONE || v.kind == JV_UNDEF || (v.kind == JV_BOOL && v.u.b == o.u.b) ||
                                    (v.kind == JV_INT && v.u.i == o.u.i) || (jv_is_seq(v) && v.u.l == o.u.l) ||
                                    (jv_is_map(v) && v.u.d == o.u.d));
    } else if (name_is(name, "odd") || name_is(name, "even") || name_is(name, "divisibleby")) {
        jv div = name_is(name, "divisibleby") ? (nargs == 1 ? args[0] : jv_none()) : jv_int(2), m;
        if (v.kind == JV_UNDEF)
            return jr_undefined_error(r, at, v);
        CT_TRY(jr_binop(r, at, OP_MOD, v, div, &m));
        *out = name_is(name, "odd") ? jv_truthy(m) : !jv_truthy(m);
    } else {
        return jr_fail(r, at, "No test named '%s'.", name);
    }
    return CT_OK;
}

// ---- methods
static const char *const STR_METHODS[] = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
    "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
    "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
    "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill", NULL,
};
static const char *const DICT_METHODS[] = {"copy", "fromkeys", "get", "items", "keys", "values", NULL};
static const char *const DICT_UNSAFE[] = {"clear", "pop", "popitem", "setdefault", "update", NULL};
static const char *const LIST_METHODS[] = {"copy", "count", "index", NULL};
static const char *const LIST_UNSAFE[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort", NULL};

static bool in_names(const char *const *names, const char *s, size_t n) {
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], s, n))
            return true;
    return false;
}

bool jb_has_method(jv self, const char *name, size_t n, bool *unsafe) {
    *unsafe = false;
    if (n >= 1 && name[0] == '_') // dunder and private attributes: refused by the sandbox
        return false;
    switch (self.kind) {
    case JV_STR: return in_names(STR_METHODS, name, n);
    case JV_DICT:
        if (in_names(DICT_UNSAFE, name, n))
            return *unsafe = true;
        return in_names(DICT_METHODS, name, n);
    case JV_LIST:
        if (in_names(LIST_UNSAFE, name, n))
            return *unsafe = true;
        return in_names(LIST_METHODS, name, n);
    case JV_TUPLE: return in_names(LIST_METHODS, name, n) && !(n == 4 && !memcmp(name, "copy", 4));
    default: return false;
    }
}

static ct_status prefix_test(jrender *r, const jnode *at, jv s, jv arg, bool suffix, bool *out) {
    *out = false;
    if (jv_is_seq(arg)) {
        for (size_t i = 0; i < arg.u.l->n && !*out; i++)
            CT_TRY(prefix_test(r, at, s, arg.u.l->v[i], suffix, out));
        return CT_OK;
    }
    if (arg.kind != JV_STR)
        return jr_fail(r, at, "%s first arg must be str or a tuple of str, not %s", suffix ? "endswith" : "startswith", jv_type_name(arg));
    size_t n = arg.u.s.n;
    *out = n <= s.u.s.n && memcmp(suffix ? s.u.s.p + s.u.s.n - n : s.u.s.p, arg.u.s.p, n) == 0;
    return CT_OK;
}

static ct_status str_find(jv s, jv sub, bool from_right, int64_t *out) {
    *out = -1;
    if (sub.u.s.n > s.u.s.n)
        return CT_OK;
    for (size_t k = 0; k + sub.u.s.n <= s.u.s.n; k++) {
        size_t i = from_right ? s.u.s.n - sub.u.s.n - k : k;
        if (memcmp(s.u.s.p + i, sub.u.s.p, sub.u.s.n) == 0) {
            *out = (int64_t)ju_len(s.u.s.p, i);
            return CT_OK;
        }
    }
    return CT_OK;
}

static ct_status str_method(jrender *r, const jnode *at, jv self, const char *name, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    jarena *ar = jr_arena(r);
    jargs a;
    if (name_is(name, "format"))
        return jstr_format(r, at, self, args, nargs, kw, nkw, out);
    if (name_is(name, "upper") || name_is(name, "lower") || name_is(name, "title") || name_is(name, "capitalize") || name_is(name, "casefold") || name_is(name, "swapcase")) {
        BIND0();
        if (name_is(name, "swapcase")) {
            jbuf b = {0};
            for (size_t i = 0; i < self.u.s.n;) {
                size_t adv;
                ju_decode(self.u.s.p + i, self.u.s.n - i, &adv);
                jv one = jv_str(self.u.s.p + i, adv), up = jstr_upper(ar, one);
                jv x = jv_eq(one, up) ? jstr_lower(ar, one) : up;
                jb_put(&b, x.u.s.p, x.u.s.n);
                i += adv;
            }
            *out = jv_str_from_buf(ar, &b);
            return CT_OK;
        }
        *out = name[0] == 'u' ? jstr_upper(ar, self) : name[0] == 't' ? jstr_title(ar, self)
             : name_is(name, "capitalize") ? jstr_capitalize(ar, self) : jstr_lower(ar, self);
        return CT_OK;
    }
    if (name_is(name, "strip") || name_is(name, "lstrip") || name_is(name, "rstrip")) {
        BIND("chars");
        jv chars = arg_or(&a, 0, jv_none());
        if (chars.kind != JV_NONE)
            CT_TRY(need_str(r, at, chars, "strip arg"));
        *out = jstr_strip(self, chars, name[0] != 'r', name[0] != 'l');
        return CT_OK;
    }
    if (name_is(name, "split") || name_is(name, "rsplit")) {
        BIND("sep", "maxsplit");
        jv sep = arg_or(&a, 0, jv_none());
        int64_t maxsplit = -1;
        CT_TRY(need_int(r, at, arg_or(&a, 1, jv_int(-1)), name, &maxsplit));
        if (sep.kind != JV_NONE) {
            CT_TRY(need_str(r, at, sep, "separator"));
            if (sep.u.s.n == 0)
                return jr_fail(r, at, "empty separator");
        }
        if (name[0] == 'r' && maxsplit >= 0)
            return jr_fail(r, at, "rsplit with maxsplit is not supported");
        jlist *l = jstr_split(ar, self, sep, maxsplit);
        if (!l)
            return nomem(r, at);
        *out = list_v(l);
        return CT_OK;
    }
    if (name_is(name, "splitlines")) {
        BIND0();
        jlist *l = jstr_splitlines(ar, self);
        if (!l)
            return nomem(r, at);
        *out = list_v(l);
        return CT_OK;
    }
    if (name_is(name, "startswith") || name_is(name, "endswith")) {
        BIND("prefix");
        bool res;
        CT_TRY(prefix_test(r, at, self, arg_or(&a, 0, jv_none()), name[0] == 'e', &res));
        *out = jv_bool(res);
        return CT_OK;
    }
    if (name_is(name, "replace")) {
        BIND("old", "new", "count");
        CT_TRY(need_str(r, at, arg_or(&a, 0, jv_none()), "replace arg 1"));
        CT_TRY(need_str(r, at, arg_or(&a, 1, jv_none()), "replace arg 2"));
        int64_t count = -1;
        CT_TRY(need_int(r, at, arg_or(&a, 2, jv_int(-1)), "replace", &count));
        *out = jstr_replace(ar, self, a.v[0], a.v[1], count);
        return CT_OK;
    }
    if (name_is(name, "join")) {
        BIND("iterable");
        jlist *items;
        CT_TRY(jr_iter(r, at, arg_or(&a, 0, jv_none()), &items));
        jbuf b = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].kind != JV_STR) {
                jb_free(&b);
                return jr_fail(r, at, "sequence item %zu: expected str instance, %s found", i, jv_type_name(items->v[i]));
            }
            if (i)
                jb_put(&b, self.u.s.p, self.u.s.n);
            jb_put(&b, items->v[i].u.s.p, items->v[i].u.s.n);
        }
        *out = jv_str_from_buf(ar, &b);
        return CT_OK;
    }
    if (name_is(name, "find") || name_is(name, "rfind") || name_is(name, "index") || name_is(name, "rindex") || name_is(name, "count")) {
        BIND("sub");
        CT_TRY(need_str(r, at, arg_or(&a, 0, jv_none()), name));
        int64_t pos;
        if (name_is(name, "count")) {
            int64_t c = 0;
            jv sub = a.v[0];
            if (sub.u.s.n == 0) {
                c = (int64_t)ju_len(self.u.s.p, self.u.s.n) + 1;
            } else {
                for (const char *p = self.u.s.p, *e = p + self.u.s.n; (p = memmem(p, (size_t)(e - p), sub.u.s.p, sub.u.s.n)); p += sub.u.s.n)
                    c++;
            }
            *out = jv_int(c);
            return CT_OK;
        }
        CT_TRY(str_find(self, a.v[0], name[0] == 'r', &pos));
        if (pos < 0 && strstr(name, "index"))
            return jr_fail(r, at, "substring not found");
        *out = jv_int(pos);
        return CT_OK;
    }
    if (name_is(name, "removeprefix") || name_is(name, "removesuffix")) {
        BIND("affix");
        CT_TRY(need_str(r, at, arg_or(&a, 0, jv_none()), name));
        bool has;
        CT_TRY(prefix_test(r, at, self, a.v[0], name[6] == 's', &has));
        size_t k = has ? a.v[0].u.s.n : 0;
        *out = name[6] == 's' ? jv_str(self.u.s.p, self.u.s.n - k) : jv_str(self.u.s.p + k, self.u.s.n - k);
        return CT_OK;
    }
    if (name_is(name, "center") || name_is(name, "ljust") || name_is(name, "rjust") || name_is(name, "zfill")) {
        BIND("width", "fillchar");
        int64_t w = 0;
        CT_TRY(need_int(r, at, arg_or(&a, 0, jv_none()), name, &w));
        if (name_is(name, "center") && !a.set[1])
            return filter_center(r, at, self, w, out);
        jv fill = arg_or(&a, 1, jv_str(name[0] == 'z' ? "0" : " ", 1));
        CT_TRY(need_str(r, at, fill, "fill character"));
        size_t len = ju_len(self.u.s.p, self.u.s.n);
        jbuf b = {0};
        size_t pad = (int64_t)len < w ? (size_t)w - len : 0, left = name[0] == 'l' ? 0 : name[0] == 'c' ? pad / 2 + (pad & (size_t)w & 1) : pad;
        size_t skip = 0;
        if (name[0] == 'z' && pad && self.u.s.n && (self.u.s.p[0] == '-' || self.u.s.p[0] == '+')) {
            jb_putc(&b, self.u.s.p[0]);
            skip = 1;
        }
        for (size_t i = 0; i < left; i++)
            jb_put(&b, fill.u.s.p, fill.u.s.n);
        jb_put(&b, self.u.s.p + skip, self.u.s.n - skip);
        for (size_t i = 0; i < pad - left; i++)
            jb_put(&b, fill.u.s.p, fill.u.s.n);
        *out = jv_str_from_buf(ar, &b);
        return CT_OK;
    }
    if (!strncmp(name, "is", 2)) {
        BIND0();
        bool all = self.u.s.n > 0;
        if (name_is(name, "islower") || name_is(name, "isupper")) {
            *out = jv_bool(str_all_case(r, self, name[2] == 'u'));
            return CT_OK;
        }
        for (size_t i = 0; i < self.u.s.n && all;) {
            size_t adv;
            int32_t c = ju_decode(self.u.s.p + i, self.u.s.n - i, &adv);
            bool digit = c >= '0' && c <= '9', alpha = (c | 32) >= 'a' && (c | 32) <= 'z';
            if (name_is(name, "isdigit") || name_is(name, "isdecimal") || name_is(name, "isnumeric"))
                all = digit;
            else if (name_is(name, "isalpha"))
                all = alpha || c >= 0x80;
            else if (name_is(name, "isalnum"))
                all = alpha || digit || c >= 0x80;
            else if (name_is(name, "isspace"))
                all = jstr_is_space(c);
            else if (name_is(name, "isascii"))
                all = c < 0x80;
            else
                return jr_fail(r, at, "str.%s is not supported", name);
            i += adv;
        }
        *out = jv_bool(all || (name_is(name, "isascii") && self.u.s.n == 0));
        return CT_OK;
    }
    return jr_fail(r, at, "str.%s is not supported", name);
}

ct_status jb_method(jrender *r, const jnode *at, jv self, const char *name, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    jarena *ar = jr_arena(r);
    jargs a;
    if (self.kind == JV_STR)
        return str_method(r, at, self, name, args, nargs, kw, nkw, out);
    if (self.kind == JV_DICT) {
        if (name_is(name, "get")) {
            BIND("key", "default");
            if (!jd_get(self.u.d, arg_or(&a, 0, jv_none()), out))
                *out = arg_or(&a, 1, jv_none());
            return CT_OK;
        }
        BIND0();
        if (name_is(name, "copy")) {
            jdict *d = jd_new(ar, self.u.d->n + 1);
            if (!d)
                return nomem(r, at);
            for (size_t i = 0; i < self.u.d->n; i++)
                jd_set(ar, d, self.u.d->k[i], self.u.d->v[i]);
            out->kind = JV_DICT;
            out->u.d = d;
            return CT_OK;
        }
        jlist *l = jl_new(ar, self.u.d->n + 1);
        if (!l)
            return nomem(r, at);
        for (size_t i = 0; i < self.u.d->n; i++) {
            jv x = name_is(name, "keys") ? self.u.d->k[i] : name_is(name, "values") ? self.u.d->v[i] : tuple2(ar, self.u.d->k[i], self.u.d->v[i]);
            jl_push(ar, l, x);
        }
        if (!name_is(name, "keys") && !name_is(name, "values") && !name_is(name, "items"))
            return jr_fail(r, at, "dict.%s is not supported", name);
        *out = list_v(l);
        return CT_OK;
    }
    if (jv_is_seq(self)) {
        if (name_is(name, "copy")) {
            BIND0();
            jlist *l;
            CT_TRY(copy_items(r, at, self, &l));
            *out = list_v(l);
            return CT_OK;
        }
        BIND("value");
        jv x = arg_or(&a, 0, jv_none());
        int64_t count = 0, first = -1;
        for (size_t i = 0; i < self.u.l->n; i++) {
            if (jv_eq(self.u.l->v[i], x)) {
                count++;
                if (first < 0)
                    first = (int64_t)i;
            }
        }
        if (name_is(name, "index") && first < 0) {
            jbuf b = {0};
            jv_repr(x, &b);
            ct_status st = jr_fail(r, at, "%s is not in list", b.p ? b.p : "");
            jb_free(&b);
            return st;
        }
        *out = jv_int(name_is(name, "count") ? count : first);
        return CT_OK;
    }
    return jr_fail(r, at, "'%s' object has no method '%s'", jv_type_name(self), name);
}

// ---- globals
bool jb_is_global(const char *name, size_t n) {
    static const char *const G[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};
    return in_names(G, name, n);
}

static ct_status global_range(jrender *r, const jnode *at, const jv *args, size_t nargs, jv *out) {
    int64_t v[3] = {0, 0, 1};
    if (nargs < 1 || nargs > 3)
        return jr_fail(r, at, "range expected 1 to 3 arguments, got %zu", nargs);
    for (size_t i = 0; i < nargs; i++)
        CT_TRY(need_int(r, at, args[i], "range", &v[nargs == 1 ? 1 : i]));
    if (v[2] == 0)
        return jr_fail(r, at, "range() arg 3 must not be zero");
    int64_t count = v[2] > 0 ? (v[1] - v[0] + v[2] - 1) / v[2] : (v[0] - v[1] - v[2] - 1) / -v[2];
    if (count < 0)
        count = 0;
    if (count > MAX_RANGE)
        return jr_fail(r, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    jlist *l = jl_new(jr_arena(r), (size_t)count + 1);
    if (!l)
        return nomem(r, at);
    for (int64_t i = 0; i < count; i++)
        jl_push(jr_arena(r), l, jv_int(v[0] + i * v[2]));
    *out = list_v(l);
    return CT_OK;
}

// dict(...) and namespace(...): dict(*args, **kwargs) semantics.
static ct_status global_dict(jrender *r, const jnode *at, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, bool ns, jv *out) {
    jarena *ar = jr_arena(r);
    jdict *d = jd_new(ar, nkw + 4);
    if (!d)
        return nomem(r, at);
    if (nargs > 1)
        return jr_fail(r, at, "dict expected at most 1 argument, got %zu", nargs);
    if (nargs == 1) {
        jv src = args[0];
        if (jv_is_map(src)) {
            for (size_t i = 0; i < src.u.d->n; i++)
                jd_set(ar, d, src.u.d->k[i], src.u.d->v[i]);
        } else {
            jlist *items;
            CT_TRY(jr_iter(r, at, src, &items));
            for (size_t i = 0; i < items->n; i++) {
                jv p = items->v[i];
                if (!jv_is_seq(p) || p.u.l->n != 2)
                    return jr_fail(r, at, "dictionary update sequence element #%zu has the wrong length", i);
                jd_set(ar, d, p.u.l->v[0], p.u.l->v[1]);
            }
        }
    }
    for (size_t i = 0; i < nkw; i++)
        jd_set(ar, d, jv_str(kw[i].name, strlen(kw[i].name)), kw[i].v);
    if (ns) {
        for (size_t i = 0; i < d->n; i++) {
            if (d->k[i].kind == JV_STR && d->k[i].u.s.n && d->k[i].u.s.p[0] == '_')
                return jr_fail(r, at, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%.*s'. Please rename the attribute.",
                               (int)d->k[i].u.s.n, d->k[i].u.s.p);
        }
    }
    out->kind = ns ? JV_NS : JV_DICT;
    out->u.d = d;
    return CT_OK;
}

static ct_status global_strftime(jrender *r, const jnode *at, const jv *args, size_t nargs, jv *out) {
    if (nargs != 1 || args[0].kind != JV_STR)
        return jr_fail(r, at, "strftime_now() takes one string argument");
    char fmt[256], buf[512];
    snprintf(fmt, sizeof fmt, "%.*s", (int)args[0].u.s.n, args[0].u.s.p);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, fmt, &tm);
    *out = jv_str(jar_strdup(jr_arena(r), buf, n), n);
    return CT_OK;
}

ct_status jb_global(jrender *r, const jnode *at, const char *name, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    if (name_is(name, "range"))
        return global_range(r, at, args, nargs, out);
    if (name_is(name, "namespace") || name_is(name, "dict"))
        return global_dict(r, at, args, nargs, kw, nkw, name[0] == 'n', out);
    if (name_is(name, "strftime_now"))
        return global_strftime(r, at, args, nargs, out);
    if (name_is(name, "raise_exception")) {
        jv msg = nargs ? to_str_v(r, args[0]) : jv_str("", 0);
        return jr_raise(r, msg.u.s.p, msg.u.s.n);
    }
    return jr_fail(r, at, "'%s' is undefined", name);
}
