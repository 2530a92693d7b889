// Unit tests for hub: options from the environment, the cache layout
// huggingface_hub uses, downloads from a local stand-in hub
// (tests/hub_server.py on 127.0.0.1), offline mode, errors, hub datasets.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "ctune/dataset.h"
#include "ctune/fs.h"
#include "ctune/hub.h"
#include "ctune/log.h"
#include "harness.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"

typedef struct env_save {
    const char *name;
    char *value;
} env_save;

static const char *ENV_NAMES[] = {"HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_ENDPOINT",
                                  "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE"};
#define N_ENV (sizeof ENV_NAMES / sizeof ENV_NAMES[0])

static void env_push(env_save *s) {
    for (size_t i = 0; i < N_ENV; i++) {
        const char *v = getenv(ENV_NAMES[i]);
        s[i] = (env_save){ENV_NAMES[i], v ? strdup(v) : NULL};
        unsetenv(ENV_NAMES[i]);
    }
}

static void env_pop(env_save *s) {
    for (size_t i = 0; i < N_ENV; i++) {
        if (s[i].value)
            setenv(s[i].name, s[i].value, 1);
        else
            unsetenv(s[i].name);
        free(s[i].value);
    }
}

TEST(hub_options_from_environment) {
    ct_error err;
    env_save saved[N_ENV];
    env_push(saved);
    ct_hub_options o;
    char home[1024], tokfile[1100];
    snprintf(home, sizeof home, "%s/hfhome", ct_test_tmpdir());
    ct_mkdir_p(home, &err);
    snprintf(tokfile, sizeof tokfile, "%s/token", home);
    ct_write_file_atomic(tokfile, "hf_fromfile\n", 12, &err);
    setenv("HF_HOME", home, 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    setenv("HF_HUB_OFFLINE", "1", 1);
    ct_status st = ct_hub_options_from_env(&o, &err);
    char want[1100];
    snprintf(want, sizeof want, "%s/hub", home);
    bool ok1 = st == CT_OK && !strcmp(o.cache, want) && !strcmp(o.endpoint, "http://127.0.0.1:9") &&
               !strcmp(o.token, "hf_fromfile") && o.offline;
    setenv("HF_HUB_CACHE", "/elsewhere/hub", 1);
    setenv("HF_TOKEN", "hf_env", 1);
    setenv("HF_HUB_OFFLINE", "0", 1);
    st = ct_hub_options_from_env(&o, &err);
    bool ok2 = st == CT_OK && !strcmp(o.cache, "/elsewhere/hub") && !strcmp(o.token, "hf_env") && !o.offline;
    unsetenv("HF_HOME");
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_ENDPOINT");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    st = ct_hub_options_from_env(&o, &err);
    bool ok3 = st == CT_OK && !strcmp(o.cache, "/xdg/huggingface/hub") && !strcmp(o.endpoint, "https://huggingface.co");
    env_pop(saved);
    CHECK(ok1);
    CHECK(ok2);
    CHECK(ok3);
}

TEST(hub_repo_ids) {
    CHECK(ct_hub_is_repo_id("mlx-community/WikiSQL"));
    CHECK(ct_hub_is_repo_id("gpt2"));
    CHECK(ct_hub_is_repo_id("Qwen/Qwen3-0.6b"));
    CHECK(!ct_hub_is_repo_id("/abs/path"));
    CHECK(!ct_hub_is_repo_id("./data"));
    CHECK(!ct_hub_is_repo_id("a/b/c"));
    CHECK(!ct_hub_is_repo_id("org/../x"));
    CHECK(!ct_hub_is_repo_id("org/na me"));
    CHECK(!ct_hub_is_repo_id(""));
}

// ---------------------------------------------------------------------------
// The stand-in hub, started for the tests below and stopped at the end.

typedef struct server {
    pid_t pid;
    char endpoint[128];
    char log[1024];
} server;

static bool server_start(server *s, const char *token) {
    char port_file[1024];
    static int k;
    snprintf(port_file, sizeof port_file, "%s/hub-port-%d", ct_test_tmpdir(), k);
    snprintf(s->log, sizeof s->log, "%s/hub-log-%d", ct_test_tmpdir(), k++);
    s->pid = fork();
    if (s->pid == 0) {
        execlp("python3", "python3", "tests/hub_server.py", "--port-file", port_file, "--log", s->log, "--lifetime",
               "60", token ? "--token" : NULL, token, (char *)NULL);
        _exit(127);
    }
    if (s->pid < 0)
        return false;
    for (int i = 0; i < 200; i++) { // up to 10 s
        char *text;
        ct_error err;
        if (ct_read_file(port_file, &text, NULL, &err) == CT_OK) {
            snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%s", text);
            free(text);
            return true;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void server_stop(server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static int count_lines_with(const char *path, const char *needle) {
    char *text;
    ct_error err;
    if (ct_read_file(path, &text, NULL, &err) != CT_OK)
        return 0;
    int n = 0;
    for (char *p = text; (p = strstr(p, needle)); p++)
        n++;
    free(text);
    return n;
}

static void hub_opts(ct_hub_options *o, const char *cache, const char *endpoint, const char *token) {
    memset(o, 0, sizeof *o);
    snprintf(o->cache, sizeof o->cache, "%s", cache);
    snprintf(o->endpoint, sizeof o->endpoint, "%s", endpoint);
    snprintf(o->token, sizeof o->token, "%s", token ? token : "");
    o->timeout_s = 10;
}

static bool file_is(const char *path, const char *want) {
    char *text;
    ct_error err;
    if (ct_read_file(path, &text, NULL, &err) != CT_OK)
        return false;
    bool same = !strcmp(text, want);
    free(text);
    return same;
}

static void check_model_download(const server *s) {
    ct_error err;
    char cache[1024], path[4400];
    snprintf(cache, sizeof cache, "%s/hfcache", ct_test_tmpdir());
    ct_hub_options o;
    hub_opts(&o, cache, s->endpoint, "hf_secret");
    // A download killed earlier left its temp file (its PID is gone): removed.
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char blobs[1100];
    snprintf(blobs, sizeof blobs, "%s/models--org--tiny/blobs", cache);
    CHECK_OK(ct_mkdir_p(blobs, &err), &err);
    snprintf(path, sizeof path, "%s/ctune.incomplete.tmp.%ld", blobs, (long)dead);
    CHECK_OK(ct_write_file_atomic(path, "partial", 7, &err), &err);
    ct_log_level level = ct_log_get_level();
    ct_log_set_level(CT_LOG_WARN); // no "downloading" notes in the test output
    ct_hub_snapshot snap;
    ct_status st = ct_hub_resolve(&o, CT_HUB_MODEL, "org/tiny", NULL, CT_HUB_MODEL_PATTERNS, &snap, &err);
    ct_log_set_level(level);
    CHECK_OK(st, &err);
    CHECK_STREQ(snap.sha, SHA);
    CHECK_EQ(snap.n_files, 6); // the full listing, wanted or not
    snprintf(path, sizeof path, "%s/models--org--tiny/snapshots/%s", cache, SHA);
    CHECK_STREQ(snap.dir, path);
    snprintf(path, sizeof path, "%s/models--org--tiny/refs/main", cache);
    CHECK(file_is(path, SHA));
    snprintf(path, sizeof path, "%s/config.json", snap.dir);
    CHECK(file_is(path, "{\"model_type\": \"llama\", \"hidden_size\": 8}\n"));
    // Regular files: blobs named by the git blob sha1 (the ETag); relative links.
    char target[512];
    ssize_t n = readlink(path, target, sizeof target - 1);
    CHECK(n > 0);
    target[n] = 0;
    CHECK(!strncmp(target, "../../blobs/", 12) && strlen(target) == 12 + 40);
    snprintf(path, sizeof path, "%s/sub/dir/extra.json", snap.dir);
    n = readlink(path, target, sizeof target - 1);
    CHECK(n > 0);
    target[n] = 0;
    CHECK(!strncmp(target, "../../../../blobs/", 18));
    CHECK(file_is(path, "{\"nested\": true}\n"));
    // The LFS file came through the redirect: its blob is named by the sha256.
    snprintf(path, sizeof path, "%s/model.safetensors", snap.dir);
    n = readlink(path, target, sizeof target - 1);
    CHECK(n > 0);
    target[n] = 0;
    CHECK_EQ(strlen(target), 12 + 64);
    // Only mlx-lm's patterns were fetched.
    snprintf(path, sizeof path, "%s/onnx/model.onnx", snap.dir);
    CHECK(!ct_path_exists(path));
    snprintf(path, sizeof path, "%s/README.md", snap.dir);
    CHECK(!ct_path_exists(path));
    ct_hub_snapshot_free(&snap);
    int downloads = count_lines_with(s->log, "/resolve/");
    CHECK_EQ(downloads, 4);
    // Again: nothing is downloaded twice.
    CHECK_OK(ct_hub_resolve(&o, CT_HUB_MODEL, "org/tiny", NULL, CT_HUB_MODEL_PATTERNS, &snap, &err), &err);
    ct_hub_snapshot_free(&snap);
    CHECK_EQ(count_lines_with(s->log, "/resolve/"), downloads);
    // No temp files left in blobs/ (nor the stale one planted above).
    char **files;
    size_t nf;
    snprintf(path, sizeof path, "%s/models--org--tiny/blobs", cache);
    CHECK_OK(ct_hub_list_dir(path, &files, &nf, &err), &err);
    CHECK_EQ(nf, 4);
    for (size_t i = 0; i < nf; i++)
        CHECK(!strstr(files[i], "incomplete"));
    ct_hub_free_list(files, nf);
    // Python's huggingface_hub (in .venv when present) finds our files.
    if (ct_path_exists(".venv/bin/python")) {
        char cmd[2048], line[1024] = "";
        snprintf(cmd, sizeof cmd,
                 ".venv/bin/python -c \"from huggingface_hub import try_to_load_from_cache as t; "
                 "print(t('org/tiny', 'sub/dir/extra.json', cache_dir='%s'))\" 2>&1", cache);
        FILE *p = popen(cmd, "r");
        CHECK(p != NULL);
        if (!fgets(line, sizeof line, p))
            line[0] = 0;
        pclose(p);
        line[strcspn(line, "\n")] = 0;
        snprintf(path, sizeof path, "%s/models--org--tiny/snapshots/%s/sub/dir/extra.json", cache, SHA);
        if (!strstr(line, "No module named"))
            CHECK_STREQ(line, path);
    }
    // Offline: read from the cache only.
    ct_hub_options off = o;
    off.offline = true;
    snprintf(off.endpoint, sizeof off.endpoint, "http://127.0.0.1:1");
    CHECK_OK(ct_hub_resolve(&off, CT_HUB_MODEL, "org/tiny", NULL, CT_HUB_MODEL_PATTERNS, &snap, &err), &err);
    CHECK_EQ(snap.n_files, 4);
    CHECK_STREQ(snap.files[0], "config.json");
    ct_hub_snapshot_free(&snap);
    CHECK_FAILS(ct_hub_resolve(&off, CT_HUB_MODEL, "org/absent", NULL, NULL, &snap, &err), &err,
                "Hugging Face model 'org/absent' is not in the cache");
    CHECK_CONTAINS(err.msg, "models--org--absent");
    CHECK_CONTAINS(err.msg, "HF_HUB_OFFLINE=1");
    // No connection (a closed port): the cached copy is used, with a warning.
    ct_hub_options down = o;
    snprintf(down.endpoint, sizeof down.endpoint, "http://127.0.0.1:1");
    ct_log_set_level(CT_LOG_QUIET);
    CHECK_OK(ct_hub_resolve(&down, CT_HUB_MODEL, "org/tiny", NULL, CT_HUB_MODEL_PATTERNS, &snap, &err), &err);
    ct_hub_snapshot_free(&snap);
    CHECK_FAILS(ct_hub_resolve(&down, CT_HUB_MODEL, "org/absent", NULL, NULL, &snap, &err), &err, "127.0.0.1:1");
    ct_log_set_level(CT_LOG_WARN);
    // A wrong token: the server's 401 becomes an error that mentions HF_TOKEN.
    ct_hub_options bad = o;
    snprintf(bad.token, sizeof bad.token, "wrong");
    snprintf(bad.cache, sizeof bad.cache, "%s/other-cache", ct_test_tmpdir());
    CHECK_FAILS(ct_hub_resolve(&bad, CT_HUB_MODEL, "org/tiny", NULL, NULL, &snap, &err), &err, "HTTP 401");
    CHECK_CONTAINS(err.msg, "HF_TOKEN");
    CHECK_FAILS(ct_hub_resolve(&o, CT_HUB_MODEL, "org/missing", NULL, NULL, &snap, &err), &err, "HTTP 404");
    ct_log_set_level(level);
}

// The server runs around the checks, so a failed check (which returns early)
// never leaves it behind.
TEST(hub_download_lays_out_the_cache_like_huggingface_hub) {
    server s;
    CHECK_MSG(server_start(&s, "hf_secret"), "tests/hub_server.py did not start");
    check_model_download(&s);
    server_stop(&s);
}

static void check_dataset_download(const server *s) {
    ct_error err;
    char cache[1024];
    snprintf(cache, sizeof cache, "%s/hfcache-ds", ct_test_tmpdir());
    ct_hub_options o;
    hub_opts(&o, cache, s->endpoint, NULL);
    ct_log_level level = ct_log_get_level();
    ct_log_set_level(CT_LOG_QUIET);
    ct_lora_args a;
    char *argv[] = {"--train", "--test", "--data", "org/data"};
    CHECK_OK(ct_lora_args_parse(&a, 4, argv, &err), &err);
    ct_dataset train = {0}, valid = {0}, test = {0};
    ct_status st = ct_dataset_load_for_args(&a, &o, &train, &valid, &test, &err);
    ct_log_set_level(level);
    CHECK_OK(st, &err);
    CHECK_EQ(train.n, 6);
    CHECK_EQ(valid.n, 2); // from validation.jsonl
    CHECK_EQ(test.n, 1);
    CHECK_CONTAINS(train.sources[0].name, "datasets--org--data/snapshots/" SHA "/train.jsonl");
    ct_dataset_free(&train);
    ct_dataset_free(&valid);
    ct_dataset_free(&test);
    ct_lora_args_free(&a);
    char *argv2[] = {"--train", "--data", "org/pq"};
    CHECK_OK(ct_lora_args_parse(&a, 3, argv2, &err), &err);
    CHECK_FAILS(ct_dataset_load_for_args(&a, &o, &train, &valid, &test, &err), &err,
                "'org/pq' has no JSON Lines or JSON files (it has data/train-00000-of-00001.parquet)");
    CHECK_EQ(count_lines_with(s->log, ".parquet"), 0); // not downloaded just to be refused
    ct_lora_args_free(&a);
}

TEST(hub_datasets_by_id) {
    server s;
    CHECK_MSG(server_start(&s, NULL), "tests/hub_server.py did not start");
    check_dataset_download(&s);
    server_stop(&s);
}
