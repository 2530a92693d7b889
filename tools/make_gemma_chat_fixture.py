"""A tiny random-init Gemma 3 (gemma3_text) with the real tokenizer of
tests/fixtures/chat_model, for end-to-end tests of the quantization methods on
the gemma block (four norms per layer applied as 1 + w, sliding layers, GELU).

Writes tests/fixtures/gemma_chat_model/: config.json + model.safetensors
(transformers, seed 0, hidden 32, 2 layers (sliding, full), vocabulary 420,
float32; norms drawn around 0 so that 1 + w is not all ones) and the tokenizer
files of tests/fixtures/chat_model.

Recreate the venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers safetensors
Run from the repo root: .venv-ref/bin/python tools/make_gemma_chat_fixture.py
"""
import os
import shutil

import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

OUT = "tests/fixtures/gemma_chat_model"
torch.manual_seed(0)
cfg = Gemma3TextConfig(vocab_size=420, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                       max_position_embeddings=256, sliding_window=16,
                       layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0, rms_norm_eps=1e-6)
model = Gemma3ForCausalLM(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(0.1 * torch.randn_like(p))
os.makedirs(OUT, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=True)
for f in ("generation_config.json",):
    p = os.path.join(OUT, f)
    if os.path.exists(p):
        os.remove(p)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join("tests/fixtures/chat_model", f), os.path.join(OUT, f))
print("wrote", OUT, sorted(os.listdir(OUT)))
