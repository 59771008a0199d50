#!/usr/bin/env python3
"""scripts/gguf-to-hf.py - a GGUF model as a Hugging Face safetensors directory.

    scripts/gguf-to-hf.py MODEL.gguf OUT_DIR [--dtype bfloat16|float32|float16] [-j N]

Writes OUT_DIR/config.json, OUT_DIR/model.safetensors and
OUT_DIR/generation_config.json, which transformers loads with
AutoModelForCausalLM.from_pretrained(OUT_DIR).  There is no tokenizer: the
peer benchmark (bench/peer-accelerate.py) is driven by token ids.

Why: scripts/gpu-check compares smoke with transformers + accelerate on
the same model, on a machine without network access that only receives the
GGUF (the safetensors directory is too big to ship), so the directory is
made there from the GGUF.  Needs only numpy and the `gguf` package (no
torch, no transformers); the GPU machine gets the gguf wheel from
scripts/fetch-gpu-wheels.

Every tensor is dequantised with gguf.quants.dequantize (so the peer runs
the very weights smoke runs, only unquantised) and written straight into
its place in model.safetensors by worker processes (fork; the GGUF is
memory-mapped and shared), big tensors in row chunks.

Architectures:
  gemma3  Gemma3ForCausalLM (model_type gemma3_text).  llama.cpp's converter
          stores every *norm.weight as (w + 1) and HF's Gemma3RMSNorm
          multiplies by (1 + w), so 1 is subtracted again.  Q/K are not
          permuted (NEOX rope, like HF).  The output head is tied to
          token_embd when the GGUF has no output.weight.  The sliding-window
          pattern (every 6th layer global) and the local rope base (10000)
          are not in the GGUF: llama.cpp hard-codes them, so do we.
  qwen2   Qwen2ForCausalLM (no permute; q/k/v biases).
  llama   LlamaForCausalLM; llama.cpp permutes Q and K for its interleaved
          rope, which is undone here.  Llama 3 rope scaling (rope_freqs) is
          refused: its parameters cannot be recovered from the factors.
Checked against llama.cpp (logits of its greedy tokens, teacher-forced in
transformers; docs/peer-accelerate.md): the default Gemma 3 model, and the
tiny llama (spm, bpe) and qwen2 test models.

GGUF dimensions are listed fastest first (ne0 = the input features of a
matrix), so a GGUF [in, out] tensor is an HF [out, in] array.
"""
import argparse
import json
import multiprocessing as mp
import os
import struct
import sys
import time

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError as e:  # the GPU machine needs the wheel from scripts/fetch-gpu-wheels
    sys.exit(f"gguf-to-hf: the `gguf` package is missing ({e}); pip install gguf, "
             "or scripts/fetch-gpu-wheels and PYTHONPATH")

DTYPES = {  # name: (safetensors dtype, bytes per element)
    "bfloat16": ("BF16", 2),
    "float16": ("F16", 2),
    "float32": ("F32", 4),
}
CHUNK_ELEMS = 1 << 23  # rows per work item: ~32 MiB of float32 while converting

# GGUF layer suffix -> HF layer suffix, per architecture family.
COMMON_LAYER = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GEMMA3_LAYER = dict(COMMON_LAYER, **{
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
})
# In llama and qwen2 the FFN's pre-norm is HF's post_attention_layernorm.
LLAMA_LAYER = dict(COMMON_LAYER, **{"ffn_norm": "post_attention_layernorm"})


def fail(msg):
    sys.exit(f"gguf-to-hf: {msg}")


class Tensor:
    """One tensor of the file: its GGUF dims (ne0 first), type and raw rows."""

    def __init__(self, name, ne, qtype, data):
        self.name, self.shape, self.tensor_type, self.data = name, ne, qtype, data


# GGUF value types: fixed-size scalars (struct format), 8 = string, 9 = array.
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


class GGUFFile:
    """A GGUF's key/values and tensors, memory-mapped.

    gguf.GGUFReader would do, but it builds an object per element of every
    array (262144 tokens, scores and types for Gemma 3): 12 s of a 15 s
    conversion.  Arrays are skipped here (the converter needs none of them);
    everything read is bounds-checked.
    """

    def __init__(self, path):
        self.path = path
        try:
            if os.path.getsize(path) < 24:
                self._bad("too short for a GGUF header")
            self.mm = np.memmap(path, dtype=np.uint8, mode="r")
        except OSError as e:
            self._bad(e.strerror or str(e))
        self.buf = memoryview(self.mm)
        self.pos = 0
        if self._u(4, "<I") != 0x46554747:
            self._bad("not a GGUF file (magic)")
        ver = self._u(4, "<I")
        if ver not in (2, 3):
            self._bad(f"GGUF version {ver} is not supported")
        n_t, n_kv = self._u(8, "<Q"), self._u(8, "<Q")
        if n_t > len(self.mm) // 24 or n_kv > len(self.mm) // 12:
            self._bad("tensor or key counts larger than the file")
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            self.kv[key] = self._value(self._u(4, "<I"), 0)
        infos = []
        for _ in range(n_t):
            name = self._str()
            nd = self._u(4, "<I")
            if not 1 <= nd <= 4:
                self._bad(f"tensor '{name}' has {nd} dimensions")
            ne = [self._u(8, "<Q") for _ in range(nd)]
            infos.append((name, ne, self._u(4, "<I"), self._u(8, "<Q")))
        align = self.kv.get("general.alignment", 32)
        if not isinstance(align, int) or align <= 0 or align & (align - 1):
            self._bad(f"general.alignment {align!r} is not a power of 2")
        start = self.pos + (-self.pos % align)
        self.tensors = {}
        for name, ne, tid, off in infos:
            try:
                qt = gguf.GGMLQuantizationType(tid)
                bs, ts = gguf.GGML_QUANT_SIZES[qt]
            except (ValueError, KeyError):
                self._bad(f"tensor '{name}' has unknown type {tid}")
            if ne[0] % bs or any(d <= 0 or d > 1 << 40 for d in ne):
                self._bad(f"tensor '{name}' dims {ne} do not fit type {qt.name}")
            rows = int(np.prod(ne[1:], dtype=np.int64))
            rb = ne[0] // bs * ts
            b0 = start + off
            if off % align or b0 + rows * rb > len(self.mm):
                self._bad(f"tensor '{name}' data [{b0}, +{rows * rb}) is outside the file or misaligned")
            raw = self.mm[b0:b0 + rows * rb]
            raw = raw.reshape(rows, rb) if len(ne) > 1 else raw
            if name in self.tensors:
                self._bad(f"tensor '{name}' appears twice")
            self.tensors[name] = Tensor(name, ne, qt, raw)

    def _bad(self, why):
        fail(f"{self.path}: {why}")

    def _u(self, n, fmt):
        if self.pos + n > len(self.buf):
            self._bad(f"truncated at byte {self.pos}")
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return v

    def _str(self):
        n = self._u(8, "<Q")
        if self.pos + n > len(self.buf):
            self._bad(f"string of {n} bytes at byte {self.pos} runs past the end")
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", "replace")
        self.pos += n
        return s

    def _value(self, vt, depth):
        if vt in _SCALAR:
            return self._u(struct.calcsize(_SCALAR[vt]), _SCALAR[vt])
        if vt == 8:
            return self._str()
        if vt != 9 or depth > 2:
            self._bad(f"value type {vt} at byte {self.pos}")
        et, n = self._u(4, "<I"), self._u(8, "<Q")
        if et in _SCALAR:  # skipped in one step
            size = struct.calcsize(_SCALAR[et])
            if n > (len(self.buf) - self.pos) // size:
                self._bad(f"array of {n} at byte {self.pos} runs past the end")
            self.pos += n * size
        else:
            if n > len(self.buf) - self.pos:
                self._bad(f"array of {n} at byte {self.pos} runs past the end")
            for _ in range(n):
                self._value(et, depth + 1)
        return ("array", n)


def f32(v):
    """A GGUF float (stored as f32) as its shortest decimal: 1e-06, not 9.99999997e-07."""
    if float(np.float32(v)) != v:  # an f64 key: keep it
        return v
    return float(str(np.float32(v)))


class Meta:
    """The GGUF's key/values, read with type checks."""

    def __init__(self, gf):
        self.kv = gf.kv
        self.path = gf.path
        self.arch = self.get("general.architecture", str)

    def get(self, key, kind, default=None, required=True):
        if key not in self.kv:
            if required and default is None:
                fail(f"{self.path}: metadata key '{key}' is missing")
            return default
        v = self.kv[key]
        if kind is int and isinstance(v, int) and not isinstance(v, bool):
            return v
        if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            return f32(v) if isinstance(v, float) else float(v)
        if kind is str and isinstance(v, str):
            return v
        if kind is bool and isinstance(v, bool):
            return v
        fail(f"{self.path}: metadata key '{key}' has an unexpected type ({type(v).__name__})")

    def a(self, key, kind, default=None, required=True):
        return self.get(f"{self.arch}.{key}", kind, default, required)


def n_vocab(meta, tensors):
    emb = tensors.get("token_embd.weight")
    if emb is None:
        fail(f"{meta.path}: no token_embd.weight")
    return int(emb.shape[1])  # GGUF [n_embd, n_vocab]


def special_ids(meta):
    ids = {}
    for hf, key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                    ("pad_token_id", "padding_token_id")):
        v = meta.get(f"tokenizer.ggml.{key}", int, required=False)
        ids[hf] = v
    return ids


def shared_config(meta, tensors, n_embd, n_head, head_dim):
    """The config.json keys every decoder family writes the same way."""
    return {
        "hidden_size": n_embd,
        "intermediate_size": meta.a("feed_forward_length", int),
        "num_hidden_layers": meta.a("block_count", int),
        "num_attention_heads": n_head,
        "num_key_value_heads": meta.a("attention.head_count_kv", int, n_head, required=False),
        "head_dim": head_dim,
        "rms_norm_eps": meta.a("attention.layer_norm_rms_epsilon", float),
        "max_position_embeddings": meta.a("context_length", int),
        "vocab_size": n_vocab(meta, tensors),
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "tie_word_embeddings": "output.weight" not in tensors,
        **special_ids(meta),
    }


def gemma3_config(meta, tensors):
    n_embd = meta.a("embedding_length", int)
    n_head = meta.a("attention.head_count", int)
    n_layer = meta.a("block_count", int)
    head_dim = meta.a("attention.key_length", int, n_embd // n_head, required=False)
    vdim = meta.a("attention.value_length", int, head_dim, required=False)
    if vdim != head_dim:
        fail(f"{meta.path}: key_length {head_dim} != value_length {vdim}: HF Gemma 3 has one head_dim")
    # llama.cpp scales queries by 1/sqrt(head_dim), except for the 27B model
    # (62 layers), where it is 1/sqrt(n_embd / n_head): HF's query_pre_attn_scalar.
    qpas = n_embd // n_head if n_layer == 62 else head_dim
    pattern = 6  # hard-coded in llama.cpp (LLM_ARCH_GEMMA3: hparams.set_swa_pattern(6))
    rope_scaling = None
    stype = meta.a("rope.scaling.type", str, required=False)
    if stype not in (None, "none"):
        if stype != "linear":
            fail(f"{meta.path}: rope scaling '{stype}' is not supported for gemma3 (only linear)")
        rope_scaling = {"rope_type": "linear", "factor": meta.a("rope.scaling.factor", float)}
    cfg = {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        **shared_config(meta, tensors, n_embd, n_head, head_dim),
        "hidden_activation": "gelu_pytorch_tanh",
        # The form of the Hub's config.json (transformers 4.5x), which every
        # transformers 5 reads (into rope_parameters) and smoke's
        # hf_model.c reads too.
        "rope_theta": meta.a("rope.freq_base", float, 1e6, required=False),
        "rope_local_base_freq": 10000.0,  # hard-coded in llama.cpp for gemma3's SWA layers
        "rope_scaling": rope_scaling,
        "sliding_window": meta.a("attention.sliding_window", int),
        "sliding_window_pattern": pattern,
        "layer_types": ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                        for i in range(n_layer)],
        "query_pre_attn_scalar": qpas,
        "attention_bias": False,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": meta.a("final_logit_softcapping", float, required=False),
    }
    return cfg


def llama_config(meta, tensors, qwen2):
    n_embd = meta.a("embedding_length", int)
    n_head = meta.a("attention.head_count", int)
    head_dim = meta.a("attention.key_length", int, n_embd // n_head, required=False)
    if "rope_freqs.weight" in tensors:
        fail(f"{meta.path}: rope_freqs.weight (Llama 3 rope scaling) cannot be turned back into "
             "HF rope_scaling parameters")
    stype = meta.a("rope.scaling.type", str, required=False)
    if stype not in (None, "none"):
        fail(f"{meta.path}: rope scaling '{stype}' is not supported by this converter")
    n_rot = meta.a("rope.dimension_count", int, head_dim, required=False)
    if n_rot != head_dim:
        fail(f"{meta.path}: rope over {n_rot} of {head_dim} head dimensions (partial rope) is not supported")
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen2 else "llama",
        **shared_config(meta, tensors, n_embd, n_head, head_dim),
        "hidden_act": "silu",
        "rope_theta": meta.a("rope.freq_base", float, 10000.0, required=False),
        "rope_scaling": None,
    }
    if qwen2:
        cfg["use_sliding_window"] = False
    else:
        cfg["attention_bias"] = "blk.0.attn_q.bias" in tensors
        cfg["mlp_bias"] = False
    return cfg


def hf_name(arch, gname):
    """(HF name, subtract 1 from a Gemma norm) for a GGUF tensor name."""
    if gname == "token_embd.weight":
        return "model.embed_tokens.weight", False
    if gname == "output_norm.weight":
        return "model.norm.weight", arch == "gemma3"
    if gname == "output.weight":
        return "lm_head.weight", False
    parts = gname.split(".")
    if len(parts) != 4 or parts[0] != "blk" or not parts[1].isdigit() or parts[3] not in ("weight", "bias"):
        return None, False
    table = GEMMA3_LAYER if arch == "gemma3" else LLAMA_LAYER
    suffix = table.get(parts[2])
    if suffix is None:
        return None, False
    minus1 = arch == "gemma3" and parts[2].endswith("norm")
    return f"model.layers.{parts[1]}.{suffix}.{parts[3]}", minus1


def to_dtype(x, dtype):
    """float32 array -> bytes of the output dtype (bf16: round to nearest even)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float32":
        return x
    if dtype == "float16":
        return x.astype(np.float16)
    u = x.view(np.uint32)
    # Round to nearest even on the upper 16 bits (no NaNs in these weights;
    # a NaN's payload could round to Inf, which we would not hide anyway).
    r = ((u >> 16) & 1) + np.uint32(0x7FFF)
    return ((u + r) >> 16).astype(np.uint16)


# Worker state, inherited through fork (the reader's memory map included).
_W = {}


def _work(item):
    gname, r0, r1, off = item
    t = _W["tensors"][gname]
    spec = _W["specs"][gname]
    data = t.data[r0:r1] if t.data.ndim > 1 else t.data
    x = dequantize(data, t.tensor_type).reshape(r1 - r0, -1) if t.data.ndim > 1 else \
        dequantize(data, t.tensor_type).reshape(-1)
    if spec["minus1"]:
        x = x - 1.0
    if spec["unpermute"]:
        n_h = spec["unpermute"]
        rows, cols = x.shape
        # llama.cpp: w.reshape(n_h, 2, hd/2, in).swapaxes(1, 2); this is its inverse.
        x = x.reshape(n_h, rows // n_h // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
    b = to_dtype(x, _W["dtype"]).tobytes()
    fd = os.open(_W["out"], os.O_WRONLY)
    try:
        done = 0
        while done < len(b):
            done += os.pwrite(fd, b[done:], off + done)
    finally:
        os.close(fd)
    return len(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    ap.add_argument("-j", "--jobs", type=int, default=min(os.cpu_count() or 1, 8))
    args = ap.parse_args()
    t0 = time.time()

    gf = GGUFFile(args.gguf)
    meta = Meta(gf)
    tensors = gf.tensors
    arch = meta.arch
    if arch == "gemma3":
        cfg = gemma3_config(meta, tensors)
    elif arch in ("llama", "qwen2"):
        cfg = llama_config(meta, tensors, arch == "qwen2")
    else:
        fail(f"{args.gguf}: architecture '{arch}' is not supported (gemma3, llama, qwen2)")

    st_dtype, esize = DTYPES[args.dtype]
    specs = {}
    for gname, t in tensors.items():
        hname, minus1 = hf_name(arch, gname)
        if hname is None:
            fail(f"{args.gguf}: tensor '{gname}' has no HF counterpart in {arch}")
        shape = [int(d) for d in reversed(t.shape)]  # ne0 first -> numpy order
        unpermute = 0
        if arch == "llama" and gname.endswith((".attn_q.weight", ".attn_k.weight")):
            unpermute = cfg["num_attention_heads"] if ".attn_q." in gname else cfg["num_key_value_heads"]
            if shape[0] % (2 * unpermute):
                fail(f"{args.gguf}: {gname} rows {shape[0]} do not split into {unpermute} heads")
        specs[gname] = {"hname": hname, "shape": shape, "minus1": minus1, "unpermute": unpermute}
    for need in ("token_embd.weight", "output_norm.weight"):
        if need not in specs:
            fail(f"{args.gguf}: tensor '{need}' is missing")

    # The safetensors header: tensors sorted by HF name, packed back to back.
    header, items, off = {}, [], 0
    for gname in sorted(specs, key=lambda g: specs[g]["hname"]):
        s = specs[gname]
        n = int(np.prod(s["shape"]))
        header[s["hname"]] = {"dtype": st_dtype, "shape": s["shape"], "data_offsets": [off, off + n * esize]}
        rows = s["shape"][0] if len(s["shape"]) > 1 else 1
        if len(s["shape"]) > 1 and not s["unpermute"]:
            step = max(1, CHUNK_ELEMS // max(1, n // rows))
        else:
            step = rows  # 1-D, or permuted as a whole
        row_bytes = (n // rows) * esize
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            items.append((gname, r0, r1, off + r0 * row_bytes))
        off += n * esize
    header["__metadata__"] = {"format": "pt", "source": os.path.basename(args.gguf)}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # the data starts 8-aligned

    os.makedirs(args.out_dir, exist_ok=True)
    out = os.path.join(args.out_dir, "model.safetensors")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        f.truncate(8 + len(hb) + off)
    base = 8 + len(hb)
    items = [(g, r0, r1, base + o) for g, r0, r1, o in items]
    items.sort(key=lambda it: -(it[2] - it[1]) * int(np.prod(specs[it[0]]["shape"][1:])))  # big first

    _W.update(tensors=tensors, specs=specs, dtype=args.dtype, out=out)
    written = 0
    if args.jobs > 1 and len(items) > 1:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            for nb in pool.imap_unordered(_work, items, chunksize=1):
                written += nb
    else:
        for it in items:
            written += _work(it)
    if written != off:
        fail(f"{out}: wrote {written} bytes of tensor data, expected {off}")

    cfg["torch_dtype"] = args.dtype  # transformers 4's key; 5 reads it too
    cfg["dtype"] = args.dtype
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gen = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if cfg.get(k) is not None}
    gen["do_sample"] = False
    with open(os.path.join(args.out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    print(f"gguf-to-hf: {args.gguf} ({arch}, {len(specs)} tensors) -> {args.out_dir}: "
          f"{off / 2**20:.1f} MiB of {args.dtype} in {time.time() - t0:.1f} s with {args.jobs} jobs")


if __name__ == "__main__":
    main()
