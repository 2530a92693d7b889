// jinja_value.c: the arena, string builder and Python value semantics of the
// Jinja interpreter: truthiness, equality and ordering, str()/repr() exactly
// as Python prints them, json.dumps, and conversion from cJSON.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "jinja_internal.h"

// ---- arena
struct jarena_chunk {
    jarena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};
enum { JAR_CHUNK = 64 * 1024 };

void *jar_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    jarena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > JAR_CHUNK ? n : JAR_CHUNK;
        jarena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) {
            a->oom = true;
            return NULL;
        }
        nc->used = 0;
        nc->cap = cap;
        if (c && n > JAR_CHUNK) { // big block: keep the current chunk in front
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *jar_strdup(jarena *a, const char *s, size_t n) {
    char *p = jar_alloc(a, n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

void jar_free(jarena *a) {
    jarena_chunk *c = a->head;
    while (c) {
        jarena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

// ---- string builder
static bool jb_grow(jbuf *b, size_t extra) {
    if (b->oom)
        return false;
    if (b->n + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void jb_put(jbuf *b, const char *s, size_t n) {
    if (!jb_grow(b, n))
        return;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void jb_puts(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }
void jb_putc(jbuf *b, char c) { jb_put(b, &c, 1); }

void jb_printf(jbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        jb_put(b, tmp, (size_t)n);
        return;
    }
    if (!jb_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void jb_free(jbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

jv jv_str_from_buf(jarena *a, jbuf *b) {
    char *p = jar_strdup(a, b->p ? b->p : "", b->n);
    size_t n = b->n;
    jb_free(b);
    return jv_str(p ? p : "", p ? n : 0);
}

// ---- UTF-8
int32_t ju_decode(const char *p, size_t n, size_t *adv) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, &cp);
    if (k <= 0) { // invalid byte: treat as one code point of its own
        *adv = 1;
        return (unsigned char)p[0];
    }
    *adv = (size_t)k;
    return cp;
}

void ju_encode(int32_t cp, jbuf *b) {
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, tmp);
    jb_put(b, (const char *)tmp, (size_t)k);
}

size_t ju_len(const char *p, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; count++) {
        size_t adv;
        ju_decode(p + i, n - i, &adv);
        i += adv;
    }
    return count;
}

size_t ju_offset(const char *p, size_t n, size_t cp_index) {
    size_t i = 0;
    for (size_t c = 0; c < cp_index && i < n; c++) {
        size_t adv;
        ju_decode(p + i, n - i, &adv);
        i += adv;
    }
    return i;
}

// ---- containers
jlist *jl_new(jarena *a, size_t cap) {
    jlist *l = jar_alloc(a, sizeof *l);
    if (!l)
        return NULL;
    l->cap = cap ? cap : 4;
    l->v = jar_alloc(a, l->cap * sizeof(jv));
    return l->v ? l : NULL;
}

bool jl_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        jv *nv = jar_alloc(a, l->cap * 2 * sizeof(jv));
        if (!nv)
            return false;
        memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
    return true;
}

jdict *jd_new(jarena *a, size_t cap) {
    jdict *d = jar_alloc(a, sizeof *d);
    if (!d)
        return NULL;
    d->cap = cap ? cap : 4;
    d->k = jar_alloc(a, d->cap * sizeof(jv));
    d->v = jar_alloc(a, d->cap * sizeof(jv));
    return d->k && d->v ? d : NULL;
}

static bool jd_find(const jdict *d, jv k, size_t *at) {
    for (size_t i = 0; i < d->n; i++) {
        if (jv_eq(d->k[i], k)) {
            *at = i;
            return true;
        }
    }
    return false;
}

bool jd_set(jarena *a, jdict *d, jv k, jv v) {
    size_t at;
    if (jd_find(d, k, &at)) {
        d->v[at] = v;
        return true;
    }
    if (d->n == d->cap) {
        jv *nk = jar_alloc(a, d->cap * 2 * sizeof(jv));
        jv *nv = jar_alloc(a, d->cap * 2 * sizeof(jv));
        if (!nk || !nv)
            return false;
        memcpy(nk, d->k, d->n * sizeof(jv));
        memcpy(nv, d->v, d->n * sizeof(jv));
        d->k = nk;
        d->v = nv;
        d->cap *= 2;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return true;
}

bool jd_get(const jdict *d, jv k, jv *out) {
    size_t at;
    if (!jd_find(d, k, &at))
        return false;
    *out = d->v[at];
    return true;
}

bool jd_get_str(const jdict *d, const char *k, jv *out) { return jd_get(d, jv_str(k, strlen(k)), out); }

// ---- truthiness, equality, ordering
bool jv_truthy(jv v) {
    switch (v.kind) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s.n > 0;
    case JV_LIST:
    case JV_TUPLE: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    default: return true;
    }
}

static double num_of(jv v) {
    return v.kind == JV_FLOAT ? v.u.f : v.kind == JV_BOOL ? (double)v.u.b : (double)v.u.i;
}

bool jv_eq(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
            return (a.kind == JV_BOOL ? a.u.b : a.u.i) == (b.kind == JV_BOOL ? b.u.b : b.u.i);
        return num_of(a) == num_of(b);
    }
    if (a.kind != b.kind)
        return false;
    switch (a.kind) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JV_LIST:
    case JV_TUPLE:
        if (a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_eq(a.u.l->v[i], b.u.l->v[i]))
                return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv other;
            if (!jd_get(b.u.d, a.u.d->k[i], &other) || !jv_eq(a.u.d->v[i], other))
                return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_LOOP: return a.u.loop == b.u.loop;
    case JV_FUNC: return a.u.fn == b.u.fn;
    default: return false;
    }
}

bool jv_lt(jv a, jv b, bool *ok) {
    *ok = true;
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
            return (a.kind == JV_BOOL ? a.u.b : a.u.i) < (b.kind == JV_BOOL ? b.u.b : b.u.i);
        return num_of(a) < num_of(b);
    }
    if (a.kind == JV_STR && b.kind == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, n); // UTF-8 byte order == code point order
        return c < 0 || (c == 0 && a.u.s.n < b.u.s.n);
    }
    if (a.kind == b.kind && jv_is_seq(a)) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (!jv_eq(a.u.l->v[i], b.u.l->v[i]))
                return jv_lt(a.u.l->v[i], b.u.l->v[i], ok);
        }
        return a.u.l->n < b.u.l->n;
    }
    *ok = false;
    return false;
}

const char *jv_type_name(jv v) {
    switch (v.kind) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return "list";
    case JV_TUPLE: return "tuple";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_LOOP: return "LoopContext";
    case JV_FUNC: return v.u.fn->kind == JF_MACRO ? "Macro" : "builtin_function_or_method";
    }
    return "object";
}

void jv_obj_type_repr(jv v, jbuf *b) {
    switch (v.kind) {
    case JV_NONE: jb_puts(b, "None"); return;
    case JV_NS: jb_puts(b, "jinja2.utils.Namespace object"); return;
    case JV_LOOP: jb_puts(b, "jinja2.runtime.LoopContext object"); return;
    case JV_UNDEF: jb_puts(b, "jinja2.runtime.Undefined object"); return;
    case JV_FUNC:
        if (v.u.fn->kind == JF_MACRO) {
            jb_puts(b, "jinja2.runtime.Macro object");
            return;
        }
        break;
    default: break;
    }
    jb_printf(b, "%s object", jv_type_name(v));
}

// ---- str() and repr()
void jv_repr_float(double f, jbuf *b) {
    if (isnan(f)) {
        jb_puts(b, "nan");
        return;
    }
    if (isinf(f)) {
        jb_puts(b, f < 0 ? "-inf" : "inf");
        return;
    }
    // Shortest digits that round-trip, then Python's layout rule: positional
    // when -4 <= exponent < 16, otherwise scientific with a 2+ digit exponent.
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    char *e = strchr(tmp, 'e');
    int exp10 = atoi(e + 1);
    *e = 0;
    char digits[32];
    size_t nd = 0;
    bool neg = tmp[0] == '-';
    for (char *p = tmp + neg; *p; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    if (neg)
        jb_putc(b, '-');
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            jb_puts(b, "0.");
            for (int i = 0; i < -exp10 - 1; i++)
                jb_putc(b, '0');
            jb_put(b, digits, nd);
        } else {
            size_t intd = (size_t)exp10 + 1;
            for (size_t i = 0; i < intd; i++)
                jb_putc(b, i < nd ? digits[i] : '0');
            jb_putc(b, '.');
            if (nd > intd)
                jb_put(b, digits + intd, nd - intd);
            else
                jb_putc(b, '0');
        }
    } else {
        jb_putc(b, digits[0]);
        if (nd > 1) {
            jb_putc(b, '.');
            jb_put(b, digits + 1, nd - 1);
        }
        jb_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
}

static bool cp_printable(int32_t cp) {
    if (cp == ' ')
        return true;
    if (cp < 0x20 || cp == 0x7f)
        return false;
    if (cp < 0x7f)
        return true;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
    }
}

static void repr_str(const char *p, size_t n, jbuf *b) {
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jb_putc(b, q);
    for (size_t i = 0; i < n;) {
        size_t adv;
        int32_t cp = ju_decode(p + i, n - i, &adv);
        if (cp == q || cp == '\\') {
            jb_putc(b, '\\');
            jb_putc(b, (char)cp);
        } else if (cp == '\n') {
            jb_puts(b, "\\n");
        } else if (cp == '\r') {
            jb_puts(b, "\\r");
        } else if (cp == '\t') {
            jb_puts(b, "\\t");
        } else if (cp_printable(cp)) {
            jb_put(b, p + i, adv);
        } else if (cp <= 0xff) {
            jb_printf(b, "\\x%02x", (unsigned)cp);
        } else if (cp <= 0xffff) {
            jb_printf(b, "\\u%04x", (unsigned)cp);
        } else {
            jb_printf(b, "\\U%08x", (unsigned)cp);
        }
        i += adv;
    }
    jb_putc(b, q);
}

void jv_repr(jv v, jbuf *b) {
    switch (v.kind) {
    case JV_STR: repr_str(v.u.s.p, v.u.s.n, b); return;
    case JV_UNDEF: jb_puts(b, "Undefined"); return;
    case JV_LIST:
    case JV_TUPLE: {
        jb_putc(b, v.kind == JV_LIST ? '[' : '(');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                jb_puts(b, ", ");
            jv_repr(v.u.l->v[i], b);
        }
        if (v.kind == JV_TUPLE && v.u.l->n == 1)
            jb_putc(b, ',');
        jb_putc(b, v.kind == JV_LIST ? ']' : ')');
        return;
    }
    case JV_DICT: {
        jb_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                jb_puts(b, ", ");
            jv_repr(v.u.d->k[i], b);
            jb_puts(b, ": ");
            jv_repr(v.u.d->v[i], b);
        }
        jb_putc(b, '}');
        return;
    }
    case JV_NS: {
        jb_puts(b, "<Namespace {");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                jb_puts(b, ", ");
            jv_repr(v.u.d->k[i], b);
            jb_puts(b, ": ");
            jv_repr(v.u.d->v[i], b);
        }
        jb_puts(b, "}>");
        return;
    }
    default: jv_to_str(v, b);
    }
}

void jv_to_str(jv v, jbuf *b) {
    switch (v.kind) {
    case JV_UNDEF: return;
    case JV_NONE: jb_puts(b, "None"); return;
    case JV_BOOL: jb_puts(b, v.u.b ? "True" : "False"); return;
    case JV_INT: jb_printf(b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: jv_repr_float(v.u.f, b); return;
    case JV_STR: jb_put(b, v.u.s.p, v.u.s.n); return;
    case JV_LOOP: jb_puts(b, "<LoopContext>"); return;
    case JV_FUNC:
        if (v.u.fn->kind == JF_MACRO)
            jb_printf(b, "<Macro '%s'>", v.u.fn->name);
        else
            jb_printf(b, "<built-in method %s>", v.u.fn->name);
        return;
    default: jv_repr(v, b);
    }
}

// ---- json.dumps
static void json_str(const char *p, size_t n, bool ensure_ascii, jbuf *b) {
    jb_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t adv = 1;
        switch (c) {
        case '"': jb_puts(b, "\\\""); break;
        case '\\': jb_puts(b, "\\\\"); break;
        case '\n': jb_puts(b, "\\n"); break;
        case '\r': jb_puts(b, "\\r"); break;
        case '\t': jb_puts(b, "\\t"); break;
        case '\b': jb_puts(b, "\\b"); break;
        case '\f': jb_puts(b, "\\f"); break;
        default:
            if (c < 0x20) {
                jb_printf(b, "\\u%04x", c);
            } else if (c < 0x80 || !ensure_ascii) {
                jb_putc(b, (char)c);
            } else {
                int32_t cp = ju_decode(p + i, n - i, &adv);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    jb_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
                } else {
                    jb_printf(b, "\\u%04x", (unsigned)cp);
                }
            }
        }
        i += adv;
    }
    jb_putc(b, '"');
}

static void json_newline(const jjson_opts *o, int level, jbuf *b) {
    jb_putc(b, '\n');
    for (int i = 0; i < level; i++)
        jb_puts(b, o->indent);
}

static bool json_key(jv k, const jjson_opts *o, jbuf *b, const char **bad) {
    switch (k.kind) {
    case JV_STR: json_str(k.u.s.p, k.u.s.n, o->ensure_ascii, b); return true;
    case JV_NONE: jb_puts(b, "\"null\""); return true;
    case JV_BOOL: jb_puts(b, k.u.b ? "\"true\"" : "\"false\""); return true;
    case JV_INT:
    case JV_FLOAT:
        jb_putc(b, '"');
        jv_to_str(k, b);
        jb_putc(b, '"');
        return true;
    default: *bad = "keys must be str, int, float, bool or None";
        return false;
    }
}

bool jv_to_json(jv v, const jjson_opts *o, int level, jbuf *b, const char **bad) {
    switch (v.kind) {
    case JV_NONE: jb_puts(b, "null"); return true;
    case JV_BOOL: jb_puts(b, v.u.b ? "true" : "false"); return true;
    case JV_INT: jv_to_str(v, b); return true;
    case JV_FLOAT:
        if (isnan(v.u.f))
            jb_puts(b, "NaN");
        else if (isinf(v.u.f))
            jb_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            jv_repr_float(v.u.f, b);
        return true;
    case JV_STR: json_str(v.u.s.p, v.u.s.n, o->ensure_ascii, b); return true;
    case JV_LIST:
    case JV_TUPLE:
        if (v.u.l->n == 0) {
            jb_puts(b, "[]");
            return true;
        }
        jb_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                jb_puts(b, o->item_sep);
            if (o->indent)
                json_newline(o, level + 1, b);
            if (!jv_to_json(v.u.l->v[i], o, level + 1, b, bad))
                return false;
        }
        if (o->indent)
            json_newline(o, level, b);
        jb_putc(b, ']');
        return true;
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (d->n == 0) {
            jb_puts(b, "{}");
            return true;
        }
        size_t order[d->n];
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (o->sort_keys) { // insertion sort: stable like Python's sorted()
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                bool ok;
                while (j > 0 && jv_lt(d->k[x], d->k[order[j - 1]], &ok))
                    order[j] = order[j - 1], j--;
                order[j] = x;
            }
        }
        jb_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                jb_puts(b, o->item_sep);
            if (o->indent)
                json_newline(o, level + 1, b);
            if (!json_key(d->k[order[i]], o, b, bad))
                return false;
            jb_puts(b, o->key_sep);
            if (!jv_to_json(d->v[order[i]], o, level + 1, b, bad))
                return false;
        }
        if (o->indent)
            json_newline(o, level, b);
        jb_putc(b, '}');
        return true;
    }
    default: *bad = jv_type_name(v); return false;
    }
}

// ---- from cJSON
jv jv_from_cjson(jarena *a, const cJSON *j) {
    if (cJSON_IsNull(j) || !j)
        return jv_none();
    if (cJSON_IsBool(j))
        return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j))
        return jv_str(j->valuestring, strlen(j->valuestring));
    if (cJSON_IsArray(j)) {
        jlist *l = jl_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l)
            return jv_none();
        for (const cJSON *c = j->child; c; c = c->next)
            jl_push(a, l, jv_from_cjson(a, c));
        jv v = {.kind = JV_LIST, .u.l = l};
        return v;
    }
    jdict *d = jd_new(a, (size_t)cJSON_GetArraySize(j));
    if (!d)
        return jv_none();
    for (const cJSON *c = j->child; c; c = c->next)
        jd_set(a, d, jv_str(c->string, strlen(c->string)), jv_from_cjson(a, c));
    jv v = {.kind = JV_DICT, .u.d = d};
    return v;
}
