#!/usr/bin/env python3
"""Checks ctune fuse against the reference implementations.

On a dense float32 Hugging Face model folder (default: the llama fixture) with
a random mlx-lm LoRA or DoRA adapter (non-zero lora_b, made here):
  1. ctune's fused weights equal the fuse math of mlx-lm (section 4 of
     docs/reference: W + s*(A.B)^T, DoRA's m/||.||_row scaling) done in numpy;
  2. transformers loads the fused folder and its logits equal ctune's on the
     same folder (tests/tools/model_logits) within 1e-4 relative;
  3. the GGUF export (F32, F16, BF16, Q8_0, Q4_0) reads back with the `gguf`
     package: llama.cpp metadata keys match config.json, every tensor has
     llama.cpp's name, q/k rows are permuted as llama.cpp's convert script
     does, and the data equals the `gguf` package's own quantization of the
     fused weights (bytes) and dequantizes to the same values.
Usage: check_fuse.py --bin build [--model DIR] [--dora] [--adapter DIR]
Prints "N passed, N failed" last and exits non-zero on failure.

Reference venv: python -m venv .venv-ref && .venv-ref/bin/pip install torch transformers
peft accelerate safetensors numpy gguf
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

RESULTS = [0, 0]


def record(ok, name, detail=""):
    RESULTS[0 if ok else 1] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else "\n    " + str(detail)))


def load_folder(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.startswith("model") and f.endswith(".safetensors"):
            out.update(load_file(os.path.join(d, f)))
    return out


def make_adapter(model_dir, out_dir, dora, seed=0):
    """A random mlx-lm adapter on q/v/down of every block: lora_a (in, r), lora_b (r, out)."""
    w = load_folder(model_dir)
    rng = np.random.default_rng(seed)
    rank, scale, tensors = 4, 2.0, {}
    for name, t in w.items():
        if not any(k in name for k in ("q_proj.weight", "v_proj.weight", "down_proj.weight")):
            continue
        mod = name[: -len(".weight")]
        out_f, in_f = t.shape
        tensors[mod + ".lora_a"] = rng.uniform(-1, 1, (in_f, rank)).astype(np.float32) / np.sqrt(in_f)
        tensors[mod + ".lora_b"] = rng.normal(0, 0.2, (rank, out_f)).astype(np.float32)
        if dora:
            norms = np.linalg.norm(t.astype(np.float32), axis=1)
            tensors[mod + ".m"] = (norms * rng.uniform(0.8, 1.2, out_f)).astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "adapters.safetensors"))
    cfg = {"fine_tune_type": "dora" if dora else "lora", "num_layers": -1,
           "lora_parameters": {"rank": rank, "scale": scale, "dropout": 0.0,
                               "keys": ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]}}
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(cfg, f)


def mlx_fuse(base, adapters, scale):
    """mlx-lm's LoRALinear/DoRALinear.fuse in float32 numpy."""
    out = dict(base)
    for name in adapters:
        if not name.endswith(".lora_a"):
            continue
        mod = name[: -len(".lora_a")]
        W = base[mod + ".weight"].astype(np.float32)
        a, b = adapters[mod + ".lora_a"], adapters[mod + ".lora_b"]
        Wp = W + (scale * b.T) @ a.T
        if mod + ".m" in adapters:
            Wp = (adapters[mod + ".m"] / np.linalg.norm(Wp, axis=1))[:, None] * Wp
        out[mod + ".weight"] = Wp
    return out


def ctune_logits(bin_dir, model, ids):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        subprocess.run([os.path.join(bin_dir, "tools", "model_logits"), model, ",".join(map(str, ids)), f.name],
                       check=True)
        return np.fromfile(f.name, dtype=np.float32).reshape(len(ids), -1)


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def permute_llama(w, heads):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
              "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    mod, leaf = ".".join(parts[3:-1]), parts[-1]
    return f"blk.{parts[2]}.{GGUF_NAMES[mod]}.{leaf}"


def check_gguf(args, fused_dir, cfg, weights, gtype):
    import gguf
    from gguf import GGUFReader, GGMLQuantizationType as Q

    path = os.path.join(fused_dir, f"m-{gtype}.gguf")
    qtype = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[gtype]
    r = GGUFReader(path)
    arch_of = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
    arch = arch_of[cfg["model_type"]]

    def field(key):
        f = r.fields.get(key)
        if f is None:
            return None
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v[0].item()

    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    want = {"general.architecture": arch, f"{arch}.block_count": cfg["num_hidden_layers"],
            f"{arch}.embedding_length": cfg["hidden_size"], f"{arch}.feed_forward_length": cfg["intermediate_size"],
            f"{arch}.attention.head_count": heads, f"{arch}.attention.head_count_kv": kv,
            f"{arch}.context_length": cfg["max_position_embeddings"], f"{arch}.vocab_size": cfg["vocab_size"]}
    bad = {k: (field(k), v) for k, v in want.items() if field(k) != v}
    eps = field(f"{arch}.attention.layer_norm_rms_epsilon")
    if eps is None or abs(eps - cfg["rms_norm_eps"]) > 1e-6 * cfg["rms_norm_eps"] + 1e-12:
        bad["eps"] = (eps, cfg["rms_norm_eps"])
    record(not bad, f"gguf {gtype}: metadata keys", bad)
    tensors = {t.name: t for t in r.tensors}
    names = {gguf_name(n): n for n in weights}
    record(set(tensors) == set(names), f"gguf {gtype}: llama.cpp tensor names", sorted(set(tensors) ^ set(names)))
    mism = []
    for gname, hf in names.items():
        t = tensors.get(gname)
        if t is None:
            continue
        w = weights[hf].astype(np.float32)
        if arch == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            w = permute_llama(w, heads if "q_proj" in hf else kv)
        tq = qtype if w.ndim == 2 else Q.F32
        if tq in (Q.Q8_0, Q.Q4_0) and w.shape[-1] % 32:
            tq = Q.F16
        if t.tensor_type != tq:
            mism.append(f"{gname}: type {t.tensor_type.name}, expected {tq.name}")
            continue
        ref = gguf.quants.quantize(w, tq)
        ours = np.asarray(t.data)
        if ours.tobytes() != np.ascontiguousarray(ref).tobytes():
            mism.append(f"{gname}: data differs from gguf.quants.quantize")
        deq = gguf.quants.dequantize(ours, tq).reshape(w.shape)
        if not np.array_equal(deq, gguf.quants.dequantize(ref, tq).reshape(w.shape)):
            mism.append(f"{gname}: dequantized values differ")
    record(not mism, f"gguf {gtype}: every tensor equals gguf's quantization of the fused weights", mism[:5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(here, "..", "tests", "fixtures", "models", "llama_default"))
    ap.add_argument("--adapter", help="an mlx-lm adapter folder (default: a random one)")
    ap.add_argument("--dora", action="store_true")
    args = ap.parse_args()
    ctune = os.path.join(args.bin, "ctune")
    with tempfile.TemporaryDirectory() as tmp:
        adapter = args.adapter or os.path.join(tmp, "adapter")
        if not args.adapter:
            make_adapter(args.model, adapter, args.dora)
        out = os.path.join(tmp, "fused")
        subprocess.run([ctune, "fuse", "--model", args.model, "--adapter-path", adapter, "--save-path", out,
                        "--export-gguf", "--gguf-path", "m-f32.gguf", "--gguf-type", "f32"],
                       check=True, capture_output=True)
        cfg = json.load(open(os.path.join(out, "config.json")))
        kind = "dora" if args.dora else "lora"
        # 1. fuse math
        acfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
        ref = mlx_fuse(load_folder(args.model), load_file(os.path.join(adapter, "adapters.safetensors")),
                       acfg["lora_parameters"]["scale"])
        fused = load_folder(out)
        worst = max(rel(fused[k].astype(np.float32), ref[k].astype(np.float32)) for k in fused)
        tied = {"lm_head.weight"} if cfg.get("tie_word_embeddings") else set()
        record(set(fused) == set(ref) - tied and worst < 1e-6,
               f"{kind}: fused weights = mlx-lm's fuse math (max rel {worst:.2g})",
               (worst, sorted(set(fused) ^ (set(ref) - tied))))
        # 2. transformers on the fused folder vs ctune on it
        import torch
        from transformers import AutoModelForCausalLM

        ids = [1, 5, 9, 17, 33, 2, 64, 100, 7, 3]
        hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            want = hf(torch.tensor([ids])).logits[0].numpy()
        got = ctune_logits(args.bin, out, ids)
        d = rel(got, want)
        record(d < 1e-4, f"{kind}: transformers logits on the fused folder = ctune's (rel {d:.2g})", d)
        base = ctune_logits(args.bin, args.model, ids)
        record(rel(base, want) > 1e-3, f"{kind}: the adapter changes the logits (the check has teeth)")
        # 3. GGUF exports
        for gtype in ("f16", "bf16", "q8_0", "q4_0"):
            subprocess.run([ctune, "fuse", "--model", args.model, "--adapter-path", adapter, "--save-path",
                            os.path.join(tmp, "g-" + gtype), "--export-gguf", "--gguf-path",
                            f"m-{gtype}.gguf", "--gguf-type", gtype], check=True, capture_output=True)
        check_gguf(args, out, cfg, fused, "f32")
        for gtype in ("f16", "bf16", "q8_0", "q4_0"):
            check_gguf(args, os.path.join(tmp, "g-" + gtype), cfg, fused, gtype)
    print(f"{RESULTS[0]} passed, {RESULTS[1]} failed")
    sys.exit(1 if RESULTS[1] else 0)


if __name__ == "__main__":
    main()
