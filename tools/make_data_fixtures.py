#!/usr/bin/env python3
"""Makes tests/fixtures/data/: reference outputs for the data-side modules.

adapter_config_*.json: what mlx-lm's save_config (json.dump(dict(sorted(cfg.items())), indent=4))
writes for the namespace ctune resolves from the same command line / YAML. Only the Python
standard library is needed (run with any python3; the reference venv is not required:
python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers tokenizers jinja2 gguf
safetensors numpy).
"""
import json
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "data")

# mlx_lm/lora.py CONFIG_DEFAULTS (v0.32.0) plus the argparse-only keys, as vars(args) after `--train`.
DEFAULTS = {
    "model": "Qwen/Qwen3-0.6b",
    "train": True,
    "fine_tune_type": "lora",
    "optimizer": "adam",
    "optimizer_config": {"adam": {}, "adamw": {}, "muon": {}, "sgd": {}, "adafactor": {}},
    "data": "mlx-community/WikiSQL",
    "seed": 0,
    "num_layers": 16,
    "batch_size": 4,
    "iters": 1000,
    "val_batches": 25,
    "learning_rate": 1e-5,
    "steps_per_report": 10,
    "steps_per_eval": 200,
    "resume_adapter_file": None,
    "adapter_path": "adapters",
    "save_every": 100,
    "test": False,
    "test_batches": 500,
    "max_seq_length": 2048,
    "config": None,
    "grad_checkpoint": False,
    "grad_accumulation_steps": 1,
    "clear_cache_threshold": 0,
    "lr_schedule": None,
    "lora_parameters": {"rank": 8, "dropout": 0.0, "scale": 20.0},
    "mask_prompt": False,
    "report_to": None,
    "project_name": None,
    "trust_remote_code": False,
    "resume": False,  # ctune's true-resume flag
}


def save_config(config, path):
    config = dict(sorted(config.items()))
    with open(path, "w") as fid:
        json.dump(config, fid, indent=4)


def main():
    os.makedirs(OUT, exist_ok=True)
    save_config(dict(DEFAULTS), os.path.join(OUT, "adapter_config_default.json"))
    custom = dict(DEFAULTS)
    custom.update(
        {
            "test": True,
            "learning_rate": 0.0002,
            "max_seq_length": 512,
            "adapter_path": "out/ad",
            "config": "lora.yaml",
            "lora_parameters": {"rank": 4, "dropout": 0.05, "scale": 3.0, "alpha": 12.0,
                                "keys": ["mlp.up_proj"]},
            "lr_schedule": {"name": "cosine_decay", "arguments": [1.5e-7, 1000, 1e-7], "warmup": 10},
            "hf_dataset": {"path": "org/caf\u00e9", "config": {"name": "x"}},
            "text_feature": "body",
            "report_to": "wandb",
        }
    )
    save_config(custom, os.path.join(OUT, "adapter_config_custom.json"))


if __name__ == "__main__":
    main()
