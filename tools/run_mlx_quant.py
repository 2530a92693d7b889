#!/usr/bin/env python3
"""Runs one of mlx-lm's quantization tools (mlx_lm.quant.gptq, awq,
dynamic_quant, dwq) on mlx-cpu with calibration text from a local file instead
of the data mlx-lm downloads (a gist; a Hugging Face dataset for dwq), so that
its numbers can stand beside ctune's on the same model, data and settings
(docs/QUANTIZATION.md).

Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install "mlx[cpu]" mlx-lm

usage: run_mlx_quant.py METHOD CALIBRATION.txt [mlx-lm flags...]
The calibration text is tokenized whole (as mlx-lm's load_data does) and cut
into rows of --sequence-length tokens (512 for dynamic_quant; --max-seq-length
for dwq); the tail that does not fill a row is dropped.
- gptq, awq, dynamic_quant: the rows are shuffled with mlx's seeded
  permutation and the first --num-samples kept; give a text that makes exactly
  the rows you want and --num-samples -1 to use the same rows as ctune.
- dwq: the rows are shuffled with numpy's seeded permutation (as mlx-lm's dwq
  shuffles its dataset); the first --num-samples train, the next (at most 32)
  validate."""
import importlib
import sys

import mlx.core as mx
import numpy as np

method, calib = sys.argv[1], sys.argv[2]
module = importlib.import_module(f"mlx_lm.quant.{method}")
text = open(calib, encoding="utf-8").read()


def token_rows(tokenizer, length):
    tokens = np.array(tokenizer.encode(text))
    rows = tokens.size // length
    if rows == 0:
        sys.exit(f"{calib}: {tokens.size} tokens, shorter than one row of {length}")
    return tokens[: rows * length].reshape(rows, length)


def load_data(tokenizer, num_samples, sequence_length):
    tokens = mx.array(token_rows(tokenizer, sequence_length))
    rows = mx.random.permutation(tokens.shape[0])
    if num_samples > 0:
        rows = rows[:num_samples]
    print(f"calibration: {rows.size} rows of {sequence_length} tokens from {calib}", file=sys.stderr)
    return tokens[rows]


def load_dwq_data(tokenizer, data_path, num_samples, max_seq_length, num_valid_samples=32):
    tokens = token_rows(tokenizer, max_seq_length)
    perm = np.random.permutation(tokens.shape[0])
    train = [(tokens[i].tolist(), 0) for i in perm[:num_samples]]
    valid = [(tokens[i].tolist(), 0) for i in perm[num_samples : num_samples + num_valid_samples]]
    print(f"calibration: {len(train)} train and {len(valid)} validation rows of "
          f"{max_seq_length} tokens from {calib}", file=sys.stderr)
    return train, valid


module.load_data = load_dwq_data if method == "dwq" else load_data
sys.argv = [f"mlx_lm.{method}"] + sys.argv[3:]
module.main()
