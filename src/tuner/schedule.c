// Learning-rate schedules (mlx.optimizers.schedulers) with linear warmup.
#include <math.h>
#include <string.h>

#include "ctune/optim.h"

ct_schedule ct_schedule_constant(double lr) {
    ct_schedule s = {0};
    s.kind = CT_SCHED_CONSTANT;
    s.args[0] = lr;
    return s;
}

ct_status ct_schedule_from_config(ct_schedule *s, const char *name, const double *args, int n_args, int64_t warmup,
                                  double warmup_init, ct_error *err) {
    static const struct {
        const char *name;
        ct_schedule_kind kind;
        int min_args, max_args;
        const char *signature;
    } KINDS[] = {
        {"cosine_decay", CT_SCHED_COSINE_DECAY, 2, 3, "[init, decay_steps, end=0]"},
        {"linear_schedule", CT_SCHED_LINEAR_SCHEDULE, 3, 3, "[init, end, steps]"},
        {"exponential_decay", CT_SCHED_EXPONENTIAL_DECAY, 2, 2, "[init, decay_rate]"},
        {"step_decay", CT_SCHED_STEP_DECAY, 3, 3, "[init, decay_rate, step_size]"},
    };
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) {
        if (strcmp(name, KINDS[i].name) != 0)
            continue;
        if (n_args < KINDS[i].min_args || n_args > KINDS[i].max_args)
            return ct_fail(err, CT_ERR_INVALID, "lr_schedule: %s takes arguments %s, got %d", name,
                           KINDS[i].signature, n_args);
        s->kind = KINDS[i].kind;
        for (int j = 0; j < n_args; j++)
            s->args[j] = args[j];
        if ((s->kind == CT_SCHED_COSINE_DECAY && args[1] <= 0) || (s->kind == CT_SCHED_LINEAR_SCHEDULE && args[2] <= 0) ||
            (s->kind == CT_SCHED_STEP_DECAY && args[2] <= 0))
            return ct_fail(err, CT_ERR_INVALID, "lr_schedule: %s needs a positive step count", name);
        if (warmup < 0)
            return ct_fail(err, CT_ERR_INVALID, "lr_schedule: warmup must be >= 0, got %lld", (long long)warmup);
        s->warmup = warmup;
        s->warmup_init = warmup_init;
        return CT_OK;
    }
    return ct_fail(err, CT_ERR_INVALID,
                   "lr_schedule: unknown schedule '%s' (supported: cosine_decay, linear_schedule, exponential_decay, "
                   "step_decay)",
                   name);
}

static double base_lr(const ct_schedule *s, int64_t t) {
    const double *a = s->args;
    switch (s->kind) {
    case CT_SCHED_CONSTANT: return a[0];
    case CT_SCHED_COSINE_DECAY: {
        double k = (double)(t < (int64_t)a[1] ? t : (int64_t)a[1]);
        double decay = 0.5 * (1.0 + cos(M_PI * k / a[1]));
        return a[2] + decay * (a[0] - a[2]);
    }
    case CT_SCHED_LINEAR_SCHEDULE: {
        double k = (double)(t < (int64_t)a[2] ? t : (int64_t)a[2]);
        return k * ((a[1] - a[0]) / a[2]) + a[0];
    }
    case CT_SCHED_EXPONENTIAL_DECAY: return a[0] * pow(a[1], (double)t);
    case CT_SCHED_STEP_DECAY: return a[0] * pow(a[1], (double)(t / (int64_t)a[2]));
    }
    return a[0];
}

double ct_schedule_lr(const ct_schedule *s, int64_t step) {
    if (s->warmup > 0 && step < s->warmup)
        return s->warmup_init + (double)step * (s->args[0] - s->warmup_init) / (double)s->warmup;
    return base_lr(s, step - s->warmup);
}
