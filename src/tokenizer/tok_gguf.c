// tok_gguf.c: the tokenizer embedded in a GGUF file (tokenizer.ggml.* keys),
// read into a ct_tokenizer_vocab and built by ct_tokenizer_from_vocab.
#include <stdlib.h>
#include <string.h>

#include "ctune/gguf.h"
#include "tok_internal.h"

static int32_t id_or_none(const ct_gguf *g, const char *key) {
    int64_t v;
    return ct_gguf_get_i64(g, key, &v) && v >= 0 && v <= INT32_MAX ? (int32_t)v : -1;
}

static bool flag(const ct_gguf *g, const char *key, bool dflt) {
    bool b;
    return ct_gguf_get_bool(g, key, &b) ? b : dflt;
}

// Copies string array key into a NULL-padded array of pointers into the file.
static ct_status str_array(const ct_gguf *g, const char *key, bool required, const char ***out, size_t *n,
                           ct_error *err) {
    const ct_gguf_kv *kv = ct_gguf_find_kv(g, key);
    *out = NULL;
    *n = 0;
    if (!kv || ct_gguf_arr_type(kv) != CT_GGUF_STRING)
        return required ? ct_fail(err, CT_ERR_FORMAT, "%s: missing or not a string array", key) : CT_OK;
    *n = (size_t)ct_gguf_arr_count(kv);
    *out = calloc(*n + 1, sizeof **out);
    if (!*out)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < *n; i++)
        ct_gguf_arr_str(kv, i, &(*out)[i], NULL);
    return CT_OK;
}

static ct_status scores_and_types(const ct_gguf *g, size_t n, float **scores, int32_t **types, ct_error *err) {
    const ct_gguf_kv *s = ct_gguf_find_kv(g, "tokenizer.ggml.scores");
    const ct_gguf_kv *ty = ct_gguf_find_kv(g, "tokenizer.ggml.token_type");
    *scores = NULL;
    *types = NULL;
    if (s && ct_gguf_arr_count(s) == n && (*scores = malloc((n + 1) * sizeof **scores)) != NULL)
        for (size_t i = 0; i < n; i++) {
            double d = 0;
            ct_gguf_arr_f64(s, i, &d);
            (*scores)[i] = (float)d;
        }
    if (ty && ct_gguf_arr_count(ty) == n && (*types = malloc((n + 1) * sizeof **types)) != NULL)
        for (size_t i = 0; i < n; i++) {
            int64_t v = 1;
            ct_gguf_arr_i64(ty, i, &v);
            (*types)[i] = (int32_t)v;
        }
    if ((s && !*scores) || (ty && !*types))
        return ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml.scores/token_type: not %zu numbers", n);
    return CT_OK;
}

ct_status tk_load_gguf(ct_tokenizer **t, const char *path, ct_error *err) {
    ct_gguf g;
    CT_TRY(ct_gguf_open(&g, path, err));
    ct_tokenizer_vocab v = {0};
    const char **tokens = NULL, **merges = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    ct_status st = str_array(&g, "tokenizer.ggml.tokens", true, &tokens, &v.n_tokens, err);
    if (st == CT_OK)
        st = str_array(&g, "tokenizer.ggml.merges", false, &merges, &v.n_merges, err);
    if (st == CT_OK)
        st = scores_and_types(&g, v.n_tokens, &scores, &types, err);
    if (st == CT_OK && !ct_gguf_get_str(&g, "tokenizer.ggml.model", &v.model, NULL))
        st = ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml.model: missing");
    if (st == CT_OK) {
        ct_gguf_get_str(&g, "tokenizer.ggml.pre", &v.pre, NULL);
        ct_gguf_get_str(&g, "tokenizer.chat_template", &v.chat_template, NULL);
        v.tokens = tokens;
        v.merges = merges;
        v.scores = scores;
        v.token_types = types;
        v.bos_id = id_or_none(&g, "tokenizer.ggml.bos_token_id");
        v.eos_id = id_or_none(&g, "tokenizer.ggml.eos_token_id");
        v.unk_id = id_or_none(&g, "tokenizer.ggml.unknown_token_id");
        v.pad_id = id_or_none(&g, "tokenizer.ggml.padding_token_id");
        bool spm = !strcmp(v.model, "llama");
        v.add_bos = flag(&g, "tokenizer.ggml.add_bos_token", spm);
        v.add_eos = flag(&g, "tokenizer.ggml.add_eos_token", false);
        v.add_space_prefix = flag(&g, "tokenizer.ggml.add_space_prefix", spm);
        st = ct_tokenizer_from_vocab(t, &v, err);
    }
    free(tokens);
    free(merges);
    free(scores);
    free(types);
    ct_gguf_close(&g);
    return st == CT_OK ? CT_OK : ct_error_context(err, "%s", path);
}
