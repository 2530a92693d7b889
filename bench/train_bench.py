#!/usr/bin/env python3
"""Training throughput: ctune lora vs mlx-lm on mlx-cpu (issue 6 acceptance).

SmolLM2-135M-Instruct, LoRA defaults (16 layers, rank 8, scale 20, Adam,
lr 1e-5), batch 4, WikiSQL (../shared/assets/datasets/wikisql, text format),
N iterations, the same thread count on both sides. Both train the same dense
fp32 weights (the Q4_1 GGUF dequantized into a Hugging Face folder, see
tools/adapter_interop.py); ctune also trains on the Q4_1 GGUF itself (QLoRA).

Measured per run, each in its own process:
- tokens/s as each trainer reports it over the training steps (validation
  excluded on both sides): ctune's metrics.jsonl, mlx-lm's TrainingCallback
  (mlx_lm.tuner.trainer.train, the loop mlx_lm.lora runs);
- peak memory: the process's max RSS (getrusage of the child), the same
  measure on both sides; mlx-lm's own mx.get_peak_memory() is recorded too.
The machine may be shared: each configuration runs --repeats times and the
best tokens/s is reported (with its run's memory).

Note: mlx-lm does not sort its batches by length (a known quirk), ctune does,
so the two see different batches (same data); tokens/s counts real
(supervised) tokens on both sides, padding is work mlx-lm does on top.

usage: bench/train_bench.py [--iters 20] [--repeats 2] [--mlx-repeats 1] [--threads 1,2] [--json OUT]
Reference venv: python3 -m venv .venv-ref &&
  .venv-ref/bin/pip install mlx mlx-lm torch transformers gguf numpy safetensors
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from adapter_interop import CTUNE, SMOLLM2_GGUF, smollm2_hf  # noqa: E402

WIKISQL = os.path.join(ROOT, "..", "shared", "assets", "datasets", "wikisql")


def run_child(cmd, env, timeout):
    """Runs cmd; returns (exit status, stdout, wall seconds)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return -1, "", time.time() - t0
    return p.returncode, out, time.time() - t0


def ctune_once(model, iters, work):
    out = tempfile.mkdtemp(dir=work)
    cmd = [CTUNE, "lora", "--model", model, "--data", WIKISQL, "--train", "--iters", str(iters), "--batch-size", "4",
           "--steps-per-report", str(iters), "--steps-per-eval", str(10 ** 6), "--val-batches", "1",
           "--save-every", str(10 ** 6), "--adapter-path", out, "--seed", "0"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "metrics.jsonl")) as fh:
        rep = [json.loads(line) for line in fh if "train_loss" in line][-1]
    return {"tokens_per_second": rep["tokens_per_second"], "own_peak_gb": rep["peak_memory"],
            "train_loss": rep["train_loss"]}


def mlx_once(model, iters, work):
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.datasets import CacheDataset, TextDataset
    from mlx_lm.tuner.trainer import TrainingArgs, TrainingCallback, train
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load
    import contextlib
    import io
    mx.set_default_device(mx.cpu)
    mx.random.seed(0)
    import numpy as np
    np.random.seed(0)
    m, tok = load(model)
    m.freeze()
    linear_to_lora_layers(m, 16, {"rank": 8, "scale": 20.0, "dropout": 0.0})

    def split(name):
        with open(os.path.join(WIKISQL, f"{name}.jsonl")) as fh:
            return CacheDataset(TextDataset([json.loads(line) for line in fh], tok))

    class Record(TrainingCallback):
        last = None

        def on_train_loss_report(self, info):
            self.last = info

    cb = Record()
    args = TrainingArgs(batch_size=4, iters=iters, val_batches=1, steps_per_report=iters, steps_per_eval=10 ** 6,
                        steps_per_save=10 ** 6, adapter_file=os.path.join(work, "mlx-adapters.safetensors"),
                        max_seq_length=2048)
    with contextlib.redirect_stdout(io.StringIO()):
        train(m, optim.Adam(learning_rate=1e-5), split("train"), split("valid"), args=args, training_callback=cb)
    return {"tokens_per_second": cb.last["tokens_per_second"], "own_peak_gb": cb.last["peak_memory"],
            "train_loss": float(cb.last["train_loss"])}


def worker(argv):
    """--worker SIDE MODEL ITERS WORK: one measured run in this process; prints JSON."""
    side, model, iters, work = argv[0], argv[1], int(argv[2]), argv[3]
    t0 = time.time()
    r = (ctune_once if side == "ctune" else mlx_once)(model, iters, work)
    r["wall_s"] = time.time() - t0
    # ctune runs as this worker's child; mlx-lm in this process: take the larger.
    r["max_rss_gb"] = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024 / 1e9
    print(json.dumps(r))


def measure(side, model, iters, threads, work, timeout):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MLX_NUM_THREADS"):
        env[k] = str(threads)
    # Each run is a fresh worker process, so its RUSAGE_CHILDREN/SELF max RSS is this run's alone.
    rc, out, wall = run_child([sys.executable, os.path.abspath(__file__), "--worker", side, model, str(iters), work],
                                 env, timeout)
    if rc != 0:
        return {"error": "timeout" if rc == -1 else f"exit {rc}", "wall_s": wall}
    return json.loads(out.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mlx-repeats", type=int, default=1, help="mlx-cpu is slow here: fewer repeats")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sides", default="ctune-dense,mlx-dense,ctune-q4_1")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--smollm2-hf", default="/tmp/ctune-smollm2-hf")
    ap.add_argument("--json", help="append the results here")
    args = ap.parse_args()
    hf = smollm2_hf(SMOLLM2_GGUF, args.smollm2_hf)
    models = {"ctune-dense": ("ctune", hf), "mlx-dense": ("mlx", hf), "ctune-q4_1": ("ctune", SMOLLM2_GGUF)}
    results = []
    with tempfile.TemporaryDirectory(prefix="ctune-trainbench-") as work:
        for threads in [int(t) for t in args.threads.split(",")]:
            for name in args.sides.split(","):
                side, model = models[name]
                n = args.mlx_repeats if side == "mlx" else args.repeats
                runs = [measure(side, model, args.iters, threads, work, args.timeout) for _ in range(n)]
                ok = [r for r in runs if "error" not in r]
                best = max(ok, key=lambda r: r["tokens_per_second"]) if ok else runs[0]
                rec = {"side": name, "threads": threads, "iters": args.iters, "best": best,
                       "all_tokens_per_second": [r.get("tokens_per_second") for r in runs]}
                results.append(rec)
                print(json.dumps(rec), flush=True)
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cpus; {time.strftime('%Y-%m-%d')}; "
          f"SmolLM2-135M, batch 4, WikiSQL, LoRA defaults, {args.iters} iterations, best of {args.repeats}")
    print(f"{'side':<12} {'threads':>7} {'tokens/s':>9} {'max RSS GB':>10} {'own peak GB':>11}")
    for r in results:
        b = r["best"]
        if "error" in b:
            print(f"{r['side']:<12} {r['threads']:>7} {b['error']:>9}")
        else:
            print(f"{r['side']:<12} {r['threads']:>7} {b['tokens_per_second']:>9.1f} {b['max_rss_gb']:>10.3f} "
                  f"{b['own_peak_gb']:>11.3f}")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
