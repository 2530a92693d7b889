"""Encode throughput, single thread: ctune vs Hugging Face `tokenizers`.

usage (from the repo root, after `make`):
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false .venv/bin/python bench/tokenize_bench.py \
      TOKENIZER_JSON TEXT_FILE [REPS]
Both encode the same text without special tokens, once as a whole and once
line by line, after one warm-up pass each (both keep a word cache). Prints MB/s
and the ratio ctune / HF (above 1: ctune faster) and checks the ids agree.
"""
import os
import subprocess
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402


def hf_time(tok, text, reps, lines):
    items = text.split("\n") if lines else [text]
    n = sum(len(tok.encode(s, add_special_tokens=False).ids) for s in items)
    t0 = time.perf_counter()
    for _ in range(reps):
        n = sum(len(tok.encode(s, add_special_tokens=False).ids) for s in items)
    return (time.perf_counter() - t0) / reps, n


def main():
    tok_path, text_path = sys.argv[1], sys.argv[2]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    text = open(text_path, encoding="utf-8").read()
    mb = len(text.encode()) / 1e6
    tok = tokenizers.Tokenizer.from_file(tok_path)
    for mode in ("whole", "lines"):
        hf_s, hf_n = hf_time(tok, text, reps, mode == "lines")
        out = subprocess.run(["build/tools/tok_bench", tok_path, text_path, str(reps)] + (["lines"] if mode == "lines" else []),
                             check=True, capture_output=True, text=True).stdout.split()
        ct_s, ct_n = float(out[0]), int(out[1])
        print(f"{os.path.basename(os.path.dirname(tok_path)) or tok_path} {mode}: {mb:.2f} MB, "
              f"hf {mb / hf_s:.2f} MB/s, ctune {mb / ct_s:.2f} MB/s, ratio {hf_s / ct_s:.2f}x"
              f"{'' if hf_n == ct_n else f' (token counts differ: hf {hf_n}, ctune {ct_n})'}")


if __name__ == "__main__":
    main()
