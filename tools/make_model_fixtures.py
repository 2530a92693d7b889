#!/usr/bin/env python3
"""Makes tests/fixtures/models/<name>/: tiny random-init models and reference logits.

Each folder is a Hugging Face model folder (config.json + model.safetensors)
plus expected.safetensors with
  ids     I32 (B, T)     the fixed input
  logits  F32 (B, T, V)  the reference implementation's logits for ids
Dense models: transformers on torch CPU in fp32 (eager attention). Weights are
drawn in fp32, rounded to the stored dtype (bf16 for most, f32/f16 for some),
and the reference runs on the rounded values, so ctune (fp32 compute on the
stored weights) must agree to float rounding.
MLX-quantized models (mlx_q4_g32 from llama_default with an untied lm_head,
mlx_q8_g64 from llama_h64 with a tied, quantized embedding): a dense llama quantized with
mlx.nn.quantize (with per-module overrides in config.json's "quantization"),
saved like mlx_lm.utils.save, logits from mlx_lm on mlx-cpu.

Run from the repo root:  /work/main/.venv-ref/bin/python tools/make_model_fixtures.py
The reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install \
    torch transformers safetensors numpy mlx mlx-lm gguf
(used: torch 2.15, transformers 5.x, mlx 0.32, mlx-lm 0.32)."""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

OUT = "tests/fixtures/models"
T = 12  # positions; the dynamic/yarn/llama3/longrope configs set their original context below this
IDS_SEED = 1234

BASE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, vocab_size=128, max_position_embeddings=64,
            rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)


def rope(rope_type, **kw):
    d = {"rope_type": rope_type, "rope_theta": 10000.0}
    d.update(kw)
    return d


# name -> (model_type, config overrides, stored dtype)
MODELS = {
    "llama_default": ("llama", dict(tie_word_embeddings=False), torch.float32),
    "llama_h64": ("llama", dict(hidden_size=64, intermediate_size=128, head_dim=16), torch.bfloat16),
    "llama_linear": ("llama", dict(rope_parameters=rope("linear", factor=2.0)), torch.bfloat16),
    "llama_dynamic": ("llama", dict(max_position_embeddings=8, rope_parameters=rope("dynamic", factor=2.0)),
                      torch.bfloat16),
    "llama_llama3": ("llama", dict(rope_parameters=rope("llama3", factor=8.0, low_freq_factor=1.0,
                                                         high_freq_factor=4.0, original_max_position_embeddings=8)),
                     torch.float16),
    "llama_yarn": ("llama", dict(rope_parameters=rope("yarn", factor=4.0, original_max_position_embeddings=8)),
                   torch.bfloat16),
    "mistral_window": ("mistral", dict(sliding_window=4), torch.bfloat16),
    "qwen2": ("qwen2", dict(), torch.bfloat16),
    "qwen3": ("qwen3", dict(), torch.bfloat16),
    "phi3": ("phi3", dict(pad_token_id=0), torch.bfloat16),
    "phi3_longrope": ("phi3", dict(pad_token_id=0, max_position_embeddings=32, original_max_position_embeddings=8,
                                   rope_parameters=rope("longrope", long_factor=[1.0, 1.5, 2.0, 3.0],
                                                        short_factor=[1.0, 1.1, 1.2, 1.3])), torch.bfloat16),
    "gemma2": ("gemma2", dict(sliding_window=4, head_dim=8, query_pre_attn_scalar=8,
                              hidden_activation="gelu_pytorch_tanh", pad_token_id=0), torch.bfloat16),
    "gemma3": ("gemma3_text", dict(sliding_window=4, head_dim=8, query_pre_attn_scalar=8,
                                   layer_types=["sliding_attention", "full_attention"], pad_token_id=0),
               torch.bfloat16),
}


def make_config(model_type, overrides):
    from transformers import AutoConfig
    kw = dict(BASE)
    kw.update(overrides)
    cfg = AutoConfig.for_model(model_type, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, dtype, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
                if "gemma" in type(model).__name__.lower():
                    v = 0.1 * torch.randn(p.shape, generator=gen)  # gemma norms are (1 + w)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.15 * torch.randn(p.shape, generator=gen)
            p.copy_(v.to(dtype).to(torch.float32))


def fixed_ids(vocab):
    rng = np.random.default_rng(IDS_SEED)
    return rng.integers(3, vocab, size=(2, T)).astype(np.int32)


def save_expected(folder, ids, logits):
    save_file({"ids": torch.from_numpy(ids), "logits": torch.from_numpy(np.ascontiguousarray(logits, np.float32))},
              os.path.join(folder, "expected.safetensors"))


def make_dense(name, model_type, overrides, dtype, seed):
    from transformers import AutoModelForCausalLM
    cfg = make_config(model_type, overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
    gen = torch.Generator().manual_seed(seed)
    randomize(model, dtype, gen)
    ids = fixed_ids(cfg.vocab_size)
    with torch.no_grad():
        logits = model(torch.from_numpy(ids).long()).logits.float().numpy()
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    cfg.torch_dtype = dtype
    cfg.save_pretrained(folder)
    sd = {k: v.detach().to(dtype).contiguous().clone() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    save_expected(folder, ids, logits)
    print(f"{name}: logits max |x| {np.abs(logits).max():.3f}")


def make_mlx_quantized(name, base, bits, group_size, override):
    """Quantizes a dense llama fixture with mlx and saves it the way mlx_lm does."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.utils import load_model

    src = os.path.join(OUT, base)
    model, config = load_model(__import__("pathlib").Path(src))
    model.set_dtype(mx.float32)  # fp32 scales and compute, like the reference transformers runs
    path, spec = override
    q = {"group_size": group_size, "bits": bits, "mode": "affine", path: spec}

    def predicate(p, m):
        if not hasattr(m, "to_quantized"):
            return False
        if p == path:
            return spec
        return True

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    config["quantization"] = q
    config["quantization_config"] = q
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    from mlx.utils import tree_flatten
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(os.path.join(folder, "model.safetensors"), weights, metadata={"format": "mlx"})
    ids = fixed_ids(config["vocab_size"])
    logits = np.array(model(mx.array(ids)).astype(mx.float32))
    save_expected(folder, ids, logits)
    print(f"{name}: {len(weights)} tensors, logits max |x| {np.abs(logits).max():.3f}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, (mt, ov, dt)) in enumerate(MODELS.items()):
        make_dense(name, mt, ov, dt, seed=100 + i)
    make_mlx_quantized("mlx_q4_g32", "llama_default", 4, 32, ("model.layers.1.mlp.down_proj", {"group_size": 64, "bits": 8}))
    make_mlx_quantized("mlx_q8_g64", "llama_h64", 8, 64, ("model.layers.0.self_attn.v_proj", False))


if __name__ == "__main__":
    main()
