# ctune lora on a tiny gemma3_text model (tests/fixtures/gemma_chat_model: a
# sliding and a full layer, sandwich norms, the chat model's tokenizer): LoRA,
# DoRA and full fine-tuning lower the validation loss; full fine-tuning saves
# the four norms under mlx-lm's names; the trained folders load for --test and
# generate.
GM=tests/fixtures/gemma_chat_model
GD="$TMP/gemma-data"
mkdir -p "$GD"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$GD/train.jsonl"
head -4 "$GD/train.jsonl" > "$GD/valid.jsonl"
head -4 "$GD/train.jsonl" > "$GD/test.jsonl"
GARGS="--model $GM --data $GD --batch-size 4 --learning-rate 1e-2 --steps-per-report 10 --steps-per-eval 20 --iters 20 --seed 1"

# Runs ctune lora $GARGS --train "$@" and checks the last validation loss is below the first.
gemma_trains() { # name, extra args...
    local name=$1; shift
    local out first last
    out=$("$CTUNE" lora $GARGS --train "$@" 2>&1)
    first=$(printf '%s\n' "$out" | grep -m1 'Val loss' | sed 's/.*Val loss \([0-9.]*\).*/\1/')
    last=$(printf '%s\n' "$out" | grep 'Val loss' | tail -1 | sed 's/.*Val loss \([0-9.]*\).*/\1/')
    if [ -n "$first" ] && [ -n "$last" ] && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.05) }'; then
        _record 1 "$name ($first -> $last)"
    else
        _record 0 "$name" "validation loss $first -> $last: $(printf '%s\n' "$out" | tail -5)"
    fi
}

gemma_trains "gemma3 lora: validation loss falls" --adapter-path "$TMP/gemma-lora"
gemma_trains "gemma3 dora with --grad-checkpoint: validation loss falls" --fine-tune-type dora --grad-checkpoint \
    --adapter-path "$TMP/gemma-dora"
gemma_trains "gemma3 full fine-tuning: validation loss falls" --fine-tune-type full --adapter-path "$TMP/gemma-full"
for n in input_layernorm post_attention_layernorm pre_feedforward_layernorm post_feedforward_layernorm \
    self_attn.q_norm self_attn.k_norm; do
    head -c 4000 "$TMP/gemma-full/adapters.safetensors" | grep -aq "model.layers.0.$n.weight" \
        && _record 1 "gemma3 full: saves model.layers.0.$n.weight" \
        || _record 0 "gemma3 full: saves model.layers.0.$n.weight" "missing in $TMP/gemma-full/adapters.safetensors"
done
expect_out "gemma3: --test with the trained LoRA adapters" "Test loss " "$CTUNE" lora $GARGS --test \
    --adapter-path "$TMP/gemma-lora"
expect_out "gemma3: --test with the full fine-tuned weights" "Test loss " "$CTUNE" lora $GARGS --test \
    --adapter-path "$TMP/gemma-full"
expect_out "gemma3: generate with the trained adapters" "Generation:" "$CTUNE" generate --model $GM \
    --adapter-path "$TMP/gemma-lora" --prompt "count 3" --max-tokens 4
# fuse: the LoRA folded into the gemma3 weights generates what the adapters do.
expect_ok "gemma3: fuse the LoRA adapters" "$CTUNE" fuse --model $GM --adapter-path "$TMP/gemma-lora" \
    --save-path "$TMP/gemma-fused"
a=$("$CTUNE" generate --model $GM --adapter-path "$TMP/gemma-lora" --prompt-ids 1,5,9 --max-tokens 8 --print-ids 2>&1 | grep '^ids:')
b=$("$CTUNE" generate --model "$TMP/gemma-fused" --prompt-ids 1,5,9 --max-tokens 8 --print-ids 2>&1 | grep '^ids:')
[ -n "$a" ] && [ "$a" = "$b" ] && _record 1 "gemma3: fused model = model + adapters ($a)" \
    || _record 0 "gemma3: fused model = model + adapters" "adapters '$a', fused '$b'"
