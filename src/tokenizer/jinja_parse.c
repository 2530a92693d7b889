// jinja_parse.c: builds the AST from tokens, following the grammar of
// Jinja2's parser (operator precedence, filters and tests binding tighter
// than unary minus' operand, "a if c else b", tuples, slices, statements).
#include <stdio.h>
#include <string.h>

#include "jinja_internal.h"

typedef struct parser {
    jarena *a;
    const jtok *t;
    size_t n, pos;
    const char *name;
    ct_error *err;
} parser;

// A growable array of node pointers, copied into the arena when done.
typedef struct nvec {
    jnode **p;
    size_t n, cap;
} nvec;

static bool nv_push(parser *P, nvec *v, jnode *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        jnode **np = jar_alloc(P->a, cap * sizeof *np);
        if (!np)
            return false;
        if (v->n)
            memcpy(np, v->p, v->n * sizeof *np);
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return true;
}

static const jtok *cur(const parser *P) { return &P->t[P->pos < P->n ? P->pos : P->n - 1]; }
static const jtok *peek(const parser *P, size_t k) {
    size_t i = P->pos + k;
    return &P->t[i < P->n ? i : P->n - 1];
}
static void advance(parser *P) {
    if (P->pos < P->n - 1)
        P->pos++;
}

static bool tok_is(const jtok *t, jtok_kind k, const char *s) {
    if (t->kind != k)
        return false;
    return !s || (t->n == strlen(s) && memcmp(t->s, s, t->n) == 0);
}
static bool is_op(const parser *P, const char *s) { return tok_is(cur(P), T_OP, s); }
static bool is_name(const parser *P, const char *s) { return tok_is(cur(P), T_NAME, s); }

static void describe(const jtok *t, char *buf, size_t n) {
    switch (t->kind) {
    case T_EOF: snprintf(buf, n, "end of template"); break;
    case T_VAR_END: snprintf(buf, n, "end of print statement"); break;
    case T_BLOCK_END: snprintf(buf, n, "end of statement block"); break;
    case T_VAR_BEGIN: snprintf(buf, n, "begin of print statement"); break;
    case T_BLOCK_BEGIN: snprintf(buf, n, "begin of statement block"); break;
    case T_DATA: snprintf(buf, n, "template data"); break;
    case T_STRING: snprintf(buf, n, "string"); break;
    default: snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); break;
    }
}

static ct_status failt(parser *P, const jtok *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ct_status failt(parser *P, const jtok *t, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_fail(P->err, CT_ERR_FORMAT, "%s:%d:%d: %s", P->name, t->line, t->col, msg);
}

static ct_status expected(parser *P, const char *what) {
    char got[64];
    describe(cur(P), got, sizeof got);
    return failt(P, cur(P), "expected %s, got %s", what, got);
}

static ct_status expect_op(parser *P, const char *op) {
    if (!is_op(P, op)) {
        char what[32];
        snprintf(what, sizeof what, "'%s'", op);
        return expected(P, what);
    }
    advance(P);
    return CT_OK;
}

static ct_status expect_kind(parser *P, jtok_kind k, const char *what) {
    if (cur(P)->kind != k)
        return expected(P, what);
    advance(P);
    return CT_OK;
}

static ct_status oom(parser *P) { return ct_fail(P->err, CT_ERR_NOMEM, "%s: out of memory", P->name); }

static jnode *mk(parser *P, jnode_kind k, const jtok *at) {
    jnode *n = jar_alloc(P->a, sizeof *n);
    if (n) {
        n->kind = k;
        n->line = at->line;
        n->col = at->col;
    }
    return n;
}
#define MK(var, kind, tok)              \
    jnode *var = mk(P, kind, tok);      \
    if (!var)                           \
        return oom(P)

static ct_status parse_expr(parser *P, bool with_condexpr, jnode **out);
static ct_status parse_unary(parser *P, bool with_filter, jnode **out);
static ct_status parse_or(parser *P, jnode **out);
static ct_status parse_tuple(parser *P, bool with_condexpr, const char *extra_end, bool explicit_parens, jnode **out);
static ct_status parse_filter(parser *P, jnode *node, bool start_inline, jnode **out);
static ct_status parse_body(parser *P, const char *const *ends, const char *tag, nvec *body);

// ---- expressions
static ct_status parse_call_args(parser *P, jnode *call) {
    nvec args = {0}, kwv = {0};
    const char **names = NULL;
    size_t nnames = 0, cap = 0;
    CT_TRY(expect_op(P, "("));
    while (!is_op(P, ")")) {
        if (args.n + kwv.n > 0)
            CT_TRY(expect_op(P, ","));
        if (is_op(P, ")"))
            break;
        if (cur(P)->kind == T_NAME && tok_is(peek(P, 1), T_OP, "=")) {
            if (nnames == cap) {
                cap = cap ? cap * 2 : 4;
                const char **nn = jar_alloc(P->a, cap * sizeof *nn);
                if (!nn)
                    return oom(P);
                if (nnames)
                    memcpy(nn, names, nnames * sizeof *nn);
                names = nn;
            }
            names[nnames++] = jar_strdup(P->a, cur(P)->s, cur(P)->n);
            advance(P);
            advance(P);
            jnode *v;
            CT_TRY(parse_expr(P, true, &v));
            if (!nv_push(P, &kwv, v))
                return oom(P);
        } else {
            if (kwv.n)
                return failt(P, cur(P), "positional argument follows keyword argument");
            jnode *v;
            CT_TRY(parse_expr(P, true, &v));
            if (!nv_push(P, &args, v))
                return oom(P);
        }
    }
    advance(P);
    call->items = args.p;
    call->nitems = args.n;
    call->items2 = kwv.p;
    call->nitems2 = kwv.n;
    call->names = names;
    call->nnames = nnames;
    return CT_OK;
}

static ct_status parse_list_like(parser *P, jnode_kind kind, const char *close, jnode **out) {
    MK(n, kind, cur(P));
    advance(P);
    nvec items = {0}, vals = {0};
    while (!is_op(P, close)) {
        if (items.n)
            CT_TRY(expect_op(P, ","));
        if (is_op(P, close))
            break;
        jnode *x;
        CT_TRY(parse_expr(P, true, &x));
        if (!nv_push(P, &items, x))
            return oom(P);
        if (kind == N_DICT) {
            CT_TRY(expect_op(P, ":"));
            CT_TRY(parse_expr(P, true, &x));
            if (!nv_push(P, &vals, x))
                return oom(P);
        }
    }
    advance(P);
    n->items = items.p;
    n->nitems = items.n;
    n->items2 = vals.p;
    n->nitems2 = vals.n;
    *out = n;
    return CT_OK;
}

static ct_status parse_primary(parser *P, jnode **out) {
    const jtok *t = cur(P);
    if (t->kind == T_NAME) {
        MK(n, N_CONST, t);
        if (tok_is(t, T_NAME, "true") || tok_is(t, T_NAME, "True")) {
            n->val = jv_bool(true);
        } else if (tok_is(t, T_NAME, "false") || tok_is(t, T_NAME, "False")) {
            n->val = jv_bool(false);
        } else if (tok_is(t, T_NAME, "none") || tok_is(t, T_NAME, "None")) {
            n->val = jv_none();
        } else {
            n->kind = N_NAME;
            n->s = jar_strdup(P->a, t->s, t->n);
            n->slen = t->n;
        }
        advance(P);
        *out = n;
        return CT_OK;
    }
    if (t->kind == T_STRING) {
        MK(n, N_CONST, t);
        jbuf b = {0};
        while (cur(P)->kind == T_STRING) { // adjacent literals concatenate
            jb_put(&b, cur(P)->s, cur(P)->n);
            advance(P);
        }
        n->val = jv_str_from_buf(P->a, &b);
        *out = n;
        return CT_OK;
    }
    if (t->kind == T_INT || t->kind == T_FLOAT) {
        MK(n, N_CONST, t);
        n->val = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
        advance(P);
        *out = n;
        return CT_OK;
    }
    if (tok_is(t, T_OP, "(")) {
        advance(P);
        CT_TRY(parse_tuple(P, true, NULL, true, out));
        return expect_op(P, ")");
    }
    if (tok_is(t, T_OP, "["))
        return parse_list_like(P, N_LIST, "]", out);
    if (tok_is(t, T_OP, "{"))
        return parse_list_like(P, N_DICT, "}", out);
    char got[64];
    describe(t, got, sizeof got);
    return failt(P, t, "unexpected %s", got);
}

static bool slice_end(const parser *P) { return is_op(P, "]") || is_op(P, ","); }

static ct_status parse_subscribed(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *start = NULL;
    if (!is_op(P, ":")) {
        CT_TRY(parse_expr(P, true, &start));
        if (!is_op(P, ":")) {
            *out = start;
            return CT_OK;
        }
    }
    MK(s, N_SLICE, t);
    s->b = start;
    advance(P); // ':'
    if (!slice_end(P) && !is_op(P, ":"))
        CT_TRY(parse_expr(P, true, &s->c));
    if (is_op(P, ":")) {
        advance(P);
        if (!slice_end(P))
            CT_TRY(parse_expr(P, true, &s->d));
    }
    *out = s;
    return CT_OK;
}

static ct_status parse_postfix(parser *P, jnode *node, jnode **out) {
    for (;;) {
        const jtok *t = cur(P);
        if (tok_is(t, T_OP, ".")) {
            advance(P);
            const jtok *k = cur(P);
            if (k->kind == T_NAME) {
                MK(g, N_GETATTR, k);
                g->a = node;
                g->s = jar_strdup(P->a, k->s, k->n);
                g->slen = k->n;
                node = g;
            } else if (k->kind == T_INT) {
                MK(g, N_GETITEM, k);
                MK(c, N_CONST, k);
                c->val = jv_int(k->i);
                g->a = node;
                g->b = c;
                node = g;
            } else {
                return expected(P, "name or number");
            }
            advance(P);
        } else if (tok_is(t, T_OP, "[")) {
            advance(P);
            MK(g, N_GETITEM, t);
            nvec idx = {0};
            while (!is_op(P, "]")) {
                if (idx.n)
                    CT_TRY(expect_op(P, ","));
                if (is_op(P, "]"))
                    break;
                jnode *x = NULL;
                CT_TRY(parse_subscribed(P, &x));
                if (!nv_push(P, &idx, x))
                    return oom(P);
            }
            if (idx.n == 0)
                return expected(P, "subscript");
            advance(P);
            g->a = node;
            if (idx.n == 1) {
                g->b = idx.p[0];
            } else {
                MK(tup, N_TUPLE, t);
                tup->items = idx.p;
                tup->nitems = idx.n;
                g->b = tup;
            }
            if (g->b->kind == N_SLICE) { // obj[a:b:c] becomes one N_SLICE node
                g->b->a = node;
                g = g->b;
            }
            node = g;
        } else if (tok_is(t, T_OP, "(")) {
            MK(c, N_CALL, t);
            c->a = node;
            CT_TRY(parse_call_args(P, c));
            node = c;
        } else {
            *out = node;
            return CT_OK;
        }
    }
}

static ct_status dotted_name(parser *P, jnode *n) {
    const jtok *t = cur(P);
    if (t->kind != T_NAME)
        return expected(P, "name");
    jbuf b = {0};
    jb_put(&b, t->s, t->n);
    advance(P);
    while (is_op(P, ".") && peek(P, 1)->kind == T_NAME) {
        advance(P);
        jb_putc(&b, '.');
        jb_put(&b, cur(P)->s, cur(P)->n);
        advance(P);
    }
    jv s = jv_str_from_buf(P->a, &b);
    n->s = s.u.s.p;
    n->slen = s.u.s.n;
    return CT_OK;
}

static ct_status parse_filter(parser *P, jnode *node, bool start_inline, jnode **out) {
    while (is_op(P, "|") || start_inline) {
        if (!start_inline)
            advance(P);
        start_inline = false;
        const jtok *t = cur(P);
        MK(f, N_FILTER, t);
        CT_TRY(dotted_name(P, f));
        if (!jinja_filter_exists(f->s, f->slen))
            return failt(P, t, "No filter named '%s'.", f->s);
        if (is_op(P, "("))
            CT_TRY(parse_call_args(P, f));
        f->a = node;
        node = f;
    }
    *out = node;
    return CT_OK;
}

static ct_status parse_test(parser *P, jnode *node, jnode **out) {
    advance(P); // 'is'
    bool negated = false;
    if (is_name(P, "not")) {
        advance(P);
        negated = true;
    }
    const jtok *t = cur(P);
    MK(n, N_TEST, t);
    CT_TRY(dotted_name(P, n));
    if (!jinja_test_exists(n->s, n->slen))
        return failt(P, t, "No test named '%s'.", n->s);
    const jtok *c = cur(P);
    if (is_op(P, "(")) {
        CT_TRY(parse_call_args(P, n));
    } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT || c->kind == T_FLOAT || tok_is(c, T_OP, "(") ||
                tok_is(c, T_OP, "[") || tok_is(c, T_OP, "{")) &&
               !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
        if (is_name(P, "is"))
            return failt(P, c, "You cannot chain multiple tests with is");
        jnode *arg;
        CT_TRY(parse_primary(P, &arg));
        CT_TRY(parse_postfix(P, arg, &arg));
        n->items = jar_alloc(P->a, sizeof(jnode *));
        if (!n->items)
            return oom(P);
        n->items[0] = arg;
        n->nitems = 1;
    }
    n->a = node;
    n->flag = negated;
    *out = n;
    return CT_OK;
}

static ct_status parse_unary(parser *P, bool with_filter, jnode **out) {
    const jtok *t = cur(P);
    jnode *node;
    if (is_op(P, "-") || is_op(P, "+")) {
        MK(u, is_op(P, "-") ? N_NEG : N_POS, t);
        advance(P);
        CT_TRY(parse_unary(P, false, &u->a));
        node = u;
    } else {
        CT_TRY(parse_primary(P, &node));
    }
    CT_TRY(parse_postfix(P, node, &node));
    while (with_filter) {
        if (is_op(P, "|"))
            CT_TRY(parse_filter(P, node, false, &node));
        else if (is_name(P, "is"))
            CT_TRY(parse_test(P, node, &node));
        else if (is_op(P, "("))
            CT_TRY(parse_postfix(P, node, &node));
        else
            break;
    }
    *out = node;
    return CT_OK;
}

static ct_status binop(parser *P, const jtok *t, jop op, jnode *l, jnode *r, jnode **out) {
    MK(n, N_BINOP, t);
    n->op = op;
    n->a = l;
    n->b = r;
    *out = n;
    return CT_OK;
}

static ct_status parse_pow(parser *P, jnode **out) {
    CT_TRY(parse_unary(P, true, out));
    while (is_op(P, "**")) {
        const jtok *t = cur(P);
        advance(P);
        jnode *r;
        CT_TRY(parse_unary(P, true, &r));
        CT_TRY(binop(P, t, OP_POW, *out, r, out));
    }
    return CT_OK;
}

static ct_status parse_math2(parser *P, jnode **out) {
    CT_TRY(parse_pow(P, out));
    for (;;) {
        const jtok *t = cur(P);
        jop op;
        if (is_op(P, "*"))
            op = OP_MUL;
        else if (is_op(P, "/"))
            op = OP_DIV;
        else if (is_op(P, "//"))
            op = OP_FLOORDIV;
        else if (is_op(P, "%"))
            op = OP_MOD;
        else
            return CT_OK;
        advance(P);
        jnode *r;
        CT_TRY(parse_pow(P, &r));
        CT_TRY(binop(P, t, op, *out, r, out));
    }
}

static ct_status parse_concat(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *first;
    CT_TRY(parse_math2(P, &first));
    if (!is_op(P, "~")) {
        *out = first;
        return CT_OK;
    }
    nvec parts = {0};
    if (!nv_push(P, &parts, first))
        return oom(P);
    while (is_op(P, "~")) {
        advance(P);
        jnode *x;
        CT_TRY(parse_math2(P, &x));
        if (!nv_push(P, &parts, x))
            return oom(P);
    }
    MK(n, N_CONCAT, t);
    n->items = parts.p;
    n->nitems = parts.n;
    *out = n;
    return CT_OK;
}

static ct_status parse_math1(parser *P, jnode **out) {
    CT_TRY(parse_concat(P, out));
    while (is_op(P, "+") || is_op(P, "-")) {
        const jtok *t = cur(P);
        jop op = is_op(P, "+") ? OP_ADD : OP_SUB;
        advance(P);
        jnode *r;
        CT_TRY(parse_concat(P, &r));
        CT_TRY(binop(P, t, op, *out, r, out));
    }
    return CT_OK;
}

static ct_status parse_compare(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *first;
    CT_TRY(parse_math1(P, &first));
    nvec rhs = {0};
    jop ops[64];
    for (;;) {
        jop op;
        if (is_op(P, "=="))
            op = OP_EQ;
        else if (is_op(P, "!="))
            op = OP_NE;
        else if (is_op(P, "<"))
            op = OP_LT;
        else if (is_op(P, "<="))
            op = OP_LE;
        else if (is_op(P, ">"))
            op = OP_GT;
        else if (is_op(P, ">="))
            op = OP_GE;
        else if (is_name(P, "in"))
            op = OP_IN;
        else if (is_name(P, "not") && tok_is(peek(P, 1), T_NAME, "in")) {
            op = OP_NOTIN;
            advance(P);
        } else
            break;
        advance(P);
        if (rhs.n == 64)
            return failt(P, cur(P), "comparison chain too long");
        ops[rhs.n] = op;
        jnode *x;
        CT_TRY(parse_math1(P, &x));
        if (!nv_push(P, &rhs, x))
            return oom(P);
    }
    if (!rhs.n) {
        *out = first;
        return CT_OK;
    }
    MK(n, N_COMPARE, t);
    n->a = first;
    n->items = rhs.p;
    n->nitems = rhs.n;
    n->ops = jar_alloc(P->a, rhs.n * sizeof(jop));
    if (!n->ops)
        return oom(P);
    memcpy(n->ops, ops, rhs.n * sizeof(jop));
    *out = n;
    return CT_OK;
}

static ct_status parse_not(parser *P, jnode **out) {
    if (is_name(P, "not")) {
        MK(n, N_NOT, cur(P));
        advance(P);
        CT_TRY(parse_not(P, &n->a));
        *out = n;
        return CT_OK;
    }
    return parse_compare(P, out);
}

static ct_status parse_and(parser *P, jnode **out) {
    CT_TRY(parse_not(P, out));
    while (is_name(P, "and")) {
        MK(n, N_AND, cur(P));
        advance(P);
        n->a = *out;
        CT_TRY(parse_not(P, &n->b));
        *out = n;
    }
    return CT_OK;
}

static ct_status parse_or(parser *P, jnode **out) {
    CT_TRY(parse_and(P, out));
    while (is_name(P, "or")) {
        MK(n, N_OR, cur(P));
        advance(P);
        n->a = *out;
        CT_TRY(parse_and(P, &n->b));
        *out = n;
    }
    return CT_OK;
}

static ct_status parse_condexpr(parser *P, jnode **out) {
    CT_TRY(parse_or(P, out));
    while (is_name(P, "if")) {
        MK(n, N_COND, cur(P));
        advance(P);
        n->b = *out;
        CT_TRY(parse_or(P, &n->a));
        if (is_name(P, "else")) {
            advance(P);
            CT_TRY(parse_condexpr(P, &n->c));
        }
        *out = n;
    }
    return CT_OK;
}

static ct_status parse_expr(parser *P, bool with_condexpr, jnode **out) {
    return with_condexpr ? parse_condexpr(P, out) : parse_or(P, out);
}

static bool tuple_end(const parser *P, const char *extra_end) {
    jtok_kind k = cur(P)->kind;
    return k == T_VAR_END || k == T_BLOCK_END || is_op(P, ")") || (extra_end && is_name(P, extra_end));
}

static ct_status parse_tuple(parser *P, bool with_condexpr, const char *extra_end, bool explicit_parens, jnode **out) {
    const jtok *t = cur(P);
    nvec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n) {
            if (!is_op(P, ","))
                break;
            advance(P);
            is_tuple = true;
        }
        if (tuple_end(P, extra_end))
            break;
        jnode *x;
        CT_TRY(parse_expr(P, with_condexpr, &x));
        if (!nv_push(P, &items, x))
            return oom(P);
    }
    if (!is_tuple && items.n == 1) {
        *out = items.p[0];
        return CT_OK;
    }
    if (items.n == 0 && !explicit_parens)
        return expected(P, "an expression");
    MK(n, N_TUPLE, t);
    n->items = items.p;
    n->nitems = items.n;
    *out = n;
    return CT_OK;
}

// ---- statements
static ct_status end_block(parser *P) { return expect_kind(P, T_BLOCK_END, "end of statement block"); }

// Consumes "{% name" of an end or middle tag (the caller checked which).
static void take_tag(parser *P) {
    advance(P);
    advance(P);
}

static ct_status parse_assign_target(parser *P, bool with_namespace, const char *extra_end, jnode **out) {
    const jtok *t = cur(P);
    if (with_namespace && t->kind == T_NAME && tok_is(peek(P, 1), T_OP, ".") && peek(P, 2)->kind == T_NAME) {
        MK(ns, N_GETATTR, peek(P, 2));
        MK(base, N_NAME, t);
        base->s = jar_strdup(P->a, t->s, t->n);
        base->slen = t->n;
        ns->a = base;
        ns->s = jar_strdup(P->a, peek(P, 2)->s, peek(P, 2)->n);
        ns->slen = peek(P, 2)->n;
        advance(P);
        advance(P);
        advance(P);
        *out = ns;
        return CT_OK;
    }
    jnode *target;
    bool paren = is_op(P, "(");
    if (paren)
        advance(P);
    nvec items = {0};
    for (;;) {
        if (cur(P)->kind != T_NAME)
            return expected(P, "name");
        MK(n, N_NAME, cur(P));
        n->s = jar_strdup(P->a, cur(P)->s, cur(P)->n);
        n->slen = cur(P)->n;
        if (!nv_push(P, &items, n))
            return oom(P);
        advance(P);
        if (!is_op(P, ","))
            break;
        advance(P);
        if ((paren && is_op(P, ")")) || (extra_end && is_name(P, extra_end)) || is_op(P, "="))
            break;
    }
    if (paren)
        CT_TRY(expect_op(P, ")"));
    if (items.n == 1 && !paren) {
        target = items.p[0];
    } else {
        MK(tup, N_TUPLE, t);
        tup->items = items.p;
        tup->nitems = items.n;
        target = tup;
    }
    *out = target;
    return CT_OK;
}

static ct_status parse_if(parser *P, const jtok *t, jnode **out) {
    MK(n, S_IF, t);
    CT_TRY(parse_tuple(P, false, NULL, false, &n->a));
    CT_TRY(end_block(P));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, "if", &body));
    n->items = body.p;
    n->nitems = body.n;
    const jtok *tag = peek(P, 1);
    take_tag(P);
    if (tok_is(tag, T_NAME, "elif")) {
        jnode *sub;
        CT_TRY(parse_if(P, tag, &sub));
        n->items2 = jar_alloc(P->a, sizeof(jnode *));
        if (!n->items2)
            return oom(P);
        n->items2[0] = sub;
        n->nitems2 = 1;
        *out = n;
        return CT_OK;
    }
    if (tok_is(tag, T_NAME, "else")) {
        CT_TRY(end_block(P));
        static const char *const ends2[] = {"endif", NULL};
        nvec els = {0};
        CT_TRY(parse_body(P, ends2, "if", &els));
        n->items2 = els.p;
        n->nitems2 = els.n;
        take_tag(P);
    }
    *out = n;
    return end_block(P);
}

static ct_status parse_for(parser *P, const jtok *t, jnode **out) {
    MK(n, S_FOR, t);
    CT_TRY(parse_assign_target(P, false, "in", &n->a));
    if (!is_name(P, "in"))
        return expected(P, "'in'");
    advance(P);
    CT_TRY(parse_tuple(P, false, "recursive", false, &n->b));
    if (is_name(P, "if")) {
        advance(P);
        CT_TRY(parse_expr(P, true, &n->c));
    }
    if (is_name(P, "recursive"))
        return failt(P, cur(P), "recursive for loops are not supported");
    CT_TRY(end_block(P));
    static const char *const ends[] = {"endfor", "else", NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, "for", &body));
    n->items = body.p;
    n->nitems = body.n;
    bool has_else = tok_is(peek(P, 1), T_NAME, "else");
    take_tag(P);
    if (has_else) {
        CT_TRY(end_block(P));
        static const char *const ends2[] = {"endfor", NULL};
        nvec els = {0};
        CT_TRY(parse_body(P, ends2, "for", &els));
        n->items2 = els.p;
        n->nitems2 = els.n;
        take_tag(P);
    }
    *out = n;
    return end_block(P);
}

static ct_status parse_set(parser *P, const jtok *t, jnode **out) {
    MK(n, S_SET, t);
    CT_TRY(parse_assign_target(P, true, NULL, &n->a));
    if (is_op(P, "=")) {
        advance(P);
        CT_TRY(parse_tuple(P, true, NULL, false, &n->b));
        *out = n;
        return end_block(P);
    }
    n->kind = S_SETBLOCK;
    if (is_op(P, "|")) // {% set x | filter %}: the filter applies to the captured text
        CT_TRY(parse_filter(P, NULL, false, &n->b));
    CT_TRY(end_block(P));
    static const char *const ends[] = {"endset", NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, "set", &body));
    n->items = body.p;
    n->nitems = body.n;
    take_tag(P);
    *out = n;
    return end_block(P);
}

// "(a, b=default, ...)" of a macro or a call block's caller.
static ct_status parse_signature(parser *P, jnode *n) {
    CT_TRY(expect_op(P, "("));
    nvec defs = {0};
    size_t cap = 0;
    while (!is_op(P, ")")) {
        if (n->nnames)
            CT_TRY(expect_op(P, ","));
        if (cur(P)->kind != T_NAME)
            return expected(P, "name");
        if (n->nnames == cap) {
            cap = cap ? cap * 2 : 4;
            const char **nn = jar_alloc(P->a, cap * sizeof *nn);
            if (!nn)
                return oom(P);
            if (n->nnames)
                memcpy(nn, n->names, n->nnames * sizeof *nn);
            n->names = nn;
        }
        n->names[n->nnames++] = jar_strdup(P->a, cur(P)->s, cur(P)->n);
        advance(P);
        jnode *def = NULL;
        if (is_op(P, "=")) {
            advance(P);
            CT_TRY(parse_expr(P, true, &def));
        } else if (defs.n && defs.p[defs.n - 1]) {
            return failt(P, cur(P), "non-default argument follows default argument");
        }
        if (!nv_push(P, &defs, def))
            return oom(P);
    }
    advance(P);
    n->items2 = defs.p;
    n->nitems2 = defs.n;
    return CT_OK;
}

static ct_status parse_macro(parser *P, const jtok *t, jnode **out) {
    MK(n, S_MACRO, t);
    if (cur(P)->kind != T_NAME)
        return expected(P, "name");
    n->s = jar_strdup(P->a, cur(P)->s, cur(P)->n);
    n->slen = cur(P)->n;
    advance(P);
    CT_TRY(parse_signature(P, n));
    CT_TRY(end_block(P));
    static const char *const ends[] = {"endmacro", NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, "macro", &body));
    n->items = body.p;
    n->nitems = body.n;
    take_tag(P);
    if (cur(P)->kind == T_NAME) // {% endmacro name %}
        advance(P);
    *out = n;
    return end_block(P);
}

static ct_status parse_callblock(parser *P, const jtok *t, jnode **out) {
    MK(n, S_CALLBLOCK, t);
    n->s = "caller";
    n->slen = 6;
    if (is_op(P, "("))
        CT_TRY(parse_signature(P, n));
    CT_TRY(parse_expr(P, true, &n->a));
    if (n->a->kind != N_CALL)
        return failt(P, t, "expected call");
    CT_TRY(end_block(P));
    static const char *const ends[] = {"endcall", NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, "call", &body));
    n->items = body.p;
    n->nitems = body.n;
    take_tag(P);
    *out = n;
    return end_block(P);
}

static ct_status parse_simple_block(parser *P, jnode *n, const char *end, const char *tag) {
    CT_TRY(end_block(P));
    const char *ends[] = {end, NULL};
    nvec body = {0};
    CT_TRY(parse_body(P, ends, tag, &body));
    n->items = body.p;
    n->nitems = body.n;
    take_tag(P);
    return end_block(P);
}

static ct_status parse_statement(parser *P, jnode **out) {
    advance(P); // {%
    const jtok *t = cur(P);
    if (t->kind != T_NAME)
        return failt(P, t, "tag name expected");
    advance(P);
    if (tok_is(t, T_NAME, "if"))
        return parse_if(P, t, out);
    if (tok_is(t, T_NAME, "for"))
        return parse_for(P, t, out);
    if (tok_is(t, T_NAME, "set"))
        return parse_set(P, t, out);
    if (tok_is(t, T_NAME, "macro"))
        return parse_macro(P, t, out);
    if (tok_is(t, T_NAME, "call"))
        return parse_callblock(P, t, out);
    if (tok_is(t, T_NAME, "break") || tok_is(t, T_NAME, "continue")) {
        MK(n, tok_is(t, T_NAME, "break") ? S_BREAK : S_CONTINUE, t);
        *out = n;
        return end_block(P);
    }
    if (tok_is(t, T_NAME, "filter")) {
        MK(n, S_FILTERBLOCK, t);
        CT_TRY(parse_filter(P, NULL, true, &n->a));
        *out = n;
        return parse_simple_block(P, n, "endfilter", "filter");
    }
    if (tok_is(t, T_NAME, "generation")) { // transformers' AssistantTracker: renders its body
        MK(n, S_SCOPE, t);
        n->flag = true;
        *out = n;
        return parse_simple_block(P, n, "endgeneration", "generation");
    }
    return failt(P, t, "Encountered unknown tag '%.*s'.", (int)t->n, t->s);
}

static bool is_end(const parser *P, const char *const *ends) {
    if (cur(P)->kind != T_BLOCK_BEGIN || !ends)
        return false;
    for (size_t i = 0; ends[i]; i++)
        if (tok_is(peek(P, 1), T_NAME, ends[i]))
            return true;
    return false;
}

// Statements until "{% <one of ends>" (left unconsumed) or, with ends NULL, the end.
static ct_status parse_body(parser *P, const char *const *ends, const char *tag, nvec *body) {
    for (;;) {
        const jtok *t = cur(P);
        jnode *n = NULL;
        if (t->kind == T_EOF) {
            if (!ends)
                return CT_OK;
            return failt(P, t, "unexpected end of template, expected 'end%s' (the '%s' block is not closed)", tag, tag);
        }
        if (is_end(P, ends))
            return CT_OK;
        if (t->kind == T_DATA) {
            n = mk(P, S_DATA, t);
            if (!n)
                return oom(P);
            n->s = t->s;
            n->slen = t->n;
            advance(P);
        } else if (t->kind == T_VAR_BEGIN) {
            advance(P);
            n = mk(P, S_PRINT, t);
            if (!n)
                return oom(P);
            CT_TRY(parse_tuple(P, true, NULL, false, &n->a));
            CT_TRY(expect_kind(P, T_VAR_END, "end of print statement"));
        } else if (t->kind == T_BLOCK_BEGIN) {
            CT_TRY(parse_statement(P, &n));
        } else {
            char got[64];
            describe(t, got, sizeof got);
            return failt(P, t, "unexpected %s", got);
        }
        if (!nv_push(P, body, n))
            return oom(P);
    }
}

ct_status jinja_parse(jarena *a, const jtok *toks, size_t ntoks, const char *name, jnode **root, ct_error *err) {
    parser P = {.a = a, .t = toks, .n = ntoks, .name = name, .err = err};
    nvec body = {0};
    CT_TRY(parse_body(&P, NULL, NULL, &body));
    jnode *r = mk(&P, S_SCOPE, &toks[0]);
    if (!r)
        return oom(&P);
    r->items = body.p;
    r->nitems = body.n;
    *root = r;
    return CT_OK;
}
