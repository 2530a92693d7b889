// fuzz_common.h: helpers for libFuzzer targets. The parsers under test read
// files, so each input is written to a per-process file in /dev/shm first.
#ifndef CTUNE_FUZZ_COMMON_H
#define CTUNE_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctune/log.h"

static const char *fuzz_write_input(const uint8_t *data, size_t size, const char *suffix) {
    static char path[128];
    snprintf(path, sizeof path, "/dev/shm/ctune-fuzz-%ld%s", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    ct_log_set_level(CT_LOG_QUIET);
    return path;
}

#endif
