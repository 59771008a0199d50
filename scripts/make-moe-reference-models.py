#!/usr/bin/env python3
"""Tiny random-weight MoE (and Qwen3 dense) models made by the reference
tools themselves, with their outputs as fixtures (issue 13, item 5).

For Qwen3ForCausalLM, Qwen3MoeForCausalLM and MixtralForCausalLM:
  1. transformers builds a tiny model with random weights (seeded) and saves
     it as a bfloat16 safetensors directory, tests/fixtures/hf-models/
     <arch>-bf16/, with a tiny byte-level BPE tokenizer and reference.json =
     transformers' float32 logits for fixed token sequences (the layout of
     scripts/make-hf-reference-models.py, whose tokenizer and reference()
     are reused here);
then for those three and gpt-oss (tests/fixtures/hf-models/gpt-oss-bf16 and
gpt-oss-mxfp4, made by scripts/make-hf-reference-models.py, only read here):
  2. llama.cpp's own converter (convert_hf_to_gguf.py of the reference
     build's source tree, with its gguf-py) turns the directory into a BF16
     GGUF, and the reference build's llama-quantize makes Q8_0 of it (for
     gpt-oss: MXFP4_MOE, experts MXFP4 and the other matrices Q8_0, as the
     published gpt-oss GGUFs are); both land in tests/fixtures/reference/
     converted/<arch>-{bf16,q8_0,mxfp4}.gguf.  The MXFP4 checkpoint
     gpt-oss-mxfp4 is converted as OpenAI's is (experts repacked, not
     requantised): converted/gpt-oss-hf-mxfp4-bf16.gguf;
  3. the reference build's llama-ref records greedy continuations with the
     top-5 logits of every step (the teacher-forced reference) for each
     GGUF: tests/fixtures/reference/converted-<arch>-<type>-greedy.json, in
     scripts/make-reference-fixtures' format; and the same for an F32
     conversion of each directory (converted-<arch>-f32-greedy.json, the
     GGUF itself not committed: the BF16 file's values, widened, which is
     what smoke computes on the BF16 file; see F32_NOTE).
tests/unit/formats/hf/test_hf_moe.c holds smoke to all three.

Why the GGUFs are committed, not made at test time: convert_hf_to_gguf.py
imports torch (and reads the directories through it), which CI does not
have, and a torch-free converter would be our own writer again, which is
what these fixtures exist to avoid.  They are small (largest about 0.6 MB).
When scripts/make-hf-reference-models.py remakes gpt-oss-bf16/-mxfp4,
rerun this with --no-hf --only gpt-oss --only gpt-oss-hf-mxfp4 (the test
compares the FNV-1a of each source's model.safetensors recorded here).

The converter does not know the tiny tokenizer's pre-tokenizer hash and
refuses it ("BPE pre-tokenizer was not recognized"); it is byte-level BPE
with GPT-2's split regex (tokenizers' ByteLevel(use_regex=True)), which
llama.cpp calls "gpt-2", so that is what get_vocab_base_pre answers for it
(the only change to the converter's behaviour, applied in its process).

Needs torch + transformers + tokenizers (the torch venv) and the reference
build (scripts/build-llama-cpp, plus `cmake --build <build dir> --target
llama-quantize`).  Run:
    ~/.cache/smoke-torch-venv/bin/python scripts/make-moe-reference-models.py [--only NAME ...]
NAME is qwen3, qwen3moe, mixtral, gpt-oss or gpt-oss-hf-mxfp4; --no-hf keeps the existing
HF directories and redoes steps 2-3 only.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.machinery import SourceFileLoader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke"))
LLAMA_SRC = os.path.join(CACHE, "llama.cpp", "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
LLAMA_BIN = os.path.join(CACHE, "llama.cpp", "build-0.3.36-avx2-fma-f16c-nollamafile-norepack", "bin")
HF_OUT = os.path.join(ROOT, "tests", "fixtures", "hf-models")
GGUF_OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "converted")

# name -> (HF directory, llama-quantize type, its file suffix).  gpt-oss-hf-mxfp4
# is the MXFP4 checkpoint converted as OpenAI's gpt-oss-20b is: the
# converter repacks the experts' blocks into GGUF MXFP4 (no requantisation)
# and writes the rest as asked (BF16; F32 for the widened run).
SOURCES = {
    "qwen3": ("qwen3-bf16", "Q8_0", "q8_0"),
    "qwen3moe": ("qwen3moe-bf16", "Q8_0", "q8_0"),
    "mixtral": ("mixtral-bf16", "Q8_0", "q8_0"),
    "gpt-oss": ("gpt-oss-bf16", "MXFP4_MOE", "mxfp4"),
    "gpt-oss-hf-mxfp4": ("gpt-oss-mxfp4", None, None),
}
ARCHS = list(SOURCES)
GREEDY_N = 32
MIN_MARGIN = 0.03   # transformers' top-1/top-2 gap everywhere (as make-hf-reference-models)
MIN_ROUTER_MARGIN = 0.02  # router logits: k-th minus (k+1)-th, everywhere (router_margin)


def log(*a):
    print("make-moe-reference-models:", *a, file=sys.stderr, flush=True)


def load(name, path):
    return SourceFileLoader(name, os.path.join(ROOT, "scripts", path)).load_module()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ---- 1. transformers --------------------------------------------------------

def hf_configs(transformers, vocab):
    common = dict(vocab_size=vocab, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, rms_norm_eps=1e-6, initializer_range=0.25,
                  bos_token_id=None, eos_token_id=0, pad_token_id=0)
    # Qwen3 dense: per-head q/k RMSNorm, head_dim 32 != hidden/heads (q: 64 -> 128), tied.
    yield "qwen3", transformers.Qwen3ForCausalLM, transformers.Qwen3Config(
        num_hidden_layers=2, head_dim=32, intermediate_size=128, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False, **common)
    # Qwen3-MoE: 16 experts top-4, softmax -> top-k -> renormalise (norm_topk_prob),
    # expert width 32 != intermediate_size, every layer MoE, no shared expert, untied.
    yield "qwen3moe", transformers.Qwen3MoeForCausalLM, transformers.Qwen3MoeConfig(
        num_hidden_layers=2, head_dim=32, intermediate_size=128, moe_intermediate_size=32,
        num_experts=16, num_experts_per_tok=4, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[], rope_theta=1000000.0, tie_word_embeddings=False,
        use_sliding_window=False, **common)
    # Mixtral: 8 experts top-2, head_dim 16, untied.
    yield "mixtral", transformers.MixtralForCausalLM, transformers.MixtralConfig(
        num_hidden_layers=2, head_dim=16, intermediate_size=32, num_local_experts=8,
        num_experts_per_tok=2, rope_theta=1000000.0, sliding_window=None,
        tie_word_embeddings=False, **common)


def published_spelling(d):
    """transformers 5 saves Qwen3-MoE's expert count as num_local_experts;
    the published checkpoints (Qwen/Qwen3-30B-A3B) and transformers 4 say
    num_experts, which transformers 5 still reads.  Written as published."""
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    c["num_experts"] = c.pop("num_local_experts")
    with open(p, "w") as f:
        json.dump(c, f, indent=2)


def router_margin(d, ref):
    """The smallest gap between the k-th and (k+1)-th router logit (the last
    chosen expert and the first one left out) over every layer and position
    of the reference sequences and the greedy continuation, in float32
    transformers; None for a dense model.  A gap near zero is a routing
    near-tie: the fp16 attention of smoke and llama.cpp, or llama.cpp's
    bf16 activations, may choose the other expert there and move the logits
    by far more than the tolerance, so such seeds are skipped."""
    import torch
    import transformers
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()
    k = model.config.num_experts_per_tok if hasattr(model.config, "num_experts_per_tok") else 0
    gaps = []

    def hook(mod, inp, out):
        x = inp[0].reshape(-1, inp[0].shape[-1]).float()
        s = torch.sort(x @ mod.weight.float().T, dim=-1, descending=True).values
        gaps.append(float((s[:, k - 1] - s[:, k]).min()))

    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if k and gate is not None and hasattr(gate, "weight") and gate.weight.shape[0] > k:
            gate.register_forward_hook(hook)
    seqs = ref["sequences"] + [ref["generate"]["prompt_ids"] + ref["generate"]["ids"]]
    with torch.no_grad():
        for seq in seqs:
            model(torch.tensor([seq]))
    return min(gaps) if gaps else None


def make_hf(name, cls, cfg, tok, hfref):
    import torch
    cfg.architectures = [cls.__name__]
    d = os.path.join(HF_OUT, f"{name}-bf16")
    base = sum(map(ord, name)) * 7
    for seed in range(base, base + 300):
        torch.manual_seed(seed)
        model = cls(cfg)
        with torch.no_grad():   # routers: spread the choices (the init leaves them narrow)
            for n, p in model.named_parameters():
                if n.endswith("mlp.gate.weight") or n.endswith("block_sparse_moe.gate.weight"):
                    p.normal_(0.0, 1.0)
        model.eval()
        shutil.rmtree(d, ignore_errors=True)
        model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
        p = os.path.join(d, "generation_config.json")
        if os.path.exists(p):
            os.remove(p)
        hfref.save_tokenizer(tok, os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "add_bos_token": False,
                       "add_eos_token": False}, f, indent=1)
        if name == "qwen3moe":
            published_spelling(d)
        ref = hfref.reference(d)
        ref["seed"] = seed
        ref["router_margin"] = router_margin(d, ref)
        ref["generated_by"] = "scripts/make-moe-reference-models.py"
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
        rm = ref["router_margin"]
        if ref["margin"] >= MIN_MARGIN and (rm is None or rm >= MIN_ROUTER_MARGIN):
            log(f"{name}-bf16: seed {seed}, smallest top-1 margin {ref['margin']:.4g}, "
                f"router margin {rm}")
            return
    raise SystemExit(f"{name}: no seed without near-ties")


# ---- 2. llama.cpp's converter and llama-quantize ---------------------------

CONVERT_BOOT = r"""
import runpy, sys
src = sys.argv[1]
sys.path[:0] = [src, src + "/gguf-py"]
import conversion.base as base
orig = base.TextModel.get_vocab_base_pre
def pre(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        # the tiny byte-level BPE tokenizer: GPT-2's split regex
        return "gpt-2"
base.TextModel.get_vocab_base_pre = pre
sys.argv = [src + "/convert_hf_to_gguf.py"] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert(hf_dir, out, outtype="bf16"):
    cmd = [sys.executable, "-c", CONVERT_BOOT, LLAMA_SRC, hf_dir, "--outtype", outtype, "--outfile", out]
    log("convert", os.path.relpath(hf_dir, ROOT), "->", os.path.relpath(out, ROOT))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout[-6000:])
        raise SystemExit("convert_hf_to_gguf.py failed")
    return " ".join(["convert_hf_to_gguf.py", os.path.relpath(hf_dir, ROOT), "--outtype", outtype])


def quantize(src, out, qtype):
    exe = os.path.join(LLAMA_BIN, "llama-quantize")
    if not os.path.exists(exe):
        raise SystemExit(f"{exe} missing: cmake --build {os.path.dirname(LLAMA_BIN)} --target llama-quantize -j2")
    log("quantize", os.path.basename(src), "->", os.path.basename(out), qtype)
    r = subprocess.run([exe, src, out, qtype], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout[-6000:])
        raise SystemExit("llama-quantize failed")
    return f"llama-quantize {os.path.basename(src)} {os.path.basename(out)} {qtype}"


def tensor_types(path):
    sys.path.insert(0, os.path.join(LLAMA_SRC, "gguf-py"))
    import gguf
    r = gguf.GGUFReader(path)
    types = {}
    for t in r.tensors:
        types.setdefault(t.tensor_type.name, []).append(t.name)
    return {k: len(v) for k, v in sorted(types.items())}


# ---- 3. llama.cpp's greedy tokens and logits ------------------------------

F32_NOTE = ("llama.cpp on an F32 conversion of the same directory (not committed): the same values as "
            "converted/{name}-bf16.gguf, widened.  ggml rounds activations to bf16 before BF16 dot "
            "products, smoke keeps them in float, so smoke on the BF16 file computes what llama.cpp "
            "computes on this F32 file, up to summation order: tests/unit/formats/hf/test_hf_moe.c "
            "holds smoke's BF16 run to these logits.")


def fixtures(mrf, ver, name, dtype, path, made_by, src_dir, note=None):
    info = mrf.model_info(LLAMA_BIN, path)
    meta = mrf.common_meta(ver, path, sha256(path))
    meta["generated_by"] = "scripts/make-moe-reference-models.py"
    meta["model"] = "converted/" + os.path.basename(path)
    if note:
        meta["note"] = note
    meta["model_info"] = info
    meta["made_by"] = made_by
    st = os.path.join(src_dir, "model.safetensors")
    with open(st, "rb") as f:
        st_fnv = "%016x" % mrf.fnv1a64(f.read())
    # the test checks the FNV-1a: it says when the directory changed since
    meta["source"] = {"dir": os.path.relpath(src_dir, ROOT), "model_safetensors_sha256": sha256(st),
                      "model_safetensors_fnv1a64": st_fnv}
    meta["tensor_types"] = tensor_types(path)
    meta["size_bytes"] = os.path.getsize(path)
    cases = mrf.greedy(LLAMA_BIN, path, mrf.TINY_PROMPTS, GREEDY_N)
    margin = min(s["top5"][0][1] - s["top5"][1][1] for c in cases for s in c["steps"])
    mrf.write_json(f"converted-{name}-{dtype}-greedy.json",
                   {**meta, "protocol": mrf.GREEDY_PROTOCOL, "n_predict": GREEDY_N,
                    "smallest_top1_margin": margin, "cases": cases})
    log(f"{name}-{dtype}: {os.path.getsize(path)} bytes, smallest llama.cpp top-1 margin {margin:.4g}")


def version():
    ver = {}
    p = os.path.join(CACHE, "llama.cpp", "VERSION-ref")
    with open(p) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            ver[k] = v
    return ver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", choices=ARCHS)
    ap.add_argument("--no-hf", action="store_true", help="keep the HF directories; convert and record only")
    args = ap.parse_args()
    sel = args.only or ARCHS
    mrf = load("make_reference_fixtures", "make-reference-fixtures")
    os.makedirs(GGUF_OUT, exist_ok=True)
    if not args.no_hf and any(a in ("qwen3", "qwen3moe", "mixtral") for a in sel):
        import torch
        import transformers
        hfref = load("make_hf_reference_models", "make-hf-reference-models.py")
        tok = hfref.train_tokenizer(False)
        assert tok.get_vocab_size() <= hfref.VOCAB
        for name, cls, cfg in hf_configs(transformers, hfref.VOCAB):
            if name in sel:
                make_hf(name, cls, cfg, tok, hfref)
        log("transformers", transformers.__version__, "torch", torch.__version__)
    ver = version()
    for name in sel:
        src, qtype, qname = SOURCES[name]
        hf_dir = os.path.join(HF_OUT, src)
        if not os.path.exists(os.path.join(hf_dir, "config.json")):
            log(f"SKIP {name}: {os.path.relpath(hf_dir, ROOT)} does not exist")
            continue
        bf16 = os.path.join(GGUF_OUT, f"{name}-bf16.gguf")
        conv = convert(hf_dir, bf16)
        fixtures(mrf, ver, name, "bf16", bf16, [conv], hf_dir)
        with tempfile.TemporaryDirectory() as td:
            f32 = os.path.join(td, f"{name}-f32.gguf")
            fixtures(mrf, ver, name, "f32", f32, [convert(hf_dir, f32, "f32")], hf_dir,
                     note=F32_NOTE.format(name=name))
        if qtype:
            q = os.path.join(GGUF_OUT, f"{name}-{qname}.gguf")
            fixtures(mrf, ver, name, qname, q, [conv, quantize(bf16, q, qtype)], hf_dir)

if __name__ == "__main__":
    sys.exit(main())
