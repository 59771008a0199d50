#!/usr/bin/env python3
"""Integration test: the prompt cache (limits.prompt_cache, docs/prompt-cache.md)
through the real smoked, the default model (Gemma 3: five of every six
layers slide over a 512-token window) and the `openai` package.

The same schedule of completions runs against a daemon with the cache off
(--prompt-cache 0) and one with it on (the default), both batching three
sequences: A alone, over a document prefix of about 700 tokens (longer than
the window); B continuing A's conversation (A's prompt, A's answer, a new
question); then C, D and E at once: C shares only the first ~600 tokens of
A's prompt (a prefix shorter than the entry it comes from, longer than the
window), D continues B's conversation, E is A's prompt again, streamed with
stream_options.include_usage; F alone, sampled (temperature and seed) after
the same document.  Checks:
  - every text is identical with the cache on and off;
  - usage.prompt_tokens_details.cached_tokens is 0 with the cache off, and
    with it on: 0 for A, at least A's prompt for B (less a token or two where
    A's answer tokenises differently), over 512 and under A's prompt for C,
    prompt_tokens - 1 for E (the last prompt token is always computed, and the
    streamed final usage chunk carries it), and > 0 for the rest;
  - /stats prompt_cache.hits and tokens_saved equal the requests with
    cached_tokens > 0 and their sum; /metrics says the same and passes
    promtool check metrics (when promtool is installed).

Usage: test_prompt_cache.py PATH/TO/smoked
Skipped (exit 77) without the model or the openai package.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

openai = fx.import_from_venv("openai")

check = fx.Checks()
WINDOW = 512          # Gemma 3's sliding window
N = 12


def document():
    root = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, "tests", "fixtures", "text", "us-founding-documents.txt")) as f:
        return f.read()


def complete(client, model, prompt, stream=False, **kw):
    """(text, usage) of one completion, streamed or not."""
    if not stream:
        c = client.completions.create(model=model, prompt=prompt, max_tokens=N, **kw)
        return c.choices[0].text, c.usage
    text, usage = "", None
    for ch in client.completions.create(model=model, prompt=prompt, max_tokens=N, stream=True,
                                        stream_options={"include_usage": True}, **kw):
        if ch.choices:
            text += ch.choices[0].text
        if ch.usage is not None:
            usage = ch.usage
    return text, usage


def schedule(d, doc):
    """The six requests; returns {name: (prompt, text, usage)}."""
    client = openai.OpenAI(base_url=d.url + "/v1", api_key="none", max_retries=0, timeout=900)
    model = client.models.list().data[0].id
    out = {}
    a_prompt = doc[:3600] + "\n\nQuestion: What is this text about?\nAnswer:"
    out["A"] = (a_prompt,) + complete(client, model, a_prompt, temperature=0)
    b_prompt = a_prompt + out["A"][1] + "\nQuestion: Who wrote it?\nAnswer:"
    out["B"] = (b_prompt,) + complete(client, model, b_prompt, temperature=0)
    reqs = {
        "C": (doc[:3000] + "\n\nIn short, the text says", False),
        "D": (b_prompt + out["B"][1] + "\nQuestion: When?\nAnswer:", False),
        "E": (a_prompt, True),
    }
    errors = []

    def run(name):
        prompt, stream = reqs[name]
        try:
            out[name] = (prompt,) + complete(client, model, prompt, stream=stream, temperature=0)
        except Exception as e:  # reported below
            errors.append("%s: %s" % (name, e))
    threads = [threading.Thread(target=run, args=(n,)) for n in reqs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "C, D, E at once answered: %s" % errors)
    f_prompt = doc[:3600] + "\n\nOne sentence about it:"
    out["F"] = (f_prompt,) + complete(client, model, f_prompt, temperature=0.8, seed=7)
    return out


def get(d, path):
    with urllib.request.urlopen(d.url + path, timeout=60) as r:
        return r.read().decode()


def main():
    smoked = sys.argv[1]
    skip = fx.model_missing()
    if skip:
        print(skip)
        return fx.SKIP
    if openai is None:
        print("SKIP: the openai Python package is not installed (scripts/setup installs it in its venv)")
        return fx.SKIP
    doc = document()
    runs = {}
    for mode, extra in (("off", ["--prompt-cache", "0"]), ("on", [])):
        d = fx.Daemon(smoked, extra=["--concurrency", "3"] + extra)
        try:
            with d:
                runs[mode] = schedule(d, doc)
                runs[mode + "-stats"] = json.loads(get(d, "/stats"))
                runs[mode + "-metrics"] = get(d, "/metrics")
            check(d.rc == 0, "cache %s: daemon exit status 0 after SIGTERM (got %s)" % (mode, d.rc))
            if check.failures:
                print("---- daemon log ----\n" + d.log_text()[-4000:])
        finally:
            d.cleanup()
    off, on = runs["off"], runs["on"]
    for name in sorted(off):
        check(on.get(name, (None, None))[1] == off[name][1],
              "%s: same text with the cache on and off: %r / %r" % (name, on.get(name, (0, ""))[1], off[name][1]))
        check(off[name][2].prompt_tokens_details.cached_tokens == 0,
              "%s: cached_tokens 0 with the cache off" % name)
    if set(on) != set(off):
        print("%d passed, %d failed" % (check.passed, len(check.failures) + 1))
        return 1
    cached = {n: on[n][2].prompt_tokens_details.cached_tokens for n in on}
    ptok = {n: on[n][2].prompt_tokens for n in on}
    print("prompt tokens %s, cached %s" % (ptok, cached))
    check(ptok["A"] > WINDOW + 100, "A's prompt (%d tokens) is well over the window of %d" % (ptok["A"], WINDOW))
    check(cached["A"] == 0, "A: nothing cached yet (%d)" % cached["A"])
    check(ptok["A"] - 3 <= cached["B"] < ptok["B"], "B reuses A's prompt and answer: %d of %d (A's prompt %d)"
          % (cached["B"], ptok["B"], ptok["A"]))
    check(WINDOW < cached["C"] < ptok["A"] - 50,
          "C reuses a prefix longer than the window, shorter than A's entry: %d" % cached["C"])
    check(cached["D"] >= ptok["B"] - 3, "D reuses B's conversation: %d of %d" % (cached["D"], ptok["D"]))
    check(cached["E"] == ptok["E"] - 1, "E (A again, streamed usage): %d == %d - 1" % (cached["E"], ptok["E"]))
    check(cached["F"] > WINDOW, "F (sampled) reuses the document: %d" % cached["F"])
    pc = runs["on-stats"]["prompt_cache"]
    hits = sum(1 for n in cached if cached[n] > 0)
    check(pc["hits"] == hits and pc["tokens_saved"] == sum(cached.values()),
          "/stats prompt_cache: hits %d tokens_saved %d == %d, %d" % (pc["hits"], pc["tokens_saved"], hits,
                                                                     sum(cached.values())))
    check(pc["lookups"] == len(cached) and pc["entries"] >= 1 and 0 < pc["bytes"] <= pc["budget"],
          "/stats prompt_cache: %s" % pc)
    check(runs["off-stats"]["prompt_cache"]["hits"] == 0, "/stats off: no hits")
    m = runs["on-metrics"]
    check("smoke_prompt_cache_hits_total %d\n" % hits in m and
          "smoke_prompt_cache_tokens_saved_total %d\n" % sum(cached.values()) in m,
          "/metrics counts the hits and the tokens saved")
    promtool = shutil.which("promtool")
    if promtool:
        pt = subprocess.run([promtool, "check", "metrics"], input=m, capture_output=True, text=True, timeout=60)
        check(pt.returncode == 0, "promtool check metrics: %s %s" % (pt.stdout.strip(), pt.stderr.strip()))
    else:
        print("note: promtool is absent (Debian package prometheus); skipped promtool check metrics")
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
