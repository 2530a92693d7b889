# ctune fuse end to end: adapters trained by ctune lora on the chat model
# fixture, fused; greedy generation with the fused model equals generation
# with base+adapter; GGUF and PEFT exports; errors.
CM=tests/fixtures/chat_model
FD="$TMP/fuse-data"
mkdir -p "$FD"
for i in 1 2 3 4 5 6 7 8; do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$FD/train.jsonl"
head -4 "$FD/train.jsonl" > "$FD/valid.jsonl"
FARGS="--model $CM --data $FD --batch-size 4 --learning-rate 1e-2 --iters 6 --seed 1 --train"
"$CTUNE" lora $FARGS --adapter-path "$TMP/fuse-lora" >/dev/null 2>&1
"$CTUNE" lora $FARGS --learning-rate 5e-2 --fine-tune-type dora --adapter-path "$TMP/fuse-dora" >/dev/null 2>&1
gen() { "$CTUNE" generate --prompt "count 3" --max-tokens 8 --print-ids "$@" 2>/dev/null | grep '^ids:'; }
for kind in lora dora; do
    expect_out "fuse: $kind adapters" "Fused 14 modules" "$CTUNE" fuse --model $CM --adapter-path "$TMP/fuse-$kind" \
        --save-path "$TMP/fused-$kind"
    a=$(gen --model $CM --adapter-path "$TMP/fuse-$kind"); b=$(gen --model "$TMP/fused-$kind"); c=$(gen --model $CM)
    [ -n "$a" ] && [ "$a" = "$b" ] && _record 1 "fuse: $kind fused model generates as base+adapter" \
        || _record 0 "fuse: $kind fused model generates as base+adapter" "'$a' vs '$b'"
    [ "$a" != "$c" ] && _record 1 "fuse: $kind adapter changes generation (the check has teeth)" \
        || _record 0 "fuse: $kind adapter changes generation (the check has teeth)" "'$a' = base '$c'"
done
for f in config.json model.safetensors model.safetensors.index.json tokenizer.json tokenizer_config.json README.md; do
    [ -s "$TMP/fused-lora/$f" ] && _record 1 "fuse: wrote $f" || _record 0 "fuse: wrote $f" "missing"
done
expect_out "fuse: --export-gguf q8_0 and --export-peft" "Fused 14 modules" "$CTUNE" fuse --model $CM \
    --adapter-path "$TMP/fuse-lora" --save-path "$TMP/fused-g" --export-gguf --gguf-type q8_0 --export-peft "$TMP/fuse-peft"
expect_out "fuse: the GGUF export reads back" "blk.0.attn_q.weight" "$(dirname "$CTUNE")/tools/gguf_dump" "$TMP/fused-g/ggml-model-f16.gguf"
[ -s "$TMP/fuse-peft/adapter_model.safetensors" ] && grep -q '"lora_alpha"' "$TMP/fuse-peft/adapter_config.json" \
    && _record 1 "fuse: PEFT export files" || _record 0 "fuse: PEFT export files" "missing"
a=$(gen --model $CM --adapter-path "$TMP/fuse-lora"); b=$(gen --model $CM --adapter-path "$TMP/fuse-peft")
[ "$a" = "$b" ] && _record 1 "fuse: PEFT export generates as the mlx adapters" || _record 0 "fuse: PEFT export generates as the mlx adapters" "'$a' vs '$b'"
expect_fail "fuse: missing adapter folder" "adapter path does not exist" "$CTUNE" fuse --model $CM \
    --adapter-path "$TMP/fuse-none" --save-path "$TMP/fused-x"
expect_fail "fuse: adapter of another model names the tensor" "model.layers.0.mlp.down_proj.lora_a" "$CTUNE" fuse \
    --model tests/fixtures/models/llama_h64 --adapter-path "$TMP/fuse-lora" --save-path "$TMP/fused-x"
[ ! -e "$TMP/fused-x" ] && _record 1 "fuse: nothing left behind on error" || _record 0 "fuse: nothing left behind on error" "$TMP/fused-x exists"
expect_fail "fuse: existing save path" "already exists" "$CTUNE" fuse --model $CM --adapter-path "$TMP/fuse-lora" \
    --save-path "$TMP/fused-lora"
mkdir -p "$TMP/ro" && chmod 555 "$TMP/ro"
if [ "$(id -u)" != 0 ]; then
    expect_fail "fuse: non-writable output" "cannot create" "$CTUNE" fuse --model $CM --adapter-path "$TMP/fuse-lora" \
        --save-path "$TMP/ro/out"
fi
expect_fail "fuse: non-writable output (a file in the way)" "config.json: exists and is not a directory" "$CTUNE" fuse --model $CM \
    --adapter-path "$TMP/fuse-lora" --save-path "$TMP/fused-lora/config.json/out"
expect_fail "fuse: quantized base to GGUF needs --dequantize" "--dequantize" "$CTUNE" fuse \
    --model tests/fixtures/models/mlx_q4_g32 --adapter-path "$TMP/fuse-lora" --save-path "$TMP/fused-q" --export-gguf
expect_fail "fuse: bad --gguf-type" "gguf-type" "$CTUNE" fuse --model $CM --export-gguf --gguf-type q5_k
expect_out "fuse: --help lists flags" "--dequantize" "$CTUNE" fuse --help
