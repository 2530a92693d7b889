# ctune quant dwq (the training itself is checked in tests/unit/test_dwq.c).
DD="$TMP/dwq"
mkdir -p "$DD"
printf '' > "$DD/empty.txt"
M=tests/fixtures/chat_model
SMALL=(--group-size 32 --bits 2 --data README.md --max-seq-length 33 --num-samples 16 --learning-rate 1e-3 --top-k 32)
expect_out "quant dwq: text calibration, RTN student" "4 steps on 16 sequences" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/d2" "${SMALL[@]}" --grad-checkpoint --dtype float16
expect_out "quant dwq: info reads the quantization block" "affine 2-bit, group 32" "$CTUNE" info "$DD/d2"
expect_out "quant dwq: the result generates" "ids:" \
    "$CTUNE" generate --model "$DD/d2" --prompt-ids 1,2,3 --max-tokens 2 --print-ids
expect_ok "quant dwq: the temporary student is removed" bash -c "! ls -d $DD/d2.student-* 2>/dev/null"
expect_out "quant dwq: an existing quantized student, full vocabulary" "validation KL" \
    "$CTUNE" quant dwq --model $M --quantized-model "$DD/d2" --mlx-path "$DD/d3" --data README.md \
    --max-seq-length 33 --num-samples 8 --top-k 0
expect_out "quant: lists dwq" "dwq" "$CTUNE" quant --help
expect_fail "quant dwq: no --data" "--data is required" "$CTUNE" quant dwq --model $M --mlx-path "$DD/x"
expect_fail "quant dwq: not quantized" "must already be quantized" \
    "$CTUNE" quant dwq --model $M --quantized-model $M --mlx-path "$DD/x" "${SMALL[@]}"
expect_fail "quant dwq: empty data" "calibration data is empty" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/x" --data "$DD/empty.txt" --top-k 32
expect_fail "quant dwq: too little data" "fewer than one batch of 64" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/x" "${SMALL[@]}" --batch-size 64
expect_fail "quant dwq: bad learning rate" "must be > 0" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/x" "${SMALL[@]}" --learning-rate 0
expect_fail "quant dwq: bad top-k" "--top-k: '-1' is not an integer >= 0" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/x" "${SMALL[@]}" --top-k -1
expect_fail "quant dwq: unknown flag" "unknown option '--bogus'" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/x" --bogus 1
expect_fail "quant dwq: output exists" "already exists" \
    "$CTUNE" quant dwq --model $M --mlx-path "$DD/d2" "${SMALL[@]}"
expect_ok "quant dwq: nothing left behind on failure" bash -c "! ls -d $DD/x* 2>/dev/null"
