// rtn.c: round-to-nearest quantization choices, as mlx-lm's quantize_model
// and mlx_lm.convert's mixed recipes make them. The quantization itself is
// ct_affine_quantize (affine.c, bit-exact with mlx.core.quantize).
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ctune/convert.h"

static const struct {
    const char *name;
    ct_quant_recipe recipe;
    int low, high;
} RECIPES[] = {
    {"mixed_2_6", CT_RECIPE_MIXED_2_6, 2, 6},
    {"mixed_3_4", CT_RECIPE_MIXED_3_4, 3, 4},
    {"mixed_3_6", CT_RECIPE_MIXED_3_6, 3, 6},
    {"mixed_4_6", CT_RECIPE_MIXED_4_6, 4, 6},
};
#define N_RECIPES (sizeof RECIPES / sizeof RECIPES[0])

bool ct_quant_recipe_parse(const char *name, ct_quant_recipe *out) {
    for (size_t i = 0; i < N_RECIPES; i++)
        if (!strcmp(name, RECIPES[i].name)) {
            *out = RECIPES[i].recipe;
            return true;
        }
    return false;
}

const char *ct_quant_recipe_name(ct_quant_recipe r) {
    for (size_t i = 0; i < N_RECIPES; i++)
        if (RECIPES[i].recipe == r)
            return RECIPES[i].name;
    return "none";
}

bool ct_rtn_is_quantizable(const char *tensor_name, int ndim, ct_dtype dtype, char *module, size_t n) {
    size_t len = strlen(tensor_name), k = strlen(".weight");
    if (ndim != 2 || !ct_dtype_is_float(dtype) || len <= k || strcmp(tensor_name + len - k, ".weight") != 0)
        return false;
    if (len - k >= n)
        return false;
    memcpy(module, tensor_name, len - k);
    module[len - k] = '\0';
    return true;
}

// The layer index of a module path: its first all-digit component
// ("model.layers.12.mlp.down_proj" -> 12), 0 when there is none (embed_tokens,
// lm_head), as mlx-lm's predicate reads it.
static long layer_index(const char *path) {
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, '.');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        size_t i = 0;
        while (i < n && isdigit((unsigned char)p[i]))
            i++;
        if (n > 0 && i == n) {
            long v = 0;
            for (size_t j = 0; j < n; j++)
                v = v * 10 + (p[j] - '0');
            return v;
        }
        p += n + (end ? 1 : 0);
    }
    return 0;
}

static int recipe_bits(ct_quant_recipe r, const char *path, int64_t num_layers) {
    int low = 4, high = 6;
    for (size_t i = 0; i < N_RECIPES; i++)
        if (RECIPES[i].recipe == r)
            low = RECIPES[i].low, high = RECIPES[i].high;
    long idx = layer_index(path), L = (long)num_layers;
    bool more = idx < L / 8 || idx >= 7 * L / 8 || (idx - L / 8) % 3 == 2;
    bool v = strstr(path, "v_proj") || strstr(path, "v_a_proj") || strstr(path, "v_b_proj");
    if ((v || strstr(path, "down_proj")) && more)
        return high;
    if (strstr(path, "lm_head"))
        return high;
    return low;
}

ct_quant_spec ct_rtn_module_spec(const ct_rtn_params *p, const char *module_path, int64_t in_features,
                                 int64_t num_layers, bool *override) {
    ct_quant_spec s = {.quantized = false, .bits = p->bits, .group_size = p->group_size};
    snprintf(s.mode, sizeof s.mode, "affine");
    *override = false;
    if (p->group_size <= 0 || in_features % p->group_size != 0)
        return s;
    s.quantized = true;
    if (p->recipe != CT_RECIPE_NONE) {
        s.bits = recipe_bits(p->recipe, module_path, num_layers);
        *override = true;
    }
    return s;
}
