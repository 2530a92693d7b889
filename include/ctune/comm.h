// comm.h: collective communication between the processes (ranks) of a
// data-parallel run. The trainer sums gradients, token counts and losses
// across ranks through this interface; each backend (one process, MPI, later
// NCCL) is a ct_comm filled with its function pointers.
//
// Every collective is called by every rank in the same order with the same
// element count. Sums are elementwise and in place: after the call every rank
// holds the same sum. A collective that does not complete within `timeout`
// seconds (a rank died or is stuck) fails with a message naming this rank and
// the operation, instead of hanging; the caller should then finalize with
// abort = true.
//
// Callers use the ct_comm_* wrappers below: they accept comm == NULL (one
// process: rank 0 of 1, sums are no-ops) and keep the byte and time counters.
#ifndef CTUNE_COMM_H
#define CTUNE_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctune/error.h"

// Seconds a collective may wait by default (checkpoint writes on rank 0 of a
// large model are the longest legitimate wait).
#define CT_COMM_DEFAULT_TIMEOUT 600.0

typedef struct ct_comm_stats {
    uint64_t bytes_reduced; // payload bytes passed to all-reduce calls (per rank)
    uint64_t calls;         // collectives made
    double seconds;         // wall time spent inside collectives (waiting included)
} ct_comm_stats;

typedef struct ct_comm ct_comm;
struct ct_comm {
    const char *name; // "single" or "mpi"
    int (*rank)(const ct_comm *c);
    int (*size)(const ct_comm *c);
    // buf (n,) <- the elementwise sum of every rank's buf.
    ct_status (*allreduce_sum_f32)(ct_comm *c, float *buf, size_t n, ct_error *err);
    ct_status (*allreduce_sum_f64)(ct_comm *c, double *buf, size_t n, ct_error *err);
    ct_status (*barrier)(ct_comm *c, ct_error *err);
    // Ends communication. abort = true (after an error on any rank) stops
    // every rank of the job at once (MPI_Abort ends this process too); false
    // waits for the others to finalize.
    void (*finalize)(ct_comm *c, bool abort);
    void *impl;           // the backend's state
    double timeout;       // seconds per collective; <= 0 waits forever
    ct_comm_stats stats;  // updated by the wrappers
};

// Picks the backend: MPI when this binary was built with it (CT_HAVE_MPI) and
// the process was started by mpirun/mpiexec (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
// PMIX_RANK in the environment), else one process. Started by a launcher with
// more than one process but built without MPI is an error (every process would
// train alone and write the same files).
ct_status ct_comm_init(ct_comm *c, double timeout_seconds, ct_error *err);
// The one-process backend (never fails).
void ct_comm_init_single(ct_comm *c);
// The MPI backend (MPI_Init_thread, funneled). CT_ERR_UNSUPPORTED when built
// without MPI.
ct_status ct_comm_init_mpi(ct_comm *c, double timeout_seconds, ct_error *err);
// True when the environment says a launcher started this process; *world gets
// the process count it announces (1 when unknown).
bool ct_comm_launched(int *world);

// Wrappers (comm may be NULL: one process).
int ct_comm_rank(const ct_comm *c);
int ct_comm_size(const ct_comm *c);
ct_status ct_comm_allreduce_sum_f32(ct_comm *c, float *buf, size_t n, ct_error *err);
ct_status ct_comm_allreduce_sum_f64(ct_comm *c, double *buf, size_t n, ct_error *err);
ct_status ct_comm_barrier(ct_comm *c, ct_error *err);
void ct_comm_finalize(ct_comm *c, bool abort);

#endif
