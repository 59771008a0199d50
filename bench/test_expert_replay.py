#!/usr/bin/env python3
"""bench_expert_replay against an independent simulation (docs/expert-trace.md).

Random traces with the locality real routing has (each layer prefers a few
experts for a while, then drifts), replayed by the C program and by the
plain simulation below, written from the policies' definitions: the miss
counts of lru, lfu, fifo, predictive and belady must be equal, Belady must
miss no more than any other policy, and the predictor's per-layer counts must
match.  Malformed traces must be refused with their line number.  Counts
only: nothing here is timed.

  test_expert_replay.py BENCH_EXPERT_REPLAY
"""
import json
import os
import random
import subprocess
import sys
import tempfile

failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def make_trace(rng, layers, experts, k, tokens, seqs, with_pred):
    """Records in store order: each step, every sequence's layer-l choice."""
    lines = ["smoke-expert-trace 1", "# made by test_expert_replay.py",
             "layers %d experts %d top_k %d expert_bytes %d" % (layers, experts, k, 1000 + layers)]
    hot = [[rng.sample(range(experts), k) for _ in range(layers)] for _ in range(seqs)]
    recs = []
    for pos in range(tokens):
        for l in range(layers):
            for s in range(seqs):
                if k < experts and rng.random() < 0.3:  # drift: swap one hot expert
                    cur = hot[s][l]
                    cur[rng.randrange(k)] = rng.choice([e for e in range(experts) if e not in cur])
                chosen = list(hot[s][l]) if rng.random() < 0.7 else rng.sample(range(experts), k)
                rng.shuffle(chosen)
                if with_pred and rng.random() < 0.8:
                    m = rng.randint(1, min(k + 2, experts))
                    pred = rng.sample(range(experts), m)
                    lines.append("p %d %d %d %s" % (s, pos, l, " ".join(map(str, pred))))
                    recs.append((s, pos, l, chosen, pred))
                else:
                    recs.append((s, pos, l, chosen, None))
                lines.append("r %d %d %d %s" % (s, pos, l, " ".join(map(str, chosen))))
    return "\n".join(lines) + "\n", recs


def simulate(recs, layers, experts, slots, policy):
    acc = [(l * experts + e, l) for (_, _, l, chosen, _) in recs for e in chosen]
    nxt = [None] * len(acc)
    seen = {}
    for i in range(len(acc) - 1, -1, -1):
        nxt[i] = seen.get(acc[i][0])
        seen[acc[i][0]] = i
    resident = {}  # unit -> dict(last, uses, loaded, last_acc)
    clock = load = misses = 0
    for i, (u, layer) in enumerate(acc):
        clock += 1
        if u not in resident:
            misses += 1
            if len(resident) == slots:
                def key(v):
                    st = resident[v]
                    if policy == "lru":
                        return (st["last"],)
                    if policy == "lfu":
                        return (st["uses"], st["last"])
                    if policy == "fifo":
                        return (st["loaded"],)
                    if policy == "predictive":
                        d = (v // experts - layer) % layers or layers
                    else:  # belady
                        n = nxt[st["last_acc"]]
                        d = (1 << 30) if n is None else n - i
                    return (-d, st["last"])
                victim = min(resident, key=key)
                del resident[victim]
            load += 1
            resident[u] = {"uses": 0, "loaded": load}
        st = resident[u]
        st["last"] = clock
        st["uses"] += 1
        st["last_acc"] = i
    return misses


def run(exe, path, slots):
    out = subprocess.run([exe, path, "--slots", ",".join(map(str, slots)), "--json"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def main():
    exe = sys.argv[1]
    rng = random.Random(20261206)
    with tempfile.TemporaryDirectory() as d:
        cases = [(4, 16, 2, 30, 1, False), (6, 32, 4, 20, 3, True), (3, 8, 8, 25, 2, True),
                 (24, 32, 4, 6, 1, True)]
        for ci, (layers, experts, k, tokens, seqs, with_pred) in enumerate(cases):
            text, recs = make_trace(rng, layers, experts, k, tokens, seqs, with_pred)
            path = os.path.join(d, "t%d.trace" % ci)
            with open(path, "w") as f:
                f.write(text)
            n_units = layers * experts
            slots = sorted({1, k, n_units // 3 or 1, n_units // 2 or 1, n_units})
            got = run(exe, path, slots)
            check(got["tokens"] == tokens * seqs and got["records"] == len(recs),
                  "case %d: %d tokens, %d records (got %d, %d)" % (ci, tokens * seqs, len(recs),
                                                                  got["tokens"], got["records"]))
            by = {(r["slots"], r["policy"]): r["misses"] for r in got["runs"]}
            for s in slots:
                want = {p: simulate(recs, layers, experts, s, p)
                        for p in ("lru", "lfu", "fifo", "predictive", "belady")}
                for p, m in want.items():
                    check(by.get((s, p)) == m, "case %d slots %d %s: %s misses, the simulation %d"
                          % (ci, s, p, by.get((s, p)), m))
                check(all(want["belady"] <= m for m in want.values()),
                      "case %d slots %d: belady misses least (%s)" % (ci, s, want))
                if s == n_units:
                    check(want["lru"] == len({(l, e) for (_, _, l, c, _) in recs for e in c}),
                          "case %d: a pool of every expert misses each once" % ci)
            if with_pred:
                for row in got["predictor"]:
                    l = row["layer"]
                    mine = [(c, p) for (_, _, ll, c, p) in recs if ll == l and p is not None]
                    want = (sum(len(p) for _, p in mine), sum(len(c) for c, _ in mine),
                            sum(len(set(c) & set(p)) for c, p in mine))
                    check((row["predicted"], row["chosen"], row["both"]) == want,
                          "case %d layer %d predictor counts %s, want %s"
                          % (ci, l, (row["predicted"], row["chosen"], row["both"]), want))

        # malformed traces: refused with the line number and a reason
        bad = {
            "magic": ("not-a-trace 1\n", ":1:"),
            "shape": ("smoke-expert-trace 1\nlayers 0 experts 4 top_k 2 expert_bytes 10\n", ":2:"),
            "topk": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 5 expert_bytes 10\n", ":2:"),
            "layer": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nr 0 0 2 1 2\n", ":3:"),
            "expert": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nr 0 0 1 1 4\n", ":3:"),
            "repeat": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nr 0 0 1 3 3\n", ":3:"),
            "count": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nr 0 0 1 3\n", ":3:"),
            "negative": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nr 0 -1 1 0 3\n", ":3:"),
            "kind": ("smoke-expert-trace 1\nlayers 2 experts 4 top_k 2 expert_bytes 10\nx 0 0 1 0 3\n", ":3:"),
            "empty": ("", "empty"),
        }
        for name, (text, want) in bad.items():
            path = os.path.join(d, "bad-%s.trace" % name)
            with open(path, "w") as f:
                f.write(text)
            out = subprocess.run([exe, path], capture_output=True, text=True, timeout=60)
            check(out.returncode == 1 and want in out.stderr,
                  "bad trace %s: exit %d, %r" % (name, out.returncode, out.stderr.strip()))
    n = len(failures)
    print("%d failed" % n)
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
