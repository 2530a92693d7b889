# ctune quant gptq (the layer routine's exactness is in tests/unit/test_gptq.c).
QD="$TMP/quant"
mkdir -p "$QD"
printf '' > "$QD/empty.txt"
printf 'just a few words\n' > "$QD/short.txt"
M=tests/fixtures/chat_model
expect_out "quant gptq: text calibration" "14 linears quantized with GPTQ (4-bit, group 32)" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/g4" --group-size 32 --data README.md --sequence-length 64 \
    --num-samples 8
expect_out "quant gptq: info reads the quantization block" "affine 4-bit, group 32" "$CTUNE" info "$QD/g4"
expect_out "quant gptq: the quantized model generates" "ids:" \
    "$CTUNE" generate --model "$QD/g4" --prompt-ids 1,2,3 --max-tokens 2 --print-ids
expect_out "quant gptq: perplexity runs on it" "Perplexity:" \
    "$CTUNE" perplexity --model "$QD/g4" --data README.md --sequence-length 64 --num-samples 2
expect_out "quant gptq: dataset folder, 3 bits, float16" "from 2 calibration sequences" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/g3" --bits 3 --group-size 32 --data tests/fixtures/data/local \
    --sequence-length 16 --num-samples 2 --dtype float16
expect_out "quant gptq: scales in float16" "F16" "$CTUNE" info "$QD/g3"
expect_out "quant gptq: --act-order" "14 linears quantized with GPTQ (4-bit, group 32, act-order)" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/ao" --group-size 32 --data README.md --sequence-length 64 \
    --num-samples 8 --act-order
expect_out "quant gptq: the act-order model generates" "ids:" \
    "$CTUNE" generate --model "$QD/ao" --prompt-ids 1,2,3 --max-tokens 2 --print-ids
expect_ok "quant gptq: act-order changes the weights" \
    bash -c 'test -s "$1" && test -s "$2" && ! cmp -s "$1" "$2"' _ "$QD/ao/model.safetensors" \
    "$QD/g4/model.safetensors"

expect_fail "quant: no method" "a method is needed" "$CTUNE" quant
expect_fail "quant: unknown method" "unknown method 'bogus'" "$CTUNE" quant bogus --model $M
# gemma3 (norms as 1 + w, sandwich norms, GELU): GPTQ beats RTN's KL on its own calibration text.
G=tests/fixtures/gemma_chat_model
expect_out "quant gptq: gemma3" "14 linears quantized with GPTQ (4-bit, group 32)" \
    "$CTUNE" quant gptq --model $G --mlx-path "$QD/gemma" --group-size 32 --fallback-bits 4 --fallback-group-size 32 \
    --data README.md --sequence-length 64 --num-samples 16 --dtype float32
expect_ok "quant gptq: gemma3 RTN for comparison" \
    "$CTUNE" convert --model $G --mlx-path "$QD/gemma-rtn" -q --q-group-size 32 --dtype float32
kl_of() { "$CTUNE" perplexity --model "$1" --reference $G --data README.md --sequence-length 64 --num-samples 4 \
          --json 2>/dev/null | sed -n 's/.*"mean_kl": \([^}]*\)}.*/\1/p'; }
kg=$(kl_of "$QD/gemma"); kr=$(kl_of "$QD/gemma-rtn")
awk -v g="$kg" -v r="$kr" 'BEGIN { exit !(g > 0 && r > 0 && g < 0.95 * r) }' \
    && _record 1 "quant gptq: gemma3 KL $kg < RTN's $kr" || _record 0 "quant gptq: gemma3 KL" "GPTQ '$kg', RTN '$kr'"

expect_fail "quant gptq: no --data" "calibration data is needed: --data" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/x"
expect_fail "quant gptq: empty data" "calibration data is empty" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/x" --data "$QD/empty.txt"
expect_fail "quant gptq: data shorter than a sequence" "shorter than one sequence of 512" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/x" --data "$QD/short.txt"
expect_fail "quant gptq: output exists" "already exists" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/g4" --data README.md
expect_fail "quant gptq: 7 bits" "7 bits" "$CTUNE" quant gptq --model $M --mlx-path "$QD/x" --bits 7 --data README.md
expect_fail "quant gptq: bad --num-samples" "0 samples" \
    "$CTUNE" quant gptq --model $M --mlx-path "$QD/x" --num-samples 0 --data README.md
expect_fail "quant gptq: a quantized model" "already quantized" \
    "$CTUNE" quant gptq --model "$QD/g4" --mlx-path "$QD/x" --group-size 32 --data README.md --sequence-length 64
expect_ok "quant gptq: nothing left behind on failure" test ! -e "$QD/x"

# perplexity --reference: the mean KL to the float model (the quantization tables' KL column).
expect_out "perplexity --reference: a model against itself has KL 0" '"mean_kl": 0}' \
    "$CTUNE" perplexity --model $M --reference $M --data README.md --sequence-length 64 --num-samples 2 --json
kl=$("$CTUNE" perplexity --model "$QD/g4" --reference $M --data README.md --sequence-length 64 --num-samples 2 \
     --json 2>/dev/null | sed -n 's/.*"mean_kl": \([^}]*\)}.*/\1/p')
awk -v k="$kl" 'BEGIN { exit !(k > 1e-6 && k < 1) }' && _record 1 "perplexity --reference: 4-bit GPTQ has a small positive KL ($kl)" \
    || _record 0 "perplexity --reference: 4-bit GPTQ KL" "mean_kl '$kl' not in (1e-6, 1)"
expect_out "perplexity --reference: text line" "Mean KL(reference || model):" \
    "$CTUNE" perplexity --model "$QD/g4" --reference $M --data README.md --sequence-length 64 --num-samples 1
expect_fail "perplexity --reference: vocabulary mismatch" "vocabulary of 128 tokens" \
    "$CTUNE" perplexity --model $M --reference tests/fixtures/models/llama_default --data README.md --sequence-length 64
expect_fail "perplexity --reference: missing folder" "$QD/none" \
    "$CTUNE" perplexity --model $M --reference "$QD/none" --data README.md
