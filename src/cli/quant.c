// ctune quant <method>: post-training quantization with calibration data.
// Dispatches to one file per method (quant_<method>.c).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "quant_cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} METHODS[] = {
    {"gptq", cmd_quant_gptq, "GPTQ: error-compensated rounding with calibration Hessians (mlx_lm.gptq)"},
    {"awq", cmd_quant_awq, "AWQ: activation-aware channel scaling and clipping (mlx_lm.awq)"},
    {"dwq", cmd_quant_dwq, "DWQ: scales, biases and norms learned by distillation from the teacher (mlx_lm.dwq)"},
    {"dynamic", cmd_quant_dynamic, "mixed precision for a target bits per weight from KL sensitivities (mlx_lm.dynamic_quant)"},
};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0])

static void usage(FILE *f) {
    fprintf(f, "usage: ctune quant <method> --model M [options]   (ctune quant <method> --help for its options)\n");
    for (size_t i = 0; i < N_METHODS; i++)
        fprintf(f, "  %-8s %s\n", METHODS[i].name, METHODS[i].summary);
}

int quant_parse_long(const char *flag, const char *v, long min, long *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < min || n > 1L << 30)
        return cli_usage_error("quant", "%s: '%s' is not an integer >= %ld", flag, v, min);
    *out = n;
    return 0;
}

int quant_common_flag(const quant_common_flags *f, const char *a, const char *v, bool *matched) {
    *matched = true;
    if (!strcmp(a, "--model") || !strcmp(a, "-m"))
        *f->model = v;
    else if (!strcmp(a, "--mlx-path"))
        *f->mlx_path = v;
    else if (!strcmp(a, "--data"))
        f->calib->data = v;
    else if (!strcmp(a, "--dtype"))
        *f->dtype = v;
    else if (!strcmp(a, "--seed")) {
        long n;
        int rc = quant_parse_long(a, v, 0, &n);
        if (!rc)
            f->calib->seed = (uint64_t)n;
        return rc;
    } else
        *matched = false;
    return 0;
}

int quant_int_flags(const quant_int_flag *flags, size_t n, const char *a, const char *v, bool *matched) {
    *matched = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a, flags[i].name))
            continue;
        long x;
        int rc = quant_parse_long(a, v, flags[i].min, &x);
        if (rc)
            return rc;
        if (x == 0 && flags[i].min < 0)
            return cli_usage_error("quant", "%s: 0 samples (use -1 for all)", a);
        *flags[i].dst = (int)x;
        *matched = true;
    }
    return 0;
}

int quant_parse_double(const char *flag, const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x))
        return cli_usage_error("quant", "%s: '%s' is not a number", flag, v);
    *out = x;
    return 0;
}

int cmd_quant(int argc, char **argv) {
    if (argc < 2)
        return cli_usage_error("quant", "a method is needed: ctune quant gptq|awq|dwq|dynamic ...");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_METHODS; i++)
        if (!strcmp(argv[1], METHODS[i].name))
            return METHODS[i].run(argc, argv);
    char names[128] = "";
    for (size_t i = 0; i < N_METHODS; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", METHODS[i].name);
    return cli_usage_error("quant", "unknown method '%s' (available: %s)", argv[1], names);
}
