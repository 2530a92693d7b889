// convert_tokenizer_gemma.c: tokenizer.json for a Gemma GGUF's SentencePiece
// vocabulary (tokenizer.ggml.model "llama", architecture gemma/gemma2/gemma3),
// as transformers' GGUF loader rebuilds it (gguf_tokenizer_mapping.py
// gemma_tokenizer, then GemmaTokenizer):
//   vocab        the tokens, a token of spaces only ("  ", stored with real
//                spaces) respelled as that many "▁"
//   merges       every split of a token into two vocab tokens, ordered by the
//                token's position in the file (earlier first), then by longer
//                left piece (generate_merges with scores -position); Gemma
//                files carry no merges
//   model        BPE, byte_fallback, fuse_unk, unk_token the file's unknown token
//   normalizer   " " -> "▁"; pre_tokenizer Split(" ", MergedWithPrevious)
//   decoder      "▁" -> " ", ByteFallback, Fuse
//   added tokens control tokens (type 3) special, user-defined ones (type 4)
//                that are in the vocab plain; both matched unnormalized
#include <stdlib.h>
#include <string.h>

#include "convert_internal.h"
#include "ctune/strmap.h"
#include "ctune/utf8.h"

static const char SPACE[] = "\xE2\x96\x81"; // "▁"

// Python's str.isspace() for one code point.
static bool is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// transformers' respelling: a token holding a " " and nothing but whitespace ->
// one "▁" per code point (owned, in *out), else *out = NULL (keep the token).
static ct_status respell(const char *s, char **out, ct_error *err) {
    size_t n = strlen(s), cps = 0;
    *out = NULL;
    if (!n || !strchr(s, ' '))
        return CT_OK;
    for (size_t i = 0; i < n; cps++) {
        uint32_t cp;
        size_t k = ct_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!k || !is_space_cp(cp))
            return CT_OK;
        i += k;
    }
    *out = malloc(cps * 3 + 1);
    if (!*out)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer.json: out of memory");
    for (size_t i = 0; i < cps; i++)
        memcpy(*out + 3 * i, SPACE, 3);
    (*out)[cps * 3] = '\0';
    return CT_OK;
}

typedef struct spm_vocab {
    size_t n;
    const char **tok;  // [n] the vocab spelling (into the file or into respelled)
    char **respelled;  // [n] owned respellings or NULL
    ct_strmap index;   // spelling -> its last id (a Python dict of the tokens)
} spm_vocab;

static void spm_vocab_free(spm_vocab *v) {
    for (size_t i = 0; v->respelled && i < v->n; i++)
        free(v->respelled[i]);
    free(v->respelled);
    free(v->tok);
    ct_strmap_free(&v->index);
}

static ct_status spm_vocab_load(spm_vocab *v, const ct_gguf_kv *tokens, ct_error *err) {
    memset(v, 0, sizeof *v);
    ct_strmap_init(&v->index);
    v->n = (size_t)ct_gguf_arr_count(tokens);
    v->tok = calloc(v->n, sizeof *v->tok);
    v->respelled = calloc(v->n, sizeof *v->respelled);
    if (!v->tok || !v->respelled)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer.json: out of memory");
    for (size_t i = 0; i < v->n; i++) {
        const char *s;
        if (!ct_gguf_arr_str(tokens, i, &s, NULL))
            return ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml.tokens[%zu]: not a string", i);
        CT_TRY(respell(s, &v->respelled[i], err));
        v->tok[i] = v->respelled[i] ? v->respelled[i] : s;
        CT_TRY(ct_strmap_puts(&v->index, v->tok[i], (int64_t)i, NULL, err));
    }
    return CT_OK;
}

// Token i is the one its spelling names (not shadowed by a later duplicate).
static bool is_own(const spm_vocab *v, size_t i) {
    int64_t id;
    return ct_strmap_gets(&v->index, v->tok[i], &id) && (size_t)id == i;
}

static cJSON *pair(const char *a, size_t alen, const char *b) {
    cJSON *p = cJSON_CreateArray();
    char *l = strndup(a, alen);
    if (p && l) {
        cJSON_AddItemToArray(p, cJSON_CreateString(l));
        cJSON_AddItemToArray(p, cJSON_CreateString(b));
    }
    free(l);
    return p;
}

// The BPE model object: vocab and the merges the vocabulary implies.
static cJSON *spm_model(const spm_vocab *v, const char *unk) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    if (unk)
        cJSON_AddStringToObject(m, "unk_token", unk);
    else
        cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", true);
    cJSON_AddBoolToObject(m, "byte_fallback", true);
    cJSON_AddBoolToObject(m, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab"), *merges = cJSON_AddArrayToObject(m, "merges");
    for (size_t i = 0; i < v->n; i++) {
        if (!is_own(v, i))
            continue;
        cJSON_AddItemToObject(vocab, v->tok[i], cJSON_CreateNumber((double)i));
        const char *s = v->tok[i];
        for (size_t k = strlen(s); k-- > 1;) { // longer left piece first
            if (((unsigned char)s[k] & 0xC0) == 0x80)
                continue; // inside a code point
            if (ct_strmap_get(&v->index, s, k, NULL) && ct_strmap_gets(&v->index, s + k, NULL))
                cJSON_AddItemToArray(merges, pair(s, k, s + k));
        }
    }
    return m;
}

// The file's bos/eos/unk/pad token ids (GemmaTokenizer makes them special whatever their type).
static bool is_named_special(const ct_gguf *g, uint64_t i) {
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int64_t id;
        if (ct_gguf_get_i64(g, keys[k], &id) && id >= 0 && (uint64_t)id == i)
            return true;
    }
    return false;
}

static cJSON *added_tokens(const ct_gguf *g, const spm_vocab *v, const ct_gguf_kv *tokens) {
    const ct_gguf_kv *types = ct_gguf_find_kv(g, "tokenizer.ggml.token_type");
    cJSON *added = cJSON_CreateArray();
    for (uint64_t i = 0; i < v->n; i++) {
        int64_t ty = 1, id;
        const char *s;
        if ((types && !ct_gguf_arr_i64(types, i, &ty)) || !ct_gguf_arr_str(tokens, i, &s, NULL))
            continue;
        if (ty == 3 || is_named_special(g, i))
            cJSON_AddItemToArray(added, cv_added_token((int64_t)i, s, true, false));
        else if (ty == 4 && ct_strmap_gets(&v->index, s, &id) && (uint64_t)id == i)
            cJSON_AddItemToArray(added, cv_added_token(id, s, false, false));
    }
    return added;
}

static cJSON *replace(const char *from, const char *to) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "pattern"), "String", from);
    cJSON_AddStringToObject(r, "content", to);
    return r;
}

static cJSON *decoder(void) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(d, "decoders");
    cJSON_AddItemToArray(list, replace(SPACE, " "));
    const char *types[] = {"ByteFallback", "Fuse"};
    for (int i = 0; i < 2; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "type", types[i]);
        cJSON_AddItemToArray(list, x);
    }
    return d;
}

static cJSON *pre_tokenizer(void) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(p, "pattern"), "String", " ");
    cJSON_AddStringToObject(p, "behavior", "MergedWithPrevious");
    cJSON_AddBoolToObject(p, "invert", false);
    return p;
}

ct_status cv_gemma_tokenizer_json(const ct_gguf *g, cJSON **out, ct_error *err) {
    *out = NULL;
    const ct_gguf_kv *tokens = ct_gguf_find_kv(g, "tokenizer.ggml.tokens");
    spm_vocab v;
    ct_status st = spm_vocab_load(&v, tokens, err);
    if (st != CT_OK) {
        spm_vocab_free(&v);
        return st;
    }
    int64_t unk_id;
    const char *unk = NULL;
    if (ct_gguf_get_i64(g, "tokenizer.ggml.unknown_token_id", &unk_id) && unk_id >= 0 && (size_t)unk_id < v.n)
        unk = v.tok[unk_id];
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "version", "1.0");
    cJSON_AddNullToObject(doc, "truncation");
    cJSON_AddNullToObject(doc, "padding");
    cJSON_AddItemToObject(doc, "added_tokens", added_tokens(g, &v, tokens));
    cJSON_AddItemToObject(doc, "normalizer", replace(" ", SPACE));
    cJSON_AddItemToObject(doc, "pre_tokenizer", pre_tokenizer());
    cJSON *post = cv_bos_post_processor(g, tokens);
    cJSON_AddItemToObject(doc, "post_processor", post ? post : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "decoder", decoder());
    cJSON_AddItemToObject(doc, "model", spm_model(&v, unk));
    spm_vocab_free(&v);
    *out = doc;
    return CT_OK;
}
