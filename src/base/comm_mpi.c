// comm_mpi.c: the MPI backend of comm.h (compiled for real only when the
// Makefile found mpicc and defined CT_HAVE_MPI). Collectives are non-blocking
// (MPI_Iallreduce, MPI_Ibarrier) polled against a deadline, so a dead or stuck
// rank gives a clear error on the others instead of a hang.
#include "ctune/comm.h"

#ifdef CT_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <time.h>

#include "ctune/log.h"

typedef struct mpi_state {
    int rank, size;
} mpi_state;

static int mpi_rank(const ct_comm *c) { return ((const mpi_state *)c->impl)->rank; }
static int mpi_size(const ct_comm *c) { return ((const mpi_state *)c->impl)->size; }

static ct_status mpi_failed(const ct_comm *c, int rc, const char *what, ct_error *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        len = 0;
    msg[len] = '\0';
    return ct_fail(err, CT_ERR_IO, "rank %d: MPI %s failed: %s", mpi_rank(c), what, len ? msg : "unknown error");
}

// Polls req until it completes: spins briefly (small sums finish in
// microseconds), then sleeps with a growing pause of at most 1 ms so a
// waiting rank leaves the cores to the ranks still computing.
static ct_status wait_request(ct_comm *c, MPI_Request *req, const char *what, ct_error *err) {
    double start = ct_now();
    long pause_ns = 1000;
    for (int spins = 0;; spins++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_failed(c, rc, what, err);
        if (done)
            return CT_OK;
        double waited = ct_now() - start;
        if (c->timeout > 0 && waited > c->timeout)
            return ct_fail(err, CT_ERR_IO,
                           "rank %d: %s did not complete within %.0f s (--comm-timeout): another rank died or is "
                           "stuck",
                           mpi_rank(c), what, c->timeout);
        if (spins < 1000)
            continue;
        nanosleep(&(struct timespec){0, pause_ns}, NULL);
        if (pause_ns < 1000000)
            pause_ns *= 2;
    }
}

static ct_status mpi_sum(ct_comm *c, void *buf, size_t n, size_t elem, MPI_Datatype type, const char *what,
                         ct_error *err) {
    // MPI counts are int: large buffers go in chunks.
    for (size_t lo = 0; lo < n; lo += (size_t)INT_MAX) {
        size_t k = n - lo < (size_t)INT_MAX ? n - lo : (size_t)INT_MAX;
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + lo * elem, (int)k, type, MPI_SUM, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS)
            return mpi_failed(c, rc, what, err);
        CT_TRY(wait_request(c, &req, what, err));
    }
    return CT_OK;
}

static ct_status mpi_sum_f32(ct_comm *c, float *buf, size_t n, ct_error *err) {
    return mpi_sum(c, buf, n, sizeof *buf, MPI_FLOAT, "all-reduce (f32)", err);
}

static ct_status mpi_sum_f64(ct_comm *c, double *buf, size_t n, ct_error *err) {
    return mpi_sum(c, buf, n, sizeof *buf, MPI_DOUBLE, "all-reduce (f64)", err);
}

static ct_status mpi_barrier(ct_comm *c, ct_error *err) {
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS)
        return mpi_failed(c, rc, "barrier", err);
    return wait_request(c, &req, "barrier", err);
}

static void mpi_finalize(ct_comm *c, bool abort) {
    free(c->impl);
    c->impl = NULL;
    if (abort)
        MPI_Abort(MPI_COMM_WORLD, 1);
    else
        MPI_Finalize();
}

ct_status ct_comm_init_mpi(ct_comm *c, double timeout_seconds, ct_error *err) {
    int provided;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return ct_fail(err, CT_ERR_IO, "MPI_Init_thread failed (code %d)", rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_state *s = malloc(sizeof *s);
    if (!s) {
        MPI_Abort(MPI_COMM_WORLD, 1);
        return ct_fail(err, CT_ERR_NOMEM, "out of memory");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s->size);
    *c = (ct_comm){.name = "mpi",
                   .rank = mpi_rank,
                   .size = mpi_size,
                   .allreduce_sum_f32 = mpi_sum_f32,
                   .allreduce_sum_f64 = mpi_sum_f64,
                   .barrier = mpi_barrier,
                   .finalize = mpi_finalize,
                   .impl = s,
                   .timeout = timeout_seconds};
    return CT_OK;
}

#else

ct_status ct_comm_init_mpi(ct_comm *c, double timeout_seconds, ct_error *err) {
    return ct_fail(err, CT_ERR_UNSUPPORTED, "this ctune was built without MPI");
}

#endif
