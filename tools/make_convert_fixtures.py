#!/usr/bin/env python3
"""Reference outputs of mlx_lm.convert for tests/unit/test_convert.c.

For each case below, the tiny llama fixture (tests/fixtures/models/llama_default)
is loaded with mlx-lm and converted the way mlx_lm.convert does it (same
functions: the dtype cast of its convert(), quantize_model, the mixed recipe
predicate, dequantize_model), on MLX's CPU build. mlx_lm.convert itself also
loads a tokenizer, which the fixture model does not have; the weights and the
config do not depend on it.

Written to tests/fixtures/convert/:
  <case>.safetensors  every quantized module's weight (uint32), scales, biases
  <case>.json         {"args": ..., "quantization": the config block,
                       "quantization_config": ..., "tensors": {name: [dtype,
                       shape, fnv1a64 of the bytes]} for every output tensor}

The venv: python3 -m venv .venv-ref &&
  .venv-ref/bin/pip install "mlx[cpu]==0.32.4" mlx-lm==0.32.2 numpy safetensors
Run from the repo root: /work/main/.venv-ref/bin/python tools/make_convert_fixtures.py
"""
import json
import os
import sys

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path
from mlx_lm.convert import mixed_quant_predicate_builder
from mlx_lm.utils import dequantize_model, load_model, quantize_model

SRC = "tests/fixtures/models/llama_default"
QSRC = "tests/fixtures/models/mlx_q4_g32"
OUT = "tests/fixtures/convert"

# name, source, q_bits, q_group_size, quant_predicate, dtype, quantize, dequantize
CASES = [
    ("q4_default", SRC, None, None, None, None, True, False),
    ("q2_g32", SRC, 2, 32, None, None, True, False),
    ("q3_g32_bf16", SRC, 3, 32, None, "bfloat16", True, False),
    ("q5_g32_f16", SRC, 5, 32, None, "float16", True, False),
    ("q6_g32", SRC, 6, 32, None, None, True, False),
    ("q8_g32", SRC, 8, 32, None, None, True, False),
    ("q4_g128", SRC, 4, 128, None, None, True, False),
    ("mixed_3_6_g32", SRC, None, 32, "mixed_3_6", None, True, False),
    ("mixed_2_6_g32_f16", SRC, None, 32, "mixed_2_6", "float16", True, False),
    ("mixed_4_6_default", SRC, None, None, "mixed_4_6", None, True, False),
    ("mixed_3_4_g32", SRC, None, 32, "mixed_3_4", None, True, False),
    ("cast_bf16", SRC, None, None, None, "bfloat16", False, False),
    ("dequantize_q4_g32", QSRC, None, None, None, None, False, True),
    ("dequantize_q4_g32_f16", QSRC, None, None, None, "float16", False, True),
    ("dequantize_q4_g32_bf16", QSRC, None, None, None, "bfloat16", False, True),
]


def fnv1a64(b: bytes) -> str:
    h = 0xCBF29CE484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def to_numpy(v):
    if v.dtype == mx.bfloat16:  # numpy has no bfloat16: keep the raw bits
        return np.array(v.view(mx.uint16))
    return np.array(v)


def convert(src, bits, group, recipe, dtype, quantize, dequantize):
    model, config = load_model(__import__("pathlib").Path(src), lazy=False)
    if dtype is None:
        dtype = config.get("torch_dtype", None)
    if dtype in ("float16", "bfloat16", "float32"):
        t = getattr(mx, dtype)

        def set_dtype(k, v):
            return v.astype(t) if mx.issubdtype(v.dtype, mx.floating) else v

        model.update(tree_map_with_path(set_dtype, model.parameters()))
    if quantize:
        pred = mixed_quant_predicate_builder(recipe, model, group) if recipe else None
        model, config = quantize_model(model, config, group, bits, quant_predicate=pred)
    if dequantize:
        config.pop("quantization", None)
        config.pop("quantization_config", None)
        model = dequantize_model(model)
    return dict(tree_flatten(model.parameters())), config


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, src, bits, group, recipe, dtype, q, dq in CASES:
        weights, config = convert(src, bits, group, recipe, dtype, q, dq)
        mx.eval(weights)
        quantized = sorted(k[: -len(".scales")] for k in weights if k.endswith(".scales"))
        keep = {}
        for m in quantized:
            for s in ("weight", "scales", "biases"):
                keep[f"{m}.{s}"] = weights[f"{m}.{s}"]
        if keep:
            mx.save_safetensors(f"{OUT}/{name}.safetensors", keep, metadata={"format": "mlx"})
        tensors = {}
        for k in sorted(weights):
            v = weights[k]
            tensors[k] = [str(v.dtype).replace("mlx.core.", ""), list(v.shape), fnv1a64(to_numpy(v).tobytes())]
        doc = {
            "args": {"source": src, "q_bits": bits, "q_group_size": group, "quant_predicate": recipe,
                     "dtype": dtype, "quantize": q, "dequantize": dq},
            "quantization": config.get("quantization"),
            "quantization_config": config.get("quantization_config"),
            "tensors": tensors,
        }
        with open(f"{OUT}/{name}.json", "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        print(name, len(quantized), "quantized modules", file=sys.stderr)


if __name__ == "__main__":
    main()
