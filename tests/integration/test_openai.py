#!/usr/bin/env python3
"""Integration test: the official `openai` Python package (PyPI) as an
outside client of the real smoked, base_url http://127.0.0.1:PORT/v1.

Completions and chat, streamed and not: the SDK's typed objects must
parse, and the raw JSON of every reply and chunk must validate against the
SDK's own pydantic models (Completion, ChatCompletion, ChatCompletionChunk,
...).  Errors must raise the SDK's exception types carrying our messages,
param and code.  The reference text is the offline command's output.

Usage: test_openai.py PATH/TO/smoked
Skipped (exit 77) without the model or without the openai package; when the
interpreter running this lacks openai, the venv of scripts/setup
(${SMOKE_CACHE:-~/.cache/smoke}/venv) is tried first.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

openai = fx.import_from_venv("openai")

KEY = "openai-test-key"
PROMPT = "The capital of France is"
N = 12
check = fx.Checks()
failures = check.failures


def raises(exc_type, fn):
    """The exception fn raises if it is an exc_type, else None (printed)."""
    try:
        fn()
    except exc_type as e:
        return e
    except Exception as e:  # a wrong type is a failure, shown
        print("      raised %s: %s" % (type(e).__name__, e))
        return None
    print("      no exception")
    return None


def main():
    smoked = sys.argv[1]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    if openai is None:
        print("SKIP: the openai Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    print("openai %s" % openai.__version__)
    want = fx.offline(smoked, PROMPT, N)
    d = fx.Daemon(smoked, api_key=KEY, extra=["--concurrency", "2"])
    try:
        with d:
            checks(d, want)
        check(d.rc == 0, "daemon exit status 0 after SIGTERM (got %s)" % d.rc)
        if failures:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.cleanup()
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


def checks(d, want):
    from openai.types import Completion
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    client = openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0, timeout=600)

    models = client.models.list()
    model_id = os.path.basename(fx.MODEL)[:-len(".gguf")]
    check([m.id for m in models.data] == [model_id], "models.list(): %s" % [m.id for m in models.data])

    # Completions, whole: typed object, strict validation of the raw JSON.
    raw = client.completions.with_raw_response.create(model=model_id, prompt=PROMPT, max_tokens=N, temperature=0)
    c = raw.parse()
    strict = Completion.model_validate(raw.http_response.json())
    check(isinstance(c, Completion) and c.choices[0].text == want,
          "completions.create equals the offline output (%r vs %r)" % (c.choices[0].text, want))
    check(strict.usage.completion_tokens == N and c.choices[0].finish_reason == "length" and
          c.usage.total_tokens == c.usage.prompt_tokens + N, "Completion validates; usage and finish_reason")

    # Completions, streamed.
    text, kinds, fins = "", set(), []
    stream = client.completions.create(model=model_id, prompt=PROMPT, max_tokens=N, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    usage = None
    for ch in stream:
        kinds.add(type(ch).__name__)
        # The SDK types a stream chunk as Completion, whose finish_reason
        # does not admit the null that every chunk but the last carries (in
        # OpenAI's own API too): validate the others strictly.
        if ch.choices and ch.choices[0].finish_reason is not None:
            Completion.model_validate(ch.model_dump())
        elif ch.choices:
            check_types = isinstance(ch.choices[0].text, str) and isinstance(ch.id, str)
            kinds.add("Completion" if check_types else "bad chunk")
        if ch.choices:
            text += ch.choices[0].text
            fins.append(ch.choices[0].finish_reason)
        if ch.usage:
            usage = ch.usage
    check(text == want and kinds == {"Completion"}, "completions stream concatenation equals (%r)" % text)
    check(fins[-1] == "length" and all(f is None for f in fins[:-1]) and usage and usage.completion_tokens == N,
          "stream: finish_reason last, include_usage chunk")

    # Logprobs through the typed objects.
    c = client.completions.create(prompt=PROMPT, model=model_id, max_tokens=3, temperature=0, logprobs=2)
    lp = c.choices[0].logprobs
    check(lp is not None and len(lp.token_logprobs) == 3 and all(len(t) >= 1 for t in lp.top_logprobs),
          "completion logprobs parse")

    # Chat, whole and streamed.
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
    raw = client.chat.completions.with_raw_response.create(model=model_id, messages=msgs, max_tokens=8,
                                                             temperature=0, logprobs=True, top_logprobs=2)
    cc = raw.parse()
    ChatCompletion.model_validate(raw.http_response.json())
    reply = cc.choices[0].message.content
    check(isinstance(cc, ChatCompletion) and cc.choices[0].message.role == "assistant" and isinstance(reply, str)
          and cc.usage.completion_tokens == len(cc.choices[0].logprobs.content),
          "chat.completions.create: %r, logprobs per token" % reply)
    check(all(len(t.top_logprobs) == 2 for t in cc.choices[0].logprobs.content), "chat top_logprobs parse")
    text, roles, n_chunks = "", [], 0
    for ch in client.chat.completions.create(model=model_id, messages=msgs, max_tokens=8, temperature=0,
                                             stream=True):
        ChatCompletionChunk.model_validate(ch.model_dump())
        n_chunks += isinstance(ch, ChatCompletionChunk)
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            roles.append(ch.choices[0].delta.role)
    check(text == reply and roles[0] == "assistant" and n_chunks >= 2,
          "chat stream: ChatCompletionChunk objects, concatenation equals (%r)" % text)

    # Errors: the SDK's exception types with our message, param and code.
    bad = openai.OpenAI(base_url=d.url + "/v1", api_key="wrong", max_retries=0, timeout=60)
    e = raises(openai.AuthenticationError, lambda: bad.completions.create(model=model_id, prompt="x", max_tokens=1))
    check(e is not None and e.status_code == 401 and "missing or wrong API key" in e.message,
          "wrong key -> AuthenticationError (%s)" % e)
    e = raises(openai.BadRequestError, lambda: client.completions.create(model=model_id, prompt="x",
                                                                         temperature=-1))
    check(e is not None and e.status_code == 400 and e.param == "temperature" and e.code == "out_of_range"
          and "'temperature' is -1" in e.message, "temperature -1 -> BadRequestError (%s)" % e)
    e = raises(openai.BadRequestError, lambda: client.chat.completions.create(
        model=model_id, messages=[{"role": "wizard", "content": "x"}]))
    check(e is not None and e.param == "messages[0].role", "bad role -> BadRequestError, param messages[0].role")
    e = raises(openai.NotFoundError, lambda: client.completions.create(model="gpt-4", prompt="x", max_tokens=1))
    check(e is not None and e.status_code == 404 and "gpt-4" in e.message, "unknown model -> NotFoundError")
    e = raises(openai.BadRequestError, lambda: client.completions.create(model=model_id, prompt="x",
                                                                         max_tokens=10 ** 9))
    check(e is not None and e.param == "max_tokens", "huge max_tokens -> BadRequestError, param max_tokens")
    closed = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % fx.closed_port(), api_key=KEY, max_retries=0,
                           timeout=30)
    e = raises(openai.APIConnectionError, lambda: closed.completions.create(model=model_id, prompt="x"))
    check(e is not None, "closed port -> APIConnectionError")
    c = client.completions.create(model=model_id, prompt="Hi", max_tokens=1, temperature=0)
    check(c.usage.completion_tokens == 1, "still serving after the errors")


if __name__ == "__main__":
    sys.exit(main())
