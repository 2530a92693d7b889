#!/bin/bash
# valgrind --leak-check=full over a handful of CLI commands on the tiny chat
# fixture: lora (LoRA, DoRA on a quantized base, save and --resume), generate
# (with adapters, and a GGUF), convert -q, fuse (with GGUF and PEFT export),
# quant gptq, perplexity, info. A command fails on a definite leak or any
# memcheck error (invalid access, use of uninitialised values).
#
# usage: tests/memory/valgrind.sh [CTUNE]   (from anywhere; default build/ctune; a few minutes)
# Prints one line per command and "N passed, N failed"; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
CTUNE=$(realpath "${1:-build/ctune}")
command -v valgrind >/dev/null || { echo "valgrind not installed"; echo "0 passed, 1 failed"; exit 1; }
export OMP_NUM_THREADS=1
O=$(mktemp -d /tmp/ctune-valgrind-XXXXXX)
trap 'rm -rf "$O"' EXIT
CM=tests/fixtures/chat_model
PASS=0
FAIL=0
mkdir -p "$O/data"
for i in $(seq 1 8); do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$O/data/train.jsonl"
head -4 "$O/data/train.jsonl" > "$O/data/valid.jsonl"

vg() { # name, ctune args...
    local name=$1; shift
    valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 -q \
        "$CTUNE" "$@" >"$O/$name.out" 2>"$O/$name.err"
    local rc=$?
    if [ $rc -eq 0 ]; then
        PASS=$((PASS + 1)); echo "ok   $name"
    else
        FAIL=$((FAIL + 1)); echo "FAIL $name (exit $rc)"; grep -E '==[0-9]+==' "$O/$name.err" | head -30
    fi
}

vg lora lora --model $CM --data "$O/data" --train --iters 4 --batch-size 2 --save-every 2 --adapter-path "$O/ad"
vg lora-resume lora --model $CM --data "$O/data" --train --iters 6 --batch-size 2 --save-every 2 --adapter-path "$O/ad" --resume
vg generate generate --model $CM --adapter-path "$O/ad" --prompt hi --max-tokens 5
vg convert convert --model $CM --mlx-path "$O/q4" -q --q-group-size 32
vg lora-dora-q4 lora --model "$O/q4" --data "$O/data" --train --iters 2 --batch-size 2 --fine-tune-type dora --adapter-path "$O/ad-dora"
vg fuse fuse --model $CM --adapter-path "$O/ad" --save-path "$O/fused" --export-gguf --export-peft "$O/peft"
vg generate-gguf generate --model "$O/fused/ggml-model-f16.gguf" --prompt-ids 1,2 --max-tokens 3
vg generate-peft generate --model $CM --adapter-path "$O/peft" --prompt-ids 1,2 --max-tokens 3
vg quant-gptq quant gptq --model $CM --mlx-path "$O/gptq" --group-size 32 --data README.md --sequence-length 64 --num-samples 4
vg perplexity perplexity --model $CM --data README.md --sequence-length 32
vg info info "$O/gptq"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
