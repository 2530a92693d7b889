# ctune convert's outputs in mlx-lm (sourced by tests/assets.sh): logits of the
# converted folder in mlx-lm (MLX's CPU build, from the reference venv) against
# ctune's, on the tiny fixture models and on SmolLM2-135M (Q4_1 GGUF) when
# models/ has it. Skipped without the venv. tools/check_convert_mlx.py.
REF=${CTUNE_VENV_REF:-/work/main/.venv-ref}
if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
    check_mlx() { # name, model, convert flags...
        local name=$1; shift
        expect_ok "convert in mlx-lm: $name" "$REF/bin/python" tools/check_convert_mlx.py --bin build "$@"
    }
    check_mlx "llama 4-bit g64" tests/fixtures/models/llama_default -q
    check_mlx "llama 3-bit g32" tests/fixtures/models/llama_default -q --q-bits 3 --q-group-size 32
    check_mlx "llama mixed_2_6 g32" tests/fixtures/models/llama_default -q --q-group-size 32 --quant-predicate mixed_2_6
    check_mlx "qwen3 4-bit g32 f32" tests/fixtures/models/qwen3 -q --q-group-size 32 --dtype float32
    check_mlx "mlx q4 --dequantize" tests/fixtures/models/mlx_q4_g32 --dequantize
    SMOL=${CTUNE_SMOLLM_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
    if [ -f "$SMOL" ]; then
        check_mlx "SmolLM2 GGUF -> f32 (and = ctune on the GGUF)" --vs-source "$SMOL" --dtype float32
        check_mlx "SmolLM2 GGUF -> 4-bit g64" "$SMOL" -q --dtype float32
        check_mlx "SmolLM2 GGUF -> mixed_3_6 g128" "$SMOL" -q --q-group-size 128 --quant-predicate mixed_3_6 --dtype float32
    fi
fi
