// rope.c: inverse frequencies of the RoPE variants, following transformers'
// modeling_rope_utils (fp32 results; computed in double, then rounded).
#include "ctune/rope.h"

#include <math.h>
#include <string.h>

int ct_rope_type_from_name(const char *name, ct_rope_type *out) {
    static const struct {
        const char *name;
        ct_rope_type type;
    } names[] = {{"default", CT_ROPE_DEFAULT}, {"linear", CT_ROPE_LINEAR}, {"dynamic", CT_ROPE_DYNAMIC},
                 {"llama3", CT_ROPE_LLAMA3},   {"yarn", CT_ROPE_YARN},     {"longrope", CT_ROPE_LONGROPE},
                 {"su", CT_ROPE_LONGROPE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].type;
            return 1;
        }
    return 0;
}

int ct_rope_rot_dims(const ct_rope_params *p) {
    double f = p->partial_rotary_factor > 0 ? p->partial_rotary_factor : 1.0;
    return ((int)(p->head_dim * f)) & ~1;
}

// theta^(-2i/dim) for i < dim/2
static void base_freqs(double *f, double theta, int dim) {
    for (int i = 0; i < dim / 2; i++)
        f[i] = 1.0 / pow(theta, (double)(2 * i) / dim);
}

static double yarn_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * log(scale) + 1.0; }

static double yarn_correction_dim(double rotations, int dim, double base, int max_pos) {
    return (dim * log(max_pos / (rotations * 2 * M_PI))) / (2 * log(base));
}

static void yarn(const ct_rope_params *p, int dim, double factor, double *f, double *scaling) {
    double beta_fast = p->beta_fast > 0 ? p->beta_fast : 32, beta_slow = p->beta_slow > 0 ? p->beta_slow : 1;
    int omax = p->original_max_position_embeddings;
    if (p->attention_factor > 0)
        *scaling = p->attention_factor;
    else if (p->mscale > 0 && p->mscale_all_dim > 0)
        *scaling = yarn_mscale(factor, p->mscale) / yarn_mscale(factor, p->mscale_all_dim);
    else
        *scaling = yarn_mscale(factor, 1.0);
    double low = yarn_correction_dim(beta_fast, dim, p->theta, omax);
    double high = yarn_correction_dim(beta_slow, dim, p->theta, omax);
    if (!p->yarn_no_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = low > 0 ? low : 0;
    high = high < dim - 1 ? high : dim - 1;
    if (low == high)
        high += 0.001;
    for (int i = 0; i < dim / 2; i++) {
        float ramp = (float)(((float)i - low) / (high - low)); // fp32 ramp, as transformers
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extra = 1.0 - ramp; // weight of extrapolation
        f[i] = (f[i] / factor) * (1 - extra) + f[i] * extra;
    }
}

static void llama3(const ct_rope_params *p, int dim, double *f) {
    double old = p->original_max_position_embeddings, lo = p->low_freq_factor, hi = p->high_freq_factor;
    double lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < dim / 2; i++) {
        double wl = 2 * M_PI / f[i];
        if (wl > lo_wl) {
            f[i] /= p->factor;
        } else if (!(wl < hi_wl)) {
            double smooth = (old / wl - lo) / (hi - lo);
            f[i] = (1 - smooth) * f[i] / p->factor + smooth * f[i];
        }
    }
}

ct_status ct_rope_init(const ct_rope_params *p, int seq_len, float *inv_freq, float *attn_scaling, ct_error *err) {
    int dim = ct_rope_rot_dims(p);
    if (dim <= 0 || dim > 1024 || p->theta <= 0)
        return ct_fail(err, CT_ERR_INVALID, "rope: head_dim %d (rotated %d) and rope_theta %g are not usable",
                       p->head_dim, dim, p->theta);
    int needs_orig = p->type == CT_ROPE_LLAMA3 || p->type == CT_ROPE_YARN || p->type == CT_ROPE_LONGROPE;
    if (needs_orig && p->original_max_position_embeddings <= 0)
        return ct_fail(err, CT_ERR_INVALID, "rope_scaling: original_max_position_embeddings is required");
    double factor = p->factor;
    if (factor <= 0 && (p->type == CT_ROPE_YARN || p->type == CT_ROPE_LONGROPE))
        factor = (double)p->max_position_embeddings / p->original_max_position_embeddings;
    if (factor <= 0 && p->type != CT_ROPE_DEFAULT)
        return ct_fail(err, CT_ERR_INVALID, "rope_scaling: factor is required");
    if (p->type == CT_ROPE_LLAMA3 && (p->low_freq_factor <= 0 || p->high_freq_factor <= p->low_freq_factor))
        return ct_fail(err, CT_ERR_INVALID, "rope_scaling: llama3 needs 0 < low_freq_factor < high_freq_factor");
    if (p->type == CT_ROPE_LONGROPE && (!p->long_factor || !p->short_factor))
        return ct_fail(err, CT_ERR_INVALID, "rope_scaling: longrope needs long_factor and short_factor");
    if (p->type == CT_ROPE_DYNAMIC && p->max_position_embeddings <= 0)
        return ct_fail(err, CT_ERR_INVALID, "rope: dynamic scaling needs max_position_embeddings");

    double f[512], scaling = 1.0, theta = p->theta;
    if (p->type == CT_ROPE_DYNAMIC) {
        int max_pos = p->max_position_embeddings, L = seq_len > max_pos ? seq_len : max_pos;
        theta *= pow(factor * L / max_pos - (factor - 1), (double)dim / (dim - 2));
    }
    base_freqs(f, theta, dim);
    switch (p->type) {
    case CT_ROPE_LINEAR:
        for (int i = 0; i < dim / 2; i++)
            f[i] /= factor;
        break;
    case CT_ROPE_LLAMA3: llama3(p, dim, f); break;
    case CT_ROPE_YARN: yarn(p, dim, factor, f, &scaling); break;
    case CT_ROPE_LONGROPE: {
        const double *ext = seq_len > p->original_max_position_embeddings ? p->long_factor : p->short_factor;
        for (int i = 0; i < dim / 2; i++)
            f[i] /= ext[i];
        if (p->attention_factor > 0)
            scaling = p->attention_factor;
        else if (factor > 1.0)
            scaling = sqrt(1 + log(factor) / log((double)p->original_max_position_embeddings));
        break;
    }
    default: break;
    }
    for (int i = 0; i < dim / 2; i++)
        inv_freq[i] = (float)f[i];
    *attn_scaling = (float)scaling;
    return CT_OK;
}
