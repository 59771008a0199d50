#!/usr/bin/env python3
"""Make small random-weight Hugging Face models and record transformers' logits.

The independent reference for smoke's safetensors path (issue 3): for each
architecture smoke maps from config.json, transformers builds a tiny model
with random weights (seeded), saves it as a safetensors directory in float32,
float16 and bfloat16, and records the float32 logits transformers computes
from each saved file for fixed token sequences.  tests/unit/hf_model compares
smoke's logits with these.

Needs torch + transformers + tokenizers (NOT in CI: the outputs are committed
under tests/fixtures/hf-models/, about 1.5 MB).  Run with a python that has
them, e.g.
    python -m venv ~/.cache/smoke-torch-venv
    ~/.cache/smoke-torch-venv/bin/pip install torch transformers tokenizers
    ~/.cache/smoke-torch-venv/bin/python scripts/make-hf-reference-models.py

Each model directory also gets a small tokenizer.json trained here with HF
`tokenizers` (byte-level BPE; SentencePiece-style BPE for Gemma), so the
directory is a complete model smoked can serve.

Fixture layout: tests/fixtures/hf-models/<case>/ with config.json,
model.safetensors (or index + shards), tokenizer.json, tokenizer_config.json,
and reference.json = {"sequences": [[ids...]...], "logits": per sequence the
last LAST rows of logits, "argmax": per sequence per position,
"margin": the smallest top-1/top-2 gap of the reference (how close a tie is)}.
"""
import json
import os
import shutil
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "hf-models")
TOK_VOCAB = 320  # tokenizer training target (the SentencePiece-style one ends a few above)
VOCAB = 336      # model rows: at least every tokenizer's size, as in real checkpoints
LAST = 4  # logits rows recorded per sequence (argmax is recorded for all)
GEN = 8   # greedy tokens generated from the first sequence

TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Streaming weights from disk to RAM to GPU, one layer at a time.",
    "def main():\n    return 42\n",
    "Numbers 1234567890 and symbols !@#$%^&*() and café, naïve, 東京.",
    "smoke keeps a model's weights in a hierarchy that stays resident.",
]

SEQUENCES = [
    [5, 17, 42, 99, 3, 250, 7],
    [(i * 37 + 11) % VOCAB for i in range(24)],
]


def train_tokenizer(spm_style):
    if spm_style:
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token=None))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                               normalizers.Replace(" ", "\u2581")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
        alphabet = [f"<0x{b:02X}>" for b in range(256)]
        trainer = trainers.BpeTrainer(vocab_size=TOK_VOCAB, special_tokens=specials + alphabet,
                                      initial_alphabet=[], show_progress=False)
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        trainer = trainers.BpeTrainer(vocab_size=TOK_VOCAB, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    tok.train_from_iterator(TEXT * 4, trainer)
    return tok


def stream_text(tok, ids):
    """The text a streaming detokeniser emits for generated ids.  It equals
    tok.decode() except in two places, where decode() needs the whole
    sequence: a run of <0xXX> byte-fallback tokens that is not valid UTF-8
    as a whole becomes one U+FFFD per token in decode(), whereas a stream
    emits each complete character at once and replaces each maximal
    ill-formed subpart (Python's errors="replace", Unicode's recommended
    practice); and decode() strips the first leading space of what it is
    given, which a continuation keeps.  Byte-level BPE tokenizers have
    neither (their decoder already joins bytes with the same replacement)."""
    if not json.loads(tok.to_str())["model"].get("byte_fallback"):
        return tok.decode(ids, skip_special_tokens=True)
    special = {a.content for a in tok.get_added_tokens_decoder().values() if a.special}
    out = b""
    for i in ids:
        t = tok.id_to_token(i)
        if t is None or t in special:   # rows past the vocabulary: no text
            continue
        if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            out += bytes([int(t[3:5], 16)])
        else:
            out += t.replace("\u2581", " ").encode()
    return out.decode("utf-8", errors="replace")


def save_tokenizer(tok, path):
    """Save, with the <0xXX> byte-fallback tokens as ordinary vocabulary
    entries: the trainer had to take them as special tokens to keep them,
    but real SentencePiece-style checkpoints (Llama 2, Gemma) list them in
    the vocabulary only, so generated bytes are decoded, not skipped."""
    tok.save(path)
    with open(path) as f:
        j = json.load(f)
    j["added_tokens"] = [a for a in j["added_tokens"]
                         if not (a["content"].startswith("<0x") and len(a["content"]) == 6)]
    with open(path, "w") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)


def configs():
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
                  rms_norm_eps=1e-6, initializer_range=0.25)
    # llama: llama3 rope scaling and q/k/v/o biases (attention_bias).
    yield "llama", transformers.LlamaConfig(
        num_hidden_layers=2, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        bos_token_id=None, eos_token_id=0, **common), False, None
    yield "mistral", transformers.MistralConfig(
        num_hidden_layers=2, rope_theta=1000000.0, sliding_window=None, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=0, **common), False, None
    # Sharded on disk: two safetensors files and an index.
    yield "qwen2", transformers.Qwen2Config(
        num_hidden_layers=2, rope_theta=1000000.0, tie_word_embeddings=False,
        use_sliding_window=False, bos_token_id=None, eos_token_id=0, **common), False, "40KB"
    yield "gemma3", transformers.Gemma3TextConfig(
        # Linear rope scaling on the global layers only, as Gemma 3 4B+ do.
        num_hidden_layers=6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        sliding_window=8, query_pre_attn_scalar=16, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
        bos_token_id=2, eos_token_id=1, pad_token_id=0, **common), True, None


MODEL_CLASS = {
    "llama": transformers.LlamaForCausalLM,
    "mistral": transformers.MistralForCausalLM,
    "qwen2": transformers.Qwen2ForCausalLM,
    "gemma3": transformers.Gemma3ForCausalLM,
}


def reference(path):
    """float32 logits of the model saved at path, as transformers computes them."""
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()
    out = {"sequences": SEQUENCES, "logits": [], "argmax": [], "margin": None}
    margin = float("inf")
    with torch.no_grad():
        for seq in SEQUENCES:
            logits = model(torch.tensor([seq])).logits[0]
            top2 = torch.topk(logits, 2, dim=-1).values
            margin = min(margin, float((top2[:, 0] - top2[:, 1]).min()))
            out["argmax"].append([int(i) for i in logits.argmax(-1)])
            out["logits"].append([[float(f"{v:.7g}") for v in row] for row in logits[-LAST:].tolist()])
        # Greedy continuation of the first sequence, as transformers
        # generates it (stopping at the config's EOS), and its text as the
        # directory's own tokenizer decodes it: the daemon must produce the
        # same text from the same prompt ids.
        prompt = torch.tensor([SEQUENCES[0]])
        gen = model.generate(prompt, max_new_tokens=GEN, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=0)
        new = [int(i) for i in gen.sequences[0, len(SEQUENCES[0]):]]
        for sc in gen.scores:
            top2 = torch.topk(sc[0], 2).values
            margin = min(margin, float(top2[0] - top2[1]))
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        out["generate"] = {"prompt_ids": SEQUENCES[0], "ids": new,
                           "text": tok.decode(new, skip_special_tokens=True),
                           "stream_text": stream_text(tok, new)}
    out["margin"] = margin
    return out


def main():
    torch.manual_seed(1234)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    toks = {False: train_tokenizer(False), True: train_tokenizer(True)}
    for t in toks.values():
        assert t.get_vocab_size() <= VOCAB, t.get_vocab_size()
    summary = []
    for name, cfg, spm, shard in configs():
        cfg.architectures = [MODEL_CLASS[name].__name__]
        # Reseed until no reference logit row is a near-tie (top-1 must be
        # unambiguous for the test's 100% top-1 agreement to be fair).
        for seed in range(sum(map(ord, name)), sum(map(ord, name)) + 300):
            if write_all(name, cfg, spm, shard, toks, seed, summary):
                break
        else:
            raise SystemExit(f"{name}: no seed without near-ties")
    for n, mg in summary:
        print(f"{n}: smallest top-1 margin {mg:.4g}")
    print("transformers", transformers.__version__, "torch", torch.__version__)


def legacy_config(d):
    """Rewrite config.json the way transformers 4.x wrote it (rope_theta,
    rope_scaling, rope_local_base_freq instead of rope_parameters): most
    published checkpoints look like this, and transformers still reads it."""
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    if "full_attention" in rp:
        c["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
        rp = rp["full_attention"]
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = None if rp.get("rope_type") == "default" else rp
    with open(p, "w") as f:
        json.dump(c, f, indent=2)


MIN_MARGIN = 0.03


def write_all(name, cfg, spm, shard, toks, seed, summary):
    torch.manual_seed(seed)
    model = MODEL_CLASS[name](cfg)
    model.eval()
    rows = []
    for dtype_name, dtype in (("f32", torch.float32), ("f16", torch.float16),
                              ("bf16", torch.bfloat16)):
            d = os.path.join(OUT, f"{name}-{dtype_name}")
            m = model.to(dtype)
            kw = {"max_shard_size": shard} if shard else {}
            m.save_pretrained(d, safe_serialization=True, **kw)
            for f in ("generation_config.json",):
                p = os.path.join(d, f)
                if os.path.exists(p):
                    os.remove(p)
            if dtype_name == "f16":
                legacy_config(d)
            save_tokenizer(toks[spm], os.path.join(d, "tokenizer.json"))
            tc = {"bos_token": "<bos>" if spm else None,
                  "eos_token": "<eos>" if spm else "<|endoftext|>",
                  "add_bos_token": bool(spm), "add_eos_token": False}
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump(tc, f, indent=1)
            ref = reference(d)
            ref["seed"] = seed
            with open(os.path.join(d, "reference.json"), "w") as f:
                json.dump(ref, f, separators=(",", ":"))
            rows.append((f"{name}-{dtype_name}", ref["margin"]))
            model = model.to(torch.float32)
    if min(m for _, m in rows) < MIN_MARGIN:
        return False
    summary.extend(rows)
    return True


if __name__ == "__main__":
    sys.exit(main())
