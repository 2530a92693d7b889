#!/usr/bin/env python3
"""Writes the safetensors reference fixtures into tests/fixtures/safetensors/
with the Python `safetensors` package (the format's reference implementation).

  all_dtypes.safetensors  one (2, 3) tensor "t_<dtype>" per dtype, values from
                          the formulas below (exact in every dtype), plus
                          integer extremes, a 0-d tensor, an empty tensor and
                          __metadata__ {"format": "pt", "note": "ctune fixture"}.
  sharded/                a model folder saved with transformers' rules:
                          huggingface_hub's split_torch_state_dict_into_shards
                          (max_shard_size 100 bytes), safetensors.torch.save_file
                          for each shard, and the index written exactly as
                          transformers' save_pretrained writes it.

Values (i = 0..5, row-major) that tests/unit/test_safetensors.c recomputes:
  float dtypes (F64 F32 F16 BF16 F8_E4M3 F8_E5M2): (i - 2) * 0.5
  signed ints  (I64 I32 I16 I8):                   (i - 2) * 3
  unsigned     (U64 U32 U16 U8):                   i * 40
  BOOL:                                            i % 2

Run with the reference venv:  /work/main/.venv-ref/bin/python tools/make_safetensors_fixtures.py
Recreate that venv:  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers
                     tokenizers jinja2 gguf safetensors numpy
"""
import json
import os
import sys

import numpy as np
import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "safetensors")

FLOATS = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
SIGNED = {"I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8}
UNSIGNED = {"U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8}


def all_dtypes():
    i = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = {}
    for name, dt in FLOATS.items():
        t["t_" + name.lower()] = torch.from_numpy((i - 2) * 0.5).to(dt)
    for name, dt in SIGNED.items():
        t["t_" + name.lower()] = torch.from_numpy(((i - 2) * 3).astype(np.int64)).to(dt)
    for name, dt in UNSIGNED.items():
        t["t_" + name.lower()] = torch.from_numpy((i * 40).astype(np.int64)).to(dt)
    t["t_bool"] = torch.from_numpy(i.astype(np.int64) % 2 == 1)
    t["i64_extremes"] = torch.tensor([-(2**63), 2**63 - 1, -1], dtype=torch.int64)
    t["u64_max"] = torch.from_numpy(np.array([2**64 - 1], dtype=np.uint64))
    t["scalar"] = torch.tensor(3.5, dtype=torch.float32)
    t["empty"] = torch.zeros((0, 4), dtype=torch.float16)
    save_file(t, os.path.join(OUT, "all_dtypes.safetensors"), metadata={"format": "pt", "note": "ctune fixture"})


def sharded():
    d = os.path.join(OUT, "sharded")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    sd = {
        "model.embed_tokens.weight": torch.randn(4, 6, generator=g),             # 96 bytes
        "model.layers.0.mlp.up_proj.weight": torch.randn(6, 6, generator=g),     # 144 bytes: own shard
        "model.layers.0.input_layernorm.weight": torch.ones(6, dtype=torch.bfloat16),
        "model.norm.weight": torch.ones(6),
        "lm_head.weight": torch.randn(2, 6, generator=g).to(torch.float16),
    }
    split = split_torch_state_dict_into_shards(sd, max_shard_size=100)
    for f, names in split.filename_to_tensors.items():
        save_file({n: sd[n] for n in names}, os.path.join(d, f), metadata={"format": "pt"})
    params = sum(v.numel() for v in sd.values())
    index = {"metadata": {"total_parameters": params, **split.metadata}, "weight_map": split.tensor_to_filename}
    with open(os.path.join(d, "model.safetensors.index.json"), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    all_dtypes()
    sharded()
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
