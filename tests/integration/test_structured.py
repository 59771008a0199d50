#!/usr/bin/env python3
"""Integration test: structured outputs (response_format) through the
official `openai` Python package against the real smoked.

Every schema of tests/unit/grammar/schemas.json (the unit test walks the
same ones) is sent to /v1/chat/completions with response_format
json_schema, streamed and not, three requests at a time (the daemon runs
them in one batch); every answer must end with finish_reason "stop", parse
as JSON and validate against its schema with the `jsonschema` package.
Three of them alone and then batched give the same answers (same seeds).
Then json_object mode, /v1/completions with response_format (a smoke
extension: OpenAI's legacy endpoint has none), and 400s naming an
unsupported keyword and a strict-mode violation.

Usage: test_structured.py PATH/TO/smoked
Skipped (exit 77) without the model, openai or jsonschema.
"""
import concurrent.futures
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

openai = fx.import_from_venv("openai")

ROOT = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KEY = "structured-test-key"
check = fx.Checks()
failures = check.failures


def load_schemas():
    with open(os.path.join(ROOT, "tests", "unit", "grammar", "schemas.json")) as f:
        return json.load(f)


def prompt_for(item):
    return ("Reply with JSON only. Produce an example value for '%s' that follows this JSON schema: %s"
            % (item["name"], json.dumps(item["schema"])))


def main():
    smoked = sys.argv[1]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    if openai is None:
        print("SKIP: the openai Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        print("SKIP: the jsonschema Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    d = fx.Daemon(smoked, api_key=KEY, extra=["--concurrency", "3"])
    try:
        with d:
            checks(d)
        check(d.rc == 0, "daemon exit status 0 after SIGTERM (got %s)" % d.rc)
        if failures:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.cleanup()
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


def validate(schema, text):
    """None if text is JSON valid under schema, else why not."""
    import jsonschema
    try:
        value = json.loads(text)
    except ValueError as e:
        return "not JSON (%s)" % e
    try:
        jsonschema.Draft202012Validator(schema).validate(value)
    except jsonschema.ValidationError as e:
        return "invalid: %s at %s" % (e.message, list(e.absolute_path))
    return None


def run_one(client, model_id, item, stream, seed):
    """(text, finish_reason) of one chat request with the item's schema."""
    fmt = {"type": "json_schema",
           "json_schema": {"name": re.sub(r"[^A-Za-z0-9_-]", "_", item["name"]), "schema": item["schema"],
                           "strict": bool(item.get("strict"))}}
    args = dict(model=model_id, messages=[{"role": "user", "content": prompt_for(item)}],
                response_format=fmt, max_tokens=500, temperature=0.7, seed=seed)
    if not stream:
        r = client.chat.completions.create(**args)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for chunk in client.chat.completions.create(stream=True, **args):
        if chunk.choices:
            c = chunk.choices[0]
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish


def checks(d):
    client = openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0, timeout=900)
    model_id = client.models.list().data[0].id
    schemas = load_schemas()
    check(len(schemas) >= 30, "%d schemas" % len(schemas))

    jobs = []
    for i, item in enumerate(schemas):
        for stream in (False, True):
            jobs.append((item, stream, 1000 + 2 * i + stream))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futs = [(item, stream, pool.submit(run_one, client, model_id, item, stream, seed))
                for item, stream, seed in jobs]
        for item, stream, fut in futs:
            what = "%s (%s)" % (item["name"], "streamed" if stream else "whole")
            try:
                text, finish = fut.result()
            except Exception as e:  # an SDK error is a failure, shown
                check(False, "%s: %s: %s" % (what, type(e).__name__, e))
                continue
            why = validate(item["schema"], text)
            check(finish == "stop" and why is None,
                  "%s: finish %s, %s: %r" % (what, finish, why or "valid", text[:160]))

    # Batching changes nothing: three schemas alone, then at once, same seeds.
    trio = [schemas[0], schemas[12], schemas[36 % len(schemas)]]
    alone = [run_one(client, model_id, item, False, 77) for item in trio]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda item: run_one(client, model_id, item, False, 77), trio))
    check(alone == together, "the same answers alone and batched: %s" % [a[0][:40] for a in alone])

    # json_object: any JSON object.
    for stream in (False, True):
        args = dict(model=model_id, max_tokens=300, temperature=0.5, seed=7,
                    messages=[{"role": "user", "content": "Describe a cat as a JSON object."}],
                    response_format={"type": "json_object"})
        if stream:
            text, finish = "", None
            for chunk in client.chat.completions.create(stream=True, **args):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
        else:
            r = client.chat.completions.create(**args)
            text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        why = validate({"type": "object"}, text)
        check(finish == "stop" and why is None,
              "json_object (%s): finish %s, %s: %r" % ("streamed" if stream else "whole", finish,
                                                       why or "an object", text[:160]))

    # /v1/completions takes it too (extra_body: the SDK's completions has no such argument).
    schema = {"type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 97},
              "minItems": 3, "maxItems": 3}
    r = client.completions.create(model=model_id, prompt="Three prime numbers as a JSON array:",
                                  max_tokens=60, temperature=0, extra_body={"response_format": {
                                      "type": "json_schema", "json_schema": {"name": "primes", "schema": schema}}})
    why = validate(schema, r.choices[0].text)
    check(r.choices[0].finish_reason == "stop" and why is None,
          "completions + json_schema: %s: %r" % (why or "valid", r.choices[0].text))

    # text is the default and changes nothing.
    r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=4, temperature=0, response_format={"type": "text"})
    check(r.choices[0].finish_reason in ("stop", "length"), "response_format text accepted")

    # Refusals: 400 naming the keyword, param response_format.
    bad = [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x+$"}}}, False,
         "unsupported_schema_keyword", "pattern"),
        ({"type": "string", "format": "date-time"}, False, "unsupported_schema_keyword", "format"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, False, "unsupported_schema_keyword", "oneOf"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, True,
         "invalid_schema", "additionalProperties"),
    ]
    for schema, strict, code, word in bad:
        try:
            client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": "x"}], max_tokens=4,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "bad", "schema": schema, "strict": strict}})
            check(False, "%s: no error" % word)
        except openai.BadRequestError as e:
            body = e.body if isinstance(e.body, dict) else {}
            check(e.status_code == 400 and body.get("param") == "response_format" and body.get("code") == code
                  and word in (body.get("message") or ""),
                  "400 for %s: %s" % (word, body))
    try:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"}],
                                       max_tokens=4, response_format={"type": "yaml"})
        check(False, "type yaml: no error")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and (e.body or {}).get("param") == "response_format",
              "400 for response_format type yaml: %s" % e.body)


if __name__ == "__main__":
    sys.exit(main())
