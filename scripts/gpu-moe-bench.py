#!/usr/bin/env python3
"""scripts/gpu-moe-bench.py - the measurements of the GPU half of the MoE
benchmark (scripts/gpu-moe-check runs it; docs/moe-bench.md, docs/cuda.md).

  gpu-moe-bench.py --smoked BUILD/daemon/smoked --model M.gguf --llama-bench BIN/llama-bench
                   [--gpu-memory 8GiB|frac:0.67] [--tokens 32] [--clients 1,4] [--warm 8]
                   [--ncmoe auto|N] [--llama-n 32] [--overhead-mib 768] [--deadline EPOCH] [--dry]

1. The model's facts from its GGUF (the `gguf` package): layers, experts,
   top-k, the expert tensors' bytes per layer (llama.cpp's --n-cpu-moe
   regex, blk.N.ffn_(up|down|gate|gate_up)_(ch|)exps, biases included) and
   the rest.
2. smoked serving HTTP with --gpu-memory (the weight slots, KV cache and
   activations together; /stats backend.gpu_memory says how it was split),
   --kv-budget 64MiB --ctx 512, after one client's warm-up: per client count
   decode tok/s (bench/daemon-throughput's clients and definition), bytes
   copied host->device per streamed token (/stats weights.device.bytes_in),
   bytes read from disk into the RAM tier per token (weights.ram.bytes_in),
   the experts' hit rate in the compute tier (weights.experts), the
   fraction of wall time stalled on weights.
3. llama.cpp: llama-bench -ngl 99 --n-cpu-moe N -p 0 -n --llama-n, where N
   (unless given) is the fewest leading layers whose experts stay on the CPU
   so that llama.cpp's device memory (every weight but the token embedding,
   which llama.cpp keeps on the CPU, minus the experts of the first N
   layers, plus --overhead-mib for its KV cache and compute buffers) fits in
   the same --gpu-memory.  With -v it prints its CUDA buffers: their sum is
   printed, and if it misses the budget by more than a layer's experts, N is
   corrected once and llama-bench runs again.  nvidia-smi's peak
   memory.used during the run (the CUDA context included) is printed too.
4. The ratio ours (1 client) / llama.cpp, and one line
   `GPU-MOE RESULT {json}`.

--dry: no GPU (scripts/gpu-check's dry run): smoked on the CPU backend with
the device stand-in (--enable-cpu-offload=false, so the device tier is
what compute reads and its bytes_in counts), llama-bench from a CPU build
(-ngl is ignored there).  Timings are printed, never asserted.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
MiB = 1 << 20
GiB = 1 << 30
EXPS = re.compile(r"^blk\.(\d+)\.ffn_(up|down|gate|gate_up)_(ch|)exps")


def log(msg):
    print(msg, flush=True)


def load_throughput():
    path = os.path.join(ROOT, "bench", "daemon-throughput")
    loader = importlib.machinery.SourceFileLoader("daemon_throughput", path)
    spec = importlib.util.spec_from_loader("daemon_throughput", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def parse_size(s):
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", s, re.I)
    if not m:
        raise ValueError("not a size: %r" % s)
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    if m.group(3) and not m.group(3).lower().startswith("i"):
        mult = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def model_facts(path):
    from gguf import GGUFReader
    r = GGUFReader(path)

    def field(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        v = f.contents()
        return v

    arch = field("general.architecture")
    per_layer, total, embd = {}, 0, 0
    for t in r.tensors:
        n = int(t.n_bytes)
        total += n
        m = EXPS.match(t.name)
        if m:
            per_layer[int(m.group(1))] = per_layer.get(int(m.group(1)), 0) + n
        if t.name == "token_embd.weight":
            embd = n
    n_layer = int(field(arch + ".block_count", 0))
    return dict(arch=arch, n_layer=n_layer, experts=int(field(arch + ".expert_count", 0) or 0),
                top_k=int(field(arch + ".expert_used_count", 0) or 0), total=total, embd=embd,
                exp_layer=[per_layer.get(i, 0) for i in range(n_layer)], file=os.path.getsize(path))


def choose_ncmoe(f, budget, overhead):
    """Fewest leading layers with experts on the CPU so that llama.cpp's
    device share fits the budget: (N, estimated device bytes)."""
    dev = f["total"] - f["embd"] + overhead
    for n in range(f["n_layer"] + 1):
        if dev <= budget:
            return n, dev
        if n < f["n_layer"]:
            dev -= f["exp_layer"][n]
    return f["n_layer"], dev


class GpuMemPeak:
    """nvidia-smi memory.used (MiB) sampled every 0.25 s; .peak - .base."""

    def __init__(self):
        self.ok = subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0
        self.base = self.peak = self.read() if self.ok else 0
        self.stop = threading.Event()
        if self.ok:
            self.t = threading.Thread(target=self.run, daemon=True)
            self.t.start()

    def read(self):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return int(out.split()[0])
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return 0

    def run(self):
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, self.read())

    def end(self):
        self.stop.set()
        return (self.peak - self.base) if self.ok else None


def run_llama(a, ncmoe, timeout):
    """llama-bench -ngl 99 -ncmoe N: (tok/s or None, CUDA buffer MiB dict, nvidia-smi MiB, why)."""
    cmd = [a.llama_bench, "-m", a.model, "-ngl", "99", "-ncmoe", str(ncmoe), "-p", "0", "-n", str(a.llama_n),
           "-r", "1", "-o", "json", "-v", *a.llama_extra.split()]
    if a.dry:
        cmd += ["-t", str(os.cpu_count())]
    log("  $ %s" % " ".join(cmd))
    mon = GpuMemPeak()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        mon.end()
        return None, {}, None, "did not finish in %d s" % timeout
    smi = mon.end()
    bufs = {}
    for m in re.finditer(r"(CUDA\d+|CPU|CUDA_Host)\w* (model|KV|compute|RS) buffer size\s*=\s*([\d.]+) MiB", p.stderr):
        key = "%s %s" % (m.group(1), m.group(2))
        bufs[key] = bufs.get(key, 0.0) + float(m.group(3))
    with open(os.path.join(a.logs, "gpu-moe-llama-runs.log"), "a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stderr + "\n" + p.stdout + "\n")
    if p.returncode != 0:
        return None, bufs, smi, "exit %d: %s" % (p.returncode, p.stderr.strip().splitlines()[-1:] if p.stderr else "")
    try:
        return json.loads(p.stdout)[0]["avg_ts"], bufs, smi, None
    except (ValueError, KeyError, IndexError):
        return None, bufs, smi, "unreadable output: " + p.stdout[-300:]


def left(a):
    return a.deadline - time.time() if a.deadline else 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoked", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--llama-bench", help="llama-bench (a CUDA build on the GPU); none: skip llama.cpp")
    ap.add_argument("--gpu-memory", default="8GiB", help="SIZE, or frac:F = F x the model file's size")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--warm", type=int, default=8)
    ap.add_argument("--ncmoe", default="auto")
    ap.add_argument("--llama-n", type=int, default=32)
    ap.add_argument("--overhead-mib", type=int, default=768,
                    help="llama.cpp's device memory besides weights (KV, compute buffers) in choosing N")
    ap.add_argument("--deadline", type=float, default=0, help="epoch seconds: skip what would not fit")
    ap.add_argument("--logs", default=os.environ.get("OUT") or "/tmp")
    ap.add_argument("--llama-extra", default="", help="more llama-bench arguments (words), e.g. '-fa off'")
    ap.add_argument("--dry", action="store_true")
    a = ap.parse_args()
    clients = [int(x) for x in a.clients.split(",")]
    t0 = time.time()

    # 1. the model
    f = model_facts(a.model)
    if a.gpu_memory.startswith("frac:"):
        budget = int(float(a.gpu_memory[5:]) * f["file"]) // MiB * MiB
    else:
        budget = parse_size(a.gpu_memory)
    exps = sum(f["exp_layer"])
    log("model %s: %s, %.2f GB file, %d layers x %d experts (top-%d); experts %.1f MiB (%.1f MiB a layer, %.2f MiB "
        "an expert), the rest %.1f MiB (token embedding %.1f MiB)"
        % (a.model, f["arch"], f["file"] / 1e9, f["n_layer"], f["experts"], f["top_k"], exps / MiB,
           exps / max(f["n_layer"], 1) / MiB, exps / max(f["n_layer"] * f["experts"], 1) / MiB,
           (f["total"] - exps) / MiB, f["embd"] / MiB))
    floor = f["top_k"] * exps / max(f["experts"], 1)          # a token's experts, all layers
    log("gpu_memory %.1f MiB (%.1f%% of the weights); a token's experts (top_k x expert x layers) %.1f MiB"
        % (budget / MiB, 100.0 * budget / f["total"], floor / MiB))
    res = dict(model=os.path.basename(a.model), weight_bytes=f["total"], gpu_memory=budget, dry=a.dry,
               n_layer=f["n_layer"], experts=f["experts"], top_k=f["top_k"], expert_layer_bytes=exps // max(f["n_layer"], 1))

    # 2. ours
    dt = load_throughput()
    extra = ["--gpu-memory", str(budget), "--kv-budget", str(64 * MiB), "--ctx", "512",
             "--concurrency", str(max(clients)), "--queue", "64"]
    if a.dry:
        extra += ["--enable-cpu-offload=false"]
        os.environ["SMOKE_BACKEND"] = "cpu"        # inherited by smoked
    d = dt.CappedDaemon(a.smoked, None, a.model, extra=extra)
    d.args[d.args.index("--threads") + 1] = str(os.cpu_count())
    ours = []
    ts = time.time()
    try:
        d.start()
        if not d.wait_ready(timeout=max(30, min(300, left(a) - 60))):
            raise RuntimeError("smoked not ready: " + d.log_text()[-1500:])
        log("smoked ready in %.0f s (%s)" % (time.time() - ts, " ".join(extra)))
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        c.request("GET", "/stats")
        st = json.loads(c.getresponse().read())
        c.close()
        be = st.get("backend", {})
        gm = be.get("gpu_memory") or {}
        log("  backend %s%s; gpu_memory split: weights %.1f MiB, KV %.1f MiB, scratch %.1f MiB; device tier %s, "
            "RAM tier pinned %s" % (be.get("name"), (" (" + be["note"] + ")") if be.get("note") else "",
                                    gm.get("weights_bytes", 0) / MiB, gm.get("kv_bytes", 0) / MiB,
                                    gm.get("scratch_bytes", 0) / MiB, st.get("weights", {}).get("device_tier"),
                                    st.get("weights", {}).get("ram_dma_pinned")))
        res["backend"] = be.get("name")
        if a.warm:
            dt.run_clients(d.port, 1, a.warm)
        for k in clients:
            if left(a) < 45 and ours:
                log("  %d clients: skipped (%.0f s left)" % (k, left(a)))
                continue
            w0 = dt.weights_stats(d.port)
            r = dt.run_clients(d.port, k, a.tokens)
            w1 = dt.weights_stats(d.port)
            r["k"] = k
            if w0 and w1 and w1.get("store") == "tiered":
                n = max(r["total"], 1)
                r["dev_bpt"] = (w1["device"]["bytes_in"] - w0["device"]["bytes_in"]) / n
                r["ram_bpt"] = (w1["ram"]["bytes_in"] - w0["ram"]["bytes_in"]) / n
                r["stall"] = (w1["stall_s"] - w0["stall_s"]) / r["wall"] if r["wall"] > 0 else 0.0
                e0, e1 = w0.get("experts"), w1.get("experts")
                if e0 and e1 and e1["acquires"] > e0["acquires"]:
                    r["ehit"] = (e1["hits"] - e0["hits"]) / (e1["acquires"] - e0["acquires"])
                    r["emiss_bpt"] = ((e1["acquires"] - e0["acquires"]) - (e1["hits"] - e0["hits"])) * \
                        (exps / max(f["n_layer"] * f["experts"], 1)) / n
                    l0 = {x.get("layer", i): x for i, x in enumerate(e0.get("layers") or [])}
                    r["ehit_layers"] = []
                    for i, x in enumerate(e1.get("layers") or []):
                        y = l0.get(x.get("layer", i), {"acquires": 0, "hits": 0})
                        acq = x["acquires"] - y["acquires"]
                        if acq > 0:
                            r["ehit_layers"].append((x.get("layer", i), (x["hits"] - y["hits"]) / acq))
            ours.append(r)
    finally:
        d.stop()
    log("ours (smoked --gpu-memory %.0f MiB, %d tokens a client, after a %d-token warm-up):"
        % (budget / MiB, a.tokens, a.warm))
    log("  %7s %10s %10s %12s %9s %12s %8s %8s" % ("clients", "decode t/s", "aggr. t/s", "H->D MiB/tok", "x floor",
                                                  "disk MiB/tok", "exp.hit", "stalled"))
    for r in ours:
        log("  %7d %10.3f %10.3f %12.1f %9.3f %12.1f %8s %7.1f%%%s"
            % (r["k"], r["dtps"], r["tps"], r.get("dev_bpt", 0) / MiB, r.get("dev_bpt", 0) / floor if floor else 0,
               r.get("ram_bpt", 0) / MiB, "%.1f%%" % (100 * r["ehit"]) if "ehit" in r else "-",
               100 * r.get("stall", 0), ("  errors %s" % r["errors"][:2]) if r["errors"] else ""))
    for r in ours:
        if r.get("ehit_layers"):
            log("  %d clients: expert hit rate per layer: %s" % (r["k"], " ".join("%d:%.2f" % lh for lh in r["ehit_layers"])))
    log("  H->D: /stats weights.device.bytes_in per streamed token (every unit copied to the device tier); x floor: "
        "over a token's experts; disk: weights.ram.bytes_in; exp.hit: experts found in the compute tier / acquired")
    res["ours"] = [dict(clients=r["k"], decode_tok_s=round(r["dtps"], 3), h2d_bytes_per_token=int(r.get("dev_bpt", 0)),
                        disk_bytes_per_token=int(r.get("ram_bpt", 0)),
                        expert_hit_rate=round(r["ehit"], 4) if "ehit" in r else None,
                        stall_frac=round(r.get("stall", 0), 4)) for r in ours]

    # 3. llama.cpp
    llama = None
    if a.llama_bench and a.llama_bench != "none" and os.access(a.llama_bench, os.X_OK):
        if a.ncmoe == "auto":
            n, est = choose_ncmoe(f, budget, a.overhead_mib * MiB)
        else:
            n = int(a.ncmoe)
            est = f["total"] - f["embd"] + a.overhead_mib * MiB - sum(f["exp_layer"][:n])
        log("llama.cpp: --n-cpu-moe %d: the experts of layers 0..%d on the CPU, %d layers' on the GPU; estimated "
            "device memory %.1f MiB = weights %.1f (all %.1f - token embedding %.1f - %d layers' experts x %.1f) + "
            "%d MiB KV/compute" % (n, n - 1, f["n_layer"] - n, est / MiB, (est - a.overhead_mib * MiB) / MiB,
                                   f["total"] / MiB, f["embd"] / MiB, n, exps / max(f["n_layer"], 1) / MiB,
                                   a.overhead_mib))
        tries = 0
        while True:
            tries += 1
            llama, bufs, smi, why = run_llama(a, n, timeout=max(30, min(400, left(a) - 10)))
            dev = sum(v for k, v in bufs.items() if k.startswith("CUDA") and not k.startswith("CUDA_Host"))
            log("  llama-bench -ngl 99 -ncmoe %d: %s; its buffers %s%s"
                % (n, "%.3f tok/s" % llama if llama else "FAILED (%s)" % why,
                   ", ".join("%s %.0f MiB" % kv for kv in sorted(bufs.items())) or "none printed",
                   "; nvidia-smi peak +%d MiB (CUDA context included)" % smi if smi is not None else ""))
            res.update(llama_ncmoe=n, llama_tok_s=llama, llama_cuda_mib=round(dev, 1), llama_smi_mib=smi)
            if dev <= 0 or tries > 1 or a.ncmoe != "auto" or left(a) < 90:
                break
            per = exps / max(f["n_layer"], 1) / MiB
            miss = dev - budget / MiB
            if abs(miss) <= per:
                break
            # over: the fewest more layers' experts to the CPU that bring it
            # under; under: as many back to the GPU as still fit
            step = int(-(-miss // per)) if miss > 0 else -int(-miss // per)
            n2 = min(f["n_layer"], max(0, n + step))
            if n2 == n:
                break
            log("  its CUDA buffers are %.0f MiB, %+.0f MiB off the budget (%.0f MiB a layer's experts): "
                "again with --n-cpu-moe %d" % (dev, miss, per, n2))
            n = n2
    else:
        log("llama.cpp: skipped (no llama-bench%s)" % (": " + a.llama_bench if a.llama_bench else ""))

    # 4. summary
    one = [r for r in ours if r["k"] == 1]
    if llama and one:
        res["ratio_1_client"] = round(one[0]["dtps"] / llama, 3)
        log("ours (1 client, decode) / llama.cpp (-ngl 99 --n-cpu-moe %d, tg%d): %.3f / %.3f = %.2fx"
            % (res["llama_ncmoe"], a.llama_n, one[0]["dtps"], llama, one[0]["dtps"] / llama))
    res["elapsed_s"] = round(time.time() - t0, 1)
    log("GPU-MOE RESULT " + json.dumps(res, separators=(",", ":")))
    return 0 if ours and all(r["dtps"] > 0 and not r["errors"] for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
