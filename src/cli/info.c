// ctune info MODEL_DIR [--json]: what a model folder holds.
#include <stdio.h>
#include <string.h>

#include "commands.h"

int cmd_info(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: ctune info MODEL_DIR|FILE.safetensors [--json]\n");
        return 0;
    }
    size_t len = argc > 1 ? strlen(argv[1]) : 0;
    if (len > 12 && !strcmp(argv[1] + len - 12, ".safetensors"))
        return info_tensors_file(argv[1], argc > 2 && !strcmp(argv[2], "--json"));
    ct_error err;
    err.status = CT_ERR_UNSUPPORTED;
    snprintf(err.msg, sizeof err.msg, "info: not implemented yet");
    return cli_report(&err);
}
