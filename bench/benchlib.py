"""bench/benchlib.py - what the out-of-core benchmarks share: a memory cgroup
that caps a process and everything it reads through the page cache, dropping
the page cache, and the llama.cpp and model paths.

A capped run is the honest out-of-core case: without a cap, a model file that
fits in the machine's RAM stays in the page cache after the first pass, and
"streaming from disk" is a memory copy.  The cgroup's limit charges the
process's own memory and the page cache it causes, so with a limit of the
budgets plus the process's own needs the cache cannot hold the model and
every pass reads the disk.

Needs root (cgroup creation, /proc/sys/vm/drop_caches).  The cgroup is made
a child of the one this script runs in (v1 memory controller or v2), so the
caller's own limits still apply around it.
"""
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke"))


def _own_cgroup():
    """(v2, directory of this process's memory cgroup) or (None, None)."""
    v1 = v2 = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctl, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctl.split(","):
                v1 = "/sys/fs/cgroup/memory" + path
            elif hid == "0" and ctl == "":
                v2 = "/sys/fs/cgroup" + path
    if v1 and os.path.exists(os.path.join(v1, "memory.limit_in_bytes")):
        return False, v1.rstrip("/")
    if v2 and os.path.exists(os.path.join(v2.rstrip("/") or "/sys/fs/cgroup", "cgroup.controllers")):
        return True, v2.rstrip("/")
    return None, None


class MemCgroup:
    """A memory cgroup with a hard limit.  Start processes in it with
    subprocess.Popen(..., preexec_fn=cg.enter); they are charged from their
    first allocation (moving a running process would leave its earlier
    charges behind)."""

    def __init__(self, name, limit):
        v2, parent = _own_cgroup()
        if parent is None:
            raise RuntimeError("no memory cgroup controller found in /proc/self/cgroup")
        self.v2 = v2
        self.dir = os.path.join(parent, name)
        if os.path.isdir(self.dir):
            self.remove()
        os.mkdir(self.dir)
        if v2:
            # Without swap accounting a v2 cgroup could push anon memory to swap;
            # there is no swap here, but say so explicitly.
            self._write("memory.swap.max", "0", missing_ok=True)
        self.set_limit(limit)

    def _write(self, name, value, missing_ok=False):
        p = os.path.join(self.dir, name)
        if missing_ok and not os.path.exists(p):
            return
        with open(p, "w") as f:
            f.write(str(value))

    def _read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def set_limit(self, limit):
        self.limit = int(limit)
        self._write("memory.max" if self.v2 else "memory.limit_in_bytes", self.limit)

    def enter(self):
        """preexec_fn: move the child (before exec) into the cgroup."""
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def reset_peak(self):
        if self.v2:
            self._write("memory.peak", "0", missing_ok=True)
        else:
            self._write("memory.max_usage_in_bytes", "0")

    def peak(self):
        """Peak charge (process memory + its page cache) since reset_peak."""
        try:
            return int(self._read("memory.peak" if self.v2 else "memory.max_usage_in_bytes"))
        except OSError:
            return 0

    def usage(self):
        return int(self._read("memory.current" if self.v2 else "memory.usage_in_bytes"))

    def stat(self):
        out = {}
        for line in self._read("memory.stat").splitlines():
            k, _, v = line.partition(" ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def cache_bytes(self):
        s = self.stat()
        return s.get("file", 0) if self.v2 else s.get("total_cache", s.get("cache", 0))

    def oom_kills(self):
        try:
            if self.v2:
                for line in self._read("memory.events").splitlines():
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
                return 0
            for line in self._read("memory.oom_control").splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
            return 0
        except OSError:
            return 0

    def remove(self):
        """rmdir once every process in it has ended (retries briefly)."""
        for _ in range(50):
            try:
                os.rmdir(self.dir)
                return
            except OSError:
                time.sleep(0.1)


def drop_caches():
    """sync + drop the page cache (root); False if not allowed."""
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def mem_available():
    """Bytes of memory available now (/proc/meminfo MemAvailable)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def llama_bin():
    """The native (fast) llama.cpp build's bin/ directory, built if missing."""
    out = subprocess.run(["./scripts/build-llama-cpp"], cwd=ROOT, env=dict(os.environ, LLAMA_FLAVOUR="native"),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("scripts/build-llama-cpp failed: " + out.stderr[-1000:])
    return out.stdout.strip().splitlines()[-1]


def llama_version(flavour="native"):
    """scripts/build-llama-cpp's record of its `flavour` build
    (${SMOKE_CACHE}/llama.cpp/VERSION-<flavour>: llama_cpp_commit,
    build_dir, cmake_args, ...) as a dict; {} if there is none."""
    out = {}
    try:
        with open(os.path.join(CACHE, "llama.cpp", "VERSION-" + flavour)) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    out.setdefault(k, v)
    except OSError:
        pass
    return out


def llama_info(flavour="native"):
    """Two lines naming the llama.cpp build a benchmark ran: its commit and
    its CMake flags (from llama_version; '?' where unknown)."""
    v = llama_version(flavour)
    return ["llama.cpp: llama_cpp_commit=%s (%s build in %s)" % (v.get("llama_cpp_commit", "?"), flavour,
                                                                 v.get("build_dir", "?")),
            "llama.cpp flags: %s" % v.get("cmake_args", "?")]


def llama_native_tool(name):
    """(path, None) of tool `name` (e.g. llama-server) of the native llama.cpp
    build that LLAMA_FLAVOUR=native scripts/build-llama-cpp made earlier,
    found through its VERSION-native record; builds nothing.  (None, why)
    where there is none."""
    v = llama_version("native")
    if not v.get("build_dir"):
        return None, ("no native llama.cpp build (%s is missing; LLAMA_FLAVOUR=native scripts/build-llama-cpp "
                      "builds it)" % os.path.join(CACHE, "llama.cpp", "VERSION-native"))
    exe = os.path.join(v["build_dir"], "bin", name)
    if not os.access(exe, os.X_OK):
        return None, ("the native llama.cpp build in %s has no %s (LLAMA_FLAVOUR=native scripts/build-llama-cpp "
                      "builds it)" % (v["build_dir"], name))
    return exe, None


def python():
    venv = os.path.join(CACHE, "venv", "bin", "python")
    return venv if os.access(venv, os.X_OK) else "python3"


def llama8b_like():
    """The multi-GB Llama-8B-shaped random-weight model (scripts/make-tiny-gguf.py
    --preset llama8b-like), generated on first use (~7 minutes, 5.1 GB)."""
    path = os.environ.get("SMOKE_BIG_MODEL") or os.path.join(CACHE, "test-models", "llama8b-like.gguf")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        print("generating %s (5.1 GB, several minutes) ..." % path, flush=True)
        subprocess.run([python(), os.path.join(ROOT, "scripts", "make-tiny-gguf.py"), "--preset", "llama8b-like",
                        "--name", "llama8b-like", "--out", path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def meminfo_rss(pid):
    """(VmRSS, RssAnon) of a live process in bytes, or (0, 0)."""
    rss = anon = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, anon


def llama_bench(model, n, cg, extra=(), timeout=600):
    """llama.cpp decode tok/s (llama-bench -p 0 -n n, its default mmap load)
    run in cgroup cg (or None); (None, why) if it fails or runs past timeout
    seconds (in a cap it can spin in reclaim instead of being OOM-killed).
    The same measurement as bench/hierarchy-ooc's."""
    import json
    exe = os.path.join(llama_bin(), "llama-bench")
    cmd = [exe, "-m", model, "-p", "0", "-n", str(n), "-r", "1", "-t", str(os.cpu_count()), "-o", "json", *extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cg.enter if cg else None,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "did not finish in %d s (killed)" % timeout
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, p.stderr.strip().splitlines()[-1:] if p.stderr else "")
    try:
        return json.loads(p.stdout)[0]["avg_ts"], None
    except (ValueError, KeyError, IndexError):
        return None, "unreadable output: " + p.stdout[-300:]


def bench_model(preset, layers=None, experts=None):
    """A --fast synthetic model of scripts/make-tiny-gguf.py's `preset`
    (optionally scaled down to `layers` layers and `experts` experts) in
    ${SMOKE_CACHE}/bench-models/, generated on first use at disk speed."""
    tag = preset + ("-L%d" % layers if layers else "") + ("-E%d" % experts if experts else "")
    path = os.path.join(CACHE, "bench-models", tag + ".gguf")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [python(), os.path.join(ROOT, "scripts", "make-tiny-gguf.py"), "--preset", preset, "--fast",
               "--name", tag, "--out", path + ".tmp"]
        if layers:
            cmd += ["--n-layer", str(layers)]
        if experts:
            cmd += ["--n-expert", str(experts)]
        print("generating %s (make-tiny-gguf.py --fast) ..." % path, flush=True)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        os.rename(path + ".tmp", path)
        print("  %.2f GB in %.0f s" % (os.path.getsize(path) / 1e9, time.time() - t0), flush=True)
    return path


# --- llama.cpp as a multi-stream peer (bench/moe-ooc, bench/daemon-throughput)

def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class LlamaServer:
    """llama.cpp's llama-server (the native build) with `parallel` slots of
    `ctx_per_slot` tokens each (-c is their total: llama-server splits it
    among the slots), `threads` for decode and prefill alike (-t, -tb;
    default all CPUs), started in cgroup cg (or None):

        with LlamaServer(model, 16, 256, cg, ["--no-repack"]) as s:
            run_clients(s.port, 4, 32, extra=LLAMA_SERVER)

    No prompt cache in RAM (--cache-ram 0: it would take memory the cap does
    not have), no warm-up pass (the caller warms up with a client, as it does
    for smoked), no --fit (the context is given).  start() waits for /health
    (up to `timeout` s; loading in a cap with repack can take long) and
    raises RuntimeError with the log's tail if the server dies or never
    becomes ready."""

    def __init__(self, model, parallel, ctx_per_slot, cg=None, extra=(), timeout=600, threads=None, exe=None):
        self.exe = exe or os.path.join(llama_bin(), "llama-server")
        self.port = free_port()
        self.cg, self.timeout = cg, timeout
        self.args = [self.exe, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
                     "-np", str(parallel), "-c", str(parallel * ctx_per_slot),
                     "-t", str(threads or os.cpu_count()), "-tb", str(threads or os.cpu_count()),
                     "--cache-ram", "0", "--no-warmup", "-fit", "off", *extra]
        self.proc = self.log = None

    def tail(self, n=1500):
        try:
            with open(self.log.name, errors="replace") as f:
                return f.read()[-n:]
        except (OSError, AttributeError):
            return ""

    def start(self):
        import http.client
        import tempfile
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.cg.enter if self.cg else None)
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("llama-server exited %d: %s" % (self.proc.returncode, self.tail()))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                st = c.getresponse().status
                c.close()
                if st == 200:
                    self.load_s = time.time() - t0
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("llama-server not ready in %d s: %s" % (self.timeout, self.tail()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.log:
            try:
                os.unlink(self.log.name)
            except OSError:
                pass


def llama_batched_bench(model, npl, n, cg, extra=(), npp=8, timeout=600):
    """llama-batched-bench -npp npp -ntg n -npl <npl> in cgroup cg: {pl:
    S_TG tok/s} (pl sequences decoded in lock step from random tokens, no
    sampling, no HTTP), or (None, why)."""
    import json
    exe = os.path.join(llama_bin(), "llama-batched-bench")
    ctx = max(npl) * (npp + n) + 64
    cmd = [exe, "-m", model, "-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", str(npp), "-ntg", str(n),
           "-npl", ",".join(str(x) for x in npl), "-t", str(os.cpu_count()), "--output-format", "jsonl",
           "-fit", "off", *extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cg.enter if cg else None,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "did not finish in %d s (killed)" % timeout
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, p.stderr.strip().splitlines()[-1:] if p.stderr else "")
    res = {}
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        line = line.strip()
        if line.startswith("{") and "speed_tg" in line:
            try:
                d = json.loads(line)
                res[d["pl"]] = d["speed_tg"]
            except (ValueError, KeyError):
                pass
    return (res, None) if res else (None, "no jsonl rows in its output")


# --- streaming clients: smoked and llama-server alike -----------------------
# (bench/daemon-throughput, bench/moe-ooc, scripts/gpu-moe-bench.py)

# The offline command's default sampling (`smoked --prompt`), so that the
# HTTP and offline runs do equal work; each client has its own seed.
SAMPLED = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}
# Greedy: the same tokens on every run (and, numerics aside, on both servers).
GREEDY = {"temperature": 0}
# What llama-server is asked besides: no reuse of a slot's earlier KV
# (smoked's prompt cache only serves a prompt's shared prefix, here a few tokens).
LLAMA_SERVER = {"cache_prompt": False}
PROMPT = "Story number %d begins:"


def stream_one(port, prompt, n, out, i, sampling=None, extra=None):
    """One streaming /v1/completions request of max_tokens n, the OpenAI
    interface that smoked and llama-server both serve; `sampling` (SAMPLED
    if None) and `extra` are merged into the body, seed 1000 + i.  Sets
    out[i] = (tokens, first token time, last token time, error, finish
    reason, prompt tokens).  tokens is the final usage.completion_tokens
    (stream_options.include_usage): chunks would undercount, since a token
    that ends inside a UTF-8 sequence sends no text and smoked puts the
    tokens generated while a client was slow to read into one chunk.  The
    times are those of the first and the last chunk that carries text.  A
    stream without a finish_reason or usage (cut: the server died) is an
    error, and so is any exception: out[i] is always set."""
    import http.client
    import json
    body = {"prompt": prompt, "max_tokens": n, "seed": 1000 + i, "stream": True,
            "stream_options": {"include_usage": True}}
    body.update(SAMPLED if sampling is None else sampling)
    body.update(extra or {})
    chunks, used, ptok, t_first, t_last, finish, err = 0, None, None, None, None, None, None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        c.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out[i] = (0, None, None, "HTTP %d: %s" % (r.status, r.read()[:200]), None, None)
            c.close()
            return
        while True:
            line = r.readline()
            if not line:
                break
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            now = time.monotonic()
            try:
                d = json.loads(line[6:])
            except ValueError:
                continue
            if d.get("error"):
                err = "error event: %s" % str(d["error"])[:200]
            if d.get("usage"):
                used = d["usage"].get("completion_tokens")
                ptok = d["usage"].get("prompt_tokens")
            ch = (d.get("choices") or [{}])[0]
            if ch.get("text"):
                t_first = t_first if t_first is not None else now
                t_last = now
                chunks += 1
            if ch.get("finish_reason") is not None:
                finish = ch["finish_reason"]
        c.close()
    except (OSError, http.client.HTTPException) as e:
        err = "%s: %s" % (type(e).__name__, e)
    if err is None and (finish is None or used is None):
        err = "stream cut after %d chunks (no %s)" % (chunks, "finish_reason" if finish is None else "usage")
    out[i] = (used if used is not None else chunks, t_first, t_last, err, finish, ptok)


def run_clients(port, k, n, sampling=None, extra=None, prompt=PROMPT):
    """k concurrent streaming clients of n tokens each (stream_one; client i
    sends prompt % i).  Returns tps = every streamed token / the wall time
    from the first request to the last token (prompts included); dtps =
    the tokens after each client's first / (last token - first first-token);
    total, wall, errors, short (clients given fewer than n tokens), finish
    (finish reason -> clients), prompt_tokens (over all clients) and load
    (the 1-minute load average when they were done)."""
    import collections
    import threading
    out = [None] * k
    th = [threading.Thread(target=stream_one, args=(port, prompt % i if "%" in prompt else prompt, n, out, i,
                                                    sampling, extra))
          for i in range(k)]
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.monotonic() - t0
    errors = [o[3] for o in out if o[3]]
    total = sum(o[0] for o in out)
    firsts = [o[1] for o in out if o[1] is not None]
    lasts = [o[2] for o in out if o[2] is not None]
    dec = sum(max(o[0] - 1, 0) for o in out)
    dec_wall = (max(lasts) - min(firsts)) if firsts else 0.0
    return dict(tps=total / wall if wall > 0 else 0.0, total=total, wall=wall, errors=errors,
                dtps=dec / dec_wall if dec_wall > 0 else 0.0, dec=dec, dec_wall=dec_wall,
                short=sum(1 for o in out if o[0] < n), finish=dict(collections.Counter(o[4] for o in out)),
                prompt_tokens=sum(o[5] or 0 for o in out), load=loadavg()[0])


def loadavg():
    """The 1, 5 and 15-minute load averages as strings."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


if __name__ == "__main__":
    # for the shell benchmarks (bench/cpu-vs-llamacpp): bench/benchlib.py llama-info [FLAVOUR]
    import sys
    if len(sys.argv) >= 2 and sys.argv[1] == "llama-info":
        print("\n".join(llama_info(sys.argv[2] if len(sys.argv) > 2 else "native")))
    else:
        sys.exit("usage: bench/benchlib.py llama-info [native|ref|cuda]")
