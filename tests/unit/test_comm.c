// The one-process backend of comm.h, the NULL-comm wrappers, and the backend
// choice from the launcher's environment variables.
#include <stdlib.h>

#include "ctune/comm.h"
#include "harness.h"

static const char *const LAUNCH_VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMIX_RANK"};

// Unsets the launcher variables, saving them into saved[] (NULL when unset).
static void clear_launch_env(char *saved[4]) {
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(LAUNCH_VARS[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(LAUNCH_VARS[i]);
    }
}

static void restore_launch_env(char *saved[4]) {
    for (int i = 0; i < 4; i++) {
        if (saved[i])
            setenv(LAUNCH_VARS[i], saved[i], 1);
        else
            unsetenv(LAUNCH_VARS[i]);
        free(saved[i]);
    }
}

TEST(comm_single_sums_are_identity_and_counted) {
    ct_comm c;
    ct_error err;
    ct_comm_init_single(&c);
    float f[3] = {1.5f, -2, 3};
    double d[2] = {0.25, 1e300};
    CHECK_STREQ(c.name, "single");
    CHECK_EQ(ct_comm_rank(&c), 0);
    CHECK_EQ(ct_comm_size(&c), 1);
    CHECK_OK(ct_comm_allreduce_sum_f32(&c, f, 3, &err), &err);
    CHECK_OK(ct_comm_allreduce_sum_f64(&c, d, 2, &err), &err);
    CHECK_OK(ct_comm_barrier(&c, &err), &err);
    CHECK(f[0] == 1.5f && f[1] == -2 && f[2] == 3);
    CHECK(d[0] == 0.25 && d[1] == 1e300);
    CHECK_EQ(c.stats.bytes_reduced, 3 * sizeof(float) + 2 * sizeof(double));
    CHECK_EQ(c.stats.calls, 3);
    CHECK(c.stats.seconds >= 0);
    ct_comm_finalize(&c, false);
    CHECK(c.finalize == NULL); // finalize once: a second call is a no-op
    ct_comm_finalize(&c, false);
}

TEST(comm_null_is_one_process) {
    ct_error err;
    double d = 7;
    CHECK_EQ(ct_comm_rank(NULL), 0);
    CHECK_EQ(ct_comm_size(NULL), 1);
    CHECK_OK(ct_comm_allreduce_sum_f64(NULL, &d, 1, &err), &err);
    CHECK_OK(ct_comm_barrier(NULL, &err), &err);
    CHECK(d == 7);
    ct_comm_finalize(NULL, true);
}

TEST(comm_init_without_launcher_is_single) {
    char *saved[4];
    clear_launch_env(saved);
    ct_comm c;
    ct_error err;
    int world = 0;
    CHECK(!ct_comm_launched(&world));
    CHECK_EQ(world, 1);
    ct_status st = ct_comm_init(&c, 12.5, &err);
    restore_launch_env(saved);
    CHECK_OK(st, &err);
    CHECK_STREQ(c.name, "single");
    CHECK_EQ(ct_comm_size(&c), 1);
    CHECK(c.timeout == 12.5);
    ct_comm_finalize(&c, false);
}

TEST(comm_launcher_environment_is_read) {
    char *saved[4];
    clear_launch_env(saved);
    int w1 = 0, w2 = 0, w3 = 0;
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    bool ompi = ct_comm_launched(&w1);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMI_SIZE", "5", 1);
    bool pmi = ct_comm_launched(&w2);
    unsetenv("PMI_SIZE");
    setenv("PMIX_RANK", "0", 1);
    bool pmix = ct_comm_launched(&w3);
#ifndef CT_HAVE_MPI
    // Built without MPI but started as one of several processes: an error.
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    ct_comm c;
    ct_error err;
    ct_status st = ct_comm_init(&c, 1, &err);
    restore_launch_env(saved);
    CHECK(st == CT_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "built without MPI");
    CHECK(ct_comm_init_mpi(&c, 1, &err) == CT_ERR_UNSUPPORTED);
#else
    restore_launch_env(saved);
#endif
    CHECK(ompi && w1 == 3);
    CHECK(pmi && w2 == 5);
    CHECK(pmix && w3 == 1);
}
