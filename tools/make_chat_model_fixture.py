"""A tiny random-init llama with a real tokenizer and chat template, for end-to-end
tests of the commands that need both (lora, evaluate, generate with text prompts).

Writes tests/fixtures/chat_model/: config.json + model.safetensors (transformers,
seed 0, hidden 32, 2 layers, vocabulary 420 to cover the tokenizer) and the tokenizer
files of tests/fixtures/encode (made by tools/make_encode_fixtures.py).

Recreate the venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers safetensors
Run from the repo root: .venv-ref/bin/python tools/make_chat_model_fixture.py
"""
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

OUT = "tests/fixtures/chat_model"
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=420, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5)
model = LlamaForCausalLM(cfg).eval()
os.makedirs(OUT, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=True)
for f in ("generation_config.json",):
    p = os.path.join(OUT, f)
    if os.path.exists(p):
        os.remove(p)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join("tests/fixtures/encode", f), os.path.join(OUT, f))
print("wrote", OUT, sorted(os.listdir(OUT)))
