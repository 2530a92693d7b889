#!/usr/bin/env python3
"""Checks ctune's PEFT adapters against peft + transformers (CPU).

On a dense float32 model folder (default: the llama fixture):
  1. export: a random mlx-lm adapter (tools/check_fuse.py's) is fused by
     ctune with --export-peft; peft.PeftModel.from_pretrained loads that
     export on the base and its logits equal ctune's base+adapter logits
     (the fused folder's, which the unit tests tie to base+adapter at 1e-5)
     within 1e-4 relative;
  2. import: an adapter made by peft itself (LoraConfig on the base, random
     non-zero lora_B; LoRA and DoRA) is loaded by ctune (`ctune fuse
     --adapter-path`, the same adapter loader as generate/perplexity) and
     ctune's logits equal peft's within 1e-4 relative.
Usage: check_peft.py --bin build [--model DIR]
Prints "N passed, N failed" last and exits non-zero on failure.

Reference venv: python -m venv .venv-ref && .venv-ref/bin/pip install torch transformers
peft accelerate safetensors numpy gguf
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_fuse import ctune_logits, make_adapter, record, rel, RESULTS  # noqa: E402

IDS = [1, 5, 9, 17, 33, 2, 64, 100, 7, 3]


def peft_logits(model_dir, adapter_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    m = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        return m(torch.tensor([IDS])).logits[0].numpy()


def make_peft_adapter(model_dir, out_dir, dora):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, use_dora=dora,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    m = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.2 * torch.rand_like(p))
    m.save_pretrained(out_dir)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([IDS])).logits[0].numpy()


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.path.join(here, "..", "tests", "fixtures", "models", "llama_default"))
    args = ap.parse_args()
    ctune = os.path.join(args.bin, "ctune")
    base = ctune_logits(args.bin, args.model, IDS)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("lora", "dora"):
            # export
            a, out, peft_dir = (os.path.join(tmp, f"{kind}-{x}") for x in ("mlx", "fused", "peft"))
            make_adapter(args.model, a, kind == "dora")
            run([ctune, "fuse", "--model", args.model, "--adapter-path", a, "--save-path", out,
                 "--export-peft", peft_dir])
            ours = ctune_logits(args.bin, out, IDS)
            theirs = peft_logits(args.model, peft_dir)
            d = rel(theirs, ours)
            record(d < 1e-4, f"{kind}: ctune's PEFT export in peft = ctune's logits (rel {d:.2g})", d)
            record(rel(base, ours) > 1e-3, f"{kind}: the exported adapter changes the logits (teeth)")
            # import
            made, fused = os.path.join(tmp, f"{kind}-made"), os.path.join(tmp, f"{kind}-made-fused")
            want = make_peft_adapter(args.model, made, kind == "dora")
            run([ctune, "fuse", "--model", args.model, "--adapter-path", made, "--save-path", fused])
            got = ctune_logits(args.bin, fused, IDS)
            d = rel(got, want)
            record(d < 1e-4, f"{kind}: an adapter made by peft loads in ctune with peft's logits (rel {d:.2g})", d)
            record(rel(base, want) > 1e-3, f"{kind}: the peft adapter changes the logits (teeth)")
    print(f"{RESULTS[0]} passed, {RESULTS[1]} failed")
    sys.exit(1 if RESULTS[1] else 0)


if __name__ == "__main__":
    main()
