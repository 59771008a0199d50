#!/usr/bin/env python3
"""make-bad-gguf.py - generate the GGUF reader's test corpus.

Writes, under tests/fixtures/gguf/ (deterministic; run again after changes):
  valid.gguf + valid.json   a small file with every value type (nested arrays
                            of strings, arrays of arrays) and tensors of
                            several types; the JSON holds what was written.
                            The file is read back with the `gguf` PyPI package
                            (GGUFReader) before it is kept, so the writer here
                            is itself checked against an independent reader.
  corpus/*.gguf             one small file per rejection class, plus a few
                            variants that must open (alignment types, v2 ...)
  corpus.json               for each corpus file: "ok" or the error code and
                            the substrings the reader's message must contain
                            (the field at fault), or the facts an ok file has.
  model.json                the default model as GGUFReader sees it: header,
                            every key with its type and (sampled) values,
                            every tensor's name/type/shape/offset/size and a
                            hash of its first bytes, and the offsets of every
                            key and tensor info (cut points for truncation).
                            Skipped with a note when the model is absent.

JSON value encoding (shared by valid.json and model.json):
  integers as decimal strings (u64 does not fit a JSON number everywhere),
  floats as {"bits": "0x..."} of their IEEE bits, bools as true/false,
  strings as hex of their bytes, arrays as
  {"elem": type, "n": count, "at": [[index, value], ...]} (all or sampled).

Usage: scripts/make-bad-gguf.py [--model PATH] [--out DIR] [--no-model]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

try:
    import gguf
    from gguf import GGUFReader
except ImportError:  # pragma: no cover
    sys.exit("make-bad-gguf.py: needs the `gguf` PyPI package (pip install gguf)")

MAGIC = b"GGUF"
VT = dict(u8=0, i8=1, u16=2, i16=3, u32=4, i32=5, f32=6, bool=7, string=8,
          array=9, u64=10, i64=11, f64=12)
VT_NAME = {v: k for k, v in VT.items()}
FMT = dict(u8="<B", i8="<b", u16="<H", i16="<h", u32="<I", i32="<i", f32="<f",
           bool="<B", u64="<Q", i64="<q", f64="<d")

# Block sizes from the gguf package, not from our C code.
QS = {int(t): sz for t, sz in gguf.GGML_QUANT_SIZES.items()}
T = gguf.GGMLQuantizationType


def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def gstr(b): return u64(len(b)) + b


def fnv1a32(data):
    h = 0x811C9DC5
    for c in data:
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


# ---------------------------------------------------------------- values ---
# A value is (type_name, python_value); arrays are ("array", (elem, [items]))
# where an item of an array of arrays is itself (elem, [items]).

def enc_payload(t, v):
    """Bytes of a value of type t, without the leading type tag."""
    if t == "string":
        return gstr(v)
    if t == "array":
        elem, items = v
        out = u32(VT[elem]) + u64(len(items))
        return out + b"".join(enc_payload(elem, it) for it in items)
    return struct.pack(FMT[t], v)


def kv(key, t, v):
    k = key.encode() if isinstance(key, str) else key
    return gstr(k) + u32(VT[t]) + enc_payload(t, v)


def json_val(t, v):
    if t in ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"):
        return str(int(v))
    if t == "f32":
        return {"bits": "0x%08x" % struct.unpack("<I", struct.pack("<f", v))[0]}
    if t == "f64":
        return {"bits": "0x%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]}
    if t == "bool":
        return bool(v)
    if t == "string":
        return v.hex()
    elem, items = v
    return {"elem": elem, "n": len(items),
            "at": [[i, json_val(elem, it)] for i, it in enumerate(items)]}


# --------------------------------------------------------------- tensors ---

def tensor_bytes(ttype, ne):
    blk, size = QS[int(ttype)]
    assert ne[0] % blk == 0
    n = 1
    for d in ne:
        n *= d
    return n // blk * size


def tinfo(name, ne, ttype, off):
    n = name.encode() if isinstance(name, str) else name
    return gstr(n) + u32(len(ne)) + b"".join(u64(d) for d in ne) + u32(int(ttype)) + u64(off)


def pattern(nbytes, seed):
    return bytes(((i * 7 + seed * 31 + (i >> 8)) & 0xFF) for i in range(nbytes))


def assemble(kvs, tinfos, data=b"", version=3, n_kv=None, n_tensors=None,
             align=32, pad=True, pad_byte=0, magic=MAGIC):
    head = magic + u32(version)
    head += u64(len(tinfos) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    meta = head + b"".join(kvs) + b"".join(tinfos)
    if pad:
        meta += bytes([pad_byte]) * ((-len(meta)) % align)
    return meta + data


def layout(tensors, align):
    """tensors: [(name, ne, type)] -> ([tinfo bytes], data, [(name, off, n)])."""
    infos, data, where = [], b"", []
    for i, (name, ne, tt) in enumerate(tensors):
        data += b"\0" * ((-len(data)) % align)
        n = tensor_bytes(tt, ne)
        infos.append(tinfo(name, ne, tt, len(data)))
        where.append((name, len(data), n))
        data += pattern(n, i + 1)
    data += b"\0" * ((-len(data)) % align)
    return infos, data, where


# ----------------------------------------------------------------- valid ---

def deep(depth):
    """An array nested `depth` levels deep holding one i32 at the bottom."""
    v = ("i32", [7])
    for _ in range(depth - 1):
        v = ("array", [v])
    return v


VALID_KVS = [
    ("general.architecture", "string", b"test"),
    ("general.alignment", "u32", 64),
    ("test.u8", "u8", 255),
    ("test.i8", "i8", -128),
    ("test.u16", "u16", 65535),
    ("test.i16", "i16", -32768),
    ("test.u32", "u32", 4294967295),
    ("test.i32", "i32", -2147483648),
    ("test.i32_pos", "i32", 12345),
    ("test.f32", "f32", 3.14159274101257324),
    ("test.f32_negzero", "f32", -0.0),
    ("test.bool_true", "bool", 1),
    ("test.bool_false", "bool", 0),
    ("test.string", "string", "h\u00e9llo w\u00f6rld \u2713".encode()),
    ("test.string_empty", "string", b""),
    ("test.string_ctl", "string", b"tab\tnl\nnul\0end"),
    ("test.u64", "u64", 2**64 - 1),
    ("test.u64_small", "u64", 7),
    ("test.i64", "i64", -2**63),
    ("test.f64", "f64", 2.718281828459045),
    ("test.f64_big", "f64", 1e300),
    ("test.arr.u8", "array", ("u8", [0, 1, 255])),
    ("test.arr.i8", "array", ("i8", [-128, 0, 127])),
    ("test.arr.u16", "array", ("u16", [0, 65535])),
    ("test.arr.i16", "array", ("i16", [-32768, 32767])),
    ("test.arr.u32", "array", ("u32", [0, 4294967295, 42])),
    ("test.arr.i32", "array", ("i32", [-2147483648, 2147483647, -1])),
    ("test.arr.f32", "array", ("f32", [0.5, -1.25, 1e-30])),
    ("test.arr.bool", "array", ("bool", [1, 0, 1])),
    ("test.arr.u64", "array", ("u64", [0, 2**64 - 1])),
    ("test.arr.i64", "array", ("i64", [-2**63, 2**63 - 1])),
    ("test.arr.f64", "array", ("f64", [1.0 / 3.0, -1e300])),
    ("test.arr.string", "array", ("string", [b"a", b"", "\u00fcn\u00efcode".encode(),
                                             b"with\0nul"])),
    # 41 strings of varying length: random access across the 16-stride index
    ("test.arr.string_many", "array",
     ("string", [("s%d" % i).encode() * (i % 5) for i in range(41)])),
    ("test.arr.empty", "array", ("u32", [])),
    ("test.arr.string_empty", "array", ("string", [])),
    ("test.arr.arr_str", "array",
     ("array", [("string", [b"x", b"yz"]), ("string", []), ("string", [b"w"])])),
    ("test.arr.arr_arr_i32", "array",
     ("array", [("array", [("i32", [1, 2]), ("i32", [3])]),
                ("array", [("i32", [-4])]),
                ("array", [])])),
    ("test.arr.arr_mixed", "array",
     ("array", [("f32", [1.5]), ("bool", [0, 1]), ("u64", [9])])),
    ("test.arr.arr_empty", "array", ("array", [])),
    ("test.arr.deep8", "array", deep(8)),
]

VALID_TENSORS = [
    ("t.f32", [4, 3], T.F32),
    ("t.f16", [8], T.F16),
    ("t.q8_0", [64, 2], T.Q8_0),
    ("t.q4_k", [256, 1, 2], T.Q4_K),
    ("t.q6_k", [256], T.Q6_K),
    ("t.bf16", [2, 2, 2, 2], T.BF16),
    ("t.q5_0", [32, 3], T.Q5_0),
    ("n" * 64, [4], T.F32),       # the longest name the spec allows
]


def make_valid(outdir):
    kvs = [kv(k, t, v) for k, t, v in VALID_KVS]
    infos, data, where = layout(VALID_TENSORS, 64)
    blob = assemble(kvs, infos, data, align=64)
    data_offset = len(blob) - len(data)
    path = os.path.join(outdir, "valid.gguf")
    with open(path, "wb") as f:
        f.write(blob)
    exp = {
        "file": "valid.gguf", "version": 3, "alignment": 64,
        "data_offset": data_offset, "file_size": len(blob), "n_kv": len(kvs),
        "kv": [{"key": k, "type": t, "value": json_val(t, v)} for k, t, v in VALID_KVS],
        "tensors": [],
    }
    for (name, ne, tt), (_, off, n) in zip(VALID_TENSORS, where):
        body = data[off:off + n]
        exp["tensors"].append({"name": name, "type": int(tt), "ne": ne,
                               "offset": str(data_offset + off), "nbytes": str(n),
                               "fnv1a_head": "0x%08x" % fnv1a32(body[:4096])})
    cross_check_valid(path, exp)
    with open(os.path.join(outdir, "valid.json"), "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")


def flatten(t, v):
    """Leaf values of a (possibly nested) value, in file order."""
    if t != "array":
        return [v]
    elem, items = v
    out = []
    for it in items:
        out += flatten(elem, it) if elem == "array" else [it]
    return out


def cross_check_valid(path, exp):
    """Read the file back with GGUFReader (which flattens nested arrays)."""
    r = GGUFReader(path)
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert list(fields) == [k for k, _, _ in VALID_KVS], "key order"
    for key, t, v in VALID_KVS:
        f = fields[key]
        assert VT_NAME[int(f.types[0])] == t, key
        leaves = flatten(t, v)
        got = [f.parts[i] for i in f.data]
        assert len(got) == len(leaves), key
        for g, w in zip(got, leaves):
            if isinstance(w, bytes):
                assert bytes(g) == w, key
            elif isinstance(w, float):
                assert np.array(g).tobytes() == np.array([w], dtype=g.dtype).tobytes(), key
            else:
                assert int(g[0]) == int(w), key
    assert r.alignment == 64 and r.data_offset == exp["data_offset"]
    for rt, et in zip(r.tensors, exp["tensors"]):
        assert rt.name == et["name"] and int(rt.tensor_type) == et["type"]
        assert [int(d) for d in rt.field.parts[3]] == et["ne"]
        assert rt.data_offset == int(et["offset"]) and rt.n_bytes == int(et["nbytes"])


# ---------------------------------------------------------------- corpus ---

BASE_KVS = [kv("general.architecture", "string", b"test"),
            kv("general.name", "string", b"corpus")]
A8 = ("a", [8], T.F32)
B8 = ("b", [8], T.F32)


def base(**kw):
    """Two F32 tensors a, b of 32 bytes each, packed at the default alignment."""
    kvs = kw.pop("kvs", BASE_KVS)
    tensors = kw.pop("tensors", [A8, B8])
    align = kw.pop("align", 32)
    infos, data, _ = layout(tensors, align)
    infos = kw.pop("infos", infos)
    data = kw.pop("data", data)
    return assemble(kvs, infos, data, align=align, **kw)


def corpus():
    """Yield (name, bytes, expectation)."""
    def bad(name, blob, *contains, code="EINVAL"):
        return name, blob, {"expect": code, "contains": list(contains)}

    def ok(name, blob, **facts):
        return name, blob, dict(expect="ok", **facts)

    good = base()
    # header
    yield bad("empty", b"", "header field 'magic'", "empty")
    yield bad("tiny", b"GGU", "header field 'magic'")
    yield bad("bad-magic", b"GGML" + good[4:], "header field 'magic'", "not a GGUF file")
    yield bad("version-1", good[:4] + u32(1) + good[8:], "header field 'version'", "v1")
    yield bad("version-0", good[:4] + u32(0) + good[8:], "header field 'version'")
    yield bad("version-4", good[:4] + u32(4) + good[8:], "header field 'version'", "4")
    yield bad("version-bigendian", good[:4] + struct.pack(">I", 3) + good[8:],
              "header field 'version'", "big-endian")
    yield bad("trunc-version", good[:6], "header field 'version'")
    yield bad("trunc-n-tensors", good[:12], "header field 'n_tensors'")
    yield bad("trunc-n-kv", good[:20], "header field 'n_kv'")
    yield bad("huge-n-kv", base(n_kv=2**62), "header field 'n_kv'")
    yield bad("huge-n-kv-max", base(n_kv=2**64 - 1), "header field 'n_kv'")
    yield bad("huge-n-tensors", base(n_tensors=2**62), "header field 'n_tensors'")
    yield bad("n-kv-one-more", assemble(BASE_KVS, [], n_kv=3, pad=False), "kv 2 key")
    # keys
    # (filler bytes keep n_kv within what the file could hold, so that the
    # key itself is what fails)
    yield bad("key-past-end", assemble([u64(1000) + b"abc" + b"\0" * 20], [], pad=False),
              "kv 0 key", "past end")
    yield bad("key-len-huge", assemble([u64(2**63) + b"abc" + b"\0" * 20], [], pad=False),
              "kv 0 key", "exceeds")
    yield bad("key-too-long", assemble([u64(65536) + b"k" * 64], [], pad=False),
              "kv 0 key", "exceeds")
    yield bad("key-empty", assemble([kv(b"", "u32", 1)], [], pad=False), "kv 0 key", "empty")
    yield bad("key-nul", assemble([kv(b"ab\0c", "u8", 1)], [], pad=False),
              "key 'ab?c'", "NUL")
    yield bad("key-duplicate", base(kvs=BASE_KVS + [kv("general.architecture", "string", b"x")]),
              "key 'general.architecture'", "duplicate")
    yield bad("vtype-unknown", base(kvs=BASE_KVS + [gstr(b"test.x") + u32(13) + u32(0)]),
              "key 'test.x'", "unknown value type")
    yield bad("vtype-huge", base(kvs=BASE_KVS + [gstr(b"test.x") + u32(0xFFFFFFFF) + u32(0)]),
              "key 'test.x'", "unknown value type")
    yield bad("string-past-end",
              assemble([kv("general.architecture", "string", b"t"),
                        gstr(b"general.name") + u32(8) + u64(1000) + b"short"], [], pad=False),
              "key 'general.name'", "past end")
    yield bad("scalar-past-end",
              assemble([gstr(b"test.u64") + u32(10) + b"\1\2\3"], [], pad=False),
              "key 'test.u64'")
    yield bad("bool-2", base(kvs=BASE_KVS + [gstr(b"test.bool") + u32(7) + b"\2"]),
              "key 'test.bool'", "0 or 1")
    yield bad("arr-bool-2", base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(7) +
                                                  u64(3) + b"\1\0\5"]),
              "key 'test.arr'", "0 or 1")
    # arrays
    yield bad("arr-elem-unknown", base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(13) + u64(0)]),
              "key 'test.arr'", "element type")
    yield bad("arr-count-huge", base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(4) +
                                                      u64(2**40) + u32(1)]),
              "key 'test.arr'", "cannot fit")
    yield bad("arr-count-overflow", base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(10) +
                                                          u64(2**62) + u64(1)]),
              "key 'test.arr'", "cannot fit")
    yield bad("arr-str-count-huge", base(kvs=BASE_KVS + [gstr(b"tokenizer.ggml.tokens") + u32(9) +
                                                          u32(8) + u64(2**61) + gstr(b"a")]),
              "key 'tokenizer.ggml.tokens'", "cannot fit")
    yield bad("arr-str-elem-past-end",
              assemble(BASE_KVS + [gstr(b"tokenizer.ggml.tokens") + u32(9) + u32(8) + u64(3) +
                                   gstr(b"a") + u64(1000) + b"bcdefghijklmnopqrstuvwxyz"],
                       [], pad=False),
              "key 'tokenizer.ggml.tokens'", "element 1 ", "past end")
    yield bad("arr-str-truncated",
              assemble(BASE_KVS + [gstr(b"tokenizer.ggml.tokens") + u32(9) + u32(8) + u64(3) +
                                   gstr(b"aaaa") + gstr(b"bbbb") + b"\0\0\0"], [], pad=False),
              "key 'tokenizer.ggml.tokens'", "element 2 ")
    yield bad("arr-nested-count-huge",
              base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(9) + u64(2**40) + u32(0)]),
              "key 'test.arr'", "cannot fit")
    yield bad("arr-nested-inner-unknown",
              base(kvs=BASE_KVS + [gstr(b"test.arr") + u32(9) + u32(9) + u64(1) +
                                   u32(77) + u64(0)]),
              "key 'test.arr'", "element type 77")
    yield bad("arr-too-deep", base(kvs=BASE_KVS + [kv("test.deep", "array", deep(9))]),
              "key 'test.deep'", "nested deeper")
    yield bad("arr-too-deep-truncated",
              assemble(BASE_KVS + [gstr(b"test.deep") + u32(9) + (u32(9) + u64(1)) * 200], [],
                       pad=False),
              "key 'test.deep'", "nested deeper")
    # alignment
    for nm, v in (("align-48", kv("general.alignment", "u32", 48)),
                  ("align-0", kv("general.alignment", "u32", 0)),
                  ("align-string", kv("general.alignment", "string", b"32")),
                  ("align-f32", kv("general.alignment", "f32", 32.0)),
                  ("align-bool", kv("general.alignment", "bool", 1)),
                  ("align-negative", kv("general.alignment", "i32", -32)),
                  ("align-huge", kv("general.alignment", "u64", 2**40)),
                  ("align-array", kv("general.alignment", "array", ("u32", [32])))):
        yield bad(nm, base(kvs=BASE_KVS + [v]), "key 'general.alignment'")
    # tensor infos
    ti_a = tinfo("a", [8], T.F32, 0)
    ti_b = tinfo("b", [8], T.F32, 32)
    data64 = pattern(64, 1)
    yield bad("tname-past-end", base(infos=[u64(60) + b"abc" + b"\0" * 20], data=b"", pad=False),
              "tensor 0 name", "past end")
    yield bad("tname-too-long", base(infos=[tinfo("x" * 65, [8], T.F32, 0)], data=data64),
              "tensor 0 name", "exceeds")
    yield bad("tname-empty", base(infos=[tinfo("", [8], T.F32, 0)], data=data64),
              "tensor 0 name", "empty")
    yield bad("tname-nul", base(infos=[tinfo(b"a\0b", [8], T.F32, 0)], data=data64),
              "tensor 'a?b'", "NUL")
    yield bad("tensor-duplicate", base(infos=[ti_a, tinfo("a", [8], T.F32, 32)], data=data64),
              "tensor 'a'", "duplicate")
    yield bad("ndims-5", base(infos=[ti_a, tinfo("b", [1, 1, 1, 1, 8], T.F32, 32)], data=data64),
              "tensor 'b'", "n_dims")
    yield bad("ndims-huge", base(infos=[gstr(b"b") + u32(0xFFFFFFFF) + u64(8) * 4], data=data64),
              "tensor 'b'", "n_dims")
    yield bad("dim-zero", base(infos=[ti_a, tinfo("b", [8, 0], T.F32, 32)], data=data64),
              "tensor 'b'", "dimension 1")
    yield bad("dim-huge", base(infos=[ti_a, tinfo("b", [8, 2**63], T.F32, 32)], data=data64),
              "tensor 'b'", "dimension 1")
    yield bad("dims-overflow", base(infos=[tinfo("b", [2**32, 2**32, 2**32], T.F32, 0)],
                                    data=data64),
              "tensor 'b'", "overflow")
    yield bad("nelems-over-int64", base(infos=[tinfo("b", [2**32, 2**31], T.F32, 0)],
                                        data=data64),
              "tensor 'b'", "overflow")
    yield bad("nbytes-overflow", base(infos=[tinfo("b", [2**40, 2**22], T.F32, 0)], data=data64),
              "tensor 'b'", "overflow")
    yield bad("row-bytes-overflow", base(infos=[tinfo("b", [2**62], T.F32, 0)], data=data64),
              "tensor 'b'")
    yield bad("ttype-unknown", base(infos=[ti_a, tinfo("b", [8], 99, 32)], data=data64),
              "tensor 'b'", "type")
    yield bad("ttype-removed-4", base(infos=[ti_a, tinfo("b", [32], 4, 32)], data=data64),
              "tensor 'b'", "type")
    yield bad("ttype-huge", base(infos=[ti_a, tinfo("b", [8], 0xFFFFFFFF, 32)], data=data64),
              "tensor 'b'", "type")
    yield bad("ne0-not-block", base(infos=[tinfo("q", [100, 2], T.Q4_K, 0)], data=b"\0" * 512),
              "tensor 'q'", "multiple")
    yield bad("ne0-not-block-q8", base(infos=[tinfo("q", [33], T.Q8_0, 0)], data=b"\0" * 64),
              "tensor 'q'", "multiple")
    yield bad("toff-unaligned", base(infos=[ti_a, tinfo("b", [8], T.F32, 36)], data=data64 * 2),
              "tensor 'b'", "alignment")
    yield bad("toff-unaligned-64",
              base(kvs=BASE_KVS + [kv("general.alignment", "u32", 64)], align=64,
                   infos=[ti_a, tinfo("b", [8], T.F32, 32)], data=data64 * 2),
              "tensor 'b'", "alignment")
    yield bad("tdata-past-end", base(infos=[ti_a, ti_b], data=data64[:48]),
              "tensor 'b'", "past end")
    yield bad("toff-past-end", base(infos=[ti_a, tinfo("b", [8], T.F32, 4096)], data=data64),
              "tensor 'b'", "past end")
    yield bad("toff-overflow", base(infos=[ti_a, tinfo("b", [8], T.F32, 2**64 - 32)], data=data64),
              "tensor 'b'", "overflow")
    yield bad("tsize-past-end", base(infos=[ti_a, tinfo("b", [8, 2**40], T.F32, 32)], data=data64),
              "tensor 'b'", "past end")
    yield bad("overlap-same", base(infos=[ti_a, tinfo("b", [8], T.F32, 0)], data=data64),
              "overlaps", "'a'", "'b'")
    yield bad("overlap-partial", base(infos=[tinfo("a", [16], T.F32, 0), ti_b], data=data64 * 2),
              "overlaps", "'a'", "'b'")
    yield bad("overlap-one-byte",
              base(kvs=BASE_KVS + [kv("general.alignment", "u8", 1)], align=1,
                   infos=[ti_a, tinfo("b", [8], T.F32, 31)], data=data64),
              "overlaps", "'a'", "'b'")
    yield bad("overlap-reversed",
              base(infos=[tinfo("a", [8], T.F32, 64), tinfo("b", [24], T.F32, 0)], data=data64 * 2),
              "overlaps", "'a'", "'b'")
    yield bad("tinfo-trunc-dims", base(infos=[ti_a[:-20]], data=b"", pad=False),
              "tensor 'a'", "dimension")
    yield bad("tinfo-trunc-type", base(infos=[ti_a[:-10]], data=b"", pad=False),
              "tensor 'a'", "type")
    yield bad("tinfo-trunc-offset", base(infos=[ti_a[:-3]], data=b"", pad=False),
              "tensor 'a'", "offset")
    yield bad("n-tensors-one-more", base(infos=[ti_a, ti_b], n_tensors=3, data=b"", pad=False),
              "tensor 2 name")
    # data section: make the infos end off a 32-byte boundary, then cut or
    # skip the padding.
    odd = [ti_a, tinfo("bb", [8], T.F32, 32)]
    meta_len = len(assemble(BASE_KVS, odd, pad=False))
    assert meta_len % 32, "infos must end unaligned for the data-start cases"
    yield bad("data-start-past-end", assemble(BASE_KVS, odd, pad=False) + b"\0",
              "data section", "past end")
    yield bad("data-start-misaligned", assemble(BASE_KVS, odd, pad=False) + data64 + data64,
              "data section", "padding")
    yield bad("padding-nonzero", assemble(BASE_KVS, odd, pad_byte=0xAA) + data64,
              "data section", "padding")
    # variants that must open; data_offset is where the padded metadata ends
    def ok_file(nm, kvs=BASE_KVS, infos=None, data=None, align=32, version=3, **facts):
        if infos is None:
            infos, data, _ = layout([A8, B8], align)
        meta = assemble(kvs, infos, b"", version=version, align=align)
        return ok(nm, meta + data, alignment=align, n_kv=len(kvs), n_tensors=len(infos),
                  data_offset=len(meta), **facts)

    yield ok_file("ok-base")
    yield ok_file("ok-v2", version=2)
    for nm, t, v in (("ok-align-u8", "u8", 16), ("ok-align-u16", "u16", 64),
                     ("ok-align-i32", "i32", 128), ("ok-align-u64", "u64", 256),
                     ("ok-align-i8-1", "i8", 1)):
        yield ok_file(nm, kvs=BASE_KVS + [kv("general.alignment", t, v)], align=v)
    hdr_only = assemble([], [], pad=False)
    yield ok("ok-header-only", hdr_only, alignment=32, n_kv=0, n_tensors=0, data_offset=32)
    no_t = assemble(BASE_KVS, [], pad=False)
    yield ok("ok-no-tensors", no_t, alignment=32, n_kv=2, n_tensors=0,
             data_offset=len(no_t) + (-len(no_t)) % 32)
    yield ok_file("ok-unordered-gaps",
                  infos=[tinfo("a", [8], T.F32, 128), tinfo("b", [8], T.F32, 32)],
                  data=pattern(160, 3))
    yield ok_file("ok-scalar-ndims0", infos=[tinfo("s", [], T.F32, 0), ti_b], data=data64)
    yield ok_file("ok-deep8", kvs=BASE_KVS + [kv("test.deep", "array", deep(8))])
    yield ok_file("ok-name64", infos=[tinfo("x" * 64, [8], T.F32, 0)], data=pattern(32, 5))
    # the last tensor (12 bytes) ends exactly at EOF, without tail padding
    yield ok_file("ok-exact-end", infos=[ti_a, tinfo("c", [3], T.F32, 32)],
                  data=pattern(44, 6))


def make_corpus(outdir):
    cdir = os.path.join(outdir, "corpus")
    os.makedirs(cdir, exist_ok=True)
    for old in os.listdir(cdir):
        if old.endswith(".gguf"):
            os.remove(os.path.join(cdir, old))
    manifest = []
    names = set()
    for name, blob, exp in corpus():
        assert name not in names, name
        names.add(name)
        assert len(blob) <= 8192, (name, len(blob))
        with open(os.path.join(cdir, name + ".gguf"), "wb") as f:
            f.write(blob)
        manifest.append(dict(file="corpus/%s.gguf" % name, **exp))
    with open(os.path.join(outdir, "corpus.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return len(manifest)


# ----------------------------------------------------------------- model ---

def sample_indices(n):
    """First 10, last 3, and 40 pseudo-random indices (fixed LCG seed)."""
    idx = set(range(min(n, 10))) | set(range(max(0, n - 3), n))
    x = 12345
    for _ in range(40):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        if n:
            idx.add((x >> 17) % n)
    return sorted(idx)


def reader_value(f, t, part_idx):
    p = f.parts[part_idx]
    if t == "string":
        return bytes(p)
    if t in ("f32", "f64"):
        return float(p[0])
    return int(p[0])


def make_model_json(model, outdir):
    r = GGUFReader(model)
    fields = list(r.fields.values())
    n_kv = int(r.fields["GGUF.kv_count"].parts[0][0])
    kv_fields = [f for f in fields if not f.name.startswith("GGUF.")]
    assert len(kv_fields) == n_kv
    kvs = []
    for f in kv_fields:
        t = VT_NAME[int(f.types[0])]
        e = {"key": f.name, "type": t, "file_offset": f.offset}
        if t == "array":
            elem = VT_NAME[int(f.types[1])]
            if elem == "array":
                e["value"] = {"elem": elem, "n": int(f.parts[1][0]), "at": []}
            else:
                n = len(f.data)
                e["value"] = {"elem": elem, "n": n,
                              "at": [[i, json_val(elem, reader_value(f, elem, f.data[i]))]
                                     for i in sample_indices(n)]}
        else:
            e["value"] = json_val(t, reader_value(f, t, f.data[0]))
        kvs.append(e)
    mm = np.memmap(model, dtype=np.uint8, mode="r")
    tensors = []
    for t in r.tensors:
        ne = [int(d) for d in t.field.parts[3]]
        head = bytes(mm[t.data_offset:t.data_offset + min(int(t.n_bytes), 4096)])
        tensors.append({"name": t.name, "type": int(t.tensor_type), "ne": ne,
                        "offset": str(t.data_offset), "nbytes": str(int(t.n_bytes)),
                        "info_offset": t.field.offset, "fnv1a_head": "0x%08x" % fnv1a32(head)})
    end = max(int(t["offset"]) + int(t["nbytes"]) for t in tensors)
    out = {
        "file": os.path.basename(model), "file_size": os.path.getsize(model),
        "version": int(r.fields["GGUF.version"].parts[0][0]), "alignment": r.alignment,
        "data_offset": r.data_offset, "n_kv": n_kv, "data_end": end,
        "kv": kvs, "tensors": tensors,
    }
    with open(os.path.join(outdir, "model.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "gguf"))
    ap.add_argument("--model", default=os.environ.get(
        "SMOKE_MODEL", os.path.expanduser("~/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf")))
    ap.add_argument("--no-model", action="store_true", help="keep the existing model.json")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    make_valid(a.out)
    n = make_corpus(a.out)
    print("valid.gguf, %d corpus files" % n)
    if a.no_model:
        return
    if not os.path.exists(a.model):
        print("model %s absent: model.json left as is" % a.model)
        return
    make_model_json(a.model, a.out)
    print("model.json from %s" % a.model)


if __name__ == "__main__":
    main()
