#!/usr/bin/env python3
"""Greedy generation of ctune against transformers on five chat prompts.

  compare_generation.py MODEL.gguf [--ctune build/ctune] [--max-tokens 64]
                                   [--save-reference tests/fixtures/models/smollm2_greedy_64.tsv]

transformers runs LlamaForCausalLM in fp32 on the GGUF's dequantized weights
(the same loading as tools/compare_model_logits.py: gguf-dequantized tensors,
llama q/k rows un-permuted) and the GGUF's own tokenizer and chat template
(AutoTokenizer with gguf_file=). Each prompt goes through apply_chat_template
(add_generation_prompt) and model.generate(do_sample=False) stops at the eos
id. ctune runs `generate --prompt P --temp 0 --max-tokens N --print-ids`
(its own template rendering and tokenizer). Prints one line per prompt and
"N passed, N failed". --save-reference writes a small TSV: prompt, the
reference prompt ids, the reference generated ids (tests/assets/a_parity.sh
compares ctune with it, without torch).
Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers gguf numpy"""
import argparse
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_model_logits import gguf_llama  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain in two sentences what a neural network is.",
    "List three tips for staying healthy.",
    "How do I reverse a list in Python?",
]


def gguf_tokenizer(path):
    from transformers import AutoTokenizer
    path = os.path.realpath(path)
    return AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def reference(model, tok, prompt, max_tokens):
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    gen = out[0, len(ids):].tolist()
    if tok.eos_token_id in gen:  # ctune prints the ids before the eos
        gen = gen[:gen.index(tok.eos_token_id)]
    return ids, gen


def ctune_ids(ctune, model, prompt, max_tokens):
    out = subprocess.run([ctune, "generate", "--model", model, "--prompt", prompt, "--temp", "0", "--max-tokens",
                          str(max_tokens), "--print-ids"], check=True, capture_output=True, text=True).stdout
    line = [x for x in out.splitlines() if x.startswith("ids:")][-1]
    return [int(x) for x in line[4:].split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ctune", default="build/ctune")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--save-reference")
    a = ap.parse_args()
    torch.manual_seed(0)
    model, tok = gguf_llama(a.model).eval(), gguf_tokenizer(a.model)
    rows, passed = [], 0
    for p in PROMPTS:
        pids, ref = reference(model, tok, p, a.max_tokens)
        got = ctune_ids(a.ctune, a.model, p, a.max_tokens)
        same = got == ref
        passed += same
        first = next((i for i, (x, y) in enumerate(zip(got, ref)) if x != y), min(len(got), len(ref)))
        print(f"{'ok  ' if same else 'FAIL'} {p!r}: {len(ref)} reference tokens"
              + ("" if same else f", first difference at {first}"))
        rows.append((p, pids, ref))
    if a.save_reference:
        with open(a.save_reference, "w") as f:
            f.write("# prompt\tchat-template prompt ids (transformers)\tgreedy ids (transformers fp32, "
                    f"{a.max_tokens} max, before eos); made by tools/compare_generation.py\n")
            for p, pids, ref in rows:
                f.write(f"{p}\t{','.join(map(str, pids))}\t{' '.join(map(str, ref))}\n")
    print(f"{passed} passed, {len(PROMPTS) - passed} failed")
    sys.exit(0 if passed == len(PROMPTS) else 1)


if __name__ == "__main__":
    main()
