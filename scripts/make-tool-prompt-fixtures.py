#!/usr/bin/env python3
"""Render a conversation with tools through the real chat templates of
Qwen2.5 (Hermes-style tool calls), Llama 3.1 and gpt-oss (harmony), as Hugging Face
transformers renders them (jinja2 with trim_blocks and lstrip_blocks, its
tojson filter: json.dumps with ensure_ascii=False), into
tests/fixtures/chat/tools-*.txt.  tests/unit/engine/test_toolcall.c
compares daemon/engine/chat.c's prompts with them, text for text.

The templates are llama.cpp's copies of the models' tokenizer_config.json
templates (models/templates/ in a llama.cpp checkout, e.g. the one
scripts/build-llama-cpp unpacks under ~/.cache/smoke/llama.cpp).

gpt-oss: the template's strftime_now date line ("Current date: ...") is
taken out, as chat.c writes none (chat.h); two conversations
(tools-gpt-oss.txt, and tools-gpt-oss-open.txt ending with a tool result,
where the call's content stays as analysis).

Usage: make-tool-prompt-fixtures.py LLAMA_CPP_TEMPLATES_DIR
Needs jinja2 (only to make the fixtures; the test reads the files)."""
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat")

TEMPLATES = {
    "qwen2.5": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "llama3.1": "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "gpt-oss": "openai-gpt-oss-120b.jinja",
    "gpt-oss-open": "openai-gpt-oss-120b.jinja",
}
DATE = "2024-07-26"


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def main():
    tdir = sys.argv[1]
    with open(os.path.join(OUT, "tools-conversation.json")) as f:
        conv = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: DATE
    for name, file in TEMPLATES.items():
        with open(os.path.join(tdir, file)) as f:
            tpl = env.from_string(f.read())
        msgs = conv["messages_llama"] if name.startswith("llama") else conv["messages"]
        tools = conv["tools"]
        if name.startswith("gpt-oss"):
            msgs = conv["messages_harmony_open" if name.endswith("open") else "messages_harmony"]
            tools = conv["tools_harmony"]
        text = tpl.render(messages=msgs, tools=tools, add_generation_prompt=True,
                          bos_token="", eos_token="")
        if name.startswith("gpt-oss"):
            line = "Current date: %s\n" % DATE
            assert line in text
            text = text.replace(line, "", 1)
        with open(os.path.join(OUT, "tools-%s.txt" % name), "w") as f:
            f.write(text)
        print("wrote tools-%s.txt (%d bytes)" % (name, len(text)))


if __name__ == "__main__":
    main()
