# Gemma 3 270M (Q4_K_M GGUF, fetched into models/ by scripts/fetch-gemma.sh;
# or $CTUNE_GEMMA_GGUF) against transformers
# (tests/fixtures/gemma/gemma3_270m_reference.json from tools/make_gemma_fixtures.py):
# logits and WikiText token ids of ctune on the GGUF and on its converted
# folder (tools/check_gemma.py, relative tolerance 1e-4 of max |logit|), and
# the converted folders in mlx-lm (tools/check_convert_mlx.py). Skipped without the file.
GEMMA=${CTUNE_GEMMA_GGUF:-models/gemma-3-270m-q4_k_m.gguf}
if [ -f "$GEMMA" ]; then
    expect_ok "gemma3 GGUF: logits and WikiText ids = transformers'" .venv/bin/python tools/check_gemma.py "$GEMMA"
    "$CTUNE" convert --model "$GEMMA" --mlx-path "$TMP/gemma-f32" --dtype float32 >/dev/null 2>&1
    expect_ok "gemma3 GGUF -> f32 folder: logits and WikiText ids = transformers'" \
        .venv/bin/python tools/check_gemma.py "$TMP/gemma-f32"
    head -c 100000 "$ASSETS/text/wikitext-2-raw-test.txt" > "$TMP/wt100k.txt"
    REF=${CTUNE_VENV_REF:-/work/main/.venv-ref}
    if [ -x "$REF/bin/python" ]; then
        expect_ok "gemma3 folder tokenizer.json = HF tokenizers on 100 KB of WikiText" "$REF/bin/python" -c "
import json, subprocess, sys, tokenizers
t = tokenizers.Tokenizer.from_file('$TMP/gemma-f32/tokenizer.json')
ours = json.loads(subprocess.run(['$CTUNE', 'tokenize', '--model', '$TMP/gemma-f32', '--file', '$TMP/wt100k.txt', '--json'],
                  capture_output=True, text=True).stdout)['ids']
sys.exit(t.encode(open('$TMP/wt100k.txt').read()).ids != ours)"
    fi
    rm -rf "$TMP/gemma-f32"
    expect_out "gemma3 GGUF perplexity" "Perplexity:" \
        "$CTUNE" perplexity --model "$GEMMA" --data "$TMP/wt100k.txt" --sequence-length 128 --num-samples 2
    if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
        # mlx-lm's gemma3_text rounds the embedding scale sqrt(hidden) to bfloat16
        # (sqrt(640) = 25.298 -> 25.25, 0.19%); ctune and transformers do not. On
        # this model that moves logits by ~1% of max |logit| (random ids), hence
        # the 2e-2 bar here; the tiny model (sqrt(64) = 8, exact) agrees to 3e-7.
        expect_ok "gemma3 GGUF -> f32 in mlx-lm (and = ctune on the GGUF)" "$REF/bin/python" tools/check_convert_mlx.py \
            --bin build --tol 2e-2 --vs-source "$GEMMA" --dtype float32
        expect_ok "gemma3 GGUF -> 4-bit g64 in mlx-lm" "$REF/bin/python" tools/check_convert_mlx.py --bin build \
            --tol 2e-2 "$GEMMA" -q --dtype float32
    fi
    if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import mlx_lm' 2>/dev/null; then
        expect_ok "tiny gemma3 GGUF -> f32 in mlx-lm (and = ctune on the GGUF)" "$REF/bin/python" \
            tools/check_convert_mlx.py --bin build --vs-source tests/fixtures/gemma/tiny_gemma3.gguf --dtype float32
        expect_ok "tiny gemma3 GGUF -> 4-bit g64 in mlx-lm" "$REF/bin/python" tools/check_convert_mlx.py --bin build \
            tests/fixtures/gemma/tiny_gemma3.gguf -q --dtype float32
    fi
fi
