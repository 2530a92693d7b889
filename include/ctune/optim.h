// optim.h: optimizers and learning-rate schedules with MLX's semantics
// (mlx.optimizers), fp32 state whatever the parameter storage.
//
// One optimizer update (MLX's apply_gradients): the caller computes
// lr = schedule(step) with the step count BEFORE the update, then
// ct_optimizer_update() increments step and applies each parameter's rule
// (Adam's bias correction and Adafactor see the incremented step).
//   adam:      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w -= lr m / (sqrt v + eps)
//              (bias_correction: w -= (lr/(1-b1^t)) m / (sqrt(v)/sqrt(1-b2^t) + eps))
//   adamw:     w *= 1 - lr wd, then adam
//   sgd:       g += wd w; v = mu v + (1-dampening) g; update = nesterov ? g + mu v : v
//   adafactor: factored second moments for ndim >= 2, relative step by default
//   muon:      momentum + Newton-Schulz orthogonalisation for ndim >= 2
#ifndef CTUNE_OPTIM_H
#define CTUNE_OPTIM_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctune/error.h"

typedef enum ct_optim_kind { CT_OPT_ADAM, CT_OPT_ADAMW, CT_OPT_SGD, CT_OPT_ADAFACTOR, CT_OPT_MUON } ct_optim_kind;

// Hyperparameters are doubles, as Python floats are in MLX; the update rules
// round each scalar coefficient to f32 where MLX does.
typedef struct ct_optim_config {
    ct_optim_kind kind;
    double betas[2];       // adam, adamw
    double eps;            // adam, adamw
    bool bias_correction; // adam, adamw
    double weight_decay;   // adamw (0.01), sgd (0), adafactor (0), muon (0.01)
    double momentum;       // sgd (0), muon (0.95)
    double dampening;      // sgd
    bool nesterov;        // sgd (false), muon (true)
    double eps_pair[2];    // adafactor (1e-30, 1e-3)
    double clip_threshold; // adafactor
    double decay_rate;     // adafactor
    double beta_1;         // adafactor first moment; used when has_beta_1
    bool has_beta_1;
    bool scale_parameter, relative_step, warmup_init; // adafactor
    int ns_steps;         // muon
} ct_optim_config;

// MLX's defaults for kind. Names: "adam", "adamw", "sgd", "adafactor", "muon".
ct_optim_config ct_optim_defaults(ct_optim_kind kind);
ct_status ct_optim_kind_from_name(const char *name, ct_optim_kind *out, ct_error *err);
const char *ct_optim_kind_name(ct_optim_kind kind);
// Applies optimizer_config keys for this optimizer (MLX constructor argument names:
// betas, eps, bias_correction, weight_decay, momentum, dampening, nesterov,
// clip_threshold, decay_rate, beta_1, scale_parameter, relative_step, warmup_init,
// ns_steps). Unknown keys and wrong types are errors naming the key.
ct_status ct_optim_config_apply_json(ct_optim_config *c, const cJSON *obj, ct_error *err);

// A trainable parameter: fp32 weights and gradient of n elements, logical shape
// (rows, cols) for 2-D parameters (cols = n for 1-D, rows = 1 with ndim = 1).
typedef struct ct_optim_param {
    float *w;
    float *g; // gradient (the trainer zeroes and scales it; the optimizer only reads it)
    int ndim;
    int64_t rows, cols;
} ct_optim_param;

typedef struct ct_optim_state ct_optim_state; // per-parameter state, internal

typedef struct ct_optimizer {
    ct_optim_config cfg;
    uint64_t step; // updates applied so far
    int n_params;
    ct_optim_state *state;
} ct_optimizer;

// Allocates zeroed state for n parameters with the given shapes (w/g pointers unused here).
ct_status ct_optimizer_init(ct_optimizer *o, const ct_optim_config *cfg, const ct_optim_param *params, int n,
                            ct_error *err);
void ct_optimizer_free(ct_optimizer *o);
// One update of every parameter with learning rate lr (ignored by relative-step Adafactor).
void ct_optimizer_update(ct_optimizer *o, float lr, ct_optim_param *params);

// The state buffers of parameter i, for checkpoints: up to 3 named fp32 arrays
// ("m", "v", "exp_avg_sq_row", ...). Returns how many.
int ct_optimizer_state_buffers(const ct_optimizer *o, int i, const char *names[3], float *bufs[3], int64_t lens[3]);

// Scales gradients so their global L2 norm is at most max_norm (MLX's clip_grad_norm:
// g * max_norm / (norm + 1e-6) when norm >= max_norm). Returns the norm before clipping.
double ct_clip_grad_norm(float *const *grads, const int64_t *lens, int n, double max_norm);

// Learning-rate schedules (mlx.optimizers.schedulers) with optional linear warmup.
typedef enum ct_schedule_kind {
    CT_SCHED_CONSTANT,
    CT_SCHED_COSINE_DECAY,      // (init, decay_steps, end=0)
    CT_SCHED_LINEAR_SCHEDULE,   // (init, end, steps)
    CT_SCHED_EXPONENTIAL_DECAY, // (init, decay_rate)
    CT_SCHED_STEP_DECAY,        // (init, decay_rate, step_size)
} ct_schedule_kind;

typedef struct ct_schedule {
    ct_schedule_kind kind;
    double args[3];
    int64_t warmup;     // linear warmup steps (0: none)
    double warmup_init; // lr at step 0 of the warmup
} ct_schedule;

ct_schedule ct_schedule_constant(double lr);
// From an lr_schedule config: name, arguments, warmup, warmup_init. Errors name the problem.
ct_status ct_schedule_from_config(ct_schedule *s, const char *name, const double *args, int n_args, int64_t warmup,
                                  double warmup_init, ct_error *err);
// Learning rate for the update with 0-based index step. With warmup W, steps
// 0..W ramp linearly from warmup_init to init, and step W+k uses the schedule at
// k: unlike MLX (whose join repeats init at step W+1), there is no flat step.
double ct_schedule_lr(const ct_schedule *s, int64_t step);

#endif
