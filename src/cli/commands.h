// commands.h: the CLI's subcommands, one file each under src/cli/.
// Each returns the process exit status (0 ok, 1 error, 2 usage error).
#ifndef CTUNE_CLI_COMMANDS_H
#define CTUNE_CLI_COMMANDS_H

#include <stdbool.h>

#include "ctune/comm.h"
#include "ctune/error.h"

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_lora(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
int cmd_quant(int argc, char **argv);
// Lists a .safetensors file's tensors (info_tensors.c); json: machine-readable.
int info_tensors_file(const char *path, bool json);

// Prints "error: <msg>" to stderr and returns 1.
int cli_report(const ct_error *err);
// Prints "error: <fmt>" plus a hint to run --help, returns 2.
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Data-parallel runs (cli_comm.c). --comm-timeout SECONDS is taken out of
// argv (default CT_COMM_DEFAULT_TIMEOUT); errors are usage errors.
ct_status cli_take_comm_timeout(int *argc, char **argv, double *timeout, ct_error *err);
// ct_comm_init, then one OpenMP thread per rank (unless OMP_NUM_THREADS is
// set) and stdout/info logs on rank 0 only.
ct_status cli_comm_start(ct_comm *comm, double timeout, ct_error *err);
// Reports st's error (naming the rank when there are several) and finalizes
// (aborting the job on error, so no rank hangs). Returns the exit status.
int cli_comm_finish(ct_comm *comm, ct_status st, ct_error *err);

#endif
