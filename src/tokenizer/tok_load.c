// tok_load.c: reads tokenizer.json (model, added tokens, normalizer,
// pre-tokenizer, post-processor, decoder) and a model folder's
// tokenizer_config.json, generation_config.json and chat_template.jinja.
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "tok_internal.h"

static const char *REGEX_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// Rust regex's \w and \s for the Whitespace pre-tokenizer's \w+|[^\w\s]+
static const char *REGEX_WHITESPACE = "[\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}]+|"
                                      "[^\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}\\s]+";

static char *dupn(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

static ct_status dup_str(const char *s, char **out, ct_error *err) {
    *out = dupn(s, strlen(s));
    return *out ? CT_OK : ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
}

static ct_status grow(void **arr, size_t *n, size_t elem, ct_error *err) {
    void *p = realloc(*arr, (*n + 1) * elem);
    if (!p)
        return ct_fail(err, CT_ERR_NOMEM, "tokenizer: out of memory");
    memset((char *)p + *n * elem, 0, elem);
    *arr = p;
    (*n)++;
    return CT_OK;
}

static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

// {"String": "..."} or {"Regex": "..."}
static ct_status parse_pattern(const cJSON *o, const char *where, tk_pattern *p, ct_error *err) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (cJSON_IsString(s)) {
        p->lit_len = strlen(s->valuestring);
        return dup_str(s->valuestring, &p->lit, err);
    }
    if (cJSON_IsString(r))
        return tk_regex_compile(&p->re, r->valuestring, err) == CT_OK ? CT_OK : ct_error_context(err, "%s", where);
    return ct_fail(err, CT_ERR_FORMAT, "%s: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", where);
}

static ct_status parse_normalizer(ct_tokenizer *t, const cJSON *o, ct_error *err) {
    if (!o || cJSON_IsNull(o))
        return CT_OK;
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "normalizers")) CT_TRY(parse_normalizer(t, it, err));
        return CT_OK;
    }
    static const struct {
        const char *name;
        tk_norm_kind kind;
    } kinds[] = {{"NFC", TK_NFC},         {"NFD", TK_NFD},         {"NFKC", TK_NFKC},       {"NFKD", TK_NFKD},
                 {"Lowercase", TK_LOWERCASE}, {"Prepend", TK_PREPEND}, {"Replace", TK_REPLACE}, {"Strip", TK_STRIP}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(ty, kinds[i].name))
            continue;
        CT_TRY(grow((void **)&t->norms, &t->n_norms, sizeof *t->norms, err));
        tk_norm *nm = &t->norms[t->n_norms - 1];
        nm->kind = kinds[i].kind;
        const char *s = NULL;
        if (nm->kind == TK_PREPEND)
            CT_TRY(ct_json_need_string(o, "prepend", &s, err));
        if (nm->kind == TK_REPLACE) {
            CT_TRY(ct_json_need_string(o, "content", &s, err));
            CT_TRY(parse_pattern(o, "normalizer Replace", &nm->pat, err));
        }
        if (s) {
            nm->str_len = strlen(s);
            CT_TRY(dup_str(s, &nm->str, err));
        }
        nm->left = nm->right = true;
        CT_TRY(ct_json_bool(o, "strip_left", &nm->left, err));
        CT_TRY(ct_json_bool(o, "strip_right", &nm->right, err));
        return CT_OK;
    }
    return ct_fail(err, CT_ERR_UNSUPPORTED, "normalizer type '%s' is not supported", ty);
}

static ct_status parse_behavior(const cJSON *o, tk_behavior *b, ct_error *err) {
    const char *s = NULL;
    CT_TRY(ct_json_string(o, "behavior", &s, err));
    if (!s)
        return CT_OK;
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *b = (tk_behavior)i;
            return CT_OK;
        }
    return ct_fail(err, CT_ERR_FORMAT, "pre-tokenizer: unknown split behavior '%s'", s);
}

static ct_status parse_prepend_scheme(const cJSON *o, tk_prepend_scheme *sc, ct_error *err) {
    const char *s = NULL;
    bool add_prefix = true;
    *sc = TK_PREPEND_ALWAYS;
    CT_TRY(ct_json_bool(o, "add_prefix_space", &add_prefix, err)); // older files
    if (!add_prefix)
        *sc = TK_PREPEND_NEVER;
    CT_TRY(ct_json_string(o, "prepend_scheme", &s, err));
    if (!s)
        return CT_OK;
    if (!strcmp(s, "first"))
        *sc = TK_PREPEND_FIRST;
    else if (!strcmp(s, "always"))
        *sc = TK_PREPEND_ALWAYS;
    else if (!strcmp(s, "never"))
        *sc = TK_PREPEND_NEVER;
    else
        return ct_fail(err, CT_ERR_FORMAT, "Metaspace: unknown prepend_scheme '%s'", s);
    return CT_OK;
}

static ct_status parse_replacement(const cJSON *o, char repl[5], size_t *len, uint32_t *cp, ct_error *err) {
    const char *s = "\xE2\x96\x81";
    CT_TRY(ct_json_string(o, "replacement", &s, err));
    size_t n = strlen(s);
    if (!n || n > 4 || tk_utf8_next(s, n, cp) != n)
        return ct_fail(err, CT_ERR_FORMAT, "Metaspace: replacement must be one character");
    memcpy(repl, s, n + 1);
    *len = n;
    return CT_OK;
}

ct_status tk_add_pretok(ct_tokenizer *t, tk_pre_kind kind, tk_pretok **out, ct_error *err) {
    CT_TRY(grow((void **)&t->pres, &t->n_pres, sizeof *t->pres, err));
    *out = &t->pres[t->n_pres - 1];
    (*out)->kind = kind;
    (*out)->behavior = TK_ISOLATED;
    if (kind == TK_PRE_BYTELEVEL || kind == TK_PRE_WHITESPACE)
        return tk_regex_compile(&(*out)->pat.re, kind == TK_PRE_BYTELEVEL ? REGEX_GPT2 : REGEX_WHITESPACE, err);
    return CT_OK;
}

ct_status tk_parse_pretok(ct_tokenizer *t, const cJSON *o, ct_error *err) {
    if (!o || cJSON_IsNull(o))
        return CT_OK;
    const char *ty = type_of(o);
    tk_pretok *p;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "pretokenizers")) CT_TRY(tk_parse_pretok(t, it, err));
    } else if (!strcmp(ty, "ByteLevel")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_BYTELEVEL, &p, err));
        p->add_prefix_space = true;
        p->use_regex = true;
        CT_TRY(ct_json_bool(o, "add_prefix_space", &p->add_prefix_space, err));
        CT_TRY(ct_json_bool(o, "use_regex", &p->use_regex, err));
    } else if (!strcmp(ty, "Split")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_SPLIT, &p, err));
        CT_TRY(parse_pattern(o, "pre-tokenizer Split", &p->pat, err));
        CT_TRY(parse_behavior(o, &p->behavior, err));
        CT_TRY(ct_json_bool(o, "invert", &p->invert, err));
    } else if (!strcmp(ty, "Metaspace")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_METASPACE, &p, err));
        p->split = true;
        CT_TRY(parse_replacement(o, p->repl, &p->repl_len, &p->repl_cp, err));
        CT_TRY(parse_prepend_scheme(o, &p->scheme, err));
        CT_TRY(ct_json_bool(o, "split", &p->split, err));
    } else if (!strcmp(ty, "Digits")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_DIGITS, &p, err));
        CT_TRY(ct_json_bool(o, "individual_digits", &p->individual_digits, err));
        p->behavior = p->individual_digits ? TK_ISOLATED : TK_CONTIGUOUS;
    } else if (!strcmp(ty, "Punctuation")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_PUNCT, &p, err));
        CT_TRY(parse_behavior(o, &p->behavior, err));
    } else if (!strcmp(ty, "Whitespace")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_WHITESPACE, &p, err));
        p->behavior = TK_REMOVED;
        p->invert = true;
    } else if (!strcmp(ty, "WhitespaceSplit")) {
        CT_TRY(tk_add_pretok(t, TK_PRE_WSSPLIT, &p, err));
        p->behavior = TK_REMOVED;
    } else {
        return ct_fail(err, CT_ERR_UNSUPPORTED, "pre-tokenizer type '%s' is not supported", ty);
    }
    return CT_OK;
}

ct_status tk_add_dec(ct_tokenizer *t, tk_dec_kind kind, tk_dec **out, ct_error *err) {
    CT_TRY(grow((void **)&t->decs, &t->n_decs, sizeof *t->decs, err));
    *out = &t->decs[t->n_decs - 1];
    (*out)->kind = kind;
    return CT_OK;
}

static ct_status parse_decoder(ct_tokenizer *t, const cJSON *o, ct_error *err) {
    if (!o || cJSON_IsNull(o))
        return CT_OK;
    const char *ty = type_of(o);
    tk_dec *d;
    t->has_decoder = true;
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "decoders")) CT_TRY(parse_decoder(t, it, err));
    } else if (!strcmp(ty, "ByteLevel")) {
        CT_TRY(tk_add_dec(t, TK_DEC_BYTELEVEL, &d, err));
    } else if (!strcmp(ty, "ByteFallback")) {
        CT_TRY(tk_add_dec(t, TK_DEC_BYTEFALLBACK, &d, err));
    } else if (!strcmp(ty, "Fuse")) {
        CT_TRY(tk_add_dec(t, TK_DEC_FUSE, &d, err));
    } else if (!strcmp(ty, "Metaspace")) {
        CT_TRY(tk_add_dec(t, TK_DEC_METASPACE, &d, err));
        char repl[5];
        size_t len;
        tk_prepend_scheme sc;
        CT_TRY(parse_replacement(o, repl, &len, &d->cp, err));
        CT_TRY(parse_prepend_scheme(o, &sc, err));
        d->prepend = sc != TK_PREPEND_NEVER;
    } else if (!strcmp(ty, "Strip")) {
        CT_TRY(tk_add_dec(t, TK_DEC_STRIP, &d, err));
        const char *c = " ";
        int64_t a = 0, b = 0;
        CT_TRY(ct_json_string(o, "content", &c, err));
        CT_TRY(ct_json_int(o, "start", &a, err));
        CT_TRY(ct_json_int(o, "stop", &b, err));
        tk_utf8_next(c, strlen(c), &d->cp);
        d->start = a > 0 ? (size_t)a : 0;
        d->stop = b > 0 ? (size_t)b : 0;
    } else if (!strcmp(ty, "Replace")) {
        CT_TRY(tk_add_dec(t, TK_DEC_REPLACE, &d, err));
        const char *c;
        CT_TRY(ct_json_need_string(o, "content", &c, err));
        d->content_len = strlen(c);
        CT_TRY(dup_str(c, &d->content, err));
        CT_TRY(parse_pattern(o, "decoder Replace", &d->pat, err));
    } else {
        return ct_fail(err, CT_ERR_UNSUPPORTED, "decoder type '%s' is not supported", ty);
    }
    return CT_OK;
}

typedef struct idvec {
    int32_t *v;
    size_t n;
} idvec;

static ct_status idvec_add(idvec *v, int32_t id, ct_error *err) {
    CT_TRY(grow((void **)&v->v, &v->n, sizeof *v->v, err));
    v->v[v->n - 1] = id;
    return CT_OK;
}

// [token, id] of RobertaProcessing/BertProcessing
static ct_status pair_id(const cJSON *o, const char *key, int32_t *id, ct_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, key);
    int64_t v;
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 || !ct_json_as_int(cJSON_GetArrayItem(p, 1), &v))
        return ct_fail(err, CT_ERR_FORMAT, "post_processor: \"%s\" must be [token, id]", key);
    *id = (int32_t)v;
    return CT_OK;
}

static ct_status parse_template(const cJSON *o, idvec *pre, idvec *post, ct_error *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    const cJSON *it;
    bool seen_seq = false;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_seq = true;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name))
            return ct_fail(err, CT_ERR_FORMAT, "post_processor: TemplateProcessing item without SpecialToken.id");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name->valuestring), "ids");
        if (!cJSON_IsArray(ids))
            return ct_fail(err, CT_ERR_FORMAT, "post_processor: special token '%s' missing from special_tokens",
                           name->valuestring);
        const cJSON *idj;
        cJSON_ArrayForEach(idj, ids) {
            int64_t v;
            if (!ct_json_as_int(idj, &v))
                return ct_fail(err, CT_ERR_FORMAT, "post_processor: special token '%s' has a non-integer id",
                               name->valuestring);
            CT_TRY(idvec_add(seen_seq ? post : pre, (int32_t)v, err));
        }
    }
    return CT_OK;
}

// Flattens the post-processor(s) into ids before and after the sequence.
static ct_status parse_post(const cJSON *o, idvec *pre, idvec *post, ct_error *err) {
    if (!o || cJSON_IsNull(o))
        return CT_OK;
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "processors")) {
            idvec a = {0}, b = {0};
            ct_status st = parse_post(it, &a, &b, err);
            for (size_t i = 0; i < pre->n && st == CT_OK; i++) // later processors wrap earlier ones
                st = idvec_add(&a, pre->v[i], err);
            for (size_t i = 0; i < b.n && st == CT_OK; i++)
                st = idvec_add(post, b.v[i], err);
            free(pre->v);
            *pre = a;
            free(b.v);
            CT_TRY(st);
        }
        return CT_OK;
    }
    if (!strcmp(ty, "TemplateProcessing"))
        return parse_template(o, pre, post, err);
    if (!strcmp(ty, "ByteLevel"))
        return CT_OK; // only adjusts offsets
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        int32_t cls, sep;
        CT_TRY(pair_id(o, "cls", &cls, err));
        CT_TRY(pair_id(o, "sep", &sep, err));
        CT_TRY(idvec_add(pre, cls, err));
        return idvec_add(post, sep, err);
    }
    return ct_fail(err, CT_ERR_UNSUPPORTED, "post_processor type '%s' is not supported", ty);
}

static ct_status parse_added(ct_tokenizer *t, const cJSON *arr, ct_error *err) {
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int64_t id;
        const char *content;
        CT_TRY(ct_json_need_int(it, "id", &id, err));
        CT_TRY(ct_json_need_string(it, "content", &content, err));
        CT_TRY(grow((void **)&t->added, &t->n_added, sizeof *t->added, err));
        tk_added *a = &t->added[t->n_added - 1];
        a->id = (int32_t)id;
        a->len = strlen(content);
        CT_TRY(dup_str(content, &a->content, err));
        CT_TRY(ct_json_bool(it, "special", &a->special, err));
        a->normalized = !a->special;
        CT_TRY(ct_json_bool(it, "normalized", &a->normalized, err));
        CT_TRY(ct_json_bool(it, "lstrip", &a->lstrip, err));
        CT_TRY(ct_json_bool(it, "rstrip", &a->rstrip, err));
        CT_TRY(ct_json_bool(it, "single_word", &a->single_word, err));
        CT_TRY(tk_set_token(t, a->id, content, a->len, err));
    }
    return CT_OK;
}

static ct_status merge_parts(const cJSON *m, size_t i, const char **a, size_t *na, const char **b, size_t *nb,
                             ct_error *err) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return ct_fail(err, CT_ERR_FORMAT, "model.merges[%zu]: \"%s\" is not \"a b\"", i, s);
        *a = s;
        *na = (size_t)(sp - s);
        *b = sp + 1;
        *nb = strlen(sp + 1);
        return CT_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
        cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        *a = cJSON_GetArrayItem(m, 0)->valuestring;
        *b = cJSON_GetArrayItem(m, 1)->valuestring;
        *na = strlen(*a);
        *nb = strlen(*b);
        return CT_OK;
    }
    return ct_fail(err, CT_ERR_FORMAT, "model.merges[%zu]: expected \"a b\" or [a, b]", i);
}

// Adds merge (a, b) with the given rank; the merged token is a + b (minus
// the continuing-subword prefix of b).
ct_status tk_add_merge(ct_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, uint32_t rank,
                       size_t i, ct_error *err) {
    int64_t ia, ib, im;
    size_t pl = t->prefix ? strlen(t->prefix) : 0, skip = pl && nb >= pl && !memcmp(b, t->prefix, pl) ? pl : 0;
    tk_buf m = {0};
    CT_TRY(tk_buf_add(&m, a, na, err));
    ct_status st = tk_buf_add(&m, b + skip, nb - skip, err);
    if (st == CT_OK && (!ct_strmap_get(&t->vocab, a, na, &ia) || !ct_strmap_get(&t->vocab, b, nb, &ib) ||
                        !ct_strmap_get(&t->vocab, m.p, m.len, &im)))
        st = ct_fail(err, CT_ERR_FORMAT, "model.merges[%zu]: a token of \"%.*s\" + \"%.*s\" is not in the vocab", i,
                     (int)na, a, (int)nb, b);
    if (st == CT_OK)
        st = tk_merges_put(&t->merges, (int32_t)ia, (int32_t)ib, rank, (int32_t)im, err);
    tk_buf_free(&m);
    return st;
}

static ct_status parse_model(ct_tokenizer *t, const cJSON *m, ct_error *err) {
    const char *ty = type_of(m);
    if (!cJSON_IsObject(m))
        return ct_fail(err, CT_ERR_FORMAT, "missing \"model\" object");
    if (*ty && strcmp(ty, "BPE"))
        return ct_fail(err, CT_ERR_UNSUPPORTED, "model type '%s' is not supported (only BPE)", ty);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return ct_fail(err, CT_ERR_FORMAT, "model: BPE needs a \"vocab\" object and a \"merges\" array");
    const char *s = NULL;
    CT_TRY(ct_json_string(m, "continuing_subword_prefix", &s, err));
    if (s && *s)
        CT_TRY(dup_str(s, &t->prefix, err));
    s = NULL;
    CT_TRY(ct_json_string(m, "end_of_word_suffix", &s, err));
    if (s && *s)
        CT_TRY(dup_str(s, &t->suffix, err));
    CT_TRY(ct_json_bool(m, "byte_fallback", &t->byte_fallback, err));
    CT_TRY(ct_json_bool(m, "fuse_unk", &t->fuse_unk, err));
    CT_TRY(ct_json_bool(m, "ignore_merges", &t->ignore_merges, err));
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id;
        if (!ct_json_as_int(it, &id))
            return ct_fail(err, CT_ERR_FORMAT, "model.vocab[\"%s\"]: id is not an integer", it->string);
        CT_TRY(tk_set_token(t, (int32_t)id, it->string, strlen(it->string), err));
    }
    uint32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CT_TRY(merge_parts(it, rank, &a, &na, &b, &nb, err));
        CT_TRY(tk_add_merge(t, a, na, b, nb, rank, rank, err));
        rank++;
    }
    s = NULL;
    CT_TRY(ct_json_string(m, "unk_token", &s, err));
    if (s) {
        int64_t id;
        if (ct_strmap_gets(&t->vocab, s, &id))
            t->unk = (int32_t)id;
    }
    return CT_OK;
}

static ct_status parse_tokenizer(ct_tokenizer *t, const cJSON *root, ct_error *err) {
    idvec pre = {0}, post = {0};
    CT_TRY(parse_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), err));
    CT_TRY(parse_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err));
    CT_TRY(parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err));
    CT_TRY(tk_parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err));
    CT_TRY(parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err));
    ct_status st = parse_post(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &pre, &post, err);
    if (st == CT_OK)
        st = tk_set_post(t, pre.v, pre.n, post.v, post.n, err);
    free(pre.v);
    free(post.v);
    CT_TRY(st);
    return tk_build_matchers(t, err);
}

ct_status ct_tokenizer_from_json(ct_tokenizer **t, const char *json, size_t len, const char *source,
                                 ct_error *err) {
    cJSON *root;
    *t = NULL;
    CT_TRY(ct_json_parse(json, len, source, &root, err));
    ct_status st = tk_new(t, err);
    if (st == CT_OK)
        st = parse_tokenizer(*t, root, err);
    cJSON_Delete(root);
    if (st == CT_OK) {
        tk_finish_specials(*t);
        return CT_OK;
    }
    ct_tokenizer_free(*t);
    *t = NULL;
    return ct_error_context(err, "%s", source);
}

// "bos_token": "<s>" or {"content": "<s>", ...}
static ct_status config_token(const cJSON *cfg, const char *key, char **out, ct_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return CT_OK;
    free(*out);
    return dup_str(v->valuestring, out, err);
}

ct_status tk_add_template(ct_tokenizer *t, const char *name, const char *text, ct_error *err) {
    for (size_t i = 0; i < t->n_tmpls; i++) {
        if (!strcmp(t->tmpls[i].name, name)) {
            free(t->tmpls[i].text);
            return dup_str(text, &t->tmpls[i].text, err);
        }
    }
    CT_TRY(grow((void **)&t->tmpls, &t->n_tmpls, sizeof *t->tmpls, err));
    CT_TRY(dup_str(name, &t->tmpls[t->n_tmpls - 1].name, err));
    return dup_str(text, &t->tmpls[t->n_tmpls - 1].text, err);
}

static ct_status parse_templates(ct_tokenizer *t, const cJSON *ct, ct_error *err) {
    if (cJSON_IsString(ct))
        return tk_add_template(t, "default", ct->valuestring, err);
    const cJSON *it;
    cJSON_ArrayForEach(it, ct) {
        const char *name, *text;
        CT_TRY(ct_json_need_string(it, "name", &name, err));
        CT_TRY(ct_json_need_string(it, "template", &text, err));
        CT_TRY(tk_add_template(t, name, text, err));
    }
    return CT_OK;
}

static bool contains(const int32_t *v, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static ct_status apply_config(ct_tokenizer *t, const cJSON *cfg, ct_error *err) {
    char *pad = NULL;
    CT_TRY(config_token(cfg, "bos_token", &t->bos_tok, err));
    CT_TRY(config_token(cfg, "eos_token", &t->eos_tok, err));
    CT_TRY(config_token(cfg, "pad_token", &pad, err));
    if (pad) {
        t->sp.pad_id = ct_tokenizer_token_to_id(t, pad);
        free(pad);
    }
    tk_finish_specials(t);
    // transformers' Llama/Gemma fast tokenizers rebuild the post-processor from these flags
    const char *cls = "";
    CT_TRY(ct_json_string(cfg, "tokenizer_class", &cls, err));
    bool add_bos = contains(t->post_pre, t->n_post_pre, t->sp.bos_id);
    bool add_eos = contains(t->post_post, t->n_post_post, t->sp.eos_id);
    bool has_bos = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") != NULL;
    bool has_eos = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") != NULL;
    CT_TRY(ct_json_bool(cfg, "add_bos_token", &add_bos, err));
    CT_TRY(ct_json_bool(cfg, "add_eos_token", &add_eos, err));
    if ((has_bos || has_eos) && (strstr(cls, "LlamaTokenizer") || strstr(cls, "GemmaTokenizer"))) {
        int32_t b = t->sp.bos_id, e = t->sp.eos_id;
        CT_TRY(tk_set_post(t, &b, add_bos && b >= 0, &e, add_eos && e >= 0, err));
    }
    t->sp.add_bos = contains(t->post_pre, t->n_post_pre, t->sp.bos_id);
    t->sp.add_eos = contains(t->post_post, t->n_post_post, t->sp.eos_id);
    return parse_templates(t, cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), err);
}

static ct_status apply_generation_config(ct_tokenizer *t, const cJSON *g, ct_error *err) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id");
    int64_t v;
    idvec ids = {0};
    if (ct_json_as_int(e, &v))
        CT_TRY(idvec_add(&ids, (int32_t)v, err));
    const cJSON *it;
    if (cJSON_IsArray(e)) {
        cJSON_ArrayForEach(it, e) {
            if (!ct_json_as_int(it, &v)) {
                free(ids.v);
                return ct_fail(err, CT_ERR_FORMAT, "eos_token_id: expected integers");
            }
            CT_TRY(idvec_add(&ids, (int32_t)v, err));
        }
    }
    if (!ids.n)
        return CT_OK;
    free(t->eos_ids);
    t->eos_ids = ids.v;
    t->sp.eos_ids = ids.v;
    t->sp.n_eos = ids.n;
    if (t->sp.eos_id < 0)
        t->sp.eos_id = ids.v[0];
    return CT_OK;
}

static ct_status load_optional_json(const char *dir, const char *name, cJSON **out, ct_error *err) {
    char path[4096];
    *out = NULL;
    CT_TRY(ct_path_join(path, sizeof path, dir, name, err));
    if (!ct_path_exists(path))
        return CT_OK;
    return ct_json_load_file(path, out, err);
}

static ct_status load_dir_extras(ct_tokenizer *t, const char *dir, ct_error *err) {
    cJSON *cfg, *gen;
    CT_TRY(load_optional_json(dir, "tokenizer_config.json", &cfg, err));
    ct_status st = cfg ? apply_config(t, cfg, err) : CT_OK;
    cJSON_Delete(cfg);
    CT_TRY(st);
    CT_TRY(load_optional_json(dir, "generation_config.json", &gen, err));
    st = gen ? apply_generation_config(t, gen, err) : CT_OK;
    cJSON_Delete(gen);
    CT_TRY(st);
    char path[4096];
    CT_TRY(ct_path_join(path, sizeof path, dir, "chat_template.jinja", err));
    if (ct_path_exists(path)) {
        char *text;
        size_t len;
        CT_TRY(ct_read_file(path, &text, &len, err));
        st = tk_add_template(t, "default", text, err);
        free(text);
    }
    return st;
}

ct_status ct_tokenizer_load(ct_tokenizer **t, const char *path_or_dir, ct_error *err) {
    char path[4096];
    bool dir = ct_is_dir(path_or_dir);
    *t = NULL;
    if (dir)
        CT_TRY(ct_path_join(path, sizeof path, path_or_dir, "tokenizer.json", err));
    else if (snprintf(path, sizeof path, "%s", path_or_dir) >= (int)sizeof path)
        return ct_fail(err, CT_ERR_INVALID, "path too long: %s", path_or_dir);
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf"))
        return tk_load_gguf(t, path, err);
    char *text;
    size_t len;
    CT_TRY(ct_read_file(path, &text, &len, err));
    ct_status st = ct_tokenizer_from_json(t, text, len, path, err);
    free(text);
    CT_TRY(st);
    if (dir && (st = load_dir_extras(*t, path_or_dir, err)) != CT_OK) {
        ct_tokenizer_free(*t);
        *t = NULL;
    }
    return st;
}
