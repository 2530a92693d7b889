// Unit tests for lora_args: CLI and YAML parsing, precedence, mlx-lm's
// defaults, the fixed quirks, errors with file:line, adapter_config.json.
#include <stdlib.h>

#include "ctune/fs.h"
#include "ctune/json.h"
#include "ctune/lora_args.h"
#include "harness.h"

#define PARSE(args, err, ...)                                                      \
    ct_lora_args_parse((args), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), \
                       (char *const[]){__VA_ARGS__}, (err))

static const char *yaml_file(const char *name, const char *text) {
    static char path[8][1024];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 1024, "%s", ct_test_write_tmp(name, text, strlen(text)));
    return p;
}

TEST(lora_args_defaults_match_mlx_lm) {
    ct_error err;
    ct_lora_args a;
    CHECK_OK(PARSE(&a, &err, "--train"), &err);
    CHECK(a.train && !a.test);
    CHECK_STREQ(a.model, "Qwen/Qwen3-0.6b");
    CHECK_STREQ(a.fine_tune_type, "lora");
    CHECK_STREQ(a.optimizer, "adam");
    CHECK_STREQ(a.data, "mlx-community/WikiSQL");
    CHECK_STREQ(a.adapter_path, "adapters");
    CHECK_EQ(a.num_layers, 16);
    CHECK_EQ(a.batch_size, 4);
    CHECK_EQ(a.iters, 1000);
    CHECK_EQ(a.val_batches, 25);
    CHECK_EQ(a.test_batches, 500);
    CHECK_EQ(a.steps_per_report, 10);
    CHECK_EQ(a.steps_per_eval, 200);
    CHECK_EQ(a.save_every, 100);
    CHECK_EQ(a.max_seq_length, 2048);
    CHECK_EQ(a.grad_accumulation_steps, 1);
    CHECK(a.learning_rate == 1e-5);
    CHECK_EQ(a.lora_parameters.rank, 8);
    CHECK(a.lora_parameters.scale == 20.0 && a.lora_parameters.dropout == 0.0);
    CHECK(a.lora_parameters.keys == NULL && !a.lr_schedule_set && a.resume_adapter_file == NULL);
    ct_lora_args_free(&a);
}

TEST(lora_args_cli_forms) {
    ct_error err;
    ct_lora_args a;
    CHECK_OK(PARSE(&a, &err, "--train", "--batch-size", "8", "--iters=50", "--num-layers", "-1", "--learn", "2e-4",
                   "--optimizer", "AdamW", "--mask-prompt", "--clear-cache-threshold", "4.1GB", "--model", "m"),
             &err);
    CHECK_EQ(a.batch_size, 8);
    CHECK_EQ(a.iters, 50);
    CHECK_EQ(a.num_layers, -1);
    CHECK(a.learning_rate == 2e-4);
    CHECK_STREQ(a.optimizer, "adamw");
    CHECK(a.mask_prompt);
    CHECK_EQ(a.clear_cache_threshold, 4099999999LL); // int(4.1 * 1e9), as mlx-lm computes it
    CHECK_STREQ(a.model, "m");
    ct_lora_args_free(&a);
}

TEST(lora_args_cli_errors) {
    ct_error err;
    ct_lora_args a;
    CHECK_FAILS(PARSE(&a, &err, "--train", "--batch-szie", "8"), &err, "unknown option --batch-szie (did you mean '--batch-size'?)");
    CHECK_FAILS(PARSE(&a, &err, "--train=yes"), &err, "--train takes no value");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--iters"), &err, "--iters expects a value");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--iters", "ten"), &err, "iters: expected an integer, got 'ten'");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--fine-tune-type", "qlora"), &err, "invalid choice 'qlora'");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--s", "1"), &err, "ambiguous option --s");
    CHECK_FAILS(PARSE(&a, &err, "--train", "extra"), &err, "unexpected argument 'extra'");
    CHECK_FAILS(PARSE(&a, &err, "--batch-size", "2"), &err, "Must provide at least one of --train or --test");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--num-layers", "0"), &err, "num_layers: 0 layers would train nothing");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--num-layers", "-2"), &err, "num_layers: -2 is not valid");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--grad-accumulation-steps", "0"), &err, "grad_accumulation_steps");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--report-to", "tensorboard"), &err, "tensorboard callback doesn't exist");
    CHECK_FAILS(PARSE(&a, &err, "--train", "--resume", "--resume-adapter-file", "x.safetensors"), &err, "--resume");
}

TEST(lora_args_help_flag_and_text) {
    ct_error err;
    ct_lora_args a;
    CHECK_OK(PARSE(&a, &err, "-h"), &err);
    CHECK(a.help);
    ct_lora_args_free(&a);
    char *h = ct_lora_args_help();
    CHECK(h != NULL);
    const char *flags[] = {"--model", "--train", "--fine-tune-type", "--optimizer", "--data", "--seed", "--num-layers",
                           "--batch-size", "--iters", "--val-batches", "--learning-rate", "--steps-per-report",
                           "--steps-per-eval", "--resume-adapter-file", "--adapter-path", "--save-every", "--test",
                           "--test-batches", "--max-seq-length", "-c, --config", "--grad-checkpoint",
                           "--grad-accumulation-steps", "--clear-cache-threshold", "--mask-prompt", "--report-to",
                           "--project-name", "--trust-remote-code", "--resume", "lora_parameters", "lr_schedule",
                           "optimizer_config", "hf_dataset", "prompt_feature", "chat_feature"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        CHECK_CONTAINS(h, flags[i]);
    CHECK_CONTAINS(h, "Minibatch size. (default: 4)");
    CHECK_CONTAINS(h, "(default: 1e-5)");
    free(h);
}

TEST(lora_args_yaml_and_precedence) {
    ct_error err;
    ct_lora_args a;
    const char *y = yaml_file("p.yaml",
                              "model: some/model\n"
                              "train: true\n"
                              "batch_size: 2\n"
                              "iters: 30\n"
                              "learning_rate: 1e-5\n"          // no dot: a float (mlx-lm's resolver)
                              "trust_remote_code: true\n"      // unsettable from YAML in mlx-lm
                              "clear_cache_threshold: 512M\n"
                              "optimizer: sgd\n"
                              "optimizer_config:\n  sgd:\n    momentum: 0.9\n"
                              "prompt_feature: input\n"
                              "completion_feature: output\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y, "--batch-size", "6"), &err);
    CHECK_STREQ(a.model, "some/model");
    CHECK_EQ(a.batch_size, 6); // CLI wins
    CHECK_EQ(a.iters, 30);     // YAML over default
    CHECK(a.learning_rate == 1e-5);
    CHECK(a.trust_remote_code);
    CHECK_EQ(a.clear_cache_threshold, 512000000);
    CHECK_STREQ(a.config, y);
    CHECK_STREQ(a.prompt_feature, "input");
    const cJSON *sgd = cJSON_GetObjectItem(a.optimizer_config, "sgd");
    CHECK(cJSON_GetObjectItem(sgd, "momentum") && cJSON_GetObjectItem(sgd, "momentum")->valuedouble == 0.9);
    CHECK(cJSON_GetObjectItem(a.optimizer_config, "adam") != NULL); // defaults kept beside
    ct_lora_args_free(&a);
}

TEST(lora_args_yaml_errors_name_file_line) {
    ct_error err;
    ct_lora_args a;
    const char *y = yaml_file("bad1.yaml", "train: true\nbatch_size: 4\nlerning_rate: 1e-4\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad1.yaml:3:1: unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
    y = yaml_file("bad2.yaml", "train: true\n\nbatch_size: four\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad2.yaml:3:1: batch_size must be an integer, got a string");
    y = yaml_file("bad3.yaml", "train: true\nlora_parameters:\n  rank: 8\n  dropuot: 0.1\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad3.yaml:4:3: unknown lora_parameters key 'dropuot' (did you mean 'dropout'?)");
    y = yaml_file("bad4.yaml", "train: true\nbatch_size: [1\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad4.yaml:3:1: malformed YAML");
    y = yaml_file("bad5.yaml", "train: true\nlr_schedule:\n  name: cosine_decy\n  arguments: [1e-5, 100]\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad5.yaml:3:3: lr_schedule.name: unknown schedule 'cosine_decy' (did you mean 'cosine_decay'?)");
    y = yaml_file("bad6.yaml", "train: true\nfine_tune_type: Dora\nnum_layers: 0\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "num_layers: 0");
    y = yaml_file("bad7.yaml", "train: true\nbatch_size: 2\nbatch_size: 3\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "bad7.yaml:3:1: duplicate key 'batch_size'");
    CHECK_FAILS(PARSE(&a, &err, "--train", "-c", "/nonexistent/c.yaml"), &err, "/nonexistent/c.yaml: cannot open");
}

TEST(lora_args_lora_parameters_merge_and_alpha) {
    ct_error err;
    ct_lora_args a;
    // Only rank given: scale and dropout keep their defaults (mlx-lm: KeyError).
    const char *y = yaml_file("lp1.yaml", "train: true\nlora_parameters:\n  rank: 16\n  keys: [self_attn.q_proj, self_attn.v_proj]\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y), &err);
    CHECK_EQ(a.lora_parameters.rank, 16);
    CHECK(a.lora_parameters.scale == 20.0);
    CHECK_EQ(a.lora_parameters.n_keys, 2);
    CHECK_STREQ(a.lora_parameters.keys[1], "self_attn.v_proj");
    ct_lora_args_free(&a);
    // alpha alone: scale = alpha / rank.
    y = yaml_file("lp2.yaml", "train: true\nlora_parameters: {rank: 16, alpha: 32}\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y), &err);
    CHECK(a.lora_parameters.scale == 2.0 && a.lora_parameters.alpha_set);
    ct_lora_args_free(&a);
    // Both, consistent: fine. Inconsistent: an error that names both.
    y = yaml_file("lp3.yaml", "train: true\nlora_parameters: {rank: 8, alpha: 16, scale: 2.0}\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y), &err);
    ct_lora_args_free(&a);
    y = yaml_file("lp4.yaml", "train: true\nlora_parameters: {rank: 8, alpha: 16, scale: 20.0}\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "scale 20 disagrees with alpha / rank = 16 / 8 = 2");
    y = yaml_file("lp5.yaml", "train: true\nlora_parameters: {rank: 8, dropout: 1.5}\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "lora_parameters.dropout");
}

TEST(lora_args_lr_schedule_and_hf_dataset) {
    ct_error err;
    ct_lora_args a;
    const char *y = yaml_file("s.yaml",
                              "train: true\n"
                              "lr_schedule:\n  name: cosine_decay\n  warmup: 100\n  warmup_init: 1e-7\n"
                              "  arguments: [1e-5, 1000, 1e-7]\n"
                              "hf_dataset:\n"
                              "  - path: org/one\n    prompt_feature: q\n    completion_feature: a\n"
                              "    config: {name: en}\n"
                              "  - path: org/two\n    train_split: train[:50%]\n    test_split: test\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y), &err);
    CHECK(a.lr_schedule_set);
    CHECK_STREQ(a.lr_schedule.name, "cosine_decay");
    CHECK_EQ(a.lr_schedule.n_arguments, 3);
    CHECK(a.lr_schedule.arguments[0] == 1e-5 && a.lr_schedule.arguments[1] == 1000 && a.lr_schedule.warmup == 100);
    CHECK(a.lr_schedule.warmup_init == 1e-7);
    CHECK_EQ(a.n_hf_dataset, 2);
    CHECK_STREQ(a.hf_dataset[0].path, "org/one");
    CHECK_STREQ(a.hf_dataset[0].prompt_feature, "q");
    CHECK_STREQ(a.hf_dataset[0].train_split, "train[:80%]"); // mlx-lm's defaults
    CHECK_STREQ(a.hf_dataset[0].valid_split, "train[-10%:]");
    CHECK(a.hf_dataset[0].test_split == NULL);
    CHECK(a.hf_dataset[0].config && !strcmp(cJSON_GetObjectItem(a.hf_dataset[0].config, "name")->valuestring, "en"));
    CHECK_STREQ(a.hf_dataset[1].train_split, "train[:50%]");
    CHECK_STREQ(a.hf_dataset[1].test_split, "test");
    ct_lora_args_free(&a);
    y = yaml_file("s2.yaml", "train: true\nhf_dataset:\n  path: x/y\n  tarin_split: train\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "s2.yaml:4:3: unknown hf_dataset key 'tarin_split' (did you mean 'train_split'?)");
    y = yaml_file("s3.yaml", "train: true\nhf_dataset:\n  train_split: train\n");
    CHECK_FAILS(PARSE(&a, &err, "-c", (char *)y), &err, "hf_dataset entry needs a 'path'");
}

// adapter_config.json must be byte-identical to Python's json.dump of the same
// namespace (fixture made by tools/make_data_fixtures.py).
static void check_json_fixture(ct_lora_args *a, const char *fixture) {
    ct_error err;
    char *mine, *want;
    CHECK_OK(ct_lora_args_to_json(a, &mine, &err), &err);
    CHECK_OK(ct_read_file(ct_test_fixture(fixture), &want, NULL, &err), &err);
    CHECK_MSG(!strcmp(mine, want), "%s differs:\n--- ours\n%s\n--- python\n%s", fixture, mine, want);
    free(mine);
    free(want);
}

TEST(lora_args_adapter_config_matches_python_json) {
    ct_error err;
    ct_lora_args a;
    CHECK_OK(PARSE(&a, &err, "--train"), &err);
    check_json_fixture(&a, "data/adapter_config_default.json");
    ct_lora_args_free(&a);
    const char *y = yaml_file("j.yaml",
                              "train: true\ntest: true\nlearning_rate: 0.0002\nmax_seq_length: 512\n"
                              "lora_parameters: {rank: 4, alpha: 12, dropout: 0.05, keys: [mlp.up_proj]}\n"
                              "lr_schedule: {name: cosine_decay, arguments: [1.5e-7, 1000, 1e-7], warmup: 10}\n"
                              "hf_dataset: {path: org/caf\xc3\xa9, config: {name: x}}\n"
                              "text_feature: body\nreport_to: wandb\n");
    CHECK_OK(PARSE(&a, &err, "-c", (char *)y, "--adapter-path", "out/ad"), &err);
    free(a.config); // the temp path varies between runs; the fixture has a fixed one
    a.config = strdup("lora.yaml");
    check_json_fixture(&a, "data/adapter_config_custom.json");
    a.learning_rate = 3e16;
    char *text;
    CHECK_OK(ct_lora_args_to_json(&a, &text, &err), &err);
    CHECK_CONTAINS(text, "\"learning_rate\": 3e+16,");
    free(text);
    ct_lora_args_free(&a);
}

TEST(lora_args_save_config_writes_file) {
    ct_error err;
    ct_lora_args a;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/adapters-out/nested", ct_test_tmpdir());
    CHECK_OK(PARSE(&a, &err, "--train", "--adapter-path", dir), &err);
    CHECK_OK(ct_lora_args_save_config(&a, &err), &err);
    char path[1100];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *j;
    CHECK_OK(ct_json_load_file(path, &j, &err), &err);
    CHECK_STREQ(cJSON_GetObjectItem(j, "fine_tune_type")->valuestring, "lora");
    CHECK_EQ(cJSON_GetObjectItem(j, "num_layers")->valueint, 16);
    CHECK_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "lora_parameters"), "rank")->valueint, 8);
    cJSON_Delete(j);
    ct_lora_args_free(&a);
}
