# Tokenizer checks on real files in ../shared/assets: exact ids on the llama.cpp
# and swift-transformers vectors, and ids identical to Hugging Face `tokenizers`
# (.venv) on > 2 MB of text (tinyshakespeare + wikitext + multilingual lines)
# for every tokenizer.json in assets/tokenizers.
if [ -d "$ASSETS/vectors" ]; then
    expect_out "tokenizer vectors (llama.cpp, swift-transformers)" ", 0 failed" \
        .venv/bin/python tests/assets/tokenizer_vectors.py "$CTUNE" "$ASSETS"
fi
for tokjson in "$ASSETS"/tokenizers/*/tokenizer.json; do
    [ -e "$tokjson" ] || continue
    expect_out "tokenizer vs HF: $(basename "$(dirname "$tokjson")")" "0 mismatching lines" \
        .venv/bin/python tests/assets/tokenizer_compare.py "$CTUNE" "$tokjson" \
        "$ASSETS/datasets/tinyshakespeare/input.txt" "$ASSETS/text/wikitext-2-raw-test.txt"
done
