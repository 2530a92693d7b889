#!/usr/bin/env python3
"""A `ctune quant` output folder loads in mlx-lm and gives ctune's logits.

  check_quant_mlx.py [--bin build] [--tol 1e-4] FOLDER

Computes the logits of 24 deterministic pseudo-random ids with ctune
(build/tools/model_logits) and with mlx-lm (mlx_lm.utils.load_model, MLX's
CPU build); max |diff| / max(1, max |logit|) must be <= --tol.
Prints a last line "N passed, N failed".

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
    ap.add_argument("--bin", default="build")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("folder")
    args = ap.parse_args()
    cfg = json.load(open(os.path.join(args.folder, "config.json")))
    ids = [int(x) for x in np.random.default_rng(0).integers(0, cfg["vocab_size"], 24)]
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "logits.bin")
        subprocess.run([f"{args.bin}/tools/model_logits", args.folder, ",".join(map(str, ids)), raw], check=True)
        ours = np.fromfile(raw, dtype=np.float32).reshape(len(ids), -1)
    model, _ = load_model(Path(args.folder))
    theirs = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    diff = float(np.abs(ours - theirs).max())
    scale = max(1.0, float(np.abs(theirs).max()))
    ok = diff / scale <= args.tol
    q = cfg.get("quantization", {})
    print(f"{args.folder}: {q.get('bits')}-bit g{q.get('group_size')}: max |diff| {diff:.3g}, "
          f"max |logit| {scale:.3g}: {'ok' if ok else 'FAIL'}")
    print(f"{int(ok)} passed, {int(not ok)} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
