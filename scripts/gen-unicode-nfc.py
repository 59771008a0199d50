#!/usr/bin/env python3
"""Generate daemon/unicode/unicode_nfc.c: the tables of Unicode NFC as Hugging Face
`tokenizers` applies it (the "NFC" normaliser of Qwen2-style tokenizer.json).

Why not simply Python's unicodedata: `tokenizers` normalises with the Rust crate
unicode-normalization-alignments, whose tables are older than Python's (about 100
combining marks added since, e.g. U+07FD, have combining class 0 there).  Token ids
must equal those of `tokenizers`, so its behaviour is the reference: the script
starts from unicodedata and asks `tokenizers` (its NFD and NFC normalisers) for
every fact it writes:
  - full canonical decompositions: NFD(c) for every code point c (Hangul
    syllables excluded: they are algorithmic);
  - canonical combining classes, found by letting NFC reorder each mark against
    reference marks of every class (reorder(m, r) happens iff ccc(m) > ccc(r) > 0);
  - primary compositions (a, b) -> c, kept where NFC(NFD(c)) == c.
The output is checked by NFC-normalising every code point and a set of mark
sequences with both `tokenizers` and a Python model of the generated tables.

Tables (see unicode.h):
  unicode_ccc[]         cp << 8 | class, sorted, for class != 0
  unicode_decomp[]      {cp, offset << 3 | length} into unicode_decomp_cps[], sorted
  unicode_comp[]        {first, second, composite}, sorted by (first, second)

Usage: gen-unicode-nfc.py --out daemon/unicode/unicode_nfc.c
Needs the `tokenizers` package (e.g. /root/.cache/smoke-torch-venv/bin/python).
"""
import argparse
import sys
import unicodedata as ud

from tokenizers import normalizers

NFC = normalizers.NFC()
NFD = normalizers.NFD()
SBASE, LBASE, VBASE, TBASE = 0xAC00, 0x1100, 0x1161, 0x11A7
LCOUNT, VCOUNT, TCOUNT = 19, 21, 28
SCOUNT = LCOUNT * VCOUNT * TCOUNT


def cps():
    for cp in range(0x110000):
        if not 0xD800 <= cp < 0xE000:
            yield cp


def nfc(s):
    return NFC.normalize_str(s)


def probe_ccc(marks, decomp):
    """Combining classes as `tokenizers` orders marks."""
    def reorders(a, b):
        # After NFC of " " a b (a space composes with nothing), does b come
        # before a?  Marks that decompose are not probed (see below).
        out = nfc(" " + chr(a) + chr(b))
        return out.find(chr(b)) < out.find(chr(a))

    # Anchors: U+0334 (class 1) and U+0345 (class 240), in Unicode since 1.1.
    lo, hi = 0x334, 0x345

    def known(m):
        return reorders(m, lo) or reorders(hi, m) or m in (lo, hi)

    # One reference mark per class that `tokenizers` knows.
    refs = {}
    for m in marks:
        k = ud.combining(chr(m))
        if k not in refs and m not in decomp and known(m):
            refs[k] = m
    classes = sorted(refs)
    ccc = {}
    for m in marks:
        if m in decomp:
            continue        # decomposed before its class could matter
        if not known(m):
            ccc[m] = 0
            continue
        ccc[m] = min(k for k in classes if not reorders(m, refs[k]))
    return ccc


def model_nfc(s, ccc, decomp, comp):
    """NFC from the generated tables (the C code does the same)."""
    out = []
    for ch in s:
        cp = ord(ch)
        if SBASE <= cp < SBASE + SCOUNT:
            i = cp - SBASE
            seq = [LBASE + i // (VCOUNT * TCOUNT), VBASE + (i % (VCOUNT * TCOUNT)) // TCOUNT]
            if i % TCOUNT:
                seq.append(TBASE + i % TCOUNT)
        else:
            seq = decomp.get(cp, [cp])
        for c in seq:
            k = ccc.get(c, 0)
            j = len(out)
            while k and j > 0 and ccc.get(out[j - 1], 0) > k:
                j -= 1
            out.insert(j, c)
    res = []
    starter = -1
    last_ccc = 0
    for c in out:
        k = ccc.get(c, 0)
        if starter >= 0:
            s0 = res[starter]
            blocked = len(res) - 1 > starter and (last_ccc == 0 or last_ccc >= k)
            if not blocked:
                composite = None
                if LBASE <= s0 < LBASE + LCOUNT and VBASE <= c < VBASE + VCOUNT:
                    composite = SBASE + ((s0 - LBASE) * VCOUNT + (c - VBASE)) * TCOUNT
                elif (SBASE <= s0 < SBASE + SCOUNT and (s0 - SBASE) % TCOUNT == 0
                      and TBASE < c < TBASE + TCOUNT):
                    composite = s0 + (c - TBASE)
                else:
                    composite = comp.get((s0, c))
                if composite is not None:
                    res[starter] = composite
                    continue
        if k == 0:
            starter = len(res)
        last_ccc = k
        res.append(c)
    return "".join(map(chr, res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    decomp = {}
    for cp in cps():
        if SBASE <= cp < SBASE + SCOUNT:
            continue
        d = NFD.normalize_str(chr(cp))
        if d != chr(cp):
            decomp[cp] = [ord(x) for x in d]
    # unicode.h promises UNICODE_NFC_MAX_EXPANSION (4) code points per input
    # code point, and unicode_nfc() copies runs of code points below U+0300
    # unchanged: nothing there decomposes non-trivially or combines.
    assert max(len(v) for v in decomp.values()) <= 4

    marks = [cp for cp in cps() if ud.combining(chr(cp))]
    ccc = {m: k for m, k in probe_ccc(marks, decomp).items() if k}

    comp = {}
    for cp in cps():
        if SBASE <= cp < SBASE + SCOUNT:
            continue
        d = ud.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) != 2:
            continue
        if nfc(chr(parts[0]) + chr(parts[1])) == chr(cp):
            comp[(parts[0], parts[1])] = cp

    assert all(k >= 0x300 for k in ccc)
    assert all(b >= 0x300 for (_, b) in comp)
    assert all(nfc(chr(cp)) == chr(cp) for cp in range(0x300))

    # Check the model against `tokenizers` on every code point, marks in
    # different orders after bases, and Hangul jamo sequences.
    tests = [chr(cp) for cp in cps()]
    some = sorted(ccc)[::7] + [0x301, 0x323, 0x334, 0x345, 0x5B0, 0x93C, 0x1DCE]
    for m in marks:
        tests.append("a" + chr(m) + "\u0301" + chr(m) + "\u0323")
        tests.append("\u0915" + "\u093c" + chr(m))
    for b in "aeoAEOsSuU\u03b1\u03c9\u0391":
        for m in some:
            tests.append(b + chr(m) + "\u0301")
            tests.append(b + "\u0308" + chr(m))
    for d in decomp.values():
        tests.append("".join(map(chr, d)))
        tests.append("".join(map(chr, reversed(d))))
    tests += ["\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "\u1100\u1161\u0301\u11a8",
              "\uac01\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af"]
    bad = [t for t in tests if model_nfc(t, ccc, decomp, comp) != nfc(t)]
    if bad:
        for t in bad[:10]:
            print("mismatch:", [hex(ord(c)) for c in t], file=sys.stderr)
        sys.exit("%d of %d checks differ from tokenizers" % (len(bad), len(tests)))

    pool = []
    dec_entries = []
    for cp in sorted(decomp):
        d = decomp[cp]
        dec_entries.append((cp, len(pool) << 3 | len(d)))
        pool.extend(d)

    n_old = sum(1 for m in marks if m not in ccc)
    with open(a.out, "w") as f:
        w = f.write
        w("/* unicode_nfc.c - GENERATED by scripts/gen-unicode-nfc.py; do not edit.\n"
          " * NFC tables as Hugging Face tokenizers %s applies them (Python unicodedata\n"
          " * %s, %d combining marks that tokenizers does not know given class 0);\n"
          " * see unicode.h for the layout. */\n" % (
              __import__("tokenizers").__version__, ud.unidata_version, n_old))
        w('#include "unicode/unicode.h"\n\n')

        def arr(decl, items, per):
            w(decl + " = {\n")
            for i in range(0, len(items), per):
                w("\t" + " ".join(items[i:i + per]) + "\n")
            w("};\n")

        arr("const uint32_t unicode_ccc[]", ["0x%08x," % (cp << 8 | k) for cp, k in sorted(ccc.items())], 6)
        w("const size_t unicode_ccc_n = %d;\n\n" % len(ccc))
        arr("const uint32_t unicode_decomp[][2]", ["{ 0x%05x, 0x%05x }," % e for e in dec_entries], 3)
        w("const size_t unicode_decomp_n = %d;\n" % len(dec_entries))
        arr("const uint32_t unicode_decomp_cps[]", ["0x%05x," % c for c in pool], 8)
        w("\n")
        arr("const uint32_t unicode_comp[][3]",
            ["{ 0x%05x, 0x%05x, 0x%05x }," % (x, y, c) for (x, y), c in sorted(comp.items())], 2)
        w("const size_t unicode_comp_n = %d;\n" % len(comp))
    print("ccc %d, decompositions %d (%d code points), compositions %d; %d checks pass" % (
        len(ccc), len(dec_entries), len(pool), len(comp), len(tests)), file=sys.stderr)


if __name__ == "__main__":
    main()
