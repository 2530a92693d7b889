// GGUF reader and writer. The reader walks the header with a bounds-checked
// cursor, so a malformed file gives an error naming the offset, key or tensor
// rather than a read past the mapping; every size is checked against the bytes
// left before it is multiplied or allocated.
#include "ctune/gguf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"

static const struct {
    const char *name;
    size_t size;
} VALUE_TYPES[CT_GGUF_TYPE_COUNT] = {
    [CT_GGUF_U8] = {"u8", 1},   [CT_GGUF_I8] = {"i8", 1},       [CT_GGUF_U16] = {"u16", 2},
    [CT_GGUF_I16] = {"i16", 2}, [CT_GGUF_U32] = {"u32", 4},     [CT_GGUF_I32] = {"i32", 4},
    [CT_GGUF_F32] = {"f32", 4}, [CT_GGUF_BOOL] = {"bool", 1},   [CT_GGUF_STRING] = {"string", 0},
    [CT_GGUF_ARRAY] = {"array", 0}, [CT_GGUF_U64] = {"u64", 8}, [CT_GGUF_I64] = {"i64", 8},
    [CT_GGUF_F64] = {"f64", 8},
};

const char *ct_gguf_type_name(ct_gguf_type t) {
    return (unsigned)t < CT_GGUF_TYPE_COUNT ? VALUE_TYPES[t].name : "?";
}

size_t ct_gguf_type_size(ct_gguf_type t) { return (unsigned)t < CT_GGUF_TYPE_COUNT ? VALUE_TYPES[t].size : 0; }

// ---------------------------------------------------------------- reader

typedef struct cursor {
    const uint8_t *p;
    size_t size;
    size_t pos;
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

static ct_status take(cursor *c, size_t n, const uint8_t **out, const char *what, ct_error *err) {
    if (n > left(c))
        return ct_fail(err, CT_ERR_FORMAT, "%s at offset %zu runs past the end of the file (%zu bytes)", what, c->pos,
                       c->size);
    *out = c->p + c->pos;
    c->pos += n;
    return CT_OK;
}

static uint64_t le_u64(const uint8_t *b, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static ct_status read_u32(cursor *c, uint32_t *v, const char *what, ct_error *err) {
    const uint8_t *b = NULL;
    CT_TRY(take(c, 4, &b, what, err));
    *v = (uint32_t)le_u64(b, 4);
    return CT_OK;
}

static ct_status read_u64(cursor *c, uint64_t *v, const char *what, ct_error *err) {
    const uint8_t *b = NULL;
    CT_TRY(take(c, 8, &b, what, err));
    *v = le_u64(b, 8);
    return CT_OK;
}

// A length-prefixed string, left in place.
static ct_status read_raw_str(cursor *c, const uint8_t **s, size_t *len, const char *what, ct_error *err) {
    uint64_t n;
    size_t at = c->pos;
    CT_TRY(read_u64(c, &n, what, err));
    if (n > left(c))
        return ct_fail(err, CT_ERR_FORMAT, "%s at offset %zu: length %llu runs past the end of the file", what, at,
                       (unsigned long long)n);
    *len = (size_t)n;
    return take(c, (size_t)n, s, what, err);
}

static ct_status dup_str(const uint8_t *s, size_t len, char **out, ct_error *err) {
    char *d = malloc(len + 1);
    if (!d)
        return ct_fail(err, CT_ERR_NOMEM, "cannot allocate %zu bytes", len + 1);
    memcpy(d, s, len);
    d[len] = 0;
    *out = d;
    return CT_OK;
}

// count strings at the cursor -> one allocation holding the table and the NUL-terminated copies.
static ct_status read_strings(cursor *c, uint64_t count, const char *key, ct_gguf_str **out, ct_error *err) {
    *out = NULL;
    if (count > left(c) / 8)
        return ct_fail(err, CT_ERR_FORMAT, "key '%s': %llu strings cannot fit in the file", key,
                       (unsigned long long)count);
    size_t start = c->pos, total = 0;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *s = NULL;
        size_t len;
        if (read_raw_str(c, &s, &len, "string", err) != CT_OK)
            return ct_error_context(err, "key '%s' element %llu", key, (unsigned long long)i);
        total += len + 1;
    }
    ct_gguf_str *strs = malloc((size_t)count * sizeof *strs + total + 1);
    if (!strs)
        return ct_fail(err, CT_ERR_NOMEM, "key '%s': cannot allocate %zu bytes of strings", key, total);
    char *chars = (char *)(strs + count);
    c->pos = start;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *s = NULL;
        size_t len;
        read_raw_str(c, &s, &len, "string", err); // validated above
        memcpy(chars, s, len);
        chars[len] = 0;
        strs[i].ptr = chars;
        strs[i].len = len;
        chars += len + 1;
    }
    *out = strs;
    return CT_OK;
}

static bool valid_value_type(uint32_t t) { return t < CT_GGUF_TYPE_COUNT; }

static ct_status read_kv(cursor *c, ct_gguf_kv *kv, ct_error *err) {
    const uint8_t *s = NULL;
    size_t len;
    size_t at = c->pos;
    CT_TRY(read_raw_str(c, &s, &len, "metadata key", err));
    CT_TRY(dup_str(s, len, (char **)&kv->key, err));
    uint32_t t;
    if (read_u32(c, &t, "value type", err) != CT_OK)
        return ct_error_context(err, "key '%s'", kv->key);
    if (!valid_value_type(t))
        return ct_fail(err, CT_ERR_FORMAT, "key '%s' (offset %zu): unknown value type %u", kv->key, at, t);
    kv->type = (ct_gguf_type)t;
    kv->elem_type = kv->type;
    kv->count = 1;
    if (t == CT_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (read_u32(c, &et, "array element type", err) != CT_OK || read_u64(c, &n, "array length", err) != CT_OK)
            return ct_error_context(err, "key '%s'", kv->key);
        if (et == CT_GGUF_ARRAY)
            return ct_fail(err, CT_ERR_FORMAT, "key '%s': nested arrays (array of arrays) are not supported", kv->key);
        if (!valid_value_type(et))
            return ct_fail(err, CT_ERR_FORMAT, "key '%s': unknown array element type %u", kv->key, et);
        kv->elem_type = (ct_gguf_type)et;
        kv->count = n;
    }
    if (kv->elem_type == CT_GGUF_STRING)
        return read_strings(c, kv->count, kv->key, (ct_gguf_str **)&kv->strs, err);
    size_t sz = ct_gguf_type_size(kv->elem_type);
    if (kv->count > left(c) / sz)
        return ct_fail(err, CT_ERR_FORMAT, "key '%s': %llu %s values cannot fit in the file", kv->key,
                       (unsigned long long)kv->count, ct_gguf_type_name(kv->elem_type));
    return take(c, (size_t)kv->count * sz, (const uint8_t **)&kv->data, "value", err);
}

static ct_status read_header(ct_gguf *g, cursor *c, ct_error *err) {
    if (c->size < 24 || memcmp(c->p, GGUF_MAGIC, 4) != 0) {
        if (c->size >= 4 && memcmp(c->p, GGUF_MAGIC, 4) != 0)
            return ct_fail(err, CT_ERR_FORMAT, "bad magic (not a GGUF file)");
        return ct_fail(err, CT_ERR_FORMAT, "file of %zu bytes is too small to be a GGUF file", c->size);
    }
    c->pos = 4;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    CT_TRY(read_u32(c, &version, "version", err));
    if (version != 0 && (version & 0xFFFF) == 0)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "unsupported version field 0x%08x: big-endian GGUF files are not supported",
                       version);
    if (version != 2 && version != 3)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "unsupported GGUF version %u (ctune reads versions 2 and 3)", version);
    g->version = version;
    CT_TRY(read_u64(c, &n_tensors, "tensor count", err));
    CT_TRY(read_u64(c, &n_kv, "metadata count", err));
    // Smallest encodings: a pair is key length + type + 1 byte; a tensor is name length + ndim + type + offset.
    if (n_kv > left(c) / 13)
        return ct_fail(err, CT_ERR_FORMAT, "metadata count %llu cannot fit in the file", (unsigned long long)n_kv);
    if (n_tensors > left(c) / 24)
        return ct_fail(err, CT_ERR_FORMAT, "tensor count %llu cannot fit in the file", (unsigned long long)n_tensors);
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    return CT_OK;
}

static ct_status read_metadata(ct_gguf *g, cursor *c, ct_error *err) {
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    if (!g->kv)
        return ct_fail(err, CT_ERR_NOMEM, "cannot allocate %llu metadata entries", (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        ct_gguf_kv *kv = &g->kv[i];
        CT_TRY(read_kv(c, kv, err));
        bool is_new;
        CT_TRY(ct_strmap_puts(&g->kv_index, kv->key, (int64_t)i, &is_new, err));
        if (!is_new)
            return ct_fail(err, CT_ERR_FORMAT, "duplicate metadata key '%s'", kv->key);
    }
    g->alignment = CT_GGUF_DEFAULT_ALIGNMENT;
    const ct_gguf_kv *a = ct_gguf_find_kv(g, "general.alignment");
    if (a) {
        uint64_t v;
        if (a->type != CT_GGUF_U32 || !ct_gguf_kv_u64(a, &v) || v == 0 || (v & (v - 1)) != 0)
            return ct_fail(err, CT_ERR_FORMAT, "key 'general.alignment' must be a u32 power of two");
        g->alignment = (size_t)v;
    }
    return CT_OK;
}

static ct_status read_tensor_info(cursor *c, ct_gguf_tensor *t, ct_error *err) {
    const uint8_t *s = NULL;
    size_t len;
    CT_TRY(read_raw_str(c, &s, &len, "tensor name", err));
    CT_TRY(dup_str(s, len, (char **)&t->name, err));
    if (read_u32(c, &t->ndim, "tensor ndim", err) != CT_OK)
        return ct_error_context(err, "tensor '%s'", t->name);
    if (t->ndim == 0 || t->ndim > CT_GGUF_MAX_DIMS)
        return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': ndim %u is not in 1..%d", t->name, t->ndim, CT_GGUF_MAX_DIMS);
    int64_t nel = 1;
    for (uint32_t d = 0; d < CT_GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        if (d < t->ndim && read_u64(c, &v, "tensor dimension", err) != CT_OK)
            return ct_error_context(err, "tensor '%s'", t->name);
        if (v == 0 || v > INT64_MAX)
            return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': dimension %u is %lld (must be positive)", t->name, d,
                           (long long)v);
        if ((int64_t)v > INT64_MAX / nel)
            return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': element count overflows", t->name);
        t->ne[d] = (int64_t)v;
        nel *= (int64_t)v;
    }
    t->nelements = nel;
    uint32_t type;
    if (read_u32(c, &type, "tensor type", err) != CT_OK || read_u64(c, &t->offset, "tensor offset", err) != CT_OK)
        return ct_error_context(err, "tensor '%s'", t->name);
    if (!ct_ggml_type_valid(type))
        return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': unknown ggml type %u", t->name, type);
    t->type = (ct_ggml_type)type;
    size_t row = ct_ggml_row_size(t->type, t->ne[0]);
    if (row == 0)
        return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': row of %lld elements is not a multiple of the %s block size %lld",
                       t->name, (long long)t->ne[0], ct_ggml_type_name(t->type),
                       (long long)ct_ggml_block_size(t->type));
    uint64_t rows = (uint64_t)(nel / t->ne[0]);
    if (rows > SIZE_MAX / row)
        return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': size overflows", t->name);
    t->nbytes = row * (size_t)rows;
    return CT_OK;
}

static int by_offset(const void *a, const void *b) {
    const ct_gguf_tensor *x = *(const ct_gguf_tensor *const *)a, *y = *(const ct_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

// Data section bounds, alignment and overlaps, after all tensor infos are read.
static ct_status place_tensors(ct_gguf *g, ct_error *err) {
    size_t data_size = g->map.size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ct_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return ct_fail(err, CT_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %zu",
                           t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return ct_fail(err, CT_ERR_FORMAT,
                           "tensor '%s': data (offset %llu, %zu bytes) runs past the end of the file (data section %zu bytes)",
                           t->name, (unsigned long long)t->offset, t->nbytes, data_size);
        t->data = (const uint8_t *)g->map.data + g->data_offset + t->offset;
    }
    ct_gguf_tensor **order = malloc((size_t)g->n_tensors * sizeof *order);
    if (!order)
        return ct_fail(err, CT_ERR_NOMEM, "cannot allocate tensor order");
    for (uint64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, by_offset);
    ct_status st = CT_OK;
    for (uint64_t i = 1; i < g->n_tensors && st == CT_OK; i++)
        if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset)
            st = ct_fail(err, CT_ERR_FORMAT, "tensors '%s' and '%s' overlap", order[i - 1]->name, order[i]->name);
    free(order);
    return st;
}

static ct_status read_tensors(ct_gguf *g, cursor *c, ct_error *err) {
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return ct_fail(err, CT_ERR_NOMEM, "cannot allocate %llu tensors", (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ct_gguf_tensor *t = &g->tensors[i];
        CT_TRY(read_tensor_info(c, t, err));
        bool is_new;
        CT_TRY(ct_strmap_puts(&g->tensor_index, t->name, (int64_t)i, &is_new, err));
        if (!is_new)
            return ct_fail(err, CT_ERR_FORMAT, "duplicate tensor name '%s'", t->name);
    }
    size_t off = c->pos + (g->alignment - c->pos % g->alignment) % g->alignment;
    if (g->n_tensors == 0) { // vocab-only files may end without padding
        g->data_offset = off < c->size ? off : c->size;
        return CT_OK;
    }
    if (off > c->size)
        return ct_fail(err, CT_ERR_FORMAT, "data section (offset %zu) starts past the end of the file", off);
    g->data_offset = off;
    return place_tensors(g, err);
}

ct_status ct_gguf_open(ct_gguf *g, const char *path, ct_error *err) {
    memset(g, 0, sizeof *g);
    ct_strmap_init(&g->kv_index);
    ct_strmap_init(&g->tensor_index);
    ct_status st = ct_mmap_open(&g->map, path, err);
    if (st != CT_OK)
        return st;
    cursor c = {g->map.data, g->map.size, 0};
    st = read_header(g, &c, err);
    if (st == CT_OK)
        st = read_metadata(g, &c, err);
    if (st == CT_OK)
        st = read_tensors(g, &c, err);
    if (st == CT_OK)
        st = dup_str((const uint8_t *)path, strlen(path), &g->path, err);
    if (st != CT_OK) {
        ct_gguf_close(g);
        return ct_error_context(err, "%s", path);
    }
    return CT_OK;
}

void ct_gguf_close(ct_gguf *g) {
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free((char *)g->kv[i].key);
        free((ct_gguf_str *)g->kv[i].strs);
    }
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    ct_strmap_free(&g->kv_index);
    ct_strmap_free(&g->tensor_index);
    ct_mmap_close(&g->map);
    memset(g, 0, sizeof *g);
}

// ---------------------------------------------------------------- metadata access

const ct_gguf_kv *ct_gguf_find_kv(const ct_gguf *g, const char *key) {
    int64_t i;
    return ct_strmap_gets(&g->kv_index, key, &i) ? &g->kv[i] : NULL;
}

const ct_gguf_tensor *ct_gguf_find_tensor(const ct_gguf *g, const char *name) {
    int64_t i;
    return ct_strmap_gets(&g->tensor_index, name, &i) ? &g->tensors[i] : NULL;
}

// Element i of a fixed-size-typed value as an integer (signed in *s or unsigned in *u).
typedef struct num {
    enum { NUM_SIGNED, NUM_UNSIGNED, NUM_FLOAT, NUM_NONE } kind;
    int64_t s;
    uint64_t u;
    double f;
} num;

static num element(const ct_gguf_kv *kv, uint64_t i) {
    num n = {NUM_NONE, 0, 0, 0};
    if (i >= kv->count || !kv->data)
        return n;
    size_t sz = ct_gguf_type_size(kv->elem_type);
    uint64_t raw = le_u64((const uint8_t *)kv->data + i * sz, sz);
    switch (kv->elem_type) {
    case CT_GGUF_U8: case CT_GGUF_U16: case CT_GGUF_U32: case CT_GGUF_U64: case CT_GGUF_BOOL:
        n.kind = NUM_UNSIGNED;
        n.u = raw;
        break;
    case CT_GGUF_I8: n.kind = NUM_SIGNED; n.s = (int8_t)raw; break;
    case CT_GGUF_I16: n.kind = NUM_SIGNED; n.s = (int16_t)raw; break;
    case CT_GGUF_I32: n.kind = NUM_SIGNED; n.s = (int32_t)raw; break;
    case CT_GGUF_I64: n.kind = NUM_SIGNED; n.s = (int64_t)raw; break;
    case CT_GGUF_F32: {
        uint32_t b = (uint32_t)raw;
        float f;
        memcpy(&f, &b, 4);
        n.kind = NUM_FLOAT;
        n.f = f;
        break;
    }
    case CT_GGUF_F64:
        memcpy(&n.f, &raw, 8);
        n.kind = NUM_FLOAT;
        break;
    default:
        break;
    }
    return n;
}

static bool elem_i64(const ct_gguf_kv *kv, uint64_t i, int64_t *out) {
    if (kv->elem_type == CT_GGUF_BOOL)
        return false;
    num n = element(kv, i);
    if (n.kind == NUM_SIGNED)
        *out = n.s;
    else if (n.kind == NUM_UNSIGNED && n.u <= INT64_MAX)
        *out = (int64_t)n.u;
    else
        return false;
    return true;
}

static bool elem_f64(const ct_gguf_kv *kv, uint64_t i, double *out) {
    if (kv->elem_type == CT_GGUF_BOOL)
        return false;
    num n = element(kv, i);
    switch (n.kind) {
    case NUM_SIGNED: *out = (double)n.s; return true;
    case NUM_UNSIGNED: *out = (double)n.u; return true;
    case NUM_FLOAT: *out = n.f; return true;
    default: return false;
    }
}

static bool elem_str(const ct_gguf_kv *kv, uint64_t i, const char **out, size_t *len) {
    if (kv->elem_type != CT_GGUF_STRING || i >= kv->count)
        return false;
    *out = kv->strs[i].ptr;
    if (len)
        *len = kv->strs[i].len;
    return true;
}

static bool is_scalar(const ct_gguf_kv *kv) { return kv && kv->type != CT_GGUF_ARRAY; }

bool ct_gguf_kv_u64(const ct_gguf_kv *kv, uint64_t *out) {
    if (!is_scalar(kv) || kv->type == CT_GGUF_BOOL)
        return false;
    num n = element(kv, 0);
    if (n.kind == NUM_UNSIGNED)
        *out = n.u;
    else if (n.kind == NUM_SIGNED && n.s >= 0)
        *out = (uint64_t)n.s;
    else
        return false;
    return true;
}

bool ct_gguf_kv_i64(const ct_gguf_kv *kv, int64_t *out) { return is_scalar(kv) && elem_i64(kv, 0, out); }
bool ct_gguf_kv_f64(const ct_gguf_kv *kv, double *out) { return is_scalar(kv) && elem_f64(kv, 0, out); }

bool ct_gguf_kv_bool(const ct_gguf_kv *kv, bool *out) {
    if (!is_scalar(kv) || kv->type != CT_GGUF_BOOL)
        return false;
    *out = *(const uint8_t *)kv->data != 0;
    return true;
}

bool ct_gguf_kv_str(const ct_gguf_kv *kv, const char **out, size_t *len) {
    return is_scalar(kv) && elem_str(kv, 0, out, len);
}

bool ct_gguf_get_u64(const ct_gguf *g, const char *key, uint64_t *out) {
    return ct_gguf_kv_u64(ct_gguf_find_kv(g, key), out);
}
bool ct_gguf_get_i64(const ct_gguf *g, const char *key, int64_t *out) {
    return ct_gguf_kv_i64(ct_gguf_find_kv(g, key), out);
}
bool ct_gguf_get_f64(const ct_gguf *g, const char *key, double *out) {
    return ct_gguf_kv_f64(ct_gguf_find_kv(g, key), out);
}
bool ct_gguf_get_bool(const ct_gguf *g, const char *key, bool *out) {
    return ct_gguf_kv_bool(ct_gguf_find_kv(g, key), out);
}
bool ct_gguf_get_str(const ct_gguf *g, const char *key, const char **out, size_t *len) {
    return ct_gguf_kv_str(ct_gguf_find_kv(g, key), out, len);
}

static bool is_array(const ct_gguf_kv *kv) { return kv && kv->type == CT_GGUF_ARRAY; }

uint64_t ct_gguf_arr_count(const ct_gguf_kv *kv) { return is_array(kv) ? kv->count : 0; }
ct_gguf_type ct_gguf_arr_type(const ct_gguf_kv *kv) { return is_array(kv) ? kv->elem_type : CT_GGUF_TYPE_COUNT; }
bool ct_gguf_arr_i64(const ct_gguf_kv *kv, uint64_t i, int64_t *out) { return is_array(kv) && elem_i64(kv, i, out); }
bool ct_gguf_arr_f64(const ct_gguf_kv *kv, uint64_t i, double *out) { return is_array(kv) && elem_f64(kv, i, out); }
bool ct_gguf_arr_str(const ct_gguf_kv *kv, uint64_t i, const char **out, size_t *len) {
    return is_array(kv) && elem_str(kv, i, out, len);
}

ct_status ct_gguf_tensor_to_f32(const ct_gguf *g, const ct_gguf_tensor *t, float *dst, ct_error *err) {
    if (ct_ggml_dequantize(t->type, t->data, dst, t->nelements, err) != CT_OK)
        return ct_error_context(err, "%s: tensor '%s'", g->path, t->name);
    return CT_OK;
}

// ---------------------------------------------------------------- writer

typedef struct wtensor {
    char *name;
    ct_ggml_type type;
    uint32_t ndim;
    int64_t ne[CT_GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wtensor;

struct ct_gguf_writer {
    uint8_t *kv;     // serialized metadata pairs
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *tensors;
    size_t n_tensors, tensors_cap;
    ct_strmap keys, names;
    size_t alignment;
};

ct_status ct_gguf_writer_new(ct_gguf_writer **out, ct_error *err) {
    ct_gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return ct_fail(err, CT_ERR_NOMEM, "cannot allocate a GGUF writer");
    ct_strmap_init(&w->keys);
    ct_strmap_init(&w->names);
    w->alignment = CT_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return CT_OK;
}

void ct_gguf_writer_free(ct_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv);
    ct_strmap_free(&w->keys);
    ct_strmap_free(&w->names);
    free(w);
}

static ct_status put(ct_gguf_writer *w, const void *p, size_t n, ct_error *err) {
    if (n > w->kv_cap - w->kv_len) {
        size_t cap = w->kv_cap ? w->kv_cap : 256;
        while (cap - w->kv_len < n)
            cap *= 2;
        uint8_t *b = realloc(w->kv, cap);
        if (!b)
            return ct_fail(err, CT_ERR_NOMEM, "cannot grow GGUF metadata to %zu bytes", cap);
        w->kv = b;
        w->kv_cap = cap;
    }
    if (n)
        memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return CT_OK;
}

static ct_status put_le(ct_gguf_writer *w, uint64_t v, size_t n, ct_error *err) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return put(w, b, n, err);
}

static ct_status put_str(ct_gguf_writer *w, const char *s, size_t len, ct_error *err) {
    CT_TRY(put_le(w, len, 8, err));
    return put(w, s, len, err);
}

// The little-endian bytes of one C value of fixed-size type t.
static uint64_t value_bits(ct_gguf_type t, const void *v) {
    switch (t) {
    case CT_GGUF_U8: return *(const uint8_t *)v;
    case CT_GGUF_I8: return (uint8_t) * (const int8_t *)v;
    case CT_GGUF_U16: return *(const uint16_t *)v;
    case CT_GGUF_I16: return (uint16_t) * (const int16_t *)v;
    case CT_GGUF_U32: return *(const uint32_t *)v;
    case CT_GGUF_I32: return (uint32_t) * (const int32_t *)v;
    case CT_GGUF_BOOL: return *(const bool *)v ? 1 : 0;
    case CT_GGUF_U64: return *(const uint64_t *)v;
    case CT_GGUF_I64: return (uint64_t) * (const int64_t *)v;
    case CT_GGUF_F32: {
        uint32_t b;
        memcpy(&b, v, 4);
        return b;
    }
    case CT_GGUF_F64: {
        uint64_t b;
        memcpy(&b, v, 8);
        return b;
    }
    default: return 0;
    }
}

// C size of one value of fixed-size type t (bool is a C bool).
static size_t c_size(ct_gguf_type t) { return t == CT_GGUF_BOOL ? sizeof(bool) : ct_gguf_type_size(t); }

static ct_status begin_kv(ct_gguf_writer *w, const char *key, ct_gguf_type t, ct_error *err) {
    bool is_new;
    CT_TRY(ct_strmap_puts(&w->keys, key, 0, &is_new, err));
    if (!is_new)
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: duplicate metadata key '%s'", key);
    w->n_kv++;
    CT_TRY(put_str(w, key, strlen(key), err));
    return put_le(w, (uint64_t)t, 4, err);
}

static bool fixed_type(ct_gguf_type t) { return (unsigned)t < CT_GGUF_TYPE_COUNT && ct_gguf_type_size(t) > 0; }

ct_status ct_gguf_writer_add_scalar(ct_gguf_writer *w, const char *key, ct_gguf_type t, const void *value,
                                    ct_error *err) {
    if (!fixed_type(t))
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: key '%s': %s is not a fixed-size scalar type", key,
                       ct_gguf_type_name(t));
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = t == CT_GGUF_U32 ? *(const uint32_t *)value : 0;
        if (a == 0 || (a & (a - 1)) != 0)
            return ct_fail(err, CT_ERR_INVALID, "GGUF writer: general.alignment must be a u32 power of two");
        w->alignment = a;
    }
    CT_TRY(begin_kv(w, key, t, err));
    return put_le(w, value_bits(t, value), ct_gguf_type_size(t), err);
}

ct_status ct_gguf_writer_add_u32(ct_gguf_writer *w, const char *key, uint32_t v, ct_error *err) {
    return ct_gguf_writer_add_scalar(w, key, CT_GGUF_U32, &v, err);
}
ct_status ct_gguf_writer_add_i32(ct_gguf_writer *w, const char *key, int32_t v, ct_error *err) {
    return ct_gguf_writer_add_scalar(w, key, CT_GGUF_I32, &v, err);
}
ct_status ct_gguf_writer_add_u64(ct_gguf_writer *w, const char *key, uint64_t v, ct_error *err) {
    return ct_gguf_writer_add_scalar(w, key, CT_GGUF_U64, &v, err);
}
ct_status ct_gguf_writer_add_f32(ct_gguf_writer *w, const char *key, float v, ct_error *err) {
    return ct_gguf_writer_add_scalar(w, key, CT_GGUF_F32, &v, err);
}
ct_status ct_gguf_writer_add_bool(ct_gguf_writer *w, const char *key, bool v, ct_error *err) {
    return ct_gguf_writer_add_scalar(w, key, CT_GGUF_BOOL, &v, err);
}

ct_status ct_gguf_writer_add_str(ct_gguf_writer *w, const char *key, const char *s, ct_error *err) {
    CT_TRY(begin_kv(w, key, CT_GGUF_STRING, err));
    return put_str(w, s, strlen(s), err);
}

ct_status ct_gguf_writer_add_array(ct_gguf_writer *w, const char *key, ct_gguf_type t, const void *values, uint64_t n,
                                   ct_error *err) {
    if (!fixed_type(t))
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: key '%s': arrays of %s need their own function", key,
                       ct_gguf_type_name(t));
    CT_TRY(begin_kv(w, key, CT_GGUF_ARRAY, err));
    CT_TRY(put_le(w, (uint64_t)t, 4, err));
    CT_TRY(put_le(w, n, 8, err));
    const uint8_t *p = values;
    for (uint64_t i = 0; i < n; i++)
        CT_TRY(put_le(w, value_bits(t, p + i * c_size(t)), ct_gguf_type_size(t), err));
    return CT_OK;
}

ct_status ct_gguf_writer_add_str_array(ct_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                                       uint64_t n, ct_error *err) {
    CT_TRY(begin_kv(w, key, CT_GGUF_ARRAY, err));
    CT_TRY(put_le(w, CT_GGUF_STRING, 4, err));
    CT_TRY(put_le(w, n, 8, err));
    for (uint64_t i = 0; i < n; i++)
        CT_TRY(put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]), err));
    return CT_OK;
}

ct_status ct_gguf_writer_add_tensor(ct_gguf_writer *w, const char *name, ct_ggml_type type, uint32_t ndim,
                                    const int64_t *ne, const void *data, ct_error *err) {
    if (!ct_ggml_type_valid((uint32_t)type))
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: tensor '%s': unknown ggml type %d", name, (int)type);
    if (ndim == 0 || ndim > CT_GGUF_MAX_DIMS)
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: tensor '%s': ndim %u is not in 1..4", name, ndim);
    wtensor t = {.type = type, .ndim = ndim, .data = data, .ne = {1, 1, 1, 1}};
    int64_t rows = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        if (ne[d] <= 0 || (d > 0 && ne[d] > INT64_MAX / rows))
            return ct_fail(err, CT_ERR_INVALID, "GGUF writer: tensor '%s': bad dimension %u (%lld)", name, d,
                           (long long)ne[d]);
        t.ne[d] = ne[d];
        if (d > 0)
            rows *= ne[d];
    }
    size_t row = ct_ggml_row_size(type, ne[0]);
    if (row == 0)
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: tensor '%s': %lld is not a multiple of the %s block size",
                       name, (long long)ne[0], ct_ggml_type_name(type));
    if ((uint64_t)rows > SIZE_MAX / row)
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: tensor '%s': too large", name);
    t.nbytes = row * (size_t)rows;
    bool is_new;
    CT_TRY(ct_strmap_puts(&w->names, name, 0, &is_new, err));
    if (!is_new)
        return ct_fail(err, CT_ERR_INVALID, "GGUF writer: duplicate tensor name '%s'", name);
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? 2 * w->tensors_cap : 16;
        wtensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "GGUF writer: cannot grow the tensor list");
        w->tensors = p;
        w->tensors_cap = cap;
    }
    CT_TRY(dup_str((const uint8_t *)name, strlen(name), &t.name, err));
    w->tensors[w->n_tensors++] = t;
    return CT_OK;
}

static size_t pad_to(size_t n, size_t a) { return (a - n % a) % a; }

static void write_le(FILE *f, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    fwrite(b, 1, n, f);
}

static void write_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        fwrite(zeros, 1, k, f);
        n -= k;
    }
}

// Everything up to the data section; returns its length (before padding).
static size_t write_header(ct_gguf_writer *w, FILE *f) {
    fwrite(GGUF_MAGIC, 1, 4, f);
    write_le(f, 3, 4);
    write_le(f, w->n_tensors, 8);
    write_le(f, w->n_kv, 8);
    fwrite(w->kv, 1, w->kv_len, f);
    size_t len = 24 + w->kv_len, offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        size_t name_len = strlen(t->name);
        write_le(f, name_len, 8);
        fwrite(t->name, 1, name_len, f);
        write_le(f, t->ndim, 4);
        for (uint32_t d = 0; d < t->ndim; d++)
            write_le(f, (uint64_t)t->ne[d], 8);
        write_le(f, (uint64_t)t->type, 4);
        write_le(f, offset, 8);
        len += 8 + name_len + 4 + 8 * t->ndim + 4 + 8;
        offset += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    return len;
}

ct_status ct_gguf_writer_write(ct_gguf_writer *w, const char *path, ct_error *err) {
    ct_atomic_file af;
    CT_TRY(ct_atomic_begin(&af, path, err));
    size_t header = write_header(w, af.f);
    if (w->n_tensors > 0)
        write_zeros(af.f, pad_to(header, w->alignment));
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        fwrite(t->data, 1, t->nbytes, af.f);
        write_zeros(af.f, pad_to(t->nbytes, w->alignment));
    }
    if (ferror(af.f)) {
        // Name the cause (disk full, file size limit), as the safetensors writer does.
        int saved = errno;
        ct_atomic_abort(&af);
        return ct_fail(err, CT_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    return ct_atomic_commit(&af, err);
}

int64_t ct_gguf_llama_qk_row(int64_t r, int64_t rows, int64_t heads) {
    if (heads <= 0)
        return r;
    int64_t D = rows / heads, h = r / D, k = r % D, half = D / 2;
    return h * D + 2 * (k % half) + k / half;
}
