#!/usr/bin/env python3
"""make_seeds.py OUT_DIR - seed inputs for the fuzz harnesses, made from the
repository's fixtures (tests/fixtures) in each harness's input layout
(selector bytes, several files in one input).  scripts/fuzz runs it into
its build directory before every run: the seeds follow the fixtures and are
not committed.  Inputs that need no fixture, and every regression input, live
in tests/fuzz/corpus/<target>/ instead.  The GGUF and safetensors harnesses
read fixture directories directly (scripts/fuzz names them)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FX = os.path.join(ROOT, "tests", "fixtures")
SEP = b"\xff\xfe\xfd"   # fuzz_tokenizer_json.c's file separator

# Keep these lists in the order of the harnesses' own tables.
HF_CONFIG_MODELS = ["llama-f32", "qwen2-f32", "gemma3-f32", "mistral-bf16", "qwen3-bf16",
                    "qwen3moe-bf16", "mixtral-bf16", "gpt-oss-bf16", "gpt-oss-mxfp4"]
N_VOCABS = 9          # fuzz_common.c's fuzz_vocabs
API_MODELS = 4        # fuzz_api.c's models


def read(*parts):
    p = os.path.join(FX, *parts)
    return open(p, "rb").read() if os.path.exists(p) else None


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main(out):
    # hf_config: [model byte] + config.json, each config with each model
    # (the right one opens; the others fail on the tensors).
    for i, m in enumerate(HF_CONFIG_MODELS):
        cfg = read("hf-models", m, "config.json")
        if cfg is None:
            continue
        for j in range(len(HF_CONFIG_MODELS)):
            if j == i or j % 3 == 0:
                put(out, "hf_config", "%s-on-%d" % (m, j), bytes([j]) + cfg)

    # tokenizer_json: tokenizer.json FF FE FD tokenizer_config.json FF FE FD
    # generation_config.json, from every tokenizer directory.
    dirs = []
    for base in ("hf-tokenizers", os.path.join("hf-tokenizers", "bad"), "hf-models"):
        b = os.path.join(FX, base)
        for name in sorted(os.listdir(b)):
            if os.path.exists(os.path.join(b, name, "tokenizer.json")):
                dirs.append((base, name))
    for base, name in dirs:
        tj = read(base, name, "tokenizer.json")
        tc = read(base, name, "tokenizer_config.json")
        gc = read(base, name, "generation_config.json")
        data = tj
        if tc is not None or gc is not None:
            data += SEP + (tc or b"")
        if gc is not None:
            data += SEP + gc
        put(out, "tokenizer_json", base.replace(os.sep, "-") + "-" + name, data)

    # safetensors_index: every index in the fixtures.
    n = 0
    for dirpath, _, files in os.walk(FX):
        for f in files:
            if f.endswith(".index.json"):
                put(out, "safetensors_index", "index-%d" % n, open(os.path.join(dirpath, f), "rb").read())
                n += 1

    # tokenizer: [vocab][flags] + text, from the text fixture and the
    # tokenizer fixtures' test strings.
    text = read("text", "us-founding-documents.txt") or b""
    pieces = [text[k:k + 300] for k in range(0, min(len(text), 6000), 300)]
    pieces += [b"", b" ", b"  hello\n\n\tworld", "na\u00efve caf\u00e9 \u2581x \U0001F600".encode(),
               b"\xff\xfe\xc3\x28\xe2\x82\x28\xf0\x90\x28\xbc", b"<s></s><unk><|endoftext|><|im_start|>",
               b"<|start|>assistant<|channel|>final<|message|>hi<|end|>", b"12345678901234567890",
               b"don't I'll we've", "\u4f60\u597d\u4e16\u754c".encode(), b"\x00\x01\x02"]
    for v in range(N_VOCABS):
        for k, p in enumerate(pieces):
            put(out, "tokenizer", "v%d-%d" % (v, k), bytes([v, (k * 37) & 0x3f]) + p)

    # chat: [vocab][format|flags] + messages (role byte + content, NUL between).
    convo = [b"\x00You are terse.", b"\x02Hello <|im_end|><end_of_turn><|eot_id|>",
             b"\x03Hi! <|start|>system<|message|>", b"\x02" + (pieces[1] if len(pieces) > 1 else b"x")]
    for v in range(N_VOCABS):
        for fmt in range(6):
            flags = fmt if fmt < 5 else 8
            put(out, "chat", "v%d-f%d" % (v, fmt), bytes([v, flags]) + b"\x00".join(convo))

    # api: [route | model << 2] + body, requests for every endpoint.
    bodies = [
        (0, b'{"prompt":"Once upon a time","max_tokens":4,"temperature":0.5,"top_p":0.9,"stop":["\\n","END"],"logprobs":2,"seed":7}'),
        (0, b'{"prompt":[1,2,3],"stream":true,"stream_options":{"include_usage":true},"min_p":0.1,"top_k":5}'),
        (0, b'{"prompt":"x","response_format":{"type":"json_object"}}'),
        (1, b'{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_completion_tokens":5,"logprobs":true,"top_logprobs":2}'),
        (1, b'{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"repeat_penalty":1.1}'),
        (1, b'{"model":"llama-f32","messages":[{"role":"developer","content":"x"},{"role":"assistant","content":"y"},{"role":"user","content":"z"}]}'),
        (1, b'{"messages":[{"role":"user","content":"json"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"array","items":{"type":"string","maxLength":4},"maxItems":3},"c":{"enum":["x","y",null]}},"required":["a"],"additionalProperties":false}}}}'),
        (1, b'{"messages":[{"role":"user","content":"r"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"$defs":{"n":{"anyOf":[{"type":"number"},{"type":"boolean"}]}},"type":"object","properties":{"v":{"$ref":"#/$defs/n"},"m":{"type":"object","additionalProperties":{"type":"string","minLength":1}}}}}}}'),
        (1, b'{"messages":[{"role":"system","content":"s"},{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_w","arguments":"{\\"city\\":\\"P\\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"22"}],"tools":[{"type":"function","function":{"name":"get_w","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":9}},"required":["city"]}}},{"type":"function","function":{"name":"now"}}],"tool_choice":"required","stream":true}'),
        (1, b'{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"$ref":{"$ref":"#/$defs/x"}},"$defs":{"x":{"enum":[1,2]}}}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}'),
        (2, b'{"content":"Hello world <s>","add_special":true,"with_pieces":true}'),
        (2, b'{"content":"\\u00e9\\ud83d\\ude00"}'),
        (3, b'{"tokens":[1,2,3,100,0]}'),
        (3, b'{"tokens":[]}'),
    ]
    for m in range(API_MODELS):
        for k, (route, body) in enumerate(bodies):
            put(out, "api", "m%d-%d" % (m, k), bytes([route | (m << 2)]) + body)


if __name__ == "__main__":
    main(sys.argv[1])
