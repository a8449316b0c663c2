#!/usr/bin/env python3
"""Renders chat-template goldens with jinja2 configured exactly like Hugging Face transformers.

transformers (utils/chat_template_utils.py) compiles chat templates with
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
overrides the `tojson` filter with json.dumps(ensure_ascii=False, ...), adds the globals
raise_exception / strftime_now, and renders with messages=..., tools=None (when absent),
documents=None, add_generation_prompt=..., **special_tokens_map, **kwargs.

Writes tests/fixtures/chat_templates/goldens.json:
  {"templates": [{"template": "qwen3", "name": ..., "context": {...}, "text": ...|"error": ...}],
   "features":  [{"name": ..., "source": ..., "context": {...}, "text": ...|"error": ...}]}
Run: python3 tools/render_chat_goldens.py   (needs only jinja2)
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE_DIR = os.path.join(ROOT, "tools", "chat_templates")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat_templates", "goldens.json")


class GenerationTag(Extension):
    """transformers' AssistantTracker minus the index tracking: {% generation %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, context):
    try:
        return {"text": ENV.from_string(source).render(**context)}
    except Exception as e:  # noqa: BLE001 - any jinja2 failure is a golden error
        return {"error": str(e) or type(e).__name__}


# --- chat templates --------------------------------------------------------------------------

SPECIAL_TOKENS = {
    "qwen2": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "deepseek_v3": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "deepseek_v2_5": {"bos_token": "<｜begin▁of▁sentence｜>",
                      "eos_token": "<｜end▁of▁sentence｜>"},
    "mixtral": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
}

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! Who are you?"}
A1 = {"role": "assistant", "content": "I am a model. How can I help?"}
U2 = {"role": "user", "content": "Write \"hi\" in 3 languages:\n- FR\n- 日本語\n\tthanks\\"}
A2 = {"role": "assistant", "content": "Salut / こんにちは / Hola"}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the weather for a city — returns °C",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City, e.g. \"Paris\""},
                                      "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                                      "units": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "description": "Current time",
                                      "parameters": {"type": "object", "properties": {}}}},
]
TOOL_CALL_DICT = {"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": "get_weather",
                                      "arguments": {"city": "Paris", "days": 2}}},
    {"type": "function", "function": {"name": "now", "arguments": {}}}]}
TOOL_CALL_STR = {"role": "assistant", "content": "Let me check.", "tool_calls": [
    {"type": "function", "function": {"name": "get_weather",
                                      "arguments": "{\"city\": \"Tokyo\"}"}}]}
TOOL_RESULTS = [{"role": "tool", "content": "{\"temp\": 21}"},
                {"role": "tool", "content": "12:00"}]
DS_TOOL_CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
    {"type": "function", "function": {"name": "now", "arguments": "{}"}}]}


def conversations(name):
    common = [
        ("system_user", [SYS, U1], {}),
        ("user_only", [U1], {}),
        ("multi_turn", [SYS, U1, A1, U2], {}),
        ("ends_with_assistant", [U1, A1, U2, A2], {}),
    ]
    out = []
    for cname, msgs, extra in common:
        for agp in (True, False):
            out.append((f"{cname}_agp{int(agp)}", msgs, agp, extra))
    if name in ("qwen2", "qwen3"):
        out += [
            ("tools_system", [SYS, U1], True, {"tools": TOOLS}),
            ("tools_no_system", [U1], True, {"tools": TOOLS}),
            ("tool_calls_dict_args", [SYS, U1, TOOL_CALL_DICT] + TOOL_RESULTS, True,
             {"tools": TOOLS}),
            ("tool_calls_str_args", [U1, TOOL_CALL_STR, TOOL_RESULTS[0], A2], False,
             {"tools": TOOLS}),
        ]
    if name == "qwen3":
        out += [
            ("reasoning_content_last", [U1, dict(A1, reasoning_content="\nThe user greets me.\n")],
             False, {}),
            ("reasoning_content_history", [SYS, U1, dict(A1, reasoning_content="think 1"), U2],
             True, {}),
            ("think_in_content", [U1, {"role": "assistant",
                                       "content": "<think>\nLet me think.\n</think>\n\nHi there!"}],
             False, {}),
            ("think_in_content_history", [U1, {"role": "assistant",
                                               "content": "<think>a</think>b"}, U2], True, {}),
            ("enable_thinking_false", [U1], True, {"enable_thinking": False}),
            ("enable_thinking_true", [U1], True, {"enable_thinking": True}),
            ("tool_response_multi_step", [U1, dict(TOOL_CALL_DICT, reasoning_content="need tools")]
             + TOOL_RESULTS + [dict(A2, reasoning_content="got it")], False, {}),
        ]
    if name.startswith("deepseek"):
        out += [
            ("two_systems", [SYS, {"role": "system", "content": "Be brief."}, U1], True, {}),
            ("tool_calls", [SYS, U1, DS_TOOL_CALL] + TOOL_RESULTS + [A2], False, {}),
            ("tool_outputs_then_agp", [U1, DS_TOOL_CALL, TOOL_RESULTS[0]], True, {}),
        ]
    if name == "mixtral":
        out += [
            ("non_alternating", [U1, U2], True, {}),
            ("system_non_alternating", [SYS, U1, A1, A2], True, {}),
            ("tool_role", [U1, A1, {"role": "tool", "content": "x"}], True, {}),
        ]
    return out


def template_cases():
    cases = []
    for name in ("qwen2", "qwen3", "deepseek_v3", "deepseek_v2_5", "mixtral"):
        with open(os.path.join(TEMPLATE_DIR, name + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        for cname, msgs, agp, extra in conversations(name):
            context = {"messages": msgs, "tools": None, "documents": None,
                       "add_generation_prompt": agp}
            context.update(SPECIAL_TOKENS[name])
            context.update(extra)
            case = {"template": name, "name": cname, "context": context}
            case.update(render(source, context))
            cases.append(case)
    return cases


# --- language features -----------------------------------------------------------------------

F = []


def feat(name, source, **context):
    F.append((name, source, context))


# Whitespace control, trim_blocks, lstrip_blocks, comments, raw.
feat("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB\n")
feat("ws_lstrip_blocks", "  {% if true %}\n    x\n  {% endif %}\n  y")
feat("ws_no_lstrip_after_text", "a  {% if true %}b{% endif %}  c")
feat("ws_lstrip_var_untouched", "  {{ 'v' }}\n  {% set x = 1 %}\n")
feat("ws_minus", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}\n\n c")
feat("ws_var_minus", "x \n {{- 'y' -}} \n z")
feat("ws_plus", "  {%+ if true +%}\nq\n  {%- endif %}")
feat("ws_comment", "a\n  {# c #}\nb {#- d -#}  c\n{# e #}f")
feat("ws_raw", "{% raw %}{{ not }} {% x %}{% endraw %}\n|")
feat("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n")
feat("ws_trailing_newline_once", "x\n\n")
feat("ws_nested_loops", "{% for i in [1,2] %}\n  {% for j in 'ab' %}\n    {{ i }}{{ j }}\n  {% endfor %}\n{% endfor %}\n")
feat("ws_lstrip_at_start_after_tag", "{% if true %}\n  {% if true %}x{% endif %}\n{% endif %}")

# Literals and printing.
feat("lit_strings", "{{ 'a\\nb' }}|{{ \"t\\tq\" }}|{{ '\\x41\\u00e9\\\\' }}|{{ \"it's\" }}|{{ 'a' 'b' }}|{{ '\\q' }}")
feat("lit_numbers", "{{ 1 }} {{ 1.0 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2**0.5 }} {{ 1e16 }} {{ 1e-5 }} {{ 123456789012345678 }} {{ 1_000 }} {{ 0x1F }} {{ -0.0 }} {{ 2.5e-3 }}")
feat("lit_consts", "{{ true }} {{ False }} {{ none }} {{ None }} {{ [1, 'a', none, true, 1.5] }} {{ {'a': 1, 'b': [2]} }} {{ (1,) }} {{ (1, 'x') }} {{ () }}")
feat("lit_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'é'] }}")
feat("print_tuple", "{{ 1, 2 }}")

# Operators.
feat("op_arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }} {{ 6 / 2 }} {{ 1 + 2.5 }} {{ true + 1 }} {{ -2 ** 2 }}")
feat("op_concat", "{{ 'a' ~ 1 ~ none ~ 2.5 ~ true ~ [1] ~ undefined_var }}")
feat("op_string_mul", "{{ 'ab' * 3 }}|{{ 2 * 'x' }}|{{ [1] * 2 }}|{{ [1, 2] + [3] }}|{{ 'a' + 'b' }}")
feat("op_compare", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' != 'b' }} {{ none == none }} {{ {'a': 1} == {'a': 1} }}")
feat("op_in", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [1] }} {{ 'x' in undefined_var }}")
feat("op_logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ none or [] }} {{ not 0 }} {{ not [] }} {{ not 'a' }}")
feat("op_cond", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}] {{ 'a' if 0 else 'b' if 0 else 'c' }}")
feat("op_precedence", "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ 2 * 3 ** 2 }} {{ not 1 == 2 }} {{ (1 + 1) ~ 2 }} {{ 1 ~ 2 * 3 }} {{ [1,2,3]|length - 1 }} {{ -3|abs }}")
feat("op_percent_format", "{{ '%s-%d-%.2f-%5s-%-4s|' % ('a', 3, 1.234, 'x', 'y') }}{{ '%s' % 'solo' }}{{ '%(a)s+%(b)d' % {'a': 'A', 'b': 2} }}{{ '100%%' % () }}")
feat("op_truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.1, undefined_var] %}{{ 'T' if v else 'F' }}{% endfor %}")

# Attribute / item access, undefined.
feat("access_dict", "{{ d.a }} {{ d['a'] }} {{ d.b.c }} {{ d['b']['c'] }} [{{ d.missing }}] [{{ d['missing'] }}] {{ l[0] }} {{ l[-1] }} [{{ l[10] }}] {{ s[1] }} {{ l.1 }}",
     d={"a": 1, "b": {"c": "deep"}}, l=[10, 20, 30], s="héllo")
feat("access_method_shadow", "{{ d['items'] }} {{ d.items()|list }} {{ d.get('x') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}",
     d={"items": "key-value", "x": 5})
feat("access_undefined", "[{{ nope }}] {{ nope is defined }} {{ nope is undefined }} {{ d.x is defined }} {{ nope|default('D') }} {{ none|default('D') }} {{ ''|default('E', true) }} {{ nope|length }} [{{ nope|string }}] [{{ nope|trim }}]{% for x in nope %}never{% endfor %}|{{ nope == nope }}",
     d={})
feat("slice", "{{ l[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[-2:] }} {{ l[::2] }} {{ l[5:] }} {{ s[::-1] }} {{ s[1:3] }} {{ s[-2:] }} {{ l[1:-1:1] }} {{ l[:0:-1] }}",
     l=[1, 2, 3, 4], s="日本語ab")

# Statements.
feat("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('o', 'e') }};{% endfor %}")
feat("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}no{% endfor %}")
feat("for_filter", "{% for x in range(10) if x % 3 == 0 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}")
feat("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}")
feat("for_dict", "{% for k in d %}{{ k }}{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d|dictsort %}{{ k }}{% endfor %}",
     d={"b": 1, "a": 2, "c": 3})
feat("for_unpack", "{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }},{% endfor %}")
feat("for_nested_loop", "{% for i in [1, 2] %}{% set outer = loop %}{% for j in [1, 2] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}")
feat("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 5 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 7 %}{% endif %}{{ x }}")
feat("set_namespace", "{% set ns = namespace(c=0, s='') %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.c }} {{ ns.s }}")
feat("set_block", "{% set b %}  x{{ 1 }}\n{% endset %}[{{ b }}]{% set c | upper %}abc{% endset %}{{ c }}")
feat("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, %}{{ t }}")
feat("macro", "{% macro m(a, b='B', c=none) %}<{{ a }}|{{ b }}|{{ c }}|{{ varargs }}|{{ kwargs }}>{% endmacro %}{{ m(1) }}{{ m(1, 2, 3) }}{{ m(a=5, c='C') }}{{ m(1, 2, 3, 4, z=9) }}")
feat("macro_recursive", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}")
feat("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}")
feat("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]")
feat("if_elif", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %} {% endfor %}")
feat("generation_block", "A{% generation %}B{{ 1 }}{% endgeneration %}C")

# Filters.
feat("f_strings", "{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'aBc'|upper }}{{ 'aBc'|lower }}|{{ 'hello world'|capitalize }}|{{ \"hello w-o(r)ld it's\"|title }}|{{ 'a-b-a'|replace('a', 'X') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'ab'|center(6) }}|{{ 'a b  c'|wordcount }}")
feat("f_length", "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }}")
feat("f_first_last", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} [{{ []|first }}]")
feat("f_join", "{{ [1, 'a', none]|join(', ') }} {{ 'abc'|join('-') }} {{ users|join(', ', attribute='name') }} {{ [1, 2]|join }}",
     users=[{"name": "x"}, {"name": "y"}])
feat("f_list_items", "{{ 'ab'|list }} {{ {'a': 1}|items|list }} {{ {'a': 1, 'b': 2}|list }} {{ [3, 1]|list }}")
feat("f_map_select", "{{ users|map(attribute='name')|list }} {{ users|map(attribute='age', default=0)|list }} {{ ['a', 'B']|map('upper')|list }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ [0, 1, '', 'x']|select|list }} {{ users|selectattr('age')|map(attribute='name')|list }} {{ users|rejectattr('age')|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'y')|list }} {{ [1, 5, 9]|select('gt', 4)|list }}",
     users=[{"name": "x", "age": 3}, {"name": "y"}, {"name": "z", "age": 0}])
feat("f_sort", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [3, 1, 2]|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='name')|join }} {{ {'b': 1, 'A': 2}|dictsort }} {{ {'b': 1, 'a': 0}|dictsort(by='value', reverse=true) }}",
     users=[{"name": "x", "age": 3}, {"name": "y", "age": 1}])
feat("f_unique_minmax", "{{ [1, 2, 1, 'a', 'A']|unique|list }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ ['b', 'A']|max }} {{ [1, 2, 3]|sum }} {{ users|sum(attribute='age') }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }}",
     users=[{"age": 3}, {"age": 4}])
feat("f_numbers", "{{ '42'|int }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 5|round }} {{ -3|abs }} {{ -2.5|abs }} {{ 10|string ~ 'x' }}")
feat("f_default_safe", "{{ none|default('n') }} {{ x|d('dd') }} {{ 0|default(1, true) }} {{ '<a>'|safe }} {{ '<a href=\"x\">&'|e }}")
feat("f_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}")
feat("f_format_batch", "{{ '%s=%s'|format('a', 1) }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }} {{ users|map(attribute='name')|first }} {{ 'x'|attr('upper')() }}",
     users=[{"name": "q"}])
feat("f_tojson", "{{ d|tojson }}\n{{ d|tojson(indent=2) }}\n{{ d|tojson(sort_keys=true) }}\n{{ d|tojson(separators=(',', ':')) }}\n{{ [] |tojson(indent=2) }}{{ {}|tojson(indent=2) }}\n{{ 'é\"\\\\\\n\\t\\x01'|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ [1.0, 1e20, 0.1, -0, none, true]|tojson }}",
     d={"z": 1, "a": [1, 2.5, {"k": None}], "m": "ü\"x"})

# Tests.
feat("tests", "{{ 1 is odd }}{{ 2 is even }}{{ 6 is divisibleby 3 }}{{ 'a' is string }}{{ 1 is string }}{{ 1 is number }}{{ true is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is integer }}{{ true is boolean }}{{ none is none }}{{ true is true }}{{ 0 is false }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ {} is sequence }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is ge 2 }}{{ 2 is in [1, 2] }}{{ 1 is not odd }}{{ none is not none }}{{ range is callable }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 1 is sameas 1 }}{{ 1 is gt 0 }}{{ 1 is greaterthan 0 }}{{ 1 is lessthan 0 }}")

# String methods.
feat("m_strip_split", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na\\n'.lstrip('\\n') }}|{{ 'a\\n\\n'.rstrip() }}|{{ ' a  b c '.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'x</think>y</think>z'.split('</think>')[-1] }}|{{ 'l1\\nl2\\r\\nl3'.splitlines() }}")
feat("m_misc", "{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc'.upper() }}{{ 'ABC'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'aaa'.replace('a', 'b', 2) }}{{ 'abcabc'.find('c') }}{{ 'abc'.find('z') }}{{ 'abcabc'.rfind('b') }}{{ 'abcabc'.count('bc') }}{{ '-'.join(['a', 'b']) }}{{ '{} and {}'.format(1, 'x') }}{{ '{0}{0}{n}'.format('r', n='N') }}{{ '42'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ 'ab'.islower() }}{{ 'AB'.isupper() }}{{ 'ab'.center(6, '*') }}{{ '5'.zfill(3) }}{{ 'a=b=c'.partition('=') }}")
feat("m_dict_list", "{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }} {{ d.copy() }}",
     d={"a": 1, "b": [2]})
feat("range_dict_ns", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}")

# Errors (only "an error happens" is compared, plus exact text for raise_exception).
feat("err_raise", "{{ raise_exception('Custom failure: ' ~ x) }}", x=42)
feat("err_undefined_attr", "{{ nope.attr }}")
feat("err_undefined_attr_of_missing_key", "{{ d.missing.attr }}", d={})
feat("err_add_types", "{{ 'a' + 1 }}")
feat("err_div_zero", "{{ 1 / 0 }}")
feat("err_call_undefined", "{{ nope() }}")
feat("err_unknown_filter", "{{ 1|no_such_filter }}")
feat("err_unknown_test", "{{ 1 is no_such_test }}")
feat("err_syntax_unclosed", "{% if true %}x")
feat("err_syntax_bad_token", "{{ 1 + }}")
feat("err_unsafe_append", "{% set l = [] %}{{ l.append(1) }}")
feat("err_ns_assign", "{% set d = {} %}{% set d.x = 1 %}")
feat("err_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}")
feat("err_tojson_undefined", "{{ nope|tojson }}")
feat("err_compare_types", "{{ 1 < 'a' }}")

# More corners.
feat("float_repr", "{{ [0.1, 1e22, 1.5e-7, 123456789.123, 5e-324, 1.7976931348623157e308, 100.0, 1e15, 1e16, 12345678901234567.0, 0.0001, 0.00001, -2.5, 3.0e-4] }} {{ [0.1, 1e22, 1.5e-7, 5e-324, 1e16, 0.00001]|tojson }}")
feat("str_repr_unicode", "{{ ['\\u2028', '\\x7f', '\\xa0', 'tab\\there', '\\x00', 'ok é 日'] }}")
feat("ws_mixed_lines", "  text {% if x %}y{% endif %}\n  {%- if x %}\n\n z{% endif %}\n\t{{- x }}\n   {% set q -%}\n  body\n{%- endset %}[{{ q }}]", x=1)
feat("ws_for_lines", "<ul>\n{% for m in ms %}\n    <li>{{ m }}</li>\n{% endfor %}\n</ul>\n", ms=["a", "b"])
feat("undefined_patterns", "{{ (nope or {}).get('a', 1) }} {% if nope == 'x' %}eq{% else %}ne{% endif %} {{ nope is not defined and true }} {{ d.a is defined and d.a }} {{ [nope]|length }} {{ nope ~ 'x' }}", d={"a": 0})
feat("index_patterns", "{% for m in ms %}{{ ms[loop.index0 - 1] }}{{ ms[loop.index0 + 1] if not loop.last else '' }};{% endfor %}{{ (1, 2) == [1, 2] }} {{ {'a': 1}.a }} {{ 'abc' in ['abc'] }} {{ 'x' * true }}", ms=["a", "b", "c"])
feat("nested_data", "{% for k, v in d.items() %}{{ k }}:{% for x in v %}{{ x.n if x is mapping else x }},{% endfor %}|{% endfor %}", d={"a": [1, {"n": 2}], "b": []})
feat("err_undefined_chain_is_defined", "{{ nope.x is defined }}")
feat("err_none_attr", "{{ none.x.y }}")
feat("err_iterate_int", "{% for x in 3 %}{% endfor %}")
feat("err_not_callable", "{{ 'abc'() }}")


def feature_cases():
    out = []
    for name, source, context in F:
        case = {"name": name, "source": source, "context": context}
        case.update(render(source, context))
        out.append(case)
    return out


def main():
    goldens = {"jinja2_version": jinja2.__version__, "templates": template_cases(),
               "features": feature_cases()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in goldens["templates"] + goldens["features"])
    print(f"wrote {OUT}: {len(goldens['templates'])} template cases, "
          f"{len(goldens['features'])} feature cases ({n_err} expected errors)", file=sys.stderr)


if __name__ == "__main__":
    main()
