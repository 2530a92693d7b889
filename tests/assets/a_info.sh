# ctune info on the real stories260K model (issue acceptance: 260K params, 5 layers, GQA 8/4, tied).
S="$ASSETS/models/stories260K"
expect_out "stories260K: 5 layers" "layers           5" "$CTUNE" info "$S"
expect_out "stories260K: GQA 8/4" "8 query / 4 key-value (GQA 8/4), head dim 8" "$CTUNE" info "$S"
expect_out "stories260K: 260K parameters" "260.0K (260032)" "$CTUNE" info "$S"
expect_out "stories260K: tied embeddings" "tied (lm_head = embed_tokens)" "$CTUNE" info "$S"
expect_out "stories260K: json parameters" '"parameters":	260032' "$CTUNE" info "$S" --json
expect_out "info on a vocab-only GGUF" "vocabulary only" "$CTUNE" info "$ASSETS/vectors/llama.cpp/ggml-vocab-llama-spm.gguf"
expect_fail "info on a gpt2 GGUF names the architecture" 'architecture "gpt2" is not supported' "$CTUNE" info "$ASSETS/vectors/llama.cpp/ggml-vocab-gpt-2.gguf"
