#!/usr/bin/env python3
"""make-hf-tokenizer-fixtures.py - small Hugging Face tokenizers and their ids.

The reference for daemon/formats/hf/tokenizer_json.c (tokenizer.json -> GGUF keys ->
our tokenizer) is the Hugging Face `tokenizers` library itself.  This script
TRAINS small BPE tokenizers with it (vocabularies of 500-1000 tokens, on the
public-domain text in tests/fixtures/text plus a generated multilingual block),
in the shapes real models use, and records what `tokenizers` makes of a list of
hard strings:

  gpt2            ByteLevel pre-tokenizer with its built-in GPT-2 regex; merges
                  written as "a b" strings (the classic format)
  gpt2-prefix     the same model with ByteLevel(add_prefix_space=true)
  llama3          Split(Llama 3 regex) + ByteLevel, ignore_merges (with extra
                  whole-word vocabulary entries that merges cannot reach), added
                  specials after the model vocabulary, TemplateProcessing BOS,
                  generation_config.json with a list of EOS ids
  qwen2           NFC normaliser + Split(Qwen2 regex) + ByteLevel, no BOS, a
                  non-special added token, chat templates as a named list
  spm-legacy      Llama 2 style: Prepend("\u2581") + Replace(" ", "\u2581")
                  normaliser, no pre-tokenizer, byte_fallback with <0x00>..<0xFF>
                  at ids 3..258, unk, TemplateProcessing "<s> $A"
  spm-unk         the same without byte_fallback: <unk>, fused (spm-unk-nofuse:
                  not fused)
  metaspace       Metaspace(prepend_scheme="always", split=true), byte_fallback
  metaspace-first the same model with Metaspace(prepend_scheme="first",
                  split=false) (what transformers writes for legacy=false)

Each goes to tests/fixtures/hf-tokenizers/<name>/ as tokenizer.json (+
tokenizer_config.json, generation_config.json) and expect.json:

  {"generated_by": ..., "tokenizers": VERSION,
   "cases": [{"text": S, "ids": encode(S, add_special_tokens=False),
              "ids_special": encode(S, add_special_tokens=True),
              "decodes": decode(ids, skip_special_tokens=False) == S}]}

It also writes tests/fixtures/hf-tokenizers/bad/<case>/ (broken tokenizer.json
variants, each a few hundred bytes) and bad/bad.json: for each case the errno
name the loader must return and words its message must contain.

Needs the `tokenizers` package (in the venv of scripts/setup).  The small
fixtures are committed and CI only runs the C test against them; the --big
ones are made afresh by scripts/test on every run.

--big DIR (not committed: tens of MB) writes the same for real vocabularies,
rebuilt as tokenizer.json from llama.cpp's vocabulary files (scripts/fetch-vocabs)
and the default model: Llama 3, Qwen2, GPT-2 (their tokens, types and merges in
the layout of Meta's / Qwen's / OpenAI's tokenizer.json), Llama 2 and Gemma 3
(SentencePiece vocabularies as BPE with byte fallback, merges derived from the
scores as transformers' LlamaConverter does).  The strings are the hard ones,
llama.cpp's own test strings for that vocabulary and the training text.  The C
test checks them when SMOKE_HF_TOKENIZERS_BIG (default ~/.cache/smoke/
hf-tokenizers-big) exists.  gpt-oss-real is gpt-oss's own tokenizer.json
(o200k_harmony) as scripts/fetch-o200k builds it (SMOKE_O200K_DIR, default
~/.cache/smoke/o200k), with make-tokenizer-fixtures' GPT4O_HARD and
GPT_OSS_HARD added to the strings.

--o200k-split [DIR] only writes DIR/o200k-split.json (default
tests/fixtures/tokenizer, committed): the words `tokenizers` makes of hard
strings with the o200k regex alone (no vocabulary needed).

Usage: make-hf-tokenizer-fixtures.py [--out DIR] [--big DIR] [--o200k-split [DIR]]
"""
import argparse
import json
import os
import shutil
import struct

import tokenizers
from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "tests", "fixtures", "text", "us-founding-documents.txt")

LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
             " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# tiktoken's o200k_base regex (gpt-4o; gpt-oss's o200k_harmony), the string of
# gpt-oss's tokenizer.json (transformers' GptOssConverter copies tiktoken's).
O200K_RE = ("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
            "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}|"
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# The regexes above are the exact strings of Meta's and Qwen's tokenizer.json.
assert "\\p{N}{1,3}" in LLAMA3_RE and "\\p{N}{1,3}" not in QWEN2_RE

# Generated so that merges cover more than ASCII: scripts, digits, code, emoji.
SYNTH = [
    "Tokyo is the capital of Japan: \u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",
    "\u6771\u4eac \u65e5\u672c \u9996\u90fd \u6771\u4eac\u306e\u5929\u6c17",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00e0 la cr\u00e8me br\u00fbl\u00e9e, stra\u00dfe",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c \u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \uc548\ub155\ud558\uc138\uc694",
    "def f(x):\n\treturn x ** 2  # square\n",
    "for (int i = 0; i < 10; i++) { sum += a[i]; }",
    "1234567890 3.14159 2,718 1e-10 0x1F 2024-01-31 12:30",
    "emoji \U0001f642 \U0001f600 \U0001f389 \U0001f44d",
    "don't can't won't I'm we'll they've she'd it's",
    "<html><body><p>Hello, world!</p></body></html>",
]


def corpus():
    with open(TEXT, encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n") if l.strip()]
    return lines + SYNTH * 20


S = chr
HARD = [
    "", " ", "  ", " " * 31, "\t", "\t\t\t", "\n", "\n" * 7, "\r\n", "\r\n\r\n",
    " \r\n \t\r\n x \t\n  y ", "a b  c   d    e", "   leading", "trailing   ", "x\n\n\ny",
    "\v\f\x1c\x1d\x1e\x1f\x85", "\u00a0\u2000\u2003\u3000 nbsp", "\u2028\u2029 separators",
    "0", "12", "123", "1234", "12345", "1234567", "1" * 60, "3.14159 2,718 1e-10 0x1F -42 +7 007",
    "\u0663\u0664\u0665 \uff11\uff12\uff13 \u2160\u2161 \u00bd\u00b2",
    "don't can't I'm we'll they've she'd IT'S WE'LL 'tis ''",
    "'s 's 'S x's x'S x'LL x'Re", " 's", "'", "''''", "x'\u017f x'\u212a",
    "caf\u00e9 na\u0131ve r\u00e9sum\u00e9",
    # combining marks, decomposed forms (NFC changes them), Hangul jamo
    "e\u0301 n\u0303 a\u0308\u0304", "cafe\u0301 re\u0301sume\u0301", "A\u030a \u212b \u00c5",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab", "q\u0307\u0323 \u1e0b\u0323", "\u0344 \u0958 \u2126",
    "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\U0001f642\U0001f600\U0001f389", "\U0001f468\u200d\U0001f469\u200d\U0001f467 x",
    "\U0001f3f3\ufe0f\u200d\U0001f308 \U0001f44d\U0001f3fd", "\U0001d400\U0001d401 \U00010348",
    "\ufeffBOM at start", "zero\u200bwidth\u200cjoin\u200d", "\u2581literal \u2581\u2581 block",
    "\u0130stanbul \u212a\u212b \u00df \u017f", "!!!???...---", "#$%&*+<=>^`|~", "a.b,c;d:e",
    "([{<>}])", "x==y!=z<=w", "@user #tag $5 50% a&b", "...\n\n...",
    "def f(x):\n\treturn x ** 2  # sq\n", '{"k": [1, 2.5, "v"], "n": null}',
    "https://example.com/p?a=1&b=two#frag", "C:\\path\\to\\file.txt",
    # invalid-ish: U+FFFD, noncharacters, private use, controls, NUL
    "\ufffd\ufffe\uffff \ue000\U000f0000", "x\x00y", "\x00", "\x01\x02\x03\x1b[0m",
    "\x7f\x80\x9f\u00a0",
    # special-token texts inside text
    "<|endoftext|>", "<|endoftext|>text<|endoftext|>", "a<|endoftext|>b",
    "<|im_start|>system\nYou are<|im_end|>\n<|endoftext|>", " <|im_start|> x <|im_end|> ",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<s></s><unk>", "<s>text</s>", " <s> x </s> ", "<<s>>", "<s", "<|im_start|",
    "<tool_call>{\"a\": 1}</tool_call>", "x<tool_call>y",
    "<|endoftext|><|endoftext|>", "<|im_end|><|im_start|>",
    "<|sep|><|cont", "x<|sep|><|cont|>", "sep|><|cont<|sep|>", "a <mask> b", "x  \t<mask>y",
    "<mask>", "  <mask>", " <mask><mask>  ", "<|rs|>   z", "<|rs|>\u3000\u00a0z", "a\u2003<mask>",
    "<|rs|><|rs|> <mask> <|rs|>", "<|sep|> <mask>",
    # long repeats and ties
    "a" * 200, "ab" * 80, " a" * 60, "Hello" * 30, "\u6771" * 40, "\U0001f642" * 20,
    "=" * 50, "." * 40,
    # the training text itself
    "When in the Course of human events, it becomes necessary",
    "We hold these truths to be self-evident, that all men are created equal,",
    "The Constitution of the United States Independence unalienable",
    " Constitution Independence unalienable  Constitution",
    "Tokyo is the capital of Japan: \u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",
]


def added(content, special=True, normalized=False, lstrip=False, rstrip=False):
    return tokenizers.AddedToken(content, special=special, normalized=normalized,
                                 lstrip=lstrip, rstrip=rstrip, single_word=False)


def train(tok, vocab_size, special, **kw):
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False, **kw)
    tok.train_from_iterator(corpus(), tr)
    return tok


def save(out, name, tok, config=None, generation=None, edit=None):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    j = json.loads(tok.to_str())
    if edit:
        edit(j)
    text = json.dumps(j, ensure_ascii=False, indent=None, separators=(",", ":"))
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    # Reload from the written file: the reference is what `tokenizers` makes of it.
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
    if generation is not None:
        with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump(generation, f, indent=1)
    cases = []
    for s in HARD:
        ids = tok.encode(s, add_special_tokens=False).ids
        ids_sp = tok.encode(s, add_special_tokens=True).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        cases.append({"text": s, "ids": ids, "ids_special": ids_sp, "decodes": dec == s})
    with open(os.path.join(d, "expect.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "scripts/make-hf-tokenizer-fixtures.py",
                   "tokenizers": tokenizers.__version__, "vocab_size": tok.get_vocab_size(),
                   "cases": cases}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    n = sum(1 for c in cases if c["decodes"])
    print("%-16s vocab %4d, %d cases (%d decode back)" % (name, tok.get_vocab_size(), len(cases), n))
    return tok


def strings_merges(j):
    # The classic format: "left right" strings (no spaces inside byte-level tokens).
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]


def make_gpt2(out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    train(tok, 520, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "add_prefix_space": False, "model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"}
    save(out, "gpt2", tok, cfg, edit=strings_merges)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    save(out, "gpt2-prefix", tok, dict(cfg, add_prefix_space=True))


def byte_level_split(regex, trim_offsets):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=trim_offsets, use_regex=False)])


def make_llama3(out):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = byte_level_split(LLAMA3_RE, True)
    train(tok, 560, [], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()

    def edit(j):
        # Whole words merges cannot build: with ignore_merges they are one token.
        v = j["model"]["vocab"]
        for w in ["\u0120Constitution", "\u0120Independence", "\u0120unalienable", "Hello"]:
            if w not in v:
                v[w] = len(v)
        n = len(v)
        # Added tokens after the model vocabulary, as in Meta's files.
        names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                 "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>"]
        j["added_tokens"] = [{"id": n + i, "content": s, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}
                             for i, s in enumerate(names)]
        # Overlapping added tokens (`tokenizers` takes the leftmost match, not
        # the longest text first) and tokens that eat whitespace around them.
        more = [("<|sep|>", True, False, False), ("sep|><|cont", False, False, False),
                ("<mask>", True, True, False), ("<|rs|>", True, False, True)]
        for k, (c, special, ls, rs) in enumerate(more):
            j["added_tokens"].append({"id": n + len(names) + k, "content": c, "single_word": False,
                                      "lstrip": ls, "rstrip": rs, "normalized": False,
                                      "special": special})
        bos = n
        j["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                                                      "tokens": ["<|begin_of_text|>"]}}}]}
        edit.n = n

    d = os.path.join(out, "llama3")
    tmp = save(out, "llama3", tok, edit=edit)
    n = edit.n
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
           "chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                            "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}",
           "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}
    gen = {"bos_token_id": n, "eos_token_id": [n + 1, n + 5, n + 6], "do_sample": True}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(d, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump(gen, f, indent=1)
    return tmp


def make_qwen2(out):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = byte_level_split(QWEN2_RE, False)
    train(tok, 540, [], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens([added("<|endoftext|>"), added("<|im_start|>"), added("<|im_end|>")])
    tok.add_tokens([added("<tool_call>", special=False), added("</tool_call>", special=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
           "unk_token": None, "add_prefix_space": False, "errors": "replace",
           "chat_template": [
               {"name": "default", "template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                                               "{{ m['content'] }}<|im_end|>\n{% endfor %}"},
               {"name": "tool_use", "template": "{{ tools }}"}],
           "model_max_length": 32768, "tokenizer_class": "Qwen2Tokenizer"}
    save(out, "qwen2", tok, cfg)


def spm_vocab_edit(j):
    # Byte tokens are vocabulary entries, not added tokens (as in Llama 2).
    j["added_tokens"] = [a for a in j["added_tokens"] if not a["content"].startswith("<0x")]


def make_spm_legacy(out):
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    train(tok, 1000, specials)
    tok.add_special_tokens([added("<|im_start|>"), added("<|im_end|>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    cfg = {"bos_token": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "__type": "AddedToken"},
           "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
           "add_eos_token": False, "legacy": True, "tokenizer_class": "LlamaTokenizer"}
    save(out, "spm-legacy", tok, cfg, edit=spm_vocab_edit)

    # The same vocabulary without byte fallback: unknown characters become
    # <unk>, consecutive ones fused into one (or not).
    for name, fuse in (("spm-unk", True), ("spm-unk-nofuse", False)):
        def edit(j, fuse=fuse):
            spm_vocab_edit(j)
            j["model"]["byte_fallback"] = False
            j["model"]["fuse_unk"] = fuse
        save(out, name, tok, cfg, edit=edit)


def make_metaspace(out):
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    train(tok, 900, specials)
    tok.add_special_tokens([added("<|im_start|>"), added("<|im_end|>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
           "tokenizer_class": "LlamaTokenizer"}
    save(out, "metaspace", tok, cfg, edit=spm_vocab_edit)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first",
                                                 split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    save(out, "metaspace-first", tok, dict(cfg, add_bos_token=True, legacy=False),
         edit=spm_vocab_edit)


# ---------------------------------------------------------------------------
# broken tokenizers

def tiny():
    """A minimal valid byte-level BPE tokenizer.json (not trained)."""
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 6, "content": "<|end|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "\u0120": 5},
                  "merges": ["a b", "ab c"]},
    }


def bad_cases():
    """(name, mutate(j) or raw text, files, errno name, words in the message)."""
    def m(f):
        def g():
            j = tiny()
            f(j)
            return j
        return g
    C = []

    def case(name, make, errno, words, extra=None):
        C.append((name, make, errno, words, extra or {}))

    case("valid", m(lambda j: None), "OK", [])
    case("not-json", lambda: "{\"model\": [1, 2,", "EINVAL", ["tokenizer.json", "line"])
    case("top-array", lambda: [1, 2], "EINVAL", ["tokenizer.json", "object"])
    case("no-model", m(lambda j: j.pop("model")), "EINVAL", ["tokenizer.json", "model"])
    case("model-unigram", m(lambda j: j["model"].update(type="Unigram")), "ENOTSUP",
         ["tokenizer.json", "Unigram", "BPE only"])
    case("model-wordpiece", m(lambda j: j["model"].update(type="WordPiece")), "ENOTSUP",
         ["WordPiece", "BPE only"])
    case("model-wordlevel", m(lambda j: j["model"].update(type="WordLevel")), "ENOTSUP",
         ["WordLevel", "BPE only"])
    case("model-type-int", m(lambda j: j["model"].update(type=3)), "EINVAL", ["model.type"])
    case("vocab-array", m(lambda j: j["model"].update(vocab=["a", "b"])), "EINVAL",
         ["model.vocab", "object"])
    case("vocab-id-string", m(lambda j: j["model"]["vocab"].update(b="1")), "EINVAL",
         ["model.vocab", "integer"])
    case("vocab-id-negative", m(lambda j: j["model"]["vocab"].update(b=-1)), "EINVAL",
         ["model.vocab", "-1"])
    case("vocab-id-huge", m(lambda j: j["model"]["vocab"].update(b=1 << 40)), "EINVAL",
         ["model.vocab"])
    case("vocab-id-duplicate", m(lambda j: j["model"]["vocab"].update(b=0)), "EINVAL",
         ["model.vocab", "id 0"])
    case("vocab-empty", m(lambda j: j["model"].update(vocab={}, merges=[])), "EINVAL",
         ["model.vocab", "empty"])
    case("merges-not-array", m(lambda j: j["model"].update(merges="a b")), "EINVAL",
         ["model.merges"])
    case("merge-no-space", m(lambda j: j["model"].update(merges=["ab"])), "EINVAL",
         ["model.merges[0]"])
    case("merge-unknown-left", m(lambda j: j["model"].update(merges=["x b"])), "EINVAL",
         ["model.merges[0]", "'x'"])
    case("merge-unknown-result", m(lambda j: j["model"].update(merges=["a b", "b c"])), "EINVAL",
         ["model.merges[1]", "'bc'"])
    case("merge-pair-three", m(lambda j: j["model"].update(merges=[["a", "b", "c"]])), "EINVAL",
         ["model.merges[0]"])
    case("merge-pair-int", m(lambda j: j["model"].update(merges=[["a", 1]])), "EINVAL",
         ["model.merges[0]"])
    case("dropout", m(lambda j: j["model"].update(dropout=0.1)), "ENOTSUP", ["dropout"])
    case("subword-prefix", m(lambda j: j["model"].update(continuing_subword_prefix="##")),
         "ENOTSUP", ["continuing_subword_prefix"])
    case("word-suffix", m(lambda j: j["model"].update(end_of_word_suffix="</w>")), "ENOTSUP",
         ["end_of_word_suffix"])
    case("added-id-range", m(lambda j: j["added_tokens"][0].update(id=1 << 33)), "EINVAL",
         ["added_tokens[0]", "id"])
    case("added-content-int", m(lambda j: j["added_tokens"][0].update(content=5)), "EINVAL",
         ["added_tokens[0].content"])
    case("added-conflict", m(lambda j: j["added_tokens"][0].update(id=0)), "EINVAL",
         ["added_tokens[0]", "'<|end|>'", "'a'"])
    case("added-dup-content", m(lambda j: j["added_tokens"].append(
        dict(j["added_tokens"][0], id=7))), "EINVAL", ["added_tokens[1]", "<|end|>"])
    case("added-special-string", m(lambda j: j["added_tokens"][0].update(special="yes")), "EINVAL",
         ["added_tokens[0].special"])
    case("pre-unknown-regex", m(lambda j: j.update(pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}{1,5}"}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})),
        "ENOTSUP", ["pre_tokenizer", "\\p{N}{1,5}", "not recognised"])
    case("pre-bert", m(lambda j: j.update(pre_tokenizer={"type": "BertPreTokenizer"})), "ENOTSUP",
         ["pre_tokenizer", "BertPreTokenizer"])
    case("pre-split-merged", m(lambda j: j.update(pre_tokenizer={
        "type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "MergedWithNext",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]})),
        "ENOTSUP", ["MergedWithNext"])
    case("normalizer-lowercase", m(lambda j: j.update(normalizer={"type": "Lowercase"})),
         "ENOTSUP", ["normalizer", "Lowercase"])
    case("normalizer-nfkc", m(lambda j: j.update(normalizer={"type": "NFKC"})),
         "ENOTSUP", ["normalizer", "NFKC"])
    case("normalizer-not-object", m(lambda j: j.update(normalizer="NFC")), "EINVAL",
         ["normalizer"])
    case("post-bert", m(lambda j: j.update(post_processor={
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|end|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|end|>", "type_id": 0}},
                   {"SpecialToken": {"id": "<|end|>", "type_id": 0}}],
        "pair": [], "special_tokens": {"<|end|>": {"id": "<|end|>", "ids": [6],
                                                   "tokens": ["<|end|>"]}}})),
        "ENOTSUP", ["post_processor", "TemplateProcessing"])
    case("post-unknown-special", m(lambda j: j.update(post_processor={
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {}})), "EINVAL", ["post_processor", "<nope>"])
    case("config-bos-unknown", m(lambda j: None), "EINVAL",
         ["tokenizer_config.json", "bos_token", "<nope>"],
         {"tokenizer_config.json": {"bos_token": "<nope>"}})
    case("config-bos-int", m(lambda j: None), "EINVAL", ["tokenizer_config.json", "bos_token"],
         {"tokenizer_config.json": {"bos_token": 5}})
    case("config-add-bos-no-bos", m(lambda j: None), "EINVAL", ["add_bos_token", "BOS"],
         {"tokenizer_config.json": {"add_bos_token": True}})
    case("config-template-int", m(lambda j: None), "EINVAL",
         ["tokenizer_config.json", "chat_template"], {"tokenizer_config.json": {"chat_template": 3}})
    case("config-not-json", m(lambda j: None), "EINVAL", ["tokenizer_config.json"],
         {"tokenizer_config.json": "{bos"})
    case("generation-eos-range", m(lambda j: None), "EINVAL",
         ["generation_config.json", "eos_token_id", "99"],
         {"generation_config.json": {"eos_token_id": [6, 99]}})
    case("generation-eos-string", m(lambda j: None), "EINVAL",
         ["generation_config.json", "eos_token_id"],
         {"generation_config.json": {"eos_token_id": "6"}})
    case("no-file", None, "ENOENT", ["tokenizer.json"])
    case("added-not-array", m(lambda j: j.update(added_tokens={})), "EINVAL", ["added_tokens"])
    case("single-word", m(lambda j: j["added_tokens"][0].update(single_word=True)), "ENOTSUP",
         ["added_tokens[0]", "single_word"])
    case("merge-two-spaces", m(lambda j: j["model"].update(merges=["a  b"])), "EINVAL",
         ["model.merges[0]"])
    case("ids-sparse", m(lambda j: j["model"]["vocab"].update(abc=100000)), "EINVAL",
         ["100000", "unused ids"])
    case("pad-collision", m(lambda j: j["model"]["vocab"].update({"[PAD7]": 8})), "EINVAL",
         ["id 7", "[PAD7]"])
    case("unk-not-token", m(lambda j: j["model"].update(unk_token="<zz>")), "EINVAL",
         ["model.unk_token", "<zz>"])
    case("no-bytelevel", m(lambda j: j.update(pre_tokenizer=None)), "ENOTSUP",
         ["neither a ByteLevel"])
    case("bytelevel-after-spm", m(lambda j: j.update(normalizer={
        "type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})), "ENOTSUP",
        ["ByteLevel", "SentencePiece-style"])
    case("nfc-after-replace", m(lambda j: j.update(pre_tokenizer=None, normalizer={
        "type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            {"type": "NFC"}]})), "ENOTSUP", ["normalizer.normalizers[1]", "NFC"])
    case("metaspace-replacement", m(lambda j: j.update(pre_tokenizer={
        "type": "Metaspace", "replacement": "_", "prepend_scheme": "always", "split": True})),
        "ENOTSUP", ["pre_tokenizer.replacement"])
    case("metaspace-scheme", m(lambda j: j.update(pre_tokenizer={
        "type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "sometimes"})),
        "EINVAL", ["prepend_scheme", "sometimes"])
    def normalized_spm(j):
        j.update(pre_tokenizer=None, normalizer={"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})
        j["added_tokens"][0].update(special=False, normalized=True)
    case("added-normalized-spm", m(normalized_spm), "ENOTSUP", ["added_tokens[0]", "normalized"])
    case("template-two-sequences", m(lambda j: j.update(post_processor={
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {}})), "ENOTSUP", ["two sequences"])
    case("template-id-range", m(lambda j: j.update(post_processor={
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|end|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {"<|end|>": {"id": "<|end|>", "ids": [99],
                                                   "tokens": ["<|end|>"]}}})),
        "EINVAL", ["post_processor", "99"])
    case("roberta-bad", m(lambda j: j.update(post_processor={
        "type": "RobertaProcessing", "sep": ["<|end|>", "6"], "cls": ["<|end|>", 6]})), "EINVAL",
        ["post_processor.sep"])
    case("chat-template-list-bad", m(lambda j: None), "EINVAL", ["chat_template[0]"],
         {"tokenizer_config.json": {"chat_template": [{"name": 1, "template": "x"}]}})
    case("generation-not-json", m(lambda j: None), "EINVAL", ["generation_config.json", "line"],
         {"generation_config.json": "[1,"})
    # Valid variants whose translation the C test inspects (errno OK).
    case("ok-jinja", m(lambda j: None), "OK", [], {"chat_template.jinja": "JINJA {{ x }}\n"})
    case("ok-roberta", m(lambda j: j.update(post_processor={
        "type": "RobertaProcessing", "sep": ["<|end|>", 6], "cls": ["abc", 4],
        "trim_offsets": True, "add_prefix_space": False})), "OK", [])
    case("ok-gap", m(lambda j: j["added_tokens"][0].update(id=9)), "OK", [])
    case("ok-config-bos", m(lambda j: None), "OK", [],
         {"tokenizer_config.json": {"bos_token": "<|end|>", "add_bos_token": True,
                                    "eos_token": {"content": "<|end|>"}}})
    return C


def make_bad(out):
    d = os.path.join(out, "bad")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    manifest = []
    for name, make, errno, words, extra in bad_cases():
        cd = os.path.join(d, name)
        os.makedirs(cd)
        files = {}
        if make is not None:
            files["tokenizer.json"] = make()
        files.update(extra)
        for fn, content in files.items():
            with open(os.path.join(cd, fn), "w", encoding="utf-8") as f:
                f.write(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
        if name == "valid":
            # The base case must load in `tokenizers` too, or the mutations prove nothing.
            Tokenizer.from_file(os.path.join(cd, "tokenizer.json"))
        manifest.append({"name": name, "errno": errno, "words": words})
    with open(os.path.join(d, "bad.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "scripts/make-hf-tokenizer-fixtures.py", "cases": manifest},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("bad: %d cases" % len(manifest))


# ---------------------------------------------------------------------------
# real vocabularies (--big)

def gguf_kv(path):
    """The metadata of a GGUF file (v2/v3), enough for the tokenizer keys."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", errors="surrogateescape")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if et in scalar:
                fmt = scalar[et]
                nonlocal pos
                size = struct.calcsize("<" + fmt)
                out = list(struct.unpack_from("<%d%s" % (n, fmt), data, pos))
                pos += n * size
                return out
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert take("I") == 0x46554747
    take("I")
    take("Q")
    n_kv = take("Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    return kv


def vocab_inputs(name):
    p = os.path.join(os.path.expanduser("~/.cache/smoke/vocab"), "ggml-vocab-%s.gguf.inp" % name)
    if not os.path.exists(p):
        return []
    with open(p, encoding="utf-8", errors="replace") as f:
        return f.read().split("\n__ggml_vocab_test__\n")


def big_strings(name):
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    paras = [p for p in text.split("\n\n") if p.strip()]
    return HARD + vocab_inputs(name) + SYNTH + paras + [text[:20000]]


def added_json(i, content, special=True, normalized=None):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special if normalized is None else normalized, "special": special}


def big_save(out, name, j, strings, note):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
    tok = Tokenizer.from_file(path)
    seen, cases = set(), []
    for s in strings:
        if s in seen:
            continue
        seen.add(s)
        ids = tok.encode(s, add_special_tokens=False).ids
        ids_sp = tok.encode(s, add_special_tokens=True).ids
        dec = tok.decode(ids, skip_special_tokens=False)
        cases.append({"text": s, "ids": ids, "ids_special": ids_sp, "decodes": dec == s})
    with open(os.path.join(d, "expect.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "scripts/make-hf-tokenizer-fixtures.py --big", "source": note,
                   "tokenizers": tokenizers.__version__, "vocab_size": tok.get_vocab_size(),
                   "cases": cases}, f, ensure_ascii=False, separators=(",", ":"))
    print("%-16s vocab %6d, %d cases (%s)" % (name, tok.get_vocab_size(), len(cases), note))


def byte_level_json(kv, pre, first_special, template_bos=None, nfc=False, trim=True):
    toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    vocab = {t: i for i, t in enumerate(toks) if types[i] in (1, 6) or i < first_special}
    added = [added_json(i, t, types[i] == 3) for i, t in enumerate(toks)
             if i >= first_special or types[i] in (3, 4)]
    merges = [m.split(" ", 1) for m in kv["tokenizer.ggml.merges"]]
    j = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
         "normalizer": {"type": "NFC"} if nfc else None, "pre_tokenizer": pre,
         "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                            "use_regex": True},
         "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                     "use_regex": True},
         "model": {"type": "BPE", "dropout": None, "unk_token": None,
                   "continuing_subword_prefix": None, "end_of_word_suffix": None,
                   "fuse_unk": False, "byte_fallback": False,
                   "ignore_merges": template_bos is not None, "vocab": vocab, "merges": merges}}
    if template_bos is not None:
        j["post_processor"] = {"type": "Sequence", "processors": [j["post_processor"], {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": toks[template_bos], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": toks[template_bos], "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": toks[template_bos], "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {toks[template_bos]: {"id": toks[template_bos], "ids": [template_bos],
                                                    "tokens": [toks[template_bos]]}}}]}
    return j


def split_pre(regex, trim):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": trim, "use_regex": False}]}


def spm_json(kv, prefix):
    """A SentencePiece vocabulary as HF BPE: merges from every split of a normal
    piece into two pieces, best merged score first (transformers' extractor)."""
    toks, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    scores = kv["tokenizer.ggml.scores"]
    vocab = {t: i for i, t in enumerate(toks)}
    normal = {t: i for i, t in enumerate(toks) if types[i] == 1}
    merges = []
    for piece, i in normal.items():
        for k in range(1, len(piece)):
            l, r = piece[:k], piece[k:]
            if l in normal and r in normal:
                merges.append((-scores[i], normal[l], normal[r], l, r))
    merges.sort()
    bos = kv.get("tokenizer.ggml.bos_token_id", 1)
    # transformers' SpmConverter: control and user-defined pieces are added
    # tokens, not normalized.
    added = [added_json(i, t, types[i] in (2, 3), False) for i, t in enumerate(toks)
             if types[i] in (2, 3, 4)]
    norm = [{"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]
    if prefix:
        norm.insert(0, {"type": "Prepend", "prepend": "\u2581"})
    unk = [t for i, t in enumerate(toks) if types[i] == 2]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": norm},
            # GemmaConverter's (a no-op after the Replace: no spaces are left)
            "pre_tokenizer": None if prefix else {
                "type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                "invert": False},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": toks[bos], "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [], "special_tokens": {
                                   toks[bos]: {"id": toks[bos], "ids": [bos], "tokens": [toks[bos]]}}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}] + (
                    [{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if prefix else [])},
            "model": {"type": "BPE", "dropout": None, "unk_token": unk[0] if unk else None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": [[l, r] for _, _, _, l, r in merges]}}


def make_big(out):
    cache = os.environ.get("SMOKE_CACHE", os.path.expanduser("~/.cache/smoke"))
    vd = os.environ.get("SMOKE_VOCAB_DIR") or os.path.join(cache, "vocab")
    jobs = [
        ("llama3-real", "llama-bpe", lambda kv: byte_level_json(
            kv, split_pre(LLAMA3_RE, True), 128000, template_bos=128000)),
        ("qwen2-real", "qwen2", lambda kv: byte_level_json(
            kv, split_pre(QWEN2_RE, False), 151643, nfc=True)),
        ("gpt2-real", "gpt-2", lambda kv: byte_level_json(
            kv, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": True}, 50256)),
        ("llama2-real", "llama-spm", lambda kv: spm_json(kv, True)),
    ]
    for name, vocab, build in jobs:
        p = os.path.join(vd, "ggml-vocab-%s.gguf" % vocab)
        if not os.path.exists(p):
            print("skip %s: no %s (scripts/fetch-vocabs)" % (name, p))
            continue
        big_save(out, name, build(gguf_kv(p)), big_strings(vocab), os.path.basename(p))
    model = os.environ.get("SMOKE_MODEL") or os.path.join(cache, "models",
                                                          "gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(model):
        big_save(out, "gemma3-real", spm_json(gguf_kv(model), False), big_strings("gemma-4"),
                 os.path.basename(model))
    make_big_gpt_oss(out, cache)


def make_big_gpt_oss(out, cache):
    """gpt-oss (o200k_harmony): the tokenizer.json scripts/fetch-o200k builds from
    the pinned o200k_base.tiktoken (as transformers' GptOssConverter does), with
    its files; strings: the others' plus make-tokenizer-fixtures' GPT4O_HARD and
    GPT_OSS_HARD (the valid UTF-8 ones: harmony specials, numbers, CJK, emoji,
    contractions, whitespace runs)."""
    src = os.path.join(os.environ.get("SMOKE_O200K_DIR") or os.path.join(cache, "o200k"), "gpt-oss")
    if not os.path.exists(os.path.join(src, "tokenizer.json")):
        print("skip gpt-oss-real: no %s/tokenizer.json (scripts/fetch-o200k)" % src)
        return
    from importlib.machinery import SourceFileLoader
    mtf = SourceFileLoader("make_tokenizer_fixtures",
                           os.path.join(ROOT, "scripts", "make-tokenizer-fixtures")).load_module()
    extra = []
    for b in mtf.GPT4O_HARD + mtf.GPT_OSS_HARD:
        try:
            extra.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    d = os.path.join(out, "gpt-oss-real")
    os.makedirs(d, exist_ok=True)
    for f in ("tokenizer_config.json", "config.json"):
        shutil.copyfile(os.path.join(src, f), os.path.join(d, f))
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    assert j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == O200K_RE
    big_save(out, "gpt-oss-real", j, big_strings("qwen2") + extra,
             "o200k_harmony via scripts/fetch-o200k")


O200K_SPLIT_EXTRA = [
    # marks (no \p{L}, but in both case classes), titlecase, modifier letters
    "e\u0301cole", "\u0301x", "\u0301AB c", "!\u0301", " \u0301\u0301", "a\u0301B", "\u0301",
    "\u01c5emal \u01c8UBAV \u1f88\u1f80", "\u02b0A A\u02b0 \u1d2cB", "\u00c9COLE'S \u00e9'll",
    "x'\u017f x'\u212a X'S x'LL", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u0391\u0398\u0397\u039d\u0391\u03b8 \u03a3\u03c3\u03c2", "\u10d2\u10d0 \u1c90\u1c91 \u13a0\u13a1\uab70",
    "\U0001d400\U0001d41a\U0001d400", "\u2160\u2170 \u24b6\u24d0", "\u0130i\u0131I",
]


def make_o200k_split(out):
    """tests/fixtures/tokenizer/o200k-split.json: the words `tokenizers` makes
    with gpt-oss's pre-tokenizer regex (tiktoken's o200k_base, the exact
    string of its tokenizer.json, Split isolated) of hard strings; no
    vocabulary needed, so CI checks smoke's exact o200k splitter with it."""
    from importlib.machinery import SourceFileLoader
    mtf = SourceFileLoader("make_tokenizer_fixtures",
                           os.path.join(ROOT, "scripts", "make-tokenizer-fixtures")).load_module()
    split = pre_tokenizers.Split(Regex(O200K_RE), behavior="isolated", invert=False)
    texts, seen = [], set()
    for t in HARD + [b.decode("utf-8", "replace") for b in mtf.GPT4O_HARD + mtf.GPT_OSS_HARD] + \
            O200K_SPLIT_EXTRA:
        if t not in seen:
            seen.add(t)
            texts.append(t)
    cases = []
    for t in texts:
        words = [w for w, _ in split.pre_tokenize_str(t)]
        assert "".join(words) == t
        cases.append({"text": t, "words": words})
    path = os.path.join(out, "o200k-split.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generated_by": "scripts/make-hf-tokenizer-fixtures.py --o200k-split",
                   "tokenizers": tokenizers.__version__, "regex": O200K_RE, "cases": cases},
                  f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print("o200k-split: %d cases -> %s" % (len(cases), path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "hf-tokenizers"))
    ap.add_argument("--big", help="write the real-vocabulary tokenizers here instead")
    ap.add_argument("--o200k-split", nargs="?", const=os.path.join(ROOT, "tests", "fixtures", "tokenizer"),
                    help="only write o200k-split.json (into this folder)")
    a = ap.parse_args()
    if a.o200k_split:
        make_o200k_split(a.o200k_split)
        return
    if a.big:
        os.makedirs(a.big, exist_ok=True)
        make_big(a.big)
        return
    os.makedirs(a.out, exist_ok=True)
    make_gpt2(a.out)
    make_llama3(a.out)
    make_qwen2(a.out)
    make_spm_legacy(a.out)
    make_metaspace(a.out)
    make_bad(a.out)


if __name__ == "__main__":
    main()
