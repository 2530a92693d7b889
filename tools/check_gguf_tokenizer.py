"""Checks ctune's tokenizer read from a GGUF file against Hugging Face `tokenizers`.

transformers converts the GGUF vocabulary to a tokenizer.json (its GGUF loader), but it
ignores tokenizer.ggml.pre: for "smollm" the model's own tokenizer.json, and llama.cpp,
split numbers into single digits first (Digits(individual_digits=True) before
ByteLevel). This script adds that pre-tokenizer to the converted file, then runs
tests/assets/tokenizer_compare.py with ctune reading the .gguf itself.

Usage (repo root): .venv-ref/bin/python tools/check_gguf_tokenizer.py build/ctune MODEL.gguf CORPUS...
Needs transformers, gguf, tokenizers (pip install transformers gguf tokenizers torch).
"""
import json
import os
import subprocess
import sys
import tempfile

from transformers import AutoTokenizer

ctune, gguf_path, corpora = sys.argv[1], sys.argv[2], sys.argv[3:]
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)), gguf_file=os.path.basename(gguf_path))
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "tokenizer.json")
    tok.backend_tokenizer.save(path)
    spec = json.load(open(path))
    pre = tok.backend_tokenizer.pre_tokenizer
    from gguf import GGUFReader
    r = GGUFReader(gguf_path)
    field = r.fields.get("tokenizer.ggml.pre")
    pre_name = bytes(field.parts[field.data[0]]).decode() if field else "default"
    if pre_name == "smollm":
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, spec["pre_tokenizer"]]}
        json.dump(spec, open(path, "w"))
    env = dict(os.environ, CTUNE_TOKENIZER=gguf_path)
    print(f"tokenizer.ggml.pre = {pre_name}")
    sys.exit(subprocess.call([sys.executable, "tests/assets/tokenizer_compare.py", ctune, path] + corpora, env=env))
