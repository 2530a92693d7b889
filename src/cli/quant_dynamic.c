// ctune quant dynamic: mixed precision for a target bits per weight from
// per-module KL sensitivities (mlx_lm.dynamic_quant's flags and defaults; see
// docs/QUANTIZATION.md).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/dynamic_quant.h"
#include "ctune/log.h"
#include "quant_cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune quant dynamic --model M --data D [--mlx-path OUT] [options]\n"
               "  --model, -m M             dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3, gemma3)\n"
               "  --mlx-path OUT            output folder, must not exist (default mlx_model)\n"
               "  --data D                  calibration data: a text file, a .jsonl file or a dataset folder\n"
               "                            (not needed with --sensitivities unless --report-ppl)\n"
               "  --target-bpw X            bits per weight to reach (default 5.0)\n"
               "  --low-bits B              (default 4)\n"
               "  --low-group-size G        (default 64)\n"
               "  --high-bits B             (default 5)\n"
               "  --high-group-size G       (default 64)\n"
               "  --sensitivities FILE      reuse a sensitivities JSON ([[module, value], ...]) instead of estimating\n"
               "  --sensitivities-out FILE  where estimated sensitivities go (default ./<model, '/' -> '_'>_sensitivities.json)\n"
               "  --report-ppl              print the perplexity on the calibration data before and after\n"
               "  --grad-checkpoint         recompute activations in the backward (less memory)\n"
               "  --num-samples N           calibration sequences, -1 = all (default -1)\n"
               "  --sequence-length L       tokens per sequence (default 512)\n"
               "  --batch-size N            sequences per sensitivity batch (default 4)\n"
               "  --seed S                  sequence shuffle (default 123)\n"
               "  --dtype T                 float16, bfloat16 or float32 for scales and unquantized parameters\n"
               "  --accumulation-dtype T    float32 (bfloat16 is accepted; ctune accumulates in float32)\n");
}

// Integer flags: name -> where the value goes and its minimum.
static int int_flag(const char *a, const char *v, ct_dq_opts *o, bool *matched) {
    const quant_int_flag flags[] = {
        {"--low-bits", &o->low.bits, 1},
        {"--low-group-size", &o->low.group_size, 1},
        {"--high-bits", &o->high.bits, 1},
        {"--high-group-size", &o->high.group_size, 1},
        {"--num-samples", &o->calib.num_samples, -1},
        {"--sequence-length", &o->calib.sequence_length, 2},
        {"--batch-size", &o->batch_size, 1},
    };
    return quant_int_flags(flags, sizeof flags / sizeof flags[0], a, v, matched);
}

// Options with a value other than the integers.
static int value_flag(const char *a, const char *v, ct_dq_opts *o) {
    bool matched;
    int rc = quant_common_flag(&(quant_common_flags){&o->model, &o->mlx_path, &o->dtype, &o->calib}, a, v, &matched);
    if (rc || matched)
        return rc;
    struct { const char *name; const char **dst; } strs[] = {
        {"--sensitivities", &o->sensitivities},
        {"--sensitivities-out", &o->sens_out},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strcmp(a, strs[i].name)) {
            *strs[i].dst = v;
            return 0;
        }
    if (!strcmp(a, "--target-bpw"))
        return quant_parse_double(a, v, &o->target_bpw);
    if (!strcmp(a, "--accumulation-dtype")) {
        if (strcmp(v, "float32") && strcmp(v, "bfloat16"))
            return cli_usage_error("quant", "--accumulation-dtype: '%s' is not float32 or bfloat16", v);
        if (!strcmp(v, "bfloat16"))
            ct_log_warn("--accumulation-dtype bfloat16: ctune accumulates the gradients in float32");
        return 0;
    }
    return cli_usage_error("quant", "unknown option '%s'", a);
}

static int parse_args(int argc, char **argv, ct_dq_opts *o) {
    *o = (ct_dq_opts){.mlx_path = "mlx_model", .target_bpw = 5.0, .low = {4, 64}, .high = {5, 64},
                      .batch_size = 4, .calib = {.num_samples = -1, .sequence_length = 512, .seed = 123}};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--report-ppl") || !strcmp(a, "--grad-checkpoint")) {
            *(a[2] == 'r' ? &o->report_ppl : &o->grad_checkpoint) = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("quant", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        bool matched;
        int rc = int_flag(a, v, o, &matched);
        if (!rc && !matched)
            rc = value_flag(a, v, o);
        if (rc)
            return rc;
    }
    if (!o->model)
        return cli_usage_error("quant", "--model is required");
    return 0;
}

int cmd_quant_dynamic(int argc, char **argv) {
    ct_dq_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    ct_dq_stats s;
    if (ct_dynamic_quant(&o, &s, &err) != CT_OK)
        return cli_report(&err);
    if (s.sens_path[0])
        printf("Saved sensitivities of %d modules to %s\n", s.n_modules, s.sens_path);
    if (o.report_ppl)
        printf("Original PPL: %.3f\nQuantized PPL: %.3f\n", s.ppl_before, s.ppl_after);
    printf("Saved %s: %d of %d modules at %d-bit group %d, the others at %d-bit group %d (threshold %.6g), "
           "%.3f bits per weight\n",
           o.mlx_path, s.split.n_high, s.n_modules, o.high.bits, o.high.group_size, o.low.bits, o.low.group_size,
           s.split.threshold, s.convert.bits_per_weight);
    printf("Peak memory used: %.3fGB\n", (double)ct_peak_rss_bytes() / 1e9);
    return 0;
}
