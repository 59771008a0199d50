#!/usr/bin/env python3
"""Integration test: the daemon serving a mixture of experts out of core,
with its expert statistics and prediction over HTTP.

Usage: test_daemon_moe.py PATH/TO/smoked

Model: tiny-qwen3moe of scripts/make-test-models ($SMOKE_TEST_MODELS; 4
layers of 16 experts, top 4; its output head is most of its 6.5 MiB), with
memory.ram_cache just above the head and the dense blocks, so experts are
evicted and read again.  Skipped (exit 77) without it.

1. The start-up log names the experts and the prediction mode (merged by
   default) with the host bytes it takes.
2. Four concurrent greedy completions succeed; each equals the same
   request's answer from a daemon with expert prediction off (prediction
   only moves bytes, never changes a result).
3. /stats validates against proto/openapi.yaml and has, per MoE layer,
   acquires and hits (hits <= acquires, resident <= experts, RAM-tier hits
   = hits on the CPU backend, stalls <= misses), bytes read (summing to
   the total, which over the tokens is the per-token figure) and the
   predictor's counts: both <= predicted, both <= chosen, history_both <=
   history <= predicted, precision and recall in [0, 1] and equal to the
   counts' ratios; chosen > 0 on every layer.  With prediction off the
   layers carry no prediction.
4. /metrics has smoke_expert_prediction_total for every set (predicted,
   chosen, both, history, history_both) and layer, equal to /stats'
   counts, and passes `promtool check metrics` where promtool exists.
5. A bad runtime.expert_prediction is refused at start (exit status 2)
   with a message naming the key, the value and the allowed values.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(os.environ.get("SMOKE_TEST_MODELS", "/nonexistent"), "tiny-qwen3moe.gguf")
RAM = 6200000      # bytes: the head (5.2 MiB) and dense blocks, a few experts
PROMPTS = ["Hello world", "The capital of France is", "1 2 3 4", "Once upon a time"]
check = fx.Checks()
valid, spec = fx.schema_validator(ROOT)


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"} if body is not None else {})
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, data


def complete_all(port):
    """The four prompts at once (greedy, 12 tokens); their texts in order."""
    out = [None] * len(PROMPTS)

    def one(i):
        s, data = request(port, "POST", "/v1/completions",
                          {"prompt": PROMPTS[i], "max_tokens": 12, "temperature": 0})
        out[i] = json.loads(data)["choices"][0]["text"] if s == 200 else "HTTP %d %s" % (s, data[:200])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def serve(mode):
    """(log, texts, stats, metrics) of a daemon with expert prediction mode."""
    d = fx.Daemon(SMOKED, model=MODEL, extra=["--ram-cache", str(RAM), "--concurrency", "4",
                                             "--expert-prediction", mode])
    with d:
        texts = complete_all(d.port)
        s, stats = request(d.port, "GET", "/stats")
        check(s == 200, "%s: GET /stats 200" % mode)
        s, metrics = request(d.port, "GET", "/metrics")
        check(s == 200, "%s: GET /metrics 200" % mode)
    log = d.log_text()
    d.cleanup()
    check(d.rc == 0, "%s: clean exit on SIGTERM (status %s)" % (mode, d.rc))
    return log, texts, json.loads(stats), metrics


def check_stats(mode, st):
    check(valid(st, "Stats"), "%s: /stats matches the schema" % mode)
    ex = st.get("weights", {}).get("experts")
    if not check(ex is not None and len(ex["layers"]) == 4, "%s: /stats has 4 MoE layers" % mode):
        return []
    layers = ex["layers"]
    # the RAM tier computes (CPU backend): its hits are the compute tier's
    for l in layers:
        check(0 < l["acquires"] and l["hits"] <= l["acquires"] and l["resident"] <= l["experts"] == 16
              and l["ram_hits"] == l["hits"] and l["stalls"] <= l["acquires"] - l["hits"],
              "%s layer %d: acquires %d, hits %d (RAM %d), stalls %d, resident %d of %d" % (
                  mode, l["layer"], l["acquires"], l["hits"], l["ram_hits"], l["stalls"], l["resident"],
                  l["experts"]))
        p = l.get("prediction")
        if mode == "off":
            check(p is None, "off layer %d: no prediction" % l["layer"])
            continue
        if not check(p is not None, "%s layer %d: prediction present" % (mode, l["layer"])):
            continue
        ok = (p["chosen"] > 0 and p["both"] <= p["predicted"] and p["both"] <= p["chosen"]
              and p["history_both"] <= p["history"] <= p["predicted"]
              and abs(p["precision"] - p["both"] / p["predicted"]) < 1e-9
              and abs(p["recall"] - p["both"] / p["chosen"]) < 1e-9)
        check(ok, "%s layer %d: prediction counts consistent %s" % (mode, l["layer"], p))
    check(ex["tokens"] > 0 and ex["bytes_read"] == sum(l["bytes_read"] for l in layers) > 0
          and abs(ex["bytes_read_per_token"] - ex["bytes_read"] / ex["tokens"]) <= 1e-6 * ex["bytes_read"]
          and ex["stalls"] == sum(l["stalls"] for l in layers),
          "%s: %d bytes of experts read over %d tokens (%.0f a token), %d stalls" % (
              mode, ex["bytes_read"], ex["tokens"], ex["bytes_read_per_token"], ex["stalls"]))
    misses = sum(l["acquires"] - l["hits"] for l in layers)
    check(misses > 0, "%s: experts were read again (%d misses: the RAM tier is below the model)"
          % (mode, misses))
    return layers


def check_metrics(mode, text, layers):
    got = {}
    for line in text.splitlines():
        if line.startswith("smoke_expert_prediction_total{"):
            labels, value = line.rsplit(" ", 1)
            layer = int(labels.split('layer="')[1].split('"')[0])
            kind = labels.split('set="')[1].split('"')[0]
            got[(layer, kind)] = int(value)
    want = {}
    for l in layers:
        p = l.get("prediction")
        if p:
            for kind in ("predicted", "chosen", "both", "history", "history_both"):
                want[(l["layer"], kind)] = p[kind]
    check(got == want and (mode == "off" or len(want) == 20),
          "%s: /metrics smoke_expert_prediction_total equals /stats (%d series)" % (mode, len(got)))
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, "%s: promtool check metrics %s" % (mode, (r.stdout + r.stderr).strip()[:300]))


def main():
    if not os.path.exists(MODEL):
        print("SKIP: %s is absent (scripts/make-test-models)" % MODEL)
        return fx.SKIP
    log, texts, st, metrics = serve("merged")
    check("experts: 16 a layer, 4 used a token; prediction merged" in log,
          "start-up log names the experts and the prediction mode")
    check(all(not t.startswith("HTTP") for t in texts), "four concurrent completions: %s" % texts)
    layers = check_stats("merged", st)
    check(sum(l["prediction"]["history"] for l in layers if "prediction" in l) > 0,
          "merged: history added experts beyond the router's")
    check_metrics("merged", metrics, layers)

    log_off, texts_off, st_off, metrics_off = serve("off")
    check("prediction off" in log_off, "start-up log says prediction off")
    check(texts_off == texts, "the same texts with prediction off: %s" % texts_off)
    check_metrics("off", metrics_off, check_stats("off", st_off))

    r = subprocess.run([SMOKED, "--model", MODEL, "--expert-prediction", "sometimes", "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "runtime.expert_prediction" in r.stderr and "sometimes" in r.stderr
          and "merged" in r.stderr, "a bad mode is refused (status %d): %s" % (r.returncode, r.stderr.strip()[:300]))

    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    for f in check.failures:
        print("FAILED: " + f)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
