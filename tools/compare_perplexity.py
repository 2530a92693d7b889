#!/usr/bin/env python3
"""Perplexity of ctune against transformers, computed the same way.

  compare_perplexity.py MODEL.gguf TEXT [--ctune build/ctune] [--sequence-length 512]
                        [--num-samples 32] [--save-reference tests/fixtures/models/smollm2_wikitext_ppl.json]

As `ctune perplexity` (src/cli/perplexity.c): the whole file is tokenized once
(special tokens as the tokenizer adds them: the GGUF's own tokenizer through
AutoTokenizer(gguf_file=)), cut into non-overlapping windows of L tokens (the
shorter tail dropped), the first N windows are run through transformers'
LlamaForCausalLM in fp32 on the GGUF's dequantized weights (as
tools/compare_model_logits.py), and exp(mean NLL over every predicted
position) is taken, summed in double. ctune's `--json` output is compared
with it: relative difference, and the predicted-token counts must match.
Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers gguf numpy"""
import argparse
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_generation import gguf_tokenizer  # noqa: E402
from compare_model_logits import gguf_llama  # noqa: E402


def reference_perplexity(model, ids, L, n):
    windows = len(ids) // L
    if n > 0:
        windows = min(windows, n)
    total, count = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            x = torch.tensor([ids[w * L:(w + 1) * L]])
            logp = torch.log_softmax(model(x).logits[0].float(), dim=-1)
            nll = -logp[:-1].gather(1, x[0, 1:, None])[:, 0]
            total += float(nll.double().sum())
            count += L - 1
    return math.exp(total / count), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ctune", default="build/ctune")
    ap.add_argument("--sequence-length", type=int, default=512)
    ap.add_argument("--num-samples", type=int, default=32)
    ap.add_argument("--save-reference")
    a = ap.parse_args()
    tok = gguf_tokenizer(a.model)
    with open(a.text, encoding="utf-8") as f:
        ids = tok(f.read())["input_ids"]
    ref, count = reference_perplexity(gguf_llama(a.model).eval(), ids, a.sequence_length, a.num_samples)
    out = subprocess.run([a.ctune, "perplexity", "--model", a.model, "--data", a.text, "--sequence-length",
                          str(a.sequence_length), "--num-samples", str(a.num_samples), "--json"],
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    rel = abs(got["perplexity"] - ref) / ref
    print(f"transformers: {ref:.6f} over {count} tokens ({len(ids)} in the file)")
    print(f"ctune:        {got['perplexity']:.6f} over {got['tokens']} tokens")
    print(f"relative difference {rel:.3g}")
    if a.save_reference:
        with open(a.save_reference, "w") as f:
            json.dump({"model": os.path.basename(a.model), "text": os.path.basename(a.text),
                       "sequence_length": a.sequence_length, "num_samples": a.num_samples,
                       "file_tokens": len(ids), "tokens": count, "perplexity": ref,
                       "made_by": "tools/compare_perplexity.py (transformers fp32)"}, f, indent=1)
    ok = rel <= 1e-4 and got["tokens"] == count
    print(f"{int(ok)} passed, {int(not ok)} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
