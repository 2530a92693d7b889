# GGUF reader on llama.cpp's vocab-only files (sourced by tests/assets.sh).
# Each opens without error, reports its tokenizer.ggml.model, and has a token list.
GGUF_DUMP=build/tools/gguf_dump
gguf_expected_model() {
    case $(basename "$1") in
        ggml-vocab-gpt-2.gguf) echo gpt2 ;;
        ggml-vocab-llama-spm.gguf | ggml-vocab-phi-3.gguf) echo llama ;;
        *) echo "" ;;
    esac
}
for f in "$ASSETS"/vectors/llama.cpp/*.gguf; do
    [ -e "$f" ] || continue
    model=$(gguf_expected_model "$f")
    expect_out "gguf open $(basename "$f")" "kv tokenizer.ggml.model string = \"$model" "$GGUF_DUMP" "$f"
    expect_out "gguf tokens $(basename "$f")" "kv tokenizer.ggml.tokens array[string]" "$GGUF_DUMP" "$f"
done
