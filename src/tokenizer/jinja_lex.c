// jinja_lex.c: splits template source into tokens the way Jinja2's lexer does
// with trim_blocks and lstrip_blocks on: newlines normalised to "\n", one
// trailing newline dropped, "{%- -%}" stripping, comments and raw blocks.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

typedef struct lexer {
    jarena *a;
    const char *src; // normalised source
    size_t len, pos;
    const char *name;
    jtok *toks;
    size_t n, cap;
    ct_error *err;
} lexer;

static void line_col(const lexer *L, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos && i < L->len; i++) {
        if (L->src[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)L->src[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static ct_status lex_fail(lexer *L, size_t pos, const char *msg) {
    int line, col;
    line_col(L, pos, &line, &col);
    return ct_fail(L->err, CT_ERR_FORMAT, "%s:%d:%d: %s", L->name, line, col, msg);
}

static jtok *emit(lexer *L, jtok_kind kind, size_t pos, const char *s, size_t n) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *nt = jar_alloc(L->a, cap * sizeof *nt);
        if (!nt)
            return NULL;
        if (L->n)
            memcpy(nt, L->toks, L->n * sizeof *nt);
        L->toks = nt;
        L->cap = cap;
    }
    jtok *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    line_col(L, pos, &t->line, &t->col);
    t->s = s;
    t->n = n;
    return t;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static size_t skip_ws(const lexer *L, size_t p) {
    while (p < L->len && is_ws(L->src[p]))
        p++;
    return p;
}

static bool at(const lexer *L, size_t p, const char *s) {
    size_t n = strlen(s);
    return p + n <= L->len && memcmp(L->src + p, s, n) == 0;
}

// Emits text [start, end) as data after applying the strip rule of the tag that follows it.
static ct_status emit_data(lexer *L, size_t start, size_t end, char sign, bool is_var, bool line_starting) {
    if (sign == '-') {
        while (end > start && is_ws(L->src[end - 1]))
            end--;
    } else if (sign != '+' && !is_var) { // lstrip_blocks
        size_t l = end;
        while (l > start && L->src[l - 1] != '\n')
            l--;
        if (l > start || line_starting) {
            size_t k = l;
            while (k < end && is_ws(L->src[k]))
                k++;
            if (k == end)
                end = l;
        }
    }
    if (end > start && !emit(L, T_DATA, start, L->src + start, end - start))
        return CT_ERR_NOMEM;
    return CT_OK;
}

// After a block or comment end at p (just past "%}" / "#}"), applies "-" / "+" / trim_blocks.
static size_t after_block_end(const lexer *L, size_t p, char sign) {
    if (sign == '-')
        return skip_ws(L, p);
    if (sign != '+' && p < L->len && L->src[p] == '\n')
        return p + 1;
    return p;
}

static bool is_name_start(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static bool is_name_char(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

// Decodes a Python string literal body (unicode-escape semantics).
static ct_status lex_string(lexer *L, size_t start, size_t *end) {
    char q = L->src[start];
    size_t p = start + 1;
    jbuf b = {0};
    while (p < L->len && L->src[p] != q) {
        char c = L->src[p];
        if (c != '\\' || p + 1 >= L->len) {
            jb_putc(&b, c);
            p++;
            continue;
        }
        char e = L->src[p + 1];
        p += 2;
        const char *simple = strchr("\\'\"abfnrtv", e);
        if (e && simple) {
            static const char out[] = "\\'\"\a\b\f\n\r\t\v";
            jb_putc(&b, out[simple - "\\'\"abfnrtv"]);
        } else if (e == '\n') {
            // line continuation
        } else if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && p < L->len && L->src[p] >= '0' && L->src[p] <= '7'; k++)
                v = v * 8 + (L->src[p++] - '0');
            ju_encode(v, &b);
        } else if (e == 'x' || e == 'u' || e == 'U') {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            int32_t v = 0;
            for (int k = 0; k < nd; k++, p++) {
                if (p >= L->len || !isxdigit((unsigned char)L->src[p])) {
                    jb_free(&b);
                    return lex_fail(L, start, "invalid escape sequence in string literal");
                }
                char h = L->src[p];
                v = v * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
            }
            ju_encode(v, &b);
        } else {
            jb_putc(&b, '\\');
            jb_putc(&b, e);
        }
    }
    if (p >= L->len) {
        jb_free(&b);
        return lex_fail(L, start, "unexpected end of string literal");
    }
    jtok *t = emit(L, T_STRING, start, NULL, 0);
    if (!t) {
        jb_free(&b);
        return CT_ERR_NOMEM;
    }
    jv v = jv_str_from_buf(L->a, &b);
    t->s = v.u.s.p;
    t->n = v.u.s.n;
    *end = p + 1;
    return CT_OK;
}

// Digits with optional single underscores between them; returns the end.
static size_t scan_digits(const lexer *L, size_t p, int (*ok)(int)) {
    if (p >= L->len || !ok((unsigned char)L->src[p]))
        return p;
    p++;
    while (p < L->len) {
        if (ok((unsigned char)L->src[p]))
            p++;
        else if (L->src[p] == '_' && p + 1 < L->len && ok((unsigned char)L->src[p + 1]))
            p += 2;
        else
            break;
    }
    return p;
}

static int is_bin(int c) { return c == '0' || c == '1'; }
static int is_oct(int c) { return c >= '0' && c <= '7'; }

static ct_status lex_number(lexer *L, size_t start, size_t *end) {
    size_t p = scan_digits(L, start, isdigit);
    bool is_float = false;
    if (p + 1 < L->len && L->src[p] == '.' && isdigit((unsigned char)L->src[p + 1])) {
        p = scan_digits(L, p + 1, isdigit);
        is_float = true;
    }
    if (p < L->len && (L->src[p] == 'e' || L->src[p] == 'E')) {
        size_t q = p + 1;
        if (q < L->len && (L->src[q] == '+' || L->src[q] == '-'))
            q++;
        size_t r = scan_digits(L, q, isdigit);
        if (r > q) {
            p = r;
            is_float = true;
        }
    }
    char tmp[128];
    size_t k = 0;
    for (size_t i = start; i < p && k + 1 < sizeof tmp; i++)
        if (L->src[i] != '_')
            tmp[k++] = L->src[i];
    tmp[k] = 0;
    jtok *t;
    if (is_float) {
        t = emit(L, T_FLOAT, start, L->src + start, p - start);
        if (t)
            t->f = strtod(tmp, NULL);
    } else {
        int base = 10;
        size_t digits_at = start;
        if (L->src[start] == '0' && p == start + 1 && p < L->len) {
            char x = (char)tolower((unsigned char)L->src[p]);
            int (*ok)(int) = x == 'x' ? isxdigit : x == 'o' ? is_oct : x == 'b' ? is_bin : NULL;
            if (ok) {
                size_t q = p + 1;
                if (q < L->len && L->src[q] == '_')
                    q++;
                size_t r = scan_digits(L, q, ok);
                if (r > q) {
                    base = x == 'x' ? 16 : x == 'o' ? 8 : 2;
                    digits_at = start + 2;
                    p = r;
                }
            }
        }
        k = 0;
        for (size_t i = digits_at; i < p && k + 1 < sizeof tmp; i++)
            if (L->src[i] != '_')
                tmp[k++] = L->src[i];
        tmp[k] = 0;
        t = emit(L, T_INT, start, L->src + start, p - start);
        if (t)
            t->i = strtoll(tmp, NULL, base);
    }
    if (!t)
        return CT_ERR_NOMEM;
    *end = p;
    return CT_OK;
}

static const char *const OPS2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char OPS1[] = "+-/*%~[](){}><=.:|,;";

// Tokens inside {{ }} or {% %} until the end delimiter. is_var selects "}}".
static ct_status lex_tag(lexer *L, bool is_var, bool *line_starting) {
    char stack[64];
    int depth = 0;
    const char *close = is_var ? "}}" : "%}";
    size_t tag_start = L->pos;
    for (;;) {
        size_t p = L->pos;
        if (p >= L->len)
            return lex_fail(L, tag_start, is_var ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
        if (depth == 0) {
            char sign = 0;
            size_t q = p;
            if (L->src[q] == '-' || (!is_var && L->src[q] == '+'))
                sign = L->src[q++];
            if (at(L, q, close)) {
                q += 2;
                if (!emit(L, is_var ? T_VAR_END : T_BLOCK_END, p, NULL, 0))
                    return CT_ERR_NOMEM;
                L->pos = is_var ? (sign == '-' ? skip_ws(L, q) : q) : after_block_end(L, q, sign);
                *line_starting = L->pos > 0 && L->src[L->pos - 1] == '\n';
                return CT_OK;
            }
        }
        char c = L->src[p];
        if (is_ws(c)) {
            L->pos = skip_ws(L, p);
        } else if (isdigit((unsigned char)c)) {
            CT_TRY(lex_number(L, p, &L->pos));
        } else if (is_name_start((unsigned char)c)) {
            size_t q = p;
            while (q < L->len && is_name_char((unsigned char)L->src[q]))
                q++;
            if (!emit(L, T_NAME, p, L->src + p, q - p))
                return CT_ERR_NOMEM;
            L->pos = q;
        } else if (c == '"' || c == '\'') {
            CT_TRY(lex_string(L, p, &L->pos));
        } else {
            size_t n = 0;
            for (size_t k = 0; k < sizeof OPS2 / sizeof *OPS2; k++)
                if (at(L, p, OPS2[k]))
                    n = 2;
            if (!n && strchr(OPS1, c) && c)
                n = 1;
            if (!n) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected char '%c'", c);
                return lex_fail(L, p, msg);
            }
            if (c == '(' || c == '[' || c == '{') {
                if (depth == (int)sizeof stack)
                    return lex_fail(L, p, "brackets nested too deeply");
                stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
            } else if (n == 1 && (c == ')' || c == ']' || c == '}')) {
                if (depth == 0 || stack[depth - 1] != c) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "unexpected '%c'", c);
                    return lex_fail(L, p, msg);
                }
                depth--;
            }
            if (!emit(L, T_OP, p, L->src + p, n))
                return CT_ERR_NOMEM;
            L->pos = p + n;
        }
    }
}

// Is "{% raw %}" (any whitespace, optional -/+) at p? Sets *end past it.
static bool at_raw(const lexer *L, size_t p, const char *word, char *sign, char *end_sign, size_t *end) {
    size_t q = p + 2;
    *sign = 0;
    if (q < L->len && (L->src[q] == '-' || L->src[q] == '+'))
        *sign = L->src[q++];
    q = skip_ws(L, q);
    size_t wn = strlen(word);
    if (!at(L, q, word) || (q + wn < L->len && is_name_char((unsigned char)L->src[q + wn])))
        return false;
    q = skip_ws(L, q + wn);
    *end_sign = 0;
    if (q < L->len && (L->src[q] == '-' || L->src[q] == '+'))
        *end_sign = L->src[q++];
    if (!at(L, q, "%}"))
        return false;
    *end = q + 2;
    return true;
}

static ct_status lex_raw(lexer *L, size_t begin, char end_sign, size_t body) {
    if (end_sign == '-')
        body = skip_ws(L, body);
    for (size_t p = body; p + 1 < L->len; p++) {
        char sign, esign;
        size_t end;
        if (L->src[p] == '{' && L->src[p + 1] == '%' && at_raw(L, p, "endraw", &sign, &esign, &end)) {
            CT_TRY(emit_data(L, body, p, sign, false, false));
            L->pos = after_block_end(L, end, esign);
            return CT_OK;
        }
    }
    return lex_fail(L, begin, "missing end of raw directive");
}

static ct_status lex_all(lexer *L) {
    bool line_starting = true;
    while (L->pos < L->len) {
        size_t p = L->pos, tag = p;
        while (tag + 1 < L->len && !(L->src[tag] == '{' && strchr("{%#", L->src[tag + 1])))
            tag++;
        if (tag + 1 >= L->len) {
            if (!emit(L, T_DATA, p, L->src + p, L->len - p))
                return CT_ERR_NOMEM;
            break;
        }
        char kind = L->src[tag + 1];
        char sign = tag + 2 < L->len && (L->src[tag + 2] == '-' || L->src[tag + 2] == '+') ? L->src[tag + 2] : 0;
        char raw_sign, raw_end_sign;
        size_t raw_end;
        if (kind == '%' && at_raw(L, tag, "raw", &raw_sign, &raw_end_sign, &raw_end)) {
            CT_TRY(emit_data(L, p, tag, raw_sign, false, line_starting));
            CT_TRY(lex_raw(L, tag, raw_end_sign, raw_end));
            line_starting = L->src[L->pos - 1] == '\n';
            continue;
        }
        CT_TRY(emit_data(L, p, tag, sign, kind == '{', line_starting));
        size_t body = tag + 2 + (sign != 0);
        if (kind == '#') {
            size_t e = body;
            while (e + 1 < L->len && !(L->src[e] == '#' && L->src[e + 1] == '}'))
                e++;
            if (e + 1 >= L->len)
                return lex_fail(L, tag, "missing end of comment tag");
            char esign = e > body && (L->src[e - 1] == '-' || L->src[e - 1] == '+') ? L->src[e - 1] : 0;
            L->pos = after_block_end(L, e + 2, esign);
            line_starting = L->src[L->pos - 1] == '\n';
            continue;
        }
        if (!emit(L, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, tag, NULL, 0))
            return CT_ERR_NOMEM;
        L->pos = body;
        CT_TRY(lex_tag(L, kind == '{', &line_starting));
    }
    return emit(L, T_EOF, L->len, NULL, 0) ? CT_OK : CT_ERR_NOMEM;
}

// Newlines become "\n"; a single trailing newline is dropped (keep_trailing_newline=False).
static char *normalise(jarena *a, const char *src, size_t len, size_t *out_len) {
    char *s = jar_alloc(a, len + 1);
    if (!s)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n > 0 && s[n - 1] == '\n')
        n--;
    s[n] = 0;
    *out_len = n;
    return s;
}

ct_status jinja_lex(jarena *a, const char *src, size_t len, const char *name, jtok **toks, size_t *ntoks, ct_error *err) {
    lexer L = {.a = a, .name = name, .err = err};
    L.src = normalise(a, src, len, &L.len);
    if (!L.src)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", name);
    ct_status st = lex_all(&L);
    if (st == CT_ERR_NOMEM || a->oom)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", name);
    if (st != CT_OK)
        return st;
    *toks = L.toks;
    *ntoks = L.n;
    return CT_OK;
}
