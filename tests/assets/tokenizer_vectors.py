"""Exact ids on the reference vectors in ../shared/assets/vectors.

usage: tokenizer_vectors.py CTUNE ASSETS
- llama.cpp: ggml-vocab-{gpt-2,llama-spm,phi-3}.gguf.inp/.out (no BOS), encoded
  with the tokenizer.json of assets/tokenizers/{gpt2,llama2,phi-3-mini} and with
  the vocab GGUF file itself (tokenizer.ggml.*);
- swift-transformers: TinyLlama ids (with BOS) and decodes for 83 multilingual
  inputs, and llama_encoded.json, with assets/tokenizers/llama2.
Prints one line per failure; the last line is "N passed, N failed".
"""
import json
import os
import subprocess
import sys
import tempfile

CTUNE, ASSETS = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp()
passed = failed = 0


def ctune(*args):
    return subprocess.run([CTUNE, "tokenize", *args], capture_output=True, text=True, check=True).stdout


def encode(tok, text, special):
    path = os.path.join(TMP, "text.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    out = json.loads(ctune("--tokenizer", tok, "--file", path, "--json", *([] if special else ["--no-special"])))
    return out["ids"]


def decode(tok, ids, skip):
    return json.loads(ctune("--tokenizer", tok, "--decode", ",".join(map(str, ids)), "--json",
                            *(["--no-special"] if skip else [])))["text"]


def check(name, got, want):
    global passed, failed
    if got == want:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: got {str(got)[:200]} want {str(want)[:200]}")


def llama_cpp():
    for vocab, tokdir in (("gpt-2", "gpt2"), ("llama-spm", "llama2"), ("phi-3", "phi-3-mini")):
        base = f"{ASSETS}/vectors/llama.cpp/ggml-vocab-{vocab}.gguf"
        texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
        outs = open(base + ".out", encoding="utf-8").read().split("\n")
        for tok in (f"{ASSETS}/tokenizers/{tokdir}/tokenizer.json", base):  # tokenizer.json, then the GGUF itself
            for i, (text, out) in enumerate(zip(texts, outs)):
                check(f"{os.path.basename(tok)} {vocab} #{i} {text[:30]!r}", encode(tok, text, False),
                      [int(x) for x in out.split()])


def swift():
    tok = f"{ASSETS}/tokenizers/llama2/tokenizer.json"
    d = f"{ASSETS}/vectors/swift-transformers"
    inputs = {e["id"]: e["text"] for e in json.load(open(f"{d}/multilingual_inputs.json", encoding="utf-8"))}
    for e in json.load(open(f"{d}/tinyllama_multilingual.json", encoding="utf-8"))["entries"]:
        ids = encode(tok, inputs[e["id"]], True)
        check(f"tinyllama {e['id']}", ids, e["input_ids"])
        check(f"tinyllama {e['id']} decode", decode(tok, e["input_ids"], False), e["decoded_with_special"])
        check(f"tinyllama {e['id']} decode skip", decode(tok, e["input_ids"], True), e["decoded_skip_special"])
    enc = json.load(open(f"{d}/llama_encoded.json", encoding="utf-8"))
    check("llama_encoded", encode(tok, enc["text"], True), enc["token_ids"])
    check("llama_encoded decode", decode(tok, enc["token_ids"], False), enc["decoded_text"])


llama_cpp()
swift()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
