"""Compares `ctune tokenize` with Hugging Face `tokenizers` line by line.

usage: tokenizer_compare.py CTUNE TOKENIZER_JSON CORPUS [CORPUS...]
Encodes every line of the corpora (with special tokens) with both and checks
decode(ids) too. Prints the mismatch counts; the last line is "N passed, N failed".
Run with .venv/bin/python (it has `tokenizers`).
"""
import os
import subprocess
import sys
import tempfile

import tokenizers

MULTILINGUAL = [
    "Hello world! This is a test.", "  leading and trailing spaces  ", "tabs\tand\tnewlines\r\nhere",
    "Ünïcödé façade — naïve café", "Привет, как дела? Всё хорошо.", "日本語のテキストです。東京は大きい。",
    "中文测试：你好，世界！", "한국어 텍스트입니다.", "العربية نص تجريبي", "עברית טקסט", "ελληνικά κείμενο",
    "हिन्दी पाठ परीक्षण", "ไทย ภาษา ทดสอบ", "emoji 🦙🔥👍🏽 👨‍👩‍👧‍👦 🇫🇷", "math ∑∫√∞ ≤ ≥ ≠ ±",
    "def f(x):\n    return x**2  # square", "for (int i = 0; i < n; i++) { a[i] = b[i] * 2; }",
    "<html><body class=\"x\">&amp;</body></html>", "{\"key\": [1, 2.5e-3, null, true]}",
    "1234567890 3.14159 1,000,000 0x1F", "can't won't I'm you're they've we'll he'd",
    "multiple     spaces\u00a0nbsp\u2003emspace\u3000ideographic", "zero\u200bwidth\u200djoiner\ufeffbom",
    "combining e\u0301 a\u0308 n\u0303", "\u212b \ufb01 \u2460 \uff21 compatibility", "İstanbul ǅ ß ΣΑΣ",
    "<s> </s> <unk> <|endoftext|> [INST] tokens", "\x7f\x01 controls", "a\u2028b\u2029c\x85d",
    "      ", "\t\t\n\n", "x" * 300, "ab" * 200 + " " + "🦙" * 50,
]


def corpus_lines(paths):
    lines = list(MULTILINGUAL)
    for p in paths:
        with open(p, encoding="utf-8") as f:
            lines += f.read().split("\n")
    return [l.replace("\n", "\r") for l in lines]  # one text per line


def main():
    ctune, tok_path, corpora = sys.argv[1], sys.argv[2], sys.argv[3:]
    tok = tokenizers.Tokenizer.from_file(tok_path)
    lines = corpus_lines(corpora)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines))
        tmp = f.name
    try:
        out = subprocess.run([ctune, "tokenize", "--tokenizer", tok_path, "--file", tmp, "--lines"],
                             check=True, capture_output=True, text=True).stdout.split("\n")
    finally:
        os.unlink(tmp)
    bad = 0
    for i, line in enumerate(lines):
        want = tok.encode(line).ids
        got = [int(x) for x in out[i].split()] if i < len(out) else None
        if got != want:
            bad += 1
            if bad <= 5:
                print(f"mismatch line {i}: {line[:80]!r}\n  hf:    {want[:40]}\n  ctune: {(got or [])[:40]}")
    nbytes = sum(len(l.encode()) for l in lines)
    print(f"{os.path.basename(os.path.dirname(tok_path))}: {len(lines)} lines, {nbytes} bytes, {bad} mismatching lines")
    print(f"{int(bad == 0)} passed, {int(bad != 0)} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
