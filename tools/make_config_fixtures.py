#!/usr/bin/env python3
"""Writes tests/fixtures/config/*.json (config.json files shaped like the public
ones of each architecture) and expected.json: what transformers resolves from
each of them, which tests/unit/test_config.c compares with ctune field by field.

The expected values come from transformers itself: AutoConfig for the sizes,
defaults and RoPE parameters; ROPE_INIT_FUNCTIONS for the attention factor; and
the model built on the meta device (no memory) for what the modeling code does
with the config: biases present, q/k norms, tied head, which layers are sliding
and which are sparse MoE.

Reference venv (transformers 5.x):
    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers
Run from the repository root:
    .venv-ref/bin/python tools/make_config_fixtures.py
"""
import json
import math
import os
import shutil
import tempfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "config")


def longrope_factors(n, top):
    # Monotone, Phi-3.5-shaped factors (values rounded to float32 like the originals).
    import numpy as np
    x = np.linspace(0.0, 1.0, n)
    return [float(np.float32(v)) for v in 1.0 + (top - 1.0) / (1.0 + np.exp(-12 * (x - 0.35)))]


FIXTURES = {
    # meta-llama/Llama-3.2-1B-Instruct
    "llama-3.2-1b-instruct": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
        "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256},
    # The same model as transformers 5 writes it: rope_parameters and "dtype".
    "llama-3.2-1b-v5": {
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000, "dtype": "bfloat16",
        "eos_token_id": 128009, "head_dim": 64, "hidden_size": 2048, "intermediate_size": 8192,
        "max_position_embeddings": 131072, "model_type": "llama", "num_attention_heads": 32,
        "num_hidden_layers": 16, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
        "rope_parameters": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                            "original_max_position_embeddings": 8192, "rope_theta": 500000.0,
                            "rope_type": "llama3"},
        "tie_word_embeddings": True, "transformers_version": "5.0.0", "vocab_size": 128256},
    # HuggingFaceTB/SmolLM2-135M
    "smollm2-135m": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576,
        "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": True,
        "max_position_embeddings": 8192, "mlp_bias": False, "model_type": "llama", "num_attention_heads": 9,
        "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_interleaved": False, "rope_scaling": None, "rope_theta": 100000, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": True, "vocab_size": 49152},
    # A tiny llama shaped like llama2.c's stories260K (our own numbers).
    "tiny-llama": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu", "hidden_size": 64,
        "intermediate_size": 172, "max_position_embeddings": 512, "mlp_bias": False,
        "num_attention_heads": 8, "num_hidden_layers": 5, "num_key_value_heads": 4, "rms_norm_eps": 1e-05,
        "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float32",
        "vocab_size": 512},
    # Llama with dynamic NTK scaling and (mostly) defaults.
    "llama-dynamic": {
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_attention_heads": 4,
        "num_hidden_layers": 2, "vocab_size": 1000, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
    # mistralai/Mistral-7B-v0.1
    "mistral-7b-v0.1": {
        "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "sliding_window": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000},
    # Qwen/Qwen2.5-0.5B
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
        "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
        "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": True, "use_mrope": False,
        "use_sliding_window": False, "vocab_size": 151936},
    # Qwen/Qwen2.5-7B-Instruct with the YaRN block its model card suggests
    "qwen2.5-7b-yarn": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
        "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
        "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
        "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False,
        "vocab_size": 152064},
    # A qwen2 that slides: layers >= max_window_layers use the window.
    "qwen2-sliding": {
        "model_type": "qwen2", "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 6, "max_window_layers": 4, "use_sliding_window": True,
        "sliding_window": 64, "vocab_size": 1000},
    # Qwen/Qwen3-0.6B
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
        "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
        "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
        "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936},
    # microsoft/Phi-3-mini-4k-instruct
    "phi-3-mini-4k": {
        "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
        "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096,
        "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
        "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0, "sliding_window": 2047,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
        "use_cache": True, "vocab_size": 32064},
    # microsoft/Phi-3.5-mini-instruct (longrope; factor values made up, same shape)
    "phi-3.5-mini": {
        "architectures": ["Phi3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
        "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
        "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
        "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": longrope_factors(48, 64.8), "short_factor": longrope_factors(48, 2.3),
                         "type": "longrope"},
        "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.3", "use_cache": True, "vocab_size": 32064},
    # google/gemma-2-2b
    "gemma-2-2b": {
        "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
        "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
        "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2",
        "num_attention_heads": 8, "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
        "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": True, "vocab_size": 256000},
    # google/gemma-3-1b-it
    "gemma-3-1b-it": {
        "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": None, "bos_token_id": 2, "cache_implementation": "hybrid",
        "eos_token_id": [1, 106], "final_logit_softcapping": None, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "initializer_range": 0.02,
        "intermediate_size": 6912, "max_position_embeddings": 32768, "model_type": "gemma3_text",
        "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
        "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0", "use_cache": True,
        "vocab_size": 262144},
    # gemma3_text as transformers 5 writes it: RoPE nested by layer type, explicit layer_types.
    "gemma-3-text-v5": {
        "model_type": "gemma3_text", "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "num_hidden_layers": 4, "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0},
                            "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
        "vocab_size": 1000, "dtype": "bfloat16"},
    # google/gemma-3-4b-it (multimodal: the language model is text_config)
    "gemma-3-4b-it": {
        "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
        "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
        "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                        "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                        "sliding_window": 1024},
        "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
        "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                          "model_type": "siglip_vision_model", "num_attention_heads": 16,
                          "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}},
    # mistralai/Mixtral-8x7B-v0.1
    "mixtral-8x7b": {
        "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
        "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
        "output_router_logits": False, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.02, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.36.0.dev0", "use_cache": True,
        "vocab_size": 32000},
    # Qwen/Qwen3-30B-A3B
    "qwen3-30b-a3b": {
        "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
        "max_position_embeddings": 40960, "max_window_layers": 48, "mlp_only_layers": [],
        "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": True,
        "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
        "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_scaling": None,
        "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": None,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
        "use_cache": True, "use_sliding_window": False, "vocab_size": 151936},
    # qwen3_moe with dense layers: mlp_only_layers and decoder_sparse_step 2.
    "qwen3-moe-sparse-step": {
        "model_type": "qwen3_moe", "hidden_size": 128, "intermediate_size": 256, "head_dim": 32,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 6, "num_experts": 4,
        "num_experts_per_tok": 2, "moe_intermediate_size": 64, "decoder_sparse_step": 2,
        "mlp_only_layers": [3], "vocab_size": 1000},
}

# An MLX 4-bit model (as mlx_lm.convert -q --quant-predicate writes it): per-module
# overrides, some false, and the HF-compatible copy in quantization_config.
_quant = {"group_size": 64, "bits": 4, "mode": "affine",
          "model.embed_tokens": {"group_size": 32, "bits": 6, "mode": "affine"},
          "model.layers.0.self_attn.v_proj": {"group_size": 64, "bits": 6, "mode": "affine"},
          "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6},
          "model.layers.1.mlp.gate_proj": False,
          "model.layers.23.mlp.down_proj": {"group_size": 128, "bits": 8, "mode": "affine"}}
FIXTURES["qwen2.5-0.5b-mlx-4bit"] = dict(FIXTURES["qwen2.5-0.5b"], quantization=_quant,
                                         quantization_config=dict(_quant))


def head_dim_of(tc):
    return getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads


def rope_of(config, tc, layer_type=None):
    import transformers.modeling_rope_utils as ru
    params = dict(tc.rope_parameters[layer_type] if layer_type else tc.rope_parameters)
    rtype = params.get("rope_type", "default")
    out = {"rope_type": rtype, "rope_theta": params["rope_theta"],
           "partial_rotary_factor": params.get("partial_rotary_factor", 1.0)}
    for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings",
              "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "long_factor", "short_factor"):
        if params.get(k) is not None:
            out[k] = params[k]
    out["attention_factor"] = 1.0
    if rtype in ru.ROPE_INIT_FUNCTIONS:
        _, out["attention_factor"] = ru.ROPE_INIT_FUNCTIONS[rtype](tc, "cpu", layer_type=layer_type)
    return out


def resolve(name, cfg, tmp):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    d = os.path.join(tmp, name)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    config = AutoConfig.from_pretrained(d)
    tc = config.get_text_config()
    gemma = tc.model_type in ("gemma2", "gemma3_text")
    L = tc.num_hidden_layers
    e = {k: getattr(tc, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                                     "rms_norm_eps")}
    e["head_dim"] = head_dim_of(tc)
    e["hidden_act"] = tc.hidden_activation if gemma else tc.hidden_act
    nested = tc.model_type == "gemma3_text"
    e["rope"] = rope_of(config, tc, "full_attention" if nested else None)
    if nested:
        e["rope_local_base_freq"] = tc.rope_parameters["sliding_attention"]["rope_theta"]
    e["sliding_window"] = getattr(tc, "sliding_window", None) or 0
    e["attn_logit_softcapping"] = getattr(tc, "attn_logit_softcapping", None) or 0
    e["final_logit_softcapping"] = getattr(tc, "final_logit_softcapping", None) or 0
    e["query_pre_attn_scalar"] = getattr(tc, "query_pre_attn_scalar", None) or e["head_dim"]
    # A multimodal wrapper's own token ids win; else the text config's (ctune's rule).
    def token(k):
        v = getattr(config, k, None)
        return getattr(tc, k, None) if v is None else v
    for k in ("bos_token_id", "pad_token_id"):
        e[k] = -1 if token(k) is None else token(k)
    eos = token("eos_token_id")
    e["eos_token_ids"] = [] if eos is None else (eos if isinstance(eos, list) else [eos])
    e["dtype"] = str(config.dtype).replace("torch.", "") if config.dtype is not None else ""

    # What the modeling code does with it (built on the meta device: no memory).
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(tc)
    layers = model.model.layers
    attn = layers[0].self_attn
    q = attn.q_proj if hasattr(attn, "q_proj") else attn.qkv_proj
    o = attn.o_proj
    e["qkv_bias"] = q.bias is not None
    e["o_bias"] = o.bias is not None
    mlp = layers[0].mlp
    down = getattr(mlp, "down_proj", None)
    e["mlp_bias"] = down is not None and getattr(down, "bias", None) is not None
    e["qk_norm"] = hasattr(attn, "q_norm")
    e["tie_word_embeddings"] = bool(config.tie_word_embeddings)
    kinds = []
    for layer in layers:
        a = layer.self_attn
        if hasattr(a, "sliding_window"):
            sliding = a.sliding_window is not None
        else:  # mistral, mixtral, phi3, qwen3_moe: the config's window applies to every layer
            sliding = getattr(tc, "sliding_window", None) is not None
        kinds.append("sliding" if sliding else "full")
    if tc.model_type == "llama":
        kinds = ["full"] * L  # LlamaAttention has no window
    if "sliding" not in kinds:
        e["sliding_window"] = 0
    e["layer_attn"] = kinds
    moe = [not hasattr(layer.mlp, "down_proj") for layer in layers]
    e["layer_moe"] = moe
    e["num_experts"] = getattr(tc, "num_local_experts", None) or getattr(tc, "num_experts", None) or 0
    if any(moe):
        e["num_experts_per_tok"] = tc.num_experts_per_tok
        e["moe_intermediate_size"] = getattr(tc, "moe_intermediate_size", tc.intermediate_size)
        e["router_aux_loss_coef"] = tc.router_aux_loss_coef
        e["decoder_sparse_step"] = getattr(tc, "decoder_sparse_step", 1)
        e["norm_topk_prob"] = getattr(tc, "norm_topk_prob", True)  # mixtral always renormalises
    return e


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, cfg in FIXTURES.items():
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    tmp = tempfile.mkdtemp()
    try:
        expected = {name: resolve(name, cfg, tmp) for name, cfg in FIXTURES.items()}
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, default=lambda v: float(v))
        f.write("\n")
    print(f"wrote {len(FIXTURES)} configs and expected.json to {OUT}")


if __name__ == "__main__":
    main()
