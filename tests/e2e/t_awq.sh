# ctune quant awq (the pieces' exactness is in tests/unit/test_awq.c).
AD="$TMP/awq"
mkdir -p "$AD"
printf '' > "$AD/empty.txt"
printf 'just a few words\n' > "$AD/short.txt"
# README.md's lines as {"text": ...} records (text files: test_awq.c and the
# gemma3 case below).
grep -v '^[[:space:]]*$' README.md | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/ /g' -e 's/.*/{"text": "&"}/' \
    > "$AD/readme.jsonl"
M=tests/fixtures/chat_model
A="$CTUNE quant awq --model $M --group-size 32"
expect_out "quant awq: text records" "2 layers quantized with AWQ (4-bit, group 32" \
    $A --mlx-path "$AD/a4" --data "$AD/readme.jsonl" --sequence-length 64 --num-samples 8
expect_out "quant awq: info reads the quantization block" "affine 4-bit, group 32" "$CTUNE" info "$AD/a4"
expect_out "quant awq: the quantized model generates" "ids:" \
    "$CTUNE" generate --model "$AD/a4" --prompt-ids 1,2,3 --max-tokens 2 --print-ids
expect_out "quant awq: perplexity runs on it" "Perplexity:" \
    "$CTUNE" perplexity --model "$AD/a4" --data README.md --sequence-length 64 --num-samples 2
expect_out "quant awq: dataset folder, 3 bits, embed 8 bits, float16" "from 2 calibration sequences" \
    $A --mlx-path "$AD/a3" --bits 3 --embed-bits 8 --data tests/fixtures/data/local \
    --sequence-length 16 --num-samples 2 --n-grid 4 --dtype float16
expect_out "quant awq: scales in float16" "F16" "$CTUNE" info "$AD/a3"
expect_ok "quant awq: the embedding override has 8 bits" \
    sh -c "tr -d ' \t\n' < '$AD/a3/config.json' | grep -q '\"model.embed_tokens\":{\"group_size\":32,\"bits\":8'"

# gemma3 (norms applied as 1 + w; the fold itself is checked in test_awq.c).
G=tests/fixtures/gemma_chat_model
expect_out "quant awq: gemma3, text file" "2 layers quantized with AWQ (4-bit, group 32" \
    "$CTUNE" quant awq --model $G --mlx-path "$AD/g4" --group-size 32 --embed-group-size 32 --data README.md \
    --sequence-length 64 --num-samples 8 --dtype float32
kl=$("$CTUNE" perplexity --model "$AD/g4" --reference $G --data README.md --sequence-length 64 --num-samples 4 \
     --json 2>/dev/null | sed -n 's/.*"mean_kl": \([^}]*\)}.*/\1/p')
awk -v k="$kl" 'BEGIN { exit !(k > 0 && k < 1e-2) }' && _record 1 "quant awq: gemma3 4-bit KL to the float model ($kl)" \
    || _record 0 "quant awq: gemma3 4-bit KL" "mean_kl '$kl' not in (0, 1e-2)"

expect_fail "quant awq: no --data" "calibration data is needed: --data" $A --mlx-path "$AD/x"
expect_fail "quant awq: empty data" "calibration data is empty" $A --mlx-path "$AD/x" --data "$AD/empty.txt"
expect_fail "quant awq: data shorter than a sequence" "shorter than one sequence of 512" \
    $A --mlx-path "$AD/x" --data "$AD/short.txt"
expect_fail "quant awq: unsupported architecture" "awq handles llama, mistral, qwen2, qwen3 and gemma3 models, not phi3" \
    "$CTUNE" quant awq --model tests/fixtures/models/phi3 --mlx-path "$AD/x" --group-size 32 --data README.md
expect_fail "quant awq: group size not dividing the inputs" "not a multiple of --group-size 64" \
    "$CTUNE" quant awq --model $M --mlx-path "$AD/x" --data README.md
expect_fail "quant awq: output exists" "already exists" $A --mlx-path "$AD/a4" --data README.md
expect_fail "quant awq: 7 bits" "7 bits" $A --mlx-path "$AD/x" --bits 7 --data README.md
expect_fail "quant awq: bad embed group size" "group" $A --mlx-path "$AD/x" --embed-group-size 48 --data README.md
expect_fail "quant awq: --n-grid 0" "--n-grid: '0' is not an integer >= 1" \
    $A --mlx-path "$AD/x" --n-grid 0 --data README.md
expect_fail "quant awq: bad --num-samples" "0 samples" $A --mlx-path "$AD/x" --num-samples 0 --data README.md
expect_fail "quant awq: bad --dtype" "--dtype: 'float8'" $A --mlx-path "$AD/x" --dtype float8 --data README.md
expect_fail "quant awq: unknown flag" "unknown option '--fallback-bits'" \
    $A --mlx-path "$AD/x" --fallback-bits 4 --data README.md
expect_fail "quant awq: a quantized model" "already quantized" \
    "$CTUNE" quant awq --model "$AD/a4" --mlx-path "$AD/x" --group-size 32 --data README.md --sequence-length 64
expect_ok "quant awq: nothing left behind on failure" test ! -e "$AD/x"
