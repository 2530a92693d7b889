// safetensors.h: reading and writing the safetensors format (Hugging Face's
// tensor file: 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data).
//
// Reading maps the file and hands out zero-copy views into it, after checking
// everything a malicious or damaged file could get wrong (lengths, offsets,
// overlaps, holes, sizes, dtypes, duplicate names). Writing is atomic (temp
// file + rename) and lays tensors out like the Python `safetensors` package.
// ct_weights opens a model folder's weights, single-file or sharded.
#ifndef CTUNE_SAFETENSORS_H
#define CTUNE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ctune/dtype.h"
#include "ctune/error.h"
#include "ctune/fs.h"
#include "ctune/strmap.h"

#define CT_MAX_DIMS 8

// One tensor. data points into a mapped file (reading) or the caller's memory
// (writing): nbytes = product(shape) * ct_dtype_size(dtype) bytes, row-major.
// data is not guaranteed to be aligned to the element size: use memcpy or
// ct_convert_to_f32 to read elements. A 0-d tensor has ndim 0 and 1 element.
typedef struct ct_tensor_view {
    const char *name;
    ct_dtype dtype;
    int ndim;
    int64_t shape[CT_MAX_DIMS];
    const void *data;
    size_t nbytes;
} ct_tensor_view;

// An open, validated safetensors file. Views stay valid until close.
typedef struct ct_safetensors {
    char *path;              // owned copy of the file name
    ct_mmap map;             // the whole file
    int n_tensors;
    ct_tensor_view *tensors; // in header (file) order
    int n_meta;
    char **meta;             // 2*n_meta strings: key0, val0, key1, val1, ... (header order)
    ct_strmap by_name;       // tensor name -> index into tensors
} ct_safetensors;

// Maps and validates path. On failure st is left closed (nothing to free).
ct_status ct_safetensors_open(ct_safetensors *st, const char *path, ct_error *err);
void ct_safetensors_close(ct_safetensors *st);
// The tensor called name, or NULL.
const ct_tensor_view *ct_safetensors_find(const ct_safetensors *st, const char *name);
// The __metadata__ value for key, or NULL.
const char *ct_safetensors_meta(const ct_safetensors *st, const char *key);

// Number of elements of a view: product of its shape (1 for 0-d).
int64_t ct_tensor_numel(const ct_tensor_view *t);

// Writes n tensors and n_meta metadata pairs (meta_kv = key0, val0, key1, ...)
// to path atomically. Data is laid out like the Python package: by dtype
// alignment descending, then by name; the header is padded with spaces to a
// multiple of 8 bytes. Names must be unique and each nbytes must match the
// shape. On any failure no file (and no temp file) is left at path.
ct_status ct_safetensors_write(const char *path, const ct_tensor_view *tensors, int n,
                               const char *const *meta_kv, int n_meta, ct_error *err);

// A model's weights: model.safetensors, or the shards that
// model.safetensors.index.json maps ("weight_map": name -> shard file).
typedef struct ct_weights {
    int n;                   // number of tensors
    ct_tensor_view *views;   // all tensors: shard by shard, each in file order
    int n_shards;
    ct_safetensors *shards;  // every shard opened once
    ct_strmap by_name;       // name -> index into views
} ct_weights;

// Opens model_dir's weights. model.safetensors wins when both it and an index
// exist (as in transformers). Every name in the index must be in its shard;
// a shard's tensors that the index does not map to it are skipped with a
// warning. On failure w is left closed.
ct_status ct_weights_open(ct_weights *w, const char *model_dir, ct_error *err);
const ct_tensor_view *ct_weights_find(const ct_weights *w, const char *name);
void ct_weights_close(ct_weights *w);

// Saves tensors into dir (created if needed) the way transformers'
// save_pretrained does: tensors go, in the given order, into shards of at most
// max_shard_bytes (a tensor larger than that gets a shard of its own). One
// shard is written as model.safetensors; several as
// model-00001-of-0000N.safetensors plus model.safetensors.index.json
// (metadata.total_size in bytes, metadata.total_parameters, weight_map),
// written last. Stale weight files of another layout left in dir by an
// earlier save (model.safetensors, the index, other model-*-of-* shards) are
// removed so that readers cannot pick them up. meta_kv goes into every shard.
ct_status ct_safetensors_write_sharded(const char *dir, const ct_tensor_view *t, int n, size_t max_shard_bytes,
                                       const char *const *meta_kv, int n_meta, ct_error *err);

#endif
