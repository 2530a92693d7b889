#!/usr/bin/env python3
"""Makes tests/fixtures/data/: reference outputs for the data-side modules.

local/, hubshaped/, parquet_only/: tiny datasets (a local train/valid/test folder in the three
formats with a blank line and tools; a folder laid out like a hub dataset repository; a repository
with only a parquet file) for tests/unit/test_dataset.c.
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


def write(rel, text):
    path = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def jsonl(records):
    return "".join(json.dumps(r) + "\n" if r is not None else "\n" for r in records)


def datasets():
    calc = [{"type": "function", "function": {"name": "calc"}}]
    write("local/train.jsonl", jsonl([
        {"prompt": "2+2=", "completion": "4", "extra": 1},
        {"prompt": "3+3=", "completion": "6"},
        None,  # a blank line: skipped
        {"prompt": "1+1=", "completion": "2", "tools": calc},
        {"prompt": "5+5=", "completion": "10"},
    ]))
    weather = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    call = [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    write("local/valid.jsonl", jsonl([
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"},
                      {"role": "assistant", "content": None, "tool_calls": call},
                      {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}],
         "tools": weather},
    ]))
    write("local/test.json", "[\n" + json.dumps({"text": "caf\u00e9 au lait"}) + ",\n"
          + json.dumps({"text": "second"}) + "\n]\n")
    write("hubshaped/data/train-00000-of-00001.jsonl",
          jsonl([{"q": f"question {i}", "a": f"answer {i}"} for i in range(10)]))
    write("hubshaped/data/validation-00000-of-00001.jsonl",
          jsonl([{"q": f"vq {i}", "a": f"va {i}"} for i in range(4)]))
    write("hubshaped/README.md", "# a dataset card\n")
    write("parquet_only/train-00000.parquet", "PAR1")


def main():
    os.makedirs(OUT, exist_ok=True)
    datasets()
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
