#!/usr/bin/env python3
"""Integration test: the daemon serving HTTP with the CUDA backend, end to
end, on the CPU emulator of the CUDA kernels (SMOKE_BACKEND=cuda-emu: the
same kernel and device-tier code as on a GPU, each CUDA thread a fiber).

Usage: test_daemon_device.py PATH/TO/smoked

What runs on the device here is the worker's path (daemon/engine/worker.c):
each admitted request's KV cache allocated in device memory, continuous
batching through forward_run_batch, and with memory.gpu_memory below the
model the weights streamed through the device tier (slots, copy stream,
events).  Everything is checked through HTTP only:

1. /stats names the emulated backend (backend.name "cuda-emu", its note,
   gpu_memory's split into weight slots / KV / activations, weights.
   device_tier "gpu"); /metrics has smoke_backend_info{backend="cuda-emu"}
   and the same split.
2. Greedy chat completions (temperature 0, 8 tokens, logprobs with the top
   2) on the device equal the same config's on the CPU backend, token for
   token, for four prompts: against the default (SIMD) CPU kernels and the
   scalar ones (SMOKE_NO_SIMD=1, whose sums the CUDA kernels reproduce:
   docs/cuda.md "Numerics"); then on the float path (qwen2-f16, F16
   weights kept: float activations on both), and on K-quants
   (tiny-llama-spm of scripts/make-test-models, Q4_K/Q6_K with Q8_K
   activations; skipped when absent).  The API has no token ids; a token
   is its exact bytes (chat logprobs' "bytes"); the vocabularies' pieces
   are distinct, so equal bytes are equal ids.  A difference is
   reported with its first step and the top-2 logit margins there on both
   backends (logprob differences are logit differences).  The assertion is
   strict.
3. Continuous batching on the device: the four prompts streamed
   concurrently each give the tokens they gave alone (same kernels: exact),
   and /stats saw them active together; a client gone mid-stream is
   cancelled, its device KV cache freed, and serving goes on.
4. Out of core on the device: memory.gpu_memory = the KV budget + the
   activations + a third of the weights (the split engine.c's
   split_gpu_memory makes, read back from the resident daemon's /stats):
   the same tokens as the resident device run, alone and batched, while the
   device tier's misses, evictions and bytes copied in show the weights
   streamed (and four requests batched miss less than two alone: a round
   streams each unit once for the whole batch).
5. memory.gpu_memory too small is refused at start (exit status 1, the
   sizes named on stderr): not even the KV budget + activations (and the
   positions the message states for the KV bytes must be that many bytes'
   worth), and too little left for the largest weight unit.
6. A request whose KV cache does not fit limits.kv_budget gets 400
   context_length_exceeded naming the budget, and the daemon keeps serving
   (on a synthetic model with a context long enough to exceed the 1 MiB
   minimum budget: scripts/make-synthetic-safetensors.py --preset small).

Model: tests/fixtures/hf-models/llama-f32 (committed; 2 layers, hidden 32,
vocabulary 336) with memory.default_dtype=q8_0, so the matrices are Q8_0
and both backends take the int8-quantised-activation path.  The emulator
is slow (a forward pass of this model: tens of milliseconds on an idle
core, ten times that under load; tiny-llama-spm's 32000-row output head:
about a second), so the models are tiny and the completions short.
Skipped (exit 77) when smoked was built without CUDA; part 6 is skipped
without numpy.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_fixture as fx  # noqa: E402  (ports, starting smoked, checks)

SMOKED = sys.argv[1] if len(sys.argv) > 1 else "build/daemon/smoked"
ROOT = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "hf-models", "llama-f32")
KV_BUDGET = 1 << 20  # the smallest limits.kv_budget the config accepts
BASE = ["--kv-budget", str(KV_BUDGET), "--concurrency", "4", "--shutdown-grace", "2"]
CONFIG = BASE + ["--set", "memory.default_dtype=q8_0"]
# The float path (F16 weights kept as they are: float activations on both
# backends), on another architecture (attention biases, NEOX RoPE).
FLOAT_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "hf-models", "qwen2-f16")
FLOAT_CONFIG = BASE + ["--set", "memory.default_dtype=auto"]
KQUANT_MODEL = os.path.join(os.environ.get("SMOKE_TEST_MODELS") or os.path.join(
    os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke")), "test-models"), "tiny-llama-spm.gguf")
# The last prompt nearly fills the fixture's context of 128 positions (114
# prompt tokens with the chat template, + 8): a long prefill (the tiled
# kernel) beside the others' decoding, attention over the whole context.
PROMPTS = ["Hello there", "The capital of France is", "1 2 3 4 5 6 7 8 9 10 11 12", "Once upon a time, " * 6]
N_TOKENS = 8
EMU = {"SMOKE_BACKEND": "cuda-emu"}
NO_CUDA = "this build has no CUDA support"
check = fx.Checks()
failures = check.failures
# numpy (for part 6's synthetic model) is in the venv of scripts/setup: re-run
# under it now, before anything has started, if this interpreter lacks it.
HAVE_NUMPY = fx.import_from_venv("numpy") is not None


# ---- schema validation against proto/openapi.yaml (when available) ----
valid, _ = fx.schema_validator(ROOT)


# ---- HTTP ----
def request(port, method, path, body=None, timeout=600):
    """(status, parsed JSON or None, text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode("utf-8")
    c.close()
    try:
        js = json.loads(text)
    except ValueError:
        js = None
    return r.status, js, text


def stats(port):
    return request(port, "GET", "/stats")[1]


def metrics(port):
    """/metrics as {sample name with labels: value}."""
    text = request(port, "GET", "/metrics")[2]
    out = {}
    for line in text.split("\n"):
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def chat_body(prompt, stream=False, n=N_TOKENS):
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": n, "temperature": 0,
            "logprobs": True, "top_logprobs": 2, "stream": stream}


class Gen:
    """One greedy generation: per token its bytes, its logprob and the top
    two logprobs; and the text."""

    def __init__(self, text, content):
        self.text = text
        self.tokens = [bytes(c["bytes"]) for c in content]
        self.logprobs = [c["logprob"] for c in content]
        self.top = [[t["logprob"] for t in c["top_logprobs"]] for c in content]

    def margin(self, i):
        """logit(top 1) - logit(top 2) at step i (logprobs share the
        normaliser)."""
        t = self.top[i]
        return t[0] - t[1] if len(t) > 1 else float("inf")


def generate(port, prompt, n=N_TOKENS):
    s, js, text = request(port, "POST", "/v1/chat/completions", chat_body(prompt, n=n))
    if s != 200 or not valid(js, "ChatCompletion"):
        return None, "HTTP %d %s" % (s, text[:300])
    ch = js["choices"][0]
    return Gen(ch["message"]["content"], ch["logprobs"]["content"]), None


def generate_stream(port, prompt, out, i):
    """Streamed generation into out[i]: a Gen, or a string saying what
    went wrong."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(prompt, True)),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out[i] = "HTTP %d %s" % (r.status, r.read()[:300])
            return
        buf, events = b"", []
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                payload = ev.decode("utf-8")[len("data: "):]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
        c.close()
        if not events or events[-1] != "[DONE]":
            out[i] = "stream did not end with [DONE]"
            return
        if not all(valid(e, "ChatChunk") for e in events[:-1]):
            out[i] = "a chunk does not match ChatChunk"
            return
        text, content = "", []
        for e in events[:-1]:
            for ch in e["choices"]:
                text += ch["delta"].get("content") or ""
                content += (ch.get("logprobs") or {}).get("content") or []
        out[i] = Gen(text, content)
    except (OSError, ValueError) as e:
        out[i] = "%s: %s" % (type(e).__name__, e)


def first_difference(a, b):
    n = min(len(a.tokens), len(b.tokens))
    for i in range(n):
        if a.tokens[i] != b.tokens[i]:
            return i
    return None if len(a.tokens) == len(b.tokens) else n


def compare(what, got, want, want_name, got_name):
    """Strict token equality of two generations; on a difference, the first
    differing step and the top-2 margins there on both sides."""
    if isinstance(got, str) or isinstance(want, str) or got is None or want is None:
        check(False, "%s: %s / %s" % (what, got, want))
        return
    i = first_difference(got, want)
    if i is None:
        worst = max((abs(x - y) for x, y in zip(got.logprobs, want.logprobs)), default=0.0)
        check(got.text == want.text, "%s: %d tokens equal (%r; logprobs within %.1e, smallest top-2 margin %.3f)"
              % (what, len(got.tokens), got.text, worst,
                 min((want.margin(k) for k in range(len(want.tokens))), default=float("inf"))))
        return
    why = "first difference at step %d: %s %r vs %s %r" % (
        i, got_name, got.tokens[i:i + 1], want_name, want.tokens[i:i + 1])
    if i < len(got.tokens) and i < len(want.tokens):
        why += "; top-2 margin there %.4f on %s, %.4f on %s" % (got.margin(i), got_name, want.margin(i), want_name)
        why += "; earlier logprobs within %.1e" % max(
            (abs(x - y) for x, y in zip(got.logprobs[:i], want.logprobs[:i])), default=0.0)
    check(False, "%s: tokens differ (%s)" % (what, why))


def stop_daemon(d, name):
    """SIGTERM; the log's tail is printed if a check failed while it ran."""
    if d.proc.poll() is None:
        rc = d.stop(timeout=60)
        check(rc == 0, "%s: SIGTERM exit status 0 (got %s)" % (name, rc))
    text = d.log_text()
    check("stopped" in text, "%s: log says 'stopped'" % name)
    if len(failures) > d.failures_before:
        print("---- %s log (tail) ----\n%s" % (name, text[-3000:]))
    d.cleanup()


def start(name, env, extra=(), model=FIXTURE, config=CONFIG):
    """A ready daemon, or None (with a FAIL) if it did not start."""
    d = fx.Daemon(SMOKED, model=model, env=env, extra=list(config) + list(extra))
    d.failures_before = len(failures)
    d.start()
    ok = d.wait_ready(timeout=120)
    if not ok:
        text = d.log_text()
        if NO_CUDA in text:
            d.stop()
            d.cleanup()
            raise Skip(text.strip().split("\n")[-2:])
        check(False, "%s: daemon became ready (log: %s)" % (name, text[-1500:]))
        d.stop()
        d.cleanup()
        return None
    return d


class Skip(Exception):
    pass


def kv_bytes_per_position(model_dir):
    """K and V halves of every layer for one position (kvcache.c keeps
    [n_layer][n_ctx][kv_dim] fp16 values, 2 bytes each, for each)."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * head_dim * 2


# ---- the parts ----
def cpu_reference(prompts, model=FIXTURE, config=CONFIG, tag="", n=N_TOKENS):
    """The prompts on the CPU backend, default and scalar kernels."""
    out = {}
    for name, env in [("cpu", {"SMOKE_BACKEND": "cpu", "SMOKE_NO_SIMD": None}),
                      ("cpu-scalar", {"SMOKE_BACKEND": "cpu", "SMOKE_NO_SIMD": "1"})]:
        d = start(name + tag, env, model=model, config=config)
        if not d:
            continue
        try:
            st = stats(d.port)
            check(st["backend"]["name"] == "cpu" and "gpu_memory" not in st["backend"],
                  "%s%s: /stats backend.name is cpu, no gpu_memory split" % (name, tag))
            # the kernels CPUID chose, and scalar where SMOKE_NO_SIMD says so
            note = st["backend"].get("note", "")
            want = ("scalar kernels",) if name == "cpu-scalar" else ("avx2 kernels", "avx512 kernels")
            check(any(w in note for w in want),
                  "%s%s: /stats backend.note names the kernels (%r)" % (name, tag, note))
            out[name] = []
            for p in prompts:
                g, err = generate(d.port, p, n)
                check(g is not None, "%s%s: greedy chat completion of %r (%s)" % (name, tag, p, err or "ok"))
                out[name].append(g)
        finally:
            stop_daemon(d, name + tag)
    return out


def other_path(model, config, prompts, tag, n=N_TOKENS):
    """Part 2 on another model: the prompts on the CPU backend and on a
    resident device daemon."""
    cpu = cpu_reference(prompts, model, config, tag, n)
    d = start("cuda-emu" + tag, EMU, model=model, config=config)
    if not d:
        return
    try:
        be = stats(d.port)["backend"]
        check(be["name"] == "cuda-emu", "cuda-emu%s: /stats backend.name is cuda-emu" % tag)
        for i, p in enumerate(prompts):
            g, err = generate(d.port, p, n)
            for ref in ("cpu", "cpu-scalar"):
                if ref in cpu:
                    compare("prompt %d%s: cuda-emu vs %s" % (i, tag, ref), g or err, cpu[ref][i], ref, "cuda-emu")
    finally:
        stop_daemon(d, "cuda-emu" + tag)


def check_backend_stats(st, mt, name, weights_bytes):
    be = st.get("backend") or {}
    gm = be.get("gpu_memory") or {}
    check(valid(st, "Stats"), "%s: /stats matches the Stats schema" % name)
    check(be.get("name") == "cuda-emu" and "emulator" in be.get("note", ""),
          "%s: /stats backend is the emulated CUDA one (%r, %r)" % (name, be.get("name"), be.get("note")))
    check(gm.get("kv_bytes") == KV_BUDGET and gm.get("scratch_bytes", 0) > 0
          and gm.get("weights_bytes") == weights_bytes,
          "%s: gpu_memory split: kv_bytes = limits.kv_budget, scratch > 0, weights_bytes %d (%s)"
          % (name, weights_bytes, gm))
    w = st.get("weights") or {}
    check(w.get("store") == "tiered" and w.get("compute_tier") == "device" and w.get("device_tier") == "gpu",
          "%s: weights computed from the device tier, which is GPU memory (store %s, compute_tier %s, "
          "device_tier %s)" % (name, w.get("store"), w.get("compute_tier"), w.get("device_tier")))
    check(mt.get('smoke_backend_info{backend="cuda-emu"}') == 1,
          "%s: /metrics smoke_backend_info{backend=\"cuda-emu\"} 1" % name)
    check(mt.get('smoke_gpu_memory_bytes{use="weights"}') == gm.get("weights_bytes")
          and mt.get('smoke_gpu_memory_bytes{use="kv_cache"}') == gm.get("kv_bytes")
          and mt.get('smoke_gpu_memory_bytes{use="activations"}') == gm.get("scratch_bytes"),
          "%s: /metrics smoke_gpu_memory_bytes agrees with /stats" % name)
    return gm


def concurrent(port, name):
    """The prompts streamed at once; returns their Gens and the most
    sequences /stats saw active together."""
    out = [None] * len(PROMPTS)
    th = [threading.Thread(target=generate_stream, args=(port, p, out, i)) for i, p in enumerate(PROMPTS)]
    most = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            st = stats(port)
            most[0] = max(most[0], st["sequences"]["active"])
            time.sleep(0.05)
    w = threading.Thread(target=watch)
    w.start()
    for t in th:
        t.start()
    for t in th:
        t.join()
    done.set()
    w.join()
    return out, most[0]


def disconnect(port, name):
    """A client that goes away mid-stream: its sequence is cancelled, its
    device KV cache freed, and the next request is served.  The request
    samples (a random model, no seed), so it may draw the end of text and
    finish before the client has gone (a CI run saw 4 tokens and "stop"
    in 77 ms): then nothing was tested, and it is tried again, up to five
    times."""
    for _ in range(5):
        before = stats(port)["requests"]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/v1/completions", body=json.dumps({"prompt": "Long", "max_tokens": 100, "stream": True}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read1(100)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            st = stats(port)
            if st["sequences"]["active"] == 0:
                break
            time.sleep(0.1)
        if st["requests"]["completed"] == before["completed"]:
            break  # not finished on its own: what the check is about
    check(st["sequences"]["active"] == 0 and st["sequences"]["kv_bytes"] == 0
          and st["requests"]["cancelled"] == before["cancelled"] + 1,
          "%s: a client gone mid-stream is cancelled and its KV freed (%s, kv_bytes %d)"
          % (name, st["requests"], st["sequences"]["kv_bytes"]))
    s, js, text = request(port, "POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "temperature": 0})
    check(s == 200 and js["usage"]["completion_tokens"] == 1, "%s: serving after the disconnect (%d)" % (name, s))


def device_resident(cpu):
    """Returns the resident device run's generations and gpu_memory split."""
    d = start("cuda-emu", EMU)
    if not d:
        return None, None
    try:
        st, mt = stats(d.port), metrics(d.port)
        gm = check_backend_stats(st, mt, "cuda-emu", 0)
        gm = dict(gm, model_weight_bytes=st["model"]["weight_bytes"])
        alone = []
        for i, p in enumerate(PROMPTS):
            g, err = generate(d.port, p)
            alone.append(g if g else err)
            for ref in ("cpu", "cpu-scalar"):
                if ref in cpu:
                    compare("prompt %d: cuda-emu vs %s" % (i, ref), g or err, cpu[ref][i], ref, "cuda-emu")
        together, most = concurrent(d.port, "cuda-emu")
        check(most >= 2, "cuda-emu: /stats saw %d sequences active together (batched rounds)" % most)
        for i in range(len(PROMPTS)):
            compare("prompt %d: cuda-emu streamed beside %d others vs alone" % (i, len(PROMPTS) - 1),
                    together[i], alone[i], "alone", "batched")
        disconnect(d.port, "cuda-emu")
        dev = stats(d.port)["weights"]["device"]
        check(dev["evictions"] == 0 and dev["budget_bytes"] >= gm["model_weight_bytes"],
              "cuda-emu resident: the device tier holds the model, nothing evicted (%s)" % dev)
        return alone, gm
    finally:
        stop_daemon(d, "cuda-emu")


def device_out_of_core(alone, gm):
    """gpu_memory = KV budget + activations + a third of the weights."""
    third = gm["model_weight_bytes"] // 3
    gpu_memory = gm["kv_bytes"] + gm["scratch_bytes"] + third
    name = "cuda-emu out of core"
    d = start(name, EMU, ["--gpu-memory", str(gpu_memory)])
    if not d:
        return
    try:
        st, mt = stats(d.port), metrics(d.port)
        check_backend_stats(st, mt, name, third)
        dev = st["weights"]["device"]
        check(0 < dev["budget_bytes"] <= third,
              "%s: memory.gpu_memory = %d: the device tier's budget %d <= a third of the %d weight bytes"
              % (name, gpu_memory, dev["budget_bytes"], gm["model_weight_bytes"]))
        misses0 = dev["misses"]
        for i in (0, 1):
            g, err = generate(d.port, PROMPTS[i])
            compare("prompt %d: out of core vs resident (cuda-emu)" % i, g or err, alone[i], "resident", "streamed")
        misses1 = stats(d.port)["weights"]["device"]["misses"]
        together, most = concurrent(d.port, name)
        for i in range(len(PROMPTS)):
            compare("prompt %d: out of core, streamed beside %d others, vs resident alone" % (i, len(PROMPTS) - 1),
                    together[i], alone[i], "resident", "streamed")
        dev = stats(d.port)["weights"]["device"]
        # A round streams each weight unit once for the whole batch, so the
        # four together miss less than two of them alone did.
        check(dev["misses"] - misses1 < misses1 - misses0,
              "%s: %d requests batched cost %d device-tier misses, fewer than the %d of 2 requests alone "
              "(%d seen active together)" % (name, len(PROMPTS), dev["misses"] - misses1, misses1 - misses0, most))
        check(dev["misses"] > 0 and dev["evictions"] > 0 and dev["bytes_in"] > gm["model_weight_bytes"],
              "%s: weights streamed through the device tier (misses %d, evictions %d, %d bytes copied in "
              "for %d bytes of weights)" % (name, dev["misses"], dev["evictions"], dev["bytes_in"],
                                            gm["model_weight_bytes"]))
        check(dev["peak_bytes"] <= dev["budget_bytes"],
              "%s: the device tier stayed within its budget (peak %d of %d)"
              % (name, dev["peak_bytes"], dev["budget_bytes"]))
    finally:
        stop_daemon(d, name)


def refused(name, gpu_memory, must_name):
    """smoked with this gpu_memory must exit 1 by itself, never ready, with
    a message naming each of must_name (strings) on stderr.  Returns the
    error line."""
    d = fx.Daemon(SMOKED, model=FIXTURE, env=EMU, extra=list(CONFIG) + ["--gpu-memory", str(gpu_memory)])
    d.start()
    ready = d.wait_ready(timeout=60)
    try:
        rc = d.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        rc = None
    d.stop()
    text = d.log_text()
    d.cleanup()
    line = next((l for l in text.split("\n") if "cannot load the model" in l), "")
    check(not ready and rc == 1, "%s: refused at start, exit status 1 (got %s)" % (name, rc))
    missing = [s for s in must_name if s not in line]
    check(line and not missing, "%s: stderr names %s (missing %s): %s" % (name, must_name, missing, line.strip()))
    return line


def too_small(gm):
    kv, scratch = gm["kv_bytes"], gm["scratch_bytes"]
    # Exactly KV + activations: nothing left for weights.
    line = refused("gpu_memory = KV + activations", kv + scratch,
                   ["memory.gpu_memory = %d bytes" % (kv + scratch), "%d bytes" % kv, "%d bytes" % scratch,
                    "limits.kv_budget"])
    # The KV part of the message is the KV budget (limits.kv_budget); the
    # positions it states must be that many bytes' worth.
    m = re.search(r"KV cache \((\d+) bytes for (\d+) positions\)", line)
    if m:
        per_pos = kv_bytes_per_position(FIXTURE)
        n_bytes, n_pos = int(m.group(1)), int(m.group(2))
        check(n_bytes == n_pos * per_pos,
              "gpu_memory = KV + activations: the message's KV figure is consistent: %d bytes for %d positions "
              "of %d bytes each would be %d bytes (limits.kv_budget = %d bytes is %d positions)"
              % (n_bytes, n_pos, per_pos, n_pos * per_pos, kv, kv // per_pos))
    # Room for the KV budget and the activations, but not for the largest
    # weight unit (the output head).
    refused("gpu_memory = KV + activations + 100 bytes", kv + scratch + 100,
            ["memory.gpu_memory", "= 100 bytes", "%d for the KV cache" % kv, "%d for the activations" % scratch])


def kv_budget_exceeded():
    """A request needing more KV than limits.kv_budget: 400, and serving
    goes on.  The fixture's context (128) cannot exceed the smallest budget
    (1 MiB), so a one-layer synthetic model (context 8192) is used, with a
    context of 4096 (the fp16 cache's 1 MiB holds 2048 of its positions)."""
    if not HAVE_NUMPY:
        print("note: numpy not available (scripts/setup); the KV-budget check is skipped")
        return
    tmp = tempfile.mkdtemp(prefix="smoke-device-")
    model = os.path.join(tmp, "synthetic")
    try:
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-safetensors.py"),
                            model, "--preset", "small", "--layers", "1"], capture_output=True, text=True, timeout=300)
        if not check(r.returncode == 0, "make-synthetic-safetensors.py --preset small --layers 1 (%s)"
                     % (r.stdout + r.stderr).strip()[-300:]):
            return
        per_pos = kv_bytes_per_position(model)
        name = "cuda-emu kv budget"
        d = start(name, EMU, ["--ctx", "4096", "--max-tokens", "4096"], model=model)
        if not d:
            return
        try:
            ids = [72, 105]  # two token ids of the byte-level vocabulary
            max_tokens = KV_BUDGET // per_pos + 8 - len(ids)
            need = (len(ids) + max_tokens) * per_pos
            s, js, text = request(d.port, "POST", "/v1/completions",
                                  {"prompt": ids, "max_tokens": max_tokens, "temperature": 0})
            err = (js or {}).get("error") or {}
            msg = err.get("message", "")
            check(s == 400 and valid(js, "Error") and err.get("code") == "context_length_exceeded"
                  and err.get("param") == "max_tokens",
                  "%s: prompt + max_tokens needing %d bytes of KV > limits.kv_budget %d -> 400 "
                  "context_length_exceeded, param max_tokens (got %d %s)" % (name, need, KV_BUDGET, s, err))
            check("limits.kv_budget" in msg and str(need) in msg and str(KV_BUDGET) in msg,
                  "%s: the message names limits.kv_budget, the bytes needed and the budget: %r" % (name, msg))
            st = stats(d.port)
            check(st["requests"]["rejected"] == 1 and st["requests"]["admitted"] == 0
                  and st["sequences"]["kv_bytes"] == 0,
                  "%s: counted as rejected, nothing admitted or reserved (%s, kv_bytes %d)"
                  % (name, st["requests"], st["sequences"]["kv_bytes"]))
            s, js, text = request(d.port, "POST", "/v1/completions",
                                  {"prompt": ids, "max_tokens": 2, "temperature": 0, "logprobs": 1})
            check(s == 200 and js["usage"]["completion_tokens"] == 2 and js["choices"][0]["finish_reason"] == "length",
                  "%s: still serving on the device after the refusal (%d %s)" % (name, s, text[:200]))
            st = stats(d.port)
            check(st["requests"]["completed"] == 1 and st["sequences"]["active"] == 0
                  and st["sequences"]["kv_bytes"] == 0,
                  "%s: the request completed and its KV reservation was returned (%s)" % (name, st["requests"]))
        finally:
            stop_daemon(d, name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t0 = time.time()
    try:
        cpu = cpu_reference(PROMPTS)
        alone, gm = device_resident(cpu)
        if alone and gm:
            device_out_of_core(alone, gm)
            too_small(gm)
        # The float path: F16 weights, float activations on both backends.
        other_path(FLOAT_FIXTURE, FLOAT_CONFIG, PROMPTS[:2], " (qwen2-f16)")
        # K-quants (Q4_K, Q6_K: Q8_K activations), the default model's
        # types, with a 32000-token vocabulary: a forward pass takes ~1 s
        # under the emulator here, so one prompt and 4 tokens.
        if os.path.exists(KQUANT_MODEL):
            other_path(KQUANT_MODEL, BASE, PROMPTS[:1], " (tiny-llama-spm)", 4)
        else:
            print("note: %s is absent (scripts/make-test-models); the K-quant comparison is skipped" % KQUANT_MODEL)
        kv_budget_exceeded()
    except Skip as e:
        print("SKIP: smoked has no CUDA emulator: %s" % e)
        return fx.SKIP
    print("%d passed, %d failed (%.0f s)" % (check.passed, len(failures), time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
