// json.h: cJSON glue with errors that say where. Parse failures report
// "source:line:col"; typed getters report the key and the type found.
// Callers add the file name with ct_error_context when the source is a file.
#ifndef CTUNE_JSON_H
#define CTUNE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctune/error.h"

// Parses len bytes of text (need not be NUL-terminated). source names it in errors.
ct_status ct_json_parse(const char *text, size_t len, const char *source, cJSON **out, ct_error *err);
// Reads and parses a file; errors name the file (and line:col for syntax errors).
ct_status ct_json_load_file(const char *path, cJSON **out, ct_error *err);

// Optional members: if key is absent or null, *out is left unchanged and CT_OK returned.
// A present member of the wrong type is an error naming the key.
ct_status ct_json_int(const cJSON *obj, const char *key, int64_t *out, ct_error *err);
ct_status ct_json_double(const cJSON *obj, const char *key, double *out, ct_error *err);
ct_status ct_json_bool(const cJSON *obj, const char *key, bool *out, ct_error *err);
ct_status ct_json_string(const cJSON *obj, const char *key, const char **out, ct_error *err);
// Required members: absent is an error too.
ct_status ct_json_need_int(const cJSON *obj, const char *key, int64_t *out, ct_error *err);
ct_status ct_json_need_string(const cJSON *obj, const char *key, const char **out, ct_error *err);

// Exact integer value of a JSON number (rejects fractions and values past 2^53).
bool ct_json_as_int(const cJSON *item, int64_t *out);
const char *ct_json_type_name(const cJSON *item);

#endif
