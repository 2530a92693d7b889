# ctune convert: mlx_lm.convert's job (bit-exactness is in tests/unit/test_convert.c).
CV="$TMP/convert"
mkdir -p "$CV"
expect_out "convert -q: quantized folder" "15 modules quantized" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/q4" -q --q-group-size 32
expect_out "convert -q: info reads the quantization block" "affine 4-bit, group 32" "$CTUNE" info "$CV/q4"
for f in tokenizer.json tokenizer_config.json model.safetensors model.safetensors.index.json README.md; do
    expect_ok "convert -q: wrote $f" test -s "$CV/q4/$f"
done
expect_out "convert -q: the quantized model generates" "ids:" \
    "$CTUNE" generate --model "$CV/q4" --prompt-ids 1,2,3 --max-tokens 2 --print-ids
expect_out "convert --quant-predicate mixed_3_6" "bits per weight" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/mixed" -q --q-group-size 32 \
    --quant-predicate mixed_3_6
expect_out "convert --quant-predicate: per-layer overrides in config" '"bits":	6' cat "$CV/mixed/config.json"
expect_out "convert --dequantize: back to dense" "0 modules quantized" \
    "$CTUNE" convert --model "$CV/q4" --mlx-path "$CV/deq" --dequantize
expect_out "convert --dequantize: no quantization block left" "storage" "$CTUNE" info "$CV/deq"
expect_ok "convert --dequantize: quantization block gone" sh -c "! grep -q quantization '$CV/deq/config.json'"
expect_out "convert --dtype bfloat16" "0 modules quantized" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/bf16" --dtype bfloat16
expect_out "convert --dtype bfloat16: tensors are BF16" "BF16" "$CTUNE" info "$CV/bf16"

expect_fail "convert: no --model" "--model is required" "$CTUNE" convert --mlx-path "$CV/x"
expect_fail "convert: unknown flag" "unknown option '--bogus'" "$CTUNE" convert --model tests/fixtures/chat_model --bogus 1
expect_fail "convert: missing value" "missing value" "$CTUNE" convert --model tests/fixtures/chat_model --q-bits
expect_fail "convert: bad --q-bits" "not a positive integer" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" -q --q-bits four
expect_fail "convert: 7 bits unsupported" "bits" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" -q --q-bits 7
expect_fail "convert: group 48 unsupported" "group" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" -q --q-group-size 48
expect_fail "convert: bad recipe" "mixed_2_6" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" -q --quant-predicate mixed_9_9
expect_fail "convert: recipe without -q" "needs -q" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" --quant-predicate mixed_3_6
expect_fail "convert: bad --dtype" "float16, bfloat16, float32" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" --dtype float64
expect_fail "convert: mxfp4 mode unsupported" "only affine" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/x" -q --q-mode mxfp4
expect_fail "convert: -q and --dequantize" "not both" \
    "$CTUNE" convert --model "$CV/q4" --mlx-path "$CV/x" -q --dequantize
expect_fail "convert: -q on a quantized model" "already quantized" \
    "$CTUNE" convert --model "$CV/q4" --mlx-path "$CV/x" -q
expect_fail "convert: missing model" "nope" "$CTUNE" convert --model "$CV/nope" --mlx-path "$CV/x"
expect_fail "convert: output exists" "already exists" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/q4"
printf 'x' > "$CV/afile"
expect_fail "convert: non-writable output (parent is a file)" "afile" \
    "$CTUNE" convert --model tests/fixtures/chat_model --mlx-path "$CV/afile/out" -q
mkdir -p "$CV/broken"
cp tests/fixtures/chat_model/config.json "$CV/broken/"
head -c 100 tests/fixtures/chat_model/model.safetensors > "$CV/broken/model.safetensors"
expect_fail "convert: truncated weights" "model.safetensors" \
    "$CTUNE" convert --model "$CV/broken" --mlx-path "$CV/x" -q
left=$(ls -d "$CV"/x* 2>/dev/null | wc -l)
expect_ok "convert: failures leave no output or temp folder" test "$left" -eq 0
