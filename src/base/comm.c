// comm.c: the one-process backend of comm.h, the backend choice, and the
// wrappers that keep the counters (the MPI backend is comm_mpi.c).
#include "ctune/comm.h"

#include <stdlib.h>

#include "ctune/log.h"

static int single_rank(const ct_comm *c) { return 0; }
static int single_size(const ct_comm *c) { return 1; }
static ct_status single_sum_f32(ct_comm *c, float *buf, size_t n, ct_error *err) { return CT_OK; }
static ct_status single_sum_f64(ct_comm *c, double *buf, size_t n, ct_error *err) { return CT_OK; }
static ct_status single_barrier(ct_comm *c, ct_error *err) { return CT_OK; }
static void single_finalize(ct_comm *c, bool abort) {}

void ct_comm_init_single(ct_comm *c) {
    *c = (ct_comm){.name = "single",
                   .rank = single_rank,
                   .size = single_size,
                   .allreduce_sum_f32 = single_sum_f32,
                   .allreduce_sum_f64 = single_sum_f64,
                   .barrier = single_barrier,
                   .finalize = single_finalize,
                   .timeout = CT_COMM_DEFAULT_TIMEOUT};
}

bool ct_comm_launched(int *world) {
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    *world = 1;
    for (size_t i = 0; i < sizeof size_vars / sizeof *size_vars; i++) {
        const char *v = getenv(size_vars[i]);
        if (v && atoi(v) > 0) {
            *world = atoi(v);
            return true;
        }
    }
    return getenv("PMIX_RANK") != NULL;
}

ct_status ct_comm_init(ct_comm *c, double timeout_seconds, ct_error *err) {
    int world;
    ct_comm_init_single(c);
    c->timeout = timeout_seconds;
    if (!ct_comm_launched(&world))
        return CT_OK;
    ct_status st = ct_comm_init_mpi(c, timeout_seconds, err);
    if (st == CT_ERR_UNSUPPORTED && world <= 1) {
        ct_comm_init_single(c);
        c->timeout = timeout_seconds;
        return CT_OK;
    }
    if (st == CT_ERR_UNSUPPORTED)
        return ct_fail(err, CT_ERR_UNSUPPORTED,
                       "started by an MPI launcher with %d processes, but this ctune was built without MPI "
                       "(install libopenmpi-dev and rebuild; see docs/distributed.md)",
                       world);
    return st;
}

int ct_comm_rank(const ct_comm *c) { return c ? c->rank(c) : 0; }
int ct_comm_size(const ct_comm *c) { return c ? c->size(c) : 1; }

ct_status ct_comm_allreduce_sum_f32(ct_comm *c, float *buf, size_t n, ct_error *err) {
    if (!c)
        return CT_OK;
    double t0 = ct_now();
    ct_status st = c->allreduce_sum_f32(c, buf, n, err);
    c->stats.seconds += ct_now() - t0;
    c->stats.bytes_reduced += n * sizeof *buf;
    c->stats.calls++;
    return st;
}

ct_status ct_comm_allreduce_sum_f64(ct_comm *c, double *buf, size_t n, ct_error *err) {
    if (!c)
        return CT_OK;
    double t0 = ct_now();
    ct_status st = c->allreduce_sum_f64(c, buf, n, err);
    c->stats.seconds += ct_now() - t0;
    c->stats.bytes_reduced += n * sizeof *buf;
    c->stats.calls++;
    return st;
}

ct_status ct_comm_barrier(ct_comm *c, ct_error *err) {
    if (!c)
        return CT_OK;
    double t0 = ct_now();
    ct_status st = c->barrier(c, err);
    c->stats.seconds += ct_now() - t0;
    c->stats.calls++;
    return st;
}

void ct_comm_finalize(ct_comm *c, bool abort) {
    if (c && c->finalize)
        c->finalize(c, abort);
    if (c)
        c->finalize = NULL;
}
