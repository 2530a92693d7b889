"""Python Jinja2 configured exactly as transformers' chat template renderer
(transformers/utils/chat_template_utils.py: _compile_jinja_template), without
importing transformers: ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[loopcontrols]) plus its tojson filter and the
raise_exception, strftime_now, dict and namespace globals, and the
{% generation %} tag of its AssistantTracker extension. Needs jinja2>=3.1.6.
"""
import json
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


class _TemplateDict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}. "
                "Please rename the attribute."
            )


class _Generation(jinja2.ext.Extension):
    """transformers' AssistantTracker without the index tracking: renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_template(source):
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env.from_string(source)


def render(source, context):
    """Returns ("ok", text) or ("error", message)."""
    try:
        return "ok", compile_template(source).render(**context)
    except Exception as e:  # the message is what we compare
        return "error", str(e)


def conversations():
    """Ten conversations x add_generation_prompt false/true, as transformers passes them
    (tools and documents are always present, None when not given)."""
    tools = [
        {"type": "function", "function": {
            "name": "get_weather", "description": "Get the current weather in a city.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city"]}}},
        {"type": "function", "function": {
            "name": "add", "description": "Add two numbers.",
            "parameters": {"type": "object", "properties": {
                "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}},
    ]
    call = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    call2 = {"id": "call00002", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3.5}}}
    sys_msg = {"role": "system", "content": "You are a helpful assistant."}
    convs = [
        [{"role": "user", "content": "Hello!"}],
        [sys_msg, {"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "Tell me a joke."}],
        [sys_msg, {"role": "user", "content": "One"}, {"role": "assistant", "content": "Two"},
         {"role": "user", "content": "Three"}, {"role": "assistant", "content": "Four"},
         {"role": "user", "content": "Five"}],
        [{"role": "user", "content": "Weather in Paris?"},
         {"role": "assistant", "content": "", "tool_calls": [call]},
         {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "{\"temp\": 21}"},
         {"role": "assistant", "content": "It is 21 degrees."}],
        [sys_msg, {"role": "user", "content": "Add 2 and 3.5, and check Paris."},
         {"role": "assistant", "content": "", "tool_calls": [call2, call]},
         {"role": "tool", "tool_call_id": "call00002", "name": "add", "content": "5.5"},
         {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "sunny"}],
        [{"role": "user", "content": "  Spaces and\nnewlines\t\"quotes\" 'single' \\ backslash  "},
         {"role": "assistant", "content": "Unicode: héllo wörld — 日本語 🙂"}],
        [{"role": "user", "content": "Answer briefly."}, {"role": "assistant", "content": ""},
         {"role": "user", "content": "Again?"}],
        [sys_msg, {"role": "user", "content": "Use a tool."}],
        [{"role": "system", "content": "Tools are available."}, {"role": "user", "content": "Weather?"},
         {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
         {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "rain"},
         {"role": "assistant", "content": "Rain."}, {"role": "user", "content": "Thanks"}],
    ]
    uses_tools = {4, 5, 8, 9}
    out = []
    for i, msgs in enumerate(convs):
        for agp in (False, True):
            out.append({"messages": msgs, "tools": tools if i in uses_tools else None, "documents": None,
                        "add_generation_prompt": agp, "bos_token": "<s>", "eos_token": "</s>",
                        "unk_token": "<unk>", "pad_token": None})
    return out
