// tok_internal.h: the tokenizer pipeline's data structures, shared by the
// files of src/tokenizer/. Sequences (of normalizers, pre-tokenizers,
// decoders, post-processors) are flattened into arrays at load time.
#ifndef CTUNE_TOK_INTERNAL_H
#define CTUNE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctune/strmap.h"
#include "ctune/tokenizer.h"

// A growable byte buffer.
typedef struct tk_buf {
    char *p;
    size_t len, cap;
} tk_buf;
ct_status tk_buf_add(tk_buf *b, const void *s, size_t n, ct_error *err);
void tk_buf_free(tk_buf *b);

// A list of pieces stored back to back in one buffer. first[i]: the piece
// starts at offset 0 of the original text (Metaspace prepend_scheme "first").
typedef struct tk_list {
    tk_buf text;
    size_t *off, *len;
    unsigned char *first;
    size_t n, cap;
} tk_list;
ct_status tk_list_add(tk_list *l, const char *s, size_t n, bool first, ct_error *err);
void tk_list_clear(tk_list *l);
void tk_list_free(tk_list *l);

// UTF-8 helpers. tk_utf8_next decodes one code point of valid UTF-8 at s
// (n bytes left) and returns its byte length.
size_t tk_utf8_next(const char *s, size_t n, uint32_t *cp);
size_t tk_utf8_encode(uint32_t cp, char out[4]);
// Offset of the first invalid byte, or len if s is valid UTF-8.
size_t tk_utf8_check(const char *s, size_t len);
// Appends s to b, replacing invalid sequences with U+FFFD like Rust's from_utf8_lossy.
ct_status tk_utf8_lossy(tk_buf *b, const char *s, size_t n, ct_error *err);
bool tk_is_whitespace(uint32_t cp); // Rust char::is_whitespace

// A literal string or a PCRE2 regex (Split, Replace).
typedef struct tk_pattern {
    char *lit;
    size_t lit_len;
    pcre2_code *re; // NULL for a literal
} tk_pattern;
ct_status tk_regex_compile(pcre2_code **re, const char *pattern, ct_error *err);
void tk_pattern_free(tk_pattern *p);
// Finds the next match at or after pos in s; returns false if none.
// md is scratch match data for the regex.
bool tk_pattern_find(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t n, size_t pos, size_t *ms,
                     size_t *me);

typedef enum { TK_NFC, TK_NFD, TK_NFKC, TK_NFKD, TK_LOWERCASE, TK_PREPEND, TK_REPLACE, TK_STRIP } tk_norm_kind;
typedef struct tk_norm {
    tk_norm_kind kind;
    tk_pattern pat; // Replace
    char *str;      // Prepend: the prefix; Replace: the content
    size_t str_len;
    bool left, right; // Strip
} tk_norm;

typedef enum { TK_REMOVED, TK_ISOLATED, TK_MERGED_PREV, TK_MERGED_NEXT, TK_CONTIGUOUS } tk_behavior;
typedef enum { TK_PRE_BYTELEVEL, TK_PRE_SPLIT, TK_PRE_METASPACE, TK_PRE_DIGITS, TK_PRE_PUNCT, TK_PRE_WHITESPACE,
               TK_PRE_WSSPLIT } tk_pre_kind;
typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;
typedef struct tk_pretok {
    tk_pre_kind kind;
    bool add_prefix_space, use_regex; // ByteLevel
    tk_pattern pat;                   // Split (and the regexes of ByteLevel/Whitespace)
    tk_behavior behavior;
    bool invert;
    char repl[5];                     // Metaspace replacement (UTF-8)
    size_t repl_len;
    uint32_t repl_cp;
    tk_prepend_scheme scheme;
    bool split;                       // Metaspace
    bool individual_digits;
} tk_pretok;

typedef enum { TK_DEC_BYTELEVEL, TK_DEC_METASPACE, TK_DEC_BYTEFALLBACK, TK_DEC_FUSE, TK_DEC_STRIP,
               TK_DEC_REPLACE } tk_dec_kind;
typedef struct tk_dec {
    tk_dec_kind kind;
    tk_pattern pat;   // Replace
    char *content;    // Replace
    size_t content_len;
    uint32_t cp;      // Strip content / Metaspace replacement
    size_t start, stop;
    bool prepend;     // Metaspace: prepend_scheme != never
} tk_dec;

typedef struct tk_added {
    char *content;
    size_t len;
    char *match; // the text matched: content, normalized for normalized tokens (owned)
    size_t match_len;
    int32_t id;
    bool special, normalized, lstrip, rstrip, single_word;
} tk_added;

// Added tokens indexed by first byte: by_byte[b] lists indices into the
// token array, longest first (leftmost-longest matching).
typedef struct tk_matcher {
    size_t *idx;
    size_t start[257];
} tk_matcher;

// BPE merge table: (left id, right id) -> (rank, merged id).
typedef struct tk_merges {
    uint64_t *keys; // (a << 32 | b) + 1, 0 = empty
    uint64_t *vals; // rank << 32 | merged id
    size_t cap, len;
} tk_merges;

// BPE word cache: piece bytes -> run of ids in pool.
typedef struct tk_cache {
    ct_strmap map; // value: offset << 16 | count
    int32_t *pool;
    size_t len, cap;
} tk_cache;

typedef struct chat_tmpl {
    char *name, *text;
} chat_tmpl;

struct ct_tokenizer {
    // model vocab and id table
    ct_strmap vocab;          // token -> id (model vocab and added tokens)
    char **id_tok;            // id -> token (owned), NULL for holes
    size_t n_ids;
    unsigned char *id_special; // id -> special added token
    // BPE
    tk_merges merges;
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk;              // model unk id or -1
    char *prefix, *suffix;    // continuing_subword_prefix, end_of_word_suffix (or NULL)
    int32_t byte_ids[256];    // ids of "<0xXX>" or -1
    tk_cache cache;
    // pipeline
    tk_added *added;
    size_t n_added;
    tk_matcher match_raw, match_norm;
    tk_norm *norms;
    size_t n_norms;
    tk_pretok *pres;
    size_t n_pres;
    tk_dec *decs;
    size_t n_decs;
    bool has_decoder;
    int32_t *post_pre, *post_post; // ids the post-processor puts before/after
    size_t n_post_pre, n_post_post;
    // settings
    ct_tokenizer_specials sp;
    char *bos_tok, *eos_tok;
    int32_t *eos_ids;
    chat_tmpl *tmpls;
    size_t n_tmpls;
};

ct_status tk_new(ct_tokenizer **t, ct_error *err);
// Appends the pre-tokenizers of a tokenizer.json "pre_tokenizer" object (tok_load.c).
ct_status tk_parse_pretok(ct_tokenizer *t, const cJSON *o, ct_error *err);
// Registers token text for id (model vocab or added), growing the id table.
ct_status tk_set_token(ct_tokenizer *t, int32_t id, const char *s, size_t len, ct_error *err);
ct_status tk_merges_put(tk_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t merged, ct_error *err);
bool tk_merges_get(const tk_merges *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged);
// Builds the first-byte index of added tokens (raw or normalized ones).
ct_status tk_build_matchers(ct_tokenizer *t, ct_error *err);
// Applies the post-processor ids from a flattened template.
ct_status tk_set_post(ct_tokenizer *t, const int32_t *pre, size_t npre, const int32_t *post, size_t npost,
                      ct_error *err);
// Fills sp.bos_id etc from token strings already set in bos_tok/eos_tok.
void tk_finish_specials(ct_tokenizer *t);

ct_status tk_add_pretok(ct_tokenizer *t, tk_pre_kind kind, tk_pretok **out, ct_error *err);
ct_status tk_add_dec(ct_tokenizer *t, tk_dec_kind kind, tk_dec **out, ct_error *err);
ct_status tk_add_merge(ct_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, uint32_t rank,
                       size_t i, ct_error *err);
ct_status tk_add_template(ct_tokenizer *t, const char *name, const char *text, ct_error *err);

// The tokenizer of a GGUF file (tokenizer.ggml.* metadata).
ct_status tk_load_gguf(ct_tokenizer **t, const char *path, ct_error *err);

ct_status tk_normalize(const ct_tokenizer *t, const char *s, size_t n, tk_buf *out, ct_error *err);
// Splits one normalized segment into pieces (in place of *l, using *tmp).
ct_status tk_pretokenize(const ct_tokenizer *t, pcre2_match_data *md, tk_list *l, tk_list *tmp, ct_error *err);
// Appends the ids of one piece to ids (BPE with merges, cache and byte fallback).
ct_status tk_bpe(ct_tokenizer *t, const char *s, size_t n, int32_t **ids, size_t *nids, size_t *cap,
                 ct_error *err);
// The GPT-2 byte -> code point table.
uint32_t tk_byte_to_cp(unsigned char b);
int tk_cp_to_byte(uint32_t cp); // -1 if cp is not a byte-level char

#endif
