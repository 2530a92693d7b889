# ctune quant dynamic's output in mlx-lm (sourced by tests/assets.sh): the tiny
# chat model, mixed 2/8-bit from KL sensitivities on WikiSQL calibration
# data, loads in mlx-lm (MLX's CPU build, reference venv) with ctune's logits.
REF=${CTUNE_VENV_REF:-/work/main/.venv-ref}
if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
    DA="$TMP/dynamic-assets"
    mkdir -p "$DA"
    expect_out "quant dynamic 2/8-bit g32 on wikisql" "of 15 modules at 8-bit group 32" "$CTUNE" quant dynamic \
        --model tests/fixtures/chat_model --mlx-path "$DA/d" --low-bits 2 --low-group-size 32 --high-bits 8 \
        --high-group-size 32 --target-bpw 7 --data "$ASSETS/datasets/wikisql/train.jsonl" --sequence-length 128 \
        --num-samples 16 --sensitivities-out "$DA/sens.json"
    expect_ok "quant dynamic mixed output in mlx-lm" "$REF/bin/python" tools/check_quant_mlx.py --bin build "$DA/d"
fi
