// jinja_render TEMPLATE CONTEXT.json: renders a chat template with a JSON
// context and writes the result to stdout byte for byte (no newline added).
// On failure prints "error: <message>" to stderr and exits 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"
#include "ctune/jinja.h"
#include "ctune/json.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TEMPLATE CONTEXT.json\n", argv[0]);
        return 2;
    }
    ct_error err;
    char *src = NULL, *out = NULL;
    size_t len;
    cJSON *ctx = NULL;
    ct_jinja_template *t = NULL;
    int rc = 1;
    if (ct_read_file(argv[1], &src, &len, &err) == CT_OK && ct_json_load_file(argv[2], &ctx, &err) == CT_OK &&
        ct_jinja_compile(&t, src, len, argv[1], &err) == CT_OK && ct_jinja_render(t, ctx, &out, &err) == CT_OK) {
        fwrite(out, 1, strlen(out), stdout);
        rc = 0;
    } else {
        fprintf(stderr, "error: %s\n", err.msg);
    }
    free(out);
    ct_jinja_free(t);
    cJSON_Delete(ctx);
    free(src);
    return rc;
}
