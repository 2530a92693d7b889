// ctune info MODEL_DIR [--json]: what a model folder holds.
#include <stdio.h>
#include <string.h>

#include "commands.h"

int cmd_info(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: ctune info MODEL_DIR [--json]\n");
        return 0;
    }
    ct_error err;
    err.status = CT_ERR_UNSUPPORTED;
    snprintf(err.msg, sizeof err.msg, "info: not implemented yet");
    return cli_report(&err);
}
