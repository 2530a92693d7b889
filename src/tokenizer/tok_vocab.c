// tok_vocab.c: a tokenizer from the plain arrays GGUF files carry
// (tokenizer.ggml.*), built as the equivalent Hugging Face pipeline:
//   "gpt2":  byte-level BPE with the given merges; the pre-tokenizer name maps
//            to the regex llama.cpp uses for it.
//   "llama": SentencePiece BPE: merges come from the scores (merging a + b is
//            ranked by the score of the token a+b, higher first, as llama.cpp's
//            SPM tokenizer does), byte fallback, "▁" for spaces.
// Control (3) and user-defined (4) tokens become added tokens.
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4 };

static const char *REGEX_LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *REGEX_QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                 "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool is_one_of(const char *s, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(s, *names))
            return true;
    return false;
}

static cJSON *byte_level(bool use_regex) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", false);
    cJSON_AddBoolToObject(b, "trim_offsets", true);
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

cJSON *ct_tokenizer_gguf_pre_json(const char *pre) {
    static const char *const gpt2[] = {"default", "gpt-2", "gpt2", NULL};
    static const char *const llama3[] = {"llama-bpe", "llama3", "llama-v3", "smaug-bpe", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", NULL};
    if (!pre || is_one_of(pre, gpt2))
        return byte_level(true);
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON *first = cJSON_CreateObject();
    cJSON_AddItemToArray(list, first);
    if (!strcmp(pre, "smollm")) {
        cJSON_AddStringToObject(first, "type", "Digits");
        cJSON_AddBoolToObject(first, "individual_digits", true);
        cJSON_AddItemToArray(list, byte_level(true));
        return seq;
    }
    if (is_one_of(pre, llama3) || is_one_of(pre, qwen2)) {
        cJSON_AddStringToObject(first, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(first, "pattern");
        cJSON_AddStringToObject(pat, "Regex", is_one_of(pre, llama3) ? REGEX_LLAMA3 : REGEX_QWEN2);
        cJSON_AddStringToObject(first, "behavior", "Isolated");
        cJSON_AddBoolToObject(first, "invert", false);
        cJSON_AddItemToArray(list, byte_level(false));
        return seq;
    }
    cJSON_Delete(seq);
    return NULL;
}

// Pre-tokenizer of a "gpt2" vocab, named as llama.cpp names them.
static ct_status byte_level_pre(ct_tokenizer *t, const char *pre, ct_error *err) {
    cJSON *j = ct_tokenizer_gguf_pre_json(pre);
    if (!j)
        return ct_fail(err, CT_ERR_UNSUPPORTED, "tokenizer.ggml.pre '%s' is not supported", pre);
    ct_status st = tk_parse_pretok(t, j, err);
    cJSON_Delete(j);
    return st;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x > y ? -1 : x < y;
}

// Rank of each distinct score, highest first (equal scores share a rank, so
// ties go to the leftmost pair as in llama.cpp).
static ct_status score_ranks(const ct_tokenizer_vocab *v, uint32_t **ranks, ct_error *err) {
    float *sorted = malloc(v->n_tokens * sizeof *sorted);
    *ranks = malloc(v->n_tokens * sizeof **ranks);
    if (!sorted || !*ranks) {
        free(sorted);
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    }
    memcpy(sorted, v->scores, v->n_tokens * sizeof *sorted);
    qsort(sorted, v->n_tokens, sizeof *sorted, cmp_desc);
    size_t nu = 0;
    for (size_t i = 0; i < v->n_tokens; i++)
        if (!nu || sorted[nu - 1] != sorted[i])
            sorted[nu++] = sorted[i];
    for (size_t i = 0; i < v->n_tokens; i++) {
        size_t lo = 0, hi = nu; // first index with sorted[k] <= score
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted[mid] > v->scores[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        (*ranks)[i] = (uint32_t)lo;
    }
    free(sorted);
    return CT_OK;
}

// Every split of a normal token into two vocab tokens is a merge.
static ct_status spm_merges(ct_tokenizer *t, const ct_tokenizer_vocab *v, ct_error *err) {
    uint32_t *ranks;
    CT_TRY(score_ranks(v, &ranks, err));
    ct_status st = CT_OK;
    for (size_t i = 0; i < v->n_tokens && st == CT_OK; i++) {
        if (v->token_types && v->token_types[i] != TYPE_NORMAL && v->token_types[i] != TYPE_USER)
            continue;
        const char *s = v->tokens[i];
        size_t n = strlen(s);
        for (size_t k = 1; k < n && st == CT_OK; k++) {
            int64_t a, b;
            if (((unsigned char)s[k] & 0xC0) == 0x80 || !ct_strmap_get(&t->vocab, s, k, &a) ||
                !ct_strmap_get(&t->vocab, s + k, n - k, &b))
                continue;
            st = tk_merges_put(&t->merges, (int32_t)a, (int32_t)b, ranks[i], (int32_t)i, err);
        }
    }
    free(ranks);
    return st;
}

static ct_status gpt2_merges(ct_tokenizer *t, const ct_tokenizer_vocab *v, ct_error *err) {
    for (size_t i = 0; i < v->n_merges; i++) {
        const char *m = v->merges[i], *sp = strchr(m, ' ');
        if (!sp)
            return ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml.merges[%zu]: \"%s\" is not \"a b\"", i, m);
        CT_TRY(tk_add_merge(t, m, (size_t)(sp - m), sp + 1, strlen(sp + 1), (uint32_t)i, i, err));
    }
    return CT_OK;
}

static ct_status spm_pipeline(ct_tokenizer *t, const ct_tokenizer_vocab *v, ct_error *err) {
    static const char space[] = "\xE2\x96\x81";
    t->byte_fallback = t->fuse_unk = true;
    if (v->add_space_prefix) {
        t->norms = calloc(2, sizeof *t->norms);
        if (!t->norms)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
        t->n_norms = 2;
        t->norms[0].kind = TK_PREPEND;
        t->norms[0].str = strdup(space);
        t->norms[0].str_len = 3;
        t->norms[1].kind = TK_REPLACE;
        t->norms[1].pat.lit = strdup(" ");
        t->norms[1].pat.lit_len = 1;
        t->norms[1].str = strdup(space);
        t->norms[1].str_len = 3;
        if (!t->norms[0].str || !t->norms[1].pat.lit || !t->norms[1].str)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    } else {
        t->norms = calloc(1, sizeof *t->norms);
        if (!t->norms)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
        t->n_norms = 1;
        t->norms[0] = (tk_norm){.kind = TK_REPLACE, .pat = {.lit = strdup(" "), .lit_len = 1}, .str = strdup(space), .str_len = 3};
        if (!t->norms[0].str || !t->norms[0].pat.lit)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    }
    tk_dec *d;
    CT_TRY(tk_add_dec(t, TK_DEC_REPLACE, &d, err));
    d->pat.lit = strdup(space);
    d->pat.lit_len = 3;
    d->content = strdup(" ");
    d->content_len = 1;
    if (!d->pat.lit || !d->content)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    CT_TRY(tk_add_dec(t, TK_DEC_BYTEFALLBACK, &d, err));
    CT_TRY(tk_add_dec(t, TK_DEC_FUSE, &d, err));
    CT_TRY(tk_add_dec(t, TK_DEC_STRIP, &d, err));
    d->cp = ' ';
    d->start = v->add_space_prefix ? 1 : 0;
    t->has_decoder = true;
    return spm_merges(t, v, err);
}

static ct_status added_from_types(ct_tokenizer *t, const ct_tokenizer_vocab *v, ct_error *err) {
    for (size_t i = 0; v->token_types && i < v->n_tokens; i++) {
        int32_t ty = v->token_types[i];
        if (ty != TYPE_CONTROL && ty != TYPE_USER)
            continue;
        void *p = realloc(t->added, (t->n_added + 1) * sizeof *t->added);
        if (!p)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
        t->added = p;
        tk_added *a = &t->added[t->n_added++];
        memset(a, 0, sizeof *a);
        a->content = strdup(v->tokens[i]);
        if (!a->content)
            return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
        a->len = strlen(a->content);
        a->id = (int32_t)i;
        a->special = ty == TYPE_CONTROL;
    }
    return CT_OK;
}

static ct_status dup_token(const ct_tokenizer_vocab *v, int32_t id, char **out, ct_error *err) {
    if (id < 0 || (size_t)id >= v->n_tokens)
        return CT_OK;
    *out = strdup(v->tokens[id]);
    return *out ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
}

static ct_status build(ct_tokenizer *t, const ct_tokenizer_vocab *v, ct_error *err) {
    bool spm = !strcmp(v->model, "llama");
    if (!spm && strcmp(v->model, "gpt2"))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "tokenizer.ggml.model '%s' is not supported (only gpt2 and llama)",
                       v->model);
    if (spm && !v->scores)
        return ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml.scores missing (needed by a llama tokenizer)");
    for (size_t i = 0; i < v->n_tokens; i++)
        CT_TRY(tk_set_token(t, (int32_t)i, v->tokens[i], strlen(v->tokens[i]), err));
    CT_TRY(added_from_types(t, v, err));
    t->unk = v->unk_id;
    if (spm) {
        CT_TRY(spm_pipeline(t, v, err));
    } else {
        tk_dec *d;
        CT_TRY(byte_level_pre(t, v->pre, err));
        CT_TRY(tk_add_dec(t, TK_DEC_BYTELEVEL, &d, err));
        t->has_decoder = true;
        t->unk = -1;
        CT_TRY(gpt2_merges(t, v, err));
    }
    int32_t bos = v->bos_id, eos = v->eos_id;
    CT_TRY(tk_set_post(t, &bos, v->add_bos && bos >= 0, &eos, v->add_eos && eos >= 0, err));
    CT_TRY(tk_build_matchers(t, err));
    CT_TRY(dup_token(v, v->bos_id, &t->bos_tok, err));
    CT_TRY(dup_token(v, v->eos_id, &t->eos_tok, err));
    tk_finish_specials(t);
    t->sp.pad_id = v->pad_id;
    t->sp.unk_id = v->unk_id;
    t->sp.add_bos = v->add_bos && bos >= 0;
    t->sp.add_eos = v->add_eos && eos >= 0;
    if (v->chat_template)
        CT_TRY(tk_add_template(t, "default", v->chat_template, err));
    return CT_OK;
}

ct_status ct_tokenizer_from_vocab(ct_tokenizer **t, const ct_tokenizer_vocab *v, ct_error *err) {
    *t = NULL;
    if (!v->model || !v->tokens || !v->n_tokens)
        return ct_fail(err, CT_ERR_FORMAT, "tokenizer.ggml: model and tokens are required");
    CT_TRY(tk_new(t, err));
    ct_status st = build(*t, v, err);
    if (st != CT_OK) {
        ct_tokenizer_free(*t);
        *t = NULL;
    }
    return st;
}
