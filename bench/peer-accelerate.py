#!/usr/bin/env python3
"""bench/peer-accelerate.py - the transformers + accelerate peer of issue 6.

    bench/peer-accelerate.py HF_DIR --tokens 2,818,5279 [-n 32]
        [--max-memory-gpu BYTES] [--max-memory-cpu BYTES] [--dtype bfloat16]
        [--device-map auto] [--time-limit SECONDS] [--cpu] [--json]

Loads HF_DIR (scripts/gguf-to-hf.py makes one from a GGUF) with
AutoModelForCausalLM.from_pretrained(..., device_map="auto",
max_memory={0: BYTES, "cpu": ...}): accelerate fills the GPU up to BYTES
and leaves the rest on the CPU, from where its hooks copy each module's
weights to the GPU when the module runs.  That is the peer smoke's
memory.gpu_memory is compared against (the same budget; the budget covers
only weights in accelerate, while smoke's also holds the KV cache and
activations).  Without CUDA (or with --cpu) everything runs on the CPU,
which is only for checking this script.

Then greedy decoding with the KV cache in a manual loop, so that nothing
but the model's forward is timed: one warm-up generation (CUDA context,
kernels, accelerate's first copies), untimed; the prompt once (prefill_s,
which yields the first token); then N single-token steps (decode_s), each
feeding the previous token.  EOS does not stop it (smoke's bench_gpu
generates a fixed count too).  With --time-limit the decode stops after
that many seconds and reports the steps done.

Prints the placement (parameters and modules per device, from
model.hf_device_map) on stderr and one JSON line on stdout:
  {"peer":"transformers+accelerate", versions, "device", "dtype",
   "max_memory_gpu", "runs_on", "params_on_gpu", "params_total", "modules_on_gpu",
   "modules_total", "load_s", "prefill_s", "decode_tokens", "decode_s",
   "decode_tok_s", "gpu_peak_bytes", "time_limited", "tokens": [the first
   token (from the prefill), then one per decode step]}
"""
import argparse
import inspect
import json
import os
import re
import sys
import time

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1 << 20,
          "g": 1e9, "gb": 1e9, "gib": 1 << 30}


def size(text):
    """Bytes from '67108864', '64MiB', '1.5GB'."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size (bytes, or a number with KiB/MiB/GiB/KB/MB/GB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def token_list(text):
    try:
        ids = [int(t) for t in re.split(r"[\s,]+", text.strip()) if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"token ids must be integers separated by commas or spaces: '{text[:60]}'")
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError("need at least one token id, none negative")
    return ids


def log(msg):
    print(f"peer-accelerate: {msg}", file=sys.stderr, flush=True)


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 64 << 30


def placement(model, use_gpu):
    """(params on a GPU, params in all, modules on a GPU, modules in all, per-device lines)."""
    dm = getattr(model, "hf_device_map", None)
    params = dict(model.named_parameters())  # tied weights once
    total = sum(p.numel() for p in params.values())
    if not dm:
        # One device for everything (transformers then sets no map, also
        # when accelerate put it all on the CPU): read where the weights are.
        on = sum(p.numel() for p in params.values() if p.device.type == "cuda")
        dev = "cuda:0" if on else "cpu"
        return on, total, 0, 0, [f"  no hf_device_map: all {total} parameters on {dev}"]
    keys = sorted(dm, key=len, reverse=True)  # longest prefix wins

    def device_of(name):
        for k in keys:
            if k == "" or name == k or name.startswith(k + "."):
                return dm[k]
        return "unmapped"

    per = {}
    for name, p in params.items():
        d = str(device_of(name))
        per.setdefault(d, [0, 0])
        per[d][0] += p.numel()
    for k, d in dm.items():
        per.setdefault(str(d), [0, 0])
        per[str(d)][1] += 1
    on_gpu = lambda d: d not in ("cpu", "disk", "meta", "unmapped")
    lines = [f"  {d:>8}: {n:>11} parameters, {m:>3} modules" + ("" if on_gpu(d) else
             (" (copied to the GPU when they run)" if use_gpu and d in ("cpu", "disk") else ""))
             for d, (n, m) in sorted(per.items())]
    pg = sum(n for d, (n, m) in per.items() if on_gpu(d))
    mg = sum(m for d, (n, m) in per.items() if on_gpu(d))
    return pg, total, mg, len(dm), lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tokens", type=token_list, help="prompt token ids, e.g. 2,818,5279")
    g.add_argument("--tokens-file", help="file with the prompt token ids (commas or whitespace)")
    ap.add_argument("-n", type=int, default=32, help="decode steps after the prompt (default 32)")
    ap.add_argument("--max-memory-gpu", type=size, default=None,
                    help="accelerate's max_memory for GPU 0 (default: the whole GPU)")
    ap.add_argument("--max-memory-cpu", type=size, default=None, help="max_memory for the CPU (default: RAM)")
    ap.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    ap.add_argument("--device-map", default="auto", help="from_pretrained's device_map (default auto)")
    ap.add_argument("--time-limit", type=float, default=0, help="stop decoding after this many seconds (0: never)")
    ap.add_argument("--warmup", type=int, default=2, help="decode steps of the untimed warm-up (default 2)")
    ap.add_argument("--cpu", action="store_true", help="ignore CUDA (checking this script)")
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = ap.parse_args()
    if args.tokens_file:
        with open(args.tokens_file) as f:
            args.tokens = token_list(f.read())
    if args.n < 1:
        ap.error("-n must be at least 1")

    import torch
    import transformers
    import accelerate
    from transformers import AutoModelForCausalLM

    use_gpu = torch.cuda.is_available() and not args.cpu
    dtype = getattr(torch, args.dtype)
    cpu_bytes = args.max_memory_cpu or int(mem_total() * 0.8)
    max_memory = {"cpu": cpu_bytes}
    if use_gpu:
        max_memory[0] = args.max_memory_gpu if args.max_memory_gpu is not None else torch.cuda.mem_get_info(0)[1]
    dev_name = torch.cuda.get_device_name(0) if use_gpu else "cpu"
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, accelerate {accelerate.__version__}; "
        f"device {dev_name}; max_memory {max_memory}")

    kw = {"dtype": dtype}
    if args.device_map not in ("", "none"):
        kw["device_map"] = args.device_map
        kw["max_memory"] = max_memory
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.hf_dir, **kw)
    if "device_map" not in kw and use_gpu:
        model.to("cuda:0")
    model.eval()
    if use_gpu:
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    pg, ptot, mg, mtot, lines = placement(model, use_gpu)
    log(f"{type(model).__name__} loaded in {load_s:.1f} s; placement (hf_device_map):")
    for line in lines:
        log(line)
    log(f"  parameters on the GPU: {pg} of {ptot}; modules {mg} of {mtot}")

    # Inputs go where the embedding runs: accelerate's hooks move them anyway,
    # but this saves a copy.  With any module on the GPU the main device is cuda:0.
    dm = getattr(model, "hf_device_map", None) or {}
    in_dev = torch.device("cuda:0") if use_gpu and pg > 0 else torch.device("cpu")
    prompt = torch.tensor([args.tokens], dtype=torch.long, device=in_dev)
    # What actually computes: accelerate puts the whole model on the CPU when
    # its first module (the tied embedding + head) does not fit the budget.
    if not use_gpu or pg == 0:
        runs_on = "cpu"
    elif pg < ptot:
        runs_on = "gpu+cpu-offload"  # cpu modules copied to the GPU as they run
    else:
        runs_on = "gpu"
    log(f"runs on: {runs_on}")
    vocab = model.config.vocab_size
    if max(args.tokens) >= vocab:
        sys.exit(f"peer-accelerate: token id {max(args.tokens)} >= vocab_size {vocab}")

    # transformers 5.2x renamed forward's past_key_values to cache (the old
    # name warns, and goes in 5.40); older 5.x only know past_key_values.
    cache_kw = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"

    def cache_of(out):
        c = getattr(out, "cache", None)
        return c if c is not None else out.past_key_values

    def sync():
        if use_gpu:
            torch.cuda.synchronize()

    def generate(steps, limit):
        """Greedy: the prompt, then `steps` single tokens.  -> (ids, prefill_s, decode_s, steps done)."""
        sync()
        t = time.perf_counter()
        out = model(input_ids=prompt, use_cache=True)
        pkv = cache_of(out)
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        sync()
        t1 = time.perf_counter()
        ids = [nxt]
        done = 0
        while done < steps:
            out = model(input_ids=nxt.to(in_dev), use_cache=True, **{cache_kw: pkv})
            pkv = cache_of(out)
            nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            ids.append(nxt)
            done += 1
            if limit and time.perf_counter() - t1 > limit:
                break
        sync()
        t2 = time.perf_counter()
        return [int(i) for i in torch.cat(ids, dim=1)[0].tolist()], t1 - t, t2 - t1, done

    with torch.inference_mode():
        if args.warmup > 0:
            _, wp, wd, wn = generate(args.warmup, args.time_limit)
            log(f"warm-up: prefill {wp:.3f} s, {wn} steps in {wd:.3f} s")
        if use_gpu:
            torch.cuda.reset_peak_memory_stats(0)
        ids, prefill_s, decode_s, done = generate(args.n, args.time_limit)

    res = {
        "peer": "transformers+accelerate",
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "torch": torch.__version__,
        "device": dev_name,
        "dtype": args.dtype,
        "device_map": args.device_map,
        "max_memory_gpu": max_memory.get(0, 0),
        "runs_on": runs_on,
        "params_on_gpu": pg,
        "params_total": ptot,
        "modules_on_gpu": mg,
        "modules_total": mtot,
        "load_s": round(load_s, 3),
        "prompt_tokens": len(args.tokens),
        "prefill_s": round(prefill_s, 6),
        "decode_tokens": done,
        "decode_s": round(decode_s, 6),
        "decode_tok_s": round(done / decode_s, 4) if decode_s > 0 else 0,
        "gpu_peak_bytes": torch.cuda.max_memory_allocated(0) if use_gpu else 0,
        "time_limited": done < args.n,
        "tokens": ids,
    }
    log(f"prefill {len(args.tokens)} tokens {prefill_s:.3f} s; decode {done} tokens in {decode_s:.3f} s = "
        f"{res['decode_tok_s']:.2f} tok/s{' (stopped by --time-limit)' if done < args.n else ''}; "
        f"GPU peak {res['gpu_peak_bytes'] / 2**20:.1f} MiB")
    if not args.json:
        print(f"tokens: {ids}")
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
