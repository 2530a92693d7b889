// calib.c: calibration token sequences for GPTQ/AWQ (see gptq.h), as
// mlx-lm's quant/utils.py load_data cuts them: one token stream, truncated to
// a multiple of the sequence length, rows shuffled, the first num_samples kept.
#include <stdlib.h>
#include <string.h>

#include "ctune/data_encode.h"
#include "ctune/dataset.h"
#include "ctune/fs.h"
#include "ctune/gptq.h"

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// A text file -> one encode (BOS if the tokenizer adds it), as mlx-lm encodes its calibration text.
static ct_status text_tokens(ct_tokenizer *tok, const char *path, int32_t **ids, size_t *n, ct_error *err) {
    char *text;
    size_t len;
    CT_TRY(ct_read_file(path, &text, &len, err));
    size_t blank = 0;
    while (blank < len && (text[blank] == ' ' || text[blank] == '\n' || text[blank] == '\r' || text[blank] == '\t'))
        blank++;
    if (blank == len) {
        free(text);
        return ct_fail(err, CT_ERR_INVALID, "%s: the calibration data is empty", path);
    }
    ct_status st = ct_tokenizer_encode(tok, text, len, true, ids, n, err);
    free(text);
    return st == CT_OK ? CT_OK : ct_error_context(err, "%s", path);
}

// A dataset file or folder -> every record encoded as `ctune lora` encodes it, joined.
static ct_status dataset_tokens(ct_tokenizer *tok, const char *path, int32_t **ids, size_t *n, ct_error *err) {
    ct_dataset train = {0}, valid = {0}, test = {0};
    ct_status st = ct_is_dir(path) ? ct_dataset_load_local(path, NULL, false, &train, &valid, &test, err)
                                   : ct_dataset_load_file(&train, path, NULL, false, err);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
    ct_data_encoder enc = {0};
    bool enc_ok = false;
    ct_examples ex = {0};
    if (st == CT_OK && train.n == 0)
        st = ct_fail(err, CT_ERR_INVALID, "%s: the calibration data has no records%s", path,
                     ct_is_dir(path) ? " (train.jsonl is missing or empty)" : "");
    if (st == CT_OK)
        st = ct_data_encoder_init(&enc, tok, err);
    enc_ok = st == CT_OK;
    if (st == CT_OK)
        st = ct_dataset_tokenize(&train, ct_data_encode, &enc, false, INT64_MAX, &ex, err);
    if (st == CT_OK) {
        *ids = ex.tokens; // ownership moves to the caller
        *n = ex.n_tokens;
        ex.tokens = NULL;
    }
    ct_examples_free(&ex);
    if (enc_ok)
        ct_data_encoder_free(&enc);
    ct_dataset_free(&train);
    return st;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

ct_status ct_calib_load(ct_tokenizer *tok, const ct_calib_opts *o, int32_t **out, int *n_seq, ct_error *err) {
    *out = NULL;
    *n_seq = 0;
    if (!o->data)
        return ct_fail(err, CT_ERR_INVALID,
                       "calibration data is needed: --data FILE (a text file, a .jsonl dataset, or a dataset "
                       "folder with train.jsonl); see docs/QUANTIZATION.md");
    if (o->sequence_length < 2 || o->num_samples == 0 || o->num_samples < -1)
        return ct_fail(err, CT_ERR_INVALID, "calibration: sequence length %d (at least 2) and %d samples (-1 = all)",
                       o->sequence_length, o->num_samples);
    if (!ct_path_exists(o->data))
        return ct_fail(err, CT_ERR_IO, "%s: no such calibration file or folder", o->data);
    int32_t *ids = NULL;
    size_t n = 0;
    bool dataset = ct_is_dir(o->data) || has_suffix(o->data, ".jsonl") || has_suffix(o->data, ".json");
    CT_TRY(dataset ? dataset_tokens(tok, o->data, &ids, &n, err) : text_tokens(tok, o->data, &ids, &n, err));
    size_t T = (size_t)o->sequence_length, rows = n / T;
    if (rows == 0) {
        free(ids);
        if (n == 0)
            return ct_fail(err, CT_ERR_INVALID, "%s: the calibration data is empty", o->data);
        return ct_fail(err, CT_ERR_INVALID, "%s: %zu calibration tokens, shorter than one sequence of %zu", o->data,
                       n, T);
    }
    // Fisher-Yates over row indices, then the first num_samples rows in that order.
    size_t *perm = malloc(sizeof *perm * rows);
    size_t keep = o->num_samples < 0 || (size_t)o->num_samples > rows ? rows : (size_t)o->num_samples;
    int32_t *seqs = malloc(sizeof *seqs * keep * T);
    if (!perm || !seqs) {
        free(perm), free(seqs), free(ids);
        return ct_fail(err, CT_ERR_NOMEM, "calibration: out of memory");
    }
    uint64_t s = o->seed;
    for (size_t i = 0; i < rows; i++)
        perm[i] = i;
    for (size_t i = rows - 1; i > 0; i--) {
        size_t j = (size_t)(splitmix64(&s) % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < keep; i++)
        memcpy(seqs + i * T, ids + perm[i] * T, sizeof *seqs * T);
    free(perm);
    free(ids);
    *out = seqs;
    *n_seq = (int)keep;
    return CT_OK;
}
