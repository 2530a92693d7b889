// jinja_strings.c: Python string behaviour the templates rely on: str
// methods (strip, split, replace, title, ...), "%" formatting and
// str.format(), with Python's Unicode whitespace and case rules.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "jinja_internal.h"

bool jstr_is_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool in_chars(int32_t c, jv chars) {
    for (size_t i = 0; i < chars.u.s.n;) {
        size_t adv;
        if (ju_decode(chars.u.s.p + i, chars.u.s.n - i, &adv) == c)
            return true;
        i += adv;
    }
    return false;
}

// str.strip / lstrip / rstrip; chars NULL-kind (JV_NONE/UNDEF) means whitespace.
jv jstr_strip(jv s, jv chars, bool left, bool right) {
    const char *p = s.u.s.p;
    size_t a = 0, b = s.u.s.n;
    bool ws = chars.kind != JV_STR;
    while (left && a < b) {
        size_t adv;
        int32_t c = ju_decode(p + a, b - a, &adv);
        if (ws ? !jstr_is_space(c) : !in_chars(c, chars))
            break;
        a += adv;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)p[k] & 0xc0) == 0x80)
            k--;
        size_t adv;
        int32_t c = ju_decode(p + k, b - k, &adv);
        if (ws ? !jstr_is_space(c) : !in_chars(c, chars))
            break;
        b = k;
    }
    return jv_str(p + a, b - a);
}

typedef int32_t (*case_fn)(int32_t);
static int32_t to_upper(int32_t c) { return utf8proc_toupper(c); }
static int32_t to_lower(int32_t c) { return utf8proc_tolower(c); }
static int32_t to_title(int32_t c) { return utf8proc_totitle(c); }

static bool is_cased(int32_t c) {
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static jv jstr_map(jarena *a, jv s, case_fn f) {
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n;) {
        size_t adv;
        ju_encode(f(ju_decode(s.u.s.p + i, s.u.s.n - i, &adv)), &b);
        i += adv;
    }
    return jv_str_from_buf(a, &b);
}
jv jstr_upper(jarena *a, jv s) { return jstr_map(a, s, to_upper); }
jv jstr_lower(jarena *a, jv s) { return jstr_map(a, s, to_lower); }

// Python str.title(): a cased character after an uncased one starts a word.
jv jstr_title(jarena *a, jv s) {
    jbuf b = {0};
    bool prev_cased = false;
    for (size_t i = 0; i < s.u.s.n;) {
        size_t adv;
        int32_t c = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
        ju_encode(prev_cased ? to_lower(c) : to_title(c), &b);
        prev_cased = is_cased(c);
        i += adv;
    }
    return jv_str_from_buf(a, &b);
}

// Python str.capitalize(): first character title-cased, the rest lower-cased.
jv jstr_capitalize(jarena *a, jv s) {
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n;) {
        size_t adv;
        int32_t c = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
        ju_encode(i == 0 ? to_title(c) : to_lower(c), &b);
        i += adv;
    }
    return jv_str_from_buf(a, &b);
}

// Jinja's title filter: words start after "-", whitespace, "(", "{", "[", "<".
jv jstr_jinja_title(jarena *a, jv s) {
    jbuf b = {0};
    bool start = true;
    for (size_t i = 0; i < s.u.s.n;) {
        size_t adv;
        int32_t c = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
        bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || jstr_is_space(c);
        ju_encode(sep ? c : start ? to_upper(c) : to_lower(c), &b);
        start = sep;
        i += adv;
    }
    return jv_str_from_buf(a, &b);
}

jv jstr_replace(jarena *a, jv s, jv old, jv rep, int64_t count) {
    jbuf b = {0};
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    if (old.u.s.n == 0) { // inserts between every character, like Python
        int64_t done = 0;
        for (size_t i = 0; i <= s.u.s.n;) {
            if (count < 0 || done < count) {
                jb_put(&b, rep.u.s.p, rep.u.s.n);
                done++;
            }
            if (i == s.u.s.n)
                break;
            size_t adv;
            ju_decode(p + i, s.u.s.n - i, &adv);
            jb_put(&b, p + i, adv);
            i += adv;
        }
        return jv_str_from_buf(a, &b);
    }
    int64_t done = 0;
    while (p < end) {
        const char *hit = (count < 0 || done < count) ? memmem(p, (size_t)(end - p), old.u.s.p, old.u.s.n) : NULL;
        if (!hit) {
            jb_put(&b, p, (size_t)(end - p));
            break;
        }
        jb_put(&b, p, (size_t)(hit - p));
        jb_put(&b, rep.u.s.p, rep.u.s.n);
        p = hit + old.u.s.n;
        done++;
    }
    return jv_str_from_buf(a, &b);
}

// str.split(sep=None, maxsplit=-1); sep must not be empty (checked by the caller).
jlist *jstr_split(jarena *a, jv s, jv sep, int64_t maxsplit) {
    jlist *l = jl_new(a, 4);
    if (!l)
        return NULL;
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0;
    if (sep.kind == JV_STR) {
        int64_t done = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sep.u.s.p, sep.u.s.n) : NULL;
            if (!hit) {
                jl_push(a, l, jv_str(p + i, n - i));
                return l;
            }
            jl_push(a, l, jv_str(p + i, (size_t)(hit - (p + i))));
            i = (size_t)(hit - p) + sep.u.s.n;
            done++;
        }
    }
    int64_t done = 0;
    for (;;) {
        while (i < n) { // skip whitespace
            size_t adv;
            if (!jstr_is_space(ju_decode(p + i, n - i, &adv)))
                break;
            i += adv;
        }
        if (i >= n)
            return l;
        if (maxsplit >= 0 && done >= maxsplit) {
            jv rest = jstr_strip(jv_str(p + i, n - i), jv_none(), false, true);
            jl_push(a, l, rest);
            return l;
        }
        size_t start = i;
        while (i < n) {
            size_t adv;
            if (jstr_is_space(ju_decode(p + i, n - i, &adv)))
                break;
            i += adv;
        }
        jl_push(a, l, jv_str(p + start, i - start));
        done++;
    }
}

// str.splitlines() (without keepends).
jlist *jstr_splitlines(jarena *a, jv s) {
    jlist *l = jl_new(a, 4);
    if (!l)
        return NULL;
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, start = 0;
    for (size_t i = 0; i < n;) {
        size_t adv;
        int32_t c = ju_decode(p + i, n - i, &adv);
        bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) || c == 0x85 || c == 0x2028 || c == 0x2029;
        if (brk) {
            jl_push(a, l, jv_str(p + start, i - start));
            if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
                adv = 2;
            start = i + adv;
        }
        i += adv;
    }
    if (start < n)
        jl_push(a, l, jv_str(p + start, n - start));
    return l;
}

// ---- number and string formatting shared by "%" and str.format()
typedef struct fspec {
    char fill, align, sign, type;
    bool alt, zero, comma;
    int width, prec; // -1: not given
} fspec;

static void pad_out(jbuf *out, const char *s, size_t n, const fspec *f, char default_align, bool numeric) {
    size_t len = ju_len(s, n);
    size_t w = f->width > 0 ? (size_t)f->width : 0;
    char align = f->align ? f->align : default_align;
    char fill = f->fill ? f->fill : ' ';
    if (len >= w) {
        jb_put(out, s, n);
        return;
    }
    size_t padn = w - len;
    if (align == '=' && numeric) { // padding after the sign
        size_t k = (n > 0 && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) ? 1 : 0;
        jb_put(out, s, k);
        for (size_t i = 0; i < padn; i++)
            jb_putc(out, fill);
        jb_put(out, s + k, n - k);
        return;
    }
    size_t left = align == '<' ? 0 : align == '^' ? padn / 2 : padn;
    for (size_t i = 0; i < left; i++)
        jb_putc(out, fill);
    jb_put(out, s, n);
    for (size_t i = 0; i < padn - left; i++)
        jb_putc(out, fill);
}

static void group_thousands(jbuf *b, const char *digits, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            jb_putc(b, ',');
        jb_putc(b, digits[i]);
    }
}

// Formats a number by a spec type (d x X o b c f F e E g G % or 0 for str()).
static bool format_number(jv v, const fspec *f, jbuf *b) {
    char tmp[512];
    char t = f->type;
    bool isint = v.kind != JV_FLOAT;
    int64_t iv = v.kind == JV_BOOL ? v.u.b : v.kind == JV_INT ? v.u.i : 0;
    double fv = v.kind == JV_FLOAT ? v.u.f : (double)iv;
    jbuf body = {0};
    bool neg = isint ? iv < 0 : signbit(fv) && !isnan(fv);
    if (!t && isint) {
        t = 'd';
    }
    if (strchr("dxXobc", t) && t) {
        if (!isint)
            return false;
        unsigned long long u = neg ? 0ull - (unsigned long long)iv : (unsigned long long)iv;
        if (t == 'c') {
            ju_encode((int32_t)iv, &body);
            neg = false;
        } else if (t == 'b') {
            char bits[70];
            int k = 0;
            do {
                bits[k++] = (char)('0' + (u & 1));
                u >>= 1;
            } while (u);
            if (f->alt)
                jb_puts(&body, "0b");
            while (k)
                jb_putc(&body, bits[--k]);
        } else {
            const char *pfx = t == 'x' ? "0x" : t == 'X' ? "0X" : t == 'o' ? "0o" : "";
            snprintf(tmp, sizeof tmp, t == 'x' ? "%llx" : t == 'X' ? "%llX" : t == 'o' ? "%llo" : "%llu", u);
            if (f->alt)
                jb_puts(&body, pfx);
            if (f->comma && t == 'd')
                group_thousands(&body, tmp, strlen(tmp));
            else
                jb_puts(&body, tmp);
        }
    } else {
        double a = fabs(fv);
        int prec = f->prec >= 0 ? f->prec : 6;
        if (!t) { // float with no type: repr, or %g-like with a precision
            if (f->prec < 0) {
                jv_repr_float(a, &body);
            } else {
                snprintf(tmp, sizeof tmp, "%.*g", prec ? prec : 1, a);
                jb_puts(&body, tmp);
                if (!strpbrk(tmp, ".eni"))
                    jb_puts(&body, ".0");
            }
        } else if (t == '%') {
            snprintf(tmp, sizeof tmp, "%.*f%%", prec, a * 100);
            jb_puts(&body, tmp);
        } else if (strchr("fFeEgG", t)) {
            char cf[8];
            snprintf(cf, sizeof cf, "%%%s.*%c", f->alt ? "#" : "", t);
            snprintf(tmp, sizeof tmp, cf, prec, a);
            if (f->comma && (t == 'f' || t == 'F')) {
                char *dot = strchr(tmp, '.');
                size_t nd = dot ? (size_t)(dot - tmp) : strlen(tmp);
                group_thousands(&body, tmp, nd);
                jb_puts(&body, tmp + nd);
            } else {
                jb_puts(&body, tmp);
            }
        } else {
            jb_free(&body);
            return false;
        }
    }
    jbuf full = {0};
    if (neg)
        jb_putc(&full, '-');
    else if (f->sign == '+' || f->sign == ' ')
        jb_putc(&full, f->sign);
    jb_put(&full, body.p ? body.p : "", body.n);
    fspec g = *f;
    if (f->zero && !f->align) {
        g.align = '=';
        g.fill = '0';
    }
    pad_out(b, full.p ? full.p : "", full.n, &g, '>', true);
    jb_free(&body);
    jb_free(&full);
    return true;
}

// ---- "%" formatting
static ct_status pct_arg(jrender *r, const jnode *at, jv args, size_t *next, jv *out) {
    if (args.kind == JV_TUPLE) {
        if (*next >= args.u.l->n)
            return jr_fail(r, at, "not enough arguments for format string");
        *out = args.u.l->v[(*next)++];
        return CT_OK;
    }
    if (*next > 0)
        return jr_fail(r, at, "not enough arguments for format string");
    (*next)++;
    *out = args;
    return CT_OK;
}

static int parse_num(const char *p, size_t n, size_t *i) {
    int v = 0;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9')
        v = v * 10 + (p[(*i)++] - '0');
    return v;
}

ct_status jb_percent_format(jrender *r, const jnode *at, jv fmt, jv args, jv *out) {
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n, next = 0;
    bool used_map = false;
    jbuf b = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < n && st == CT_OK; i++) {
        if (p[i] != '%') {
            jb_putc(&b, p[i]);
            continue;
        }
        i++;
        jv arg = jv_none();
        bool have_arg = false;
        if (i < n && p[i] == '(') {
            size_t close = i;
            while (close < n && p[close] != ')')
                close++;
            if (close >= n || args.kind != JV_DICT) {
                st = jr_fail(r, at, close >= n ? "incomplete format key" : "format requires a mapping");
                break;
            }
            if (!jd_get(args.u.d, jv_str(p + i + 1, close - i - 1), &arg)) {
                st = jr_fail(r, at, "KeyError: '%.*s'", (int)(close - i - 1), p + i + 1);
                break;
            }
            have_arg = used_map = true;
            i = close + 1;
        }
        fspec f = {.prec = -1};
        while (i < n && strchr("-+ #0", p[i])) {
            char c = p[i++];
            if (c == '-')
                f.align = '<';
            else if (c == '+' || c == ' ')
                f.sign = f.sign == '+' ? '+' : c;
            else if (c == '#')
                f.alt = true;
            else
                f.zero = true;
        }
        f.width = parse_num(p, n, &i);
        if (i < n && p[i] == '.') {
            i++;
            f.prec = parse_num(p, n, &i);
        }
        if (i >= n) {
            st = jr_fail(r, at, "incomplete format");
            break;
        }
        char t = p[i];
        if (t == '%') {
            jb_putc(&b, '%');
            continue;
        }
        if (!have_arg && (st = pct_arg(r, at, args, &next, &arg)) != CT_OK)
            break;
        if (f.align == '<')
            f.zero = false;
        if (t == 's' || t == 'r' || t == 'a') {
            jbuf s = {0};
            if (t == 's')
                jv_to_str(arg, &s);
            else
                jv_repr(arg, &s);
            size_t len = s.n;
            if (f.prec >= 0)
                len = ju_offset(s.p ? s.p : "", s.n, (size_t)f.prec);
            f.zero = false;
            pad_out(&b, s.p ? s.p : "", len, &f, '>', false);
            jb_free(&s);
        } else if (strchr("diuxXoeEfFgGc", t)) {
            if (!jv_is_num(arg)) {
                st = jr_fail(r, at, "%%%c format: a real number is required, not %s", t, jv_type_name(arg));
                break;
            }
            jv num = arg;
            if (strchr("diuxXoc", t) && arg.kind == JV_FLOAT)
                num = jv_int((int64_t)arg.u.f);
            f.type = t == 'i' || t == 'u' ? 'd' : t;
            if (!strchr("eEfFgG", t))
                f.prec = -1;
            if (f.alt && (t == 'x' || t == 'X' || t == 'o'))
                f.alt = true;
            format_number(num, &f, &b);
        } else {
            st = jr_fail(r, at, "unsupported format character '%c'", t);
        }
    }
    if (st == CT_OK && !used_map && args.kind == JV_TUPLE && next < args.u.l->n)
        st = jr_fail(r, at, "not all arguments converted during string formatting");
    if (st != CT_OK) {
        jb_free(&b);
        return st;
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}

// ---- str.format()
static bool parse_spec(const char *p, size_t n, fspec *f) {
    size_t i = 0;
    memset(f, 0, sizeof *f);
    f->prec = -1;
    if (n >= 2 && strchr("<>=^", p[1])) {
        f->fill = p[0];
        f->align = p[1];
        i = 2;
    } else if (n >= 1 && strchr("<>=^", p[0])) {
        f->align = p[0];
        i = 1;
    }
    if (i < n && strchr("+- ", p[i]))
        f->sign = p[i++];
    if (i < n && p[i] == '#') {
        f->alt = true;
        i++;
    }
    if (i < n && p[i] == '0') {
        f->zero = true;
        i++;
    }
    f->width = parse_num(p, n, &i);
    if (i < n && p[i] == ',') {
        f->comma = true;
        i++;
    }
    if (i < n && p[i] == '.') {
        i++;
        f->prec = parse_num(p, n, &i);
    }
    if (i < n)
        f->type = p[i++];
    return i == n;
}

static ct_status format_field(jrender *r, const jnode *at, jv v, const char *spec, size_t sn, jbuf *b) {
    fspec f;
    if (!parse_spec(spec, sn, &f))
        return jr_fail(r, at, "Invalid format specifier '%.*s'", (int)sn, spec);
    if (v.kind == JV_STR || (!jv_is_num(v) && sn == 0)) {
        if (f.type && f.type != 's')
            return jr_fail(r, at, "Unknown format code '%c' for object of type '%s'", f.type, jv_type_name(v));
        jbuf s = {0};
        jv_to_str(v, &s);
        size_t len = s.n;
        if (f.prec >= 0)
            len = ju_offset(s.p ? s.p : "", s.n, (size_t)f.prec);
        if (f.zero && !f.align) {
            f.align = '<';
            f.fill = '0';
        }
        pad_out(b, s.p ? s.p : "", len, &f, '<', false);
        jb_free(&s);
        return CT_OK;
    }
    if (!jv_is_num(v))
        return jr_fail(r, at, "unsupported format string passed to %s.__format__", jv_type_name(v));
    if (v.kind == JV_BOOL && !f.type && sn == 0) {
        jb_puts(b, v.u.b ? "True" : "False");
        return CT_OK;
    }
    if (v.kind != JV_FLOAT && f.type && strchr("eEfFgG%", f.type))
        v = jv_float((double)(v.kind == JV_BOOL ? v.u.b : v.u.i));
    if (!format_number(v, &f, b))
        return jr_fail(r, at, "Unknown format code '%c' for object of type '%s'", f.type, jv_type_name(v));
    return CT_OK;
}

// Resolves "0", "name", "0.attr", "name[key]" against the arguments.
static ct_status field_value(jrender *r, const jnode *at, const char *p, size_t n, const jv *args, size_t nargs,
                             const jkwarg *kw, size_t nkw, size_t *auto_idx, jv *out) {
    size_t i = 0;
    while (i < n && p[i] != '.' && p[i] != '[')
        i++;
    if (i == 0) {
        if (*auto_idx >= nargs)
            return jr_fail(r, at, "Replacement index %zu out of range for positional args tuple", *auto_idx);
        *out = args[(*auto_idx)++];
    } else if (p[0] >= '0' && p[0] <= '9') {
        size_t k = (size_t)strtoul(p, NULL, 10);
        if (k >= nargs)
            return jr_fail(r, at, "Replacement index %zu out of range for positional args tuple", k);
        *out = args[k];
    } else {
        size_t k = 0;
        while (k < nkw && !(strlen(kw[k].name) == i && memcmp(kw[k].name, p, i) == 0))
            k++;
        if (k == nkw)
            return jr_fail(r, at, "KeyError: '%.*s'", (int)i, p);
        *out = kw[k].v;
    }
    while (i < n) {
        size_t j = i + 1;
        if (p[i] == '.') {
            while (j < n && p[j] != '.' && p[j] != '[')
                j++;
            CT_TRY(jr_getattr(r, at, *out, p + i + 1, j - i - 1, out));
            i = j;
        } else {
            while (j < n && p[j] != ']')
                j++;
            const char *key = p + i + 1;
            size_t kn = j - i - 1;
            bool digits = kn > 0;
            for (size_t q = 0; q < kn; q++)
                digits = digits && key[q] >= '0' && key[q] <= '9';
            jv k = digits ? jv_int(strtoll(key, NULL, 10)) : jv_str(key, kn);
            CT_TRY(jr_getitem(r, at, *out, k, out));
            i = j + 1;
        }
    }
    return CT_OK;
}

ct_status jstr_format(jrender *r, const jnode *at, jv fmt, const jv *args, size_t nargs, const jkwarg *kw, size_t nkw, jv *out) {
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n, auto_idx = 0;
    jbuf b = {0};
    ct_status st = CT_OK;
    for (size_t i = 0; i < n && st == CT_OK; i++) {
        if (p[i] == '}' ) {
            if (i + 1 < n && p[i + 1] == '}')
                i++;
            else
                st = jr_fail(r, at, "Single '}' encountered in format string");
            jb_putc(&b, '}');
            continue;
        }
        if (p[i] != '{') {
            jb_putc(&b, p[i]);
            continue;
        }
        if (i + 1 < n && p[i + 1] == '{') {
            jb_putc(&b, '{');
            i++;
            continue;
        }
        size_t close = i + 1;
        while (close < n && p[close] != '}')
            close++;
        if (close >= n) {
            st = jr_fail(r, at, "Single '{' encountered in format string");
            break;
        }
        const char *field = p + i + 1;
        size_t fn = close - i - 1, name_end = 0;
        while (name_end < fn && field[name_end] != '!' && field[name_end] != ':')
            name_end++;
        jv v;
        st = field_value(r, at, field, name_end, args, nargs, kw, nkw, &auto_idx, &v);
        if (st != CT_OK)
            break;
        size_t k = name_end;
        if (k < fn && field[k] == '!' && k + 1 < fn) {
            jbuf conv = {0};
            if (field[k + 1] == 'r' || field[k + 1] == 'a')
                jv_repr(v, &conv);
            else
                jv_to_str(v, &conv);
            v = jv_str_from_buf(jr_arena(r), &conv);
            k += 2;
        }
        const char *spec = k < fn && field[k] == ':' ? field + k + 1 : "";
        size_t sn = k < fn && field[k] == ':' ? fn - k - 1 : 0;
        st = format_field(r, at, v, spec, sn, &b);
        i = close;
    }
    if (st != CT_OK) {
        jb_free(&b);
        return st;
    }
    *out = jv_str_from_buf(jr_arena(r), &b);
    return CT_OK;
}
