#!/usr/bin/env python3
"""Makes tests/fixtures/jinja/cases.json: templates, contexts and the output of
Python Jinja2 configured as transformers configures it (see jinja_reference.py).

Each case renders one template on a list of contexts; the expected result is
the rendered text or the error message. Chat-style templates (written for this
repository in the style of Llama-3, Qwen2.5, Mistral, Gemma, Phi-3 and SmolLM2,
in tools/jinja_templates/) run on 20 conversations; one-feature templates run
on one conversation.

Recreate the reference environment: python3 -m venv .venv-ref &&
.venv-ref/bin/pip install 'jinja2>=3.1.6'   (any venv with jinja2 3.1.6 works).
Run from the repository root: python tools/make_jinja_fixtures.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jinja_reference import conversations, render  # noqa: E402

FEATURES = {
    "literals": '{{ "a\\tb\\n" }}|{{ \'it\\\'s\' }}|{{ 42 }}|{{ 0x1F }}|{{ 1_000 }}|{{ 3.5 }}|{{ 1e3 }}|{{ true }}{{ True }}|{{ none }}{{ None }}|{{ "x" "y" }}',
    "collections": '{{ [1, "a", none, 1.5, true] }}|{{ {"a": 1, "b": [2]} }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ {"q": "it\'s"} }}|{{ ["x\\ny"] }}',
    "floats": "{{ 0.1 + 0.2 }} {{ 1/3 }} {{ 1e-7 }} {{ 123456789012345678.0 }} {{ 2.5e-5 }} {{ -0.0 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 1.0 }} {{ 10 / 2 }}",
    "arithmetic": "{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 'ab' * 3 }} {{ [0] * 2 }} {{ [1] + [2] }} {{ true + 1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
    "concat": '{{ "x" ~ 1 ~ none ~ undefined_var ~ [1] ~ 2.0 }}',
    "compare": "{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 'a' == 1 }} {{ 2 >= 2 }} {{ none == none }}",
    "membership": '{{ 1 in [1, 2] }} {{ "a" in "abc" }} {{ "k" in {"k": 1} }} {{ 3 not in [1] }} {{ "" in "x" }} {{ "role" in messages[0] }}',
    "logic": '{{ 1 and 2 }}|{{ 0 and 2 }}|{{ 0 or "z" }}|{{ "" or none }}|{{ not none }}|{{ [] or {} }}|{{ not 1 == 2 }}|{{ x is defined and x.y }}',
    "ternary": '{{ "yes" if messages else "no" }}|{{ "a" if false }}|{{ 1 if 0 else 2 if 0 else 3 }}',
    "attr_item": "{{ messages[0].role }}|{{ messages[0]['content'] }}|{{ messages[-1].role }}|{{ messages.0.role }}|{{ messages[0].missing }}|{{ messages[99] }}|{{ none.x }}",
    "slices": '{{ "abcdef"[1:4] }}|{{ "abcdef"[::-1] }}|{{ "abcdef"[::2] }}|{{ "abcdef"[-2:] }}|{{ [1,2,3,4][:-1] }}|{{ [1,2,3,4][::-2] }}|{{ messages[1:]|length }}|{{ "héllo"[1:3] }}|{{ [1,2,3][5:] }}',
    "if_elif": "{% for n in [0, 1, 2, 3] %}{% if n == 0 %}zero{% elif n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %},{% endfor %}",
    "for_loop_vars": "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.cycle('odd', 'even') }}/{{ loop.depth }};{% endfor %}",
    "for_prev_next": "{% for x in 'abc' %}[{{ loop.previtem|default('-') }}{{ x }}{{ loop.nextitem|default('-') }}]{% endfor %}",
    "for_else_filter": "{% for m in messages if m.role == 'nobody' %}x{% else %}empty{% endfor %}|{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}/{{ loop.length }} {% endfor %}",
    "for_unpack": "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for (a, b) in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
    "for_inline_if_iterable": "{% for x in (messages if messages else []) %}{{ x.role[0] }}{% endfor %}|{% for x in messages|reverse %}{{ x.role[0] }}{% endfor %}",
    "break_continue": "{% for i in range(10) %}{% if i is odd %}{% continue %}{% endif %}{% if i > 6 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "nested_loops": "{% for i in range(3) %}{% for j in range(i) %}{{ loop.index }}{{ i }}{% endfor %}|{% endfor %}",
    "set_scoping": "{% set c = 0 %}{% for i in [1, 2] %}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}{% if true %}{% set d = 5 %}{% endif %}{{ d }}",
    "namespace": "{% set ns = namespace(total=0, names=[]) %}{% for m in messages %}{% set ns.total = ns.total + m.content|length %}{% set ns.names = ns.names + [m.role] %}{% endfor %}{{ ns.total }} {{ ns.names }}",
    "set_block": "{% set header %}<{{ messages|length }} msgs>{% endset %}{{ header }}{{ header|length }}",
    "set_tuple": "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, %}{{ t }}",
    "macro_defaults": "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', 'Hi') }} {{ greet('C', punct='?') }}",
    "macro_caller": "{% macro box(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call box('t') %}inside {{ messages|length }}{% endcall %}{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}<{{ x }}>{% endcall %}",
    "macro_scope": "{% set g = 'outer' %}{% macro show() %}{{ g }}{% endmacro %}{{ show() }}{% set g = 'changed' %}{{ show() }}",
    "filter_block": "{% filter upper %}shout {{ messages[0].role }}{% endfilter %}",
    "whitespace_control": "a  {{- ' b ' -}}  c\n  {%- if true %}  d  {% endif -%}\n  e {#- comment -#} f\n{%+ if true %}g{% endif %}",
    "trim_lstrip": "line1\n    {% if true %}\n    indented\n    {% endif %}\n  {# a comment #}\nend {% if true %}x{% endif %}\n  {{ 'var keeps indent' }}\n",
    "raw_block": "{% raw %}{{ not rendered }} {% if %}{% endraw %}|  {%- raw -%}  r  {%- endraw %}|",
    "comments": "a{# one #}b\n{# two\nlines #}\nc",
    "tests": "{{ 1 is odd }}{{ 2 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is number }}{{ true is boolean }}{{ none is none }}{{ {} is mapping }}{{ [] is iterable }}{{ [] is sequence }}{{ 1.0 is float }}{{ 1 is integer }}{{ true is integer }}{{ x is undefined }}{{ x is defined }}{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 2 is gt 1 }}{{ 2 is ge 3 }}{{ 1 is lt 2 }}{{ 1 is le 0 }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 'AB' is upper }}{{ 'ab' is lower }}{{ range is callable }}{{ 'x' is not string }}{{ 2 is in [1, 2] }}",
    "filters_str": "{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hello'|lower }}|{{ 'Hello'|upper }}|{{ 'hi there-you (x'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'a-b-c'|replace('-', '', 1) }}|{{ 'x'|center(7) }}|{{ 'ab'|center(5) }}|{{ 42|string }}|{{ [1]|string }}|{{ 'a b  c'|wordcount }}",
    "filters_seq": "{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}{{ [3, 1, 2]|sort(reverse=true) }}{{ messages|sort(attribute='role')|map(attribute='role')|list }}{{ ['a', 'A', 'b']|unique|list }}{{ {'b': 1, 'A': 2}|dictsort }}{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}{{ 'abc'|list }}{{ {'a': 1}|items|list }}{{ [1, 2, 3, 4, 5]|batch(2)|list }}{{ [1, 2, 3]|batch(2, 0)|list }}{{ [1, 2]|reverse|list }}{{ 'abc'|reverse }}{{ [4, 2, 9]|max }}{{ [4, 2, 9]|min }}{{ [1, 2.5]|sum }}{{ messages|length }}{{ 'héllo'|length }}{{ {'a': 1}|count }}",
    "filters_join_map_select": "{{ messages|map(attribute='role')|join(', ') }}|{{ messages|join('/', attribute='role') }}|{{ ['a', 'B']|map('upper')|list }}|{{ ['a-b']|map('replace', '-', '+')|list }}|{{ [1, 2, 3]|select('odd')|list }}|{{ [1, 2, 3]|reject('odd')|list }}|{{ [0, 1, '', 'x']|select|list }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }}|{{ messages|selectattr('tool_calls', 'defined')|list|length }}|{{ messages|map(attribute='nope', default='?')|list }}|{{ [1, 2, 3]|join }}",
    "filters_num": "{{ 3.7|int }} {{ '42'|int }} {{ '4.5'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ '3.25'|float }} {{ 'x'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 3.14159|round(2) }} {{ 3.14159|round(2, 'floor') }} {{ 2.1|round(0, 'ceil') }} {{ -3|abs }} {{ -2.5|abs }} {{ 5|round }}",
    "filters_default": "{{ x|default('d') }}|{{ ''|default('e', true) }}|{{ ''|d('f', boolean=true) }}|{{ none|default('n') }}|{{ messages[0].nope|default('missing') }}|{{ 0|default(5) }}",
    "filters_indent": "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='> ', blank=true) }}|{{ 'one'|indent }}",
    "tojson": "{{ messages|tojson }}\n{{ tools|tojson(indent=2) }}\n{{ {'b': 1, 'a': [], 'c': {}}|tojson(sort_keys=true) }}\n{{ {'a': {'b': [1, 2]}}|tojson(separators=(',', ':')) }}\n{{ 'é\\u0001\"\\\\'|tojson }}\n{{ 'é'|tojson(ensure_ascii=true) }}\n{{ [1.0, 2.5e-7, none, true]|tojson }}\n{{ (1, 2)|tojson }}\n{{ {'x': 1}|tojson(indent='\\t') }}",
    "safe_escape": "{{ '<b>'|safe }}{{ '<a href=\"x\">&\\''|e }}",
    "str_methods": "{{ 'abc'.upper() }}|{{ 'ABC'.lower() }}|{{ ' x '.strip() }}|{{ 'xxyxx'.strip('x') }}|{{ ' x '.lstrip() }}|{{ ' x '.rstrip() }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'ab'.startswith('a') }}|{{ 'ab'.endswith(('x', 'b')) }}|{{ 'a-b'.replace('-', '+') }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.rfind('c') }}|{{ 'abcabc'.count('b') }}|{{ 'l1\\nl2\\r\\nl3'.splitlines() }}|{{ '42'.isdigit() }}|{{ 'x'.isalpha() }}|{{ '7'.zfill(3) }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|{{ 'pre_x'.removeprefix('pre_') }}",
    "str_format": "{{ '{} and {}'.format('a', 'b') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ '{name}!'.format(name='x') }}|{{ '{:>6}|{:<6}|{:^6}'.format('r', 'l', 'c') }}|{{ '{:.2f} {:5d} {:05d} {:,}'.format(3.14159, 42, 42, 1234567) }}|{{ '{0[role]}'.format(messages[0]) }}|{{ '{!r}'.format('q') }}|{{ '{{literal}}'.format() }}|{{ '{:x} {:b} {:e}'.format(255, 5, 12345.678) }}|{{ '{}'.format(1.5) }}|{{ '{:g}'.format(0.0001) }}",
    "percent_format": "{{ '%s-%d' % ('a', 3) }}|{{ '%5.1f|%-5s|%05d' % (3.14159, 'x', 42) }}|{{ '%s' % [1, 2] }}|{{ '%(a)s=%(b)r' % {'a': 1, 'b': 'q'} }}|{{ '%d%%' % 50 }}|{{ '%s and %s'|format('x', 'y') }}|{{ '%x %o %e %g' % (255, 8, 1234.5, 0.00001) }}",
    "dict_methods": "{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('b') }}|{{ {'a': 1}.get('b', 5) }}|{{ {'a': 1, 'b': 2}.keys()|list }}|{{ {'a': 1}.values()|list }}|{{ {'a': 1}.items()|list }}|{{ messages[0].get('role') }}|{{ messages[0].keys()|list }}",
    "globals": "{{ range(3)|list }}{{ range(1, 4)|list }}{{ range(10, 0, -3)|list }}{{ dict(a=1, b=2) }}{{ dict([('x', 1)]) }}{{ namespace(a=1).a }}",
    "undefined_behaviour": "[{{ nothing }}][{{ nothing|length }}][{{ nothing|list }}][{% for x in nothing %}x{% endfor %}][{{ 'yes' if nothing else 'no' }}][{{ nothing == nothing }}][{{ nothing|string }}][{{ nothing|join }}][{{ messages[0].nope is defined }}]",
    "unicode": "{{ 'héllo wörld'|upper }}|{{ 'ÀÉÎ'|lower }}|{{ '日本語'|length }}|{{ '🙂x'[0] }}|{{ 'ß'|length }}|{{ ['é', '日']|tojson }}|{{ ['é', '\\u00a0']|string }}",
    "attr_vs_item": "{{ {'items': 'val'}['items'] }}|{{ {'items': 'val'}.items()|list }}|{{ {'keys': 1}.keys is defined }}",
    "loop_changed": "{% for x in [1, 1, 2, 2, 3] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}",
    "generation_block": "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}",
    "trailing_newline": "text with one trailing newline\n",
    "crlf": "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc",
}

RUNTIME_ERRORS = {
    "err_raise_exception": "{{ raise_exception('Conversation roles must alternate!') }}",
    "err_undefined_attribute": "{{ messages[0].nope.deeper }}",
    "err_undefined_name_attr": "{{ nothing.attr }}",
    "err_undefined_call": "{{ nothing() }}",
    "err_list_index": "{{ messages[99].role }}",
    "err_concat_type": "{{ 'a' + 1 }}",
    "err_unsupported_operand": "{{ 1 + 'a' }}",
    "err_ordering": "{{ 'a' < 1 }}",
    "err_sandbox_append": "{% set xs = [] %}{{ xs.append(1) }}",
    "err_sandbox_update": "{% set d = {} %}{{ d.update({'a': 1}) }}",
    "err_not_namespace": "{% set d = {} %}{% set d.x = 1 %}",
    "err_not_callable": "{{ 'abc'() }}",
    "err_division_by_zero": "{{ 1 // 0 }}",
    "err_tojson_undefined": "{{ nothing|tojson }}",
    "err_undefined_arith": "{{ nothing + 1 }}",
    "err_not_iterable": "{% for x in 42 %}{% endfor %}",
    "err_namespace_underscore": "{% set ns = namespace(_x=1) %}",
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    contexts = conversations()
    feature_ctx = [19]  # system prompt, tools, tool calls and results
    cases = []
    tdir = os.path.join(root, "tools", "jinja_templates")
    for fname in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, fname), encoding="utf-8", newline="") as f:
            cases.append((fname.rsplit(".", 1)[0], f.read(), list(range(len(contexts)))))
    for name, src in list(FEATURES.items()) + list(RUNTIME_ERRORS.items()):
        cases.append((name, src, feature_ctx))
    out = {"contexts": contexts, "cases": []}
    for name, src, ctx_ids in cases:
        results = []
        for i in ctx_ids:
            kind, text = render(src, contexts[i])
            results.append({"context": i, kind: text})
        out["cases"].append({"name": name, "template": src, "results": results})
        if name.startswith("err_") and any("ok" in r for r in results):
            sys.exit(f"{name}: expected an error")
    path = os.path.join(root, "tests", "fixtures", "jinja", "cases.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"{path}: {len(out['cases'])} templates, {sum(len(c['results']) for c in out['cases'])} renderings, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
