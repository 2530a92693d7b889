#!/usr/bin/env python3
"""Reference GPTQ layers for tests/unit/test_gptq.c: textbook GPTQ
(Frantar et al. 2022, Algorithm 1 with lazy block updates; blocks = groups)
written independently in numpy (float64), with MLX's affine group rule
(mlx/backend/cpu/quantized.cpp, in float32) for each block's scale and bias,
computed from the error-compensated block. Within a block, column k's error
updates columns k+1 .. j-1 only (the textbook slice, not mlx-lm's k:k+j).

The ao_* cases are act-order with static groups (AutoGPTQ's
static_groups=True): every group's scale and bias from the original weights
in their original column order, then the columns processed by decreasing
diag(H) (stable for ties), blocks of g columns in that order, each column with
its own group's parameters; the result is put back in the original order.
Their inputs have a few dominant channels, so the order matters.

Written to tests/fixtures/gptq/<case>.safetensors:
  x       (N, in) f32   calibration inputs (correlated; column 5 never active)
  w       (out, in) f32 the weight
  codes   (out, in) u8  quantization codes
  scales, biases (out, in/g) f32 (holding the values of the case's scale type)
  w_hat   (out, in) f32 the quantized weight s*q + b
and metadata {"bits", "group_size", "scale_dtype"} (+ "act_order": "1").

The venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install numpy safetensors
Run from the repo root: /work/main/.venv-ref/bin/python tools/make_gptq_fixtures.py [case ...]
(no arguments: every case; the random draws do not depend on which are written).
"""
import os
import sys

import numpy as np
from safetensors.numpy import save_file

OUT = "tests/fixtures/gptq"
CASES = [("b4_g32_f32", 4, 32, "float32"), ("b3_g64_f16", 3, 64, "float16"), ("b2_g32_bf16", 2, 32, "bfloat16"),
         ("ao_b4_g32_f32", 4, 32, "float32"), ("ao_b3_g32_f16", 3, 32, "float16")]
DOMINANT = [9, 40, 61]  # act-order cases: these input channels are scaled up
N, IN, OUT_ROWS = 256, 64, 16


def round_sb(x, dtype):
    x = np.float32(x)
    if dtype == "float16":
        return np.float32(np.float16(x))
    if dtype == "bfloat16":  # round to nearest even on the top 16 bits
        u = np.array(x, dtype=np.float32).view(np.uint32)
        u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        return np.float32(u.view(np.float32))
    return x


def mlx_group_params(w, bits):
    """MLX's per-group scale and bias (float32 arithmetic throughout)."""
    w = w.astype(np.float32)
    n_bins = np.float32(2**bits - 1)
    w_min, w_max = np.float32(w.min()), np.float32(w.max())
    mask = abs(w_min) > abs(w_max)
    scale = np.float32((w_max - w_min) / n_bins)
    scale = max(scale, np.float32(1e-7))
    scale = scale if mask else -scale
    edge = w_min if mask else w_max
    q0 = np.rint(np.float32(edge / scale))
    bias = np.float32(0)
    if q0 != 0:
        scale = np.float32(edge / q0)
        bias = edge
    return np.float32(scale), np.float32(bias)


def gptq(W, X, bits, g, sb):
    W = W.astype(np.float64).copy()
    H = X.astype(np.float64).T @ X.astype(np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += 0.01 * np.mean(np.diag(H)) * np.eye(IN)
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper, H^-1 = U^T U
    rows = W.shape[0]
    codes = np.zeros(W.shape, np.uint8)
    scales = np.zeros((rows, IN // g), np.float32)
    biases = np.zeros((rows, IN // g), np.float32)
    maxq = np.float32(2**bits - 1)
    for i in range(0, IN, g):
        j = i + g
        for r in range(rows):
            s, b = mlx_group_params(W[r, i:j], bits)
            scales[r, i // g], biases[r, i // g] = round_sb(s, sb), round_sb(b, sb)
        Err = np.zeros((rows, g))
        for k in range(i, j):
            for r in range(rows):
                s, b = scales[r, i // g], biases[r, i // g]
                q = np.clip(np.rint(np.float32((np.float32(W[r, k]) - b) / s)), 0, maxq)
                deq = np.float32(s * np.float32(q) + b)
                e = (W[r, k] - np.float64(deq)) / U[k, k]
                W[r, k + 1:j] -= e * U[k, k + 1:j]
                Err[r, k - i] = e
                W[r, k] = deq
                codes[r, k] = q
        W[:, j:] -= Err @ U[i:j, j:]
    return codes, scales, biases, W.astype(np.float32)


def gptq_act_order(W, X, bits, g, sb):
    W = W.astype(np.float64).copy()
    H = X.astype(np.float64).T @ X.astype(np.float64)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    rows = W.shape[0]
    # static groups: parameters from the original (dead-zeroed) weights, original order
    scales = np.zeros((rows, IN // g), np.float32)
    biases = np.zeros((rows, IN // g), np.float32)
    for r in range(rows):
        for gi in range(IN // g):
            s, b = mlx_group_params(W[r, gi * g:(gi + 1) * g], bits)
            scales[r, gi], biases[r, gi] = round_sb(s, sb), round_sb(b, sb)
    perm = np.argsort(-np.diag(H), kind="stable")
    group = perm // g  # group of the column at each processing position
    Wp = W[:, perm]
    Hp = H[perm][:, perm]
    Hp += 0.01 * np.mean(np.diag(Hp)) * np.eye(IN)
    U = np.linalg.cholesky(np.linalg.inv(Hp)).T
    Qp = np.zeros(W.shape, np.uint8)
    maxq = np.float32(2**bits - 1)
    for i in range(0, IN, g):
        j = i + g
        Err = np.zeros((rows, g))
        for k in range(i, j):
            s, b = scales[:, group[k]], biases[:, group[k]]
            q = np.clip(np.rint(((Wp[:, k].astype(np.float32) - b) / s).astype(np.float32)), 0, maxq)
            deq = (s * q.astype(np.float32) + b).astype(np.float32)
            e = (Wp[:, k] - deq.astype(np.float64)) / U[k, k]
            Wp[:, k + 1:j] -= np.outer(e, U[k, k + 1:j])
            Err[:, k - i] = e
            Wp[:, k] = deq
            Qp[:, k] = q
        Wp[:, j:] -= Err @ U[i:j, j:]
    inv = np.argsort(perm)
    # ascontiguousarray: fancy indexing gives a column-major view, which save_file would write as is
    return np.ascontiguousarray(Qp[:, inv]), scales, biases, np.ascontiguousarray(Wp[:, inv], dtype=np.float32)


def main():
    wanted = set(sys.argv[1:]) or {c[0] for c in CASES}
    rng = np.random.default_rng(8)
    os.makedirs(OUT, exist_ok=True)
    for name, bits, g, sb in CASES:
        mix = rng.standard_normal((IN, IN)) * 0.3 + np.eye(IN)
        X = (rng.standard_normal((N, IN)) @ mix * rng.uniform(0.2, 3.0, IN)).astype(np.float32)
        X[:, 5] = 0
        W = (rng.standard_normal((OUT_ROWS, IN)) * 0.05).astype(np.float32)
        if name not in wanted:
            continue
        meta = {"bits": str(bits), "group_size": str(g), "scale_dtype": sb}
        if name.startswith("ao_"):
            X[:, DOMINANT] *= 8
            codes, scales, biases, w_hat = gptq_act_order(W, X, bits, g, sb)
            changed = (codes != gptq(W, X, bits, g, sb)[0]).sum()
            assert changed > 50, "act-order should change many codes here"
            meta["act_order"] = "1"
            print(name, changed, "codes differ from plain GPTQ")
        else:
            codes, scales, biases, w_hat = gptq(W, X, bits, g, sb)
        save_file({"x": X, "w": W, "codes": codes, "scales": scales, "biases": biases, "w_hat": w_hat},
                  f"{OUT}/{name}.safetensors", metadata=meta)
        print(name, "written")


if __name__ == "__main__":
    main()
