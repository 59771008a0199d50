#!/usr/bin/env python3
"""Write a synthetic Hugging Face model directory with random weights.

For the weight-hierarchy benchmarks on the safetensors path: real shapes
(by default Llama-3-8B's: hidden 4096, FFN 14336, 32 heads, 8 KV heads,
vocabulary 128256), as many layers as asked for, bfloat16 weights, sharded
like transformers shards (model-0000N-of-0000M.safetensors + index), with a
config.json transformers and smoke both read.  Needs numpy only.

    scripts/make-synthetic-safetensors.py OUT_DIR                # 8 layers, ~5.6 GB
    scripts/make-synthetic-safetensors.py OUT_DIR --layers 32    # the full 8B, ~16 GB
    scripts/make-synthetic-safetensors.py OUT_DIR --preset small # ~30 MB, for tests

The weights are random bfloat16 values of a sane scale (|w| ~ 0.004..0.06,
random signs), drawn as bit patterns into a 32 MB pool written at random
rotations, so that gigabytes take seconds; the
text such a model writes is noise, which is all a bandwidth benchmark needs.
tokenizer.json is the small byte-level BPE of the test fixtures (its 320
tokens fit any vocabulary), so smoked can serve the directory; the small
preset's vocabulary is exactly those 320 tokens, so every generated id has
text (a test compares texts).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

PRESETS = {
    "llama8b": dict(hidden=4096, ffn=14336, heads=32, kv_heads=8, head_dim=128, vocab=128256, layers=8),
    "small": dict(hidden=256, ffn=768, heads=4, kv_heads=2, head_dim=64, vocab=320, layers=8),
}

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENIZER_FROM = os.path.join(ROOT, "tests", "fixtures", "hf-models", "llama-f32")


def random_bf16(rng, n):
    """n random bfloat16 bit patterns: sign random, exponent 2^-8..2^-5,
    mantissa random."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    exp = (119 + (bits & 3)).astype(np.uint16)          # biased exponents 119..122
    mant = (bits >> 2) & 0x7F
    sign = bits & 0x8000
    return sign | (exp << 7) | mant


def tensors(p):
    h, f, hd = p["hidden"], p["ffn"], p["head_dim"]
    q, kv = p["heads"] * hd, p["kv_heads"] * hd
    yield "model.embed_tokens.weight", (p["vocab"], h)
    for i in range(p["layers"]):
        pre = f"model.layers.{i}."
        yield pre + "input_layernorm.weight", (h,)
        yield pre + "self_attn.q_proj.weight", (q, h)
        yield pre + "self_attn.k_proj.weight", (kv, h)
        yield pre + "self_attn.v_proj.weight", (kv, h)
        yield pre + "self_attn.o_proj.weight", (h, q)
        yield pre + "post_attention_layernorm.weight", (h,)
        yield pre + "mlp.gate_proj.weight", (f, h)
        yield pre + "mlp.up_proj.weight", (f, h)
        yield pre + "mlp.down_proj.weight", (h, f)
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (p["vocab"], h)


POOL = 1 << 24  # random values drawn once, written at random rotations


def write_shard(path, items, rng, pool):
    header, off = {}, 0
    for name, shape in items:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape in items:
            n = int(np.prod(shape))
            if len(shape) == 1:  # norms: ones, like a fresh RMSNorm
                f.write(np.full(n, 0x3F80, dtype=np.uint16).tobytes())
                continue
            # Drawing fresh bits runs at ~0.1 GB/s; a rotated pool writes at
            # disk speed and no two tensors (or chunks) start alike.
            i = 0
            while i < n:
                o = int(rng.integers(0, POOL))
                k = min(POOL - o, n - i)
                f.write(pool[o:o + k].tobytes())
                i += k
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="llama8b")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--shard-bytes", type=int, default=2 << 30)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    p = dict(PRESETS[a.preset])
    if a.layers:
        p["layers"] = a.layers
    rng = np.random.default_rng(a.seed)
    pool = random_bf16(rng, POOL)

    shards, cur, size = [], [], 0
    for name, shape in tensors(p):
        n = int(np.prod(shape)) * 2
        if cur and size + n > a.shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += n
    shards.append(cur)

    tmp = a.out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    weight_map, total = {}, 0
    for i, items in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_shard(os.path.join(tmp, fname), items, rng, pool)
        for name, _ in items:
            weight_map[name] = fname
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": p["hidden"], "intermediate_size": p["ffn"],
        "num_attention_heads": p["heads"], "num_key_value_heads": p["kv_heads"],
        "head_dim": p["head_dim"], "num_hidden_layers": p["layers"], "vocab_size": p["vocab"],
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": None, "hidden_act": "silu", "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "bos_token_id": None, "eos_token_id": 0,
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER_FROM, fn), tmp)
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    print(f"{a.out}: {p['layers']} layers, {total / 1e9:.2f} GB of BF16 weights in {len(shards)} shards")


if __name__ == "__main__":
    sys.exit(main())
