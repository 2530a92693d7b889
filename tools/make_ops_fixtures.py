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


ROPE_D, ROPE_B, ROPE_T, ROPE_H, ROPE_OFF = 32, 1, 6, 2, 97
ROPE_CASES = {  # name: (rope_type, extra rope_parameters, partial_rotary_factor, seq_len)
    "default": ("default", {}, 1.0, 103),
    "partial": ("default", {}, 0.5, 103),
    "linear": ("linear", {"factor": 4.0}, 1.0, 103),
    "dynamic": ("dynamic", {"factor": 2.0}, 1.0, 103),
    "llama3": ("llama3", {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64}, 1.0, 103),
    "yarn": ("yarn", {"factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32.0,
                      "beta_slow": 1.0}, 1.0, 103),
    "yarn_mscale": ("yarn", {"factor": 8.0, "original_max_position_embeddings": 64, "mscale": 0.707,
                             "mscale_all_dim": 1.0}, 1.0, 103),
    "longrope": ("longrope", {"original_max_position_embeddings": 64}, 1.0, 103),
    "longrope_short": ("longrope", {"original_max_position_embeddings": 64}, 1.0, 50),
}


def make_rope():
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    rng = np.random.default_rng(2)
    t = {}
    q = rng.standard_normal((ROPE_B, ROPE_T, ROPE_H, ROPE_D)).astype(np.float32)
    t["q"] = q
    t["long_factor"] = (1 + rng.uniform(0, 3, ROPE_D // 2)).astype(np.float32)
    t["short_factor"] = (1 + rng.uniform(0, 0.5, ROPE_D // 2)).astype(np.float32)
    for name, (rtype, extra, partial, seq_len) in ROPE_CASES.items():
        params = {"rope_type": rtype, "rope_theta": 10000.0, **extra}
        if rtype == "longrope":
            params["long_factor"] = t["long_factor"].tolist()
            params["short_factor"] = t["short_factor"].tolist()
        if partial != 1.0:
            params["partial_rotary_factor"] = partial
        cfg = LlamaConfig(hidden_size=ROPE_D * 4, num_attention_heads=4, head_dim=ROPE_D,
                          max_position_embeddings=64 if rtype == "dynamic" else 256, rope_parameters=params)
        if rtype == "default":
            rot = int(ROPE_D * partial)
            inv_freq = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float) / rot))
            scaling = 1.0
        else:
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rtype](cfg, "cpu", seq_len=seq_len)
        emb = LlamaRotaryEmbedding(cfg)  # forward's cos/sin recipe, with our inv_freq and scaling
        emb.inv_freq, emb.attention_scaling, emb.rope_type = inv_freq, scaling, "default"
        pos = torch.arange(ROPE_OFF, ROPE_OFF + ROPE_T)[None].expand(ROPE_B, -1)
        x = torch.from_numpy(q).transpose(1, 2)  # (B, H, T, D)
        cos, sin = emb(x, pos)
        rot = 2 * inv_freq.shape[0]
        xr, _ = apply_rotary_pos_emb(x[..., :rot], x[..., :rot], cos, sin)
        out = torch.cat([xr, x[..., rot:]], -1).transpose(1, 2).contiguous()
        t[f"{name}_inv_freq"] = inv_freq.float().numpy()
        t[f"{name}_scaling"] = np.array([scaling], np.float32)
        t[f"{name}_out"] = out.numpy()
    write_safetensors(f"{OUT}/rope.safetensors", t)


def attention_ref(torch, q, k, v, off, window, softcap, scale):
    """q (B,T,H,D), k/v (B,S,KVH,D) -> out (B,T,H,D): plain softmax(mask(scores)) . v"""
    B, T, H, D = q.shape
    KVH = k.shape[2]
    S = off + T
    k, v = k[:, :S].repeat_interleave(H // KVH, 2), v[:, :S].repeat_interleave(H // KVH, 2)
    s = torch.einsum("bthd,bshd->bhts", q, k) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    qp = torch.arange(off, off + T)[:, None]
    kp = torch.arange(S)[None]
    allowed = kp <= qp
    if window:
        allowed &= qp - kp < window
    s = s.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhts,bshd->bthd", torch.softmax(s, -1), v).contiguous()


def make_ops():
    import torch
    import torch.nn.functional as F
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    rng = np.random.default_rng(3)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    t = {}
    # RMSNorm (llama) and Gemma's (1 + w)
    x, w = f32(5, 48), f32(48)
    t["rms_x"], t["rms_w"] = x, w
    for name, cls in (("rms_llama", LlamaRMSNorm), ("rms_gemma", Gemma3RMSNorm)):
        m = cls(48, eps=1e-6)
        m.weight.data = torch.from_numpy(w)
        t[name] = m(torch.from_numpy(x)).detach().numpy()
    # attention: plain causal GQA, then KV cache + sliding window + soft-cap
    for name, (B, T, H, KVH, D, off, S, window, cap) in {
        "att_plain": (2, 7, 4, 2, 16, 0, 7, 0, 0.0),
        "att_cache": (1, 3, 6, 2, 8, 5, 10, 4, 20.0),
    }.items():
        q, k, v = f32(B, T, H, D), f32(B, S, KVH, D), f32(B, S, KVH, D)
        t[name + "_q"], t[name + "_k"], t[name + "_v"] = q, k, v
        out = attention_ref(torch, *(torch.from_numpy(a) for a in (q, k, v)), off, window, cap, D ** -0.5)
        t[name + "_out"] = out.numpy()
    # gated activations
    g, u = f32(64) * 3, f32(64)
    t["glu_gate"], t["glu_up"] = g, u
    t["glu_silu"] = (F.silu(torch.from_numpy(g)) * torch.from_numpy(u)).numpy()
    t["glu_gelu"] = (F.gelu(torch.from_numpy(g), approximate="tanh") * torch.from_numpy(u)).numpy()
    # linear with f32 / f16 / bf16 weights and a bias
    xl, wl, bl = f32(6, 40), f32(24, 40), f32(24)
    t["lin_x"], t["lin_w"], t["lin_b"] = xl, wl, bl
    t["lin_w_f16"] = wl.astype(np.float16).view(np.uint16)
    wbf = torch.from_numpy(wl).to(torch.bfloat16)
    t["lin_w_bf16"] = wbf.view(torch.int16).numpy().view(np.uint16)
    for name, wt in (("f32", torch.from_numpy(wl)), ("f16", torch.from_numpy(wl).half().float()),
                     ("bf16", wbf.float())):
        t["lin_out_" + name] = F.linear(torch.from_numpy(xl), wt, torch.from_numpy(bl)).numpy()
    # softmax, log-softmax, soft-capping, masked cross-entropy, KL and JS with temperature
    lg, lp = f32(4, 33) * 4, f32(4, 33) * 4
    tg = rng.integers(0, 33, 4).astype(np.int32)
    mask = np.array([1, 0, 1, 1], np.float32)
    t["lg"], t["lg_p"], t["lg_targets"], t["lg_mask"] = lg, lp, tg, mask
    L, P = torch.from_numpy(lg), torch.from_numpy(lp)
    t["softmax"], t["log_softmax"] = torch.softmax(L, -1).numpy(), torch.log_softmax(L, -1).numpy()
    t["softcap"] = (30.0 * torch.tanh(L / 30.0)).numpy()
    ce = F.cross_entropy(L, torch.from_numpy(tg).long(), reduction="none")
    t["ce"] = np.array([(ce * torch.from_numpy(mask)).sum() / mask.sum()], np.float32)
    tau = 2.0
    lq_, lp_ = torch.log_softmax(L / tau, -1), torch.log_softmax(P / tau, -1)
    t["kl"] = (lp_.exp() * (lp_ - lq_)).sum(-1).numpy()
    m = 0.5 * (lp_.exp() + lq_.exp())
    t["js"] = (0.5 * (lp_.exp() * (lp_ - m.log())).sum(-1) + 0.5 * (lq_.exp() * (lq_ - m.log())).sum(-1)).numpy()
    # embedding lookup from a bf16 table
    emb = f32(10, 12)
    ids = np.array([3, 0, 9, 3], np.int32)
    eb = torch.from_numpy(emb).to(torch.bfloat16)
    t["emb_bf16"], t["emb_ids"] = eb.view(torch.int16).numpy().view(np.uint16), ids
    t["emb_out"] = F.embedding(torch.from_numpy(ids).long(), eb.float()).numpy()
    write_safetensors(f"{OUT}/ops.safetensors", t)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    which = sys.argv[1:] or ["affine", "rope", "ops"]
    for name in which:
        globals()["make_" + name]()
