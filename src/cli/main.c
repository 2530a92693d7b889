// ctune: the command-line entry point. Dispatches to one subcommand per file.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ctune/log.h"
#include "ctune/version.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"info", cmd_info, "describe a model: architecture, sizes, dtypes, quantization, tokenizer"},
    {"lora", cmd_lora, "fine-tune with LoRA, DoRA or full fine-tuning (mlx_lm.lora's flags and YAML)"},
    {"generate", cmd_generate, "generate text with a model (chat template, sampling, tokens/s)"},
    {"perplexity", cmd_perplexity, "perplexity of a model on a text file"},
    {"evaluate", cmd_evaluate, "exact-match accuracy of greedy answers on held-out chat data"},
    {"fuse", cmd_fuse, "fold LoRA/DoRA adapters into the base; export GGUF and PEFT (mlx_lm.fuse)"},
    {"quant", cmd_quant, "post-training quantization with calibration data: gptq (mlx_lm.gptq)"},
    {"convert", cmd_convert, "HF/MLX folder or GGUF -> MLX folder, optionally quantized (mlx_lm.convert)"},
    {"tokenize", cmd_tokenize, "encode text or decode ids with a model's tokenizer (--json, --chat)"},
};

int cli_report(const ct_error *err) {
    fprintf(stderr, "error: %s\n", err->msg);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run 'ctune %s --help' for usage)\n", cmd);
    va_end(ap);
    return 2;
}

static void usage(FILE *f) {
    fprintf(f, "ctune %s: fine-tune and quantize LLMs on CPUs and NVIDIA GPUs\n\n", CTUNE_VERSION);
    fprintf(f, "usage: ctune <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nRun 'ctune <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("ctune %s\n", CTUNE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(name, COMMANDS[i].name))
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
