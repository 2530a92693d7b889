#!/usr/bin/env python3
"""Compares ctune's logits with transformers' for a model folder or GGUF file.

  compare_model_logits.py MODEL [--ids 1,2,3] [--ctune-tool build/tools/model_logits]
                                [--save-reference tests/fixtures/models/NAME.json]

A GGUF file is read the way transformers' GGUF loader does it (which needs
`accelerate`, absent from the reference venv): tensors dequantized to fp32 by the
`gguf` package, llama q/k rows un-permuted, config from the metadata, then
transformers' LlamaForCausalLM in fp32. Prints the relative max error
max|a-b|/max|b| over all positions. --save-reference writes the ids and the top-8
logits of the first 4 positions (a small reference for tests/assets).
Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers gguf numpy"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch

DEFAULT_IDS = "1,504,3458,314,260,1593,28,665,253,1114,30,378,253,3458,282,1345"


def gguf_llama(path):
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM
    r = gguf.GGUFReader(path)

    def meta(key):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0]

    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    assert arch == "llama", arch
    H, KVH = meta("llama.attention.head_count"), meta("llama.attention.head_count_kv")
    tensors = {t.name: torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type), np.float32))
               for t in r.tensors}
    vocab = tensors["token_embd.weight"].shape[0]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=meta("llama.embedding_length"),
                      intermediate_size=meta("llama.feed_forward_length"),
                      num_hidden_layers=meta("llama.block_count"), num_attention_heads=H, num_key_value_heads=KVH,
                      max_position_embeddings=meta("llama.context_length"),
                      rms_norm_eps=meta("llama.attention.layer_norm_rms_epsilon"),
                      rope_theta=meta("llama.rope.freq_base"), tie_word_embeddings="output.weight" not in tensors)
    model = LlamaForCausalLM(cfg).eval()

    def unpermute(w, heads):  # inverse of llama.cpp convert's permute
        return w.reshape(heads, w.shape[0] // heads // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)

    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"], "model.norm.weight": tensors["output_norm.weight"]}
    if "output.weight" in tensors:
        sd["lm_head.weight"] = tensors["output.weight"]
    for name, w in tensors.items():
        parts = name.split(".")
        if parts[0] != "blk":
            continue
        if parts[2] == "attn_q":
            w = unpermute(w, H)
        if parts[2] == "attn_k":
            w = unpermute(w, KVH)
        sd[f"model.layers.{parts[1]}.{names[parts[2]]}.weight"] = w
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
    model.tie_weights()
    return model


def reference_logits(model, ids):
    from transformers import AutoModelForCausalLM
    if model.endswith(".gguf"):
        m = gguf_llama(model)
    else:
        m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ids", default=DEFAULT_IDS)
    ap.add_argument("--ctune-tool", default="build/tools/model_logits")
    ap.add_argument("--save-reference")
    a = ap.parse_args()
    ids = [int(x) for x in a.ids.split(",")]
    ref = reference_logits(a.model, ids)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        subprocess.run([a.ctune_tool, a.model, a.ids, out], check=True)
        got = np.fromfile(out, dtype=np.float32).reshape(ref.shape)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"{a.model}: {len(ids)} positions, vocab {ref.shape[1]}, relative max error {err:.3g}")
    print(f"argmax agree at {int((got.argmax(1) == ref.argmax(1)).sum())}/{len(ids)} positions")
    if a.save_reference:
        top = [{"ids": np.argsort(-ref[t])[:8].tolist(), "logits": ref[t][np.argsort(-ref[t])[:8]].tolist()}
               for t in range(4)]
        with open(a.save_reference, "w") as f:
            json.dump({"model": os.path.basename(a.model), "ids": ids, "top": top}, f, indent=1)


if __name__ == "__main__":
    main()
