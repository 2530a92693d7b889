// Unit tests for dataset loading: formats, custom keys, validation errors with
// file:line, splits and slices, hf_dataset entries, tokenizing through a callback.
#include <stdlib.h>

#include "ctune/dataset.h"
#include "ctune/log.h"
#include "harness.h"

static const char *tmp_file(const char *name, const char *text) {
    static char path[8][1024];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 1024, "%s", ct_test_write_tmp(name, text, strlen(text)));
    return p;
}

static const char *field(const ct_dataset *ds, size_t i, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(ds->records[i].json, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

TEST(dataset_local_folder_three_formats) {
    ct_error err;
    ct_dataset train = {0}, valid = {0}, test = {0};
    CHECK_OK(ct_dataset_load_local(ct_test_fixture("data/local"), NULL, false, &train, &valid, &test, &err), &err);
    CHECK_EQ(train.n, 4); // the blank line is skipped
    CHECK_EQ(train.sources[0].format, CT_DATA_COMPLETIONS);
    CHECK_STREQ(field(&train, 0, "prompt"), "2+2=");
    CHECK_STREQ(field(&train, 3, "completion"), "10");
    CHECK(cJSON_GetObjectItem(train.records[0].json, "extra") == NULL); // extra keys are not kept
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(train.records[2].json, "tools")));
    CHECK_EQ(train.records[2].line, 4);
    CHECK_EQ(valid.n, 2);
    CHECK_EQ(valid.sources[0].format, CT_DATA_CHAT);
    CHECK_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(valid.records[1].json, "messages")), 5);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(valid.records[1].json, "tools")));
    CHECK_EQ(test.n, 2); // test.json: a JSON array
    CHECK_EQ(test.sources[0].format, CT_DATA_TEXT);
    CHECK_STREQ(field(&test, 0, "text"), "caf\xc3\xa9 au lait");
    ct_dataset_free(&train);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
}

TEST(dataset_format_priority_and_custom_keys) {
    ct_error err;
    ct_dataset ds = {0};
    // prompt+completion beat messages and text; messages beat text (mlx-lm's order).
    const char *p = tmp_file("prio.jsonl", "{\"prompt\":\"p\",\"completion\":\"c\",\"messages\":[],\"text\":\"t\"}\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, NULL, false, &err), &err);
    CHECK_EQ(ds.sources[0].format, CT_DATA_COMPLETIONS);
    p = tmp_file("prio2.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"text\":\"t\"}\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, NULL, false, &err), &err);
    CHECK_EQ(ds.sources[1].format, CT_DATA_CHAT);
    ct_feature_names keys = {.text = "body", .prompt = "input", .completion = "output", .chat = "conversation"};
    p = tmp_file("custom.jsonl", "{\"input\":\"in\",\"output\":\"out\"}\n{\"input\":\"a\",\"output\":\"b\"}\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, &keys, true, &err), &err);
    CHECK_EQ(ds.sources[2].format, CT_DATA_COMPLETIONS);
    CHECK_STREQ(field(&ds, 2, "prompt"), "in"); // normalised to the default names
    CHECK_STREQ(field(&ds, 3, "completion"), "b");
    p = tmp_file("custom2.jsonl", "{\"body\":\"hello\"}\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, &keys, false, &err), &err);
    CHECK_STREQ(field(&ds, 4, "text"), "hello");
    CHECK_EQ(ds.n, 5);
    CHECK_EQ(ds.records[4].source, 3);
    ct_dataset_free(&ds);
}

TEST(dataset_errors_name_file_and_line) {
    ct_error err;
    ct_dataset ds = {0};
    const char *p = tmp_file("e1.jsonl", "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\": \"c\",}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e1.jsonl:3:");
    CHECK_CONTAINS(err.msg, "malformed JSON");
    p = tmp_file("e2.jsonl", "{\"text\":\"a\"}\n[1, 2]\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e2.jsonl:2: a record must be a JSON object, got an array");
    p = tmp_file("e3.jsonl", "{\"text\":\"a\"}\n{\"txt\":\"b\"}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e3.jsonl:2: missing \"text\" (the file is in text format");
    p = tmp_file("e4.jsonl", "{\"text\": 5}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e4.jsonl:1: \"text\" must be a string, got a number");
    p = tmp_file("e5.jsonl", "{\"messages\": {\"role\": \"user\"}}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e5.jsonl:1: \"messages\" must be a non-empty list");
    p = tmp_file("e6.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n{\"messages\": [{\"content\": \"x\"}]}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e6.jsonl:2: \"messages\"[0].role must be a string");
    p = tmp_file("e7.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e7.jsonl:1: \"messages\"[0].content must be a string");
    p = tmp_file("e8.jsonl", "{\"text\":\"ok\"}\n{\"text\":\"bad \xff byte\"}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e8.jsonl:2: invalid UTF-8");
    p = tmp_file("e9.jsonl", "{\"text\":\"overlong \xc0\xaf\"}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e9.jsonl:1: invalid UTF-8");
    p = tmp_file("e10.jsonl", "{\"text\":\"a\"}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, true, &err), &err, "Prompt masking not supported for text dataset");
    p = tmp_file("e11.jsonl", "{\"question\":\"a\"}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e11.jsonl:1: Unsupported data format");
    p = tmp_file("e12.jsonl", "{\"prompt\":\"a\",\"completion\":\"b\",\"tools\":{}}\n");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e12.jsonl:1: \"tools\" must be a list");
    p = tmp_file("e13.json", "[{\"text\":\"a\"}, 7]");
    CHECK_FAILS(ct_dataset_load_file(&ds, p, NULL, false, &err), &err, "e13.json: record 2: a record must be a JSON object");
    CHECK_FAILS(ct_dataset_load_file(&ds, "/nonexistent/t.jsonl", NULL, false, &err), &err, "/nonexistent/t.jsonl");
    CHECK_EQ(ds.n, 0); // failed loads leave nothing behind
    ct_dataset_free(&ds);
}

TEST(dataset_tolerates_bom_crlf_and_valid_utf8) {
    ct_error err;
    ct_dataset ds = {0};
    const char *p = tmp_file("bom.jsonl", "\xEF\xBB\xBF{\"text\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}\r\n\r\n{\"text\":\"b\"}\r\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, NULL, false, &err), &err);
    CHECK_EQ(ds.n, 2);
    CHECK_EQ(ds.records[1].line, 3);
    ct_dataset_free(&ds);
}

TEST(dataset_split_specs) {
    ct_error err;
    ct_split_spec s;
    size_t b, e;
    CHECK_OK(ct_split_spec_parse("train[:80%]", &s, &err), &err);
    CHECK_STREQ(s.name, "train");
    ct_split_spec_range(&s, 10, &b, &e);
    CHECK(b == 0 && e == 8);
    CHECK_OK(ct_split_spec_parse("train[-10%:]", &s, &err), &err);
    ct_split_spec_range(&s, 10, &b, &e);
    CHECK(b == 9 && e == 10);
    CHECK_OK(ct_split_spec_parse("train[10:20]", &s, &err), &err);
    ct_split_spec_range(&s, 15, &b, &e);
    CHECK(b == 10 && e == 15);
    CHECK_OK(ct_split_spec_parse("test[:-2]", &s, &err), &err);
    ct_split_spec_range(&s, 7, &b, &e);
    CHECK(b == 0 && e == 5);
    CHECK_OK(ct_split_spec_parse("train[:50%]", &s, &err), &err);
    ct_split_spec_range(&s, 5, &b, &e); // 2.5 rounds half to even, as Python's round
    CHECK_EQ(e, 2);
    CHECK_OK(ct_split_spec_parse("validation", &s, &err), &err);
    CHECK(!s.has_begin && !s.has_end);
    CHECK_FAILS(ct_split_spec_parse("train[1.5:]", &s, &err), &err, "integers or percentages");
    CHECK_FAILS(ct_split_spec_parse("train[:80%", &s, &err), &err, "expected name[begin:end]");
    CHECK_FAILS(ct_split_spec_parse("train[:150%]", &s, &err), &err, "within [-100%, 100%]");
}

static ct_status parse_args(ct_lora_args *a, const char *yaml, ct_error *err) {
    const char *p = tmp_file("args.yaml", yaml);
    char *argv[] = {"-c", (char *)p};
    return ct_lora_args_parse(a, 2, argv, err);
}

TEST(dataset_hf_entries_from_a_hub_shaped_folder) {
    ct_error err;
    ct_lora_args a;
    char yaml[2048];
    // Two entries over the same repository: concatenated; custom keys per entry;
    // the "validation" split name is accepted.
    snprintf(yaml, sizeof yaml,
             "train: true\ntest: true\nhf_dataset:\n"
             "  - path: %s\n    prompt_feature: q\n    completion_feature: a\n"
             "    valid_split: validation[:50%%]\n    test_split: train[-2:]\n"
             "  - path: %s\n    prompt_feature: q\n    completion_feature: a\n    train_split: train[2:4]\n"
             "    valid_split: valid\n",
             ct_test_fixture("data/hubshaped"), ct_test_fixture("data/hubshaped"));
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    ct_dataset train = {0}, valid = {0}, test = {0};
    CHECK_OK(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err);
    CHECK_EQ(train.n, 8 + 2);
    CHECK_STREQ(field(&train, 0, "prompt"), "question 0");
    CHECK_STREQ(field(&train, 8, "prompt"), "question 2");
    CHECK_EQ(train.n_sources, 2);
    CHECK_EQ(train.records[9].source, 1);
    CHECK_EQ(valid.n, 2 + 4);
    CHECK_STREQ(field(&valid, 2, "completion"), "va 0");
    CHECK_EQ(test.n, 2);
    CHECK_STREQ(field(&test, 1, "prompt"), "question 9");
    ct_dataset_free(&train);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
    ct_lora_args_free(&a);
    // config: {name: X} selects the configuration's folder.
    snprintf(yaml, sizeof yaml, "train: true\nprompt_feature: q\ncompletion_feature: a\nhf_dataset: {path: %s, config: {name: data}, train_split: train}\n",
             ct_test_fixture("data/hubshaped"));
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    CHECK_OK(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err);
    CHECK_EQ(train.n, 10);
    ct_dataset_free(&train);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
    ct_lora_args_free(&a);
    snprintf(yaml, sizeof yaml, "train: true\nhf_dataset: {path: %s, config: {name: fr}}\n",
             ct_test_fixture("data/hubshaped"));
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err, "under a 'fr/' folder");
    ct_lora_args_free(&a);
}

TEST(dataset_split_checks_and_parquet_hint) {
    ct_error err;
    ct_lora_args a;
    ct_dataset train = {0}, valid = {0}, test = {0};
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "train: true\ndata: %s\n", ct_test_tmpdir()); // a folder without train.jsonl
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err,
                "Training set not found or empty. Must provide training set for fine-tuning.");
    ct_lora_args_free(&a);
    snprintf(yaml, sizeof yaml, "test: true\ndata: %s\n", ct_test_fixture("data/hubshaped"));
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err,
                "Test set not found or empty. Must provide test set for evaluation.");
    ct_lora_args_free(&a);
    snprintf(yaml, sizeof yaml, "train: true\nhf_dataset: {path: %s}\n", ct_test_fixture("data/parquet_only"));
    CHECK_OK(parse_args(&a, yaml, &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err, "train-00000.parquet");
    CHECK_CONTAINS(err.msg, "to_json");
    ct_lora_args_free(&a);
    CHECK_OK(parse_args(&a, "train: true\ndata: no-such-org/no-such-data\n", &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err, "not available");
    ct_lora_args_free(&a);
    CHECK_OK(parse_args(&a, "train: true\nmask_prompt: true\ndata: tests/fixtures/data/local\n", &err), &err);
    CHECK_OK(ct_dataset_load_for_args(&a, NULL, &train, &valid, &test, &err), &err); // chat/completions: fine
    CHECK_EQ(train.n, 4);
    ct_dataset_free(&train);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
    ct_lora_args_free(&a);
}

// A stand-in tokenizer: one token per byte of the prompt/completion/text,
// plus BOS 1 and EOS 2.
static ct_status fake_encode(void *ctx, const cJSON *rec, ct_dataset_format fmt, bool mask_prompt, int32_t **ids,
                             size_t *n, size_t *prompt_len, ct_error *err) {
    int *calls = ctx;
    (*calls)++;
    const char *a = fmt == CT_DATA_TEXT ? cJSON_GetObjectItem(rec, "text")->valuestring
                                        : cJSON_GetObjectItem(rec, "prompt")->valuestring;
    const char *b = fmt == CT_DATA_COMPLETIONS ? cJSON_GetObjectItem(rec, "completion")->valuestring : "";
    size_t la = strlen(a), lb = strlen(b);
    *n = la + lb + 2;
    *ids = malloc(*n * sizeof **ids);
    if (!*ids)
        return ct_fail(err, CT_ERR_NOMEM, "oom");
    (*ids)[0] = 1;
    for (size_t i = 0; i < la; i++)
        (*ids)[1 + i] = (unsigned char)a[i];
    for (size_t i = 0; i < lb; i++)
        (*ids)[1 + la + i] = (unsigned char)b[i];
    (*ids)[*n - 1] = 2;
    *prompt_len = mask_prompt ? 1 + la : 0;
    return CT_OK;
}

TEST(dataset_tokenize_through_callback) {
    ct_error err;
    ct_dataset ds = {0};
    CHECK_OK(ct_dataset_load_file(&ds, ct_test_fixture("data/local/train.jsonl"), NULL, true, &err), &err);
    int calls = 0;
    ct_examples ex;
    CHECK_OK(ct_dataset_tokenize(&ds, fake_encode, &calls, true, 2048, &ex, &err), &err);
    CHECK_EQ(calls, 4);
    CHECK_EQ(ex.n, 4);
    CHECK_EQ(ex.items[0].len, 7); // BOS "2+2=" "4" EOS
    CHECK_EQ(ex.items[0].offset, 5);
    CHECK_EQ(ex.tokens[ex.items[0].start + 5], '4');
    CHECK_EQ(ex.items[3].line, 5);
    CHECK_CONTAINS(ex.sources[ex.items[3].source], "train.jsonl");
    ct_examples_free(&ex);
    // max_seq_length 5 cuts every completion off: all dropped, an error.
    ct_log_level level = ct_log_get_level();
    ct_log_set_level(CT_LOG_QUIET); // the expected warnings would only clutter the test output
    CHECK_FAILS(ct_dataset_tokenize(&ds, fake_encode, &calls, true, 5, &ex, &err), &err, "none of the 4 examples");
    // max_seq_length 6: every example keeps one trained target (position 5).
    CHECK_OK(ct_dataset_tokenize(&ds, fake_encode, &calls, true, 6, &ex, &err), &err);
    CHECK_EQ(ex.n, 4);
    ct_examples_free(&ex);
    ct_dataset_free(&ds);
    const char *p = tmp_file("mixed.jsonl", "{\"prompt\":\"a long prompt here\",\"completion\":\"x\"}\n"
                                            "{\"prompt\":\"s\",\"completion\":\"y\"}\n");
    CHECK_OK(ct_dataset_load_file(&ds, p, NULL, true, &err), &err);
    CHECK_OK(ct_dataset_tokenize(&ds, fake_encode, &calls, true, 8, &ex, &err), &err);
    CHECK_EQ(ex.n, 1); // the first is dropped (with a warning naming mixed.jsonl:1)
    CHECK_EQ(ex.items[0].line, 2);
    ct_log_set_level(level);
    ct_examples_free(&ex);
    ct_dataset_free(&ds);
}
