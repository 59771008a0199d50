#!/usr/bin/env python3
"""Hugging Face model directories through the real daemon and the offline
command (issue 3: `--model DIR` wherever a GGUF file is accepted).

1. The daemon serves each fixture directory of tests/fixtures/hf-models
   (config.json + safetensors + tokenizer.json, made by
   scripts/make-hf-reference-models.py with transformers): a greedy
   completion of the recorded prompt ids must be exactly the text of the
   tokens transformers generated, as a streaming detokeniser renders them
   (reference "stream_text": `tokenizers`' decode, except that a run of
   <0xXX> byte tokens that is invalid UTF-8 as a whole is rendered with
   Python's errors="replace" - complete characters kept, one U+FFFD per
   maximal ill-formed subpart - where decode() turns every token of the
   run into U+FFFD; a stream cannot wait for the run's end).  This covers
   the reader, the forward pass, the sampler and the detokeniser against an
   independent implementation end to end.
2. A synthetic sharded BF16 directory (scripts/make-synthetic-safetensors.py)
   runs offline through the weight hierarchy with the RAM and device budgets
   a quarter of the model each: it must produce the same greedy text as with
   everything resident, reading every shard.
3. A directory with a broken config.json makes the daemon exit non-zero
   with a message naming the file and the key (it must not start serving a
   model it cannot run).

Usage: test_hf_dir.py SMOKED.  Needs nothing beyond the committed fixtures
and (for part 2) numpy from the venv of scripts/setup.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_fixture import Checks, Daemon, import_from_venv  # noqa: E402

ROOT = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf-models")
CASES = ["llama-f32", "mistral-f16", "qwen2-bf16", "gemma3-bf16"]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def serve_cases(smoked, check):
    for case in CASES:
        d = os.path.join(FIXTURES, case)
        with open(os.path.join(d, "reference.json")) as f:
            ref = json.load(f)["generate"]
        with Daemon(smoked, model=d) as dm:
            models = get(dm.url + "/v1/models")["data"]
            check(len(models) == 1, "%s: /v1/models lists one model (%s)" % (case, models[0]["id"]))
            out = post(dm.url + "/v1/completions",
                       {"model": models[0]["id"], "prompt": ref["prompt_ids"],
                        "max_tokens": len(ref["ids"]), "temperature": 0})
            text = out["choices"][0]["text"]
            want = ref["stream_text"]
            check(text == want, "%s: greedy text %r == transformers' %r (decode(): %r)"
                  % (case, text, want, ref["text"]))
            check(out["usage"]["prompt_tokens"] == len(ref["prompt_ids"]),
                  "%s: usage.prompt_tokens %d" % (case, out["usage"]["prompt_tokens"]))
        check(dm.rc == 0, "%s: daemon exits 0 on SIGTERM" % case)


def venv_python():
    py = os.path.join(os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke")),
                      "venv", "bin", "python")
    return py if os.access(py, os.X_OK) else None


def offline(smoked, model, extra=()):
    out = subprocess.run([smoked, "--model", model, "--prompt", "hello world", "-n", "6",
                          "--temp", "0", "--threads", "2"] + list(extra),
                         capture_output=True, text=True, timeout=600)
    return out


def synthetic_tiered(smoked, check, tmp):
    py = venv_python()
    if not py:
        print("skip  synthetic directory: no venv python with numpy (scripts/setup)")
        return
    d = os.path.join(tmp, "synthetic")
    gen = subprocess.run([py, os.path.join(ROOT, "scripts", "make-synthetic-safetensors.py"), d,
                          "--preset", "small", "--shard-bytes", "4000000"],
                         capture_output=True, text=True, timeout=300)
    if not check(gen.returncode == 0, "synthetic directory generated: " + gen.stdout.strip()):
        print(gen.stderr)
        return
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".safetensors"))
    shards = len([f for f in os.listdir(d) if f.endswith(".safetensors")])
    resident = offline(smoked, d)
    check(resident.returncode == 0, "synthetic (%d shards, %.1f MB): offline run exits 0 %s"
          % (shards, size / 1e6, resident.stderr[-300:] if resident.returncode else ""))
    budget = str(size // 4)
    tiered = offline(smoked, d, ["--ram-cache", budget, "--gpu-memory", budget, "--stats"])
    check(tiered.returncode == 0, "synthetic at 1/4-size budgets: offline run exits 0 %s"
          % (tiered.stderr[-500:] if tiered.returncode else ""))
    check(tiered.stdout == resident.stdout and resident.stdout != "",
          "synthetic at 1/4-size budgets: same greedy text as resident (%r)" % resident.stdout)
    # The daemon on the same directory and budgets: the text again, and
    # /stats' weights object (tiered, read mode) valid against the spec.
    with Daemon(smoked, model=d, extra=["--ram-cache", budget, "--gpu-memory", budget]) as dm:
        out = post(dm.url + "/v1/completions", {"prompt": "hello world", "max_tokens": 6,
                                                "temperature": 0})
        check(out["choices"][0]["text"] == resident.stdout,
              "synthetic, daemon at 1/4-size budgets: same text as offline")
        stats = get(dm.url + "/stats")
        w = stats.get("weights", {})
        check(w.get("store") == "tiered" and w.get("io") in ("pread", "direct")
              and w["ram"]["misses"] > 0 and w["ram"]["peak_bytes"] <= w["ram"]["budget_bytes"],
              "synthetic, daemon: /stats weights tiered, io %s, ram peak %s <= budget %s"
              % (w.get("io"), w.get("ram", {}).get("peak_bytes"), w.get("ram", {}).get("budget_bytes")))
        check(valid_stats(stats), "synthetic, daemon: /stats valid against proto/openapi.yaml")


def valid_stats(obj):
    jsonschema, yaml = import_from_venv("jsonschema"), import_from_venv("yaml")
    if not jsonschema or not yaml:
        print("skip  schema validation: no jsonschema/yaml (scripts/setup)")
        return True
    with open(os.path.join(ROOT, "proto", "openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    schema = {"$ref": "#/components/schemas/Stats", "components": spec["components"]}
    try:
        jsonschema.Draft202012Validator(schema).validate(obj)
        return True
    except jsonschema.ValidationError as e:
        print("      schema: %s at %s" % (e.message, list(e.absolute_path)))
        return False


def bad_config(smoked, check, tmp):
    d = os.path.join(tmp, "bad")
    shutil.copytree(os.path.join(FIXTURES, "llama-f32"), d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["num_attention_heads"] = "two"
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    dm = Daemon(smoked, model=d)
    dm.start()
    ready = dm.wait_ready(timeout=60)
    rc = dm.stop()
    log = dm.log_text()
    dm.cleanup()
    check(not ready and rc not in (0, None), "broken config.json: daemon refuses to start (exit %s)" % rc)
    check("config.json" in log and "num_attention_heads" in log,
          "broken config.json: log names the file and the key")


def main():
    smoked = sys.argv[1]
    # Before any work: without jsonschema here this re-runs the script
    # under the venv of scripts/setup.
    import_from_venv("jsonschema")
    check = Checks()
    tmp = tempfile.mkdtemp(prefix="smoke-hf-")
    try:
        serve_cases(smoked, check)
        synthetic_tiered(smoked, check, tmp)
        bad_config(smoked, check, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
