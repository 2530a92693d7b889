#!/usr/bin/env python3
"""Makes tests/fixtures/train/<case>.safetensors: one training step's loss and
every trainable gradient from PyTorch autograd, for ctune's training engine.

Models are the tiny random-init folders of tests/fixtures/models (llama_default
f32 untied, qwen2 bf16 tied with q/k/v biases, qwen3 bf16 tied with q/k norms,
mlx_q4_g32: llama_default MLX-quantized, dequantized here exactly as MLX does:
w = scale * q + bias per group; gemma3 bf16 tied, a sliding layer (window 4,
local RoPE base) then a full one, four (1 + w) norms per layer and q/k norms,
embeddings scaled by sqrt(hidden)). Torch runs transformers' model in float64 on
those weights, with mlx-lm's adapter math patched in:
  LoRA linear     y = x W^T + b + s (x A) B            A (in, r), B (r, out)
  DoRA linear     y = (m / stop_grad(||W + s (A B)^T||_row)) (x W^T + s (x A) B) + b
  LoRA embedding  y = W[ids] + s A[ids] B;  tied head: h W^T + s (h B^T) A^T
                  (gemma: the model scales y by sqrt(hidden) after the lookup)
and mlx-lm's loss: inputs tokens[:, :-1], targets tokens[:, 1:],
loss = sum(mask * CE) / sum(mask).

Each file holds tokens I32 (B, W), mask F32 (B, W-1), loss F64 (1), and for
every trainable parameter P (mlx-lm names): init.P (adapters only: lora_a and
lora_b random, m = row norms * (1 + noise), so that no gradient is trivially
zero) and grad.P (F32).

The gemma3 cases go to tests/fixtures/train_gemma3/ (the train folder's size budget).

Run from the repo root:  /work/main/.venv-ref/bin/python tools/make_train_fixtures.py [case ...]
(no case names: every case)
The reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install \
    torch transformers safetensors numpy
(used: torch 2.x, transformers 5.x)."""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MODELS = "tests/fixtures/models"
OUT = "tests/fixtures/train"
OUT_GEMMA3 = "tests/fixtures/train_gemma3"
PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

# name -> model folder, type, num_layers, rank, scale, keys (None = the seven projections)
CASES = {
    "llama_lora": ("llama_default", "lora", -1, 4, 2.0, None),
    "llama_lora_head": ("llama_default", "lora", 1, 2, 1.5, ["mlp.down_proj", "lm_head"]),
    "qwen2_dora": ("qwen2", "dora", -1, 4, 2.0, None),
    "qwen2_lora_embed": ("qwen2", "lora", 1, 3, 1.0, ["self_attn.v_proj", "model.embed_tokens"]),
    "qwen3_lora": ("qwen3", "lora", -1, 4, 2.0, None),
    "q4_lora": ("mlx_q4_g32", "lora", -1, 4, 2.0, None),
    "qwen3_full": ("qwen3", "full", 1, 0, 0.0, None),
    "qwen2_full": ("qwen2", "full", 1, 0, 0.0, None),
    "gemma3_lora": ("gemma3", "lora", -1, 4, 2.0, None),
    "gemma3_lora_embed": ("gemma3", "lora", 1, 3, 1.0, ["self_attn.v_proj", "model.embed_tokens"]),
    "gemma3_full": ("gemma3", "full", 2, 0, 0.0, None),
}


def dequantize(w, scales, biases, bits, group):
    rows = w.shape[0]
    bitstream = np.unpackbits(w.numpy().view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")
    cols = bitstream.shape[1] // bits
    q = (bitstream.reshape(rows, cols, bits).astype(np.int64) << np.arange(bits)).sum(-1).astype(np.float32)
    s = np.repeat(scales.float().numpy(), group, axis=1)
    b = np.repeat(biases.float().numpy(), group, axis=1)
    return torch.from_numpy(s * q + b)


def load_model(folder):
    from transformers import AutoConfig, AutoModelForCausalLM
    path = os.path.join(MODELS, folder)
    cfgd = json.load(open(os.path.join(path, "config.json")))
    quant = cfgd.pop("quantization", None)
    cfgd.pop("quantization_config", None)
    model_type = cfgd.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **cfgd)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    sd = load_file(os.path.join(path, "model.safetensors"))
    if quant:
        out = {}
        for k, v in sd.items():
            if k.endswith(".scales") or k.endswith(".biases"):
                continue
            base = k[: -len(".weight")]
            if base + ".scales" in sd:
                q = quant.get(base, quant)
                v = dequantize(v, sd[base + ".scales"], sd[base + ".biases"], q["bits"], q["group_size"])
            out[k] = v
        sd = out
    sd = {k: v.double() for k, v in sd.items()}
    model = model.double()
    model.load_state_dict(sd, strict=False)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    emb = model.model.embed_tokens
    if hasattr(emb, "embed_scale"):
        # gemma: transformers builds this bf16 checkpoint's scale in bf16 (sqrt(32) -> 5.65625, as mlx-lm
        # always rounds it); ctune's loader uses sqrt(hidden) in float32, as transformers does for a
        # float32 checkpoint. Pinned to the latter so these fixtures test the training engine.
        emb.embed_scale.fill_(float(np.float32(cfg.hidden_size ** 0.5)))
    return model, cfg


class LoRALinear(torch.nn.Module):
    def __init__(self, base, a, b, scale, m=None):
        super().__init__()
        self.base, self.scale = base, scale
        self.a, self.b = torch.nn.Parameter(a), torch.nn.Parameter(b)
        self.m = torch.nn.Parameter(m) if m is not None else None

    def forward(self, x):
        z = x @ self.base.weight.T + self.scale * (x @ self.a) @ self.b
        if self.m is not None:
            adapted = self.base.weight + self.scale * (self.a @ self.b).T
            z = (self.m / adapted.norm(dim=1).detach()) * z
        return z + self.base.bias if self.base.bias is not None else z


class LoRAEmbedding(torch.nn.Module):
    def __init__(self, base, a, b, scale):
        super().__init__()
        self.base, self.scale = base, scale
        self.a, self.b = torch.nn.Parameter(a), torch.nn.Parameter(b)

    def forward(self, ids):
        # transformers' gemma embedding scales inside the module (base(ids) includes it); mlx-lm scales
        # the sum after the lookup: the same y = (W[ids] + s A[ids] B) * embed_scale
        y = self.base.weight[ids] + self.scale * self.a[ids] @ self.b
        es = getattr(self.base, "embed_scale", None)
        return y * es.to(y.dtype) if es is not None else y

    def as_linear(self, h):
        return h @ self.base.weight.T + self.scale * (h @ self.b.T) @ self.a.T


class TiedHead(torch.nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb

    def forward(self, h):
        return self.emb.as_linear(h)


def get_module(model, path):
    mod = model
    for p in path.split("."):
        mod = getattr(mod, p)
    return mod


def set_module(model, path, new):
    parent, leaf = path.rsplit(".", 1) if "." in path else ("", path)
    setattr(get_module(model, parent) if parent else model, leaf, new)


def selected_paths(cfg, num_layers, keys):
    L = cfg.num_hidden_layers
    first = 0 if num_layers == -1 else L - num_layers
    rel = PROJ if keys is None else [k for k in keys if k in PROJ]
    full = [] if keys is None else [k for k in keys if k not in PROJ]
    return [f"model.layers.{l}.{r}" for l in range(first, L) for r in rel] + full


def attach(model, cfg, kind, num_layers, rank, scale, keys, gen):
    init, params = {}, {}
    for path in selected_paths(cfg, num_layers, keys):
        base = get_module(model, path)
        if isinstance(base, torch.nn.Embedding):
            V, d = base.weight.shape
            a = (torch.rand(V, rank, generator=gen, dtype=torch.float64) * 2 - 1) / V ** 0.5
            b = torch.randn(rank, d, generator=gen, dtype=torch.float64) * 0.1
            mod = LoRAEmbedding(base, a.float().double(), b.float().double(), scale)
            set_module(model, path, mod)
            if cfg.tie_word_embeddings:
                model.lm_head = TiedHead(mod)
        else:
            out, inp = base.weight.shape
            a = (torch.rand(inp, rank, generator=gen, dtype=torch.float64) * 2 - 1) / inp ** 0.5
            b = torch.randn(rank, out, generator=gen, dtype=torch.float64) * 0.1
            m = None
            if kind == "dora":
                m = base.weight.norm(dim=1) * (1 + 0.1 * torch.randn(out, generator=gen, dtype=torch.float64))
                m = m.float().double()
            mod = LoRALinear(base, a.float().double(), b.float().double(), scale, m)
            set_module(model, path, mod)
        for leaf, p in (("lora_a", mod.a), ("lora_b", mod.b), ("m", getattr(mod, "m", None))):
            if p is not None:
                init[f"{path}.{leaf}"] = p.detach().float()
                params[f"{path}.{leaf}"] = p
    return init, params


def full_params(model, cfg, num_layers):
    params = {}
    first = cfg.num_hidden_layers - num_layers
    for name, p in model.named_parameters():
        p.requires_grad_(False)
        if any(name.startswith(f"model.layers.{l}.") for l in range(first, cfg.num_hidden_layers)):
            p.requires_grad_(True)
            params[name] = p
    return params


def batch(V, gen):
    B, W = 2, 10
    tokens = torch.randint(3, V, (B, W), generator=gen, dtype=torch.int64)
    tokens[1, 7:] = 0  # row 1: 7 real tokens, then padding
    mask = torch.zeros(B, W - 1)
    mask[0, 3:] = 1    # prompt of 4 tokens
    mask[1, 1:7] = 1   # through the first pad (mlx-lm's length rule)
    return tokens, mask


def make_case(name, folder, kind, num_layers, rank, scale, keys):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    model, cfg = load_model(folder)
    for p in model.parameters():
        p.requires_grad_(False)
    if kind == "full":
        init, params = {}, full_params(model, cfg, num_layers)
    else:
        init, params = attach(model, cfg, kind, num_layers, rank, scale, keys, gen)
    tokens, mask = batch(cfg.vocab_size, gen)
    logits = model(input_ids=tokens[:, :-1]).logits
    ce = torch.logsumexp(logits, -1) - logits.gather(-1, tokens[:, 1:, None])[..., 0]
    m = mask.double()
    loss = (ce * m).sum() / m.sum()
    loss.backward()
    out = {"tokens": tokens.int().contiguous(), "mask": mask.float().contiguous(),
           "loss": loss.detach().reshape(1).contiguous()}
    for k, v in init.items():
        out["init." + k] = v.contiguous()
    for k, p in params.items():
        out["grad." + k] = p.grad.float().contiguous()
    out_dir = OUT_GEMMA3 if folder == "gemma3" else OUT
    os.makedirs(out_dir, exist_ok=True)
    save_file(out, os.path.join(out_dir, name + ".safetensors"))
    print(f"{name}: loss {loss.item():.6f}, {len(params)} gradients")


def make_adapter_folder():
    """llama_adapter/: an mlx-lm adapter folder (LoRA on every projection, large
    lora_b) and the greedy continuation of prompt 5,6,7,8 through it (torch)."""
    gen = torch.Generator().manual_seed(4242)
    model, cfg = load_model("llama_default")
    for p in model.parameters():
        p.requires_grad_(False)
    init, _ = attach(model, cfg, "lora", -1, 4, 2.0, None, gen)
    for k in init:
        if k.endswith("lora_b"):
            init[k] = init[k] * 20
            get_module(model, k[: -len(".lora_b")]).b.data = init[k].double()
    ids = [5, 6, 7, 8]
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    d = os.path.join(OUT, "llama_adapter")
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in init.items()}, os.path.join(d, "adapters.safetensors"),
              metadata={"format": "mlx"})
    json.dump({"fine_tune_type": "lora", "num_layers": -1,
               "lora_parameters": {"rank": 4, "scale": 2.0, "dropout": 0.0}},
              open(os.path.join(d, "adapter_config.json"), "w"), indent=2)
    open(os.path.join(d, "expected_ids.txt"), "w").write("ids: " + " ".join(map(str, ids[4:])) + "\n")
    print("llama_adapter: greedy", ids[4:])


def main():
    only = sys.argv[1:]
    for name, spec in CASES.items():
        if not only or name in only:
            make_case(name, *spec)
    if not only or "llama_adapter" in only:
        make_adapter_folder()


if __name__ == "__main__":
    main()
