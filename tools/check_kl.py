#!/usr/bin/env python3
"""Independent check of `ctune perplexity --reference`: mlx-lm (mlx-cpu) loads
both models, runs the same windows and computes the mean KL(ref || model) per
predicted token in float64 numpy, then compares with ctune's number.

Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install "mlx[cpu]" mlx-lm numpy

usage: check_kl.py CTUNE MODEL REFERENCE TEXT SEQ_LEN NUM_SAMPLES
Prints both numbers and "1 passed, 0 failed" when they agree within 1e-3 relative
(float32 logits from two engines; the KL of a 3-bit model is ~1e-1)."""
import json
import subprocess
import sys

import mlx.core as mx
import numpy as np
from mlx_lm import load


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def main():
    ctune, model, ref, text, seq, n = sys.argv[1:7]
    seq, n = int(seq), int(n)
    out = subprocess.run([ctune, "perplexity", "--model", model, "--reference", ref, "--data", text,
                          "--sequence-length", str(seq), "--num-samples", str(n), "--json"],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)["mean_kl"]
    m, tok = load(model)
    r, _ = load(ref)
    ids = tok.encode(open(text, encoding="utf-8").read())
    windows = min(n, len(ids) // seq)
    total, count = 0.0, 0
    for w in range(windows):
        x = mx.array(ids[w * seq:(w + 1) * seq])[None]
        lq = log_softmax(np.array(m(x)[0, :-1].astype(mx.float32)))
        lp = log_softmax(np.array(r(x)[0, :-1].astype(mx.float32)))
        total += float((np.exp(lp) * (lp - lq)).sum())
        count += seq - 1
    theirs = total / count
    rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
    print(f"mean KL: ctune {ours:.6g}, mlx-lm {theirs:.6g}, relative difference {rel:.2e}")
    ok = rel <= 1e-3
    print(f"{int(ok)} passed, {int(not ok)} failed")
    sys.exit(0 if ok else 1)


main()
