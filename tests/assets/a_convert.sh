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
SMOL=${CTUNE_SMOLLM_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ -f "$SMOL" ]; then
    # The tokenizer.json written from the GGUF vocab encodes as the GGUF tokenizer does.
    "$CTUNE" convert --model "$SMOL" --mlx-path "$TMP/smol-q4" -q >/dev/null 2>&1
    head -c 200000 "$ASSETS/text/wikitext-2-raw-test.txt" > "$TMP/wt200k.txt"
    a=$("$CTUNE" tokenize --model "$SMOL" --file "$TMP/wt200k.txt" --json 2>/dev/null | md5sum)
    b=$("$CTUNE" tokenize --model "$TMP/smol-q4" --file "$TMP/wt200k.txt" --json 2>/dev/null | md5sum)
    expect_ok "convert: GGUF tokenizer -> tokenizer.json, same ids on 200 KB of WikiText" test "$a" = "$b"
    if [ -x "$REF/bin/python" ]; then
        expect_ok "convert: tokenizer.json from the GGUF = in HF tokenizers" "$REF/bin/python" -c "
import json, subprocess, sys, tokenizers
t = tokenizers.Tokenizer.from_file('$TMP/smol-q4/tokenizer.json')
ours = json.loads(subprocess.run(['$CTUNE', 'tokenize', '--model', '$SMOL', '--file', '$TMP/wt200k.txt', '--json'],
                  capture_output=True, text=True).stdout)['ids']
sys.exit(t.encode(open('$TMP/wt200k.txt').read()).ids != ours)"
    fi
    if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
        # mlx_lm.convert itself on a real model: every tensor and config.json identical to ctune's.
        "$CTUNE" convert --model "$SMOL" --mlx-path "$TMP/smol-f32" --dtype float32 >/dev/null 2>&1
        "$CTUNE" convert --model "$TMP/smol-f32" --mlx-path "$TMP/smol-ct" -q --q-bits 3 --q-group-size 32 \
            --quant-predicate mixed_3_6 --dtype float16 >/dev/null 2>&1
        "$REF/bin/python" -m mlx_lm convert --model "$TMP/smol-f32" --mlx-path "$TMP/smol-mlx" -q --q-bits 3 \
            --q-group-size 32 --quant-predicate mixed_3_6 --dtype float16 >/dev/null 2>&1
        expect_ok "convert: SmolLM2 mixed_3_6 g32 f16 = mlx_lm.convert's (all tensors, config)" "$REF/bin/python" -c "
import json, sys, mlx.core as mx
a, b = mx.load('$TMP/smol-mlx/model.safetensors'), mx.load('$TMP/smol-ct/model.safetensors')
same = a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and mx.array_equal(a[k], b[k]).item() for k in a)
ca, cb = (json.load(open(f'{d}/config.json')) for d in ('$TMP/smol-mlx', '$TMP/smol-ct'))
sys.exit(not (same and ca == cb))"
        rm -rf "$TMP/smol-f32" "$TMP/smol-ct" "$TMP/smol-mlx"
    fi
    expect_out "convert: 4-bit SmolLM2 folder runs in ctune perplexity" "Perplexity:" \
        "$CTUNE" perplexity --model "$TMP/smol-q4" --data "$TMP/wt200k.txt" --sequence-length 128 --num-samples 2
fi
