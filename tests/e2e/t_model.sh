# ctune generate / perplexity on the tiny fixture models (no tokenizer: token ids in and out).
M=tests/fixtures/models/llama_default
expect_out "generate: prompt ids" "Prompt: 4 tokens" "$CTUNE" generate --model "$M" --prompt-ids 5,6,7,8 --max-tokens 3
expect_out "generate: peak memory line" "Peak memory:" "$CTUNE" generate --model "$M" --prompt-ids 5,6 --max-tokens 2
expect_out "generate: sampling options" "tokens-per-sec" "$CTUNE" generate --model tests/fixtures/models/mlx_q4_g32 \
    --prompt-ids 5,6 --max-tokens 4 --temp 0.8 --top-p 0.9 --min-p 0.05 --top-k 20 --seed 3
a=$("$CTUNE" generate --model "$M" --prompt-ids 9,10 --max-tokens 6 --temp 1 --seed 7 --print-ids | grep '^ids:')
b=$("$CTUNE" generate --model "$M" --prompt-ids 9,10 --max-tokens 6 --temp 1 --seed 7 --print-ids | grep '^ids:')
[ -n "$a" ] && [ "$a" = "$b" ] && _record 1 "generate: same seed, same tokens" || _record 0 "generate: same seed, same tokens" "$a / $b"
expect_fail "generate: missing adapter folder" "adapter path does not exist" \
    "$CTUNE" generate --model "$M" --adapter-path "$TMP/a" --prompt-ids 1
expect_fail "generate: id outside the vocabulary" "outside the vocabulary" \
    "$CTUNE" generate --model "$M" --prompt-ids 5,999 --max-tokens 1
expect_fail "generate: missing model" "not a model folder or a .gguf file" \
    "$CTUNE" generate --model "$TMP/none" --prompt-ids 1
expect_fail "generate: bad number" "--temp" "$CTUNE" generate --model "$M" --temp hot
expect_fail "generate: no tokenizer for a text prompt" "tokenizer" "$CTUNE" generate --model "$M" --prompt hi
printf 'some text\n' > "$TMP/ppl.txt"
expect_fail "perplexity: no tokenizer" "tokenizer" "$CTUNE" perplexity --model "$M" --data "$TMP/ppl.txt"
expect_fail "perplexity: needs --data" "--data" "$CTUNE" perplexity --model "$M"
expect_fail "perplexity: bad length" "--sequence-length" "$CTUNE" perplexity --model "$M" --data "$TMP/ppl.txt" --sequence-length 1
