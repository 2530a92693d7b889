# ctune lora end to end on the tiny chat model fixture: training, outputs, resume, test, errors.
CM=tests/fixtures/chat_model
LD="$TMP/lora-data"
mkdir -p "$LD"
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$LD/train.jsonl"
head -4 "$LD/train.jsonl" > "$LD/valid.jsonl"
head -4 "$LD/train.jsonl" > "$LD/test.jsonl"
LARGS="--model $CM --data $LD --batch-size 4 --learning-rate 1e-2 --steps-per-report 5 --steps-per-eval 10 --save-every 5 --seed 1"
expect_out "lora: trains and reports like mlx-lm" "Train loss" "$CTUNE" lora $LARGS --train --iters 10 --adapter-path "$TMP/lora-a"
expect_out "lora: trainable parameters line" "Trainable parameters: " "$CTUNE" lora $LARGS --train --iters 1 --adapter-path "$TMP/lora-b"
for f in adapters.safetensors adapter_config.json 0000010_adapters.safetensors 0000010_state.safetensors metrics.jsonl loss_curve.svg; do
    [ -s "$TMP/lora-a/$f" ] && _record 1 "lora: wrote $f" || _record 0 "lora: wrote $f" "missing $TMP/lora-a/$f"
done
grep -q '"fine_tune_type": "lora"' "$TMP/lora-a/adapter_config.json" && _record 1 "lora: adapter_config.json has mlx-lm keys" \
    || _record 0 "lora: adapter_config.json has mlx-lm keys" "$(head -c 300 "$TMP/lora-a/adapter_config.json")"
# Resume: 5 iterations, then --resume to 10, equals 10 uninterrupted (same seed, same data order).
"$CTUNE" lora $LARGS --train --iters 5 --adapter-path "$TMP/lora-r" >/dev/null 2>&1
expect_out "lora: --resume continues" "Iter 10: Train loss" "$CTUNE" lora $LARGS --train --iters 10 --resume --adapter-path "$TMP/lora-r"
cmp -s "$TMP/lora-a/adapters.safetensors" "$TMP/lora-r/adapters.safetensors" && _record 1 "lora: resumed adapters identical to uninterrupted" \
    || _record 0 "lora: resumed adapters identical to uninterrupted" "adapters differ"
# Killed after the last checkpoint but before adapters.safetensors, leaving a dead writer's temp file:
# --resume rewrites adapters.safetensors and removes the temp file.
cp "$TMP/lora-r/0000005_adapters.safetensors" "$TMP/lora-r/adapters.safetensors"
: > "$TMP/lora-r/0000010_state.safetensors.tmp.999999999"
"$CTUNE" lora $LARGS --train --iters 10 --resume --adapter-path "$TMP/lora-r" >/dev/null 2>&1
cmp -s "$TMP/lora-a/adapters.safetensors" "$TMP/lora-r/adapters.safetensors" && _record 1 "lora: --resume at the end rewrites adapters" \
    || _record 0 "lora: --resume at the end rewrites adapters" "adapters differ"
[ ! -e "$TMP/lora-r/0000010_state.safetensors.tmp.999999999" ] && _record 1 "lora: stale temp files removed" \
    || _record 0 "lora: stale temp files removed" "$(ls "$TMP/lora-r")"
expect_out "lora: --test with trained adapters" "Test loss " "$CTUNE" lora $LARGS --test --adapter-path "$TMP/lora-a"
printf 'lora_parameters:\n  rank: 4\n  alpha: 8\niters: 2\n' > "$TMP/lora.yaml"
expect_out "lora: YAML config with alpha" "Trainable parameters: " "$CTUNE" lora $LARGS --train -c "$TMP/lora.yaml" --adapter-path "$TMP/lora-y"
grep -q '"scale": 2' "$TMP/lora-y/adapter_config.json" && _record 1 "lora: alpha/rank becomes scale" \
    || _record 0 "lora: alpha/rank becomes scale" "$(grep -A6 lora_parameters "$TMP/lora-y/adapter_config.json")"
expect_out "lora: dora" "Train loss" "$CTUNE" lora $LARGS --train --iters 2 --fine-tune-type dora --adapter-path "$TMP/lora-d"
expect_out "lora: full fine-tuning" "Train loss" "$CTUNE" lora $LARGS --train --iters 2 --fine-tune-type full --num-layers 1 --adapter-path "$TMP/lora-f"
printf 'bogus_key: 1\n' > "$TMP/bad.yaml"
expect_fail "lora: unknown YAML key names file:line" "bad.yaml:1" "$CTUNE" lora $LARGS --train -c "$TMP/bad.yaml"
expect_fail "lora: num-layers 0" "num_layers" "$CTUNE" lora $LARGS --train --num-layers 0
expect_fail "lora: neither --train nor --test" "--train" "$CTUNE" lora $LARGS
expect_fail "lora: missing model" "no such file" "$CTUNE" lora --model "$TMP/nomodel" --data "$LD" --train
mkdir -p "$TMP/lora-empty"
expect_fail "lora: empty training set" "Training set not found or empty" "$CTUNE" lora --model $CM --data "$TMP/lora-empty" --train
mkdir -p "$TMP/lora-bad"
printf '{"text": "x"}\n{"text": \n' > "$TMP/lora-bad/train.jsonl"
expect_fail "lora: malformed JSONL names file:line" "train.jsonl:2" "$CTUNE" lora --model $CM --data "$TMP/lora-bad" --train
expect_fail "lora: --resume without checkpoint" "no checkpoint" "$CTUNE" lora $LARGS --train --resume --adapter-path "$TMP/lora-none"
expect_fail "lora: batch larger than the dataset" "batch_size" "$CTUNE" lora $LARGS --train --batch-size 64 --adapter-path "$TMP/lora-big"
expect_out "lora: --help lists flags" "--fine-tune-type" "$CTUNE" lora --help
expect_out "evaluate: with trained adapters" "Exact match:" "$CTUNE" evaluate --model $CM --adapter-path "$TMP/lora-a" --data "$LD/test.jsonl" --max-tokens 4
expect_out "generate: with trained adapters" "Generation:" "$CTUNE" generate --model $CM --adapter-path "$TMP/lora-a" --prompt "count 3" --max-tokens 4
