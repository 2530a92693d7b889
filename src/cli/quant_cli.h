// quant_cli.h: the `ctune quant <method>` subcommands (one file each,
// src/cli/quant_<method>.c) and the flag parsing they share. argv[0] is
// "quant", argv[1] the method; options start at argv[2].
#ifndef CTUNE_CLI_QUANT_H
#define CTUNE_CLI_QUANT_H

#include <stdbool.h>
#include <stddef.h>

#include "ctune/gptq.h" // ct_calib_opts

int cmd_quant_gptq(int argc, char **argv);
int cmd_quant_dynamic(int argc, char **argv);
int cmd_quant_dwq(int argc, char **argv);
int cmd_quant_awq(int argc, char **argv);

// An integer flag value in [min, 2^30]: 0 and *out set, or a usage error (2).
int quant_parse_long(const char *flag, const char *v, long min, long *out);
// An integer flag: its name, where the value goes, its minimum (a minimum
// below 0 means a count where -1 is "all" and 0 is refused).
typedef struct quant_int_flag {
    const char *name;
    int *dst;
    long min;
} quant_int_flag;
// When a is one of flags[0..n), parses v into it and sets *matched; returns 0
// or a usage error (2).
int quant_int_flags(const quant_int_flag *flags, size_t n, const char *a, const char *v, bool *matched);
// The flags every method takes, as in mlx-lm: --model (-m), --mlx-path,
// --data, --dtype, --seed. When a is one of them, stores v (parsed for
// --seed) and sets *matched; returns 0 or a usage error (2).
typedef struct quant_common_flags {
    const char **model, **mlx_path, **dtype;
    ct_calib_opts *calib;
} quant_common_flags;
int quant_common_flag(const quant_common_flags *f, const char *a, const char *v, bool *matched);
// A finite floating-point flag value: 0 and *out set, or a usage error (2).
int quant_parse_double(const char *flag, const char *v, double *out);

#endif
