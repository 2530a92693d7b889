#!/usr/bin/env python3
"""Prefill and decode speed of ctune, transformers (PyTorch CPU, fp32) and
mlx-lm (mlx-cpu), side by side in one run, same machine, same threads.

  bench/generate_bench.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--ctune build/ctune]
                          [--threads 1,2] [--prompt-tokens 128] [--gen-tokens 128] [--repeats 3]

The weights are the GGUF's: ctune reads the file (4-bit Q4_1 layers as MLX
affine 4-bit group 32, Q8_0 embedding/head as 8-bit group 32, fp32 compute);
transformers runs LlamaForCausalLM in fp32 on the dequantized tensors (as
tools/compare_model_logits.py); mlx-lm loads the same fp32 tensors saved as a
Hugging Face folder (mlx_lm.utils.load_model), once in fp32 and once
quantized in place with mlx.nn.quantize to the GGUF's layout (4-bit g32
layers, 8-bit g32 embedding = head), which is what mlx_lm.convert -q would do.
The prompt is the first --prompt-tokens tokens of the wikitext-2 test text
(the GGUF's tokenizer). Prefill = time from the prompt to its last logits (as
mlx_lm's prompt tokens/s: time to the first token); decode = tokens/s of the
greedy steps after it. Each peer runs in its own process, for each thread
count of --threads, with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS = that count (and torch.set_num_threads) and
OMP_WAIT_POLICY=PASSIVE (ctune's default; on a shared machine spinning OpenMP
threads made PyTorch with 2 threads 10x slower than with 1). The best of
--repeats runs is kept. Prints a markdown table with ratios ctune / peer.
Reference venv: python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers gguf numpy mlx-lm mlx[cpu]"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
TEXT = os.path.join(HERE, "..", "..", "shared", "assets", "text", "wikitext-2-raw-test.txt")


def prompt_ids(model, n):
    from compare_generation import gguf_tokenizer
    with open(TEXT, encoding="utf-8") as f:
        ids = gguf_tokenizer(model)(f.read(200000))["input_ids"]
    return ids[:n]


def run_ctune(a, ids):
    out = subprocess.run([a.ctune, "generate", "--model", a.model, "--prompt-ids", ",".join(map(str, ids)),
                          "--temp", "0", "--max-tokens", str(a.gen_tokens)], check=True, capture_output=True,
                         text=True).stdout
    p = re.search(r"Prompt: (\d+) tokens, ([\d.]+) tokens-per-sec", out)
    g = re.search(r"Generation: (\d+) tokens, ([\d.]+) tokens-per-sec", out)
    return {"prefill": float(p.group(2)), "decode": float(g.group(2)), "generated": int(g.group(1))}


def run_transformers(a, ids):
    import torch
    from compare_model_logits import gguf_llama
    torch.set_num_threads(int(a.threads))
    model = gguf_llama(a.model).eval()
    with torch.inference_mode():
        x = torch.tensor([ids])
        t0 = time.perf_counter()
        out = model(x, use_cache=True)
        nxt = out.logits[0, -1].argmax()
        t1 = time.perf_counter()
        pkv = out.past_key_values
        for _ in range(a.gen_tokens):
            out = model(nxt.view(1, 1), past_key_values=pkv, use_cache=True)
            pkv, nxt = out.past_key_values, out.logits[0, -1].argmax()
        t2 = time.perf_counter()
    return {"prefill": len(ids) / (t1 - t0), "decode": a.gen_tokens / (t2 - t1), "torch": torch.__version__}


def hf_folder(a, d):
    from compare_model_logits import gguf_llama
    gguf_llama(a.model).save_pretrained(d)
    return d


def run_mlx(a, ids, quantize):
    import mlx.core as mx
    import mlx.nn as nn
    from pathlib import Path
    import mlx_lm
    from mlx_lm.generate import generate_step
    from mlx_lm.utils import load_model
    mx.set_default_device(mx.cpu)
    model = load_model(Path(a.hf_folder))[0]
    if quantize:  # the GGUF's layout: 4-bit g32 layers, 8-bit g32 embedding (tied head)
        nn.quantize(model, class_predicate=lambda path, m: (
            {"group_size": 32, "bits": 8} if "embed_tokens" in path else {"group_size": 32, "bits": 4})
            if hasattr(m, "to_quantized") else False)
    mx.eval(model.parameters())
    t0 = time.perf_counter()
    n = 0
    for tok, _ in generate_step(mx.array(ids), model, max_tokens=a.gen_tokens + 1):
        if n == 0:
            t1 = time.perf_counter()
        n += 1
    t2 = time.perf_counter()
    return {"prefill": len(ids) / (t1 - t0), "decode": (n - 1) / (t2 - t1), "mlx": mx.__version__,
            "mlx_lm": mlx_lm.__version__}


PEERS = {
    "ctune": run_ctune,
    "transformers fp32": run_transformers,
    "mlx-lm fp32": lambda a, ids: run_mlx(a, ids, False),
    "mlx-lm 4-bit g32 (8-bit emb.)": lambda a, ids: run_mlx(a, ids, True),
}


def child(a):
    ids = json.loads(a.ids)
    best = None
    for _ in range(a.repeats):
        r = PEERS[a.peer](a, ids)
        if best is None:
            best = r
        best["prefill"], best["decode"] = max(best["prefill"], r["prefill"]), max(best["decode"], r["decode"])
    print(json.dumps(best))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--ctune", default="build/ctune")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer")
    ap.add_argument("--ids")
    ap.add_argument("--hf-folder")
    a = ap.parse_args()
    if a.peer:
        return child(a)
    ids = prompt_ids(a.model, a.prompt_tokens)
    print(f"| threads | engine | prefill tokens/s ({a.prompt_tokens}-token prompt) | decode tokens/s "
          f"({a.gen_tokens} tokens) | ctune / engine, prefill | ctune / engine, decode |")
    print("|---|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        folder = hf_folder(a, d)
        for threads in a.threads.split(","):
            env = dict(os.environ, **{k: threads for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                         "MKL_NUM_THREADS")})
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            res = results[threads] = {}
            for peer in PEERS:
                cmd = [sys.executable, os.path.abspath(__file__), "--peer", peer, "--ids", json.dumps(ids),
                       "--hf-folder", folder, "--model", a.model, "--ctune", a.ctune, "--threads", threads,
                       "--gen-tokens", str(a.gen_tokens), "--repeats", str(a.repeats)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{peer}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                r = res[peer] = json.loads(out.stdout.strip().splitlines()[-1])
                c = res.get("ctune")
                rp = f"{c['prefill'] / r['prefill']:.2f}x" if c else "-"
                rd = f"{c['decode'] / r['decode']:.2f}x" if c else "-"
                print(f"| {threads} | {peer} | {r['prefill']:.0f} | {r['decode']:.1f} | {rp} | {rd} |", flush=True)
    print(json.dumps(results))

if __name__ == "__main__":
    main()
