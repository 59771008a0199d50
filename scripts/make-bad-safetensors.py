#!/usr/bin/env python3
"""make-bad-safetensors.py - generate the safetensors reader's test fixtures.

Writes, under tests/fixtures/safetensors/ (deterministic; the directory is
emptied first, so run it again after any change here):
  valid/*.safetensors     files that must open: every dtype, scalars, tensors
                          with a 0 in their shape, an 8-dim tensor, UTF-8
                          names and metadata, header order != data order,
                          a pretty-printed unpadded header, "{}".
  bad/*.safetensors       one file per rejection class.
  sets/<dir>/             model directories that must open: one file,
                          three shards with an index, both (the file wins).
  bad-sets/<dir>/         model directories that must be refused.
  manifest.json           what the reader must report, computed here from
                          the values written (not by parsing our output):
    "valid":    per file: size, data_offset, metadata, and per tensor name,
                dtype, shape, begin/end (data_offsets), file_offset,
                nbytes, n_elems, fnv1a32 of its bytes; "order" = names
                sorted by (begin, end, name bytes).
    "bad":      per file: errno name and substrings the message must hold
                (the tensor or header field, and the reason), and whether
                the upstream crate also refuses the file ("upstream").
    "sets":     per directory: shard file names in order and every tensor
                with its shard index.
    "bad_sets": per directory: errno name and message substrings.

Only numpy, json and struct are needed: files are written by hand.  When the
`safetensors` package is importable (pip install safetensors; scripts/setup
does not install it), the generator cross-checks itself against it:
  - every valid file is read with safetensors.deserialize and must hold
    exactly the dtypes, shapes and bytes the manifest says;
  - the numpy-representable tensors of valid/multi are also written with
    safetensors.numpy.save and must come back with the same dtype names,
    shapes and bytes (so our dtype naming is the writer's);
  - every bad file upstream is expected to refuse must be refused, and the
    ones we refuse on purpose while upstream accepts them (duplicate keys,
    unknown fields, leading space, > 8 dims, empty name) must be accepted.

Usage: scripts/make-bad-safetensors.py [--out DIR]
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

MAX_HEADER = 100_000_000

# dtype name -> (bytes per element, numpy dtype or None if numpy has none)
DTYPES = {
    "F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, None),
    "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
    "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"),
    "BOOL": (1, "?"), "F8_E4M3": (1, None), "F8_E5M2": (1, None),
}


def fnv1a32(data):
    h = 0x811C9DC5
    for c in data:
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


def n_elems(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def values(dtype, shape, seed):
    """Deterministic little-endian bytes for a tensor, through numpy where
    numpy has the type (so the bytes are what a numpy writer would store)."""
    rng = np.random.RandomState(seed)
    n = n_elems(shape)
    size, npt = DTYPES[dtype]
    if dtype == "BOOL":
        return rng.randint(0, 2, size=n).astype("?").tobytes()
    if npt is None:
        return rng.randint(0, 256, size=n * size).astype("u1").tobytes()
    if npt[-2] == "f":
        a = (rng.standard_normal(n) * 10).astype(npt)
    else:
        info = np.iinfo(np.dtype(npt))
        a = rng.randint(max(info.min, -2**31), min(info.max, 2**31 - 1), size=n,
                        dtype=np.int64).astype(npt)
    b = a.reshape(shape).tobytes()
    assert len(b) == n * size
    return b


# ---------------------------------------------------------------- writer ---

def file_bytes(header, data=b"", hlen=None, align=8, raw_header=None):
    """header: dict (dumped compactly, insertion order kept) or raw bytes.
    The header is padded with spaces so that the data starts at a multiple
    of align (align=1: no padding), as the Python writer does with 8."""
    if raw_header is None:
        raw_header = json.dumps(header, separators=(",", ":"),
                                ensure_ascii=False).encode("utf-8")
    raw_header += b" " * ((-(8 + len(raw_header))) % align)
    n = len(raw_header) if hlen is None else hlen
    return struct.pack("<Q", n) + raw_header + data


def layout(tensors, header_order=None, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] in data order -> (header dict,
    data bytes, [(name, dtype, shape, begin, end, bytes)])."""
    data, placed = b"", []
    for name, dt, shape, b in tensors:
        placed.append((name, dt, shape, len(data), len(data) + len(b), b))
        data += b
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    order = header_order or [p[0] for p in placed]
    by_name = {p[0]: p for p in placed}
    for name in order:
        _, dt, shape, b0, e0, _ = by_name[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [b0, e0]}
    return header, data, placed


def describe(blob, placed, metadata):
    hlen = struct.unpack("<Q", blob[:8])[0]
    doff = 8 + hlen
    ts = []
    for name, dt, shape, b0, e0, b in placed:
        assert blob[doff + b0:doff + e0] == b
        ts.append({"name": name, "dtype": dt, "shape": list(shape), "begin": b0,
                   "end": e0, "file_offset": doff + b0, "nbytes": e0 - b0,
                   "n_elems": n_elems(shape), "fnv": fnv1a32(b)})
    order = sorted(ts, key=lambda t: (t["begin"], t["end"], t["name"].encode("utf-8")))
    return {"size": len(blob), "data_offset": doff, "metadata": metadata or {},
            "tensors": ts, "order": [t["name"] for t in order]}


def write(path, blob):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(blob)


# ----------------------------------------------------------------- valid ---

def multi_tensors():
    """Every dtype, in the Python writer's data order (largest element first),
    with scalars, zero-element tensors on tiling boundaries and 8 dims."""
    specs = [
        ("zero.start", "F32", [0, 3]),             # begin == end == 0
        ("w.f64", "F64", [3, 2]),
        ("w.i64", "I64", [2]),
        ("w.u64", "U64", []),                      # scalar
        ("model.layers.0.\u00fcn\u00efc\u00f8d\u00e9.weight", "F32", [4, 5]),
        ("w.f32.8d", "F32", [1, 2, 1, 2, 1, 1, 2, 1]),
        ("w.i32", "I32", [3]),
        ("w.u32", "U32", [2, 2]),
        ("zero.middle", "I32", [4, 0, 2]),         # between two tensors
        ("w.bf16", "BF16", [3, 4]),
        ("w.f16", "F16", [5]),
        ("w.i16", "I16", [3]),
        ("w.u16", "U16", [1, 3]),
        ("w.i8", "I8", [7]),
        ("w.u8", "U8", [2, 3]),
        ("w.bool", "BOOL", [9]),
        ("w.f8e4m3", "F8_E4M3", [4]),
        ("w.f8e5m2", "F8_E5M2", [2, 2]),
        ("scalar.u8", "U8", []),
        ("zero.end", "BF16", [0]),                 # at the end of the data
    ]
    return [(n, dt, sh, values(dt, sh, 100 + i)) for i, (n, dt, sh) in enumerate(specs)]


def make_valid(out, man):
    meta = {"format": "pt", "note": "h\u00e9llo \u2713", "empty": ""}
    ts = multi_tensors()
    # Header order: reversed data order, so that sorting by offset matters.
    header, data, placed = layout(ts, header_order=[t[0] for t in reversed(ts)],
                                  metadata=meta)
    blob = file_bytes(header, data)
    write(os.path.join(out, "valid/multi.safetensors"), blob)
    man["valid"].append(dict(file="valid/multi.safetensors", **describe(blob, placed, meta)))

    # Pretty-printed (newlines, indentation), unpadded: tensors at odd bytes.
    ts2 = [("a", "F32", [2, 2], values("F32", [2, 2], 7)),
           ("b", "U8", [3], values("U8", [3], 8)),
           ("c", "F16", [3], values("F16", [3], 9))]
    header, data, placed = layout(ts2)
    raw = json.dumps(header, indent=2).encode() + b"\n  "
    blob = file_bytes(None, data, align=1, raw_header=raw)
    assert (8 + len(raw)) % 2 == 1, "want an odd data start"
    write(os.path.join(out, "valid/pretty.safetensors"), blob)
    man["valid"].append(dict(file="valid/pretty.safetensors", **describe(blob, placed, None)))

    blob = file_bytes(None, raw_header=b"{}", align=1)
    write(os.path.join(out, "valid/empty.safetensors"), blob)
    man["valid"].append(dict(file="valid/empty.safetensors", **describe(blob, [], None)))

    meta = {"format": "np"}
    blob = file_bytes({"__metadata__": meta})
    write(os.path.join(out, "valid/meta-only.safetensors"), blob)
    man["valid"].append(dict(file="valid/meta-only.safetensors", **describe(blob, [], meta)))

    # Only zero-element tensors: an empty data section.
    ts3 = [("e1", "F32", [0], b""), ("e0", "U8", [2, 0], b"")]
    header, data, placed = layout(ts3)
    blob = file_bytes(header, data)
    write(os.path.join(out, "valid/all-empty.safetensors"), blob)
    man["valid"].append(dict(file="valid/all-empty.safetensors", **describe(blob, placed, None)))


# ------------------------------------------------------------------- bad ---

def base_header(**over):
    """a: F32 [2,3] at [0,24); b: U8 [5] at [24,29)."""
    h = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "b": {"dtype": "U8", "shape": [5], "data_offsets": [24, 29]}}
    for k, v in over.items():
        if v is None:
            del h[k]
        else:
            h[k] = v
    return h


BASE_DATA = bytes(range(29))


def entry(dtype="F32", shape=(2, 3), offs=(0, 24), **extra):
    """A tensor entry; None leaves a field out, any other value is written
    as is (so shape=6 writes a bad shape); extra adds fields."""
    e = {}
    for k, v in (("dtype", dtype), ("shape", shape), ("data_offsets", offs)):
        if v is not None:
            e[k] = list(v) if isinstance(v, tuple) else v
    e.update(extra)
    return e


def bad_cases():
    """(name, bytes, errno, substrings, upstream refuses too?)"""
    ok_blob = file_bytes(base_header(), BASE_DATA)
    H = lambda raw, data=b"": file_bytes(None, data, raw_header=raw, align=1)
    ent_b = '"b":{"dtype":"U8","shape":[5],"data_offsets":[24,29]}'
    ent_a = '"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}'
    c = []

    def add(name, blob, has, code="EINVAL", upstream=True):
        c.append((name, blob, code, has, upstream))

    # -- header length
    add("empty", b"", ["header length", "empty"])
    add("short-5", ok_blob[:5], ["header length", "5 bytes", "too short"])
    add("short-7", ok_blob[:7], ["header length", "7 bytes", "too short"])
    add("hlen-zero", struct.pack("<Q", 0) + b"{}", ["header length", "is 0"])
    hl = len(ok_blob) - 8 - len(BASE_DATA)
    add("hlen-past-end", file_bytes(base_header(), BASE_DATA, hlen=hl + len(BASE_DATA) + 1),
        ["header length", "%d runs past end of file" % (hl + len(BASE_DATA) + 1)])
    add("hlen-over-limit", file_bytes(base_header(), BASE_DATA, hlen=MAX_HEADER + 1),
        ["header length", "%d exceeds the limit of %d" % (MAX_HEADER + 1, MAX_HEADER)])
    add("hlen-u64-max", file_bytes(base_header(), BASE_DATA, hlen=2**64 - 1),
        ["header length", "%d exceeds the limit" % (2**64 - 1)])
    # -- header bytes
    add("not-object", H(b"[1,2]"), ["header", "does not begin with '{'", "0x5b"])
    add("leading-space", H(b" {}"), ["header", "does not begin with '{'", "0x20"],
        upstream=False)
    add("utf8-invalid-byte", H(b'{"__metadata__":{"k":"\xff"}}'),
        ["header", "not valid UTF-8", "header byte 22", "0xff"])
    add("utf8-overlong", H(b'{"__metadata__":{"k":"\xc0\xaf"}}'),
        ["header", "not valid UTF-8", "header byte 22"])
    add("utf8-surrogate", H(b'{"__metadata__":{"k":"\xed\xa0\x80"}}'),
        ["header", "not valid UTF-8", "header byte 22"])
    add("utf8-cut", H(b'{"__metadata__":{"k":"\xe2\x82'), ["header", "not valid UTF-8"])
    add("json-cut", H(b'{"a":'), ["header", "not valid JSON"])
    add("json-trailing", H(b'{} x'), ["header", "not valid JSON"])
    add("json-two-objects", H(b'{}{}'), ["header", "not valid JSON"])
    add("json-nul-pad", H(b'{}\x00\x00'), ["header", "not valid JSON"])
    add("json-bare-key", H(b'{a:1}'), ["header", "not valid JSON"])
    add("json-huge-int", H(('{"a":{"dtype":"U8","shape":[%d],"data_offsets":[0,1]}}'
                            % (2**64 - 1)).encode(), b"x"),
        ["header", "not valid JSON"])
    add("dup-tensor", H(("{%s,%s,%s}" % (ent_a, ent_b, ent_a)).encode(), BASE_DATA),
        ["header", "not valid JSON", "duplicate"], upstream=False)
    add("dup-metadata-key", H(('{"__metadata__":{"k":"1","k":"2"},%s,%s}'
                               % (ent_a, ent_b)).encode(), BASE_DATA),
        ["header", "duplicate"], upstream=False)
    add("dup-metadata", H(('{"__metadata__":{},%s,%s,"__metadata__":{}}'
                           % (ent_a, ent_b)).encode(), BASE_DATA),
        ["header", "duplicate"])   # serde: duplicate field `__metadata__`
    # -- __metadata__
    B = lambda h, data=BASE_DATA: file_bytes(h, data)
    add("meta-string", B(dict(base_header(), __metadata__="pt")),
        ["__metadata__", "is a string, not an object of strings"])
    add("meta-array", B(dict(base_header(), __metadata__=["a"])),
        ["__metadata__", "is an array"])
    add("meta-int-value", B(dict(base_header(), __metadata__={"format": "pt", "n": 1})),
        ["__metadata__", "key 'n'", "is an integer, not a string"])
    add("meta-null-value", B(dict(base_header(), __metadata__={"k": None})),
        ["__metadata__", "key 'k'", "null, not a string"])
    add("meta-nested", B(dict(base_header(), __metadata__={"k": {"x": "y"}})),
        ["__metadata__", "key 'k'", "an object, not a string"])
    # -- tensor entries
    add("entry-array", B(base_header(a=[0, 24])), ["tensor 'a'", "entry is an array, not an object"])
    add("entry-string", B(base_header(a="F32")), ["tensor 'a'", "entry is a string"])
    add("missing-dtype", B(base_header(a=entry(dtype=None))), ["tensor 'a'", "missing field 'dtype'"])
    add("missing-shape", B(base_header(a=entry(shape=None))), ["tensor 'a'", "missing field 'shape'"])
    add("missing-offsets", B(base_header(a=entry(offs=None))),
        ["tensor 'a'", "missing field 'data_offsets'"])
    add("extra-field", B(base_header(a=entry(offsets=[0, 24]))),
        ["tensor 'a'", "unknown field 'offsets'"], upstream=False)
    add("empty-name", B(base_header(**{"": entry("U8", [0], [29, 29])})),
        ["tensor ''", "empty tensor name"], upstream=False)
    add("name-escape", B(base_header(**{"a\x1b[31m": entry(dtype=None)})),
        ["tensor 'a?[31m'", "missing field 'dtype'"])
    # -- dtype
    add("dtype-int", B(base_header(a=entry(dtype=4))), ["tensor 'a'", "dtype is an integer, not a string"])
    add("dtype-unknown", B(base_header(a=entry(dtype="F33"))), ["tensor 'a'", "unknown dtype 'F33'"])
    add("dtype-lowercase", B(base_header(a=entry(dtype="f32"))), ["tensor 'a'", "unknown dtype 'f32'"])
    add("dtype-numpy-name", B(base_header(a=entry(dtype="float32"))),
        ["tensor 'a'", "unknown dtype 'float32'"])
    add("dtype-c64", B(base_header(a=entry(dtype="C64", shape=[3]))),
        ["tensor 'a'", "dtype 'C64'", "does not support"], upstream=False)
    add("dtype-f4", B(base_header(a=entry(dtype="F4", shape=[48]))),
        ["tensor 'a'", "dtype 'F4'", "does not support"], upstream=False)
    # -- shape
    add("shape-int", B(base_header(a=entry(shape=6))), ["tensor 'a'", "shape is an integer, not an array"])
    add("shape-string", B(base_header(a=entry(shape="2,3"))), ["tensor 'a'", "shape is a string"])
    add("shape-float", B(base_header(a=entry(shape=[2.0, 3]))),
        ["tensor 'a'", "shape[0] is a number with a fraction or exponent"])
    add("shape-exp", H(('{"a":{"dtype":"F32","shape":[2,3e0],"data_offsets":[0,24]},%s}'
                        % ent_b).encode(), BASE_DATA),
        ["tensor 'a'", "shape[1] is a number with a fraction or exponent"])
    add("shape-negative", B(base_header(a=entry(shape=[-2, -3]))), ["tensor 'a'", "shape[0] is -2, negative"])
    add("shape-elem-string", B(base_header(a=entry(shape=[2, "3"]))), ["tensor 'a'", "shape[1] is a string"])
    add("shape-null", B(base_header(a=entry(shape=[2, None]))), ["tensor 'a'", "shape[1] is null"])
    add("shape-9-dims", B(base_header(a=entry(shape=[1, 1, 1, 2, 1, 1, 3, 1, 1]))),
        ["tensor 'a'", "9 dimensions", "at most 8"], upstream=False)
    add("shape-elem-overflow", B(base_header(a=entry(shape=[2**32, 2**32, 2, 0]))),
        ["tensor 'a'", "element count overflows", "shape[1]"])
    add("shape-byte-overflow", B(base_header(a=entry(shape=[2**62]))),
        ["tensor 'a'", "byte size overflows", "4611686018427387904 elements of F32"])
    # -- data_offsets
    add("offsets-int", B(base_header(a=entry(offs=0))),
        ["tensor 'a'", "data_offsets is an integer"])
    add("offsets-one", B(base_header(a=entry(offs=[24]))), ["tensor 'a'", "data_offsets holds 1 values, not two"])
    add("offsets-three", B(base_header(a=entry(offs=[0, 24, 24]))), ["tensor 'a'", "data_offsets holds 3 values, not two"])
    add("offsets-float", B(base_header(a=entry(offs=[0, 24.0]))),
        ["tensor 'a'", "data_offsets[1] (end) is a number with a fraction"])
    add("offsets-string", B(base_header(a=entry(offs=["0", 24]))),
        ["tensor 'a'", "data_offsets[0] (begin) is a string"])
    add("offsets-negative", B(base_header(a=entry(offs=[-8, 16]))),
        ["tensor 'a'", "data_offsets[0] (begin) is -8, negative"])
    add("offsets-reversed", B(base_header(a=entry(offs=[24, 0]))),
        ["tensor 'a'", "begin 24 is after end 0"])
    add("offsets-beyond", B(base_header(a=entry("U32", [250], [0, 1000]))),
        ["tensor 'a'", "end 1000 is beyond the data section (29 bytes)"])
    add("offsets-size-short", B(base_header(a=entry(offs=[0, 20]),
                                            b=entry("U8", [9], [20, 29]))),
        ["tensor 'a'", "[0, 20) hold 20 bytes but 6 elements of F32 need 24"])
    add("offsets-size-long", B(base_header(a=entry(shape=[2, 2]))),
        ["tensor 'a'", "hold 24 bytes but 4 elements of F32 need 16"])
    add("offsets-dtype-mismatch", B(base_header(a=entry(dtype="F16"))),
        ["tensor 'a'", "hold 24 bytes but 6 elements of F16 need 12"])
    # -- tiling of the data section
    add("hole-middle", B(base_header(b=entry("U8", [5], [28, 33])), bytes(33)),
        ["tensor 'b'", "hole", "bytes [24, 28) after tensor 'a'"])
    add("hole-start", B(base_header(a=entry(offs=[4, 28]), b=entry("U8", [5], [28, 33])), bytes(33)),
        ["tensor 'a'", "hole", "[0, 4) at the start"])
    add("hole-end", B(base_header(), BASE_DATA + b"tail"),
        ["data section", "bytes [29, 33) at its end belong to no tensor"])
    add("hole-no-tensors", B({}, b"12345678"),
        ["data section", "bytes [0, 8) at its end belong to no tensor"])
    add("hole-meta-only", B({"__metadata__": {"k": "v"}}, b"x"),
        ["data section", "bytes [0, 1)"])
    add("overlap", B(base_header(b=entry("U8", [9], [20, 29]))),
        ["tensor 'b'", "[20, 29) overlap tensor 'a' at [0, 24)"])
    add("overlap-same", B(base_header(b=entry(offs=[0, 24])), bytes(24)),
        ["tensor 'b'", "[0, 24) overlap tensor 'a' at [0, 24)"])
    add("overlap-empty-inside", B(base_header(z=entry("U8", [0], [4, 4]))),
        ["tensor 'z'", "[4, 4) overlap tensor 'a' at [0, 24)"])
    add("overlap-empty-past-end", B(base_header(z=entry("U8", [0], [30, 30]))),
        ["tensor 'z'", "end 30 is beyond the data section (29 bytes)"])
    return c


# ------------------------------------------------------------------ sets ---

def shard(tensors, metadata=None):
    """tensors: [(name, dtype, shape)] -> (bytes, [(name, dtype, shape, begin, end, b)])."""
    ts = [(n, dt, sh, values(dt, sh, 1000 + sum(map(ord, n)))) for n, dt, sh in tensors]
    header, data, placed = layout(ts, metadata=metadata)
    return file_bytes(header, data), placed


def index_bytes(weight_map, total=None, raw=None):
    if raw is not None:
        return raw
    return json.dumps({"metadata": {"total_size": total or 0}, "weight_map": weight_map},
                      indent=2).encode()


SHARDS = {
    "model-00001-of-00003.safetensors": [("model.embed_tokens.weight", "BF16", [16, 4]),
                                         ("model.layers.0.input_layernorm.weight", "F32", [4])],
    "model-00002-of-00003.safetensors": [("model.layers.0.mlp.up_proj.weight", "F16", [8, 4]),
                                         ("model.layers.0.mlp.down_proj.weight", "F16", [4, 8])],
    "model-00003-of-00003.safetensors": [("model.norm.weight", "F32", [4]),
                                         ("lm_head.weight", "BF16", [16, 4]),
                                         ("model.scalar", "I64", [])],
}


def make_sets(out, man):
    def put(d, name, blob):
        write(os.path.join(out, d, name), blob)

    # single file
    blob, placed = shard([("w", "F32", [3, 2]), ("v", "U8", [4])], {"format": "pt"})
    put("sets/single", "model.safetensors", blob)
    man["sets"].append({"dir": "sets/single", "files": ["model.safetensors"],
                        "tensors": [dict(t, file=0) for t in describe(blob, placed, None)["tensors"]]})

    # three shards + index (index keys in a different order than the shards)
    wm, tens, total = {}, [], 0
    names = sorted(SHARDS)
    for fi, sname in enumerate(names):
        blob, placed = shard(SHARDS[sname], {"format": "pt"} if fi == 0 else None)
        put("sets/sharded", sname, blob)
        for t in describe(blob, placed, None)["tensors"]:
            tens.append(dict(t, file=fi))
            wm[t["name"]] = sname
            total += t["nbytes"]
    wm = dict(sorted(wm.items()))
    put("sets/sharded", "model.safetensors.index.json", index_bytes(wm, total))
    put("sets/sharded", "unrelated-00009.safetensors", b"not opened: not in the index")
    man["sets"].append({"dir": "sets/sharded", "files": names, "tensors": tens})

    # both: model.safetensors wins; the index names a missing shard
    blob, placed = shard([("only", "F16", [2])])
    put("sets/both", "model.safetensors", blob)
    put("sets/both", "model.safetensors.index.json", index_bytes({"only": "missing.safetensors"}))
    man["sets"].append({"dir": "sets/both", "files": ["model.safetensors"],
                        "tensors": [dict(t, file=0) for t in describe(blob, placed, None)["tensors"]]})

    # ---- bad sets.  s1/s2: two small valid shards.
    s1, _ = shard([("a", "F32", [2]), ("b", "U8", [3])])
    s2, _ = shard([("c", "F16", [4])])
    good_wm = {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}
    IDX = "model.safetensors.index.json"

    def bad(d, files, code, has):
        for name, blob in files.items():
            put("bad-sets/" + d, name, blob)
        man["bad_sets"].append({"dir": "bad-sets/" + d, "code": code, "has": has})

    def with_index(wm=None, raw=None, extra=None):
        f = {"s1.safetensors": s1, "s2.safetensors": s2,
             IDX: index_bytes(wm if wm is not None else good_wm, raw=raw)}
        f.update(extra or {})
        return f

    bad("neither", {"config.json": b"{}"}, "ENOENT",
        ["neither model.safetensors nor model.safetensors.index.json"])
    bad("index-not-json", with_index(raw=b'{"weight_map": {'), "EINVAL", [IDX, "not valid JSON"])
    bad("index-not-object", with_index(raw=b'["s1.safetensors"]'), "EINVAL", [IDX, "not a JSON object"])
    bad("index-dup-key", with_index(raw=b'{"weight_map":{"a":"s1.safetensors","a":"s2.safetensors"}}'),
        "EINVAL", [IDX, "not valid JSON", "duplicate"])
    bad("no-weight-map", with_index(raw=b'{"metadata":{}}'), "EINVAL", [IDX, 'no "weight_map"'])
    bad("weight-map-array", with_index(raw=b'{"weight_map":["s1.safetensors"]}'), "EINVAL",
        [IDX, '"weight_map" is not an object'])
    bad("weight-map-empty", with_index(raw=b'{"weight_map":{}}'), "EINVAL", [IDX, '"weight_map" is empty'])
    bad("shard-not-string", with_index(dict(good_wm, c=2)), "EINVAL",
        [IDX, "tensor 'c'", "shard is not a string"])
    bad("shard-parent", with_index(dict(good_wm, c="../s2.safetensors")), "EINVAL",
        [IDX, "tensor 'c'", "shard '../s2.safetensors'", "not a plain file name"])
    bad("shard-absolute", with_index(dict(good_wm, c="/etc/passwd")), "EINVAL",
        [IDX, "tensor 'c'", "shard '/etc/passwd'", "not a plain file name"])
    bad("shard-dotdot", with_index(dict(good_wm, c="..")), "EINVAL",
        [IDX, "tensor 'c'", "shard '..'", "not a plain file name"])
    bad("shard-subdir", with_index(dict(good_wm, c="sub/s2.safetensors")), "EINVAL",
        [IDX, "shard 'sub/s2.safetensors'", "not a plain file name"])
    bad("shard-empty-name", with_index(dict(good_wm, c="")), "EINVAL",
        [IDX, "tensor 'c'", "shard ''", "not a plain file name"])
    bad("shard-missing", with_index(dict(good_wm, c="s3.safetensors")), "ENOENT",
        [IDX, "shard 's3.safetensors' (of tensor 'c')", "s3.safetensors: cannot open"])
    bad("tensor-absent", with_index(dict(good_wm, ghost="s2.safetensors")), "EINVAL",
        [IDX, "tensor 'ghost'", "shard 's2.safetensors' does not contain it"])
    bad("tensor-wrong-shard", with_index(dict(good_wm, b="s2.safetensors")), "EINVAL",
        [IDX, "tensor 'b'", "shard 's2.safetensors' does not contain it", "it is in shard 's1.safetensors'"])
    wm = dict(good_wm)
    del wm["b"]
    bad("tensor-not-in-index", with_index(wm), "EINVAL",
        [IDX, "tensor 'b' of shard 's1.safetensors' is not in the index"])
    s2dup, _ = shard([("c", "F16", [4]), ("a", "F32", [2])])
    bad("tensor-in-two-shards", with_index(extra={"s2.safetensors": s2dup}), "EINVAL",
        [IDX, "tensor 'a'", "in two shards", "'s1.safetensors' and 's2.safetensors'"])
    s2bad = file_bytes({"c": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, bytes(12))
    bad("shard-invalid", with_index(extra={"s2.safetensors": s2bad}), "EINVAL",
        ["s2.safetensors: data section", "bytes [8, 12) at its end belong to no tensor"])
    bad("single-invalid", {"model.safetensors": s2bad, IDX: index_bytes(good_wm)}, "EINVAL",
        ["model.safetensors: data section", "belong to no tensor"])


# ---------------------------------------------------------- cross-check ---

def cross_check(out, man):
    try:
        import safetensors
        import safetensors.numpy as stnp
    except ImportError:
        print("safetensors package absent: no cross-check against upstream")
        return
    def read(rel):
        with open(os.path.join(out, rel), "rb") as f:
            return f.read()

    def same(rel, got, want_tensors):
        got = {n: t for n, t in got}
        assert set(got) == {t["name"] for t in want_tensors}, rel
        for t in want_tensors:
            g = got[t["name"]]
            assert g["dtype"] == t["dtype"], (rel, t["name"], g["dtype"])
            assert list(g["shape"]) == t["shape"], (rel, t["name"])
            assert fnv1a32(bytes(g["data"])) == t["fnv"], (rel, t["name"])

    for v in man["valid"]:
        same(v["file"], safetensors.deserialize(read(v["file"])), v["tensors"])
    for s in man["sets"]:
        for fi, fname in enumerate(s["files"]):
            rel = os.path.join(s["dir"], fname)
            same(rel, safetensors.deserialize(read(rel)),
                 [t for t in s["tensors"] if t["file"] == fi])

    # The numpy writer: same dtype names, shapes and bytes for what numpy holds.
    multi = man["valid"][0]
    blob = read(multi["file"])
    arrays, want = {}, []
    for t in multi["tensors"]:
        npt = DTYPES[t["dtype"]][1]
        if npt is None:
            continue
        raw = blob[t["file_offset"]:t["file_offset"] + t["nbytes"]]
        arrays[t["name"]] = np.frombuffer(raw, dtype=npt).reshape(t["shape"])
        want.append(t)
    ref = stnp.save(arrays, metadata=multi["metadata"])
    same("numpy writer", safetensors.deserialize(ref), want)
    hlen = struct.unpack("<Q", ref[:8])[0]
    assert json.loads(ref[8:8 + hlen])["__metadata__"] == multi["metadata"]

    n_acc = 0
    for b in man["bad"]:
        if b["upstream"] is None:
            continue
        try:
            safetensors.deserialize(read(b["file"]))
            accepted = True
        except Exception:
            accepted = False
        assert accepted != b["upstream"], "%s: upstream %s it" % (
            b["file"], "accepts" if accepted else "refuses")
        n_acc += accepted
    print("cross-checked against safetensors %s: %d valid files, %d set shards,"
          " numpy writer, %d bad files (%d accepted upstream on purpose)"
          % (safetensors.__version__, len(man["valid"]),
             sum(len(s["files"]) for s in man["sets"]), len(man["bad"]), n_acc))


# ------------------------------------------------------------------ main ---

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "safetensors"))
    a = ap.parse_args()
    out = os.path.normpath(a.out)
    if os.path.isdir(out):
        if os.listdir(out) and not os.path.exists(os.path.join(out, "manifest.json")):
            sys.exit("%s: not empty and holds no manifest.json; refusing to clear it" % out)
        shutil.rmtree(out)
    os.makedirs(out)

    man = {"valid": [], "bad": [], "sets": [], "bad_sets": []}
    make_valid(out, man)
    for name, blob, code, has, upstream in bad_cases():
        rel = "bad/%s.safetensors" % name
        write(os.path.join(out, rel), blob)
        man["bad"].append({"file": rel, "code": code, "has": has, "upstream": upstream})
    make_sets(out, man)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1, sort_keys=False)
        f.write("\n")
    cross_check(out, man)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(out) for n in ns)
    print("%s: %d valid, %d bad, %d sets, %d bad sets, %d bytes"
          % (out, len(man["valid"]), len(man["bad"]), len(man["sets"]),
             len(man["bad_sets"]), total))


if __name__ == "__main__":
    main()
