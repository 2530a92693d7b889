#!/usr/bin/env python3
"""Makes tests/fixtures/ops/*.safetensors: reference outputs for the ops module.

  affine.safetensors  mlx.core.quantize / dequantize / quantized_matmul on mlx-cpu
  rope.safetensors    transformers' ROPE_INIT_FUNCTIONS + apply_rotary_pos_emb
  ops.safetensors     torch forward references (rmsnorm, attention, activations, ...)

Run from the repo root:  /work/main/.venv-ref/bin/python tools/make_ops_fixtures.py
The reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install \
    torch transformers mlx numpy   (mlx 0.32 CPU build, torch 2.x, transformers 5.x)
Files are written with a tiny safetensors writer (no bf16 in numpy: bf16 and
f16 bit patterns are stored as U16)."""
import json
import os
import struct
import sys

import numpy as np

OUT = "tests/fixtures/ops"
DT = {np.float32: "F32", np.float64: "F64", np.uint32: "U32", np.uint16: "U16", np.int32: "I32"}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": DT[arr.dtype.type], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def affine_input(rng):
    """8 rows x 256: random rows, then the edge cases of the rounding rule."""
    w = np.zeros((8, 256), np.float32)
    w[0] = rng.standard_normal(256) * 0.02
    w[1] = rng.standard_normal(256)
    w[2] = rng.uniform(-3, 1, 256)
    w[3] = 0.0                                                       # zeros
    w[4] = np.repeat(np.array([0.37, -1.25, 5.0, -0.001], np.float32), 64)  # constant groups
    w[5] = -np.abs(rng.standard_normal(256)) - 0.1                  # negatives only
    w[6] = np.abs(rng.standard_normal(256)) + 0.1                   # positives only
    w[6, :32] = np.linspace(-1, 1, 32)                              # |min| == |max|
    w[7] = rng.standard_normal(256) * 1e-8                          # below the 1e-7 scale floor
    w[7, 128:] = rng.standard_normal(128) * 300
    return w


def make_affine():
    import mlx.core as mx
    rng = np.random.default_rng(1)
    w = affine_input(rng)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    t = {"w_f32": w, "x": x}
    f16 = w.astype(np.float16)
    t["w_f16"] = f16.view(np.uint16)
    bf = mx.array(w).astype(mx.bfloat16)
    t["w_bf16"] = np.array(bf.view(mx.uint16))
    for dtype, src in (("f32", mx.array(w)), ("f16", mx.array(f16)), ("bf16", bf)):
        for bits in (2, 3, 4, 5, 6, 8):
            for gs in (32, 64, 128):
                if dtype != "f32" and gs != 64:
                    continue
                wq, s, b = mx.quantize(src, group_size=gs, bits=bits)
                key = f"{dtype}_b{bits}_g{gs}"
                t[key + "_wq"] = np.array(wq)
                for nm, a in (("scales", s), ("biases", b)):
                    t[f"{key}_{nm}"] = np.array(a) if dtype == "f32" else np.array(a.view(mx.uint16))
                s32, b32 = s.astype(mx.float32), b.astype(mx.float32)
                t[key + "_qmm"] = np.array(mx.quantized_matmul(mx.array(x), wq, s32, b32, transpose=True,
                                                               group_size=gs, bits=bits))
                if gs == 64 and dtype == "f32":
                    t[key + "_deq"] = np.array(mx.dequantize(wq, s32, b32, group_size=gs, bits=bits))
    write_safetensors(f"{OUT}/affine.safetensors", t)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    which = sys.argv[1:] or ["affine", "rope", "ops"]
    for name in which:
        globals()["make_" + name]()
