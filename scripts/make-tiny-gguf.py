#!/usr/bin/env python3
"""Generate random-weight GGUF models that llama.cpp can load (test fixtures).

Architectures (--arch; the GGUF general.architecture in brackets):
  llama     [llama] Llama 2/3 style: RMSNorm, NORM (interleaved-pair) RoPE,
            SwiGLU, GQA.
  qwen2     [qwen2] as llama but NEOX RoPE (llama.cpp decides that from the
            arch) and biases on attn_q/attn_k/attn_v.
  qwen3     [qwen3] NEOX RoPE, no biases, per-head RMSNorm attn_q_norm /
            attn_k_norm {head_dim} applied before RoPE; head_dim (--head-dim,
            written as attention.key_length = value_length =
            rope.dimension_count) independent of n_embd / n_head.
  qwen3moe  [qwen3moe] qwen3 attention + a mixture of experts instead of the
            dense FFN: ffn_gate_inp {n_embd, n_expert} (router),
            ffn_{gate,up}_exps {n_embd, n_ff_exp, n_expert}, ffn_down_exps
            {n_ff_exp, n_embd, n_expert}; keys expert_count, expert_used_count,
            expert_feed_forward_length (feed_forward_length = --n-ff is written
            as real converters do, but llama.cpp sizes the experts from
            expert_feed_forward_length). llama.cpp: softmax over all experts,
            top-k, weights renormalised to sum 1, SiLU-gated experts.
  mixtral   [llama] llama + experts: llama.expert_count / expert_used_count,
            the same expert tensor names; the experts' width is
            feed_forward_length (--n-ff; no expert_feed_forward_length key, as
            in real Mixtral GGUFs), --n-ff-exp is not used.
  gpt-oss   [gpt-oss] biases on attn_q/k/v/output, attn_sinks {n_head},
            post_attention_norm (the pre-FFN norm, no ffn_norm), router
            ffn_gate_inp + bias, experts with biases ffn_{gate,up}_exps.bias
            {n_ff_exp, n_expert} and ffn_down_exps.bias {n_embd, n_expert};
            untied output; keys expert_feed_forward_length,
            attention.sliding_window (--sliding-window; llama.cpp makes even
            layers sliding), rope.scaling.type yarn, .factor,
            .original_context_length (--yarn-factor, --yarn-orig-ctx).

The tokenizer metadata (every tokenizer.* key) is copied from an existing GGUF
vocab file (llama.cpp ships models/ggml-vocab-*.gguf); n_vocab is taken from it.

Deterministic: the same command line (and numpy major version) gives a
byte-identical file. Each tensor has its own RNG, seeded from (--seed, tensor
name), and is generated and quantized in fixed row chunks, so large models are
written tensor by tensor without holding them in memory.

Examples:
  make-tiny-gguf.py --arch llama --vocab llama-bpe --out /tmp/t.gguf
  make-tiny-gguf.py --preset llama8b-like --out /big/llama8b-like.gguf
  make-tiny-gguf.py --preset qwen3-30b-a3b-like --fast --out /big/q3.gguf   (~17 GB)
  make-tiny-gguf.py --preset gpt-oss-20b-like --fast --out /big/go.gguf     (~12 GB)
  make-tiny-gguf.py --preset qwen3-30b-a3b-like --fast --n-layer 8 --n-expert 64 ...

--fast (for the multi-GB presets, bench/moe-ooc): every quantised tensor is
written as random quant bytes whose scale fields (fp16 d/dmin, Q6_K's int8
sub-scales, MXFP4's E8M0 exponent) are set so that the elements have the
std below and a mean near zero, each block's scale drawn from a narrow range;
no NaN or inf. Disk speed instead of numpy quantisation; still deterministic
from --seed. F32/F16 tensors (norms, biases, the router) are generated as
without it. Without --fast a file's bytes are unchanged.

Weight init (so logits and attention are not degenerate):
  linear weights  N(0, (init/sqrt(fan_in))^2)          (init = --init, 1.0)
  token_embd      N(0, (logit_std/sqrt(n_embd))^2) [* optional per-row factor
                  exp(N(0, row_sigma^2)); default off: high-norm rows then win
                  every argmax and greedy output degenerates]
  output          same as token_embd (when untied)
  norms           1 + N(0, 0.1^2);  qwen2 q/k/v biases N(0, 0.5^2)
  router          N(0, (router_std/sqrt(n_embd))^2) (--router-std, 1.0): the
                  router sees the RMS-normalised hidden state (elements of
                  size ~1), so its logits have a std of about router_std and
                  the chosen experts change from token to token (a larger
                  value makes the softmax peakier, a tiny one makes every
                  expert weight ~1/k). F32 by default (--router-type), as
                  llama-quantize keeps ffn_gate_inp.weight.
  expert weights  as linear weights (fan_in = ne0; --expert-init overrides
                  --init), --expert-type (default --type), ffn_down_exps
                  --ffn-down-type when given
  gpt-oss         all biases (attention, router, experts) N(0, 0.5^2);
                  attn_sinks N(0, 1)
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
import zlib

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType, GGUFWriter

# ---------------------------------------------------------------------------
# quantizers (numpy, vectorized over blocks). gguf-py ships Q4_0/Q8_0/...; its
# K-quant classes only dequantize, so Q4_K and Q6_K are implemented here (simple
# min/max scale choice, not llama.cpp's iterative search; any valid encoding is
# a valid model). Verified against gguf.quants.dequantize in --self-test.

def _f16(x):
    return x.astype(np.float16)


def quant_q4_k(x: np.ndarray) -> np.ndarray:
    """x: (n_blocks, 256) float32 -> (n_blocks, 144) uint8."""
    nb = x.shape[0]
    sub = x.reshape(nb, 8, 32)
    mn = np.minimum(sub.min(axis=2), 0.0)            # (nb, 8), <= 0
    mx = sub.max(axis=2)
    scale = (mx - mn) / 15.0                           # >= 0
    d = scale.max(axis=1) / 63.0                       # (nb,)
    dmin = (-mn).max(axis=1) / 63.0
    d16 = _f16(d)
    dmin16 = _f16(dmin)
    d_f = d16.astype(np.float32)
    dmin_f = dmin16.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d_f[:, None] > 0, np.round(scale / d_f[:, None]), 0)
        m = np.where(dmin_f[:, None] > 0, np.round(-mn / dmin_f[:, None]), 0)
    sc = np.clip(sc, 0, 63).astype(np.uint8)
    m = np.clip(m, 0, 63).astype(np.uint8)
    eff_d = d_f[:, None] * sc.astype(np.float32)       # (nb, 8)
    eff_m = dmin_f[:, None] * m.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(eff_d[:, :, None] > 0,
                     np.round((sub + eff_m[:, :, None]) / eff_d[:, :, None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8).reshape(nb, 4, 2, 32)
    qs = (q[:, :, 0, :] | (q[:, :, 1, :] << 4)).reshape(nb, 128)
    scales = np.zeros((nb, 12), dtype=np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (m[:, 0:4] & 63) | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 15) | ((m[:, 4:8] & 15) << 4)
    out = np.concatenate([d16.reshape(nb, 1).view(np.uint8), dmin16.reshape(nb, 1).view(np.uint8),
                          scales, qs], axis=1)
    assert out.shape == (nb, 144)
    return out


def quant_q6_k(x: np.ndarray) -> np.ndarray:
    """x: (n_blocks, 256) float32 -> (n_blocks, 210) uint8."""
    nb = x.shape[0]
    sub = x.reshape(nb, 16, 16)
    amax = np.abs(sub).max(axis=2)                     # (nb, 16)
    s = amax / 31.0
    d = s.max(axis=1) / 127.0
    d16 = _f16(d)
    d_f = d16.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d_f[:, None] > 0, np.round(s / d_f[:, None]), 0)
    sc = np.clip(sc, -128, 127).astype(np.int8)
    eff = d_f[:, None] * sc.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(eff[:, :, None] > 0, np.round(sub / eff[:, :, None]), 0)
    Q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(nb, 2, 128)
    a, b, c, e = Q[:, :, 0:32], Q[:, :, 32:64], Q[:, :, 64:96], Q[:, :, 96:128]
    ql = np.concatenate([(a & 15) | ((c & 15) << 4), (b & 15) | ((e & 15) << 4)], axis=2)  # (nb,2,64)
    qh = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)                    # (nb,2,32)
    out = np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8),
                          d16.reshape(nb, 1).view(np.uint8)], axis=1)
    assert out.shape == (nb, 210)
    return out


TYPES = {"F32": QT.F32, "F16": QT.F16, "Q8_0": QT.Q8_0, "Q4_0": QT.Q4_0,
         "Q4_K": QT.Q4_K, "Q6_K": QT.Q6_K, "MXFP4": QT.MXFP4}

# --arch -> GGUF general.architecture (the key prefix)
GGUF_ARCH = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3moe",
             "mixtral": "llama", "gpt-oss": "gpt-oss"}
MOE_ARCHS = ("qwen3moe", "mixtral", "gpt-oss")


def quantize_rows(rows: np.ndarray, qt: QT) -> np.ndarray:
    """rows: (n, ne0) float32 -> bytes as a uint8/float array in ggml layout."""
    if qt == QT.F32:
        return rows.astype(np.float32)
    if qt == QT.F16:
        return rows.astype(np.float16)
    if qt in (QT.Q4_K, QT.Q6_K):
        blocks = rows.reshape(-1, 256)
        return (quant_q4_k if qt == QT.Q4_K else quant_q6_k)(blocks)
    return gguf.quants.quantize(rows, qt)


def nbytes_of(shape_ne, qt: QT) -> int:
    blk, tsz = gguf.GGML_QUANT_SIZES[qt]
    n = 1
    for s in shape_ne:
        n *= s
    assert shape_ne[0] % blk == 0
    return n // blk * tsz


# ---------------------------------------------------------------------------
# --fast: quantised blocks written at disk speed. The payload (quants) is
# random bytes; the scale fields are overwritten with values that give each
# element a standard deviation of about `std` (and a mean near zero), drawn
# from a narrow range (x0.9..x1.1 per block; MXFP4's power-of-two scale
# takes one of two exponents), so activations neither explode nor vanish.
# Scales are finite fp16/E8M0 values by construction: no NaN or inf.
# Deterministic: the bytes come from the tensor's own seeded Generator.

def _rand_u8(rng, n):
    """n random bytes from rng (uint64 draws, the fastest numpy path)."""
    w = rng.integers(0, np.iinfo(np.uint64).max, size=(n + 7) // 8, dtype=np.uint64, endpoint=True)
    return w.view(np.uint8)[:n]


def _narrow(rng, nb, base):
    return (base * rng.uniform(0.9, 1.1, size=nb)).astype(np.float16)


def fast_blocks(rng, n_elems, qt, std):
    """n_elems elements of type qt (a multiple of its block) as uint8 bytes."""
    blk, tsz = gguf.GGML_QUANT_SIZES[qt]
    nb = n_elems // blk
    b = _rand_u8(rng, nb * tsz).reshape(nb, tsz)
    if qt == QT.Q4_K:
        # x = d*sc*q - dmin*m; with m = sc and dmin = 7.5 d: x = d*sc*(q - 7.5),
        # q uniform 0..15 (variance 21.25), sc uniform 16..63
        sc = rng.integers(16, 64, size=(nb, 8), dtype=np.uint8)
        d = _narrow(rng, nb, std / np.sqrt(np.mean(np.arange(16, 64) ** 2.0) * 21.25))
        b[:, 0:2] = d.reshape(nb, 1).view(np.uint8)
        b[:, 2:4] = (d.astype(np.float32) * 7.5).astype(np.float16).reshape(nb, 1).view(np.uint8)
        b[:, 4:8] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
        b[:, 8:12] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
        b[:, 12:16] = (sc[:, 4:8] & 15) | ((sc[:, 4:8] & 15) << 4)
    elif qt == QT.Q6_K:
        # x = d*sc*(q - 32), q uniform 0..63 (variance 341.25), sc int8 16..63
        sc = rng.integers(16, 64, size=(nb, 16), dtype=np.int8)
        d = _narrow(rng, nb, std / np.sqrt(np.mean(np.arange(16, 64) ** 2.0) * 341.25))
        b[:, 192:208] = sc.view(np.uint8)
        b[:, 208:210] = d.reshape(nb, 1).view(np.uint8)
    elif qt == QT.Q8_0:
        d = _narrow(rng, nb, std / np.sqrt((256 ** 2 - 1) / 12.0))
        b[:, 0:2] = d.reshape(nb, 1).view(np.uint8)
    elif qt == QT.Q4_0:
        d = _narrow(rng, nb, std / np.sqrt(21.25))
        b[:, 0:2] = d.reshape(nb, 1).view(np.uint8)
    elif qt == QT.MXFP4:
        # x = 2^(e-128) * v, v from ggml's doubled e2m1 table {0,1,2,3,4,6,8,12}
        # with a sign: E[v^2] = 34.25 for uniform nibbles
        e0 = int(np.round(np.log2(std / np.sqrt(34.25)))) + 128
        b[:, 0] = np.clip(e0 - rng.integers(0, 2, size=nb), 1, 254).astype(np.uint8)
    else:
        raise ValueError(f"--fast has no writer for {qt.name}")
    return b


PRESETS = {
    # tiny defaults are in the argparse defaults
    "llama8b-like": dict(arch="llama", vocab="llama-bpe", n_embd=4096, n_layer=32, n_head=32,
                         n_head_kv=8, n_ff=14336, ctx=8192, rope_base=500000.0, type="Q4_K",
                         output_type="Q6_K", ffn_down_type="Q6_K", tied=False),
    # Qwen3-30B-A3B's shapes (MOE-FACTS 2.1): 48 layers, 128 experts top-8 of
    # width 768, Q4_K everywhere but a Q6_K output; ~17 GB. Use with --fast.
    "qwen3-30b-a3b-like": dict(arch="qwen3moe", vocab="qwen2", n_embd=2048, n_layer=48, n_head=32,
                               n_head_kv=4, head_dim=128, n_ff=6144, n_expert=128, n_expert_used=8,
                               n_ff_exp=768, ctx=40960, rope_base=1000000.0, type="Q4_K",
                               expert_type="Q4_K", output_type="Q6_K", tied=False),
    # gpt-oss-20b's shapes (MOE-FACTS 1.2-1.3): 24 layers, 32 experts top-4 of
    # width 2880, MXFP4 experts, Q8_0 elsewhere, sinks, biases, window 128,
    # YaRN; ~12 GB. The real o200k vocab is not available: the qwen2 BPE one
    # (151936 tokens, not 201088) stands in. Use with --fast.
    "gpt-oss-20b-like": dict(arch="gpt-oss", vocab="qwen2", n_embd=2880, n_layer=24, n_head=64,
                             n_head_kv=8, head_dim=64, n_ff=2880, n_expert=32, n_expert_used=4,
                             n_ff_exp=2880, ctx=131072, rope_base=150000.0, type="Q8_0",
                             expert_type="MXFP4", output_type="Q8_0", tied=False, sliding_window=128,
                             yarn_factor=32.0, yarn_orig_ctx=4096),
}


def find_vocab(name: str) -> str:
    if os.path.isfile(name):
        return name
    cache = os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke"))
    pats = [os.path.join(cache, "llama.cpp", "llama_cpp_python-*", "vendor", "llama.cpp", "models",
                         f"ggml-vocab-{name}.gguf"),
            os.path.join(cache, "vocab", f"ggml-vocab-{name}.gguf")]  # scripts/fetch-vocabs
    for p in pats:
        hits = sorted(glob.glob(p))
        if hits:
            return hits[-1]
    sys.exit(f"make-tiny-gguf: vocab '{name}' not found (give a path, or run scripts/build-llama-cpp "
             f"to extract llama.cpp's models/ggml-vocab-*.gguf)")


def copy_tokenizer(w: GGUFWriter, vocab_path: str) -> int:
    r = GGUFReader(vocab_path)
    n_vocab = None
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vt = f.types[0]
        val = f.contents()
        if vt == GGUFValueType.ARRAY:
            sub = f.types[1] if len(f.types) > 1 else None
            if sub == GGUFValueType.ARRAY:
                sys.exit(f"nested array {key} not supported")
            w.add_key_value(key, val, vt, sub_type=sub)
        else:
            w.add_key_value(key, val, vt)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(val)
    if n_vocab is None:
        sys.exit(f"{vocab_path}: no tokenizer.ggml.tokens")
    return n_vocab


def rng_for(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="named shape preset (overrides defaults; "
                    "explicit options still win)")
    ap.add_argument("--arch", choices=list(GGUF_ARCH))
    ap.add_argument("--vocab", help="vocab GGUF path or llama.cpp vocab name (llama-bpe, qwen2, llama-spm, ...)")
    ap.add_argument("--n-embd", type=int)
    ap.add_argument("--n-layer", type=int)
    ap.add_argument("--n-head", type=int)
    ap.add_argument("--n-head-kv", type=int)
    ap.add_argument("--n-ff", type=int)
    ap.add_argument("--head-dim", type=int, help="head size (key_length = value_length = rope dims; "
                    "qwen3/qwen3moe/gpt-oss; default n_embd/n_head)")
    ap.add_argument("--n-expert", type=int, help="experts per MoE layer (expert_count)")
    ap.add_argument("--n-expert-used", type=int, help="experts chosen per token (expert_used_count)")
    ap.add_argument("--n-ff-exp", type=int, help="expert FFN width (expert_feed_forward_length; "
                    "qwen3moe, gpt-oss)")
    ap.add_argument("--expert-type", choices=TYPES, help="type of the expert tensors (default: --type)")
    ap.add_argument("--router-type", choices=TYPES, help="ffn_gate_inp type (default F32)")
    ap.add_argument("--router-std", type=float, default=1.0, help="approx. std of the router logits")
    ap.add_argument("--expert-init", type=float, help="--init for the expert tensors (default: --init)")
    ap.add_argument("--sliding-window", type=int, help="gpt-oss attention.sliding_window (default 128)")
    ap.add_argument("--yarn-factor", type=float, help="gpt-oss rope.scaling.factor (default 32)")
    ap.add_argument("--yarn-orig-ctx", type=int, help="gpt-oss rope.scaling.original_context_length "
                    "(default 4096)")
    ap.add_argument("--ctx", type=int, help="context_length key")
    ap.add_argument("--rope-base", type=float)
    ap.add_argument("--eps", type=float, default=1e-5, help="rms norm epsilon")
    ap.add_argument("--type", choices=TYPES, help="type of 2-D weights (default F16)")
    ap.add_argument("--embd-type", choices=TYPES, help="token_embd type (default: --type)")
    ap.add_argument("--output-type", choices=TYPES, help="output.weight type when untied (default: --type)")
    ap.add_argument("--ffn-down-type", choices=TYPES, help="ffn_down type (default: --type)")
    tie = ap.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=None,
                     help="no output.weight (logits use token_embd)")
    tie.add_argument("--untied", dest="tied", action="store_false")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", type=float, default=1.0, help="linear weight std * sqrt(fan_in)")
    ap.add_argument("--logit-std", type=float, default=2.0, help="approx. std of output logits")
    ap.add_argument("--row-sigma", type=float, default=0.0, help="log-normal sigma of per-row embd scale")
    ap.add_argument("--name", default=None, help="general.name")
    ap.add_argument("--out", help="output .gguf path")
    ap.add_argument("--fast", action="store_true", help="quantised tensors as random quant bytes with "
                    "scales set for the same std (disk speed; for the multi-GB presets); F32/F16 "
                    "tensors as without it")
    ap.add_argument("--self-test", action="store_true", help="check the quantizers and exit")
    a = ap.parse_args(argv)

    if a.self_test:
        return self_test()
    if not a.out:
        ap.error("--out is required")

    cfg = dict(arch="llama", vocab="llama-bpe", n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128,
               ctx=2048, rope_base=10000.0, type="F16", embd_type=None, output_type=None,
               ffn_down_type=None, tied=True, head_dim=None, n_expert=None, n_expert_used=None,
               n_ff_exp=None, expert_type=None, router_type="F32", sliding_window=128, yarn_factor=32.0,
               yarn_orig_ctx=4096)
    if a.preset:
        cfg.update(PRESETS[a.preset])
    for k in list(cfg):
        v = getattr(a, k, None)
        if v is not None:
            cfg[k] = v
    for k in ("embd_type", "output_type", "ffn_down_type", "expert_type"):
        if cfg[k] is None:
            cfg[k] = cfg["type"]

    arch = cfg["arch"]
    n_embd, n_layer, n_head, n_kv, n_ff = (cfg[k] for k in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff"))
    assert n_head % n_kv == 0
    if arch in ("llama", "qwen2", "mixtral"):
        if cfg["head_dim"] not in (None, n_embd // n_head):
            ap.error(f"--head-dim is only for qwen3, qwen3moe and gpt-oss (llama.cpp's {arch} needs "
                     f"n_embd/n_head)")
    if cfg["head_dim"] is None:
        assert n_embd % n_head == 0
    hd = cfg["head_dim"] or n_embd // n_head
    moe = arch in MOE_ARCHS
    if moe:
        if not cfg["n_expert"] or not cfg["n_expert_used"] or cfg["n_expert_used"] > cfg["n_expert"]:
            ap.error(f"--arch {arch} needs --n-expert and --n-expert-used (<= n_expert)")
        n_expert, n_used = cfg["n_expert"], cfg["n_expert_used"]
        # mixtral (llama arch) sizes its experts by feed_forward_length
        if arch == "mixtral" and cfg["n_ff_exp"]:
            ap.error("mixtral sizes its experts by --n-ff (feed_forward_length); --n-ff-exp is not used")
        n_ff_exp = n_ff if arch == "mixtral" else (cfg["n_ff_exp"] or n_ff)
    elif cfg["n_expert"] or cfg["n_expert_used"] or cfg["n_ff_exp"]:
        ap.error(f"--arch {arch} has no experts")
    if arch == "gpt-oss" and cfg["tied"]:
        ap.error("gpt-oss needs an output.weight (llama.cpp requires it): use --untied")
    vocab_path = find_vocab(cfg["vocab"])

    w = GGUFWriter(a.out, GGUF_ARCH[arch])
    # the name depends only on the vocab file's base name, so "--vocab llama-bpe" and
    # "--vocab /any/dir/ggml-vocab-llama-bpe.gguf" give byte-identical files
    vname = os.path.basename(vocab_path)
    vname = vname[len("ggml-vocab-"):] if vname.startswith("ggml-vocab-") else vname
    vname = vname[:-len(".gguf")] if vname.endswith(".gguf") else vname
    w.add_name(a.name or f"smoke-tiny-{arch}-{vname}")
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(a.eps)
    w.add_rope_freq_base(cfg["rope_base"])
    w.add_rope_dimension_count(hd)
    # keys of the newer architectures (after the old ones, so llama/qwen2 files keep their bytes)
    if arch in ("qwen3", "qwen3moe", "gpt-oss"):
        w.add_key_length(hd)
        w.add_value_length(hd)
    if moe:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(n_used)
        if arch != "mixtral":
            w.add_expert_feed_forward_length(n_ff_exp)
    if arch == "gpt-oss":
        w.add_sliding_window(cfg["sliding_window"])
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(cfg["yarn_factor"])
        w.add_rope_scaling_orig_ctx_len(cfg["yarn_orig_ctx"])
    # general.file_type (llama_ftype), informational: names the dominant weight type
    ftype = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q6_K": 18, "MXFP4": 38,
             "Q4_K": 15 if cfg["ffn_down_type"] == "Q6_K" else 14}[cfg["type"]]
    if moe and cfg["expert_type"] == "MXFP4":
        ftype = 38  # LLAMA_FTYPE_MOSTLY_MXFP4_MOE
    w.add_file_type(ftype)
    n_vocab = copy_tokenizer(w, vocab_path)
    w.add_vocab_size(n_vocab)

    # tensor plan: (name, numpy shape (rows, ne0), type, kind)
    plan = []

    def T(name, shape, qt, kind):
        if len(shape) >= 2 and qt not in (QT.F32, QT.F16) and shape[-1] % gguf.GGML_QUANT_SIZES[qt][0]:
            print(f"make-tiny-gguf: {name}: ne0={shape[1]} not a multiple of the {qt.name} block, using F16",
                  file=sys.stderr)
            qt = QT.F16
        plan.append((name, shape, qt, kind))

    ty = TYPES[cfg["type"]]
    T("token_embd.weight", (n_vocab, n_embd), TYPES[cfg["embd_type"]], "embd")
    for i in range(n_layer):
        p = f"blk.{i}."
        T(p + "attn_norm.weight", (n_embd,), QT.F32, "norm")
        T(p + "attn_q.weight", (n_head * hd, n_embd), ty, "lin")
        T(p + "attn_k.weight", (n_kv * hd, n_embd), ty, "lin")
        T(p + "attn_v.weight", (n_kv * hd, n_embd), ty, "lin")
        if arch in ("qwen2", "gpt-oss"):
            T(p + "attn_q.bias", (n_head * hd,), QT.F32, "bias")
            T(p + "attn_k.bias", (n_kv * hd,), QT.F32, "bias")
            T(p + "attn_v.bias", (n_kv * hd,), QT.F32, "bias")
        if arch in ("qwen3", "qwen3moe"):
            T(p + "attn_q_norm.weight", (hd,), QT.F32, "norm")
            T(p + "attn_k_norm.weight", (hd,), QT.F32, "norm")
        T(p + "attn_output.weight", (n_embd, n_head * hd), ty, "lin")
        if arch == "gpt-oss":
            T(p + "attn_output.bias", (n_embd,), QT.F32, "bias")
            T(p + "attn_sinks.weight", (n_head,), QT.F32, "sink")
            T(p + "post_attention_norm.weight", (n_embd,), QT.F32, "norm")
        else:
            T(p + "ffn_norm.weight", (n_embd,), QT.F32, "norm")
        if not moe:
            T(p + "ffn_gate.weight", (n_ff, n_embd), ty, "lin")
            T(p + "ffn_up.weight", (n_ff, n_embd), ty, "lin")
            T(p + "ffn_down.weight", (n_embd, n_ff), TYPES[cfg["ffn_down_type"]], "lin")
            continue
        ety = TYPES[cfg["expert_type"]]
        dty = TYPES[a.ffn_down_type] if a.ffn_down_type else ety
        T(p + "ffn_gate_inp.weight", (n_expert, n_embd), TYPES[cfg["router_type"]], "router")
        if arch == "gpt-oss":
            T(p + "ffn_gate_inp.bias", (n_expert,), QT.F32, "bias")
        T(p + "ffn_gate_exps.weight", (n_expert, n_ff_exp, n_embd), ety, "exp")
        T(p + "ffn_up_exps.weight", (n_expert, n_ff_exp, n_embd), ety, "exp")
        T(p + "ffn_down_exps.weight", (n_expert, n_embd, n_ff_exp), dty, "exp")
        if arch == "gpt-oss":
            T(p + "ffn_gate_exps.bias", (n_expert, n_ff_exp), QT.F32, "bias")
            T(p + "ffn_up_exps.bias", (n_expert, n_ff_exp), QT.F32, "bias")
            T(p + "ffn_down_exps.bias", (n_expert, n_embd), QT.F32, "bias")
    T("output_norm.weight", (n_embd,), QT.F32, "norm")
    if not cfg["tied"]:
        T("output.weight", (n_vocab, n_embd), TYPES[cfg["output_type"]], "embd")

    for name, shape, qt, _ in plan:
        ne = list(reversed(shape))
        nb = nbytes_of(ne, qt)
        # GGUFWriter wants the numpy (byte) shape for raw types
        if qt == QT.F32:
            w.add_tensor_info(name, shape, np.dtype(np.float32), nb)
        elif qt == QT.F16:
            w.add_tensor_info(name, shape, np.dtype(np.float16), nb)
        else:
            blk, tsz = gguf.GGML_QUANT_SIZES[qt]
            bshape = (*shape[:-1], shape[-1] // blk * tsz)
            w.add_tensor_info(name, bshape, np.dtype(np.uint8), nb, raw_dtype=qt)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    w.write_padding(fout, fout.tell())

    CHUNK_ELEMS = 1 << 22
    for name, shape, qt, kind in plan:
        rng = rng_for(a.seed, name)
        start = fout.tell()
        if kind == "norm":
            data = (1.0 + 0.1 * rng.standard_normal(shape[0], dtype=np.float32)).astype(np.float32)
            data.tofile(fout)
        elif kind == "bias":
            data = (0.5 * rng.standard_normal(int(np.prod(shape)), dtype=np.float32)).astype(np.float32)
            data.tofile(fout)
        elif kind == "sink":
            data = rng.standard_normal(shape[0], dtype=np.float32).astype(np.float32)
            data.tofile(fout)
        else:
            # 3-D expert tensors (n_expert, rows, ne0) are generated as n_expert*rows rows
            rows, ne0 = int(np.prod(shape[:-1])), shape[-1]
            if kind == "embd":
                std = a.logit_std / np.sqrt(n_embd)
                rowscale = (np.exp(a.row_sigma * rng.standard_normal(rows, dtype=np.float32)).astype(np.float32)
                            if a.row_sigma > 0 else None)
            elif kind == "router":
                std = a.router_std / np.sqrt(ne0)
                rowscale = None
            elif kind == "exp" and a.expert_init is not None:
                std = a.expert_init / np.sqrt(ne0)
                rowscale = None
            else:
                std = a.init / np.sqrt(ne0)
                rowscale = None
            fast = a.fast and qt not in (QT.F32, QT.F16) and rowscale is None
            step = max(1, (CHUNK_ELEMS * (16 if fast else 1)) // ne0)
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                if fast:
                    fast_blocks(rng, (r1 - r0) * ne0, qt, float(std)).tofile(fout)
                    continue
                x = rng.standard_normal((r1 - r0, ne0), dtype=np.float32)
                x *= np.float32(std)
                if rowscale is not None:
                    x *= rowscale[r0:r1, None]
                quantize_rows(x, qt).tofile(fout)
        written = fout.tell() - start
        exp = nbytes_of(list(reversed(shape)), qt)
        assert written == exp, (name, written, exp)
        w.write_padding(fout, written)
    fout.flush()
    w.close()

    h = hashlib.sha256()
    with open(a.out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    print(f"{a.out} {os.path.getsize(a.out)} bytes sha256 {h.hexdigest()} n_vocab {n_vocab}", file=sys.stderr)
    return 0


def self_test():
    rng = np.random.default_rng(0)
    for qt, f in ((QT.Q4_K, quant_q4_k), (QT.Q6_K, quant_q6_k)):
        x = rng.standard_normal((64, 256), dtype=np.float32) * np.exp(rng.standard_normal((64, 1))).astype(np.float32)
        x[3] = 0.0          # all-zero block
        x[4] = np.abs(x[4])  # all-positive block
        q = f(x)
        y = gguf.quants.dequantize(q.reshape(-1), qt).reshape(x.shape)
        err = np.abs(y - x).max(axis=1) / np.maximum(np.abs(x).max(axis=1), 1e-12)
        print(f"{qt.name}: max rel err per block {err.max():.4f}")
        assert err.max() < (0.12 if qt == QT.Q4_K else 0.05), err.max()
    for qt in (QT.Q8_0, QT.Q4_0):
        x = rng.standard_normal((8, 256), dtype=np.float32)
        y = gguf.quants.dequantize(quantize_rows(x, qt).reshape(-1), qt).reshape(x.shape)
        print(f"{qt.name}: max abs err {np.abs(y - x).max():.4f}")
    for qt in (QT.Q4_K, QT.Q6_K, QT.Q8_0, QT.Q4_0, QT.MXFP4):
        std = 0.02
        y = gguf.quants.dequantize(fast_blocks(np.random.default_rng(1), 1 << 16, qt, std).reshape(-1), qt)
        print(f"--fast {qt.name}: std {y.std():.4f} (want ~{std}), mean {y.mean():+.5f}, finite {np.isfinite(y).all()}")
        assert np.isfinite(y).all() and 0.5 * std < y.std() < 2 * std and abs(y.mean()) < 0.15 * std
    print("self-test ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
