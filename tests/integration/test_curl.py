#!/usr/bin/env python3
"""Integration test: the real `curl` binary against the live smoked, as a
shell user or a script would drive it.

A greedy completion (text equal to the offline command's), a streamed chat
with -N (every line a `data:` event, the last `data: [DONE]`), /health,
/metrics piped into `promtool check metrics` (Debian package prometheus;
skipped with a note when absent), a 413 for an oversized body sent with
--data-binary @file, a 405 with its Allow header; after each error a normal
request proves the daemon still serves.

Usage: test_curl.py PATH/TO/smoked
Skipped (exit 77) without the model or without curl.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

KEY = "curl-test-key"
MAX_BODY = 64 * 1024
PROMPT = "The capital of France is"
N = 8
check = fx.Checks()
failures = check.failures


class Curl:
    def __init__(self, curl, url):
        self.curl = curl
        self.url = url

    def run(self, path, *args, key=True, body=None):
        """(status, headers text, body text) of one curl call; the status
        comes from -w, the headers from -D into a temporary file."""
        with tempfile.NamedTemporaryFile(prefix="smoke-curl-hdr-") as hdr:
            cmd = [self.curl, "-sS", "--max-time", "600", "-D", hdr.name, "-o", "-",
                   "-w", "\n%{http_code}"]
            if key:
                cmd += ["-H", "Authorization: Bearer " + KEY]
            if body is not None:
                cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
            cmd += list(args) + [self.url + path]
            r = subprocess.run(cmd, capture_output=True, timeout=660)
            headers = open(hdr.name, errors="replace").read()
        out = r.stdout.decode("utf-8", "replace")
        text, _, code = out.rpartition("\n")
        if r.returncode != 0:
            print("      curl exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace").strip()))
        return (int(code) if code.isdigit() else None), headers, text


def header(headers, name):
    for line in headers.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name.lower():
            return v.strip()
    return None


def still_serving(c, after):
    s, _, text = c.run("/v1/completions", body={"prompt": "Hi", "max_tokens": 1, "temperature": 0})
    try:
        ok = s == 200 and json.loads(text)["usage"]["completion_tokens"] == 1
    except (ValueError, KeyError, TypeError):
        ok = False
    check(ok, "still serving after: %s (got %s)" % (after, s))


def error_code(text):
    try:
        return json.loads(text)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def checks(c, smoked, curl, want):
    # /health needs no key.
    s, _, text = c.run("/health", key=False)
    check(s == 200 and json.loads(text) == {"status": "ok"}, "curl /health -> 200 {\"status\":\"ok\"} (%s %r)" % (s, text))

    # A greedy completion: the text is the offline command's continuation.
    s, h, text = c.run("/v1/completions", body={"prompt": PROMPT, "max_tokens": N, "temperature": 0})
    js = json.loads(text) if s == 200 else {}
    got = js.get("choices", [{}])[0].get("text")
    check(s == 200 and header(h, "Content-Type").startswith("application/json"), "completion: 200 application/json")
    check(got == want, "completion text equals the offline output (%r vs %r)" % (got, want))
    check(js.get("usage", {}).get("completion_tokens") == N, "completion: usage.completion_tokens == %d" % N)

    # A streamed chat with -N: every non-empty line is a data: event, the
    # chunks parse, the last line is data: [DONE].
    msgs = [{"role": "user", "content": "Name a colour."}]
    s, h, text = c.run("/v1/chat/completions", "-N",
                       body={"messages": msgs, "max_tokens": N, "temperature": 0, "stream": True})
    check(s == 200 and (header(h, "Content-Type") or "").startswith("text/event-stream"),
          "chat stream: 200 text/event-stream (%s %s)" % (s, header(h, "Content-Type")))
    lines = [l for l in text.split("\n") if l]
    check(lines and all(l.startswith("data: ") for l in lines), "chat stream: every line is a data: event")
    check(lines and lines[-1] == "data: [DONE]", "chat stream: the last line is data: [DONE] (%r)" % (lines[-1:],))
    chunks = []
    for l in lines[:-1]:
        try:
            chunks.append(json.loads(l[6:]))
        except ValueError:
            chunks.append(None)
    check(chunks and all(ch and ch.get("object") == "chat.completion.chunk" for ch in chunks),
          "chat stream: %d chunks are chat.completion.chunk JSON" % len(chunks))
    fins = [ch["choices"][0]["finish_reason"] for ch in chunks if ch and ch.get("choices")]
    check(fins and fins[-1] in ("stop", "length") and all(f is None for f in fins[:-1]),
          "chat stream: finish_reason only on the last chunk (%s)" % fins[-1:])
    # The same chat not streamed gives the same text.
    s, _, t2 = c.run("/v1/chat/completions", body={"messages": msgs, "max_tokens": N, "temperature": 0})
    streamed = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch and ch.get("choices"))
    check(s == 200 and json.loads(t2)["choices"][0]["message"]["content"] == streamed,
          "chat stream text equals the non-streamed reply (%r)" % streamed)

    # /metrics piped into promtool.
    promtool = shutil.which("promtool")
    if promtool:
        scrape = subprocess.Popen([curl, "-sS", "--max-time", "60", c.url + "/metrics"], stdout=subprocess.PIPE)
        pt = subprocess.run([promtool, "check", "metrics"], stdin=scrape.stdout, capture_output=True,
                            text=True, timeout=120)
        scrape.stdout.close()
        scrape.wait(timeout=60)
        check(scrape.returncode == 0 and pt.returncode == 0,
              "curl /metrics | promtool check metrics: curl %s, promtool %s %s"
              % (scrape.returncode, pt.returncode, (pt.stdout + pt.stderr).strip()[:300]))
    else:
        print("note: promtool is absent (Debian package prometheus, installed by scripts/setup); "
              "skipped curl /metrics | promtool check metrics")
        s, _, text = c.run("/metrics", key=False)
        check(s == 200 and "smoke_generated_tokens_total" in text, "curl /metrics -> 200 with samples")

    # 413: a body larger than limits.max_body, from a file.
    with tempfile.NamedTemporaryFile(prefix="smoke-curl-big-", suffix=".json") as big:
        big.write(json.dumps({"prompt": "x " * MAX_BODY}).encode())
        big.flush()
        check(os.path.getsize(big.name) > MAX_BODY, "oversized body file is %d bytes" % os.path.getsize(big.name))
        s, _, text = c.run("/v1/completions", "-H", "Content-Type: application/json",
                           "--data-binary", "@" + big.name)
    check(s == 413 and error_code(text) == "body_too_large",
          "--data-binary @file larger than max_body -> 413 body_too_large (%s %r)" % (s, text[:120]))
    still_serving(c, "413")

    # 405: GET on a POST endpoint, with Allow: POST.
    s, h, text = c.run("/v1/completions")
    check(s == 405 and header(h, "Allow") == "POST" and error_code(text) == "method_not_allowed",
          "GET /v1/completions -> 405 + Allow: POST (%s %s)" % (s, header(h, "Allow")))
    still_serving(c, "405")
    s, h, text = c.run("/health", "-X", "DELETE", key=False)
    check(s == 405 and header(h, "Allow") == "GET", "DELETE /health -> 405 + Allow: GET (%s)" % s)
    still_serving(c, "405 on /health")


def main():
    smoked = sys.argv[1]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    curl = shutil.which("curl")
    if not curl:
        print("SKIP: curl is not installed (scripts/setup installs it)")
        return fx.SKIP
    print(subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0])
    want = fx.offline(smoked, PROMPT, N)
    d = fx.Daemon(smoked, api_key=KEY, extra=["--max-body", str(MAX_BODY), "--max-tokens", "64", "--default-max-tokens", "16"])
    try:
        with d:
            checks(Curl(curl, d.url), smoked, curl, want)
        check(d.rc == 0, "daemon exit status 0 after SIGTERM (got %s)" % d.rc)
        if failures:
            print("---- daemon log ----\n" + d.log_text()[-6000:])
    finally:
        d.stop()
        d.cleanup()
    print("%d passed, %d failed" % (check.passed, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
