# ctune quant gptq/awq/dwq outputs in mlx-lm (sourced by tests/assets.sh): the tiny
# chat model quantized on WikiSQL calibration data loads in mlx-lm
# (MLX's CPU build, reference venv) with ctune's logits. tools/check_quant_mlx.py.
REF=${CTUNE_VENV_REF:-/work/main/.venv-ref}
if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
    QA="$TMP/quant-assets"
    mkdir -p "$QA"
    expect_ok "quant gptq 3-bit g32 on wikisql" "$CTUNE" quant gptq --model tests/fixtures/chat_model \
        --mlx-path "$QA/g3" --bits 3 --group-size 32 --fallback-bits 4 --fallback-group-size 32 \
        --data "$ASSETS/datasets/wikisql/train.jsonl" --sequence-length 128 --num-samples 16
    expect_ok "quant gptq 3-bit g32 in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$QA/g3"
    expect_ok "quant awq 3-bit g32 on wikisql" "$CTUNE" quant awq --model tests/fixtures/chat_model \
        --mlx-path "$QA/awq3" --bits 3 --group-size 32 --embed-bits 4 --embed-group-size 32 \
        --data "$ASSETS/datasets/wikisql/train.jsonl" --sequence-length 128 --num-samples 16 --dtype float32
    expect_ok "quant awq 3-bit g32 in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$QA/awq3"
    expect_ok "quant dwq 3-bit g32 on wikisql" "$CTUNE" quant dwq --model tests/fixtures/chat_model \
        --mlx-path "$QA/dwq3" --bits 3 --group-size 32 --data "$ASSETS/datasets/wikisql/train.jsonl" \
        --max-seq-length 65 --num-samples 16 --learning-rate 1e-3 --top-k 32 --dtype float32
    expect_ok "quant dwq 3-bit g32 in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$QA/dwq3"
    # gemma3 (sandwich norms applied as 1 + w): GPTQ and AWQ outputs in mlx-lm
    expect_ok "quant gptq gemma3 4-bit g32 on wikisql" "$CTUNE" quant gptq --model tests/fixtures/gemma_chat_model \
        --mlx-path "$QA/gemma-g4" --group-size 32 --fallback-bits 4 --fallback-group-size 32 \
        --data "$ASSETS/datasets/wikisql/train.jsonl" --sequence-length 128 --num-samples 16 --dtype float32
    expect_ok "quant gptq gemma3 in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$QA/gemma-g4"
    expect_ok "quant awq gemma3 4-bit g32 on wikisql" "$CTUNE" quant awq --model tests/fixtures/gemma_chat_model \
        --mlx-path "$QA/gemma-awq4" --group-size 32 --embed-group-size 32 \
        --data "$ASSETS/datasets/wikisql/train.jsonl" --sequence-length 128 --num-samples 16 --dtype float32
    expect_ok "quant awq gemma3 in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$QA/gemma-awq4"
    head -c 40000 "$ASSETS/text/wikitext-2-raw-test.txt" > "$QA/wiki.txt"
    expect_ok "perplexity --reference: mean KL equals mlx-lm's" "$REF/bin/python" tools/check_kl.py "$CTUNE" \
        "$QA/g3" tests/fixtures/chat_model "$QA/wiki.txt" 64 4
fi
