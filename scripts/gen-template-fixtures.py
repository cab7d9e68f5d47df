#!/usr/bin/env python3
"""Renders the chat-template fixtures that kiln-engine's chat_template tests compare against.

Every `<name>.jinja` in the fixture directory is rendered with Python's jinja2 configured the
way Hugging Face transformers renders `tokenizer.chat_template` (trim_blocks, lstrip_blocks,
loop controls, `raise_exception`, a `tojson` that is `json.dumps`), for a fixed set of
conversations. The results go to `<name>.json` next to the template; the Rust tests assert
that Kiln's rendering is byte-identical.

    python scripts/gen-template-fixtures.py crates/kiln-engine/tests/fixtures/templates

`--extract NAME=MODEL.gguf` first (re)writes `NAME.jinja` from a GGUF's
`tokenizer.chat_template` (needs the `gguf` package), which is how `smollm2.jinja` was made.
"""

import argparse
import json
import sys
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RaisedException(Exception):
    """What the template's `raise_exception(msg)` throws; recorded as an expected error."""


def raise_exception(message):
    raise RaisedException(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Hugging Face replaces Jinja's HTML-escaping `tojson` with plain json.dumps.
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def hf_environment():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def msg(role, content):
    return {"role": role, "content": content}


UNICODE = "  ¿Qué tal? 日本語のテキスト 🎉🦀 — naïve café, Ελληνικά, עברית\n"

CONVERSATIONS = {
    "empty": [],
    "single_user": [msg("user", "Hello!")],
    "system_user": [msg("system", "You are terse."), msg("user", "What is 2+2?")],
    "multi_turn": [
        msg("system", "You are a helpful assistant."),
        msg("user", "Hi"),
        msg("assistant", "Hello! How can I help?"),
        msg("user", "Tell me a joke."),
    ],
    "multi_turn_no_system": [
        msg("user", "First question"),
        msg("assistant", "First answer"),
        msg("user", "Second question"),
        msg("assistant", "Second answer"),
    ],
    "unicode_and_whitespace": [msg("user", UNICODE), msg("assistant", "\n\n  Olé! 🎉  \n")],
    "template_syntax_in_content": [msg("user", "{{ not_a_variable }} {% raw %} \\n \" ' <b>")],
    "two_users_in_a_row": [msg("user", "one"), msg("user", "two")],
    "assistant_first": [msg("assistant", "I speak first"), msg("user", "ok")],
    "tool_result": [
        msg("user", "Weather in Paris?"),
        msg("tool", '{"temp_c": 21}'),
        msg("tool", '{"humidity": 0.4}'),
    ],
    "unknown_role": [msg("narrator", "Once upon a time")],
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city, e.g. \"Paris\" — in °C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 16},
                "threshold": {"type": "number", "default": 0.5},
            },
            "required": ["city"],
        },
    },
}

# Values whose JSON rendering differs between naive serializers and Python's json.dumps.
AWKWARD_JSON = {
    "zeta": 1,
    "alpha": [0.1, 1.0, -0.0, 1e16, 1.5e-07, 123456.789, 1e100, -2, True, False, None],
    "text": "quote\" backslash\\ newline\n tab\t ctrl\u0001 del\u007f <tag>&'amp' é 😀 \u2028",
    "nested": {"empty_list": [], "empty_map": {}, "list": [[1, 2], {"k": "v"}]},
}

# Extra template variables (beyond messages/add_generation_prompt/bos/eos), by label.
EXTRAS = {"tools": {"tools": [WEATHER_TOOL]}, "data": {"data": AWKWARD_JSON}}

PLAIN = [(conversation, None) for conversation in CONVERSATIONS]

# Per template: (bos_token, eos_token, [(conversation, label of extra variables or None)]).
FIXTURES = {
    "smollm2": ("<|im_start|>", "<|im_end|>", PLAIN),
    "gemma3": ("<bos>", "<eos>", PLAIN),
    "qwen2.5": ("", "<|im_end|>", PLAIN + [("system_user", "tools"), ("single_user", "tools")]),
    "hf-conventions": ("<s>", "</s>", PLAIN + [("single_user", "data")]),
}


def render_cases(env, source, bos_token, eos_token, cases):
    template = env.from_string(source)
    out = []
    for conversation, label in cases:
        messages = CONVERSATIONS[conversation]
        extra = EXTRAS[label] if label else {}
        for add_generation_prompt in (False, True):
            name = "+".join(
                part
                for part in (conversation, label, "gen" if add_generation_prompt else None)
                if part
            )
            case = {
                "name": name,
                "messages": messages,
                "add_generation_prompt": add_generation_prompt,
            }
            if extra:
                case["extra"] = extra
            try:
                case["expected"] = template.render(
                    messages=messages,
                    add_generation_prompt=add_generation_prompt,
                    bos_token=bos_token,
                    eos_token=eos_token,
                    **extra,
                )
            except RaisedException as e:
                case["raises"] = str(e)
            except jinja2.TemplateError as e:
                case["fails"] = f"{type(e).__name__}: {e}"
            out.append(case)
    return out


def extract(spec, directory):
    import gguf

    name, _, path = spec.partition("=")
    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    source = bytes(field.parts[field.data[0]])
    (directory / f"{name}.jinja").write_bytes(source)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="fixture directory holding NAME.jinja files")
    parser.add_argument(
        "--extract",
        action="append",
        default=[],
        metavar="NAME=MODEL.gguf",
        help="write NAME.jinja from the GGUF's tokenizer.chat_template first",
    )
    args = parser.parse_args()
    for spec in args.extract:
        extract(spec, args.directory)

    env = hf_environment()
    for name, (bos_token, eos_token, cases) in FIXTURES.items():
        template_file = args.directory / f"{name}.jinja"
        source = template_file.read_text(encoding="utf-8")
        fixture = {
            "template": template_file.name,
            "bos_token": bos_token,
            "eos_token": eos_token,
            "cases": render_cases(env, source, bos_token, eos_token, cases),
        }
        out = args.directory / f"{name}.json"
        out.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out} ({len(fixture['cases'])} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
