// jinja_eval.c: renders an AST. Scopes follow Jinja2: the template body is
// one scope, every for-loop iteration and macro call gets a fresh child scope
// (so "set" inside a loop does not leak out; use namespace() for that), "if"
// shares its enclosing scope. Attribute and item lookup follow the sandbox
// (ImmutableSandboxedEnvironment): Python methods first for "a.b", items
// first for "a[b]", mutating methods refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

struct jscope {
    jscope *parent;
    const char **names;
    jv *vals;
    size_t n, cap;
};

typedef enum jflow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE } jflow;

struct jrender {
    const ct_jinja_template *t;
    jarena a;
    ct_error *err;
    jflow flow;
    int depth; // macro call depth
};

enum { MAX_CALL_DEPTH = 200 };

jarena *jr_arena(jrender *r) { return &r->a; }

static ct_status nomem(jrender *r) { return ct_fail(r->err, CT_ERR_NOMEM, "%s: out of memory", r->t->name); }

ct_status jr_fail(jrender *r, const jnode *at, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        return ct_fail(r->err, CT_ERR_INVALID, "%s:%d:%d: %s", r->t->name, at->line, at->col, msg);
    return ct_fail(r->err, CT_ERR_INVALID, "%s: %s", r->t->name, msg);
}

ct_status jr_raise(jrender *r, const char *msg, size_t n) {
    return ct_fail(r->err, CT_ERR_INVALID, "%.*s", (int)(n > 2000 ? 2000 : n), msg);
}

static void undef_message(jv u, jbuf *b) {
    const jundef *d = u.u.u;
    if (!d) {
        jb_puts(b, "value is undefined");
    } else if (d->hint) {
        jb_puts(b, d->hint);
    } else if (!d->has_obj) {
        jv_repr(jv_str(d->name, strlen(d->name)), b);
        jb_puts(b, " is undefined");
    } else if (d->name_is_int) {
        jv_obj_type_repr(d->obj, b);
        jb_printf(b, " has no element %lld", (long long)d->index);
    } else {
        jbuf t = {0};
        jv_obj_type_repr(d->obj, &t);
        jv_repr(jv_str(t.p ? t.p : "", t.n), b);
        jb_free(&t);
        jb_puts(b, " has no attribute ");
        jv_repr(jv_str(d->name, strlen(d->name)), b);
    }
}

ct_status jr_undefined_error(jrender *r, const jnode *at, jv undef) {
    jbuf b = {0};
    undef_message(undef, &b);
    ct_status st = jr_fail(r, at, "%s", b.p ? b.p : "undefined");
    jb_free(&b);
    return st;
}

static jv make_undef(jrender *r, const char *name, size_t n, const jv *obj) {
    jundef *d = jar_alloc(&r->a, sizeof *d);
    jv v = jv_undef();
    if (!d)
        return v;
    d->name = jar_strdup(&r->a, name, n);
    if (obj) {
        d->obj = *obj;
        d->has_obj = true;
    }
    v.u.u = d;
    return v;
}

static jv make_undef_index(jrender *r, jv obj, int64_t idx) {
    jundef *d = jar_alloc(&r->a, sizeof *d);
    jv v = jv_undef();
    if (!d)
        return v;
    d->obj = obj;
    d->has_obj = true;
    d->name_is_int = true;
    d->index = idx;
    v.u.u = d;
    return v;
}

static jv make_undef_hint(jrender *r, const char *hint) {
    jundef *d = jar_alloc(&r->a, sizeof *d);
    jv v = jv_undef();
    if (d) {
        d->hint = hint;
        v.u.u = d;
    }
    return v;
}

// ---- scopes
static jscope *scope_new(jrender *r, jscope *parent) {
    jscope *s = jar_alloc(&r->a, sizeof *s);
    if (s)
        s->parent = parent;
    return s;
}

static bool scope_set(jrender *r, jscope *s, const char *name, jv v) {
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->names[i], name) == 0) {
            s->vals[i] = v;
            return true;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const char **nn = jar_alloc(&r->a, cap * sizeof *nn);
        jv *nv = jar_alloc(&r->a, cap * sizeof *nv);
        if (!nn || !nv)
            return false;
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof *nn);
            memcpy(nv, s->vals, s->n * sizeof *nv);
        }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
    return true;
}

static bool scope_get(const jscope *s, const char *name, jv *out) {
    for (; s; s = s->parent) {
        for (size_t i = 0; i < s->n; i++) {
            if (strcmp(s->names[i], name) == 0) {
                *out = s->vals[i];
                return true;
            }
        }
    }
    return false;
}

static jv make_func(jrender *r, jfunc_kind kind, const char *name, jv self) {
    jfunc *f = jar_alloc(&r->a, sizeof *f);
    jv v = jv_none();
    if (!f)
        return v;
    f->kind = kind;
    f->name = name;
    f->self = self;
    v.kind = JV_FUNC;
    v.u.fn = f;
    return v;
}

// ---- lookup
static ct_status loop_attr(jrender *r, const jnode *at, jv obj, const char *name, jv *out) {
    const jloop *L = obj.u.loop;
    int64_t len = (int64_t)L->items->n, i0 = (int64_t)L->index0;
    if (!strcmp(name, "index"))
        *out = jv_int(i0 + 1);
    else if (!strcmp(name, "index0"))
        *out = jv_int(i0);
    else if (!strcmp(name, "revindex"))
        *out = jv_int(len - i0);
    else if (!strcmp(name, "revindex0"))
        *out = jv_int(len - i0 - 1);
    else if (!strcmp(name, "first"))
        *out = jv_bool(i0 == 0);
    else if (!strcmp(name, "last"))
        *out = jv_bool(i0 == len - 1);
    else if (!strcmp(name, "length"))
        *out = jv_int(len);
    else if (!strcmp(name, "depth"))
        *out = jv_int(L->depth);
    else if (!strcmp(name, "depth0"))
        *out = jv_int(L->depth - 1);
    else if (!strcmp(name, "previtem"))
        *out = i0 > 0 ? L->items->v[i0 - 1] : make_undef_hint(r, "there is no previous item");
    else if (!strcmp(name, "nextitem"))
        *out = i0 + 1 < len ? L->items->v[i0 + 1] : make_undef_hint(r, "there is no next item");
    else if (!strcmp(name, "cycle"))
        *out = make_func(r, JF_LOOP_CYCLE, "cycle", obj);
    else if (!strcmp(name, "changed"))
        *out = make_func(r, JF_LOOP_CHANGED, "changed", obj);
    else
        *out = make_undef(r, name, strlen(name), &obj);
    (void)at;
    return CT_OK;
}

// The method or a sandbox refusal, if the value's Python type has that attribute.
static bool method_of(jrender *r, jv obj, const char *name, size_t n, jv *out) {
    bool unsafe = false;
    if (!jb_has_method(obj, name, n, &unsafe))
        return false;
    if (unsafe) {
        jbuf b = {0};
        jb_puts(&b, "access to attribute ");
        jv_repr(jv_str(name, n), &b);
        jb_printf(&b, " of '%s' object is unsafe.", jv_type_name(obj));
        jv s = jv_str_from_buf(&r->a, &b);
        *out = make_undef_hint(r, s.u.s.p);
        return true;
    }
    *out = make_func(r, JF_METHOD, jar_strdup(&r->a, name, n), obj);
    return true;
}

static ct_status index_seq(jrender *r, jv obj, int64_t i, jv *out) {
    if (obj.kind == JV_STR) {
        int64_t len = (int64_t)ju_len(obj.u.s.p, obj.u.s.n), k = i < 0 ? i + len : i;
        if (k < 0 || k >= len) {
            *out = make_undef_index(r, obj, i);
            return CT_OK;
        }
        size_t off = ju_offset(obj.u.s.p, obj.u.s.n, (size_t)k), adv;
        ju_decode(obj.u.s.p + off, obj.u.s.n - off, &adv);
        *out = jv_str(obj.u.s.p + off, adv);
        return CT_OK;
    }
    int64_t len = (int64_t)obj.u.l->n, k = i < 0 ? i + len : i;
    *out = k < 0 || k >= len ? make_undef_index(r, obj, i) : obj.u.l->v[k];
    return CT_OK;
}

ct_status jr_getattr(jrender *r, const jnode *at, jv obj, const char *name, size_t n, jv *out) {
    if (obj.kind == JV_UNDEF)
        return jr_undefined_error(r, at, obj);
    if (obj.kind == JV_LOOP)
        return loop_attr(r, at, obj, jar_strdup(&r->a, name, n), out);
    if (method_of(r, obj, name, n, out))
        return CT_OK;
    if (jv_is_map(obj) && jd_get(obj.u.d, jv_str(name, n), out))
        return CT_OK;
    *out = make_undef(r, name, n, &obj);
    return CT_OK;
}

ct_status jr_getitem(jrender *r, const jnode *at, jv obj, jv key, jv *out) {
    if (obj.kind == JV_UNDEF)
        return jr_undefined_error(r, at, obj);
    if (obj.kind == JV_DICT && jd_get(obj.u.d, key, out))
        return CT_OK;
    if ((jv_is_seq(obj) || obj.kind == JV_STR) && (key.kind == JV_INT || key.kind == JV_BOOL))
        return index_seq(r, obj, key.kind == JV_BOOL ? key.u.b : key.u.i, out);
    if (key.kind == JV_STR && obj.kind != JV_DICT)
        return jr_getattr(r, at, obj, key.u.s.p, key.u.s.n, out);
    if (key.kind == JV_STR && method_of(r, obj, key.u.s.p, key.u.s.n, out))
        return CT_OK;
    if (key.kind == JV_INT) {
        *out = make_undef_index(r, obj, key.u.i);
        return CT_OK;
    }
    jbuf b = {0};
    jv_to_str(key, &b);
    *out = make_undef(r, b.p ? b.p : "", b.n, &obj);
    jb_free(&b);
    return CT_OK;
}

ct_status jr_iter(jrender *r, const jnode *at, jv v, jlist **out) {
    switch (v.kind) {
    case JV_LIST:
    case JV_TUPLE: *out = v.u.l; return CT_OK;
    case JV_UNDEF: *out = jl_new(&r->a, 1); return *out ? CT_OK : nomem(r);
    case JV_DICT: {
        jlist *l = jl_new(&r->a, v.u.d->n);
        if (!l)
            return nomem(r);
        for (size_t i = 0; i < v.u.d->n; i++)
            jl_push(&r->a, l, v.u.d->k[i]);
        *out = l;
        return CT_OK;
    }
    case JV_STR: {
        jlist *l = jl_new(&r->a, v.u.s.n);
        if (!l)
            return nomem(r);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t adv;
            ju_decode(v.u.s.p + i, v.u.s.n - i, &adv);
            jl_push(&r->a, l, jv_str(v.u.s.p + i, adv));
            i += adv;
        }
        *out = l;
        return CT_OK;
    }
    default: return jr_fail(r, at, "'%s' object is not iterable", jv_type_name(v));
    }
}

// ---- arithmetic
static int64_t as_int(jv v) { return v.kind == JV_BOOL ? v.u.b : v.u.i; }
static double as_float(jv v) { return v.kind == JV_FLOAT ? v.u.f : (double)as_int(v); }

static const char *op_symbol(jop op) {
    static const char *const s[] = {"+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return s[op];
}

static ct_status type_error(jrender *r, const jnode *at, jop op, jv a, jv b) {
    if (op == OP_ADD && (a.kind == JV_STR || a.kind == JV_LIST || a.kind == JV_TUPLE))
        return jr_fail(r, at, "can only concatenate %s (not \"%s\") to %s", jv_type_name(a), jv_type_name(b), jv_type_name(a));
    if (op == OP_MUL && (a.kind == JV_STR || b.kind == JV_STR || jv_is_seq(a) || jv_is_seq(b)))
        return jr_fail(r, at, "can't multiply sequence by non-int of type '%s'", jv_type_name(jv_is_num(a) ? a : b));
    return jr_fail(r, at, "unsupported operand type(s) for %s: '%s' and '%s'", op == OP_POW ? "** or pow()" : op_symbol(op),
                   jv_type_name(a), jv_type_name(b));
}

static ct_status repeat(jrender *r, jv seq, int64_t times, jv *out) {
    if (times < 0)
        times = 0;
    if (seq.kind == JV_STR) {
        jbuf b = {0};
        for (int64_t i = 0; i < times; i++)
            jb_put(&b, seq.u.s.p, seq.u.s.n);
        *out = jv_str_from_buf(&r->a, &b);
        return CT_OK;
    }
    jlist *l = jl_new(&r->a, seq.u.l->n * (size_t)times + 1);
    if (!l)
        return nomem(r);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.u.l->n; k++)
            jl_push(&r->a, l, seq.u.l->v[k]);
    out->kind = seq.kind;
    out->u.l = l;
    return CT_OK;
}

static ct_status num_binop(jrender *r, const jnode *at, jop op, jv a, jv b, jv *out) {
    bool ints = a.kind != JV_FLOAT && b.kind != JV_FLOAT;
    int64_t x = as_int(a), y = as_int(b), z;
    double fx = as_float(a), fy = as_float(b);
    switch (op) {
    case OP_ADD:
        if (ints && __builtin_add_overflow(x, y, &z))
            return jr_fail(r, at, "integer overflow");
        *out = ints ? jv_int(z) : jv_float(fx + fy);
        return CT_OK;
    case OP_SUB:
        if (ints && __builtin_sub_overflow(x, y, &z))
            return jr_fail(r, at, "integer overflow");
        *out = ints ? jv_int(z) : jv_float(fx - fy);
        return CT_OK;
    case OP_MUL:
        if (ints && __builtin_mul_overflow(x, y, &z))
            return jr_fail(r, at, "integer overflow");
        *out = ints ? jv_int(z) : jv_float(fx * fy);
        return CT_OK;
    case OP_DIV:
        if (fy == 0)
            return jr_fail(r, at, "division by zero");
        *out = jv_float(fx / fy);
        return CT_OK;
    case OP_FLOORDIV:
    case OP_MOD:
        if (ints ? y == 0 : fy == 0)
            return jr_fail(r, at, ints ? "integer division or modulo by zero" : "float floor division by zero");
        if (ints) {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            *out = jv_int(op == OP_MOD ? m : q);
        } else {
            double m = fmod(fx, fy);
            if (m != 0 && ((m < 0) != (fy < 0)))
                m += fy;
            *out = jv_float(op == OP_MOD ? m : floor(fx / fy));
        }
        return CT_OK;
    case OP_POW:
        if (ints && y >= 0) {
            int64_t acc = 1;
            for (int64_t i = 0; i < y; i++) {
                if (__builtin_mul_overflow(acc, x, &acc))
                    return jr_fail(r, at, "integer overflow");
                if (acc == 0 || acc == 1)
                    break;
            }
            *out = jv_int(acc);
        } else {
            *out = jv_float(pow(fx, fy));
        }
        return CT_OK;
    default: return jr_fail(r, at, "bad operator");
    }
}

static ct_status contains(jrender *r, const jnode *at, jv item, jv seq, bool *out) {
    switch (seq.kind) {
    case JV_STR:
        if (item.kind != JV_STR)
            return jr_fail(r, at, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        *out = item.u.s.n == 0 || memmem(seq.u.s.p, seq.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return CT_OK;
    case JV_LIST:
    case JV_TUPLE:
        *out = false;
        for (size_t i = 0; i < seq.u.l->n && !*out; i++)
            *out = jv_eq(item, seq.u.l->v[i]);
        return CT_OK;
    case JV_DICT: {
        jv tmp;
        *out = jd_get(seq.u.d, item, &tmp);
        return CT_OK;
    }
    case JV_UNDEF: *out = false; return CT_OK;
    default: return jr_fail(r, at, "argument of type '%s' is not iterable", jv_type_name(seq));
    }
}

ct_status jr_binop(jrender *r, const jnode *at, jop op, jv a, jv b, jv *out) {
    if (op == OP_EQ || op == OP_NE) {
        *out = jv_bool(jv_eq(a, b) == (op == OP_EQ));
        return CT_OK;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        bool in = false;
        CT_TRY(contains(r, at, a, b, &in));
        *out = jv_bool(in == (op == OP_IN));
        return CT_OK;
    }
    if (a.kind == JV_UNDEF)
        return jr_undefined_error(r, at, a);
    if (b.kind == JV_UNDEF)
        return jr_undefined_error(r, at, b);
    if (op >= OP_LT && op <= OP_GE) {
        bool ok;
        bool res = op == OP_LT ? jv_lt(a, b, &ok) : op == OP_GT ? jv_lt(b, a, &ok)
                 : op == OP_LE ? !jv_lt(b, a, &ok) : !jv_lt(a, b, &ok);
        if (!ok)
            return jr_fail(r, at, "'%s' not supported between instances of '%s' and '%s'", op_symbol(op), jv_type_name(a), jv_type_name(b));
        if ((op == OP_LE || op == OP_GE) && ((a.kind == JV_FLOAT && isnan(a.u.f)) || (b.kind == JV_FLOAT && isnan(b.u.f))))
            res = false;
        *out = jv_bool(res);
        return CT_OK;
    }
    if (jv_is_num(a) && jv_is_num(b))
        return num_binop(r, at, op, a, b, out);
    if (op == OP_ADD && a.kind == b.kind && (a.kind == JV_STR || jv_is_seq(a))) {
        if (a.kind == JV_STR) {
            char *p = jar_alloc(&r->a, a.u.s.n + b.u.s.n + 1);
            if (!p)
                return nomem(r);
            memcpy(p, a.u.s.p, a.u.s.n);
            memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
            *out = jv_str(p, a.u.s.n + b.u.s.n);
            return CT_OK;
        }
        jlist *l = jl_new(&r->a, a.u.l->n + b.u.l->n + 1);
        if (!l)
            return nomem(r);
        for (size_t i = 0; i < a.u.l->n; i++)
            jl_push(&r->a, l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++)
            jl_push(&r->a, l, b.u.l->v[i]);
        out->kind = a.kind;
        out->u.l = l;
        return CT_OK;
    }
    if (op == OP_MUL && (a.kind == JV_STR || jv_is_seq(a)) && (b.kind == JV_INT || b.kind == JV_BOOL))
        return repeat(r, a, as_int(b), out);
    if (op == OP_MUL && (b.kind == JV_STR || jv_is_seq(b)) && (a.kind == JV_INT || a.kind == JV_BOOL))
        return repeat(r, b, as_int(a), out);
    if (op == OP_MOD && a.kind == JV_STR)
        return jb_percent_format(r, at, a, b, out);
    return type_error(r, at, op, a, b);
}

// ---- evaluation
static ct_status eval(jrender *r, const jnode *n, jscope *s, jv *out);
static ct_status render_body(jrender *r, jnode *const *items, size_t n, jscope *s, jbuf *out);

static ct_status eval_args(jrender *r, const jnode *n, jscope *s, jv **args, jkwarg **kw) {
    *args = jar_alloc(&r->a, (n->nitems + 1) * sizeof(jv));
    *kw = jar_alloc(&r->a, (n->nitems2 + 1) * sizeof(jkwarg));
    if (!*args || !*kw)
        return nomem(r);
    for (size_t i = 0; i < n->nitems; i++)
        CT_TRY(eval(r, n->items[i], s, &(*args)[i]));
    for (size_t i = 0; i < n->nitems2; i++) {
        (*kw)[i].name = n->names[i];
        CT_TRY(eval(r, n->items2[i], s, &(*kw)[i].v));
    }
    return CT_OK;
}

static ct_status slice_bound(jrender *r, const jnode *n, jscope *s, bool *given, int64_t *v) {
    *given = false;
    if (!n)
        return CT_OK;
    jv x;
    CT_TRY(eval(r, n, s, &x));
    if (x.kind == JV_NONE)
        return CT_OK;
    if (x.kind != JV_INT && x.kind != JV_BOOL)
        return jr_fail(r, n, "slice indices must be integers or None or have an __index__ method");
    *given = true;
    *v = as_int(x);
    return CT_OK;
}

// Python's slice.indices(): normalised start, stop for a step.
static void slice_indices(int64_t len, bool hs, int64_t start, bool he, int64_t stop, int64_t step, int64_t *o_start, int64_t *o_stop) {
    if (!hs) {
        start = step < 0 ? len - 1 : 0;
    } else {
        if (start < 0)
            start += len;
        if (start < 0)
            start = step < 0 ? -1 : 0;
        if (start >= len)
            start = step < 0 ? len - 1 : len;
    }
    if (!he) {
        stop = step < 0 ? -1 : len;
    } else {
        if (stop < 0)
            stop += len;
        if (stop < 0)
            stop = step < 0 ? -1 : 0;
        if (stop >= len)
            stop = step < 0 ? len - 1 : len;
    }
    *o_start = start;
    *o_stop = stop;
}

static ct_status eval_slice(jrender *r, const jnode *n, jscope *s, jv *out) {
    jv obj;
    CT_TRY(eval(r, n->a, s, &obj));
    bool hs, he, hst;
    int64_t start = 0, stop = 0, step = 1;
    CT_TRY(slice_bound(r, n->b, s, &hs, &start));
    CT_TRY(slice_bound(r, n->c, s, &he, &stop));
    CT_TRY(slice_bound(r, n->d, s, &hst, &step));
    if (!hst)
        step = 1;
    if (step == 0)
        return jr_fail(r, n, "slice step cannot be zero");
    if (obj.kind == JV_UNDEF)
        return jr_undefined_error(r, n, obj);
    jlist *items;
    if (obj.kind == JV_STR || jv_is_seq(obj))
        CT_TRY(jr_iter(r, n, obj, &items));
    else
        return jr_fail(r, n, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t a, b;
    slice_indices((int64_t)items->n, hs, start, he, stop, step, &a, &b);
    jlist *l = jl_new(&r->a, 4);
    if (!l)
        return nomem(r);
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step)
        jl_push(&r->a, l, items->v[i]);
    if (obj.kind == JV_STR) {
        jbuf buf = {0};
        for (size_t i = 0; i < l->n; i++)
            jb_put(&buf, l->v[i].u.s.p, l->v[i].u.s.n);
        *out = jv_str_from_buf(&r->a, &buf);
    } else {
        out->kind = obj.kind;
        out->u.l = l;
    }
    return CT_OK;
}

static ct_status eval_filter(jrender *r, const jnode *n, jscope *s, jv base, jv *out) {
    jv v = base;
    if (n->a && n->a->kind == N_FILTER)
        CT_TRY(eval_filter(r, n->a, s, base, &v));
    else if (n->a)
        CT_TRY(eval(r, n->a, s, &v));
    jv *args;
    jkwarg *kw;
    CT_TRY(eval_args(r, n, s, &args, &kw));
    return jr_filter(r, n, n->s, v, args, n->nitems, kw, n->nitems2, out);
}

static ct_status eval_name(jrender *r, const jnode *n, jscope *s, jv *out) {
    if (scope_get(s, n->s, out))
        return CT_OK;
    if (jb_is_global(n->s, n->slen)) {
        *out = make_func(r, JF_BUILTIN, n->s, jv_none());
        return CT_OK;
    }
    *out = make_undef(r, n->s, n->slen, NULL);
    return CT_OK;
}

static ct_status eval_compare(jrender *r, const jnode *n, jscope *s, jv *out) {
    jv left;
    CT_TRY(eval(r, n->a, s, &left));
    for (size_t i = 0; i < n->nitems; i++) {
        jv right, res;
        CT_TRY(eval(r, n->items[i], s, &right));
        CT_TRY(jr_binop(r, n, n->ops[i], left, right, &res));
        if (!jv_truthy(res)) {
            *out = jv_bool(false);
            return CT_OK;
        }
        left = right;
    }
    *out = jv_bool(true);
    return CT_OK;
}

static ct_status eval_seq(jrender *r, const jnode *n, jscope *s, jkind kind, jv *out) {
    jlist *l = jl_new(&r->a, n->nitems + 1);
    if (!l)
        return nomem(r);
    for (size_t i = 0; i < n->nitems; i++) {
        jv x;
        CT_TRY(eval(r, n->items[i], s, &x));
        if (!jl_push(&r->a, l, x))
            return nomem(r);
    }
    out->kind = kind;
    out->u.l = l;
    return CT_OK;
}

static ct_status eval(jrender *r, const jnode *n, jscope *s, jv *out) {
    jv a, b;
    switch (n->kind) {
    case N_CONST: *out = n->val; return CT_OK;
    case N_NAME: return eval_name(r, n, s, out);
    case N_LIST: return eval_seq(r, n, s, JV_LIST, out);
    case N_TUPLE: return eval_seq(r, n, s, JV_TUPLE, out);
    case N_DICT: {
        jdict *d = jd_new(&r->a, n->nitems + 1);
        if (!d)
            return nomem(r);
        for (size_t i = 0; i < n->nitems; i++) {
            CT_TRY(eval(r, n->items[i], s, &a));
            CT_TRY(eval(r, n->items2[i], s, &b));
            if (!jd_set(&r->a, d, a, b))
                return nomem(r);
        }
        out->kind = JV_DICT;
        out->u.d = d;
        return CT_OK;
    }
    case N_GETATTR:
        CT_TRY(eval(r, n->a, s, &a));
        return jr_getattr(r, n, a, n->s, n->slen, out);
    case N_GETITEM:
        CT_TRY(eval(r, n->a, s, &a));
        CT_TRY(eval(r, n->b, s, &b));
        return jr_getitem(r, n, a, b, out);
    case N_SLICE: return eval_slice(r, n, s, out);
    case N_CALL: {
        CT_TRY(eval(r, n->a, s, &a));
        jv *args;
        jkwarg *kw;
        CT_TRY(eval_args(r, n, s, &args, &kw));
        return jr_call(r, n, a, args, n->nitems, kw, n->nitems2, out);
    }
    case N_FILTER: return eval_filter(r, n, s, jv_undef(), out);
    case N_TEST: {
        CT_TRY(eval(r, n->a, s, &a));
        jv *args;
        jkwarg *kw;
        CT_TRY(eval_args(r, n, s, &args, &kw));
        bool res;
        CT_TRY(jr_test(r, n, n->s, a, args, n->nitems, &res));
        *out = jv_bool(res != n->flag);
        return CT_OK;
    }
    case N_BINOP:
        CT_TRY(eval(r, n->a, s, &a));
        CT_TRY(eval(r, n->b, s, &b));
        return jr_binop(r, n, n->op, a, b, out);
    case N_NEG:
    case N_POS:
        CT_TRY(eval(r, n->a, s, &a));
        if (a.kind == JV_UNDEF)
            return jr_undefined_error(r, n, a);
        if (!jv_is_num(a))
            return jr_fail(r, n, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+', jv_type_name(a));
        if (n->kind == N_POS)
            *out = a.kind == JV_BOOL ? jv_int(a.u.b) : a;
        else
            *out = a.kind == JV_FLOAT ? jv_float(-a.u.f) : jv_int(-as_int(a));
        return CT_OK;
    case N_NOT:
        CT_TRY(eval(r, n->a, s, &a));
        *out = jv_bool(!jv_truthy(a));
        return CT_OK;
    case N_AND:
    case N_OR:
        CT_TRY(eval(r, n->a, s, &a));
        if (jv_truthy(a) == (n->kind == N_OR)) {
            *out = a;
            return CT_OK;
        }
        return eval(r, n->b, s, out);
    case N_COMPARE: return eval_compare(r, n, s, out);
    case N_CONCAT: {
        jbuf buf = {0};
        for (size_t i = 0; i < n->nitems; i++) {
            ct_status st = eval(r, n->items[i], s, &a);
            if (st != CT_OK) {
                jb_free(&buf);
                return st;
            }
            jv_to_str(a, &buf);
        }
        *out = jv_str_from_buf(&r->a, &buf);
        return CT_OK;
    }
    case N_COND:
        CT_TRY(eval(r, n->a, s, &a));
        if (jv_truthy(a))
            return eval(r, n->b, s, out);
        if (n->c)
            return eval(r, n->c, s, out);
        *out = jv_undef();
        return CT_OK;
    default: return jr_fail(r, n, "not an expression");
    }
}

// ---- calls
static ct_status call_macro(jrender *r, const jnode *at, const jfunc *fn, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    const jnode *m = fn->macro;
    if (r->depth >= MAX_CALL_DEPTH)
        return jr_fail(r, at, "maximum macro recursion depth exceeded");
    jscope *s = scope_new(r, fn->env);
    jlist *varargs = jl_new(&r->a, 2);
    jdict *kwargs = jd_new(&r->a, 2);
    if (!s || !varargs || !kwargs)
        return nomem(r);
    bool *bound = jar_alloc(&r->a, (m->nnames + 1) * sizeof(bool));
    if (!bound)
        return nomem(r);
    for (size_t i = 0; i < nargs; i++) {
        if (i < m->nnames) {
            scope_set(r, s, m->names[i], args[i]);
            bound[i] = true;
        } else {
            jl_push(&r->a, varargs, args[i]);
        }
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < m->nnames && strcmp(m->names[i], kw[k].name) != 0)
            i++;
        if (i < m->nnames) {
            if (bound[i])
                return jr_fail(r, at, "macro '%s' got multiple values for argument '%s'", fn->name, kw[k].name);
            scope_set(r, s, m->names[i], kw[k].v);
            bound[i] = true;
        } else if (!strcmp(kw[k].name, "caller")) {
            scope_set(r, s, "caller", kw[k].v);
        } else {
            jd_set(&r->a, kwargs, jv_str(kw[k].name, strlen(kw[k].name)), kw[k].v);
        }
    }
    for (size_t i = 0; i < m->nnames; i++) {
        if (bound[i])
            continue;
        jv v = make_undef(r, m->names[i], strlen(m->names[i]), NULL);
        if (m->items2[i])
            CT_TRY(eval(r, m->items2[i], s, &v));
        scope_set(r, s, m->names[i], v);
    }
    jv va = {.kind = JV_TUPLE, .u.l = varargs}, kwv = {.kind = JV_DICT, .u.d = kwargs};
    scope_set(r, s, "varargs", va);
    scope_set(r, s, "kwargs", kwv);
    jbuf buf = {0};
    r->depth++;
    ct_status st = render_body(r, m->items, m->nitems, s, &buf);
    r->depth--;
    r->flow = FLOW_NORMAL;
    if (st != CT_OK) {
        jb_free(&buf);
        return st;
    }
    *out = jv_str_from_buf(&r->a, &buf);
    return CT_OK;
}

ct_status jr_call(jrender *r, const jnode *at, jv fn, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    if (fn.kind == JV_UNDEF)
        return jr_undefined_error(r, at, fn);
    if (fn.kind != JV_FUNC)
        return jr_fail(r, at, "'%s' object is not callable", jv_type_name(fn));
    const jfunc *f = fn.u.fn;
    switch (f->kind) {
    case JF_BUILTIN: return jb_global(r, at, f->name, args, nargs, kw, nkw, out);
    case JF_METHOD: return jb_method(r, at, f->self, f->name, args, nargs, kw, nkw, out);
    case JF_MACRO: return call_macro(r, at, f, args, nargs, kw, nkw, out);
    case JF_LOOP_CYCLE:
        if (nargs == 0)
            return jr_fail(r, at, "no items for cycling given");
        *out = args[f->self.u.loop->index0 % nargs];
        return CT_OK;
    case JF_LOOP_CHANGED: {
        jloop *L = f->self.u.loop;
        jlist *l = jl_new(&r->a, nargs + 1);
        if (!l)
            return nomem(r);
        for (size_t i = 0; i < nargs; i++)
            jl_push(&r->a, l, args[i]);
        jv now = {.kind = JV_LIST, .u.l = l};
        bool changed = !L->changed_set || !jv_eq(now, L->last_changed);
        L->last_changed = now;
        L->changed_set = true;
        *out = jv_bool(changed);
        return CT_OK;
    }
    }
    return jr_fail(r, at, "not callable");
}

ct_status jr_filter(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    return jb_filter(r, at, name, v, args, nargs, kw, nkw, out);
}

ct_status jr_test(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, bool *out) {
    return jb_test(r, at, name, v, args, nargs, out);
}

// ---- statements
static ct_status assign(jrender *r, const jnode *target, jscope *s, jv v) {
    if (target->kind == N_NAME)
        return scope_set(r, s, target->s, v) ? CT_OK : nomem(r);
    if (target->kind == N_GETATTR) {
        jv ns;
        CT_TRY(eval(r, target->a, s, &ns));
        if (ns.kind != JV_NS)
            return jr_fail(r, target, "cannot assign attribute on non-namespace object");
        return jd_set(&r->a, ns.u.d, jv_str(target->s, target->slen), v) ? CT_OK : nomem(r);
    }
    // tuple unpacking
    jlist *items;
    CT_TRY(jr_iter(r, target, v, &items));
    if (items->n != target->nitems)
        return jr_fail(r, target, items->n > target->nitems ? "too many values to unpack (expected %zu)" : "not enough values to unpack (expected %zu, got %zu)",
                       target->nitems, items->n);
    for (size_t i = 0; i < target->nitems; i++)
        CT_TRY(assign(r, target->items[i], s, items->v[i]));
    return CT_OK;
}

static ct_status render_for(jrender *r, const jnode *n, jscope *s, jbuf *out) {
    jv seqv;
    CT_TRY(eval(r, n->b, s, &seqv));
    jlist *items;
    CT_TRY(jr_iter(r, n->b, seqv, &items));
    if (n->c) { // "for x in xs if cond": filter first, so loop.length counts kept items
        jlist *kept = jl_new(&r->a, items->n + 1);
        if (!kept)
            return nomem(r);
        for (size_t i = 0; i < items->n; i++) {
            jscope *fs = scope_new(r, s);
            if (!fs)
                return nomem(r);
            CT_TRY(assign(r, n->a, fs, items->v[i]));
            jv c;
            CT_TRY(eval(r, n->c, fs, &c));
            if (jv_truthy(c))
                jl_push(&r->a, kept, items->v[i]);
        }
        items = kept;
    }
    jloop *L = jar_alloc(&r->a, sizeof *L);
    if (!L)
        return nomem(r);
    L->items = items;
    L->depth = 1;
    jv loopv = {.kind = JV_LOOP, .u.loop = L};
    for (size_t i = 0; i < items->n; i++) {
        L->index0 = i;
        jscope *is = scope_new(r, s);
        if (!is || !scope_set(r, is, "loop", loopv))
            return nomem(r);
        CT_TRY(assign(r, n->a, is, items->v[i]));
        CT_TRY(render_body(r, n->items, n->nitems, is, out));
        jflow f = r->flow;
        r->flow = FLOW_NORMAL;
        if (f == FLOW_BREAK)
            break;
    }
    if (items->n == 0 && n->nitems2) {
        jscope *es = scope_new(r, s);
        if (!es)
            return nomem(r);
        CT_TRY(render_body(r, n->items2, n->nitems2, es, out));
    }
    return CT_OK;
}

static ct_status capture(jrender *r, jnode *const *items, size_t nitems, jscope *s, jv *out) {
    jbuf buf = {0};
    ct_status st = render_body(r, items, nitems, s, &buf);
    if (st != CT_OK) {
        jb_free(&buf);
        return st;
    }
    *out = jv_str_from_buf(&r->a, &buf);
    return CT_OK;
}

static ct_status render_callblock(jrender *r, const jnode *n, jscope *s, jbuf *out) {
    jv caller = make_func(r, JF_MACRO, "caller", jv_none());
    if (caller.kind != JV_FUNC)
        return nomem(r);
    caller.u.fn->macro = n;
    caller.u.fn->env = s;
    const jnode *call = n->a;
    jv fn, *args, res;
    jkwarg *kw;
    CT_TRY(eval(r, call->a, s, &fn));
    CT_TRY(eval_args(r, call, s, &args, &kw));
    jkwarg *kw2 = jar_alloc(&r->a, (call->nitems2 + 1) * sizeof *kw2);
    if (!kw2)
        return nomem(r);
    if (call->nitems2)
        memcpy(kw2, kw, call->nitems2 * sizeof *kw2);
    kw2[call->nitems2].name = "caller";
    kw2[call->nitems2].v = caller;
    CT_TRY(jr_call(r, call, fn, args, call->nitems, kw2, call->nitems2 + 1, &res));
    jv_to_str(res, out);
    return CT_OK;
}

static ct_status render_node(jrender *r, const jnode *n, jscope *s, jbuf *out) {
    jv v;
    switch (n->kind) {
    case S_DATA: jb_put(out, n->s, n->slen); return CT_OK;
    case S_PRINT:
        CT_TRY(eval(r, n->a, s, &v));
        jv_to_str(v, out);
        return CT_OK;
    case S_IF:
        CT_TRY(eval(r, n->a, s, &v));
        if (jv_truthy(v))
            return render_body(r, n->items, n->nitems, s, out);
        return render_body(r, n->items2, n->nitems2, s, out);
    case S_FOR: return render_for(r, n, s, out);
    case S_SET:
        CT_TRY(eval(r, n->b, s, &v));
        return assign(r, n->a, s, v);
    case S_SETBLOCK:
        CT_TRY(capture(r, n->items, n->nitems, s, &v));
        if (n->b)
            CT_TRY(eval_filter(r, n->b, s, v, &v));
        return assign(r, n->a, s, v);
    case S_MACRO: {
        jv fn = make_func(r, JF_MACRO, n->s, jv_none());
        if (fn.kind != JV_FUNC)
            return nomem(r);
        fn.u.fn->macro = n;
        fn.u.fn->env = s;
        return scope_set(r, s, n->s, fn) ? CT_OK : nomem(r);
    }
    case S_CALLBLOCK: return render_callblock(r, n, s, out);
    case S_FILTERBLOCK:
        CT_TRY(capture(r, n->items, n->nitems, s, &v));
        CT_TRY(eval_filter(r, n->a, s, v, &v));
        jv_to_str(v, out);
        return CT_OK;
    case S_BREAK: r->flow = FLOW_BREAK; return CT_OK;
    case S_CONTINUE: r->flow = FLOW_CONTINUE; return CT_OK;
    case S_SCOPE: {
        jscope *inner = n->flag ? scope_new(r, s) : s;
        if (!inner)
            return nomem(r);
        return render_body(r, n->items, n->nitems, inner, out);
    }
    default: return jr_fail(r, n, "not a statement");
    }
}

static ct_status render_body(jrender *r, jnode *const *items, size_t n, jscope *s, jbuf *out) {
    for (size_t i = 0; i < n && r->flow == FLOW_NORMAL; i++) {
        CT_TRY(render_node(r, items[i], s, out));
        if (r->a.oom || out->oom)
            return nomem(r);
    }
    return CT_OK;
}

// ---- public API
ct_status ct_jinja_compile(ct_jinja_template **t, const char *src, size_t len, const char *name, ct_error *err) {
    *t = NULL;
    ct_jinja_template *tpl = calloc(1, sizeof *tpl);
    if (!tpl)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    tpl->name = strdup(name ? name : "template");
    if (!tpl->name) {
        free(tpl);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    jtok *toks;
    size_t ntoks;
    ct_status st = jinja_lex(&tpl->arena, src, len, tpl->name, &toks, &ntoks, err);
    if (st == CT_OK)
        st = jinja_parse(&tpl->arena, toks, ntoks, tpl->name, &tpl->root, err);
    if (st != CT_OK) {
        ct_jinja_free(tpl);
        return st;
    }
    *t = tpl;
    return CT_OK;
}

ct_status ct_jinja_render(const ct_jinja_template *t, const cJSON *context, char **out, ct_error *err) {
    *out = NULL;
    jrender r = {.t = t, .err = err};
    if (context && !cJSON_IsObject(context)) {
        return ct_fail(err, CT_ERR_INVALID, "%s: the render context must be a JSON object", t->name);
    }
    jscope *globals = scope_new(&r, NULL);
    jscope *top = globals ? scope_new(&r, globals) : NULL;
    ct_status st = top ? CT_OK : nomem(&r);
    for (const cJSON *c = context ? context->child : NULL; c && st == CT_OK; c = c->next) {
        if (!scope_set(&r, globals, c->string, jv_from_cjson(&r.a, c)))
            st = nomem(&r);
    }
    jbuf buf = {0};
    if (st == CT_OK)
        st = render_body(&r, t->root->items, t->root->nitems, top, &buf);
    if (st == CT_OK && (buf.oom || r.a.oom))
        st = nomem(&r);
    jar_free(&r.a);
    if (st != CT_OK) {
        jb_free(&buf);
        return st;
    }
    if (!buf.p) {
        buf.p = calloc(1, 1);
        if (!buf.p)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    *out = buf.p;
    return CT_OK;
}

void ct_jinja_free(ct_jinja_template *t) {
    if (!t)
        return;
    jar_free(&t->arena);
    free(t->name);
    free(t);
}
