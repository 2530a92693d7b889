// gguf.h: GGUF files (llama.cpp's single-file model format), read and write.
// A GGUF file is a header (magic "GGUF", version, counts), typed metadata
// key/value pairs, tensor descriptions, then the tensor data, each tensor at an
// offset aligned to general.alignment (default 32) from the data section start.
// The reader maps the file and validates everything up front; tensor data and
// numeric metadata arrays are read in place (zero-copy). Versions 2 and 3
// (little-endian) are supported. The writer produces version 3 files,
// atomically (temp file + rename).
#ifndef CTUNE_GGUF_H
#define CTUNE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"
#include "ctune/fs.h"
#include "ctune/ggml_quants.h"
#include "ctune/strmap.h"

#define CT_GGUF_DEFAULT_ALIGNMENT 32
#define CT_GGUF_MAX_DIMS 4

// Metadata value types, numbered as in the file.
typedef enum ct_gguf_type {
    CT_GGUF_U8 = 0,
    CT_GGUF_I8 = 1,
    CT_GGUF_U16 = 2,
    CT_GGUF_I16 = 3,
    CT_GGUF_U32 = 4,
    CT_GGUF_I32 = 5,
    CT_GGUF_F32 = 6,
    CT_GGUF_BOOL = 7,
    CT_GGUF_STRING = 8,
    CT_GGUF_ARRAY = 9,
    CT_GGUF_U64 = 10,
    CT_GGUF_I64 = 11,
    CT_GGUF_F64 = 12,
    CT_GGUF_TYPE_COUNT
} ct_gguf_type;

// "u32", "string", "array", ...; "?" if unknown.
const char *ct_gguf_type_name(ct_gguf_type t);
// Bytes of one value of a fixed-size type; 0 for string, array or unknown.
size_t ct_gguf_type_size(ct_gguf_type t);

// A string from the file, copied and NUL-terminated (it may also contain NULs: use len).
typedef struct ct_gguf_str {
    const char *ptr;
    size_t len;
} ct_gguf_str;

// One metadata pair. A scalar is an array of one element of type `type`.
typedef struct ct_gguf_kv {
    const char *key;
    ct_gguf_type type;      // value type; CT_GGUF_ARRAY for arrays
    ct_gguf_type elem_type; // element type: == type for scalars, the array's element type for arrays
    uint64_t count;         // 1 for scalars, the element count for arrays
    const void *data;       // fixed-size elements: count packed little-endian values in the mapping (unaligned)
    const ct_gguf_str *strs; // string elements: count strings (NULL for other types)
} ct_gguf_kv;

typedef struct ct_gguf_tensor {
    const char *name;
    uint32_t ndim;                    // 1..4
    int64_t ne[CT_GGUF_MAX_DIMS];     // elements per dim, ne[0] fastest-varying; dims past ndim are 1
    ct_ggml_type type;
    int64_t nelements;
    uint64_t offset;                  // from the start of the data section
    const void *data;                 // in the mapping
    size_t nbytes;
} ct_gguf_tensor;

typedef struct ct_gguf {
    char *path;
    ct_mmap map;
    uint32_t version;
    size_t alignment;
    size_t data_offset; // file offset of the data section
    uint64_t n_kv;
    ct_gguf_kv *kv;
    uint64_t n_tensors;
    ct_gguf_tensor *tensors;
    ct_strmap kv_index;     // key -> index in kv
    ct_strmap tensor_index; // name -> index in tensors
} ct_gguf;

// Opens and validates a GGUF file. On failure g needs no close.
ct_status ct_gguf_open(ct_gguf *g, const char *path, ct_error *err);
void ct_gguf_close(ct_gguf *g);

// ---- metadata ----
const ct_gguf_kv *ct_gguf_find_kv(const ct_gguf *g, const char *key);

// Scalar accessors on a pair; false if the type does not fit:
// u64 accepts any integer type holding a value >= 0; i64 any integer type with a
// value <= INT64_MAX; f64 any integer or float type; bool only bool; str only string.
bool ct_gguf_kv_u64(const ct_gguf_kv *kv, uint64_t *out);
bool ct_gguf_kv_i64(const ct_gguf_kv *kv, int64_t *out);
bool ct_gguf_kv_f64(const ct_gguf_kv *kv, double *out);
bool ct_gguf_kv_bool(const ct_gguf_kv *kv, bool *out);
bool ct_gguf_kv_str(const ct_gguf_kv *kv, const char **out, size_t *len); // len may be NULL

// The same, by key; false if the key is absent too.
bool ct_gguf_get_u64(const ct_gguf *g, const char *key, uint64_t *out);
bool ct_gguf_get_i64(const ct_gguf *g, const char *key, int64_t *out);
bool ct_gguf_get_f64(const ct_gguf *g, const char *key, double *out);
bool ct_gguf_get_bool(const ct_gguf *g, const char *key, bool *out);
bool ct_gguf_get_str(const ct_gguf *g, const char *key, const char **out, size_t *len);

// Arrays: the pair must have type CT_GGUF_ARRAY (these return 0/false otherwise).
uint64_t ct_gguf_arr_count(const ct_gguf_kv *kv);
ct_gguf_type ct_gguf_arr_type(const ct_gguf_kv *kv);
// Element i with the same coercions as the scalar accessors; false if i is out of range.
bool ct_gguf_arr_i64(const ct_gguf_kv *kv, uint64_t i, int64_t *out);
bool ct_gguf_arr_f64(const ct_gguf_kv *kv, uint64_t i, double *out);
bool ct_gguf_arr_str(const ct_gguf_kv *kv, uint64_t i, const char **out, size_t *len);

// ---- tensors ----
const ct_gguf_tensor *ct_gguf_find_tensor(const ct_gguf *g, const char *name);
// Dequantizes a whole tensor into dst (t->nelements floats).
ct_status ct_gguf_tensor_to_f32(const ct_gguf *g, const ct_gguf_tensor *t, float *dst, ct_error *err);

// ---- writer ----
// Collects metadata and tensors, then writes a v3 file in one go. Tensor data
// is borrowed: it must stay valid until ct_gguf_writer_write returns.
// Setting "general.alignment" (u32, a power of two) changes the alignment.
typedef struct ct_gguf_writer ct_gguf_writer;

ct_status ct_gguf_writer_new(ct_gguf_writer **out, ct_error *err);
void ct_gguf_writer_free(ct_gguf_writer *w);

// A scalar of fixed-size type t (not string/array); value points at one C value of that type
// (uint8_t, int8_t, ..., float, bool, uint64_t, int64_t, double).
ct_status ct_gguf_writer_add_scalar(ct_gguf_writer *w, const char *key, ct_gguf_type t, const void *value, ct_error *err);
ct_status ct_gguf_writer_add_u32(ct_gguf_writer *w, const char *key, uint32_t v, ct_error *err);
ct_status ct_gguf_writer_add_i32(ct_gguf_writer *w, const char *key, int32_t v, ct_error *err);
ct_status ct_gguf_writer_add_u64(ct_gguf_writer *w, const char *key, uint64_t v, ct_error *err);
ct_status ct_gguf_writer_add_f32(ct_gguf_writer *w, const char *key, float v, ct_error *err);
ct_status ct_gguf_writer_add_bool(ct_gguf_writer *w, const char *key, bool v, ct_error *err);
ct_status ct_gguf_writer_add_str(ct_gguf_writer *w, const char *key, const char *s, ct_error *err);
// An array of n fixed-size values of type t, given as a C array of that type.
ct_status ct_gguf_writer_add_array(ct_gguf_writer *w, const char *key, ct_gguf_type t, const void *values, uint64_t n,
                                   ct_error *err);
// An array of n strings; lens may be NULL (then strings are NUL-terminated).
ct_status ct_gguf_writer_add_str_array(ct_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                                       uint64_t n, ct_error *err);
// A tensor: ne[0] fastest (GGUF order), data is ct_ggml_row_size(type, ne[0]) * ne[1] * ... bytes.
ct_status ct_gguf_writer_add_tensor(ct_gguf_writer *w, const char *name, ct_ggml_type type, uint32_t ndim,
                                    const int64_t *ne, const void *data, ct_error *err);
ct_status ct_gguf_writer_write(ct_gguf_writer *w, const char *path, ct_error *err);

// llama.cpp's convert script permutes the q/k rows of llama models (rotate-half
// RoPE pairs stored interleaved): HF row h*D + j*D/2 + i (j in {0,1}, D =
// rows/heads) is stored at GGUF row h*D + 2i + j. The GGUF row holding HF row r;
// heads <= 0 means no permutation.
int64_t ct_gguf_llama_qk_row(int64_t r, int64_t rows, int64_t heads);

#endif
