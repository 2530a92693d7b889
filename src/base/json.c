#include "ctune/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctune/fs.h"

ct_status ct_json_parse(const char *text, size_t len, const char *source, cJSON **out, ct_error *err) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*out) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < pos; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return ct_fail(err, CT_ERR_FORMAT, "%s:%d:%d: malformed JSON", source, line, col);
    }
    // Only whitespace may follow the value.
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != 0) {
            cJSON_Delete(*out);
            *out = NULL;
            return ct_fail(err, CT_ERR_FORMAT, "%s: malformed JSON: trailing data after the value", source);
        }
    }
    return CT_OK;
}

ct_status ct_json_load_file(const char *path, cJSON **out, ct_error *err) {
    char *text;
    size_t len;
    *out = NULL;
    CT_TRY(ct_read_file(path, &text, &len, err));
    ct_status st = ct_json_parse(text, len, path, out, err);
    free(text);
    return st;
}

const char *ct_json_type_name(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "an invalid value";
}

bool ct_json_as_int(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return false;
    *out = (int64_t)d;
    return true;
}

static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

ct_status ct_json_int(const cJSON *obj, const char *key, int64_t *out, ct_error *err) {
    const cJSON *it = member(obj, key);
    if (!it)
        return CT_OK;
    if (!ct_json_as_int(it, out))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be an integer, got %s", key, ct_json_type_name(it));
    return CT_OK;
}

ct_status ct_json_double(const cJSON *obj, const char *key, double *out, ct_error *err) {
    const cJSON *it = member(obj, key);
    if (!it)
        return CT_OK;
    if (!cJSON_IsNumber(it))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be a number, got %s", key, ct_json_type_name(it));
    *out = it->valuedouble;
    return CT_OK;
}

ct_status ct_json_bool(const cJSON *obj, const char *key, bool *out, ct_error *err) {
    const cJSON *it = member(obj, key);
    if (!it)
        return CT_OK;
    if (!cJSON_IsBool(it))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be true or false, got %s", key, ct_json_type_name(it));
    *out = cJSON_IsTrue(it);
    return CT_OK;
}

ct_status ct_json_string(const cJSON *obj, const char *key, const char **out, ct_error *err) {
    const cJSON *it = member(obj, key);
    if (!it)
        return CT_OK;
    if (!cJSON_IsString(it))
        return ct_fail(err, CT_ERR_FORMAT, "\"%s\" must be a string, got %s", key, ct_json_type_name(it));
    *out = it->valuestring;
    return CT_OK;
}

ct_status ct_json_need_int(const cJSON *obj, const char *key, int64_t *out, ct_error *err) {
    if (!member(obj, key))
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"%s\"", key);
    return ct_json_int(obj, key, out, err);
}

ct_status ct_json_need_string(const cJSON *obj, const char *key, const char **out, ct_error *err) {
    if (!member(obj, key))
        return ct_fail(err, CT_ERR_FORMAT, "missing required \"%s\"", key);
    return ct_json_string(obj, key, out, err);
}
