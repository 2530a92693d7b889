// ctune quant gptq: GPTQ with calibration data (mlx_lm.gptq's flags and
// defaults; see docs/QUANTIZATION.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/gptq.h"
#include "quant_cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune quant gptq --model M --data D [--mlx-path OUT] [options]\n"
               "  --model, -m M             dense Hugging Face / MLX folder (llama, mistral, qwen2, qwen3, gemma3)\n"
               "  --mlx-path OUT            output folder, must not exist (default mlx_model)\n"
               "  --data D                  calibration data: a text file, a .jsonl file or a dataset folder\n"
               "  --bits B                  bits of the layer linears (default 4)\n"
               "  --group-size G            their group size (default 64)\n"
               "  --fallback-bits B         embeddings / lm_head, RTN (default 6)\n"
               "  --fallback-group-size G   (default 64)\n"
               "  --num-samples N           calibration sequences, -1 = all (default -1)\n"
               "  --sequence-length L       tokens per sequence (default 512)\n"
               "  --seed S                  sequence shuffle (default 123)\n"
               "  --batch-size N            sequences per forward (default 8)\n"
               "  --dtype T                 float16, bfloat16 or float32 for scales and unquantized parameters\n"
               "  --act-order               quantize columns by decreasing activation energy, static groups\n"
               "                            (not in mlx-lm; default off)\n");
}

// Integer flags: name -> where the value goes and its minimum.
static int int_flag(const char *a, const char *v, ct_gptq_opts *o, bool *matched) {
    const quant_int_flag flags[] = {
        {"--bits", &o->bits, 1},
        {"--group-size", &o->group_size, 1},
        {"--fallback-bits", &o->fallback_bits, 1},
        {"--fallback-group-size", &o->fallback_group_size, 1},
        {"--num-samples", &o->calib.num_samples, -1},
        {"--sequence-length", &o->calib.sequence_length, 2},
        {"--batch-size", &o->batch_size, 1},
    };
    return quant_int_flags(flags, sizeof flags / sizeof flags[0], a, v, matched);
}

static int parse_args(int argc, char **argv, ct_gptq_opts *o) {
    *o = (ct_gptq_opts){.mlx_path = "mlx_model", .bits = 4, .group_size = 64, .fallback_bits = 6,
                        .fallback_group_size = 64,
                        .calib = {.num_samples = -1, .sequence_length = 512, .seed = 123}};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--act-order")) {
            o->act_order = true;
            continue;
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

int cmd_quant_gptq(int argc, char **argv) {
    ct_gptq_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    ct_gptq_stats s;
    if (ct_gptq(&o, &s, &err) != CT_OK)
        return cli_report(&err);
    printf("Saved %s: %d linears quantized with GPTQ (%d-bit, group %d%s) from %d calibration sequences, "
           "%d modules quantized in all, %.3f bits per weight\n",
           o.mlx_path, s.n_gptq, o.bits, o.group_size, o.act_order ? ", act-order" : "", s.n_sequences,
           s.convert.n_quantized,
           s.convert.bits_per_weight);
    return 0;
}
