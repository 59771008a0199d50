#!/usr/bin/env python3
"""scripts/gpu-daemon-check.py - the daemon serving HTTP on the GPU, for
scripts/gpu-check (step 7c).  Standard library only: the GPU machine has no
package registry.

    gpu-daemon-check.py SMOKED MODEL [-n N] [--prompt TEXT] [--weights-fraction F]

What it checks, through HTTP only, on whatever backend smoked picks (CUDA on
a GPU machine; SMOKE_BACKEND=cuda-emu in the environment runs the emulated
kernels, for trying this script on a machine without a GPU, with a tiny
model):
  1. /stats names the backend, and its gpu_memory split;
  2. a greedy completion (temperature 0) equals the CPU backend's offline
     greedy text (SMOKE_BACKEND=cpu with the scalar kernels,
     the sums the CUDA kernels reproduce: docs/cuda.md "Numerics"; and the
     default SIMD kernels, reported);
  3. four concurrent streamed requests each get the single request's text
     (continuous batching on the device: the same kernels, so exact);
  4. the same daemon with memory.gpu_memory holding the KV budget, the
     activations and F (default 1/3) of the weights: the same text, with the
     device tier's misses > 0 in /stats (weights streamed per token).
Prints one line per check and a last line "DAEMON-CHECK {json}"; exit 0 when
every check passed, 1 otherwise.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import daemon_fixture as fx  # noqa: E402  (after the path above)

KV_BUDGET = 16 << 20


def request(port, method, path, body=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, data


def complete(port, prompt, n):
    status, data = request(port, "POST", "/v1/completions",
                           {"prompt": prompt, "max_tokens": n, "temperature": 0})
    if status != 200:
        raise RuntimeError("completion: HTTP %d: %s" % (status, data[:300]))
    return json.loads(data)["choices"][0]["text"]


def complete_streamed(port, prompt, n, out, i):
    """The text of a streamed completion (server-sent events) into out[i]."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions",
              body=json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0,
                               "stream": True}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = []
    for raw in r:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        ev = json.loads(payload)
        text.append(ev["choices"][0].get("text", ""))
    c.close()
    out[i] = "".join(text) if r.status == 200 else "HTTP %d" % r.status


def offline_cpu(smoked, model, prompt, n, scalar):
    env = dict(os.environ, SMOKE_BACKEND="cpu")
    if scalar:
        env["SMOKE_NO_SIMD"] = "1"
    out = subprocess.run([smoked, "--model", model, "--prompt", prompt, "-n", str(n), "--temp", "0",
                          "--threads", "0"],
                         capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        raise RuntimeError("offline CPU run: " + out.stderr[-500:])
    return out.stdout


def stats(port):
    status, data = request(port, "GET", "/stats")
    if status != 200:
        raise RuntimeError("/stats: HTTP %d" % status)
    return json.loads(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("smoked")
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=24)
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("--weights-fraction", type=float, default=1 / 3)
    a = ap.parse_args()
    check = fx.Checks()
    res = {}

    ref_scalar = offline_cpu(a.smoked, a.model, a.prompt, a.n, True)
    ref_simd = offline_cpu(a.smoked, a.model, a.prompt, a.n, False)
    common = ["--set", "limits.kv_budget=%d" % KV_BUDGET, "--ctx", "512"]

    with fx.Daemon(a.smoked, model=a.model, extra=common) as d:
        st = stats(d.port)
        be = st.get("backend", {})
        res["backend"] = be.get("name")
        print("backend: %s (%s)" % (be.get("name"), be.get("note", "")))
        check(be.get("name") in ("cuda", "cuda-emu"), "/stats backend.name is a CUDA backend")
        single = complete(d.port, a.prompt, a.n)
        res["equal_cpu_scalar"] = single == ref_scalar
        res["equal_cpu"] = single == ref_simd
        check(single == ref_scalar, "greedy text equals the CPU backend's (scalar kernels): %r" % single)
        print("info  greedy text %s the CPU backend's with its SIMD kernels" %
              ("equals" if single == ref_simd else "differs from"))
        outs = [None] * 4
        ts = [threading.Thread(target=complete_streamed, args=(d.port, a.prompt, a.n, outs, i))
              for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        res["batched_equal"] = all(o == single for o in outs)
        check(res["batched_equal"], "4 concurrent streamed requests each equal the single one")
        gm = be.get("gpu_memory", {})
        kv, scratch = gm.get("kv_bytes", 0), gm.get("scratch_bytes", 0)
        weights = st["model"]["weight_bytes"]
        res["resident_gpu_memory"] = gm

    budget = int(kv + scratch + weights * a.weights_fraction)
    res["ooc_gpu_memory"] = budget
    with fx.Daemon(a.smoked, model=a.model,
                   extra=common + ["--set", "memory.gpu_memory=%d" % budget]) as d:
        text = complete(d.port, a.prompt, a.n)
        st = stats(d.port)
        w = st.get("weights", {})
        res["ooc_equal"] = text == single
        check(text == single, "out of core (gpu_memory %.1f MiB): the resident daemon's text" %
              (budget / 1048576))
        dev = w.get("device", {})
        res["ooc_device_tier"] = dev
        print("info  device tier: %s" % json.dumps(dev))
        check(w.get("device_tier") == "gpu" or res["backend"] == "cuda-emu",
              "weights.device_tier is gpu (%s)" % w.get("device_tier"))
        check(dev.get("bytes_in", 0) > weights,
              "the device tier streamed more than the model's %d bytes for one request (%d)" %
              (weights, dev.get("bytes_in", 0)))

    print("DAEMON-CHECK " + json.dumps(res))
    print("%d passed, %d failed" % (check.passed, len(check.failures)))
    return 0 if not check.failures else 1


if __name__ == "__main__":
    sys.exit(main())
