#!/usr/bin/env python3
"""Integration test: start the real smoked on a free loopback port with the
default model and drive it over HTTP as a client would.

Usage: test_daemon.py PATH/TO/smoked
The model comes from $SMOKE_MODEL (default ~/.cache/smoke/models/
gemma-3-270m-q4_k_m.gguf); without it the test is skipped (exit 77).
Responses are validated against proto/openapi.yaml when PyYAML and
jsonschema are importable (they are installed by scripts/setup).
Expected values come from outside the HTTP path: the offline command's
output for the same prompt, and the request's own inputs.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402  (model path, ports, offline output, starting smoked)

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = fx.MODEL
KEY = "integration-test-key"
MAX_BODY = 64 * 1024
check = fx.Checks()
failures = check.failures


# ---- schema validation against proto/openapi.yaml ----
valid, spec = fx.schema_validator(ROOT)


# ---- HTTP helpers ----
class Client:
    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, key=KEY, headers=None, raw=None, timeout=600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode("utf-8")
        c.close()
        try:
            js = json.loads(text)
        except ValueError:
            js = None
        return r.status, r.headers, js, text

    def stream(self, path, body, key=KEY):
        """Return the parsed data events (the last one is '[DONE]')."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", path, body=json.dumps(dict(body, stream=True)),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
        r = c.getresponse()
        events = []
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                line = ev.decode("utf-8")
                assert line.startswith("data: "), line
                payload = line[6:]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
        c.close()
        return r.status, r.headers, events


def offline(prompt, n):
    return fx.offline(SMOKED, prompt, n)  # exactly the continuation: no newline on a pipe


def on_loading(status, body):
    try:
        state = json.loads(body)["status"]
    except (ValueError, KeyError, TypeError):
        state = None
    check(status == 503 and state == "loading", "health is 503 'loading' while loading")


def main():
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    d = fx.Daemon(SMOKED, api_key=KEY,
                  extra=["--set", "limits.max_body=%d" % MAX_BODY, "--max-tokens", "512", "--concurrency", "2",
                         "--queue", "1", "--shutdown-grace", "2", "--log-level", "debug"])
    d.start()
    cl = Client(d.port)
    try:
        ready = d.wait_ready(timeout=120, on_loading=on_loading)
        check(ready, "daemon became ready")
        if not ready:
            return 1
        run_checks(cl, d.proc)
    finally:
        if d.proc.poll() is None:
            rc = d.stop(timeout=30)
            check(rc == 0, "SIGTERM: exit status 0 (got %s)" % rc if rc is not None
                  else "SIGTERM: daemon stopped within 30 s")
        text = d.log_text()
        check("stopped" in text, "log says 'stopped'")
        if failures:
            print("---- daemon log ----\n" + text[-6000:])
        d.cleanup()
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


def good_request(cl, after):
    s, _, js, _ = cl.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "temperature": 0})
    check(s == 200 and js["usage"]["completion_tokens"] == 1, "still serving after: " + after)


def run_checks(cl, proc):
    s, _, js, _ = cl.request("GET", "/health", key=None)
    check(s == 200 and valid(js, "Health") and js["status"] == "ok", "GET /health 200 ok")
    s, _, js, _ = cl.request("GET", "/v1/models")
    check(s == 200 and valid(js, "ModelList"), "GET /v1/models")
    model_id = js["data"][0]["id"]
    check(model_id == os.path.basename(MODEL)[:-5], "model id is the file name")

    # Tokenize / detokenize round trip.
    s, _, js, _ = cl.request("POST", "/tokenize", {"content": "Hello world, this is smoke."})
    check(s == 200 and valid(js, "TokenizeResponse"), "POST /tokenize")
    toks = js["tokens"]
    s, _, js2, _ = cl.request("POST", "/tokenize", {"content": "Hello", "add_special": False})
    check(s == 200 and len(js2["tokens"]) == 1 and js2["tokens"][0] == toks[1], "add_special=false drops BOS")
    s, _, js, _ = cl.request("POST", "/detokenize", {"tokens": toks})
    check(s == 200 and valid(js, "DetokenizeResponse") and js["content"] == "Hello world, this is smoke.",
          "POST /detokenize round trip")

    # Greedy completion equals the offline command's continuation.
    prompt = "The capital of France is"
    want = offline(prompt, 12)
    s, _, js, _ = cl.request("POST", "/v1/completions",
                             {"model": model_id, "prompt": prompt, "max_tokens": 12, "temperature": 0})
    check(s == 200 and valid(js, "Completion"), "POST /v1/completions 200 + schema")
    got = js["choices"][0]["text"]
    check(got == want, "greedy completion equals offline output (%r vs %r)" % (got, want))
    check(js["usage"]["prompt_tokens"] == len(toks) - len(toks) + len(
        cl.request("POST", "/tokenize", {"content": prompt})[2]["tokens"]), "usage.prompt_tokens")
    check(js["usage"]["total_tokens"] == js["usage"]["prompt_tokens"] + js["usage"]["completion_tokens"],
          "usage.total_tokens")

    # Prompt as token ids gives the same text.
    ids = cl.request("POST", "/tokenize", {"content": prompt})[2]["tokens"]
    s, _, js, _ = cl.request("POST", "/v1/completions", {"prompt": ids, "max_tokens": 12, "temperature": 0})
    check(s == 200 and js["choices"][0]["text"] == want, "prompt as token ids")

    # Streaming: same text, valid chunks, [DONE] last.
    s, h, ev = cl.stream("/v1/completions", {"prompt": prompt, "max_tokens": 12, "temperature": 0,
                                              "stream_options": {"include_usage": True}})
    check(s == 200 and h["Content-Type"].startswith("text/event-stream"), "stream: 200 text/event-stream")
    check(ev and ev[-1] == "[DONE]", "stream ends with [DONE]")
    chunks = ev[:-1]
    check(all(valid(c, "CompletionChunk") for c in chunks), "stream chunks match CompletionChunk")
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    check(text == want, "streamed text equals non-streamed")
    fins = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    check(fins[-1] == "length" and all(f is None for f in fins[:-1]), "finish_reason only on the last chunk")
    check(chunks[-1].get("usage", {}).get("completion_tokens") == 12, "include_usage chunk")

    # Stop strings: cut before the first occurrence, across token boundaries too.
    words = want.split()
    if len(words) >= 3:
        stop = words[2][:2] if len(words[2]) >= 2 else words[2]
        s, _, js, _ = cl.request("POST", "/v1/completions",
                                 {"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": [stop, "\u00e9t\u00e9"]})
        expect = want[:want.find(stop)]
        check(s == 200 and js["choices"][0]["text"] == expect and js["choices"][0]["finish_reason"] == "stop",
              "stop string %r cuts the text to %r (got %r)" % (stop, expect, js["choices"][0]["text"]))

    # Logprobs: greedy picks the most likely token; all are log-probabilities.
    s, _, js, _ = cl.request("POST", "/v1/completions",
                             {"prompt": prompt, "max_tokens": 4, "temperature": 0, "logprobs": 2})
    lp = js["choices"][0]["logprobs"] if s == 200 else None
    check(lp and valid(js, "Completion") and len(lp["token_logprobs"]) == 4, "logprobs: one per token")
    if lp:
        check(all(x <= 0 for x in lp["token_logprobs"]), "logprobs are <= 0")
        check(all(len(t) >= 1 and abs(max(t.values()) - l) < 1e-4
                  for t, l in zip(lp["top_logprobs"], lp["token_logprobs"])),
              "greedy token has the top logprob")
        # Every candidate keeps its own key (tokens that are not whole UTF-8
        # characters are named "bytes:\\xNN...", never all U+FFFD).
        check(all(len(t) == 2 for t in lp["top_logprobs"]), "logprobs: 2 distinct candidates per token")
    # Byte-fallback tokens by name: ask for the top 5 after a prompt that
    # ends inside a multi-byte character's neighbourhood; whatever comes,
    # no two candidates may share a key, and byte names are well formed.
    s, _, js, _ = cl.request("POST", "/v1/completions",
                             {"prompt": "Emoji: \U0001F355\U0001F355 and \u00e9t\u00e9 ", "max_tokens": 3,
                              "temperature": 0, "logprobs": 5})
    lp = js["choices"][0]["logprobs"] if s == 200 else None
    names = [k for t in (lp["top_logprobs"] if lp else []) for k in t] + (lp["tokens"] if lp else [])
    check(lp is not None and all(len(t) == 5 for t in lp["top_logprobs"])
          and all(re.fullmatch(r"bytes:(\\x[0-9a-f]{2})+", k) for k in names if k.startswith("bytes:")),
          "logprobs 5: 5 distinct candidates per token, byte tokens named bytes:\\xNN (%d such names)"
          % sum(k.startswith("bytes:") for k in names))

    # Chat, with and without streaming.
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
    s, _, js, _ = cl.request("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 8, "temperature": 0})
    check(s == 200 and valid(js, "ChatCompletion"), "POST /v1/chat/completions + schema")
    chat_text = js["choices"][0]["message"]["content"] if s == 200 else None
    s, _, ev = cl.stream("/v1/chat/completions", {"messages": msgs, "max_tokens": 8, "temperature": 0})
    chunks = ev[:-1]
    check(ev[-1] == "[DONE]" and all(valid(c, "ChatChunk") for c in chunks), "chat stream chunks match ChatChunk")
    check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first chat chunk carries the role")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    check(text == chat_text, "streamed chat equals non-streamed")
    s, _, js, _ = cl.request("POST", "/v1/chat/completions",
                             {"messages": msgs, "max_tokens": 3, "temperature": 0, "logprobs": True, "top_logprobs": 3})
    check(s == 200 and valid(js, "ChatCompletion") and len(js["choices"][0]["logprobs"]["content"]) == 3
          and all(len(t["top_logprobs"]) == 3 for t in js["choices"][0]["logprobs"]["content"]),
          "chat logprobs with top_logprobs")

    # Concurrency: fixed seeds give the same text alone and together.
    reqs = [{"prompt": "Story %d:" % i, "max_tokens": 8, "temperature": 0.9, "seed": 100 + i} for i in range(3)]
    alone = [cl.request("POST", "/v1/completions", r)[2]["choices"][0]["text"] for r in reqs]
    together = [None] * 3

    def run(i):
        # On a loaded machine the first two may not both be admitted before
        # the third arrives (queue of 1): a 503 queue_full is then retried,
        # which still leaves it running beside the others.
        deadline = time.time() + 30
        while True:
            st, _, j, _ = cl.request("POST", "/v1/completions", reqs[i])
            if st != 503 or time.time() > deadline:
                break
            time.sleep(0.2)
        together[i] = j["choices"][0]["text"] if st == 200 else "HTTP %d" % st
    # Two at a time fit the slots (--concurrency 2) and the queue (1).
    th = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in th[:2]:
        t.start()
    time.sleep(0.3)
    th[2].start()
    for t in th:
        t.join()
    check(alone == together, "seeded outputs equal alone and concurrent (%r / %r)" % (alone, together))

    # Queue full: 2 slots + 1 queued, the 4th is refused with 503 + Retry-After.
    streams = []
    for i in range(3):
        c = http.client.HTTPConnection("127.0.0.1", cl.port, timeout=60)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": "Long %d" % i, "max_tokens": 400, "stream": True}),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        streams.append(c)
        time.sleep(0.2)
    s, h, js, _ = cl.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
    check(s == 503 and h.get("Retry-After") and valid(js, "Error") and js["error"]["code"] == "queue_full",
          "queue full: 503 + Retry-After (got %d)" % s)
    # Disconnect mid-stream: the sequences are cancelled and freed.
    for c in streams:
        r = c.getresponse()
        r.read1(100) if hasattr(r, "read1") else None
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        st = cl.request("GET", "/stats")[2]
        if st["sequences"]["active"] == 0 and st["queue"]["depth"] == 0:
            break
        time.sleep(0.2)
    check(st["sequences"]["active"] == 0 and st["requests"]["cancelled"] >= 3 and st["sequences"]["kv_bytes"] == 0,
          "disconnected streams cancelled and freed (%s)" % st["requests"])
    good_request(cl, "client disconnects")

    # Stats and metrics.
    s, _, js, _ = cl.request("GET", "/stats")
    check(s == 200 and valid(js, "Stats") and js["tokens"]["generated"] > 0, "GET /stats + schema")
    s, h, _, text = cl.request("GET", "/metrics", key=None)
    check(s == 200 and h["Content-Type"].startswith("text/plain"), "GET /metrics (no key needed by default)")
    check_metrics(text)

    bad_requests(cl, model_id)


def check_metrics(text):
    import re
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? '
                        r'[-+]?([0-9.]+([eE][-+]?[0-9]+)?|Inf|NaN)$')
    lines = text.strip().split("\n")
    bad = [l for l in lines if not l.startswith("#") and not sample.match(l)]
    check(not bad, "metrics lines are well-formed %s" % bad[:3])
    for name in ["smoke_time_to_first_token_seconds_bucket", "smoke_time_per_output_token_seconds_count",
                 "smoke_request_duration_seconds_sum", "smoke_queue_depth", "smoke_requests_rejected_total",
                 "smoke_generated_tokens_total"]:
        check(any(l.startswith(name) for l in lines), "metric %s present" % name)
    rej = [l for l in lines if l.startswith('smoke_requests_rejected_total{reason="queue_full"}')]
    check(rej and float(rej[0].split()[-1]) >= 1, "rejected counter counts the 503")
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, "promtool check metrics: %s" % (r.stdout + r.stderr).strip()[:300])
    else:
        print("note: promtool not installed (Debian package prometheus); skipped its check")


def bad_requests(cl, model_id):
    P = "/v1/completions"
    C = "/v1/chat/completions"
    cases = [
        ("malformed JSON", P, None, '{"prompt": "x",', 400, None),
        ("body not an object", P, [1, 2], None, 400, None),
        ("missing prompt", P, {"max_tokens": 2}, None, 400, "prompt"),
        ("max_tokens wrong type", P, {"prompt": "x", "max_tokens": "a"}, None, 400, "max_tokens"),
        ("temperature wrong type", P, {"prompt": "x", "temperature": "hot"}, None, 400, "temperature"),
        ("stop wrong type", P, {"prompt": "x", "stop": 5}, None, 400, "stop"),
        ("prompt wrong type", P, {"prompt": {"a": 1}}, None, 400, "prompt"),
        ("temperature out of range", P, {"prompt": "x", "temperature": 3}, None, 400, "temperature"),
        ("top_p 0", P, {"prompt": "x", "top_p": 0}, None, 400, "top_p"),
        ("top_k negative", P, {"prompt": "x", "top_k": -1}, None, 400, "top_k"),
        ("min_p above 1", P, {"prompt": "x", "min_p": 2}, None, 400, "min_p"),
        ("negative seed", P, {"prompt": "x", "seed": -1}, None, 400, "seed"),
        ("n = 2", P, {"prompt": "x", "n": 2}, None, 400, "n"),
        ("logprobs 9", P, {"prompt": "x", "logprobs": 9}, None, 400, "logprobs"),
        ("huge max_tokens", P, {"prompt": "x", "max_tokens": 10 ** 9}, None, 400, "max_tokens"),
        ("max_tokens 0", P, {"prompt": "x", "max_tokens": 0}, None, 400, "max_tokens"),
        ("context exceeded", P, {"prompt": "x", "max_tokens": 512, "stop": "x"}, None, 200, None),
        ("invalid token id", P, {"prompt": [2, 999999999]}, None, 400, "prompt[1]"),
        ("negative token id", P, {"prompt": [-1]}, None, 400, "prompt[0]"),
        ("detokenize bad id", "/detokenize", {"tokens": [262144]}, None, 400, "tokens[0]"),
        ("unknown field", P, {"prompt": "x", "max_token": 3}, None, 400, "max_token"),
        ("unknown model", P, {"prompt": "x", "model": "gpt-4"}, None, 404, "model"),
        ("empty messages", C, {"messages": []}, None, 400, "messages"),
        ("bad role", C, {"messages": [{"role": "wizard", "content": "x"}]}, None, 400, "messages[0].role"),
        ("content wrong type", C, {"messages": [{"role": "user", "content": 5}]}, None, 400, "messages[0].content"),
        ("stop too many", P, {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, None, 400, "stop"),
        ("duplicate key", P, None, '{"prompt":"x","prompt":"y"}', 400, None),
        ("invalid UTF-8", P, None, b'{"prompt":"\xff\xfe"}', 400, None),
    ]
    for name, path, body, raw, want, param in cases:
        if name == "context exceeded":
            continue  # covered by huge max_tokens / limits
        s, _, js, _ = cl.request("POST", path, body, raw=raw)
        ok = s == want and js is not None and valid(js, "Error")
        if ok and param:
            ok = js["error"]["param"] == param
        check(ok, "%s -> %d param %s (got %d %s)" % (name, want, param, s, js and js.get("error")))
        good_request(cl, name)

    # Oversized bodies: announced by Content-Length, and streamed chunked.
    big = json.dumps({"prompt": "x" * (MAX_BODY + 10)})
    s, _, js, _ = cl.request("POST", P, raw=big)
    check(s == 413 and js["error"]["code"] == "body_too_large", "oversized body -> 413")
    good_request(cl, "oversized body")
    c = http.client.HTTPConnection("127.0.0.1", cl.port, timeout=60)
    c.putrequest("POST", P)
    c.putheader("Authorization", "Bearer " + KEY)
    c.putheader("Content-Type", "application/json")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    try:
        for _ in range(20):
            part = b"x" * 8192
            c.send(b"%x\r\n%s\r\n" % (len(part), part))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        status = r.status
    except OSError:
        status = "closed"
    c.close()
    check(status == 413, "oversized chunked body -> 413 (got %s)" % status)
    good_request(cl, "oversized chunked body")

    s, _, js, _ = cl.request("GET", "/nowhere")
    check(s == 404 and valid(js, "Error"), "unknown path -> 404")
    s, h, js, _ = cl.request("GET", P)
    check(s == 405 and h.get("Allow") == "POST" and valid(js, "Error"), "wrong method -> 405 + Allow")
    wrong_methods(cl)
    unknown_fields(cl, model_id)
    s, h, js, _ = cl.request("POST", P, {"prompt": "x"}, key=None)
    check(s == 401 and valid(js, "Error") and h.get("WWW-Authenticate") == "Bearer", "no key -> 401")
    s, _, js, _ = cl.request("POST", P, {"prompt": "x"}, key=KEY[:-1] + "X")
    check(s == 401, "wrong key -> 401")
    s, _, js, _ = cl.request("GET", "/stats", key=None)
    check(s == 401, "/stats needs the key")
    good_request(cl, "auth failures")


def unknown_fields(cl, model_id):
    """The request schemas say additionalProperties: false; the daemon must
    agree both ways.  A field no schema lists gets 400 unknown_field with
    error.param and the message naming it; a field of the sibling endpoint
    too.  And every field a schema lists is known to the daemon: sent as
    null (the daemon's "absent" for optional fields), it is never refused
    as unknown (it may be refused for its value: required ones)."""
    if spec is None:
        print("note: no spec loaded; unknown-field checks skipped")
        return
    P, C = "/v1/completions", "/v1/chat/completions"
    msgs = [{"role": "user", "content": "Hi"}]
    bases = {P: ("CompletionRequest", {"prompt": "Hi", "max_tokens": 1}),
             C: ("ChatRequest", {"messages": msgs, "max_tokens": 1}),
             "/tokenize": ("TokenizeRequest", {"content": "Hi"}),
             "/detokenize": ("DetokenizeRequest", {"tokens": [2]})}
    for path, (name, base) in bases.items():
        check(spec["components"]["schemas"][name].get("additionalProperties") is False,
              "spec: %s has additionalProperties: false" % name)
        for field, value in [("frobnicate", 1), ("max_token", 3), ("Prompt", "x")]:
            s, _, js, _ = cl.request("POST", path, dict(base, **{field: value}))
            err = (js or {}).get("error") or {}
            check(s == 400 and valid(js, "Error") and err.get("param") == field and
                  err.get("code") == "unknown_field" and "'%s'" % field in err.get("message", ""),
                  "%s with unknown field %r -> 400 naming it (got %s %s)" % (path, field, s, err))
        for field in spec["components"]["schemas"][name]["properties"]:
            body = dict(base)
            body.setdefault(field, None)
            s, _, js, _ = cl.request("POST", path, body)
            code = ((js or {}).get("error") or {}).get("code")
            check(code != "unknown_field" and s in (200, 400),
                  "%s: spec field %r is known to the daemon (got %s %s)" % (path, field, s, code))
    for path, other, field, value in [(P, C, "messages", msgs), (C, P, "prompt", "Hi"),
                                      (P, C, "top_logprobs", 2), (P, C, "max_completion_tokens", 2),
                                      (C, P, "echo", False)]:
        s, _, js, _ = cl.request("POST", path, dict(bases[path][1], **{field: value}))
        err = (js or {}).get("error") or {}
        check(s == 400 and err.get("param") == field and err.get("code") == "unknown_field"
              and other in err.get("message", ""),
              "%s with %r (a field of %s) -> 400 naming it (got %s %s)" % (path, field, other, s, err))
    good_request(cl, "unknown fields")


def wrong_methods(cl):
    """Every path of proto/openapi.yaml answers each method the spec does not
    list for it with 405, an Allow header naming exactly the spec's methods,
    and an Error body; and the spec documents that 405 (with Allow) on every
    operation, so the spec and the daemon's routing are checked against each
    other."""
    if spec is None:
        print("note: no spec loaded; 405 per path skipped")
        return
    verbs = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
    for path, item in spec["paths"].items():
        listed = sorted(m.upper() for m in item if m.upper() in verbs + ["HEAD"])
        documented = all("405" in op["responses"] for m, op in item.items() if m.upper() in listed)
        check(documented, "spec: every operation of %s documents 405" % path)
        for verb in verbs:
            if verb in listed:
                continue
            # No key: the method is refused before authentication.
            s, h, js, _ = cl.request(verb, path, {} if verb in ("POST", "PUT", "PATCH") else None, key=None)
            allow = sorted(m.strip() for m in (h.get("Allow") or "").split(",") if m.strip())
            ok = s == 405 and allow == listed and valid(js, "Error") and \
                js["error"]["code"] == "method_not_allowed"
            check(ok, "%s %s -> 405, Allow %s, Error body (got %s, Allow %r)" % (verb, path, listed, s, h.get("Allow")))
    resp = spec["components"]["responses"]["MethodNotAllowed"]
    hdr = spec["components"]["headers"][resp["headers"]["Allow"]["$ref"].split("/")[-1]]
    check(hdr.get("required") is True and resp["content"]["application/json"]["schema"]["$ref"].endswith("/Error"),
          "spec: the 405 response requires Allow and has the Error schema")
    good_request(cl, "wrong methods")


if __name__ == "__main__":
    sys.exit(main())
