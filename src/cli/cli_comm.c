// cli_comm.c: what every data-parallel subcommand (lora, quant dwq) does
// around its run under mpirun (include/ctune/comm.h, docs/distributed.md):
// the --comm-timeout flag, the rank's setup (threads, quiet non-root ranks)
// and the end (errors name the rank; a failed rank stops the others).
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/log.h"

// --comm-timeout SECONDS (ctune's own, for runs under mpirun): taken out of
// argv before the mlx_lm.lora flags are parsed.
ct_status cli_take_comm_timeout(int *argc, char **argv, double *timeout, ct_error *err) {
    *timeout = CT_COMM_DEFAULT_TIMEOUT;
    int kept = 0;
    for (int i = 0; i < *argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--comm-timeout")) {
            if (i + 1 >= *argc)
                return ct_fail(err, CT_ERR_INVALID, "--comm-timeout needs a number of seconds");
            v = argv[++i];
        } else if (!strncmp(argv[i], "--comm-timeout=", 15)) {
            v = argv[i] + 15;
        } else {
            argv[kept++] = argv[i];
            continue;
        }
        char *end;
        errno = 0;
        *timeout = strtod(v, &end);
        if (end == v || *end || errno || !(*timeout > 0))
            return ct_fail(err, CT_ERR_INVALID, "--comm-timeout: expected seconds > 0, got \"%s\"", v);
    }
    *argc = kept;
    return CT_OK;
}

// One rank of several: one OpenMP thread per rank unless OMP_NUM_THREADS
// says otherwise (the ranks share the cores), and only rank 0 talks on stdout.
static void setup_rank(const ct_comm *comm) {
    if (ct_comm_size(comm) == 1)
        return;
    if (!getenv("OMP_NUM_THREADS"))
        omp_set_num_threads(1);
    if (ct_comm_rank(comm) > 0) {
        if (!freopen("/dev/null", "w", stdout))
            ct_log_warn("rank %d: cannot silence stdout", ct_comm_rank(comm));
        if (ct_log_get_level() > CT_LOG_WARN)
            ct_log_set_level(CT_LOG_WARN);
    }
}

ct_status cli_comm_start(ct_comm *comm, double timeout, ct_error *err) {
    CT_TRY(ct_comm_init(comm, timeout, err));
    setup_rank(comm);
    return CT_OK;
}

int cli_comm_finish(ct_comm *comm, ct_status st, ct_error *err) {
    int world = ct_comm_size(comm), rc = 0;
    if (st != CT_OK) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rank %d:", ct_comm_rank(comm));
        if (world > 1 && strncmp(err->msg, prefix, strlen(prefix)) != 0) // comm errors name the rank already
            ct_error_context(err, "rank %d", ct_comm_rank(comm));
        rc = cli_report(err);
    }
    fflush(stdout);
    ct_comm_finalize(comm, rc != 0 && world > 1); // a failed rank stops the others (no hang)
    return rc;
}
