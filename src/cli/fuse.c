// ctune fuse: mlx_lm.fuse's job. Folds a LoRA/DoRA adapter folder (mlx-lm or
// PEFT layout) into the base weights and writes a Hugging Face / MLX folder;
// optionally also a GGUF of the fused model and a PEFT copy of the adapters.
// Flags and defaults are mlx_lm.fuse's, plus --gguf-type and --export-peft.
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ctune/fuse.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctune fuse --model M [--adapter-path A] [--save-path OUT] [options]\n"
               "  --model M              base model: Hugging Face / MLX folder or .gguf file (default mlx_model)\n"
               "  --adapter-path A       adapter folder, mlx-lm or PEFT layout (default adapters)\n"
               "  --save-path OUT        output folder, must not exist (default fused_model)\n"
               "  -d, --dequantize       write a quantized base's modules dense (no re-quantization)\n"
               "  --export-gguf          also write a GGUF of the fused model (llama, mistral, qwen2, qwen3)\n"
               "  --gguf-path F          the GGUF's path, relative to the save path (default ggml-model-f16.gguf)\n"
               "  --gguf-type T          f16 (default), bf16, f32, q8_0 or q4_0\n"
               "  --export-peft DIR      also write the adapters in PEFT's layout to DIR\n");
}

static int parse_args(int argc, char **argv, ct_fuse_opts *o) {
    o->model = "mlx_model";
    o->adapter_path = "adapters";
    o->save_path = "fused_model";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "-d") || !strcmp(a, "--dequantize")) {
            o->dequantize = true;
            continue;
        }
        if (!strcmp(a, "--export-gguf")) {
            o->export_gguf = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage_error("fuse", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        ct_ggml_type t;
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--adapter-path"))
            o->adapter_path = v;
        else if (!strcmp(a, "--save-path"))
            o->save_path = v;
        else if (!strcmp(a, "--gguf-path"))
            o->gguf_path = v;
        else if (!strcmp(a, "--gguf-type") && !ct_gguf_export_type_parse(v, &t))
            return cli_usage_error("fuse", "--gguf-type: '%s' is not one of f16, bf16, f32, q8_0, q4_0", v);
        else if (!strcmp(a, "--gguf-type"))
            o->gguf_type = v;
        else if (!strcmp(a, "--export-peft"))
            o->export_peft = v;
        else
            return cli_usage_error("fuse", "unknown option '%s'", a);
    }
    if ((o->gguf_path || o->gguf_type) && !o->export_gguf)
        return cli_usage_error("fuse", "--gguf-path and --gguf-type need --export-gguf");
    return 0;
}

// The lost-delta warning: the modules whose adapter mostly vanished in storage.
static void warn_lost(const ct_fuse_opts *o, const ct_fuse_result *r) {
    if (!r->n_lost)
        return;
    fprintf(stderr, "warning: storing the fused weights erased most of the adapter's change in %d of %d modules:\n",
            r->n_lost, r->n_modules);
    int shown = 0;
    for (int i = 0; i < r->n_modules; i++)
        if (r->modules[i].lost && shown++ < 12)
            fprintf(stderr, "  %s: %.0f%% of the delta lost (delta %.2g of the weight)\n", r->modules[i].path,
                    100 * r->modules[i].report.lost, r->modules[i].report.delta_rel);
    if (shown > 12)
        fprintf(stderr, "  ... and %d more\n", shown - 12);
    if (r->requantized && !o->dequantize)
        fprintf(stderr, "  The re-quantized model behaves much like the base. Fuse with --dequantize to keep the "
                        "adapter's effect (dense weights).\n");
    else
        fprintf(stderr, "  The base's dtype rounds the change away; train with a larger learning rate or scale, or "
                        "convert the base to float32 first.\n");
}

int cmd_fuse(int argc, char **argv) {
    ct_fuse_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    ct_error err = {0};
    ct_fuse_result r;
    if (ct_fuse(&o, &r, &err) != CT_OK)
        return cli_report(&err);
    warn_lost(&o, &r);
    printf("Fused %d modules into %s (%d tensors in %d file%s)\n", r.n_modules, o.save_path, r.stats.n_tensors,
           r.stats.n_shards, r.stats.n_shards == 1 ? "" : "s");
    ct_fuse_result_free(&r);
    return 0;
}
