#!/usr/bin/env python3
"""Adapter interop between ctune and mlx-lm (issue 6 acceptance).

For each model (the tiny llama chat fixture, and SmolLM2-135M-Instruct as a
dense Hugging Face folder when the GGUF is present) and each fine-tune type
(lora, dora):
  (a) ctune lora trains a few steps; mlx_lm.utils.load(model, adapter_path=
      ctune's folder) must give the logits ctune gives with that folder;
  (b) mlx_lm.lora trains a few steps; ctune (build/tools/model_logits with the
      adapter folder) must give the logits mlx-lm gives.
Pass: max|ctune - mlx| / max|mlx| <= 1e-4 over all positions and the whole
vocabulary, and the adapters must change the logits (a check that the adapter
was applied at all: the change must be > 100x the disagreement).

usage: adapter_interop.py [--smollm2 GGUF] [--keep DIR]
Run from the repository root after `make`. Prints one line per case and
"N passed, N failed".

Reference venv (mlx on CPU): python3 -m venv .venv-ref &&
  .venv-ref/bin/pip install mlx mlx-lm torch transformers gguf numpy safetensors
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTUNE = os.path.join(ROOT, "build", "ctune")
MODEL_LOGITS = os.path.join(ROOT, "build", "tools", "model_logits")
CHAT_MODEL = os.path.join(ROOT, "tests", "fixtures", "chat_model")
SMOLLM2_GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TOL = 1e-4


def smollm2_hf(gguf_path, out):
    """Dequantizes the SmolLM2 Q4_1 GGUF into a dense fp32 Hugging Face folder
    (weights as tools/compare_model_logits.py reads them, tokenizer and chat
    template from transformers' GGUF reader). rope_theta is also written at
    the top level of config.json: transformers 5 nests it in rope_parameters,
    which mlx-lm's llama ModelArgs does not read (it would use 10000)."""
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from compare_model_logits import gguf_llama
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.realpath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    m = gguf_llama(gguf_path)
    m.config.bos_token_id, m.config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    m.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    cfg_path = os.path.join(tmp, "config.json")
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    cfg["rope_theta"] = cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)
    with open(cfg_path, "w") as fh:
        json.dump(cfg, fh, indent=2)
    os.rename(tmp, out)
    return out


def write_text_data(folder, n=16):
    """A small text dataset (train/valid/test.jsonl) both tools read the same way."""
    os.makedirs(folder, exist_ok=True)
    rows = [{"text": f"table: t{i}\ncolumns: a, b\nQ: what is a when b is {i}?\nA: SELECT a FROM t{i} WHERE b = {i}"}
            for i in range(n)]
    for split, part in (("train", rows), ("valid", rows[:4]), ("test", rows[:4])):
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in part)
    return folder


def ctune_logits(model, ids, adapter=None):
    """(T, V) float32 logits of ctune's forward on ids, with an adapter folder applied."""
    with tempfile.NamedTemporaryFile(suffix=".f32") as out:
        cmd = [MODEL_LOGITS, model, ",".join(map(str, ids)), out.name] + ([adapter] if adapter else [])
        subprocess.run(cmd, check=True)
        return np.fromfile(out.name, dtype="<f4").reshape(len(ids), -1)


_MLX_CACHE = {}


def mlx_logits(model, ids, adapter=None):
    """(T, V) float32 logits of mlx-lm (mlx CPU) on ids, with an adapter folder loaded."""
    import mlx.core as mx
    from mlx_lm.utils import load
    mx.set_default_device(mx.cpu)
    m, _ = load(model, adapter_path=adapter) if adapter else _MLX_CACHE.get(model) or load(model)
    if not adapter:
        _MLX_CACHE[model] = (m, _)
    out = m(mx.array([ids], dtype=mx.int32)).astype(mx.float32)
    mx.eval(out)
    return np.array(out[0])


def ctune_train(model, data, adapter, fine_tune_type, iters, lr, num_layers, env=None):
    cmd = [CTUNE, "lora", "--model", model, "--data", data, "--train", "--iters", str(iters), "--batch-size", "2",
           "--learning-rate", str(lr), "--fine-tune-type", fine_tune_type, "--num-layers", str(num_layers),
           "--adapter-path", adapter, "--steps-per-report", "1", "--val-batches", "1", "--seed", "0"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def mlx_train(model, data, adapter, fine_tune_type, iters, lr, num_layers, env=None):
    cmd = [sys.executable, "-m", "mlx_lm", "lora", "--model", model, "--data", data, "--train", "--iters", str(iters),
           "--batch-size", "2", "--learning-rate", str(lr), "--fine-tune-type", fine_tune_type, "--num-layers",
           str(num_layers), "--adapter-path", adapter, "--steps-per-report", "1", "--val-batches", "1", "--seed", "0"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def compare(label, got, ref, base):
    """Relative disagreement, and the adapter's own effect on the logits (to
    prove the adapter was applied on both sides)."""
    scale = float(np.max(np.abs(ref)))
    rel = float(np.max(np.abs(got - ref))) / scale
    effect = float(np.max(np.abs(ref - base))) / scale
    ok = rel <= TOL and effect > 100 * rel and np.isfinite(got).all()
    print(f"{'PASS' if ok else 'FAIL'} {label}: max rel diff {rel:.2e} (adapter effect {effect:.2e})", flush=True)
    return ok


def run(models, work):
    data = write_text_data(os.path.join(work, "data"))
    results = []
    for name, model, ids, lr, num_layers, iters in models:
        base = mlx_logits(model, ids)
        base_ct = ctune_logits(model, ids)
        results.append(compare(f"{name} no adapter", base_ct, base, base - 1.0))
        for ftype in ("lora", "dora"):
            a = os.path.join(work, f"{name}-{ftype}-ctune")
            ctune_train(model, data, a, ftype, iters, lr, num_layers)
            results.append(compare(f"{name} {ftype}: ctune-trained adapters in mlx-lm",
                                   ctune_logits(model, ids, a), mlx_logits(model, ids, a), base))
            b = os.path.join(work, f"{name}-{ftype}-mlx")
            mlx_train(model, data, b, ftype, iters, lr, num_layers)
            results.append(compare(f"{name} {ftype}: mlx-lm-trained adapters in ctune",
                                   ctune_logits(model, ids, b), mlx_logits(model, ids, b), base))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2", default=SMOLLM2_GGUF, help="SmolLM2 GGUF (skipped when missing)")
    ap.add_argument("--smollm2-hf", default="/tmp/ctune-smollm2-hf", help="where the dense HF folder is made")
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    models = [("chat_model", CHAT_MODEL, [1, 5, 77, 130, 9, 260, 411, 3, 42, 199, 17, 300], 1e-2, -1, 4)]
    if os.path.exists(args.smollm2):
        hf = smollm2_hf(args.smollm2, args.smollm2_hf)
        ids = [1, 504, 3458, 314, 260, 1593, 28, 665, 253, 1114, 30, 378, 253, 3458, 282, 1345]
        models.append(("SmolLM2-135M", hf, ids, 1e-4, 16, 3))
    work = args.keep or tempfile.mkdtemp(prefix="ctune-interop-")
    try:
        results = run(models, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
