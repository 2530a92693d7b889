// ctune quant dwq: distilled weight quantization (mlx_lm.dwq's flags and
// defaults, plus --data, --temperature, --top-k and --dtype; see
// docs/QUANTIZATION.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ctune/dwq.h"
#include "quant_cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune quant dwq --model TEACHER --data D [--mlx-path OUT] [options]\n"
               "  --model, -m M             the dense teacher (llama, mistral, qwen2, qwen3, gemma3)\n"
               "  --quantized-model Q       an MLX-quantized student (default: RTN of the teacher)\n"
               "  --mlx-path OUT            output folder, must not exist (default mlx_model)\n"
               "  --data D                  calibration data: a text file, a .jsonl file or a dataset folder\n"
               "  --bits B                  bits of the RTN student (default 4)\n"
               "  --group-size G            its group size (default 64)\n"
               "  --num-samples N           training sequences, -1 = all (default 2048; 32 more validate)\n"
               "  --max-seq-length L        tokens per sequence (default 1025)\n"
               "  --seed S                  sequence shuffle (default 123)\n"
               "  --learning-rate LR        Adam learning rate (default 1e-6)\n"
               "  --batch-size N            sequences per step (default 4)\n"
               "  --grad-checkpoint         recompute each block in the backward (less memory)\n"
               "  --temperature T           distillation temperature (default 2.0)\n"
               "  --top-k K                 KL over the teacher's top-K logits, 0 = full vocabulary (default 1024)\n"
               "  --dtype T                 float16, bfloat16 or float32 for scales, biases and norms\n"
               "  --comm-timeout S          under mpirun (data-parallel): fail when the other ranks do not\n"
               "                            answer within S seconds (default 600; docs/distributed.md)\n");
}

// Integer flags: name -> where the value goes and its minimum.
static int int_flag(const char *a, const char *v, ct_dwq_opts *o, bool *matched) {
    const quant_int_flag flags[] = {
        {"--bits", &o->bits, 1},
        {"--group-size", &o->group_size, 1},
        {"--num-samples", &o->calib.num_samples, -1},
        {"--max-seq-length", &o->calib.sequence_length, 2},
        {"--batch-size", &o->batch_size, 1},
        {"--top-k", &o->top_k, 0},
    };
    return quant_int_flags(flags, sizeof flags / sizeof flags[0], a, v, matched);
}

// A positive floating-point flag.
static int positive(const char *a, const char *v, double *out) {
    int rc = quant_parse_double(a, v, out);
    if (!rc && !(*out > 0))
        return cli_usage_error("quant", "%s: '%s' must be > 0", a, v);
    return rc;
}

static int string_or_float_flag(const char *a, const char *v, ct_dwq_opts *o, bool *matched) {
    *matched = true;
    double x;
    int rc = 0;
    if (!strcmp(a, "--quantized-model"))
        o->quantized_model = v;
    else if (!strcmp(a, "--learning-rate")) {
        if (!(rc = positive(a, v, &x)))
            o->learning_rate = x;
    } else if (!strcmp(a, "--temperature")) {
        if (!(rc = positive(a, v, &x)))
            o->temperature = (float)x;
    } else
        return quant_common_flag(&(quant_common_flags){&o->model, &o->mlx_path, &o->dtype, &o->calib}, a, v, matched);
    return rc;
}

static int parse_args(int argc, char **argv, ct_dwq_opts *o) {
    *o = (ct_dwq_opts){.mlx_path = "mlx_model", .bits = 4, .group_size = 64, .learning_rate = 1e-6,
                       .batch_size = 4, .temperature = 2.0f, .top_k = 1024,
                       .calib = {.num_samples = 2048, .sequence_length = 1025, .seed = 123}};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--grad-checkpoint")) {
            o->grad_checkpoint = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("quant", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        bool matched;
        int rc = int_flag(a, v, o, &matched);
        if (!rc && !matched)
            rc = string_or_float_flag(a, v, o, &matched);
        if (rc)
            return rc;
        if (!matched)
            return cli_usage_error("quant", "unknown option '%s'", a);
    }
    if (!o->model)
        return cli_usage_error("quant", "--model is required");
    if (!o->calib.data)
        return cli_usage_error("quant", "--data is required (a text file, a .jsonl file or a dataset folder)");
    return 0;
}

int cmd_quant_dwq(int argc, char **argv) {
    ct_dwq_opts o;
    ct_error err = {0};
    double timeout;
    if (cli_take_comm_timeout(&argc, argv, &timeout, &err) != CT_OK)
        return cli_usage_error("quant", "%s", err.msg);
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_comm comm;
    if (cli_comm_start(&comm, timeout, &err) != CT_OK)
        return cli_report(&err);
    o.comm = &comm;
    ct_dwq_stats s;
    ct_status st = ct_dwq(&o, &s, &err);
    if (st != CT_OK)
        return cli_comm_finish(&comm, st, &err);
    printf("Saved %s: %d steps on %d sequences (%lld tokens, %.1f s), %lld trainable parameters; validation KL "
           "%.4f -> %.4f; %.3f bits per weight\n",
           o.mlx_path, s.steps, s.n_train, (long long)s.tokens, s.seconds, (long long)s.n_trainable,
           s.initial_valid_loss, s.final_valid_loss, s.convert.bits_per_weight);
    return cli_comm_finish(&comm, CT_OK, &err);
}
