#!/usr/bin/env python3
"""Write tiny GGUF models that are valid GGUF files but not valid *models*
(missing or misshapen tensors, bad hyper-parameters, unsupported
architectures), plus one valid model of each family, into
tests/fixtures/model/, with expectations.json listing, for each file, whether
arch/model.c must accept it and which words its error must contain.
Deterministic; the files are a few KB each.  Uses the `gguf` package."""
import json
import os
import sys

import numpy as np
from gguf import GGUFWriter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")
E, L, H, KV, FF, V = 32, 1, 2, 1, 64, 8  # tiny dims: head_dim 16


def write(name, arch="llama", drop=(), shape=None, f16=(), kv=None, kv_drop=(), extra=None):
    rng = np.random.default_rng(len(name))  # deterministic per case
    path = os.path.join(OUT, name + ".gguf")
    w = GGUFWriter(path, arch)
    hp = {
        "context_length": 128, "embedding_length": E, "block_count": L,
        "feed_forward_length": FF, "attention.head_count": H, "attention.head_count_kv": KV,
    }
    hp.update(kv or {})
    for k, v in hp.items():
        if k in kv_drop:
            continue
        w.add_uint32(f"{arch}.{k}", v)
    if "eps" not in kv_drop:
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    if arch == "gemma3":
        w.add_uint32("gemma3.attention.sliding_window", 16)
        w.add_uint32("gemma3.attention.key_length", E // H)
        w.add_uint32("gemma3.attention.value_length", E // H)
    for k, v in (extra or {}).items():
        if isinstance(v, float):
            w.add_float32(k, v)
        else:
            w.add_string(k, v)
    hd = E // H
    t = {"token_embd.weight": (V, E), "output_norm.weight": (E,)}
    for i in range(L):
        p = f"blk.{i}."
        t.update({p + "attn_norm.weight": (E,), p + "attn_q.weight": (H * hd, E),
                  p + "attn_k.weight": (KV * hd, E), p + "attn_v.weight": (KV * hd, E),
                  p + "attn_output.weight": (E, H * hd), p + "ffn_norm.weight": (E,),
                  p + "ffn_gate.weight": (FF, E), p + "ffn_up.weight": (FF, E),
                  p + "ffn_down.weight": (E, FF)})
        if arch == "qwen2":
            t.update({p + "attn_q.bias": (H * hd,), p + "attn_k.bias": (KV * hd,),
                      p + "attn_v.bias": (KV * hd,)})
        if arch == "gemma3":
            t.update({p + "attn_q_norm.weight": (hd,), p + "attn_k_norm.weight": (hd,),
                      p + "post_attention_norm.weight": (E,), p + "post_ffw_norm.weight": (E,)})
    for n, s in t.items():
        if n in drop:
            continue
        if shape and n in shape:
            s = shape[n]
        a = rng.standard_normal(s).astype(np.float16 if n in f16 else np.float32)
        w.add_tensor(n, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return name + ".gguf"


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []

    def ok(name, **kw):
        cases.append({"file": write(name, **kw), "ok": True})

    def bad(name, words, **kw):
        cases.append({"file": write(name, **kw), "ok": False, "words": words})

    ok("ok-llama")
    ok("ok-qwen2", arch="qwen2")
    ok("ok-gemma3", arch="gemma3")
    bad("arch-unsupported", ["architecture", "gpt2", "not supported"], arch="gpt2")
    bad("missing-tensor", ["blk.0.attn_q.weight", "missing"], drop=("blk.0.attn_q.weight",))
    bad("missing-embedding", ["token_embd.weight", "missing"], drop=("token_embd.weight",))
    bad("qwen2-missing-bias", ["blk.0.attn_k.bias", "missing"], arch="qwen2", drop=("blk.0.attn_k.bias",))
    bad("gemma3-missing-qnorm", ["attn_q_norm", "missing"], arch="gemma3",
        drop=("blk.0.attn_q_norm.weight",))
    bad("wrong-shape", ["blk.0.attn_k.weight", "shape"], shape={"blk.0.attn_k.weight": (20, E)})
    bad("ffn-wrong-shape", ["blk.0.ffn_down.weight", "shape"], shape={"blk.0.ffn_down.weight": (E, FF // 2)})
    bad("norm-not-f32", ["blk.0.ffn_norm.weight", "F16", "F32"], f16=("blk.0.ffn_norm.weight",))
    bad("heads-indivisible", ["head_count", "multiple"], kv={"attention.head_count": 2, "attention.head_count_kv": 3})
    bad("missing-embedding-length", ["llama.embedding_length", "missing"], kv_drop=("embedding_length",))
    bad("missing-eps", ["layer_norm_rms_epsilon", "missing"], kv_drop=("eps",))
    bad("zero-context", ["llama.context_length", "out of range"], kv={"context_length": 0})
    bad("huge-layers", ["block_count"], kv={"block_count": 100000})
    bad("rope-scaling-unknown", ["rope.scaling.type", "longrope", "not supported"],
        extra={"llama.rope.scaling.type": "longrope"})
    bad("rope-yarn-no-orig-ctx", ["rope.scaling.original_context_length", "missing"],
        extra={"llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4.0})
    with open(os.path.join(OUT, "expectations.json"), "w") as f:
        json.dump({"generated_by": "scripts/make-bad-models.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} models to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
