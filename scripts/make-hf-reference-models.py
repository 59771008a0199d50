#!/usr/bin/env python3
"""Make small random-weight Hugging Face models and record transformers' logits.

The independent reference for smoke's safetensors path (issue 3): for each
architecture smoke maps from config.json, transformers builds a tiny model
with random weights (seeded), saves it as a safetensors directory in float32,
float16 and bfloat16, and records the float32 logits transformers computes
from each saved file for fixed token sequences.  tests/unit/hf_model compares
smoke's logits with these.

Needs torch + transformers + tokenizers (NOT in CI: the outputs are committed
under tests/fixtures/hf-models/, about 3 MB).  Run with a python that has
them, e.g.
    python -m venv ~/.cache/smoke-torch-venv
    ~/.cache/smoke-torch-venv/bin/pip install torch transformers tokenizers
    ~/.cache/smoke-torch-venv/bin/python scripts/make-hf-reference-models.py

Each model directory also gets a small tokenizer.json trained here with HF
`tokenizers` (byte-level BPE; SentencePiece-style BPE for Gemma), so the
directory is a complete model smoked can serve.

gpt-oss (GptOssForCausalLM) is made twice from one model: gpt-oss-bf16 as
save_pretrained writes it, and gpt-oss-mxfp4 in OpenAI's MXFP4 layout
written here (see the gpt-oss section below).  `--only gpt-oss` remakes just
those two and leaves the other fixtures alone.

Fixture layout: tests/fixtures/hf-models/<case>/ with config.json,
model.safetensors (or index + shards), tokenizer.json, tokenizer_config.json,
and reference.json = {"sequences": [[ids...]...], "logits": per sequence the
last LAST rows of logits, "argmax": per sequence per position,
"margin": the smallest top-1/top-2 gap of the reference (how close a tie is)}
(+ for gpt-oss-mxfp4 "dequant": a few expert rows as transformers
dequantises them).
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


def reference(path, **kw):
    """float32 logits of the model saved at path, as transformers computes them."""
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                              attn_implementation="eager", **kw)
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
    # --only gpt-oss: (re)make just the gpt-oss cases, leaving the others.
    only_gpt_oss = sys.argv[1:] == ["--only", "gpt-oss"]
    if len(sys.argv) > 1 and not only_gpt_oss:
        raise SystemExit("usage: make-hf-reference-models.py [--only gpt-oss]")
    torch.manual_seed(1234)
    if only_gpt_oss:
        for n in GPT_OSS_CASES:
            shutil.rmtree(os.path.join(OUT, n), ignore_errors=True)
    else:
        # only the directories this script makes: others live beside them
        # (scripts/make-moe-reference-models.py's qwen3, qwen3moe, mixtral)
        for name, _, _, _ in configs():
            for dt in ("f32", "f16", "bf16"):
                shutil.rmtree(os.path.join(OUT, f"{name}-{dt}"), ignore_errors=True)
        for n in GPT_OSS_CASES:
            shutil.rmtree(os.path.join(OUT, n), ignore_errors=True)
        os.makedirs(OUT, exist_ok=True)
    toks = {False: train_tokenizer(False), True: train_tokenizer(True)}
    for t in toks.values():
        assert t.get_vocab_size() <= VOCAB, t.get_vocab_size()
    summary = []
    for seed in range(4242, 4242 + 300):
        if write_gpt_oss(toks[False], seed, summary):
            break
    else:
        raise SystemExit("gpt-oss: no seed without near-ties")
    if only_gpt_oss:
        configs_list = []
    else:
        configs_list = list(configs())
    for name, cfg, spm, shard in configs_list:
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




# ---- gpt-oss ---------------------------------------------------------------
# GptOssForCausalLM twice: as transformers saves a dense checkpoint (bf16
# experts, gate_up_proj [E, H, 2I] with gate/up interleaved in the last
# dimension, down_proj [E, I, H]) and as OpenAI ships it (MXFP4 experts).
# The MXFP4 directory is written here from the same model: each expert
# matrix in [out, in] orientation (gate/up rows interleaved: row 2j is gate
# j, row 2j+1 up j), in groups of 32 along `in`, as
#   <proj>_blocks uint8 [E, out, in/32, 16]: byte i holds element 2i in its
#       low nibble and element 2i+1 in its high nibble (FP4 E2M1 codes,
#       values {+-0, 0.5, 1, 1.5, 2, 3, 4, 6});
#   <proj>_scales uint8 [E, out, in/32]: E8M0, the group's scale 2^(s-127);
# which is what transformers' integrations/mxfp4.py
# (_convert_moe_packed_tensors) and OpenAI's gpt_oss/torch/weights.py read.
# The MXFP4 reference logits are transformers' own, loading that directory
# with Mxfp4Config(dequantize=True) on the CPU; the script checks that they
# equal the dense model's with the experts replaced by the dequantised
# values (so the layout written here is the one transformers reads).

GPT_OSS_CASES = ["gpt-oss-bf16", "gpt-oss-mxfp4"]
FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def gpt_oss_config():
    return transformers.GptOssConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=32, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=6,
        num_experts_per_tok=3, sliding_window=8, max_position_embeddings=131072,
        rms_norm_eps=1e-5, initializer_range=0.25, tie_word_embeddings=False,
        # the real checkpoints' YaRN (truncate false: unrounded correction
        # range), on a head_dim of 16
        rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                         "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                         "original_max_position_embeddings": 4096},
        bos_token_id=None, eos_token_id=0, pad_token_id=0,
        architectures=["GptOssForCausalLM"])


def mxfp4_quantise(w):
    """w [E, out, in] float -> (blocks [E, out, in/32, 16] uint8, scales
    [E, out, in/32] uint8, the dequantised values [E, out, in]).  The scale
    is ggml's reference choice (floor(log2(amax)) - 2, so the largest value
    maps near 4..8 and saturates at 6); each value rounds to the nearest
    FP4 code."""
    E, O, I = w.shape
    g = w.float().reshape(E, O, I // 32, 32)
    amax = g.abs().amax(-1)
    e = torch.where(amax > 0, torch.floor(torch.log2(amax.clamp(min=1e-30))) - 2, torch.zeros_like(amax))
    e = e.clamp(-127, 127)
    scales = (e + 127).to(torch.uint8)
    x = g / torch.pow(2.0, e)[..., None]
    lut = torch.tensor(FP4_VALUES[:8])
    mag = (x.abs()[..., None] - lut).abs().argmin(-1)  # nearest magnitude
    code = mag + 8 * ((x < 0) & (mag > 0)).long()
    deq = torch.tensor(FP4_VALUES)[code] * torch.pow(2.0, e)[..., None]
    code = code.to(torch.uint8)
    blocks = code[..., 0::2] | (code[..., 1::2] << 4)
    return blocks.contiguous(), scales.contiguous(), deq.reshape(E, O, I)


def write_gpt_oss(tok, seed, summary):
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    cfg = gpt_oss_config()
    model = transformers.GptOssForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # _init_weights zeroes the expert biases and nn.Linear biases
            if name.endswith("bias") or name.endswith("_bias"):
                p.normal_(0.0, 0.25)
    model = model.to(torch.bfloat16).to(torch.float32)   # the values both files hold
    model.eval()
    rows = []

    def finish(d, ref_kw):
        save_tokenizer(tok, os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "add_bos_token": False,
                       "add_eos_token": False}, f, indent=1)
        p = os.path.join(d, "generation_config.json")
        if os.path.exists(p):
            os.remove(p)
        ref = reference(d, **ref_kw)
        ref["seed"] = seed
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
        rows.append((os.path.basename(d), ref["margin"]))
        return ref

    dense = os.path.join(OUT, "gpt-oss-bf16")
    model.to(torch.bfloat16).save_pretrained(dense, safe_serialization=True)
    model = model.to(torch.float32)
    finish(dense, {})

    # MXFP4: the experts quantised, everything else bf16 as in OpenAI's files.
    q = os.path.join(OUT, "gpt-oss-mxfp4")
    os.makedirs(q)
    sd = {}
    deq_model = transformers.GptOssForCausalLM(cfg)
    deq_model.load_state_dict(model.state_dict())
    for name, t in model.state_dict().items():
        if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
            blocks, scales, deq = mxfp4_quantise(t.transpose(1, 2))   # -> [E, out, in]
            sd[name + "_blocks"] = blocks
            sd[name + "_scales"] = scales
            with torch.no_grad():
                deq_model.get_parameter(name).copy_(deq.transpose(1, 2))
        else:
            sd[name] = t.to(torch.bfloat16).contiguous()
    save_file(sd, os.path.join(q, "model.safetensors"), metadata={"format": "pt"})
    c = json.loads(cfg.to_json_string())
    c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    c["dtype"] = "bfloat16"
    with open(os.path.join(q, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    ref = finish(q, {"quantization_config": transformers.Mxfp4Config(dequantize=True)})
    # A few expert rows of layer 0 as transformers dequantises them
    # (integrations/mxfp4.py), to check the converted blocks value by value:
    # gate/up row r = column 2r/2r+1 of gate_up [E, H, 2I], down row r =
    # column r of down [E, I, H].
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    gu = convert_moe_packed_tensors(sd["model.layers.0.mlp.experts.gate_up_proj_blocks"],
                                    sd["model.layers.0.mlp.experts.gate_up_proj_scales"], dtype=torch.float32)
    dn = convert_moe_packed_tensors(sd["model.layers.0.mlp.experts.down_proj_blocks"],
                                    sd["model.layers.0.mlp.experts.down_proj_scales"], dtype=torch.float32)
    picks = [("gate", 1, 3, gu[1, :, 6]), ("up", 1, 3, gu[1, :, 7]), ("gate", 5, 31, gu[5, :, 62]),
            ("up", 5, 0, gu[5, :, 1]), ("down", 2, 5, dn[2, :, 5]), ("down", 0, 63, dn[0, :, 63])]
    ref["dequant"] = [{"layer": 0, "proj": p, "expert": e, "row": r, "values": [float(v) for v in col]}
                      for p, e, r, col in picks]
    with open(os.path.join(q, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    # The same logits from the dense model with the dequantised experts.
    deq_model.eval()
    with torch.no_grad():
        for si, seq in enumerate(SEQUENCES):
            want = deq_model(torch.tensor([seq])).logits[0][-LAST:]
            got = torch.tensor(ref["logits"][si])
            err = float((want - got).abs().max())
            assert err < 1e-4, f"MXFP4 layout: transformers' logits differ from the dequantised model's by {err}"
    if min(m for _, m in rows) < MIN_MARGIN:
        for n in GPT_OSS_CASES:
            shutil.rmtree(os.path.join(OUT, n), ignore_errors=True)
        return False
    summary.extend(rows)
    return True


if __name__ == "__main__":
    sys.exit(main())
