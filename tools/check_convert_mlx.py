#!/usr/bin/env python3
"""ctune convert's output loads in mlx-lm and gives ctune's logits.

  check_convert_mlx.py [--bin build] [--tol 1e-4] [--ids N] MODEL [ctune convert flags...]

Runs `ctune convert --model MODEL --mlx-path TMP <flags>`, then computes the
logits of the same token ids (N deterministic pseudo-random ids, or the ids in
--ids-list) with ctune (build/tools/model_logits) and with mlx-lm
(mlx_lm.utils.load_model on MLX's CPU build), and compares them: max |diff|
relative to the logits' scale, max |diff| / max(1, max |logit|), must be
<= --tol (on real models float32 summation order alone moves logits of ~30 by
~1e-4, conversion or not). --vs-source also compares ctune's logits on MODEL
itself with ctune's on the converted folder (a dense --dtype float32
conversion of a GGUF must agree: checks names and the q/k un-permutation).
Prints one line per model and a last line "N passed, N failed".

The venv: python3 -m venv .venv-ref &&
  .venv-ref/bin/pip install "mlx[cpu]==0.32.4" mlx-lm==0.32.2 numpy safetensors
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_lm.utils import load_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build", help="folder with ctune and tools/model_logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--ids", type=int, default=24, help="number of token ids")
    ap.add_argument("--vs-source", action="store_true")
    ap.add_argument("model")
    args, flags = ap.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "mlx")
        subprocess.run([f"{args.bin}/ctune", "convert", "--model", args.model, "--mlx-path", out, *flags],
                       check=True, stdout=subprocess.DEVNULL)
        cfg = json.load(open(os.path.join(out, "config.json")))
        rng = np.random.default_rng(0)
        ids = [int(x) for x in rng.integers(0, cfg["vocab_size"], args.ids)]
        raw = os.path.join(tmp, "logits.f32")

        def ctune_logits(model):
            subprocess.run([f"{args.bin}/tools/model_logits", model, ",".join(map(str, ids)), raw], check=True)
            return np.fromfile(raw, dtype=np.float32).reshape(len(ids), -1)

        ours = ctune_logits(out)
        source = ctune_logits(args.model) if args.vs_source else None
        model, _ = load_model(Path(out))
        theirs = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    q = cfg.get("quantization")
    what = f"{q['bits']}-bit g{q['group_size']}" if q else "dense"
    passed = failed = 0
    for name, a, b in [("ctune vs mlx-lm", ours, theirs), ("ctune source vs converted", source, ours)]:
        if a is None:
            continue
        diff = float(np.max(np.abs(a - b)))
        scale = max(1.0, float(np.max(np.abs(b))))
        ok = diff / scale <= args.tol
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {args.model} {' '.join(flags)} ({what}), {name}: max |logit diff| = "
              f"{diff:.3g}, max |logit| {scale:.3g}, relative {diff / scale:.3g} (tol {args.tol:g}, {len(ids)} tokens)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
