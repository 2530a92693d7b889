// ctune convert: mlx_lm.convert's job. A Hugging Face folder, an MLX folder
// (with --dequantize) or a GGUF file becomes an MLX folder, optionally
// quantized with round-to-nearest affine quantization (bit-exact with MLX).
// Flags and defaults are mlx_lm.convert's.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/convert.h"
#include "ctune/log.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune convert --model M [--mlx-path OUT] [options]\n"
               "  --model, --hf-path M     Hugging Face / MLX model folder, or a .gguf file\n"
               "  --mlx-path OUT           output folder, must not exist (default mlx_model)\n"
               "  -q, --quantize           quantize (round-to-nearest, MLX affine format)\n"
               "  --q-bits B               bits per weight: 2, 3, 4, 5, 6, 8 (default 4)\n"
               "  --q-group-size G         group size: 32, 64, 128 (default 64)\n"
               "  --q-mode affine          the only mode supported\n"
               "  --quant-predicate R      mixed-bit recipe: mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6\n"
               "  --dtype T                float16, bfloat16 or float32 for the unquantized parameters\n"
               "                           (default: config.json's torch_dtype, else as stored; GGUF: float16)\n"
               "  -d, --dequantize         de-quantize an MLX-quantized model\n");
}

static int parse_int(const char *flag, const char *v, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n <= 0 || n > 1 << 20)
        return cli_usage_error("convert", "%s: '%s' is not a positive integer", flag, v);
    *out = (int)n;
    return 0;
}

static int parse_args(int argc, char **argv, ct_convert_opts *o) {
    o->mlx_path = "mlx_model";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quantize")) {
            o->quantize = true;
            continue;
        }
        if (!strcmp(a, "-d") || !strcmp(a, "--dequantize")) {
            o->dequantize = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("convert", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--model") || !strcmp(a, "--hf-path"))
            o->model = v;
        else if (!strcmp(a, "--mlx-path"))
            o->mlx_path = v;
        else if (!strcmp(a, "--q-bits"))
            rc = parse_int(a, v, &o->q_bits);
        else if (!strcmp(a, "--q-group-size"))
            rc = parse_int(a, v, &o->q_group_size);
        else if (!strcmp(a, "--q-mode") && strcmp(v, "affine") != 0)
            return cli_usage_error("convert", "--q-mode %s: only affine quantization is supported", v);
        else if (!strcmp(a, "--q-mode"))
            continue;
        else if (!strcmp(a, "--quant-predicate") && !ct_quant_recipe_parse(v, &o->recipe))
            return cli_usage_error("convert", "--quant-predicate: '%s' is not one of mixed_2_6, mixed_3_4, "
                                              "mixed_3_6, mixed_4_6", v);
        else if (!strcmp(a, "--quant-predicate"))
            continue;
        else if (!strcmp(a, "--dtype") && strcmp(v, "float16") && strcmp(v, "bfloat16") && strcmp(v, "float32"))
            return cli_usage_error("convert", "--dtype: '%s' is not one of float16, bfloat16, float32", v);
        else if (!strcmp(a, "--dtype"))
            o->dtype = v;
        else
            return cli_usage_error("convert", "unknown option '%s'", a);
        if (rc)
            return rc;
    }
    if (!o->model)
        return cli_usage_error("convert", "--model is required");
    return 0;
}

int cmd_convert(int argc, char **argv) {
    ct_convert_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    ct_convert_stats s;
    if (ct_convert(&o, &s, &err) != CT_OK)
        return cli_report(&err);
    printf("Saved %s: %d tensors in %d file%s, %d modules quantized, %.3f bits per weight\n", o.mlx_path, s.n_tensors,
           s.n_shards, s.n_shards == 1 ? "" : "s", s.n_quantized, s.bits_per_weight);
    return 0;
}
