// safetensors reading (mmap + validation), writing (atomic, Python-package
// layout), and model weights (single file or sharded with an index).
#include "ctune/safetensors.h"
#include "ctune/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctune/json.h"
#include "ctune/log.h"

// The Rust crate refuses headers above this size; so do we.
#define ST_MAX_HEADER 100000000ull
#define ST_MODEL_FILE "model.safetensors"
#define ST_INDEX_FILE "model.safetensors.index.json"

int64_t ct_tensor_numel(const ct_tensor_view *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

// ---------------------------------------------------------------- helpers

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

// A growable text buffer; on allocation failure it sets oom and stops growing.
typedef struct strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0)
        sb_add(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

// A JSON string literal. ascii_only escapes every non-ASCII character as
// \uXXXX (Python's json.dumps default); otherwise UTF-8 is kept as is and only
// '"', '\\' and control characters are escaped (serde_json, as the Rust
// crate writes headers). s must be valid UTF-8.
static void sb_json_string(strbuf *b, const char *s, bool ascii_only) {
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s), i = 0;
    sb_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t k = ct_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            k = 1, cp = 0xfffd;
        char esc[16];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            sb_add(b, esc, 2);
        } else if (cp < 0x20) {
            const char *named = cp == '\n' ? "\\n" : cp == '\r' ? "\\r" : cp == '\t' ? "\\t"
                              : cp == '\b' ? "\\b" : cp == '\f' ? "\\f" : NULL;
            if (named) {
                sb_puts(b, named);
            } else {
                snprintf(esc, sizeof esc, "\\u00%c%c", hex[cp >> 4], hex[cp & 15]);
                sb_puts(b, esc);
            }
        } else if (cp >= 0x7f && ascii_only) {
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
            sb_puts(b, esc);
        } else {
            sb_add(b, s + i, k);
        }
        i += k;
    }
    sb_add(b, "\"", 1);
}

// ---------------------------------------------------------------- reading

void ct_safetensors_close(ct_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < 2 * st->n_meta; i++)
        free(st->meta[i]);
    free(st->meta);
    ct_strmap_free(&st->by_name);
    ct_mmap_close(&st->map);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static ct_status parse_metadata(ct_safetensors *st, const cJSON *obj, ct_error *err) {
    if (cJSON_IsNull(obj)) // what mx.save_safetensors writes without metadata (serde reads it as None)
        return CT_OK;
    if (!cJSON_IsObject(obj))
        return ct_fail(err, CT_ERR_FORMAT, "__metadata__ must be an object of strings, got %s", ct_json_type_name(obj));
    int n = cJSON_GetArraySize(obj);
    st->meta = calloc((size_t)(2 * n + 1), sizeof *st->meta);
    if (!st->meta)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (!cJSON_IsString(it))
            return ct_fail(err, CT_ERR_FORMAT, "__metadata__ \"%s\" must be a string, got %s", it->string,
                           ct_json_type_name(it));
        char *k = dup_str(it->string), *v = dup_str(it->valuestring);
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
        if (!k || !v)
            return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    return CT_OK;
}

// A JSON number that is an exact non-negative integer.
static bool json_uint(const cJSON *item, uint64_t *out) {
    int64_t v;
    if (!ct_json_as_int(item, &v) || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

// Fills t (and *begin, *end) from one header entry; checks the byte size against the shape.
static ct_status parse_entry(const cJSON *e, ct_tensor_view *t, uint64_t *begin, uint64_t *end, ct_error *err) {
    if (!cJSON_IsObject(e))
        return ct_fail(err, CT_ERR_FORMAT, "entry must be an object, got %s", ct_json_type_name(e));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt || !shape || !offs)
        return ct_fail(err, CT_ERR_FORMAT, "missing \"%s\"", !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt))
        return ct_fail(err, CT_ERR_FORMAT, "\"dtype\" must be a string, got %s", ct_json_type_name(dt));
    if (!ct_dtype_from_name(dt->valuestring, &t->dtype))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "unknown dtype \"%s\"", dt->valuestring);
    if (!cJSON_IsArray(shape))
        return ct_fail(err, CT_ERR_FORMAT, "\"shape\" must be an array, got %s", ct_json_type_name(shape));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > CT_MAX_DIMS)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "shape has %d dimensions (at most %d supported)", ndim, CT_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, shape) {
        int64_t v;
        if (!ct_json_as_int(d, &v))
            return ct_fail(err, CT_ERR_FORMAT, "shape[%d] must be an integer, got %s", i, ct_json_type_name(d));
        if (v < 0)
            return ct_fail(err, CT_ERR_FORMAT, "negative dimension %" PRId64 " in shape", v);
        if (__builtin_mul_overflow(numel, (uint64_t)v, &numel))
            return ct_fail(err, CT_ERR_FORMAT, "shape's element count overflows");
        t->shape[i++] = v;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)ct_dtype_size(t->dtype), &nbytes) || nbytes > SIZE_MAX)
        return ct_fail(err, CT_ERR_FORMAT, "shape's byte size overflows");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), end))
        return ct_fail(err, CT_ERR_FORMAT, "\"data_offsets\" must be [begin, end] with non-negative integers");
    if (*begin > *end)
        return ct_fail(err, CT_ERR_FORMAT, "data_offsets begin %" PRIu64 " > end %" PRIu64, *begin, *end);
    t->nbytes = (size_t)nbytes;
    return CT_OK;
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

// The byte ranges must tile [0, data_size) exactly: no overlap, no hole.
static ct_status check_coverage(const ct_safetensors *st, span *sp, int n, uint64_t data_size, ct_error *err) {
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    uint64_t covered = 0;
    for (int i = 0; i < n; i++) {
        if (sp[i].begin < covered)
            return ct_fail(err, CT_ERR_FORMAT,
                           "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor \"%s\" [%" PRIu64
                           ", %" PRIu64 "]",
                           st->tensors[sp[i].idx].name, sp[i].begin, sp[i].end, st->tensors[sp[i - 1].idx].name,
                           sp[i - 1].begin, sp[i - 1].end);
        if (sp[i].begin > covered)
            return ct_fail(err, CT_ERR_FORMAT, "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (a hole)",
                           covered, sp[i].begin);
        covered = sp[i].end;
    }
    if (covered < data_size)
        return ct_fail(err, CT_ERR_FORMAT, "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (trailing bytes)",
                       covered, data_size);
    return CT_OK;
}

static ct_status parse_tensors(ct_safetensors *st, const cJSON *root, const char *data, uint64_t data_size,
                               ct_error *err) {
    int n = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    span *sp = calloc((size_t)n + 1, sizeof *sp);
    if (!st->tensors || !sp) {
        free(sp);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    ct_status s = CT_OK;
    bool seen_meta = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_meta) {
                s = ct_fail(err, CT_ERR_FORMAT, "duplicate \"__metadata__\" in the header");
                break;
            }
            seen_meta = true;
            if ((s = parse_metadata(st, e, err)) != CT_OK)
                break;
            continue;
        }
        bool fresh;
        if ((s = ct_strmap_puts(&st->by_name, e->string, st->n_tensors, &fresh, err)) != CT_OK)
            break;
        if (!fresh) {
            s = ct_fail(err, CT_ERR_FORMAT, "duplicate tensor \"%s\" in the header", e->string);
            break;
        }
        ct_tensor_view *t = &st->tensors[st->n_tensors];
        span *p = &sp[st->n_tensors];
        if (!(t->name = dup_str(e->string))) {
            s = ct_fail(err, CT_ERR_NOMEM, "out of memory");
            break;
        }
        p->idx = st->n_tensors++;
        if ((s = parse_entry(e, t, &p->begin, &p->end, err)) != CT_OK) {
            ct_error_context(err, "tensor \"%s\"", t->name);
            break;
        }
        if (p->end > data_size) {
            s = ct_fail(err, CT_ERR_FORMAT,
                        "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%" PRIu64
                        " bytes)",
                        t->name, p->begin, p->end, data_size);
            break;
        }
        if (p->end - p->begin != t->nbytes) {
            s = ct_fail(err, CT_ERR_FORMAT, "tensor \"%s\": data_offsets span %" PRIu64 " bytes but %s shape needs %zu",
                        t->name, p->end - p->begin, ct_dtype_name(t->dtype), t->nbytes);
            break;
        }
        t->data = data + p->begin;
    }
    if (s == CT_OK)
        s = check_coverage(st, sp, st->n_tensors, data_size, err);
    free(sp);
    return s;
}

static ct_status parse_file(ct_safetensors *st, ct_error *err) {
    const unsigned char *b = st->map.data;
    size_t size = st->map.size;
    if (size < 8)
        return ct_fail(err, CT_ERR_FORMAT, "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | b[i];
    if (n > ST_MAX_HEADER)
        return ct_fail(err, CT_ERR_FORMAT, "header length %" PRIu64 " is too large (limit %llu bytes)", n,
                       ST_MAX_HEADER);
    if (n > size - 8)
        return ct_fail(err, CT_ERR_FORMAT, "header length %" PRIu64 " runs past the end of the file (%zu bytes)", n,
                       size);
    const char *text = (const char *)b + 8;
    size_t bad = ct_utf8_invalid_at(text, n);
    if (bad < n)
        return ct_fail(err, CT_ERR_FORMAT, "header is not valid UTF-8 (byte %zu of the header)", bad);
    cJSON *root;
    CT_TRY(ct_json_parse(text, n, "header", &root, err));
    ct_status s;
    if (!cJSON_IsObject(root))
        s = ct_fail(err, CT_ERR_FORMAT, "header must be a JSON object, got %s", ct_json_type_name(root));
    else
        s = parse_tensors(st, root, text + n, size - 8 - n, err);
    cJSON_Delete(root);
    return s;
}

ct_status ct_safetensors_open(ct_safetensors *st, const char *path, ct_error *err) {
    memset(st, 0, sizeof *st);
    ct_strmap_init(&st->by_name);
    CT_TRY(ct_mmap_open(&st->map, path, err));
    st->path = dup_str(path);
    ct_status s = st->path ? parse_file(st, err) : ct_fail(err, CT_ERR_NOMEM, "out of memory");
    if (s != CT_OK) {
        ct_error_context(err, "%s", path);
        ct_safetensors_close(st);
    }
    return s;
}

const ct_tensor_view *ct_safetensors_find(const ct_safetensors *st, const char *name) {
    int64_t i;
    return ct_strmap_gets(&st->by_name, name, &i) ? &st->tensors[i] : NULL;
}

const char *ct_safetensors_meta(const ct_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key))
            return st->meta[2 * i + 1];
    return NULL;
}

// ---------------------------------------------------------------- writing

// Rank of a dtype in the Rust crate's Dtype enum (declared in increasing
// alignment order); files are laid out by descending rank, then name.
static int dtype_rank(ct_dtype t) {
    static const ct_dtype order[] = {CT_BOOL, CT_U8,  CT_I8,   CT_F8_E5M2, CT_F8_E4M3, CT_I16, CT_U16, CT_F16,
                                     CT_BF16, CT_I32, CT_U32,  CT_F32,     CT_F64,     CT_I64, CT_U64};
    for (int i = 0; i < (int)(sizeof order / sizeof order[0]); i++)
        if (order[i] == t)
            return i;
    return -1;
}

static int cmp_layout(const void *a, const void *b) {
    const ct_tensor_view *x = *(const ct_tensor_view *const *)a, *y = *(const ct_tensor_view *const *)b;
    int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
    if (rx != ry)
        return ry - rx;
    return strcmp(x->name, y->name);
}

static ct_status check_view(const ct_tensor_view *t, int i, ct_error *err) {
    if (!t->name)
        return ct_fail(err, CT_ERR_INVALID, "tensor %d has no name", i);
    if (ct_utf8_invalid_at(t->name, strlen(t->name)) < strlen(t->name))
        return ct_fail(err, CT_ERR_INVALID, "tensor %d: name is not valid UTF-8", i);
    if (!strcmp(t->name, "__metadata__"))
        return ct_fail(err, CT_ERR_INVALID, "a tensor cannot be called \"__metadata__\"");
    if ((unsigned)t->dtype >= CT_DTYPE_COUNT)
        return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": invalid dtype %d", t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > CT_MAX_DIMS)
        return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": ndim %d out of range", t->name, t->ndim);
    uint64_t numel = 1, nbytes;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": negative dimension %" PRId64, t->name, t->shape[d]);
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel))
            return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": element count overflows", t->name);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)ct_dtype_size(t->dtype), &nbytes) || nbytes != t->nbytes)
        return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": nbytes %zu does not match its %s shape", t->name, t->nbytes,
                       ct_dtype_name(t->dtype));
    if (t->nbytes && !t->data)
        return ct_fail(err, CT_ERR_INVALID, "tensor \"%s\": no data", t->name);
    return CT_OK;
}

// Checks names are unique and views well-formed.
static ct_status check_views(const ct_tensor_view *t, int n, ct_error *err) {
    if (n < 0)
        return ct_fail(err, CT_ERR_INVALID, "negative tensor count %d", n);
    ct_strmap seen;
    ct_strmap_init(&seen);
    ct_status s = CT_OK;
    for (int i = 0; i < n && s == CT_OK; i++) {
        bool fresh = true;
        s = check_view(&t[i], i, err);
        if (s == CT_OK)
            s = ct_strmap_puts(&seen, t[i].name, i, &fresh, err);
        if (s == CT_OK && !fresh)
            s = ct_fail(err, CT_ERR_INVALID, "duplicate tensor name \"%s\"", t[i].name);
    }
    ct_strmap_free(&seen);
    return s;
}

static ct_status check_meta(const char *const *kv, int n_meta, ct_error *err) {
    if (n_meta < 0 || (n_meta > 0 && !kv))
        return ct_fail(err, CT_ERR_INVALID, "bad metadata count %d", n_meta);
    for (int i = 0; i < 2 * n_meta; i++) {
        if (!kv[i])
            return ct_fail(err, CT_ERR_INVALID, "metadata %s %d is NULL", i % 2 ? "value" : "key", i / 2);
        if (ct_utf8_invalid_at(kv[i], strlen(kv[i])) < strlen(kv[i]))
            return ct_fail(err, CT_ERR_INVALID, "metadata \"%s\" is not valid UTF-8", kv[i - i % 2]);
        if (i % 2 == 0)
            for (int j = 0; j < i; j += 2)
                if (!strcmp(kv[i], kv[j]))
                    return ct_fail(err, CT_ERR_INVALID, "duplicate metadata key \"%s\"", kv[i]);
    }
    return CT_OK;
}

// The header JSON for tensors in layout order, padded with spaces to a multiple of 8.
static void build_header(strbuf *h, const ct_tensor_view *const *order, int n, const char *const *kv, int n_meta) {
    sb_puts(h, "{");
    if (n_meta > 0) {
        sb_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i)
                sb_puts(h, ",");
            sb_json_string(h, kv[2 * i], false);
            sb_puts(h, ":");
            sb_json_string(h, kv[2 * i + 1], false);
        }
        sb_puts(h, "}");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const ct_tensor_view *t = order[i];
        if (i || n_meta > 0)
            sb_puts(h, ",");
        sb_json_string(h, t->name, false);
        sb_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", ct_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            sb_printf(h, "%s%" PRId64, d ? "," : "", t->shape[d]);
        sb_printf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    sb_puts(h, "}");
    while (h->len % 8)
        sb_puts(h, " ");
}

static ct_status write_file(const char *path, const strbuf *h, const ct_tensor_view *const *order, int n,
                            ct_error *err) {
    ct_atomic_file w;
    CT_TRY(ct_atomic_begin(&w, path, err));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
    bool ok = fwrite(len8, 1, 8, w.f) == 8 && fwrite(h->p, 1, h->len, w.f) == h->len;
    for (int i = 0; i < n && ok; i++)
        ok = !order[i]->nbytes || fwrite(order[i]->data, 1, order[i]->nbytes, w.f) == order[i]->nbytes;
    if (!ok) {
        // Name the cause (disk full, file size limit): "write failed" alone left the user guessing.
        int saved = errno;
        ct_atomic_abort(&w);
        return ct_fail(err, CT_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    return ct_atomic_commit(&w, err);
}

ct_status ct_safetensors_write(const char *path, const ct_tensor_view *tensors, int n, const char *const *meta_kv,
                               int n_meta, ct_error *err) {
    ct_status s = check_views(tensors, n, err);
    if (s == CT_OK)
        s = check_meta(meta_kv, n_meta, err);
    if (s != CT_OK) {
        ct_error_context(err, "%s", path);
        return s;
    }
    const ct_tensor_view **order = malloc(((size_t)n + 1) * sizeof *order);
    if (!order)
        return ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++)
        order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, cmp_layout);
    strbuf h = {0};
    build_header(&h, order, n, meta_kv, n_meta);
    if (h.oom)
        s = ct_fail(err, CT_ERR_NOMEM, "%s: out of memory", path);
    else
        s = write_file(path, &h, order, n, err);
    free(h.p);
    free(order);
    return s;
}

// ---------------------------------------------------------------- model weights

void ct_weights_close(ct_weights *w) {
    for (int i = 0; i < w->n_shards; i++)
        ct_safetensors_close(&w->shards[i]);
    free(w->shards);
    free(w->views);
    ct_strmap_free(&w->by_name);
    memset(w, 0, sizeof *w);
}

const ct_tensor_view *ct_weights_find(const ct_weights *w, const char *name) {
    int64_t i;
    return ct_strmap_gets(&w->by_name, name, &i) ? &w->views[i] : NULL;
}

// Appends view v to w (views has room for every tensor of every shard).
static ct_status add_view(ct_weights *w, const ct_tensor_view *v, ct_error *err) {
    bool fresh;
    CT_TRY(ct_strmap_puts(&w->by_name, v->name, w->n, &fresh, err));
    if (!fresh)
        return ct_fail(err, CT_ERR_FORMAT, "tensor \"%s\" appears twice", v->name);
    w->views[w->n++] = *v;
    return CT_OK;
}

static ct_status open_single(ct_weights *w, const char *path, ct_error *err) {
    w->shards = calloc(1, sizeof *w->shards);
    if (!w->shards)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    CT_TRY(ct_safetensors_open(&w->shards[0], path, err));
    w->n_shards = 1;
    w->views = calloc((size_t)w->shards[0].n_tensors + 1, sizeof *w->views);
    if (!w->views)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < w->shards[0].n_tensors; i++)
        CT_TRY(add_view(w, &w->shards[0].tensors[i], err));
    return CT_OK;
}

// Opens each distinct shard file named in weight_map once; files maps shard file name -> shard index.
static ct_status open_shards(ct_weights *w, const char *dir, const char *ipath, const cJSON *map, ct_strmap *files,
                             ct_error *err) {
    w->shards = calloc((size_t)cJSON_GetArraySize(map) + 1, sizeof *w->shards);
    if (!w->shards)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e))
            return ct_fail(err, CT_ERR_FORMAT, "%s: weight_map \"%s\" must be a file name string, got %s", ipath,
                           e->string, ct_json_type_name(e));
        const char *f = e->valuestring;
        if (!f[0] || f[0] == '/' || strstr(f, ".."))
            return ct_fail(err, CT_ERR_FORMAT, "%s: weight_map \"%s\": shard \"%s\" must be a file name inside the folder",
                           ipath, e->string, f);
        int64_t known;
        if (ct_strmap_gets(files, f, &known)) // (puts would overwrite the shard index)
            continue;
        CT_TRY(ct_strmap_puts(files, f, w->n_shards, NULL, err));
        char path[4096];
        CT_TRY(ct_path_join(path, sizeof path, dir, f, err));
        CT_TRY(ct_safetensors_open(&w->shards[w->n_shards], path, err));
        w->n_shards++;
    }
    return CT_OK;
}

// Checks every index entry against its shard, then collects the views the
// index maps, shard by shard in file order. A shard tensor the index does not
// map to that shard is skipped with a warning rather than refused: transformers
// loads such folders too (reporting unused weights), and the index is the
// authority on what the model is; using it silently could pick a stale copy.
static ct_status collect_indexed(ct_weights *w, const char *ipath, const cJSON *map, const ct_strmap *files,
                                 ct_error *err) {
    ct_strmap where; // tensor name -> shard index it is mapped to
    ct_strmap_init(&where);
    int total = 0;
    ct_status s = CT_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        int64_t k;
        bool fresh;
        ct_strmap_gets(files, e->valuestring, &k);
        if ((s = ct_strmap_puts(&where, e->string, k, &fresh, err)) != CT_OK)
            break;
        if (!fresh) {
            s = ct_fail(err, CT_ERR_FORMAT, "%s: weight_map lists \"%s\" twice", ipath, e->string);
            break;
        }
        if (!ct_safetensors_find(&w->shards[k], e->string)) {
            s = ct_fail(err, CT_ERR_FORMAT, "%s: weight_map maps \"%s\" to %s, which does not hold it", ipath,
                        e->string, e->valuestring);
            break;
        }
        total++;
    }
    if (s == CT_OK && !(w->views = calloc((size_t)total + 1, sizeof *w->views)))
        s = ct_fail(err, CT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < w->n_shards && s == CT_OK; k++) {
        const ct_safetensors *sh = &w->shards[k];
        for (int i = 0; i < sh->n_tensors && s == CT_OK; i++) {
            int64_t mapped;
            if (ct_strmap_gets(&where, sh->tensors[i].name, &mapped) && mapped == k)
                s = add_view(w, &sh->tensors[i], err);
            else
                ct_log_warn("%s: tensor \"%s\" is not mapped to this file by the index; ignoring it", sh->path,
                            sh->tensors[i].name);
        }
    }
    ct_strmap_free(&where);
    return s;
}

static ct_status open_indexed(ct_weights *w, const char *dir, const char *index_path, ct_error *err) {
    cJSON *root;
    CT_TRY(ct_json_load_file(index_path, &root, err));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    ct_strmap files;
    ct_strmap_init(&files);
    ct_status s;
    if (!cJSON_IsObject(map))
        s = ct_fail(err, CT_ERR_FORMAT, "%s: \"weight_map\" must be an object, got %s", index_path,
                    ct_json_type_name(map));
    else if ((s = open_shards(w, dir, index_path, map, &files, err)) == CT_OK)
        s = collect_indexed(w, index_path, map, &files, err);
    ct_strmap_free(&files);
    cJSON_Delete(root);
    return s;
}

// "no weights" error, listing what was looked for and other .safetensors files present.
static ct_status no_weights(const char *dir, ct_error *err) {
    strbuf others = {0};
    DIR *d = opendir(dir);
    if (!d)
        return ct_fail(err, CT_ERR_IO, "%s: not a readable folder", dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 12 && !strcmp(de->d_name + l - 12, ".safetensors")) {
            sb_puts(&others, others.len ? ", " : "");
            sb_puts(&others, de->d_name);
        }
    }
    closedir(d);
    ct_fail(err, CT_ERR_IO, "%s: no model weights: looked for %s and %s%s%s%s", dir, ST_MODEL_FILE, ST_INDEX_FILE,
            others.len ? " (other .safetensors files here: " : "", others.len ? others.p : "", others.len ? ")" : "");
    free(others.p);
    return err ? err->status : CT_ERR_IO;
}

ct_status ct_weights_open(ct_weights *w, const char *model_dir, ct_error *err) {
    memset(w, 0, sizeof *w);
    ct_strmap_init(&w->by_name);
    char single[4096], index[4096];
    CT_TRY(ct_path_join(single, sizeof single, model_dir, ST_MODEL_FILE, err));
    CT_TRY(ct_path_join(index, sizeof index, model_dir, ST_INDEX_FILE, err));
    ct_status s;
    if (ct_path_exists(single))
        s = open_single(w, single, err);
    else if (ct_path_exists(index))
        s = open_indexed(w, model_dir, index, err);
    else
        s = no_weights(model_dir, err);
    if (s != CT_OK)
        ct_weights_close(w);
    return s;
}

// ---------------------------------------------------------------- sharded writing

// Splits t[0..n) into shards like huggingface_hub's split_state_dict_into_shards:
// in order, a new shard when the next tensor would push the current one past
// max; a tensor bigger than max gets a shard of its own. Shards are numbered
// in the order they are closed (a big tensor's shard closes at once, before
// the shard being filled). shard_of[i] gets tensor i's shard; returns the count.
static int plan_shards(const ct_tensor_view *t, int n, size_t max, int *shard_of) {
    int n_shards = 0, open = -1; // open: tensor index that started the shard being filled
    size_t open_size = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].nbytes > max) {
            shard_of[i] = n_shards++;
            continue;
        }
        if (open >= 0 && open_size + t[i].nbytes > max) {
            for (int j = open; j < i; j++) // close the open shard: it gets the next number
                if (shard_of[j] == -1)
                    shard_of[j] = n_shards;
            n_shards++;
            open = -1;
        }
        if (open < 0) {
            open = i;
            open_size = 0;
        }
        shard_of[i] = -1;
        open_size += t[i].nbytes;
    }
    if (open >= 0) {
        for (int j = open; j < n; j++)
            if (shard_of[j] == -1)
                shard_of[j] = n_shards;
        n_shards++;
    }
    return n_shards;
}

static bool all_digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

// "model-DDDDD-of-DDDDD.safetensors"
static bool is_shard_name(const char *f) {
    return strlen(f) == 32 && !strncmp(f, "model-", 6) && all_digits(f + 6, 5) && !strncmp(f + 11, "-of-", 4) &&
           all_digits(f + 15, 5) && !strcmp(f + 20, ".safetensors");
}

// Removes weight files in dir that the layout just written does not use.
static void remove_stale(const char *dir, int n_shards) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    char keep_suffix[32];
    snprintf(keep_suffix, sizeof keep_suffix, "-of-%05d.safetensors", n_shards);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *f = de->d_name;
        bool stale = (n_shards > 1 && !strcmp(f, ST_MODEL_FILE)) || (n_shards <= 1 && !strcmp(f, ST_INDEX_FILE)) ||
                     (is_shard_name(f) && (n_shards <= 1 || strcmp(f + 11, keep_suffix) != 0 ||
                                           atoi(f + 6) < 1 || atoi(f + 6) > n_shards));
        char path[4096];
        if (stale && ct_path_join(path, sizeof path, dir, f, NULL) == CT_OK)
            unlink(path);
    }
    closedir(d);
}

static void shard_name(char *out, size_t n, int k, int n_shards) {
    snprintf(out, n, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
}

// The index JSON exactly as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n".
static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp((*(const ct_tensor_view *const *)a)->name, (*(const ct_tensor_view *const *)b)->name);
}

static ct_status write_index(const char *dir, const ct_tensor_view *t, int n, const int *shard_of, int n_shards,
                             ct_error *err) {
    const ct_tensor_view **sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!sorted)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    uint64_t total_size = 0, total_params = 0;
    for (int i = 0; i < n; i++) {
        sorted[i] = &t[i];
        total_size += t[i].nbytes;
        total_params += (uint64_t)ct_tensor_numel(&t[i]);
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_name_ptr);
    strbuf b = {0};
    sb_printf(&b, "{\n  \"metadata\": {\n    \"total_parameters\": %" PRIu64 ",\n    \"total_size\": %" PRIu64
                  "\n  },\n  \"weight_map\": {",
              total_params, total_size);
    for (int i = 0; i < n; i++) {
        char f[64];
        shard_name(f, sizeof f, shard_of[sorted[i] - t], n_shards);
        sb_puts(&b, i ? ",\n    " : "\n    ");
        sb_json_string(&b, sorted[i]->name, true);
        sb_printf(&b, ": \"%s\"", f);
    }
    sb_puts(&b, n ? "\n  }\n}\n" : "}\n}\n");
    char path[4096];
    ct_status s = b.oom ? ct_fail(err, CT_ERR_NOMEM, "out of memory")
                        : ct_path_join(path, sizeof path, dir, ST_INDEX_FILE, err);
    if (s == CT_OK)
        s = ct_write_file_atomic(path, b.p, b.len, err);
    free(b.p);
    free(sorted);
    return s;
}

static ct_status write_shards(const char *dir, const ct_tensor_view *t, int n, const int *shard_of, int n_shards,
                              const char *const *kv, int n_meta, ct_error *err) {
    ct_tensor_view *part = malloc(((size_t)n + 1) * sizeof *part);
    if (!part)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    ct_status s = CT_OK;
    for (int k = 0; k < n_shards && s == CT_OK; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == k)
                part[m++] = t[i];
        char f[64], path[4096];
        shard_name(f, sizeof f, k, n_shards);
        s = ct_path_join(path, sizeof path, dir, f, err);
        if (s == CT_OK)
            s = ct_safetensors_write(path, part, m, kv, n_meta, err);
    }
    free(part);
    if (s == CT_OK)
        s = write_index(dir, t, n, shard_of, n_shards, err);
    return s;
}

ct_status ct_safetensors_write_sharded(const char *dir, const ct_tensor_view *t, int n, size_t max_shard_bytes,
                                       const char *const *meta_kv, int n_meta, ct_error *err) {
    ct_status s = check_views(t, n, err); // names must be unique across shards too
    if (s != CT_OK) {
        ct_error_context(err, "%s", dir);
        return s;
    }
    CT_TRY(ct_mkdir_p(dir, err));
    int *shard_of = malloc(((size_t)n + 1) * sizeof *shard_of);
    if (!shard_of)
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    int n_shards = plan_shards(t, n, max_shard_bytes, shard_of);
    if (n_shards <= 1) {
        char path[4096];
        s = ct_path_join(path, sizeof path, dir, ST_MODEL_FILE, err);
        if (s == CT_OK)
            s = ct_safetensors_write(path, t, n, meta_kv, n_meta, err);
    } else {
        s = write_shards(dir, t, n, shard_of, n_shards, meta_kv, n_meta, err);
    }
    if (s == CT_OK)
        remove_stale(dir, n_shards);
    free(shard_of);
    return s;
}
