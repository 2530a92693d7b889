// Tokenizer tests: ids and decodes must equal those Hugging Face `tokenizers`
// recorded (tests/fixtures/tokenizer, made by tools/make_tokenizer_fixtures.py),
// plus configs, errors and long inputs.
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/tokenizer.h"
#include "harness.h"

static const char *VARIANTS[] = {"bytelevel", "bytelevel_prefix", "llama3_split", "digits_bytelevel",
                                 "spm",       "metaspace",        "metaspace_always", "split_behaviors",
                                 "punct_ws",  "wssplit_digits",   "gpt2_split"};

static cJSON *load_cases(void) {
    cJSON *root = NULL;
    ct_error err;
    return ct_json_load_file(ct_test_fixture("tokenizer/cases.json"), &root, &err) == CT_OK ? root : NULL;
}

// Compares one variant's encodes and decodes with the recorded ones; returns mismatches.
static int check_variant(const char *name, const cJSON *cases, char *first_bad, size_t n_bad) {
    char path[256];
    ct_error err;
    ct_tokenizer *t;
    snprintf(path, sizeof path, "tokenizer/%s.json", name);
    if (ct_tokenizer_load(&t, ct_test_fixture(path), &err) != CT_OK) {
        snprintf(first_bad, n_bad, "%s: load: %.900s", name, err.msg);
        return 1;
    }
    int bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        char *dec = NULL, *dec_skip = NULL;
        bool ok = ct_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err) == CT_OK &&
                  n == (size_t)cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < n; i++)
            ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        ok = ok && ct_tokenizer_decode(t, ids, n, false, &dec, &err) == CT_OK &&
             !strcmp(dec, cJSON_GetObjectItem(c, "decoded")->valuestring);
        ok = ok && ct_tokenizer_decode(t, ids, n, true, &dec_skip, &err) == CT_OK &&
             !strcmp(dec_skip, cJSON_GetObjectItem(c, "decoded_skip")->valuestring);
        if (!ok && !bad++)
            snprintf(first_bad, n_bad, "%s: text \"%s\" (got %zu ids, decode \"%s\")", name, text, n, dec ? dec : "");
        free(ids);
        free(dec);
        free(dec_skip);
    }
    ct_tokenizer_free(t);
    return bad;
}

TEST(tokenizer_matches_hf_on_every_fixture_variant) {
    cJSON *cases = load_cases();
    CHECK(cases != NULL);
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        char first[1024] = "";
        const cJSON *vc = cJSON_GetObjectItem(cases, VARIANTS[v]);
        CHECK_MSG(cJSON_GetArraySize(vc) > 30, "%s: no cases", VARIANTS[v]);
        int bad = check_variant(VARIANTS[v], vc, first, sizeof first);
        CHECK_MSG(bad == 0, "%d mismatches, first: %s", bad, first);
    }
    cJSON_Delete(cases);
}

static ct_tokenizer *load_fixture(const char *name) {
    ct_tokenizer *t = NULL;
    ct_error err;
    char path[256];
    snprintf(path, sizeof path, "tokenizer/%s.json", name);
    if (ct_tokenizer_load(&t, ct_test_fixture(path), &err) != CT_OK)
        fprintf(stderr, "%s\n", err.msg);
    return t;
}

TEST(tokenizer_specific_ids_and_lookups) {
    ct_tokenizer *t = load_fixture("spm");
    CHECK(t != NULL);
    ct_error err;
    int32_t *ids;
    size_t n;
    // byte fallback: a character absent from the vocab becomes its UTF-8 bytes
    CHECK_OK(ct_tokenizer_encode(t, "\xe1\x83\xaf", 3, false, &ids, &n, &err), &err);
    CHECK(n >= 3);
    CHECK_STREQ(ct_tokenizer_id_to_token(t, ids[n - 3]), "<0xE1>");
    CHECK_STREQ(ct_tokenizer_id_to_token(t, ids[n - 1]), "<0xAF>");
    free(ids);
    CHECK_EQ(ct_tokenizer_token_to_id(t, "<s>"), 1);
    CHECK_EQ(ct_tokenizer_token_to_id(t, "no such token"), -1);
    CHECK(ct_tokenizer_is_special(t, 1));
    CHECK(!ct_tokenizer_is_special(t, ct_tokenizer_token_to_id(t, "<|sep|>")));
    CHECK(ct_tokenizer_id_to_token(t, -1) == NULL);
    CHECK(ct_tokenizer_id_to_token(t, (int32_t)ct_tokenizer_vocab_size(t)) == NULL);
    // add_special puts BOS first (TemplateProcessing "<s> $A")
    CHECK_OK(ct_tokenizer_encode(t, "hi", 2, true, &ids, &n, &err), &err);
    CHECK_EQ(ids[0], 1);
    free(ids);
    ct_tokenizer_free(t);
}

TEST(tokenizer_long_word_is_fast_and_round_trips) {
    ct_tokenizer *t = load_fixture("spm"); // no pre-tokenizer: the whole text is one BPE word
    CHECK(t != NULL);
    size_t len = 400000;
    char *text = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        text[i] = "hello world "[i % 12];
    text[len] = 0;
    ct_error err;
    int32_t *ids;
    size_t n;
    char *dec;
    CHECK_OK(ct_tokenizer_encode(t, text, len, false, &ids, &n, &err), &err);
    CHECK(n > 1000 && n < len);
    CHECK_OK(ct_tokenizer_decode(t, ids, n, false, &dec, &err), &err);
    CHECK_STREQ(dec, text);
    free(dec);
    free(ids);
    free(text);
    ct_tokenizer_free(t);
}

TEST(tokenizer_errors_name_the_problem) {
    ct_tokenizer *t;
    ct_error err;
    const char *unigram = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
    CHECK_FAILS(ct_tokenizer_from_json(&t, unigram, strlen(unigram), "u.json", &err), &err, "Unigram");
    CHECK_CONTAINS(err.msg, "u.json");
    const char *badmerge = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
    CHECK_FAILS(ct_tokenizer_from_json(&t, badmerge, strlen(badmerge), "m.json", &err), &err, "merges[0]");
    const char *badpre = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                         " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}";
    CHECK_FAILS(ct_tokenizer_from_json(&t, badpre, strlen(badpre), "p.json", &err), &err, "BertPreTokenizer");
    CHECK_FAILS(ct_tokenizer_from_json(&t, "{\"model\": ", 10, "x.json", &err), &err, "x.json");
    CHECK_FAILS(ct_tokenizer_load(&t, "/nonexistent/tokenizer.json", &err), &err, "/nonexistent");
    t = load_fixture("bytelevel");
    CHECK(t != NULL);
    int32_t *ids;
    size_t n;
    CHECK_FAILS(ct_tokenizer_encode(t, "ab\xff", 3, false, &ids, &n, &err), &err, "not valid UTF-8 at byte 2");
    ct_tokenizer_free(t);
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ct_error err;
    if (ct_write_file_atomic(path, text, strlen(text), &err) != CT_OK)
        fprintf(stderr, "%s\n", err.msg);
}

TEST(tokenizer_model_dir_configs) {
    char dir[1024];
    ct_error err;
    snprintf(dir, sizeof dir, "%s/tokdir", ct_test_tmpdir());
    CHECK_OK(ct_mkdir_p(dir, &err), &err);
    char *json;
    size_t len;
    CHECK_OK(ct_read_file(ct_test_fixture("tokenizer/bytelevel.json"), &json, &len, &err), &err);
    write_file(dir, "tokenizer.json", json);
    free(json);
    write_file(dir, "tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"pad_token\": \"<unk>\","
               " \"chat_template\": [{\"name\": \"default\", \"template\": \"A\"}, {\"name\": \"tool_use\", \"template\": \"T\"}]}");
    write_file(dir, "generation_config.json", "{\"eos_token_id\": [2, 0]}");
    ct_tokenizer *t;
    CHECK_OK(ct_tokenizer_load(&t, dir, &err), &err);
    const ct_tokenizer_specials *sp = ct_tokenizer_get_specials(t);
    CHECK_EQ(sp->bos_id, 1);
    CHECK_EQ(sp->eos_id, 2);
    CHECK_EQ(sp->pad_id, 0);
    CHECK_STREQ(sp->bos_token, "<s>");
    CHECK_EQ(sp->n_eos, 2);
    CHECK_EQ(sp->eos_ids[1], 0);
    CHECK(!sp->add_bos);
    CHECK(sp->add_eos); // the fixture's template is "$A </s>"
    CHECK_EQ(ct_tokenizer_chat_template_count(t), 2);
    CHECK_STREQ(ct_tokenizer_chat_template(t, NULL), "A");
    CHECK_STREQ(ct_tokenizer_chat_template(t, "tool_use"), "T");
    CHECK_STREQ(ct_tokenizer_chat_template_name(t, 1), "tool_use");
    ct_tokenizer_free(t);
    // a chat_template.jinja beside the config wins; a single eos id works too
    write_file(dir, "chat_template.jinja", "{{ messages }}");
    write_file(dir, "generation_config.json", "{\"eos_token_id\": 2}");
    CHECK_OK(ct_tokenizer_load(&t, dir, &err), &err);
    CHECK_STREQ(ct_tokenizer_chat_template(t, "default"), "{{ messages }}");
    CHECK_EQ(ct_tokenizer_get_specials(t)->n_eos, 1);
    ct_tokenizer_free(t);
}

// A "gpt2" vocab built from the bytelevel fixture's arrays must encode like
// the tokenizer.json itself (texts with the fixture's extra added tokens aside).
TEST(tokenizer_from_vocab_gpt2_matches_json) {
    cJSON *root = NULL, *cases = load_cases();
    ct_error err;
    CHECK_OK(ct_json_load_file(ct_test_fixture("tokenizer/bytelevel.json"), &root, &err), &err);
    const cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab");
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    size_t n_tok = (size_t)cJSON_GetArraySize(vocab), n_merges = (size_t)cJSON_GetArraySize(merges);
    const char **tokens = calloc(n_tok, sizeof *tokens);
    int32_t *types = calloc(n_tok, sizeof *types);
    char **mstr = calloc(n_merges, sizeof *mstr);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        tokens[it->valueint] = it->string;
        types[it->valueint] = it->valueint < 3 ? 3 : 1;
    }
    for (size_t i = 0; i < n_merges; i++) {
        const cJSON *m = cJSON_GetArrayItem(merges, (int)i);
        const char *a = cJSON_GetArrayItem(m, 0)->valuestring, *b = cJSON_GetArrayItem(m, 1)->valuestring;
        mstr[i] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(mstr[i], "%s %s", a, b);
    }
    ct_tokenizer_vocab v = {.model = "gpt2", .pre = "default", .n_tokens = n_tok, .tokens = tokens,
                            .token_types = types, .n_merges = n_merges, .merges = (const char *const *)mstr,
                            .bos_id = 1, .eos_id = 2, .unk_id = -1, .pad_id = -1, .add_bos = true};
    ct_tokenizer *g = NULL, *j = load_fixture("bytelevel");
    CHECK_OK(ct_tokenizer_from_vocab(&g, &v, &err), &err);
    int compared = 0, bad = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(cases, "bytelevel")) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        if (strstr(text, "<|sep|>") || strstr(text, "<mask>"))
            continue;
        int32_t *a, *b;
        size_t na, nb;
        CHECK_OK(ct_tokenizer_encode(g, text, strlen(text), false, &a, &na, &err), &err);
        CHECK_OK(ct_tokenizer_encode(j, text, strlen(text), false, &b, &nb, &err), &err);
        bad += na != nb || memcmp(a, b, na * sizeof *a) != 0;
        compared++;
        free(a);
        free(b);
    }
    CHECK(compared > 25);
    CHECK_EQ(bad, 0);
    int32_t *ids;
    size_t n;
    CHECK_OK(ct_tokenizer_encode(g, "hi", 2, true, &ids, &n, &err), &err);
    CHECK_EQ(ids[0], 1); // add_bos
    free(ids);
    CHECK_EQ(ct_tokenizer_get_specials(g)->eos_id, 2);
    CHECK_STREQ(ct_tokenizer_get_specials(g)->bos_token, "<s>");
    v.pre = "no-such-pre";
    ct_tokenizer *bad_t;
    CHECK_FAILS(ct_tokenizer_from_vocab(&bad_t, &v, &err), &err, "no-such-pre");
    ct_tokenizer_free(g);
    ct_tokenizer_free(j);
    for (size_t i = 0; i < n_merges; i++)
        free(mstr[i]);
    free(mstr);
    free(tokens);
    free(types);
    cJSON_Delete(root);
    cJSON_Delete(cases);
}

// "llama" vocab: merges ranked by the merged token's score, byte fallback.
TEST(tokenizer_from_vocab_llama_scores) {
    enum { NB = 256, N = 3 + NB + 6 };
    const char *tokens[N];
    float scores[N];
    int32_t types[N];
    char bytes[NB][7];
    const char *base[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) {
        tokens[i] = base[i];
        types[i] = i ? 3 : 2;
        scores[i] = 0;
    }
    for (int b = 0; b < NB; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = 6;
        scores[3 + b] = 0;
    }
    const char *words[] = {"\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81\x61", "ba"};
    const float wscores[] = {-1, -2, -3, -10, -5, -4};
    for (int i = 0; i < 6; i++) {
        tokens[3 + NB + i] = words[i];
        scores[3 + NB + i] = wscores[i];
        types[3 + NB + i] = 1;
    }
    ct_tokenizer_vocab v = {.model = "llama", .n_tokens = N, .tokens = tokens, .scores = scores, .token_types = types,
                            .bos_id = 1, .eos_id = 2, .unk_id = 0, .pad_id = -1, .add_bos = true,
                            .add_space_prefix = true, .chat_template = "{{ x }}"};
    ct_tokenizer *t;
    ct_error err;
    CHECK_OK(ct_tokenizer_from_vocab(&t, &v, &err), &err);
    int32_t *ids;
    size_t n;
    CHECK_OK(ct_tokenizer_encode(t, "aba \xC3\xA9", 6, true, &ids, &n, &err), &err);
    // <s> "▁a" "ba" "▁" <0xC3> <0xA9>: "ba" (-4) merges before "▁a" (-5) and "ab" (-10)
    CHECK_EQ(n, 6);
    CHECK_EQ(ids[0], 1);
    CHECK_STREQ(ct_tokenizer_id_to_token(t, ids[1]), "\xE2\x96\x81\x61");
    CHECK_STREQ(ct_tokenizer_id_to_token(t, ids[2]), "ba");
    CHECK_STREQ(ct_tokenizer_id_to_token(t, ids[4]), "<0xC3>");
    char *dec;
    CHECK_OK(ct_tokenizer_decode(t, ids, n, true, &dec, &err), &err);
    CHECK_STREQ(dec, "aba \xC3\xA9");
    free(dec);
    free(ids);
    CHECK_STREQ(ct_tokenizer_chat_template(t, NULL), "{{ x }}");
    ct_tokenizer_free(t);
}

// Regression (fuzz_tokenizer): a Split regex with invalid UTF-8 crashed PCRE2.
TEST(tokenizer_regex_with_invalid_utf8_is_an_error) {
    const char *json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                       " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\xff\xfe(\"},"
                       " \"behavior\": \"Isolated\", \"invert\": false}}";
    ct_tokenizer *t = NULL;
    ct_error err;
    CHECK_FAILS(ct_tokenizer_from_json(&t, json, strlen(json), "bad.json", &err), &err, "regex");
}
