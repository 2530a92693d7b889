#!/usr/bin/env python3
"""Runs one of mlx-lm's quantization tools (mlx_lm.quant.gptq, awq,
dynamic_quant) on mlx-cpu with calibration text from a local file instead of
the gist mlx-lm downloads, so that its numbers can stand beside ctune's on the
same model, data and settings (docs/QUANTIZATION.md).

Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install "mlx[cpu]" mlx-lm

usage: run_mlx_quant.py METHOD CALIBRATION.txt [mlx-lm flags...]
The calibration text is tokenized whole (as mlx-lm's load_data does), cut into
--sequence-length rows (512 for dynamic_quant), shuffled with mlx's seeded
permutation and the first --num-samples kept; give a text that makes exactly
the rows you want and --num-samples -1 to use the same rows as ctune."""
import importlib
import sys

import mlx.core as mx

method, calib = sys.argv[1], sys.argv[2]
module = importlib.import_module(f"mlx_lm.quant.{method}")
text = open(calib, encoding="utf-8").read()


def load_data(tokenizer, num_samples, sequence_length):
    tokens = mx.array(tokenizer.encode(text))
    tokens = tokens[: (tokens.size // sequence_length) * sequence_length].reshape(-1, sequence_length)
    rows = mx.random.permutation(tokens.shape[0])
    if num_samples > 0:
        rows = rows[:num_samples]
    print(f"calibration: {rows.size} rows of {sequence_length} tokens from {calib}", file=sys.stderr)
    return tokens[rows]


module.load_data = load_data
sys.argv = [f"mlx_lm.{method}"] + sys.argv[3:]
module.main()
