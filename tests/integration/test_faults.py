#!/usr/bin/env python3
"""Integration test: faults from outside the daemon (issue 17 part 3;
docs/fault-injection.md).  The allocation and tier-0 read faults are
injected in tests/unit/faults/test_faults.c; this drives the real smoked
through what an operator's machine can do to it.

 1. The model file truncated under the running daemon.  The resident
    store computing from the file's mapping (--weights-in-ram map, or a
    model too big to copy), where a page past the new end raises SIGBUS:
    the daemon died on the next request.  Now every generation fails with
    a 500 naming the file, /health says 503 "failed", everything else is
    still served, and SIGTERM stops it cleanly (exit 0).  With its copy
    of the weights (--weights-in-ram copy; auto for a model this small)
    the file is not read again: the same completions, /health 200.
 2. The same under the weight hierarchy (--ram-cache, --gpu-memory small
    enough that every request reads the file again): a 500 naming the
    file and "cut short"; once the bytes are back the same output again.
 3. The model file replaced by rename (how files are updated): the mapping
    keeps the old file, so the output stays the loaded model's.
 4. A full disk for the expert trace (--trace-experts /dev/full): the
    error is reported once, naming the file and the reason, the exit
    status says so, and the generated text is still all there and right.
 5. A full disk, or a closed pipe, for the log (stderr): the daemon serves
    every request as before.

Usage: test_faults.py SMOKED.  Needs only the committed fixtures
(tests/fixtures/hf-models: llama-f32, qwen3moe-bf16).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_fixture import Checks, Daemon, free_port, health  # noqa: E402

ROOT = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf-models")
BODY = {"prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0}


def post(url, path, body):
    """(status, parsed JSON body) of a POST."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def text_of(answer):
    status, body = answer
    return body["choices"][0]["text"] if status == 200 else None


def error_of(answer):
    status, body = answer
    return body.get("error", {}).get("message", "") if isinstance(body, dict) else ""


def model_copy(tmp, name):
    """A private copy of a fixture directory (the test cuts its files)."""
    d = os.path.join(tempfile.mkdtemp(dir=tmp), name)
    shutil.copytree(os.path.join(FIXTURES, name), d)
    return d


def truncated_resident_copy(smoked, check, tmp, ref):
    d = model_copy(tmp, "llama-f32")
    st = os.path.join(d, "model.safetensors")
    daemon = Daemon(smoked, model=d, extra=["--weights-in-ram", "copy"])
    with daemon:
        check(text_of(post(daemon.url, "/v1/completions", BODY)) == ref,
              "resident copy: the mapping's completion")
        os.truncate(st, os.path.getsize(st) * 3 // 5)
        for i in range(2):
            check(text_of(post(daemon.url, "/v1/completions", BODY)) == ref,
                  "resident copy, truncated, request %d: the same completion" % (i + 1))
        status, body = health(daemon.port)
        check(status == 200, "resident copy, truncated: /health 200 (%s %s)" % (status, body))
    check(daemon.rc == 0, "resident copy, truncated: exit 0 (%s)" % daemon.rc)
    daemon.cleanup()


def truncated_resident(smoked, check, tmp):
    d = model_copy(tmp, "llama-f32")
    st = os.path.join(d, "model.safetensors")
    daemon = Daemon(smoked, model=d, extra=["--weights-in-ram", "map"])
    with daemon:
        ref = text_of(post(daemon.url, "/v1/completions", BODY))
        check(ref is not None, "resident: the reference completion")
        os.truncate(st, os.path.getsize(st) * 3 // 5)
        for i in range(2):
            a = post(daemon.url, "/v1/completions", BODY)
            msg = error_of(a)
            check(a[0] == 500 and st in msg and "cut short" in msg,
                  "resident, truncated, request %d: 500 naming the file (%d %s)" % (i + 1, a[0], msg))
        s = dict(BODY, stream=True)
        req = urllib.request.Request(daemon.url + "/v1/completions", data=json.dumps(s).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                events = r.read().decode()
        except urllib.error.HTTPError as e:
            events = e.read().decode()
        check("cut short" in events and '"text"' not in events,
              "resident, truncated, a stream: an error and no text (%r)" % events[:300])
        status, body = health(daemon.port)
        check(status == 503 and json.loads(body).get("status") == "failed",
              "resident, truncated: /health 503 failed (%s %s)" % (status, body))
        t = post(daemon.url, "/tokenize", {"content": "hello"})
        check(t[0] == 200 and t[1].get("tokens"), "resident, truncated: /tokenize still served")
        check(daemon.proc.poll() is None, "resident, truncated: the daemon is alive")
    check(daemon.rc == 0, "resident, truncated: SIGTERM stops it cleanly (exit %s)" % daemon.rc)
    daemon.cleanup()
    return ref


def truncated_tiered(smoked, check, tmp, ref):
    d = model_copy(tmp, "llama-f32")
    st = os.path.join(d, "model.safetensors")
    keep = os.path.join(tmp, "llama-f32.safetensors")
    shutil.copyfile(st, keep)
    daemon = Daemon(smoked, model=d, extra=["--ram-cache", "60KiB", "--gpu-memory", "60KiB"])
    with daemon:
        check(text_of(post(daemon.url, "/v1/completions", BODY)) == ref,
              "tiered: the resident store's completion")
        os.truncate(st, os.path.getsize(st) * 3 // 5)
        a = post(daemon.url, "/v1/completions", BODY)
        msg = error_of(a)
        check(a[0] == 500 and st in msg and "cut short" in msg,
              "tiered, truncated: 500 naming the file (%d %s)" % (a[0], msg))
        shutil.copyfile(keep, st)
        check(text_of(post(daemon.url, "/v1/completions", BODY)) == ref,
              "tiered, the bytes back: the same completion")
        status, _ = health(daemon.port)
        check(status == 200, "tiered: /health 200 (%s)" % status)
    check(daemon.rc == 0, "tiered: exit 0 (%s)" % daemon.rc)
    daemon.cleanup()


def replaced(smoked, check, tmp, ref):
    d = model_copy(tmp, "llama-f32")
    st = os.path.join(d, "model.safetensors")
    other = os.path.join(tmp, "other.safetensors")
    shutil.copyfile(os.path.join(FIXTURES, "llama-f16", "model.safetensors"), other)
    daemon = Daemon(smoked, model=d)
    with daemon:
        os.replace(other, st)
        check(text_of(post(daemon.url, "/v1/completions", BODY)) == ref,
              "replaced by rename: the loaded model's completion")
        status, _ = health(daemon.port)
        check(status == 200, "replaced by rename: /health 200 (%s)" % status)
    daemon.cleanup()


def trace_full(smoked, check):
    model = os.path.join(FIXTURES, "qwen3moe-bf16")
    args = [smoked, "--model", model, "--prompt", "Once upon a time", "-n", "12", "--temp", "0",
            "--threads", "2"]
    plain = subprocess.run(args, capture_output=True, text=True, timeout=600)
    check(plain.returncode == 0 and plain.stdout, "trace: the run without a trace")
    full = subprocess.run(args + ["--trace-experts", "/dev/full"], capture_output=True, text=True,
                          timeout=600)
    lines = [l for l in full.stderr.splitlines() if "/dev/full" in l]
    check(full.returncode != 0, "trace on a full disk: a failing exit status (%d)" % full.returncode)
    check(len(lines) == 1 and "No space left on device" in lines[0],
          "trace on a full disk: reported once, naming the file and the reason (%r)" % lines)
    check(full.stdout == plain.stdout, "trace on a full disk: the generated text all there and right")


def log_full(smoked, check, ref):
    model = os.path.join(FIXTURES, "llama-f32")
    for what in ("/dev/full", "a closed pipe"):
        port = free_port()
        args = [smoked, "--model", model, "--port", str(port), "--threads", "2", "--log-level", "debug"]
        if what == "/dev/full":
            err = open("/dev/full", "w")
        else:
            r, w = os.pipe()
            os.close(r)
            err = os.fdopen(w, "w")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        try:
            ready = False
            for _ in range(600):
                if proc.poll() is not None:
                    break
                if health(port)[0] == 200:
                    ready = True
                    break
                subprocess.run(["sleep", "0.1"])
            check(ready, "log on %s: the daemon becomes ready" % what)
            url = "http://127.0.0.1:%d" % port
            ok = ready and all(text_of(post(url, "/v1/completions", BODY)) == ref for _ in range(3))
            check(ok, "log on %s: every request served, right" % what)
        finally:
            proc.terminate()
            rc = proc.wait(timeout=60)
        check(rc == 0, "log on %s: SIGTERM stops it cleanly (exit %s)" % (what, rc))


def main():
    smoked = sys.argv[1]
    check = Checks()
    tmp = tempfile.mkdtemp(prefix="smoke-faults-")
    try:
        ref = truncated_resident(smoked, check, tmp)
        truncated_resident_copy(smoked, check, tmp, ref)
        truncated_tiered(smoked, check, tmp, ref)
        replaced(smoked, check, tmp, ref)
        trace_full(smoked, check)
        log_full(smoked, check, ref)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
