#!/usr/bin/env python3
"""Integration test: tool calls (tools, tool_choice, tool_calls, role
"tool") through the official `openai` Python package against the real
smoked, on one model per chat format that has tool calls:

  chatml  tiny-qwen2 (scripts/make-test-models; random weights)
  llama3  tiny-llama-bpe (the same; its vocabulary detects Llama 3)
  gemma   the default Gemma 3 270M (a base model; its vocabulary detects Gemma)

With random weights the text is noise, but a call the grammar constrains
must hold whatever the weights: for tool_choice "required" and a named
function, every answer (streamed and not, several seeds) has finish_reason
"tool_calls", content null, one call with an id "call_...", type
"function", a name of the tools (the named one) and arguments that parse
and validate with `jsonschema` against the function's parameters.  The
stream's deltas (role first, then tool_calls with index 0: id, type and
name once, then argument fragments) reassemble to the non-streamed answer
of the same seed.  "auto" gives either such a call or text, the same
streamed and not; "none" never a call.  A history with an assistant's
tool_calls and role "tool" results is accepted and makes the prompt longer.
Bad requests get 400 naming the field; a model without a chat format
(tiny-llama-spm: plain) refuses tools.

harmony (gpt-oss): a tiny random model with the real o200k_harmony
vocabulary (SMOKE_O200K_DIR's ggml-vocab-gpt-oss.gguf, made here by
scripts/make-tiny-gguf.py into a temporary folder; skipped without it):
"required" (one tool, several) and a named function give a valid call,
streamed as not; "auto" a call that validates (its grammar starts at the
call's header) or text, the same streamed and not; a history with a call
and its result.

Usage: test_tools.py PATH/TO/smoked
Skipped (exit 77) without the models, openai or jsonschema.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

openai = fx.import_from_venv("openai")

KEY = "tools-test-key"
TEST_MODELS = os.environ.get("SMOKE_TEST_MODELS") or os.path.expanduser("~/.cache/smoke/test-models")
check = fx.Checks()
failures = check.failures

WEATHER = {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
           "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 24},
                          "unit": {"enum": ["celsius", "fahrenheit"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 14}}}
ORDER = {"type": "object", "required": ["items"],
         "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 3,
                                  "items": {"type": "object", "required": ["sku", "qty"],
                                            "properties": {"sku": {"type": "string", "maxLength": 8},
                                                           "qty": {"type": "integer", "minimum": 1,
                                                                   "maximum": 9}}}},
                        "note": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "null"}]}}}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "place_order", "description": "Order items",
                                      "parameters": ORDER, "strict": False}},
    {"type": "function", "function": {"name": "now", "description": "The time now"}},
]
PARAMS = {t["function"]["name"]: t["function"].get("parameters", {"type": "object", "properties": {}})
          for t in TOOLS}
MESSAGES = [{"role": "system", "content": "You call tools."},
            {"role": "user", "content": "What is the weather in Paris in celsius?"}]


def main():
    smoked = sys.argv[1]
    models = [("chatml", os.path.join(TEST_MODELS, "tiny-qwen2.gguf"), 3),
              ("llama3", os.path.join(TEST_MODELS, "tiny-llama-bpe.gguf"), 3),
              ("gemma", fx.MODEL, 1)]
    present = [m for m in models if os.path.exists(m[1])]
    if not present:
        print("SKIP: no test model (scripts/make-test-models, scripts/fetch-model)")
        return fx.SKIP
    if openai is None:
        print("SKIP: the openai Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        print("SKIP: the jsonschema Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    for name, path, seeds in present:
        print("---- %s (%s) ----" % (name, os.path.basename(path)))
        run_daemon(smoked, path, lambda d, n=name, s=seeds: checks(d, n, s))
    harmony_model(smoked)
    plain = os.path.join(TEST_MODELS, "tiny-llama-spm.gguf")
    if os.path.exists(plain):
        run_daemon(smoked, plain, plain_refuses)
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


def harmony_model(smoked):
    import subprocess
    import tempfile
    vocab = os.path.join(os.environ.get("SMOKE_O200K_DIR") or os.path.expanduser("~/.cache/smoke/o200k"),
                         "ggml-vocab-gpt-oss.gguf")
    if not os.path.exists(vocab):
        print("---- harmony: skipped (no %s: scripts/fetch-o200k) ----" % vocab)
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny-harmony.gguf")
        subprocess.run([sys.executable, os.path.join(root, "scripts", "make-tiny-gguf.py"), "--arch", "llama",
                        "--vocab", vocab, "--out", path], check=True, stdout=subprocess.DEVNULL)
        print("---- harmony (tiny llama, o200k_harmony vocabulary) ----")
        run_daemon(smoked, path, harmony_checks)


def harmony_checks(d):
    client, model_id = client_for(d)
    names = [t["function"]["name"] for t in TOOLS]
    for tools, choice, allowed, seeds in ((TOOLS[:1], "required", ["get_weather"], (11,)),
                                          (TOOLS, "required", names, (11, 12, 13)),
                                          (TOOLS, {"type": "function", "function": {"name": "place_order"}},
                                           ["place_order"], (11, 12))):
        label = (choice if isinstance(choice, str) else "named") + " of %d" % len(tools)
        for seed in seeds:
            whole = ask(client, model_id, False, tools=tools, tool_choice=choice, seed=seed, max_tokens=160)
            streamed = ask(client, model_id, True, tools=tools, tool_choice=choice, seed=seed, max_tokens=160)
            for how, (content, calls, finish, problems) in (("whole", whole), ("streamed", streamed)):
                why = valid_call(calls[0], allowed) if len(calls) == 1 else "%d calls" % len(calls)
                check(finish == "tool_calls" and content is None and why is None and not problems,
                      "harmony %s %s seed %d: finish %s, content %r, %s %s" % (label, how, seed, finish, content,
                                                                             why or "valid call", problems))
            check(whole[1] and streamed[1] and whole[1][0][1:] == streamed[1][0][1:],
                  "harmony %s seed %d: the stream reassembles to the whole answer: %s vs %s"
                  % (label, seed, whole[1][:1], streamed[1][:1]))
    # auto: free text until the model opens a call's header, then the
    # call's grammar (grammar_set_trigger): text, or a call that validates;
    # streamed as not.  A random model practically never writes the
    # header's tokens in order, so the call itself is shown token by
    # token in test_toolcall.c (grammar_harmony_trigger).
    for seed in (11, 12, 13, 14):
        whole = ask(client, model_id, False, tool_choice="auto", seed=seed, max_tokens=40)
        streamed = ask(client, model_id, True, tool_choice="auto", seed=seed, max_tokens=40)
        content, calls, finish, _ = whole
        ok = (finish == "tool_calls" and len(calls) == 1 and valid_call(calls[0], names) is None) if calls else \
            (finish in ("stop", "length") and isinstance(content, str))
        check(ok and not streamed[3] and (whole[0] or "") == (streamed[0] or "") and whole[2] == streamed[2]
              and [c[1:] for c in whole[1]] == [c[1:] for c in streamed[1]],
              "harmony auto seed %d: %s %r %s, streamed %s %r %s" % (seed, finish, (content or "")[:40], calls,
                                                                    streamed[2], (streamed[0] or "")[:40],
                                                                    streamed[1]))
    r = client.chat.completions.create(model=model_id, messages=MESSAGES, tools=TOOLS[:1], tool_choice="required",
                                       max_tokens=160, seed=5)
    call = r.choices[0].message.tool_calls[0]
    history = MESSAGES + [r.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "22 degrees, sunny"}]
    r2 = client.chat.completions.create(model=model_id, messages=history, tools=TOOLS[:1], max_tokens=8, seed=5)
    r0 = client.chat.completions.create(model=model_id, messages=MESSAGES, tools=TOOLS[:1], max_tokens=8, seed=5)
    check(r2.usage.prompt_tokens > r0.usage.prompt_tokens + 10,
          "harmony: history with tool_calls and a tool result accepted (%d > %d prompt tokens)"
          % (r2.usage.prompt_tokens, r0.usage.prompt_tokens))


def run_daemon(smoked, model, fn):
    d = fx.Daemon(smoked, api_key=KEY, model=model, extra=["--concurrency", "2"])
    before = len(failures)
    try:
        with d:
            fn(d)
        check(d.rc == 0, "daemon exit status 0 after SIGTERM (got %s)" % d.rc)
        if len(failures) > before:
            print("---- daemon log ----\n" + d.log_text()[-4000:])
    finally:
        d.cleanup()


def client_for(d):
    c = openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0, timeout=900)
    return c, c.models.list().data[0].id


def ask(client, model_id, stream, **kw):
    """The answer as (content, [(id, name, arguments)], finish_reason), and
    for a stream the problems of its deltas' shape."""
    args = dict(model=model_id, messages=MESSAGES, tools=TOOLS, max_tokens=120, temperature=1.0)
    args.update(kw)
    if not stream:
        r = client.chat.completions.create(**args)
        m = r.choices[0].message
        calls = [(c.id, c.function.name, c.function.arguments, c.type) for c in (m.tool_calls or [])]
        return m.content, calls, r.choices[0].finish_reason, []
    content, calls, finish, problems, first = None, {}, None, [], True
    for chunk in client.chat.completions.create(stream=True, **args):
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        d = c.delta
        if first and d.role != "assistant":
            problems.append("the first delta has no role")
        first = False
        if d.content is not None:
            content = (content or "") + d.content
        for tc in d.tool_calls or []:
            if tc.index != 0:
                problems.append("tool_calls index %s" % tc.index)
            if tc.index not in calls:
                if not (tc.id and tc.type == "function" and tc.function and tc.function.name is not None):
                    problems.append("the call's first delta lacks id, type or name: %s" % tc)
                calls[tc.index] = [tc.id, tc.function.name, tc.function.arguments or "", tc.type]
            else:
                if tc.id or (tc.function and tc.function.name):
                    problems.append("id or name repeated in a later delta: %s" % tc)
                calls[tc.index][2] += (tc.function.arguments or "") if tc.function else ""
        finish = c.finish_reason or finish
    return content, [tuple(v) for _, v in sorted(calls.items())], finish, problems


def valid_call(call, names):
    """None if call is (call_..., a name of names, JSON valid under its parameters, function)."""
    import jsonschema
    cid, name, arguments, ty = call
    if not (isinstance(cid, str) and cid.startswith("call_") and len(cid) > 5 and ty == "function"):
        return "id %r, type %r" % (cid, ty)
    if name not in names:
        return "name %r not one of %s" % (name, names)
    try:
        value = json.loads(arguments)
    except ValueError as e:
        return "arguments not JSON (%s): %r" % (e, arguments)
    try:
        jsonschema.Draft202012Validator(PARAMS[name]).validate(value)
    except jsonschema.ValidationError as e:
        return "arguments invalid: %s: %r" % (e.message, arguments)
    return None


def checks(d, fmt, n_seeds):
    client, model_id = client_for(d)
    names = [t["function"]["name"] for t in TOOLS]
    seeds = [11 + k for k in range(n_seeds)]

    # required and named: always one valid call, streamed as not.
    for choice, allowed in (("required", names),
                            ({"type": "function", "function": {"name": "place_order"}}, ["place_order"])):
        label = choice if isinstance(choice, str) else "named"
        for seed in seeds:
            whole = ask(client, model_id, False, tool_choice=choice, seed=seed)
            streamed = ask(client, model_id, True, tool_choice=choice, seed=seed)
            for how, (content, calls, finish, problems) in (("whole", whole), ("streamed", streamed)):
                why = valid_call(calls[0], allowed) if len(calls) == 1 else "%d calls" % len(calls)
                check(finish == "tool_calls" and content is None and why is None and not problems,
                      "%s %s %s seed %d: finish %s, content %r, %s %s" % (fmt, label, how, seed, finish, content,
                                                                         why or "valid call", problems))
            check(whole[1] and streamed[1] and whole[1][0][1:] == streamed[1][0][1:],
                  "%s %s seed %d: the stream reassembles to the whole answer: %s vs %s"
                  % (fmt, label, seed, whole[1][:1], streamed[1][:1]))

    # auto: a valid call or text; the same streamed and not.
    for seed in seeds + ([101] if n_seeds > 1 else []):
        whole = ask(client, model_id, False, tool_choice="auto", seed=seed, max_tokens=40)
        streamed = ask(client, model_id, True, tool_choice="auto", seed=seed, max_tokens=40)
        content, calls, finish, _ = whole
        if calls:
            ok = finish == "tool_calls" and content is None and len(calls) == 1 and valid_call(calls[0], names) is None
        else:
            ok = finish in ("stop", "length") and isinstance(content, str)
        check(ok and not streamed[3], "%s auto seed %d: finish %s, content %r, calls %s %s"
              % (fmt, seed, finish, (content or "")[:60], calls, streamed[3]))
        check((whole[0] or "") == (streamed[0] or "") and [c[1:] for c in whole[1]] == [c[1:] for c in streamed[1]]
              and whole[2] == streamed[2],
              "%s auto seed %d: streamed as whole (%r/%s vs %r/%s)" % (fmt, seed, (whole[0] or "")[:40], whole[2],
                                                                      (streamed[0] or "")[:40], streamed[2]))

    # none: never a call (the tools are in the prompt all the same).
    for seed in seeds:
        for stream in (False, True):
            content, calls, finish, _ = ask(client, model_id, stream, tool_choice="none", seed=seed, max_tokens=24)
            check(not calls and finish in ("stop", "length") and isinstance(content, str),
                  "%s none seed %d %s: finish %s, calls %s" % (fmt, seed, stream, finish, calls))

    # A history with a call and its result (the openai objects round-trip).
    r = client.chat.completions.create(model=model_id, messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                       max_tokens=120, seed=5)
    call = r.choices[0].message.tool_calls[0]
    history = MESSAGES + [r.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "22 degrees, sunny"}]
    r2 = client.chat.completions.create(model=model_id, messages=history, tools=TOOLS, max_tokens=8, seed=5)
    r0 = client.chat.completions.create(model=model_id, messages=MESSAGES, tools=TOOLS, max_tokens=8, seed=5)
    check(r2.usage.prompt_tokens > r0.usage.prompt_tokens + 10,
          "%s: history with tool_calls and a tool result accepted (%d > %d prompt tokens)"
          % (fmt, r2.usage.prompt_tokens, r0.usage.prompt_tokens))
    r3 = client.chat.completions.create(model=model_id, messages=history, max_tokens=4, seed=5)
    check(r3.choices[0].finish_reason in ("stop", "length") and not r3.choices[0].message.tool_calls,
          "%s: such a history without tools" % fmt)

    if fmt == "chatml":
        refusals(client, model_id)


def expect_400(client, model_id, param, what, code=None, **kw):
    args = dict(model=model_id, messages=MESSAGES, max_tokens=4)
    args.update(kw)
    try:
        client.chat.completions.create(**args)
        check(False, "%s: no error" % what)
    except openai.BadRequestError as e:
        body = e.body if isinstance(e.body, dict) else {}
        check(e.status_code == 400 and body.get("param") == param and (code is None or body.get("code") == code),
              "400 naming %s for %s: %s" % (param, what, body))


def refusals(client, model_id):
    fn = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    expect_400(client, model_id, "tools", "tools not an array", tools={"type": "function"})
    expect_400(client, model_id, "tools[0].function.name", "a name with a space",
               tools=[{"type": "function", "function": {"name": "a b"}}])
    expect_400(client, model_id, "tools[0].function", "no function", tools=[{"type": "function"}])
    expect_400(client, model_id, "tools[1].function.name", "two tools of one name",
               tools=[{"type": "function", "function": fn}, {"type": "function", "function": fn}])
    expect_400(client, model_id, "tools[0]", "an unknown tool field",
               tools=[{"type": "function", "function": fn, "extra": 1}])
    expect_400(client, model_id, "tool_choice", "a function not in tools", tools=TOOLS,
               tool_choice={"type": "function", "function": {"name": "nope"}})
    expect_400(client, model_id, "tool_choice", "tool_choice without tools", tool_choice="required")
    expect_400(client, model_id, "tool_choice", "tool_choice any", tools=TOOLS, tool_choice="any")
    expect_400(client, model_id, "tools[0].function.parameters", "an unsupported keyword",
               code="unsupported_schema_keyword",
               tools=[{"type": "function", "function": {"name": "f", "parameters": {
                   "type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}}}])
    expect_400(client, model_id, "response_format", "response_format with tools", tools=TOOLS,
               response_format={"type": "json_object"})
    expect_400(client, model_id, "logprobs", "logprobs with a call", tools=TOOLS, logprobs=True)
    expect_400(client, model_id, "stop", "stop with a call", tools=TOOLS, stop=["x"])
    expect_400(client, model_id, "messages[2].tool_call_id", "a tool message without tool_call_id",
               messages=MESSAGES + [{"role": "tool", "content": "x"}])
    expect_400(client, model_id, "messages[2].tool_calls[0].function.arguments", "arguments not JSON",
               messages=MESSAGES + [{"role": "assistant", "tool_calls": [
                   {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}])
    expect_400(client, model_id, "messages[1].tool_calls", "tool_calls on a user message",
               messages=[MESSAGES[0], {"role": "user", "content": "x", "tool_calls": []}])
    # parallel_tool_calls is accepted (one call at most is generated anyway)
    r = client.chat.completions.create(model=model_id, messages=MESSAGES, tools=TOOLS, max_tokens=100,
                                       tool_choice="required", parallel_tool_calls=False, seed=3)
    check(r.choices[0].finish_reason == "tool_calls", "parallel_tool_calls false accepted")


def plain_refuses(d):
    client, model_id = client_for(d)
    expect_400(client, model_id, "tools", "tools with the plain format", code="unsupported", tools=TOOLS)
    expect_400(client, model_id, "messages", "a tool result with the plain format", code="unsupported",
               messages=MESSAGES + [{"role": "tool", "tool_call_id": "c", "content": "x"}])


if __name__ == "__main__":
    sys.exit(main())
