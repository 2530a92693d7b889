// adapter_select.c: which modules get adapters (mlx-lm's
// linear_to_lora_layers keys rules), adapter configs, and parameter counts
// with mlx-lm's print_trainable_parameters text.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/adapter.h"

void ct_adapter_config_default(ct_adapter_config *c) {
    *c = (ct_adapter_config){.type = CT_ADAPTER_LORA, .num_layers = 16, .rank = 8, .scale = 20.0f, .dropout = 0.0f};
}

void ct_adapter_config_free(ct_adapter_config *c) {
    for (int i = 0; i < c->n_keys; i++)
        free(c->keys[i]);
    free(c->keys);
    c->keys = NULL;
    c->n_keys = 0;
}

ct_status ct_adapter_config_set_keys(ct_adapter_config *c, const char *const *keys, int n, ct_error *err) {
    ct_adapter_config_free(c);
    if (n == 0)
        return CT_OK;
    if (!(c->keys = calloc((size_t)n, sizeof *c->keys)))
        return ct_fail(err, CT_ERR_NOMEM, "adapter keys: out of memory");
    for (int i = 0; i < n; i++) {
        if (!(c->keys[i] = strdup(keys[i]))) {
            c->n_keys = i;
            ct_adapter_config_free(c);
            return ct_fail(err, CT_ERR_NOMEM, "adapter keys: out of memory");
        }
    }
    c->n_keys = n;
    return CT_OK;
}

bool ct_module_block(const char *path, int *block, const char **rel) {
    for (const char *p = strstr(path, "layers."); p; p = strstr(p + 1, "layers.")) {
        if (p != path && p[-1] != '.')
            continue;
        const char *q = p + 7;
        if (!isdigit((unsigned char)*q))
            continue;
        long b = strtol(q, (char **)&q, 10);
        if (*q != '.' || b > 1000000)
            continue;
        *block = (int)b;
        *rel = q + 1;
        return true;
    }
    return false;
}

static int count_blocks(const ct_module_desc *mods, int n) {
    int nb = 0, b;
    const char *rel;
    for (int i = 0; i < n; i++)
        if (ct_module_block(mods[i].path, &b, &rel) && b + 1 > nb)
            nb = b + 1;
    return nb;
}

// Does module i match key k (block-relative inside the selected blocks, or full path)?
static bool key_matches(const ct_module_desc *m, const char *key, int first_block) {
    int b;
    const char *rel;
    if (strcmp(m->path, key) == 0)
        return true;
    return ct_module_block(m->path, &b, &rel) && b >= first_block && strcmp(rel, key) == 0;
}

ct_status ct_adapter_select(const ct_module_desc *mods, int n, const ct_adapter_config *cfg, bool *selected,
                            ct_error *err) {
    if (cfg->num_layers == 0 || cfg->num_layers < -1)
        return ct_fail(err, CT_ERR_INVALID,
                       "num_layers must be a positive number of blocks or -1 for all (got %d)", cfg->num_layers);
    int nb = count_blocks(mods, n);
    int first = cfg->num_layers == -1 || cfg->num_layers >= nb ? 0 : nb - cfg->num_layers;
    for (int i = 0; i < n; i++) {
        int b;
        const char *rel;
        selected[i] = cfg->n_keys == 0 && mods[i].kind == CT_MODULE_LINEAR && ct_module_block(mods[i].path, &b, &rel) &&
                      b >= first;
    }
    for (int k = 0; k < cfg->n_keys; k++) {
        bool any = false;
        for (int i = 0; i < n; i++)
            if (key_matches(&mods[i], cfg->keys[k], first))
                selected[i] = any = true;
        if (!any)
            return ct_fail(err, CT_ERR_INVALID, "lora key \"%s\" matches no module of the model%s", cfg->keys[k],
                           strchr(cfg->keys[k], '.') ? "" : " (keys are paths like self_attn.q_proj or lm_head)");
    }
    for (int i = 0; i < n; i++)
        if (selected[i] && cfg->type == CT_ADAPTER_DORA && mods[i].kind == CT_MODULE_EMBEDDING && mods[i].bits)
            return ct_fail(err, CT_ERR_UNSUPPORTED, "%s: DoRA on a quantized embedding is not supported",
                           mods[i].path);
    return CT_OK;
}

int64_t ct_module_param_count(const ct_module_desc *m) {
    return m->in * m->out + (m->has_bias ? m->out : 0);
}

int64_t ct_adapter_param_count(const ct_module_desc *m, ct_adapter_type type, int rank) {
    int64_t n = (int64_t)rank * (m->in + m->out);
    if (type == CT_ADAPTER_DORA)
        n += m->kind == CT_MODULE_LINEAR ? m->out : m->in;
    return n;
}

void ct_format_trainable_parameters(char *buf, size_t n, int64_t trainable, int64_t total) {
    double t = (double)trainable / 1e6, all = (double)total / 1e6;
    snprintf(buf, n, "Trainable parameters: %.3f%% (%.3fM/%.3fM)", all > 0 ? t * 100 / all : 0.0, t, all);
}
