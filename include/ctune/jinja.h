// jinja.h: a Jinja2 interpreter for Hugging Face chat templates. It renders
// byte-identically to Python Jinja2 as transformers configures it
// (ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
// loopcontrols extension; transformers' tojson filter; raise_exception and
// strftime_now globals). docs/chat-templates.md lists what is supported.
//
// Errors: syntax errors read "name:line:col: message"; runtime errors read
// "name:line:col: message" with Python Jinja2's wording, except
// raise_exception("msg"), whose error message is exactly "msg".
#ifndef CTUNE_JINJA_H
#define CTUNE_JINJA_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "ctune/error.h"

typedef struct ct_jinja_template ct_jinja_template;

// Parses len bytes of template source. name appears in error messages.
ct_status ct_jinja_compile(ct_jinja_template **t, const char *src, size_t len, const char *name, ct_error *err);

// Renders with the members of context (a JSON object: messages, tools,
// documents, add_generation_prompt, bos_token, eos_token, any other keys) as
// template variables. A JSON number that is integral and below 2^53 in
// magnitude becomes a Python int, any other number a float. *out is a
// NUL-terminated heap string (free() it).
ct_status ct_jinja_render(const ct_jinja_template *t, const cJSON *context, char **out, ct_error *err);

void ct_jinja_free(ct_jinja_template *t);

#endif
