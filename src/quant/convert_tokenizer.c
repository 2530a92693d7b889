// convert_tokenizer.c: the tokenizer files of a GGUF source. Always a
// tokenizer_config.json (special tokens, add_bos_token, chat template); for
// byte-level BPE vocabularies (tokenizer.ggml.model "gpt2") also a Hugging
// Face tokenizer.json: vocab, merges, control tokens as special added tokens,
// user-defined ones as added tokens, and the pre-tokenizer llama.cpp's "pre"
// name stands for (ct_tokenizer_gguf_pre_json, the tokenizer module's one table).
// Gemma's SentencePiece vocabularies get the tokenizer.json transformers builds
// for them (convert_tokenizer_gemma.c); other SentencePiece ("llama") ones get
// none (see docs/QUANTIZATION.md).
#include <stdlib.h>
#include <string.h>

#include "convert_internal.h"
#include "ctune/log.h"
#include "ctune/tokenizer.h"

// The ByteLevel decoder / post-processor object.
static cJSON *byte_level(bool use_regex) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", false);
    cJSON_AddBoolToObject(b, "trim_offsets", true);
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

const char *cv_gguf_pre_name(const cJSON *pre_tok) {
    static const char *const names[] = {"gpt2", "smollm", "llama-bpe", "qwen2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cJSON *p = ct_tokenizer_gguf_pre_json(names[i]);
        bool same = p && pre_tok && cJSON_Compare(p, pre_tok, true);
        cJSON_Delete(p);
        if (same)
            return names[i];
    }
    ct_log_warn("tokenizer.json: a pre_tokenizer llama.cpp has no name known to ctune for; writing \"default\"");
    return "default";
}

cJSON *cv_added_token(int64_t id, const char *content, bool special, bool normalized) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", (double)id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", normalized);
    cJSON_AddBoolToObject(t, "special", special);
    return t;
}

cJSON *cv_bos_post_processor(const ct_gguf *g, const ct_gguf_kv *tokens) {
    bool add_bos = false;
    int64_t bos;
    const char *s;
    ct_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos);
    if (!add_bos || !ct_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", &bos) || bos < 0 ||
        !ct_gguf_arr_str(tokens, (uint64_t)bos, &s, NULL))
        return NULL;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(p, "single"), *pair = cJSON_AddArrayToObject(p, "pair");
    const char *seqs[] = {"A", "B"};
    for (int k = 0; k < 2; k++) {
        cJSON *dst = k ? pair : single;
        for (int i = 0; i <= k; i++) {
            cJSON *sp = cJSON_CreateObject(), *st = cJSON_CreateObject(), *sq = cJSON_CreateObject(),
                  *seq = cJSON_CreateObject();
            cJSON_AddStringToObject(st, "id", s);
            cJSON_AddNumberToObject(st, "type_id", i);
            cJSON_AddItemToObject(sp, "SpecialToken", st);
            cJSON_AddStringToObject(seq, "id", seqs[i]);
            cJSON_AddNumberToObject(seq, "type_id", i);
            cJSON_AddItemToObject(sq, "Sequence", seq);
            cJSON_AddItemToArray(dst, sp);
            cJSON_AddItemToArray(dst, sq);
        }
    }
    cJSON *specials = cJSON_AddObjectToObject(p, "special_tokens"), *e = cJSON_AddObjectToObject(specials, s);
    cJSON_AddStringToObject(e, "id", s);
    cJSON *ids = cJSON_AddArrayToObject(e, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)bos));
    cJSON *toks = cJSON_AddArrayToObject(e, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(s));
    return p;
}

static cJSON *bpe_model(const ct_gguf_kv *tokens, const ct_gguf_kv *merges) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", false);
    cJSON_AddBoolToObject(m, "byte_fallback", false);
    cJSON_AddBoolToObject(m, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab"), *list = cJSON_AddArrayToObject(m, "merges");
    for (uint64_t i = 0; i < ct_gguf_arr_count(tokens); i++) {
        const char *s;
        if (ct_gguf_arr_str(tokens, i, &s, NULL))
            cJSON_AddItemToObject(vocab, s, cJSON_CreateNumber((double)i));
    }
    for (uint64_t i = 0; merges && i < ct_gguf_arr_count(merges); i++) {
        const char *s;
        if (ct_gguf_arr_str(merges, i, &s, NULL))
            cJSON_AddItemToArray(list, cJSON_CreateString(s));
    }
    return m;
}

// tokenizer.json of a "gpt2" GGUF vocab (*doc NULL when its pre-tokenizer is unknown).
static cJSON *byte_level_json(const cv_job *j) {
    const ct_gguf *g = &j->gguf;
    const char *pre = NULL;
    const ct_gguf_kv *tokens = ct_gguf_find_kv(g, "tokenizer.ggml.tokens");
    const ct_gguf_kv *types = ct_gguf_find_kv(g, "tokenizer.ggml.token_type");
    ct_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL);
    cJSON *pt = ct_tokenizer_gguf_pre_json(pre);
    if (!pt) {
        ct_log_warn("%s: tokenizer.ggml.pre '%s' is not known to convert: no tokenizer.json written", j->o->model,
                    pre);
        return NULL;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "version", "1.0");
    cJSON_AddNullToObject(doc, "truncation");
    cJSON_AddNullToObject(doc, "padding");
    cJSON *added = cJSON_AddArrayToObject(doc, "added_tokens");
    for (uint64_t i = 0; types && i < ct_gguf_arr_count(types); i++) {
        int64_t ty;
        const char *s;
        if (ct_gguf_arr_i64(types, i, &ty) && (ty == 3 || ty == 4) && ct_gguf_arr_str(tokens, i, &s, NULL))
            cJSON_AddItemToArray(added, cv_added_token((int64_t)i, s, ty == 3, ty != 3));
    }
    cJSON_AddNullToObject(doc, "normalizer");
    cJSON_AddItemToObject(doc, "pre_tokenizer", pt);
    cJSON *post = cv_bos_post_processor(g, tokens);
    cJSON_AddItemToObject(doc, "post_processor", post ? post : byte_level(true));
    cJSON_AddItemToObject(doc, "decoder", byte_level(true));
    cJSON_AddItemToObject(doc, "model", bpe_model(tokens, ct_gguf_find_kv(g, "tokenizer.ggml.merges")));
    return doc;
}

static bool is_gemma_arch(const ct_gguf *g) {
    const char *arch = NULL;
    ct_gguf_get_str(g, "general.architecture", &arch, NULL);
    return arch && (!strcmp(arch, "gemma") || !strcmp(arch, "gemma2") || !strcmp(arch, "gemma3"));
}

// tokenizer.json for a "gpt2" vocab or a Gemma SentencePiece one; *cls: the
// tokenizer_class to name, NULL when no tokenizer.json was written.
static ct_status write_tokenizer_json(const cv_job *j, const char *dir, const char **cls, ct_error *err) {
    const ct_gguf *g = &j->gguf;
    const char *model = NULL;
    ct_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    *cls = NULL;
    cJSON *doc = NULL;
    if (model && !strcmp(model, "gpt2")) {
        doc = byte_level_json(j);
        *cls = "PreTrainedTokenizerFast";
    } else if (model && !strcmp(model, "llama") && is_gemma_arch(g)) {
        CT_TRY(cv_gemma_tokenizer_json(g, &doc, err));
        *cls = "GemmaTokenizer";
    }
    if (!doc) {
        *cls = NULL;
        return CT_OK;
    }
    char path[4096], *text = NULL;
    ct_status st = ct_path_join(path, sizeof path, dir, "tokenizer.json", err);
    if (st == CT_OK && !(text = cJSON_PrintUnformatted(doc)))
        st = ct_fail(err, CT_ERR_NOMEM, "tokenizer.json: out of memory");
    if (st == CT_OK)
        st = ct_write_file_atomic(path, text, strlen(text), err);
    cJSON_free(text);
    cJSON_Delete(doc);
    if (st != CT_OK)
        *cls = NULL;
    return st;
}

ct_status cv_gguf_tokenizer(const cv_job *j, const char *dir, ct_error *err) {
    const ct_gguf *g = &j->gguf;
    const ct_gguf_kv *tokens = ct_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!tokens || ct_gguf_arr_type(tokens) != CT_GGUF_STRING)
        return CT_OK; // no embedded tokenizer
    cJSON *tc = cJSON_CreateObject();
    if (!tc)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer_config.json: out of memory");
    static const char *const ids[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token"},
                                         {"tokenizer.ggml.eos_token_id", "eos_token"},
                                         {"tokenizer.ggml.padding_token_id", "pad_token"},
                                         {"tokenizer.ggml.unknown_token_id", "unk_token"}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t id;
        const char *s;
        if (ct_gguf_get_i64(g, ids[i][0], &id) && id >= 0 && ct_gguf_arr_str(tokens, (uint64_t)id, &s, NULL))
            cJSON_AddStringToObject(tc, ids[i][1], s);
    }
    bool b;
    if (ct_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b))
        cJSON_AddBoolToObject(tc, "add_bos_token", b);
    const char *tmpl;
    if (ct_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL))
        cJSON_AddStringToObject(tc, "chat_template", tmpl);
    const char *cls;
    ct_status st = write_tokenizer_json(j, dir, &cls, err);
    bool json = cls != NULL;
    if (st == CT_OK && json)
        cJSON_AddStringToObject(tc, "tokenizer_class", cls);
    if (st == CT_OK)
        st = cv_write_json(dir, "tokenizer_config.json", tc, err);
    cJSON_Delete(tc);
    if (st == CT_OK && !json)
        ct_log_warn("%s: this GGUF vocabulary is not written as tokenizer.json (only tokenizer_config.json with the "
                    "special tokens and chat template); copy the original model's tokenizer.json into %s",
                    j->o->model, j->o->mlx_path);
    return st;
}
