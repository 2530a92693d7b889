// ctune quant awq: activation-aware weight quantization with calibration
// data (mlx_lm.awq's flags and defaults; see docs/QUANTIZATION.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/awq.h"
#include "quant_cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune quant awq --model M --data D [--mlx-path OUT] [options]\n"
               "  --model, -m M             dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3, gemma3)\n"
               "  --mlx-path OUT            output folder, must not exist (default mlx_model)\n"
               "  --data D                  calibration data: a text file, a .jsonl file or a dataset folder\n"
               "  --bits B                  bits of the layer linears (default 4)\n"
               "  --group-size G            their group size (default 64)\n"
               "  --embed-bits B            embedding / lm_head, RTN (default 4)\n"
               "  --embed-group-size G      (default 32)\n"
               "  --num-samples N           calibration sequences, -1 = all (default 128)\n"
               "  --sequence-length L       tokens per sequence (default 512)\n"
               "  --n-grid N                scale candidates per group (default 20; clip candidates N/2)\n"
               "  --seed S                  sequence shuffle (default 123)\n"
               "  --batch-size N            sequences per forward (default 8)\n"
               "  --dtype T                 float16, bfloat16 or float32 for scales and unquantized parameters\n");
}

// Integer flags: name -> where the value goes and its minimum.
static int int_flag(const char *a, const char *v, ct_awq_opts *o, bool *matched) {
    const quant_int_flag flags[] = {
        {"--bits", &o->bits, 1},
        {"--group-size", &o->group_size, 1},
        {"--embed-bits", &o->embed_bits, 1},
        {"--embed-group-size", &o->embed_group_size, 1},
        {"--num-samples", &o->calib.num_samples, -1},
        {"--sequence-length", &o->calib.sequence_length, 2},
        {"--n-grid", &o->n_grid, 1},
        {"--batch-size", &o->batch_size, 1},
    };
    return quant_int_flags(flags, sizeof flags / sizeof flags[0], a, v, matched);
}

static int parse_args(int argc, char **argv, ct_awq_opts *o) {
    *o = (ct_awq_opts){.mlx_path = "mlx_model", .bits = 4, .group_size = 64, .embed_bits = 4,
                       .embed_group_size = 32, .n_grid = 20,
                       .calib = {.num_samples = 128, .sequence_length = 512, .seed = 123}};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc)
            return cli_usage_error("quant", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        bool matched;
        int rc = int_flag(a, v, o, &matched);
        if (!rc && !matched)
            rc = quant_common_flag(&(quant_common_flags){&o->model, &o->mlx_path, &o->dtype, &o->calib}, a, v,
                                   &matched);
        if (rc)
            return rc;
        if (!matched)
            return cli_usage_error("quant", "unknown option '%s'", a);
    }
    if (!o->model)
        return cli_usage_error("quant", "--model is required");
    return 0;
}

int cmd_quant_awq(int argc, char **argv) {
    ct_awq_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    ct_awq_stats s;
    if (ct_awq(&o, &s, &err) != CT_OK)
        return cli_report(&err);
    printf("Saved %s: %d layers quantized with AWQ (%d-bit, group %d; %d fell back to plain RTN) from %d calibration "
           "sequences, %d modules quantized in all, %.3f bits per weight\n",
           o.mlx_path, s.n_layers, o.bits, o.group_size, s.n_fallback, s.n_sequences, s.convert.n_quantized,
           s.convert.bits_per_weight);
    return 0;
}
