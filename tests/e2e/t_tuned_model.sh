# generate / perplexity --adapter-path: an mlx-lm adapter folder made by
# tools/make_train_fixtures.py; greedy ids through it equal PyTorch's.
M=tests/fixtures/models/llama_default
A=tests/fixtures/train/llama_adapter
expect_out "generate --adapter-path: greedy ids as torch" "$(cat "$A/expected_ids.txt")" \
    "$CTUNE" generate --model "$M" --adapter-path "$A" --prompt-ids 5,6,7,8 --max-tokens 6 --temp 0 --print-ids
a=$("$CTUNE" generate --model "$M" --prompt-ids 5,6,7,8 --max-tokens 6 --temp 0 --print-ids | grep '^ids:')
[ -n "$a" ] && [ "$a" != "$(cat "$A/expected_ids.txt")" ] && _record 1 "generate: the adapter changes the output" \
    || _record 0 "generate: the adapter changes the output" "$a"
mkdir -p "$TMP/bad_adapter"
printf '{"fine_tune_type": "lora", "num_layers": -1, "lora_parameters": {"rank": 4, "scale": 2.0, "dropout": 0.0}}' \
    > "$TMP/bad_adapter/adapter_config.json"
expect_fail "generate: adapter folder without weights" "adapters.safetensors" \
    "$CTUNE" generate --model "$M" --adapter-path "$TMP/bad_adapter" --prompt-ids 1
printf 'some text\n' > "$TMP/ppl_a.txt"
expect_fail "perplexity: missing adapter folder" "adapter path does not exist" \
    "$CTUNE" perplexity --model "$M" --adapter-path "$TMP/none" --data "$TMP/ppl_a.txt"
