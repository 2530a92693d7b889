// libFuzzer target: adapter folders applied to a model, as `ctune generate
// --adapter-path` does (ct_model_apply_adapters, then a forward pass).
//
// Input: byte 0 = layout ('p': PEFT's adapter_model.safetensors, anything
// else: mlx-lm's adapters.safetensors); bytes 1-2 = n, the length of adapter_config.json
// (little-endian, clipped to what is left); then n bytes of adapter_config.json;
// the rest is the safetensors file. Both go into a private temp folder.
//
// The model (CTUNE_FUZZ_MODEL, default tests/fixtures/chat_model: run from the
// repo root) is loaded once. After each input, with the adapters detached,
// the model's logits must be bit-identical to those before any input: a
// failed or freed apply must leave the model as it found it.
// CTUNE_FUZZ_VERBOSE=1 prints why each input was refused (for triage).
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/backend.h"
#include "ctune/fs.h"
#include "ctune/log.h"
#include "ctune/model.h"
#include "ctune/tuned_model.h"

static char g_dir[64];
static ct_backend *g_be;
static ct_model g_model;
static ct_kv_cache g_kv;
static float *g_baseline; // (V) logits of the last position of g_ids
static float *g_logits;
static const int32_t g_ids[4] = {1, 17, 42, 3};

static void remove_dir(void) {
    ct_remove_tree(g_dir, NULL);
}

// Logits (V) of the last position of g_ids into out; false on an error.
static bool forward(float *out) {
    ct_error err;
    const float *logits;
    ct_kv_cache_reset(&g_kv);
    if (ct_model_forward(&g_model, &g_kv, g_ids, 1, 4, true, &logits, &err) != CT_OK)
        return false;
    g_be->download(g_be, out, logits, sizeof(float) * (size_t)g_model.V);
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    ct_log_set_level(CT_LOG_QUIET);
    const char *model = getenv("CTUNE_FUZZ_MODEL");
    ct_error err;
    snprintf(g_dir, sizeof g_dir, "/dev/shm/ctune-fuzz-adapter-XXXXXX");
    if (!mkdtemp(g_dir) || ct_backend_cpu_create(&g_be, &err) != CT_OK ||
        ct_model_load(&g_model, model ? model : "tests/fixtures/chat_model", g_be, &err) != CT_OK ||
        ct_kv_cache_init(&g_kv, &g_model, 1, 8, &err) != CT_OK) {
        fprintf(stderr, "fuzz_adapter: setup failed (run from the repo root): %s\n", err.msg);
        abort();
    }
    atexit(remove_dir);
    g_baseline = malloc(sizeof(float) * (size_t)g_model.V);
    g_logits = malloc(sizeof(float) * (size_t)g_model.V);
    if (!g_baseline || !g_logits || !forward(g_baseline))
        abort();
    return 0;
}

static void write_file(const char *name, const uint8_t *data, size_t size) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
}

static void remove_file(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3)
        return 0;
    bool peft = data[0] == 'p';
    size_t n = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3, size -= 3;
    if (n > size)
        n = size;
    write_file("adapter_config.json", data, n);
    write_file(peft ? "adapter_model.safetensors" : "adapters.safetensors", data + n, size - n);
    remove_file(peft ? "adapters.safetensors" : "adapter_model.safetensors");

    ct_error err;
    ct_tuned_model *t = NULL;
    if (ct_model_apply_adapters(&g_model, g_dir, &t, &err) == CT_OK) {
        (void)forward(g_logits); // adapted: values may be anything, but no crash
        ct_tuned_model_free(t);
    } else if (getenv("CTUNE_FUZZ_VERBOSE")) {
        fprintf(stderr, "fuzz_adapter: %s\n", err.msg);
    }
    if (!forward(g_logits) || memcmp(g_logits, g_baseline, sizeof(float) * (size_t)g_model.V) != 0) {
        fprintf(stderr, "fuzz_adapter: the model changed after applying and freeing an adapter\n");
        abort();
    }
    return 0;
}
