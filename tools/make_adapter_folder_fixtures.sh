#!/bin/bash
# Makes tests/fixtures/adapters/chat_{lora,dora,full,peft}/: small real adapter
# folders for the chat model fixture (tests/fixtures/chat_model), trained for a
# few steps with ctune itself. They seed fuzz_adapter (scripts/fuzz.sh):
#   chat_lora  mlx-lm layout, LoRA rank 4 on every linear of both blocks
#   chat_dora  mlx-lm layout, DoRA rank 2 on q_proj, v_proj, down_proj of the last block
#   chat_full  mlx-lm layout, full fine-tuning of the last block
#   chat_peft  PEFT layout of chat_dora (ctune fuse --export-peft)
# usage: tools/make_adapter_folder_fixtures.sh [CTUNE]   (from anywhere; default build/ctune)
# No Python is needed (the reference venv is not used).
set -euo pipefail
cd "$(dirname "$0")/.."
CTUNE=$(realpath "${1:-build/ctune}")
CM=tests/fixtures/chat_model
OUT=tests/fixtures/adapters
TMP=$(mktemp -d /tmp/ctune-adfix-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1
for i in 1 2 3 4 5 6 7 8; do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$TMP/train.jsonl"
cp "$TMP/train.jsonl" "$TMP/valid.jsonl"
cat > "$TMP/dora.yaml" <<YAML
lora_parameters:
  rank: 2
  scale: 10.0
  keys: [self_attn.q_proj, self_attn.v_proj, mlp.down_proj]
YAML
cat > "$TMP/lora.yaml" <<YAML
lora_parameters:
  rank: 4
YAML
train() { # name, extra args...
    local name=$1; shift
    rm -rf "${OUT:?}/$name"
    "$CTUNE" lora --model $CM --data "$TMP" --train --iters 3 --batch-size 2 --learning-rate 1e-2 --seed 3 \
        --steps-per-eval 1000 --adapter-path "$TMP/$name" "$@" >/dev/null
    mkdir -p "$OUT/$name"
    cp "$TMP/$name/adapter_config.json" "$TMP/$name/adapters.safetensors" "$OUT/$name/"
}
train chat_lora -c "$TMP/lora.yaml" --num-layers -1
train chat_dora -c "$TMP/dora.yaml" --fine-tune-type dora --num-layers 1
train chat_full --fine-tune-type full --num-layers 1
rm -rf "$OUT/chat_peft"
"$CTUNE" fuse --model $CM --adapter-path "$OUT/chat_dora" --save-path "$TMP/fused" --export-peft "$OUT/chat_peft" >/dev/null
du -sh "$OUT"/chat_*
