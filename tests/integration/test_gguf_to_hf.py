#!/usr/bin/env python3
"""scripts/gguf-to-hf.py on the default model (Gemma 3 270M Q4_K_M), checked
without torch or transformers (CI has neither): numpy + gguf, and the
safetensors package when it is installed (otherwise a minimal reader of the
format below: an 8-byte header length, a JSON header, the data).

1. config.json: the Gemma 3 270M facts (docs: /work/shared/MODEL-FACTS.md,
   read from the GGUF here with gguf.GGUFReader, not the converter's own
   parser) in transformers' Gemma3TextConfig keys: every 6th layer global,
   local rope base 10000, query_pre_attn_scalar = head_dim, tied head.
2. model.safetensors (float32) holds exactly the tensors of HF's
   Gemma3ForCausalLM (the names and shapes its modules give, listed here
   from the config, not from the converter's table), and nothing else.
3. Values: every tensor equals gguf's dequantisation of its GGUF tensor
   (found through this file's own name table); every *norm weight is the
   GGUF value minus 1 (llama.cpp's converter stores Gemma's 1 + w);
   token_embd's Q8_0 rows are also dequantised by hand (fp16 scale times
   32 int8s), independently of gguf.quants.
4. bfloat16: each value is the bfloat16 nearest to the float32 one.

Usage: test_gguf_to_hf.py (reads SMOKE_MODEL, default the default model;
exit 77 = skipped when the model or the gguf package is absent).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.environ.get("SMOKE_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.environ.get("SMOKE_MODEL") or os.path.expanduser("~/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf")
SKIP = 77

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize
except ImportError as e:
    print(f"SKIP: numpy and the gguf package are needed ({e})")
    sys.exit(SKIP)

fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def read_safetensors(path, want_bf16_raw=False):
    """{name: array}; BF16 tensors as uint16 (numpy has no bfloat16)."""
    if not want_bf16_raw:
        try:
            from safetensors.numpy import load_file
            print(f"reading {os.path.basename(path)} with the safetensors package")
            return load_file(path)
        except ImportError:
            pass
    print(f"reading {os.path.basename(path)} with the minimal reader")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = np.memmap(path, dtype=np.uint8, mode="r")
    kinds = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = h["data_offsets"]
        out[name] = np.frombuffer(data[base + b0:base + b1], dtype=kinds[h["dtype"]]).reshape(h["shape"])
    return out


# This file's own GGUF -> HF name table (HF's module names in
# transformers/models/gemma3/modeling_gemma3.py).
LAYER = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def hf_of(gname):
    if gname == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gname == "output_norm.weight":
        return "model.norm.weight"
    _, i, part, w = gname.split(".")
    return f"model.layers.{i}.{LAYER[part]}.{w}"


def expected_shapes(c):
    H, I, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    s = {"model.embed_tokens.weight": [c["vocab_size"], H], "model.norm.weight": [H]}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s.update({p + "self_attn.q_proj.weight": [q, H], p + "self_attn.k_proj.weight": [kv, H],
                  p + "self_attn.v_proj.weight": [kv, H], p + "self_attn.o_proj.weight": [H, q],
                  p + "self_attn.q_norm.weight": [hd], p + "self_attn.k_norm.weight": [hd],
                  p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                  p + "mlp.down_proj.weight": [H, I]})
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"):
            s[p + n + ".weight"] = [H]
    return s


def q8_0_rows(raw, rows):
    """Hand dequantisation of Q8_0 rows: blocks of fp16 d + 32 int8, y = d * q."""
    out = []
    for r in rows:
        b = raw[r].reshape(-1, 34)
        d = b[:, :2].copy().view(np.float16).astype(np.float32)
        q = b[:, 2:].copy().view(np.int8).astype(np.float32)
        out.append((d * q).reshape(-1))
    return np.stack(out)


def main():
    if not os.path.exists(MODEL):
        print(f"SKIP: the default model is absent ({MODEL}; scripts/fetch-model, or set SMOKE_MODEL)")
        return SKIP
    reader = gguf.GGUFReader(MODEL)
    if reader.fields["general.architecture"].contents() != "gemma3":
        print(f"SKIP: {MODEL} is not a gemma3 model: this test knows Gemma 3's layout")
        return SKIP
    kv = lambda k: reader.fields[k].contents()
    with tempfile.TemporaryDirectory(prefix="gguf-to-hf-") as tmp:
        dirs = {}
        for dt in ("float32", "bfloat16"):
            dirs[dt] = os.path.join(tmp, dt)
            r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gguf-to-hf.py"), MODEL,
                                dirs[dt], "--dtype", dt], capture_output=True, text=True)
            check(r.returncode == 0, f"gguf-to-hf.py --dtype {dt} exits 0 ({(r.stdout + r.stderr).strip()[-300:]})")
            if r.returncode:
                return 1

        # 1. config.json
        with open(os.path.join(dirs["float32"], "config.json")) as f:
            c = json.load(f)
        n_layer = kv("gemma3.block_count")
        want = {
            "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
            "hidden_size": kv("gemma3.embedding_length"), "intermediate_size": kv("gemma3.feed_forward_length"),
            "num_hidden_layers": n_layer, "num_attention_heads": kv("gemma3.attention.head_count"),
            "num_key_value_heads": kv("gemma3.attention.head_count_kv"),
            "head_dim": kv("gemma3.attention.key_length"), "query_pre_attn_scalar": kv("gemma3.attention.key_length"),
            "sliding_window": kv("gemma3.attention.sliding_window"),
            "max_position_embeddings": kv("gemma3.context_length"),
            "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
            "rope_theta": kv("gemma3.rope.freq_base"), "rope_local_base_freq": 10000.0,
            "tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh",
            "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
            "final_logit_softcapping": None, "attn_logit_softcapping": None,
        }
        for k, v in want.items():
            check(c.get(k) == v, f"config {k} = {c.get(k)!r} (want {v!r})")
        # The 270M's own numbers (MODEL-FACTS), so a misread key cannot pass on both sides.
        check((c["hidden_size"], c["num_hidden_layers"], c["head_dim"], c["vocab_size"]) == (640, 18, 256, 262144),
              "config matches Gemma 3 270M: 640 wide, 18 layers, head_dim 256, 262144 tokens")
        check(abs(c["rms_norm_eps"] - 1e-6) < 1e-12, f"config rms_norm_eps {c['rms_norm_eps']} = 1e-6")
        glob = [i for i, t in enumerate(c["layer_types"]) if t == "full_attention"]
        check(len(c["layer_types"]) == n_layer and glob == [5, 11, 17],
              f"layer_types: global layers {glob} (llama.cpp: il % 6 == 5)")

        # 2. names and shapes
        st = read_safetensors(os.path.join(dirs["float32"], "model.safetensors"))
        exp = expected_shapes(c)
        check(set(st) == set(exp), f"tensor names: {len(st)} written, {len(exp)} expected; "
              f"extra {sorted(set(st) - set(exp))[:3]}, missing {sorted(set(exp) - set(st))[:3]}")
        bad = [n for n in exp if n in st and list(st[n].shape) != exp[n]]
        check(not bad, f"tensor shapes as HF's modules ({bad[:3]} differ)")

        # 3. values
        worst, n_norm = [], 0
        for t in reader.tensors:
            h = hf_of(t.name)
            if h not in st:
                continue
            ref = dequantize(t.data, t.tensor_type).reshape(st[h].shape)
            if t.name.endswith("norm.weight"):
                ref = ref - np.float32(1.0)
                n_norm += 1
            if not np.array_equal(st[h], ref):
                worst.append(h)
        check(not worst, f"every tensor equals gguf's dequantisation, norms minus 1 ({n_norm} norms; "
              f"{len(worst)} differ: {worst[:3]})")
        emb = next(t for t in reader.tensors if t.name == "token_embd.weight")
        check(emb.tensor_type == gguf.GGMLQuantizationType.Q8_0, "token_embd is Q8_0 (MODEL-FACTS)")
        rows = [0, 2, 818, 5279, 262143]
        hand = q8_0_rows(emb.data, rows)
        check(np.array_equal(st["model.embed_tokens.weight"][rows], hand),
              "embed_tokens rows 0, 2, 818, 5279, 262143 equal a hand Q8_0 dequantisation")
        on = next(t for t in reader.tensors if t.name == "blk.3.post_ffw_norm.weight")
        check(np.array_equal(st["model.layers.3.post_feedforward_layernorm.weight"],
                             np.asarray(on.data, dtype=np.float32) - np.float32(1.0)),
              "layer 3 post_feedforward_layernorm = GGUF F32 values - 1")

        # 4. bfloat16 rounding, on a few tensors
        sb = read_safetensors(os.path.join(dirs["bfloat16"], "model.safetensors"), want_bf16_raw=True)
        ok = set(sb) == set(st)
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.17.mlp.down_proj.weight",
                     "model.norm.weight", "model.layers.5.self_attn.k_norm.weight"):
            x = np.asarray(st[name], dtype=np.float32).reshape(-1)
            b = sb[name].reshape(-1).astype(np.uint32)
            lo = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # truncation
            hi = ((x.view(np.uint32) & np.uint32(0xFFFF0000)) + np.uint32(0x10000)).view(np.float32)
            got = (b << 16).view(np.float32)
            err = np.abs(got - x)
            best = np.minimum(np.abs(lo - x), np.abs(hi - x))
            ok = ok and bool(np.all(err <= best)) and bool(np.all((got == lo) | (got == hi)))
        check(ok, "bfloat16: same tensors; each value is the nearest bfloat16 of the float32 one")
    print("FAIL" if fails else "PASS", f"({len(fails)} failed)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
