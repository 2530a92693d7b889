#!/usr/bin/env python3
"""Gemma 3 GGUF reference fixtures (tests/fixtures/gemma/), from transformers'
own GGUF loader (AutoModelForCausalLM / AutoTokenizer with gguf_file=, which
de-quantize the tensors, undo llama.cpp's +1 on the norm weights and rebuild
the SentencePiece tokenizer as GemmaTokenizer).

Recreate the reference venv with:
    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers==5.24.0 accelerate gguf numpy \
        safetensors tokenizers "mlx[cpu]" mlx-lm
Run from the repo root:
    .venv-ref/bin/python tools/make_gemma_fixtures.py tiny
        # writes tiny_gemma3.gguf (random weights, written as llama.cpp's
        # converter writes gemma3: norms stored as w + 1, a SentencePiece vocab
        # of a few hundred pieces, F32/F16/Q8_0/Q5_0 tensors; 6 layers, the
        # last global, window 4) and tiny_expected.safetensors:
        # ids (1, T) int32, logits (1, T, V) f32; tiny_tokens.json: texts and
        # transformers' ids for them
    .venv-ref/bin/python tools/make_gemma_fixtures.py real /work/gemma/gemma-3-270m-q4_k_m.gguf
        # gemma3_270m_reference.json: 32 ids, and per position the logits at
        # 32 fixed vocab ids, the top 8 and the log-sum-exp over the whole
        # vocabulary; tokenizer ids of a few WikiText lines
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

OUT = "tests/fixtures/gemma"
WIKI = "../shared/assets/text/wikitext-2-raw-test.txt"


def reference(gguf_path, ids, head_dim):
    """transformers' logits (T, V). Its GGUF loader leaves query_pre_attn_scalar at
    Gemma3TextConfig's 256; llama.cpp (llama-model.cpp, LLM_ARCH_GEMMA3) scales
    by 1/sqrt(head_dim) (all Gemma 3 sizes but the 27B have head_dim 256), which
    the tiny model (head_dim 32) needs, so it is passed explicitly."""
    import torch
    from transformers import AutoModelForCausalLM
    d, f = os.path.split(os.path.abspath(gguf_path))
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                             query_pre_attn_scalar=head_dim).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].float().numpy()


def tokenizer(gguf_path):
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(gguf_path))
    return AutoTokenizer.from_pretrained(d, gguf_file=f)


# ---- the tiny synthetic model

def tiny_vocab():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    user = ["\n", "\n\n", "  ", "   "]  # user-defined, as Gemma's file has them (runs of spaces as real spaces)
    byte = ["<0x%02X>" % b for b in range(256)]
    chars = list("\u2581etaoinshrdlucmfwypvbgkqjxzTHEAW,.'=-@0123456789()")
    pieces = ["\u2581t", "in", "\u2581a", "er", "on", "he", "\u2581the", "re", "\u2581s", "at", "en", "\u2581o", "nd",
              "is", "\u2581w", "\u2581c", "or", "es", "an", "\u2581of", "ed", "\u2581and", "\u2581in", "ar", "ing",
              "\u2581f", "\u2581b", "it", "al", "\u2581p", "ou", "\u2581m", "le", "\u2581to", "\u2581T", "\u2581The",
              "\u2581h", "as", "ic", "\u2581=", "\u2581@", "\u2581@-@", "-@", "\u2581d", "ion", "\u2581was", "wa",
              "\u2581\u2581", "\u2581\u2581\u2581", "\u2581is", "ly", "ent", "\u2581he", "\u2581th", "th"]
    tokens = specials + user + byte + pieces + chars
    types = [3] * len(specials) + [4] * len(user) + [6] * len(byte) + [1] * (len(pieces) + len(chars))
    types[3] = 2  # <unk>: UNKNOWN
    scores = [-1000.0] * (len(specials) + len(user)) + [0.0] * len(byte) + \
        [-float(i) for i in range(len(pieces) + len(chars))]
    return tokens, types, scores


def write_tiny(path):
    import gguf
    from gguf import GGMLQuantizationType as Q
    rng = np.random.default_rng(7)
    tokens, types, scores = tiny_vocab()
    V, C, L, H, KVH, D, I = len(tokens), 64, 6, 2, 1, 32, 32  # 6 layers: mlx-lm needs a global one
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_context_length(1024)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(I)
    w.add_head_count(H)
    w.add_head_count_kv(KVH)
    w.add_key_length(D)
    w.add_value_length(D)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_sliding_window(4)  # small, so a 12-token sequence slides in layer 0
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)

    def dense(rows, cols, scale):
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def norm(n):  # llama.cpp's gemma3 converter stores 1 + w
        return (1.0 + rng.standard_normal(n) * 0.2).astype(np.float32)

    def q8(name, a):
        w.add_tensor(name, gguf.quants.quantize(a, Q.Q8_0), raw_dtype=Q.Q8_0)

    q8("token_embd.weight", dense(V, C, 0.5))
    w.add_tensor("output_norm.weight", norm(C))
    for l in range(L):
        b = f"blk.{l}."
        q8(b + "attn_q.weight", dense(H * D, C, 0.15))
        if l == 0:
            w.add_tensor(b + "attn_k.weight", dense(KVH * D, C, 0.15))
        else:
            q8(b + "attn_k.weight", dense(KVH * D, C, 0.15))
        w.add_tensor(b + "attn_v.weight", dense(KVH * D, C, 0.15).astype(np.float16))
        q8(b + "attn_output.weight", dense(C, H * D, 0.1))
        w.add_tensor(b + "attn_q_norm.weight", norm(D))
        w.add_tensor(b + "attn_k_norm.weight", norm(D))
        w.add_tensor(b + "attn_norm.weight", norm(C))
        w.add_tensor(b + "post_attention_norm.weight", norm(C))
        w.add_tensor(b + "ffn_norm.weight", norm(C))
        w.add_tensor(b + "post_ffw_norm.weight", norm(C))
        q8(b + "ffn_gate.weight", dense(I, C, 0.12))
        q8(b + "ffn_up.weight", dense(I, C, 0.12))
        down = dense(C, I, 0.08)
        if l % 2:
            w.add_tensor(b + "ffn_down.weight", gguf.quants.quantize(down, Q.Q5_0), raw_dtype=Q.Q5_0)
        else:
            q8(b + "ffn_down.weight", down)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return V


TINY_TEXTS = ["The cat was in the hat.", " the theory of tea", "a  b   c\n\nd", "1984 @-@ the",
              "unknown ~ chars \u00e9\u4e2d!", "<start_of_turn>hi<end_of_turn>"]


def tiny():
    from safetensors.numpy import save_file
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "tiny_gemma3.gguf")
    V = write_tiny(path)
    ids = [2, 300, 17, 280, 5, 291, 340, 262, 11, 299, 1, 350]
    logits = reference(path, ids, 32)
    assert logits.shape == (len(ids), V), logits.shape
    save_file({"ids": np.array([ids], np.int32), "logits": logits[None].astype(np.float32)},
              os.path.join(OUT, "tiny_expected.safetensors"))
    tok = tokenizer(path)
    enc = [{"text": t, "ids": tok(t).input_ids} for t in TINY_TEXTS]
    with open(os.path.join(OUT, "tiny_tokens.json"), "w") as f:
        json.dump(enc, f, indent=1, ensure_ascii=False)
    print(f"{path}: V {V}, max |logit| {np.abs(logits).max():.3f}")


# ---- the real Gemma 3 270M

def real(gguf_path):
    tok = tokenizer(gguf_path)
    lines = [l for l in open(WIKI, encoding="utf-8").read().split("\n") if l.strip()][:8]
    enc = [{"text": l, "ids": tok(l).input_ids} for l in lines]
    ids = enc[2]["ids"][:28] + [107, 262143, 9, 4]  # text, then "\n", an unused id, <unused3>, <mask>
    logits = reference(gguf_path, ids, 256)
    V = logits.shape[1]
    probe = list(range(0, V, V // 32))
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    top = np.argsort(-logits, axis=1)[:, :8]
    ref = {"model": os.path.basename(gguf_path), "ids": ids, "probe_ids": probe,
           "probe_logits": logits[:, probe].round(5).tolist(), "top_ids": top.tolist(),
           "top_logits": np.take_along_axis(logits, top, 1).round(5).tolist(), "logsumexp": lse.round(5).tolist(),
           "max_abs_logit": float(np.abs(logits).max()), "tokens": enc}
    with open(os.path.join(OUT, "gemma3_270m_reference.json"), "w") as f:
        json.dump(ref, f, ensure_ascii=False)
    print(f"{gguf_path}: {len(ids)} ids, V {V}, max |logit| {ref['max_abs_logit']:.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["tiny"]:
        tiny()
    elif sys.argv[1:2] == ["real"] and len(sys.argv) == 3:
        real(sys.argv[2])
    else:
        sys.exit(__doc__)
