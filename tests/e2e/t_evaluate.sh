# ctune evaluate on the tiny chat model fixture (random weights: the numbers are what they are;
# the cases check the command's behaviour and errors).
CM=tests/fixtures/chat_model
printf '%s\n' '{"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}]}' \
    '{"messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]}' > "$TMP/eval.jsonl"
expect_out "evaluate: exact match line" "Exact match: 0/2 (0.0%)" "$CTUNE" evaluate --model $CM --data "$TMP/eval.jsonl" --max-tokens 3
expect_out "evaluate: --json" '"total": 1' "$CTUNE" evaluate --model $CM --data "$TMP/eval.jsonl" --max-tokens 2 --num-examples 1 --json
expect_out "evaluate: --show prints the reference" "reference: hello" "$CTUNE" evaluate --model $CM --data "$TMP/eval.jsonl" --max-tokens 2 --show 1
printf '%s\n' '{"prompt": "a b", "completion": "c"}' > "$TMP/eval_comp.jsonl"
expect_out "evaluate: completions data" "Exact match: 0/1" "$CTUNE" evaluate --model $CM --data "$TMP/eval_comp.jsonl" --max-tokens 2
printf '%s\n' '{"text": "plain"}' > "$TMP/eval_text.jsonl"
expect_fail "evaluate: text data has no reference" "text records have no reference answer" "$CTUNE" evaluate --model $CM --data "$TMP/eval_text.jsonl"
printf '%s\n' '{"messages": [{"role": "user", "content": "question only"}]}' > "$TMP/eval_noans.jsonl"
expect_fail "evaluate: record without an answer names file:line" "eval_noans.jsonl:1" "$CTUNE" evaluate --model $CM --data "$TMP/eval_noans.jsonl"
expect_fail "evaluate: missing --data" "--model and --data are required" "$CTUNE" evaluate --model $CM
expect_fail "evaluate: malformed JSONL" "eval_bad.jsonl:1" sh -c "printf '{bad\n' > '$TMP/eval_bad.jsonl'; '$CTUNE' evaluate --model $CM --data '$TMP/eval_bad.jsonl'"
