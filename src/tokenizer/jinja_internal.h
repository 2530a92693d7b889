// jinja_internal.h: shared types of the Jinja interpreter (lexer, parser,
// values, evaluator, builtins). Not a public header.
#ifndef CTUNE_JINJA_INTERNAL_H
#define CTUNE_JINJA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/jinja.h"

// ---- arena: every AST node and every runtime value lives in one, freed at once
typedef struct jarena_chunk jarena_chunk;
typedef struct jarena {
    jarena_chunk *head;
    bool oom;
} jarena;
void *jar_alloc(jarena *a, size_t n); // zeroed; NULL on OOM (a->oom set)
char *jar_strdup(jarena *a, const char *s, size_t n);
void jar_free(jarena *a);

// ---- string builder (heap)
typedef struct jbuf {
    char *p;
    size_t n, cap;
    bool oom;
} jbuf;
void jb_put(jbuf *b, const char *s, size_t n);
void jb_puts(jbuf *b, const char *s);
void jb_putc(jbuf *b, char c);
void jb_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jb_free(jbuf *b);

// ---- values
typedef enum jkind {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_TUPLE,
    JV_DICT,
    JV_NS,   // namespace(): a dict whose attributes can be set
    JV_LOOP, // the loop variable of a for statement
    JV_FUNC, // builtin global, bound method, macro or caller
} jkind;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jundef jundef;
typedef struct jloop jloop;

typedef struct jv {
    jkind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        jlist *l; // JV_LIST, JV_TUPLE
        jdict *d; // JV_DICT, JV_NS
        jfunc *fn;
        jundef *u; // may be NULL: plain undefined
        jloop *loop;
    } u;
} jv;

struct jlist {
    jv *v;
    size_t n, cap;
};
struct jdict {
    jv *k, *v; // insertion order
    size_t n, cap;
};
// Why a value is undefined, for Jinja's error messages.
struct jundef {
    const char *hint; // full message if set (sandbox refusals)
    const char *name; // missing name or attribute
    jv obj;           // the object it was looked up on (JV_UNDEF kind with has_obj false: a plain name)
    bool has_obj;
    bool name_is_int;
    int64_t index;
};
struct jloop {
    jlist *items;
    size_t index0;
    int depth;
    jv last_changed; // loop.changed state
    bool changed_set;
};

typedef struct jnode jnode;
typedef struct jscope jscope;
typedef enum jfunc_kind { JF_BUILTIN, JF_METHOD, JF_MACRO, JF_LOOP_CYCLE, JF_LOOP_CHANGED } jfunc_kind;
struct jfunc {
    jfunc_kind kind;
    const char *name;
    jv self;             // bound object of a method
    const jnode *macro;  // JF_MACRO: the macro (or caller) node
    jscope *env;         // JF_MACRO: scope it was defined in
};

static inline jv jv_undef(void) { jv v = {.kind = JV_UNDEF}; return v; }
static inline jv jv_none(void) { jv v = {.kind = JV_NONE}; return v; }
static inline jv jv_bool(bool b) { jv v = {.kind = JV_BOOL, .u.b = b}; return v; }
static inline jv jv_int(int64_t i) { jv v = {.kind = JV_INT, .u.i = i}; return v; }
static inline jv jv_float(double f) { jv v = {.kind = JV_FLOAT, .u.f = f}; return v; }
static inline jv jv_str(const char *p, size_t n) { jv v = {.kind = JV_STR, .u.s = {p, n}}; return v; }
static inline bool jv_is_num(jv v) { return v.kind == JV_INT || v.kind == JV_FLOAT || v.kind == JV_BOOL; }
static inline bool jv_is_seq(jv v) { return v.kind == JV_LIST || v.kind == JV_TUPLE; }
static inline bool jv_is_map(jv v) { return v.kind == JV_DICT || v.kind == JV_NS; }

// ---- AST
typedef enum jnode_kind {
    // expressions
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_GETATTR, N_GETITEM, N_SLICE, N_CALL,
    N_FILTER, N_TEST, N_BINOP, N_NEG, N_POS, N_NOT, N_AND, N_OR, N_COMPARE, N_CONCAT, N_COND,
    // statements
    S_DATA, S_PRINT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_CALLBLOCK, S_FILTERBLOCK,
    S_BREAK, S_CONTINUE, S_SCOPE,
} jnode_kind;

typedef enum jop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} jop;

struct jnode {
    jnode_kind kind;
    int line, col;
    jnode *a, *b, *c, *d;
    jnode **items; // list/tuple items, call args, dict keys, statement bodies
    size_t nitems;
    jnode **items2; // dict values, call kwarg values, else bodies, macro defaults
    size_t nitems2;
    const char **names; // call kwarg names, macro parameter names
    size_t nnames;
    jop *ops; // N_COMPARE: one per items entry
    const char *s; // names, filter/test names, data text
    size_t slen;
    jv val;        // N_CONST
    jop op;        // N_BINOP
    bool flag;     // N_TEST negated; S_FOR recursive
};

struct ct_jinja_template {
    char *name;
    jarena arena; // AST and constant strings
    jnode *root;  // S_SCOPE whose items are the top-level statements
};

// ---- lexer
typedef enum jtok_kind {
    T_EOF, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP,
} jtok_kind;
typedef struct jtok {
    jtok_kind kind;
    int line, col;
    const char *s; // text (decoded for strings); operator text for T_OP
    size_t n;
    int64_t i;
    double f;
} jtok;
ct_status jinja_lex(jarena *a, const char *src, size_t len, const char *name, jtok **toks, size_t *ntoks, ct_error *err);

// ---- parser
ct_status jinja_parse(jarena *a, const jtok *toks, size_t ntoks, const char *name, jnode **root, ct_error *err);
bool jinja_filter_exists(const char *name, size_t n);
bool jinja_test_exists(const char *name, size_t n);

// ---- runtime
typedef struct jrender jrender;
typedef struct jkwarg {
    const char *name;
    jv v;
} jkwarg;

// value helpers (jinja_value.c)
jlist *jl_new(jarena *a, size_t cap);
bool jl_push(jarena *a, jlist *l, jv v);
jdict *jd_new(jarena *a, size_t cap);
bool jd_set(jarena *a, jdict *d, jv k, jv v);
bool jd_get(const jdict *d, jv k, jv *out);
bool jd_get_str(const jdict *d, const char *k, jv *out);
bool jv_truthy(jv v);
bool jv_eq(jv a, jv b);
// Python's "<": returns false and sets *ok=false when the types do not order.
bool jv_lt(jv a, jv b, bool *ok);
const char *jv_type_name(jv v);        // Python type name: "str", "int", "dict"...
void jv_obj_type_repr(jv v, jbuf *b);  // Jinja's object_type_repr: "dict object", "None"
void jv_to_str(jv v, jbuf *b);         // Python str()
void jv_repr(jv v, jbuf *b);           // Python repr()
void jv_repr_float(double f, jbuf *b); // Python repr(float)
// json.dumps; returns false (and names the bad type in *bad) if not serializable.
typedef struct jjson_opts {
    const char *indent; // NULL: none
    bool indent_set;
    const char *item_sep, *key_sep;
    bool sort_keys, ensure_ascii;
} jjson_opts;
bool jv_to_json(jv v, const jjson_opts *o, int level, jbuf *b, const char **bad);
jv jv_from_cjson(jarena *a, const cJSON *j);
jv jv_str_from_buf(jarena *a, jbuf *b); // copies and frees b
// UTF-8 code points
size_t ju_len(const char *p, size_t n);
size_t ju_offset(const char *p, size_t n, size_t cp_index); // byte offset of code point
int32_t ju_decode(const char *p, size_t n, size_t *adv);
void ju_encode(int32_t cp, jbuf *b);

// evaluator services used by builtins (jinja_eval.c)
ct_status jr_fail(jrender *r, const jnode *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
ct_status jr_undefined_error(jrender *r, const jnode *at, jv undef);
jarena *jr_arena(jrender *r);
ct_status jr_call(jrender *r, const jnode *at, jv fn, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);
ct_status jr_getattr(jrender *r, const jnode *at, jv obj, const char *name, size_t n, jv *out);
ct_status jr_getitem(jrender *r, const jnode *at, jv obj, jv key, jv *out);
ct_status jr_iter(jrender *r, const jnode *at, jv v, jlist **out);
ct_status jr_binop(jrender *r, const jnode *at, jop op, jv a, jv b, jv *out);
ct_status jr_filter(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);
ct_status jr_test(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, bool *out);
ct_status jr_raise(jrender *r, const char *msg, size_t n);

// builtins (jinja_builtins.c, jinja_filters.c)
ct_status jb_filter(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);
ct_status jb_test(jrender *r, const jnode *at, const char *name, jv v, const jv *args, size_t nargs, bool *out);
ct_status jb_method(jrender *r, const jnode *at, jv self, const char *name, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);
ct_status jb_global(jrender *r, const jnode *at, const char *name, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);
// Is name an attribute Python has on this value's type? *unsafe: the immutable sandbox refuses it.
bool jb_has_method(jv self, const char *name, size_t n, bool *unsafe);
bool jb_is_global(const char *name, size_t n);
ct_status jb_percent_format(jrender *r, const jnode *at, jv fmt, jv args, jv *out);

// strings (jinja_strings.c): Python str semantics
bool jstr_is_space(int32_t c);
jv jstr_strip(jv s, jv chars, bool left, bool right);
jv jstr_upper(jarena *a, jv s);
jv jstr_lower(jarena *a, jv s);
jv jstr_title(jarena *a, jv s);
jv jstr_capitalize(jarena *a, jv s);
jv jstr_jinja_title(jarena *a, jv s);
jv jstr_replace(jarena *a, jv s, jv old, jv rep, int64_t count);
jlist *jstr_split(jarena *a, jv s, jv sep, int64_t maxsplit);
jlist *jstr_splitlines(jarena *a, jv s);
ct_status jstr_format(jrender *r, const jnode *at, jv fmt, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out);

#endif
