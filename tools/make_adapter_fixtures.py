#!/usr/bin/env python3
"""Makes tests/fixtures/adapters/reference.safetensors: LoRA and DoRA linears
computed by PyTorch autograd with mlx-lm's math (tuner/lora.py, dora.py):

  LoRA  y = x W^T + b + s (x A) B
  DoRA  y = (m / ||W + s (A B)^T||_row.detach()) * (x W^T + s (x A) B) + b

A (in, r) and B (r, out) in mlx's layout. For each case <c> in lora_dense,
lora_q4, dora_dense, dora_q4 it stores the inputs (x, W or its 4-bit affine
codes wq/scales/biases from mlx.core.quantize, bias, A, B, m, R) and the
references: y, and the gradients dx, dA, dB, dm of loss = sum(y * R), plus the
fused weight (W + s (A B)^T, DoRA: scaled rows). For a quantized base, torch
uses mx.dequantize of the same codes. Dropout is 0 (masks are RNG-specific).

Run from the repo root:  /work/main/.venv-ref/bin/python tools/make_adapter_fixtures.py
The reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install \
    torch mlx numpy   (torch 2.x, mlx 0.32 CPU build)"""
import json
import os
import struct

import numpy as np
import torch

OUT = "tests/fixtures/adapters"
DT = {np.float32: "F32", np.uint32: "U32"}
IN, OUTF, R, N, SCALE = 64, 8, 4, 5, 2.0


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


def quantize4(w):
    import mlx.core as mx
    wq, sc, bi = mx.quantize(mx.array(w), group_size=32, bits=4)
    deq = mx.dequantize(wq, sc, bi, group_size=32, bits=4)
    return np.array(wq), np.array(sc), np.array(bi), np.array(deq)


def case(rng, name, dora, quant):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    w = f(OUTF, IN)
    t = {}
    if quant:
        wq, sc, bi, w = quantize4(w)
        t.update({f"{name}.wq": wq, f"{name}.scales": sc, f"{name}.biases": bi})
    else:
        t[f"{name}.w"] = w
    x, bias, a, b, rr = f(N, IN), f(OUTF), f(IN, R) * 0.2, f(R, OUTF) * 0.2, f(N, OUTF)
    m = np.linalg.norm(w, axis=1).astype(np.float32) * (1 + 0.1 * f(OUTF))
    tx, ta, tb, tm = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, a, b, m))
    tw, tbias = torch.tensor(w, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64)
    lora = SCALE * (tx @ ta) @ tb
    adapted = tw + SCALE * (ta @ tb).T
    if dora:
        denom = torch.linalg.norm(adapted, dim=1).detach()
        y = (tm / denom) * (tx @ tw.T + lora) + tbias
        fused = (tm / torch.linalg.norm(adapted, dim=1))[:, None] * adapted
    else:
        y = tx @ tw.T + tbias + lora
        fused = adapted
    (y * torch.tensor(rr, dtype=torch.float64)).sum().backward()
    t.update({f"{name}.{k}": v for k, v in
              {"x": x, "bias": bias, "a": a, "b": b, "m": m, "R": rr}.items()})
    refs = {"y": y, "dx": tx.grad, "da": ta.grad, "db": tb.grad, "dm": tm.grad, "fused": fused}
    t.update({f"{name}.{k}": v.detach().numpy().astype(np.float32) for k, v in refs.items() if v is not None})
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(5)
    t = {}
    for name, dora, quant in [("lora_dense", False, False), ("lora_q4", False, True),
                              ("dora_dense", True, False), ("dora_q4", True, True)]:
        t.update(case(rng, name, dora, quant))
    write_safetensors(f"{OUT}/reference.safetensors", t)


if __name__ == "__main__":
    main()
