#!/usr/bin/env python3
"""ctune's logits and token ids for a Gemma 3 model (the GGUF or a folder
converted from it) against transformers' (tests/fixtures/gemma/gemma3_270m_reference.json,
from tools/make_gemma_fixtures.py):

  check_gemma.py MODEL [--bin build] [--reference JSON] [--tol 1e-4]

Logits: at the 32 reference positions, the 32 probe vocab ids and the top 8,
relative max error max|a - b| / max|ref| below --tol (1e-4 by default: logits
reach ~70, so 7e-3 absolute); the log-sum-exp over the whole vocabulary within
the same bound; the argmax equal. Tokens: `ctune tokenize` ids of the reference's
WikiText lines equal transformers'. Needs only numpy (.venv).
Prints "N passed, N failed"; exits non-zero on a failure."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bin", default="build")
    ap.add_argument("--reference", default="tests/fixtures/gemma/gemma3_270m_reference.json")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    ref = json.load(open(a.reference))
    ids = ref["ids"]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        subprocess.run([os.path.join(a.bin, "tools", "model_logits"), a.model, ",".join(map(str, ids)), out],
                       check=True)
        got = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    scale = ref["max_abs_logit"]
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    probe = np.array(ref["probe_logits"])
    top_ids = np.array(ref["top_ids"])
    top = np.array(ref["top_logits"])
    e_probe = np.abs(got[:, ref["probe_ids"]] - probe).max() / scale
    e_top = np.abs(np.take_along_axis(got, top_ids, 1) - top).max() / scale
    check("probe logits", e_probe < a.tol, f"relative max error {e_probe:.3g} (tol {a.tol:g})")
    check("top-8 logits", e_top < a.tol, f"relative max error {e_top:.3g}")
    mx = got.max(1, keepdims=True)
    lse = (np.log(np.exp(got - mx).sum(1)) + mx[:, 0])
    e_lse = np.abs(lse - np.array(ref["logsumexp"])).max() / scale
    check("log-sum-exp over the vocabulary", e_lse < a.tol, f"relative max error {e_lse:.3g}")
    same = int((got.argmax(1) == top_ids[:, 0]).sum())
    check("argmax", same == len(ids), f"{same}/{len(ids)} positions")
    for i, t in enumerate(ref["tokens"]):
        r = subprocess.run([os.path.join(a.bin, "ctune"), "tokenize", "--model", a.model, "--text", t["text"],
                            "--json"], capture_output=True, text=True)
        ours = json.loads(r.stdout)["ids"] if r.returncode == 0 else r.stderr.strip()
        check(f"tokens of WikiText line {i}", ours == t["ids"], f"{len(t['ids'])} ids" if ours == t["ids"]
              else f"ctune {ours} vs transformers {t['ids']}")
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
