#!/usr/bin/env python3
"""make-qtype-fixtures.py - reference data for tests/unit/qtype.

For each tensor type it writes tests/fixtures/qtype/<type>.bin holding a few
rows of raw quantised blocks, the `gguf` package's dequantisation of them, an
activation vector, that activation quantised the way llama.cpp's x86 CPU
backend does it (implemented here in numpy, independently of the C code),
and two float64 reference dot products per row.

    python3 scripts/make-qtype-fixtures.py [outdir]   # default tests/fixtures/qtype

Weights: rows 0-1 come from gguf.quants.quantize() where the package can
quantise the type; the other rows (all rows for the K-quants, which gguf can
only dequantise) are random raw blocks: random bytes everywhere, with the
fp16 scale fields overwritten by sane finite values (for MXFP4 the E8M0
exponent byte by one in 115..130, scales 2^-13..2^2), so every bit pattern
of the quant fields is exercised.  Deterministic (fixed seed); needs numpy
and gguf (pip install gguf; MXFP4 needs gguf >= 0.17.1), nothing else.

One more file, mxfp4_scales.bin, is for decoding only: 256 MXFP4 blocks
(8 rows of 1024 values), block k with exponent byte e = k, so every E8M0
value 0..255 meets all 16 codes in both nibble positions.  Large exponents
decode to +-inf (as in ggml), so its dot fields (kept for the common file
layout, with an activation made as for the other files) are inf/NaN and
are not checked.

File layout (little-endian):
    char  magic[8]      "SMKQTF1\\0"
    u32   type          ggml type id of the weights
    u32   rows, n       rows x n values
    u32   row_bytes     bytes per raw row
    u32   act_type      ggml id of the prepared activation (0 F32, 8 Q8_0,
                        9 Q8_1, 15 Q8_K)
    u32   act_bytes     bytes of the quantised activation (0 for F32)
    u8    raw[rows*row_bytes]
    f32   deq[rows*n]   gguf.quants.dequantize(raw)
    f32   x[n]          the activation
    u8    act[act_bytes] x quantised to act_type (ggml block layout)
    f64   dot_q[rows]   sum(deq[r] * dequantised act), in float64; for Q8_1
                        activations the per-block min term uses the block's
                        stored s (as ggml does) instead of d*sum(q)
    f64   dot_f[rows]   sum(deq[r] * x), in float64 (for float types = dot_q)
"""
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

SEED = 20251126
ROWS = 4
N = 1024  # four K-quant super-blocks / 32 Q8_0 blocks

# (type, activation type, byte offsets of fp16 scale fields in one block)
TYPES = [
    (T.F32, T.F32, None),
    (T.F16, T.F32, None),
    (T.BF16, T.F32, None),
    (T.Q4_0, T.Q8_0, [0]),
    (T.Q4_1, T.Q8_1, [0, 2]),
    (T.Q5_0, T.Q8_0, [0]),
    (T.Q5_1, T.Q8_1, [0, 2]),
    (T.Q8_0, T.Q8_0, [0]),
    (T.MXFP4, T.Q8_0, "e8m0"),
    (T.Q2_K, T.Q8_K, [80, 82]),
    (T.Q3_K, T.Q8_K, [108]),
    (T.Q4_K, T.Q8_K, [0, 2]),
    (T.Q5_K, T.Q8_K, [0, 2]),
    (T.Q6_K, T.Q8_K, [208]),
]


def weights_float(rng, rows, n):
    """Weight-like floats: mostly small normals, some outliers, a zero run,
    tiny values (fp16/bf16 subnormals) and values near the fp16 limit."""
    w = rng.normal(0.0, 0.05, size=(rows, n)).astype(np.float32)
    w[:, rng.integers(0, n, size=8)] *= 40.0
    w[0, 32:64] = 0.0
    w[1, 64:72] = np.array([1e-7, -3e-6, 6e-8, 2e-5, -1e-5, 5.9e-8, 0.0, -0.0], np.float32)
    w[1, 72:76] = np.array([60000.0, -65504.0, 0.5, -2.0], np.float32)
    return w


def random_blocks(rng, qtype, scale_offsets, nrows, n):
    """Random raw blocks with sane fp16 scales (sign random, magnitude
    log-uniform in [1e-4, 1e-1]), or for "e8m0" (MXFP4) an exponent byte
    in 115..130 (scale 2^(e-128) in 2^-13..2^2)."""
    blk, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = n // blk
    raw = rng.integers(0, 256, size=(nrows, nb, size), dtype=np.uint8)
    if scale_offsets == "e8m0":
        raw[:, :, 0] = rng.integers(115, 131, size=(nrows, nb), dtype=np.uint8)
        return raw.reshape(nrows, nb * size)
    for off in scale_offsets:
        mag = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), size=(nrows, nb)))
        sign = np.where(rng.random((nrows, nb)) < 0.2, -1.0, 1.0)
        h = (mag * sign).astype(np.float16).view(np.uint8).reshape(nrows, nb, 2)
        raw[:, :, off:off + 2] = h
    return raw.reshape(nrows, nb * size)


def activation(rng, n):
    """An activation row with the cases the quantisers must get right."""
    x = rng.normal(0.0, 1.0, size=n).astype(np.float32)
    x[rng.integers(0, 256, size=4)] *= 20.0          # outliers
    x[256:512] = 0.0                                  # all-zero blocks
    # Super-block 2: signed max -127 (iscale = 1 for Q8_K) and, in its first
    # 32 values, amax 127 (id = 1 for Q8_0): exact .5 ties, where
    # round-half-even and roundf differ.
    x[512:768] = rng.normal(0.0, 3.0, size=256).astype(np.float32)
    x[512] = -127.0
    x[513:544] = (rng.integers(-100, 100, size=31) + 0.5).astype(np.float32)
    # The next 32 values: a block where ggml's reference id = 1/d and the x86
    # code's id = 127/amax differ in the last bit, with values whose rounded
    # quants differ between the two (so the fixture pins the x86 choice).
    x[544:576] = crafted_q8_0_block(rng)
    # Super-block 3: tiny values whose largest magnitude occurs twice, +0.05
    # first: Q8_K must take the first (positive) one as its signed max.
    x[768:1024] = (rng.normal(0.0, 1e-3, size=256)).astype(np.float32)
    x[800] = 0.05
    x[900] = -0.05
    return x


def crafted_q8_0_block(rng):
    f32 = np.float32
    while True:
        amax = f32(rng.uniform(0.5, 8.0))
        id_x86 = f32(127.0) / amax
        id_ref = f32(1.0) / (amax / f32(127.0))
        if id_x86 != id_ref:
            break
    vals = []
    for k in range(1, 127):
        for cand in np.nextafter(f32((k + 0.5) / id_x86), [f32(-1e9), f32(0), f32(1e9)]).astype(np.float32):
            cand = f32(cand)
            if abs(cand) < amax and np.rint(cand * id_x86) != np.rint(cand * id_ref):
                vals.append(cand)
                break
        if len(vals) == 31:
            break
    assert vals, "no distinguishing value found"
    b = np.resize(np.array(vals, np.float32), 32)
    b[0] = amax
    b[1::2] *= -1
    b[0] = amax
    return b


def quantize_q8_0_x86(x):
    """llama.cpp ggml-cpu/arch/x86/quants.c quantize_row_q8_0 (AVX path):
    d = amax/127 (stored fp16), id = 127/amax, q = round-half-even(x*id)."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.rint(b * idv[:, None]).clip(-128, 127).astype(np.int8)
    d16 = d.astype(np.float16)
    blocks = np.concatenate([d16.view(np.uint8).reshape(-1, 2), q.view(np.uint8)], axis=1)
    deq = q.astype(np.float64) * d16.astype(np.float64)[:, None]
    return blocks.reshape(-1), deq.reshape(-1)


def quantize_q8_1_x86(x):
    """llama.cpp x86 quantize_row_q8_1: Q8_0 as above, plus
    s = fp16(d * sum(q)) with the unrounded float32 d.  Block: d, s, qs[32].
    Returns (bytes, dequantised values, per-block (d16, s16) as float64)."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.rint(b * idv[:, None]).clip(-128, 127).astype(np.int8)
    qsum = q.astype(np.int32).sum(axis=1).astype(np.float32)
    s16 = (d * qsum).astype(np.float32).astype(np.float16)
    d16 = d.astype(np.float16)
    blocks = np.concatenate([d16.view(np.uint8).reshape(-1, 2), s16.view(np.uint8).reshape(-1, 2),
                             q.view(np.uint8)], axis=1)
    deq = q.astype(np.float64) * d16.astype(np.float64)[:, None]
    return blocks.reshape(-1), deq.reshape(-1), d16.astype(np.float64), s16.astype(np.float64)


def quantize_q8_K(x):
    """ggml-quants.c quantize_row_q8_K_ref (what x86 builds run):
    max = signed value of largest |x| (first on ties), iscale = -127/max,
    q = min(127, nearest_int(iscale*x)) (round-half-even), d = 1/iscale,
    bsums = sums of 16-value groups.  Zero blocks: d = 0, q = 0, bsums = 0."""
    out = []
    deq = []
    for b in x.reshape(-1, 256).astype(np.float32):
        ax = np.abs(b)
        j = int(np.argmax(ax))  # first index of the maximum
        if ax[j] == 0:
            d = np.float32(0.0)
            q = np.zeros(256, np.int8)
        else:
            iscale = np.float32(-127.0) / b[j]
            q = np.minimum(127, np.rint(iscale * b)).astype(np.int8)
            d = np.float32(1.0) / iscale
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype("<i2")
        out.append(np.array([d], "<f4").tobytes() + q.tobytes() + bsums.tobytes())
        deq.append(q.astype(np.float64) * np.float64(d))
    return np.frombuffer(b"".join(out), np.uint8), np.concatenate(deq)


def mxfp4_every_scale(rng):
    """8 rows of 32 MXFP4 blocks: block k (0..255) has e = k and, in both
    nibble positions, each of the 16 codes once (random orders)."""
    raw = np.zeros((256, 17), np.uint8)
    raw[:, 0] = np.arange(256)
    for k in range(256):
        raw[k, 1:] = rng.permutation(16).astype(np.uint8) | (rng.permutation(16).astype(np.uint8) << 4)
    return raw.reshape(8, 32 * 17)


def make(qtype, act_type, scale_offsets, rng, raw_override=None):
    blk, size = gguf.GGML_QUANT_SIZES[qtype]
    row_bytes = N // blk * size
    rows = ROWS if raw_override is None else raw_override.shape[0]
    wf = weights_float(rng, ROWS, N)
    if raw_override is not None:
        raw = raw_override
    elif qtype == T.F32:
        raw = wf.view(np.uint8).reshape(ROWS, row_bytes)
    elif qtype == T.F16:
        raw = wf.astype(np.float16).view(np.uint8).reshape(ROWS, row_bytes)
    else:
        try:
            raw = np.asarray(quantize(wf, qtype)).reshape(ROWS, row_bytes)
            how = "quantize"
        except NotImplementedError:
            raw = None
            how = "random"
        rnd = random_blocks(rng, qtype, scale_offsets, ROWS, N) if scale_offsets else None
        if raw is None:
            raw = rnd
        elif rnd is not None:
            raw = raw.copy()
            raw[2:] = rnd[2:]
        print(f"  {qtype.name}: rows from {how}" + (", rows 2-3 random" if how == "quantize" and rnd is not None else ""))
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    with np.errstate(over="ignore"):  # mxfp4_scales: large e gives inf, as ggml
        deq = np.asarray(dequantize(raw, qtype), dtype=np.float32).reshape(rows, N)

    x = activation(rng, N)
    if act_type == T.F32:
        act = np.zeros(0, np.uint8)
        xa = x.astype(np.float64)
    elif act_type == T.Q8_0:
        act, xa = quantize_q8_0_x86(x)
    elif act_type == T.Q8_1:
        act, xa, da16, s16 = quantize_q8_1_x86(x)
    else:
        act, xa = quantize_q8_K(x)

    d64 = deq.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        dot_q = (d64 * xa[None, :]).sum(axis=1)
    if act_type == T.Q8_1:
        # ggml's min term is m * s, not m * d16 * sum(q): swap it in.  m is
        # the fp16 at byte 2 of each Q4_1 / Q5_1 block.
        m = raw.reshape(ROWS, N // 32, size)[:, :, 2:4].copy().view(np.float16)
        m = m.reshape(ROWS, N // 32).astype(np.float64)
        asum = xa.reshape(-1, 32).sum(axis=1)  # = d16 * sum(q)
        dot_q += (m * (s16 - asum)[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        dot_f = (d64 * x.astype(np.float64)[None, :]).sum(axis=1)

    hdr = b"SMKQTF1\0" + struct.pack("<6I", int(qtype), rows, N, row_bytes, int(act_type), act.size)
    return b"".join([
        hdr,
        raw.tobytes(),
        deq.astype("<f4").tobytes(),
        x.astype("<f4").tobytes(),
        act.tobytes(),
        dot_q.astype("<f8").tobytes(),
        dot_f.astype("<f8").tobytes(),
    ])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures", "qtype")
    os.makedirs(outdir, exist_ok=True)
    from importlib.metadata import version
    print(f"gguf {version('gguf')}, numpy {np.__version__}")
    for qtype, act_type, offs in TYPES:
        # one generator per type, so adding a type does not change the others
        rng = np.random.default_rng([SEED, int(qtype)])
        data = make(qtype, act_type, offs, rng)
        path = os.path.join(outdir, qtype.name.lower() + ".bin")
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)")
        if qtype == T.MXFP4:
            # its own generators: mxfp4.bin stays as it is
            rng = np.random.default_rng([SEED, int(qtype), 1])
            raw = mxfp4_every_scale(rng)
            data = make(qtype, act_type, offs, np.random.default_rng([SEED, int(qtype)]), raw)
            path = os.path.join(outdir, "mxfp4_scales.bin")
            with open(path, "wb") as f:
                f.write(data)
            print(f"wrote {path} ({len(data)} bytes, every E8M0 exponent)")


if __name__ == "__main__":
    main()
