# Bad-input suite (issue 10): failures a user can cause that the other t_*.sh
# files do not already cover. Each case: clear message, non-zero exit, no crash
# (expect_fail), and where the command writes, no output left behind.
BI="$TMP/badinput"
CM=tests/fixtures/chat_model
mkdir -p "$BI/data"
for i in 1 2 3 4 5 6 7 8; do
    printf '{"text": "count %d a b c d e f g"}\n' $i
done > "$BI/data/train.jsonl"
head -2 "$BI/data/train.jsonl" > "$BI/data/valid.jsonl"
printf 'hello world this is a long text about counting %.0s' $(seq 1 60) > "$BI/text.txt"
BARGS="--data $BI/data --train --iters 2 --batch-size 2 --seed 1"
absent() { # name, path: the path must not exist
    [ ! -e "$2" ] && _record 1 "$1" || _record 0 "$1" "$2 exists: $(ls -la "$2" 2>&1 | head -5)"
}
# A copy of the chat model with one file replaced by an empty one.
with_empty() { # folder name, file
    mkdir -p "$BI/$1" && cp $CM/* "$BI/$1/" && : > "$BI/$1/$2"
}

# Mismatched tokenizer and model vocabulary: a 418-token tokenizer on a
# 128-token model; ids past 128 are refused, naming the id and the vocab size.
mkdir -p "$BI/mismatch"
cp tests/fixtures/models/llama_default/config.json tests/fixtures/models/llama_default/model.safetensors "$BI/mismatch/"
cp tests/fixtures/encode/tokenizer.json tests/fixtures/encode/tokenizer_config.json "$BI/mismatch/"
expect_fail "vocab mismatch: generate names the id and vocab" "is outside the vocabulary (128)" \
    "$CTUNE" generate --model "$BI/mismatch" --prompt "hello world zebra quantum" --max-tokens 2
expect_fail "vocab mismatch: perplexity" "outside the vocabulary (128)" \
    "$CTUNE" perplexity --model "$BI/mismatch" --data "$BI/text.txt" --sequence-length 32
mkdir -p "$BI/zebra"
for i in 1 2 3 4; do printf '{"text": "hello world zebra quantum %d"}\n' $i; done > "$BI/zebra/train.jsonl"
expect_fail "vocab mismatch: lora training" "outside the vocabulary (128)" \
    "$CTUNE" lora --model "$BI/mismatch" --data "$BI/zebra" --train --iters 2 --batch-size 2 --adapter-path "$BI/mismatch-ad"
absent "vocab mismatch: lora leaves no adapters" "$BI/mismatch-ad/adapters.safetensors"

# Sequences longer than max_seq_length are truncated with a warning naming file:line.
err=$("$CTUNE" lora --model $CM $BARGS --max-seq-length 4 --adapter-path "$BI/trunc" 2>&1 >/dev/null); rc=$?
[ $rc -eq 0 ] && printf '%s' "$err" | grep -q 'train.jsonl:[0-9]*: example of [0-9]* tokens truncated to max_seq_length 4' \
    && _record 1 "long sequence: truncated with a file:line warning" \
    || _record 0 "long sequence: truncated with a file:line warning" "exit $rc: $err"
expect_fail "long sequence: perplexity window past the data" "fewer than one window" \
    "$CTUNE" perplexity --model $CM --data "$BI/text.txt" --sequence-length 100000

# NaN loss: a huge learning rate blows the weights up; training stops naming
# the iteration, and no adapters file is written from the broken weights.
expect_fail "NaN loss: stops with the iteration" "the training loss is" \
    "$CTUNE" lora --model $CM --data "$BI/data" --train --iters 6 --batch-size 2 --learning-rate 1e25 --adapter-path "$BI/nan"
absent "NaN loss: no adapters written" "$BI/nan/adapters.safetensors"
expect_fail "NaN learning rate" "not a valid learning rate" \
    "$CTUNE" lora --model $CM $BARGS --learning-rate nan --adapter-path "$BI/nanlr"

# Inconsistent shapes between adapter and model.
expect_fail "adapter of another model: generate names the tensor" "lora_a" \
    "$CTUNE" generate --model tests/fixtures/models/llama_h64 --adapter-path "$BI/trunc" --prompt-ids 1,2 --max-tokens 1
mkdir -p "$BI/rank"
cp "$BI/trunc/adapters.safetensors" "$BI/rank/"
sed 's/"rank":[^,]*/"rank": 16/' "$BI/trunc/adapter_config.json" > "$BI/rank/adapter_config.json"
expect_fail "adapter rank differs from adapter_config.json" "lora_a" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/rank" --prompt-ids 1,2 --max-tokens 1
expect_fail "adapter rank mismatch: fuse" "lora_a" \
    "$CTUNE" fuse --model $CM --adapter-path "$BI/rank" --save-path "$BI/rank-fused"
absent "adapter rank mismatch: fuse leaves nothing" "$BI/rank-fused"

# Empty files of each kind: the message names the file.
with_empty e-config config.json
expect_fail "empty config.json" "e-config/config.json:1:1: malformed JSON" "$CTUNE" info "$BI/e-config"
with_empty e-tok tokenizer.json
expect_fail "empty tokenizer.json" "e-tok/tokenizer.json:1:1" "$CTUNE" generate --model "$BI/e-tok" --prompt hi --max-tokens 1
with_empty e-tokcfg tokenizer_config.json
expect_fail "empty tokenizer_config.json" "e-tokcfg/tokenizer_config.json:1:1" \
    "$CTUNE" generate --model "$BI/e-tokcfg" --prompt hi --max-tokens 1
with_empty e-st model.safetensors
expect_fail "empty model.safetensors" "model.safetensors: file is 0 bytes" "$CTUNE" info "$BI/e-st"
expect_fail "empty model.safetensors: convert" "model.safetensors: file is 0 bytes" \
    "$CTUNE" convert --model "$BI/e-st" --mlx-path "$BI/e-st-out" -q
absent "empty model.safetensors: convert leaves nothing" "$BI/e-st-out"
: > "$BI/empty.safetensors"
expect_fail "empty .safetensors file" "empty.safetensors: file is 0 bytes" "$CTUNE" info "$BI/empty.safetensors"
: > "$BI/empty.gguf"
expect_fail "empty .gguf: info" "empty.gguf: file of 0 bytes" "$CTUNE" info "$BI/empty.gguf"
expect_fail "empty .gguf: generate" "empty.gguf" "$CTUNE" generate --model "$BI/empty.gguf" --prompt-ids 1 --max-tokens 1
mkdir -p "$BI/e-train"
: > "$BI/e-train/train.jsonl"
expect_fail "empty train.jsonl" "Training set not found or empty" \
    "$CTUNE" lora --model $CM --data "$BI/e-train" --train --adapter-path "$BI/e-train-ad"
mkdir -p "$BI/e-valid"
cp "$BI/data/train.jsonl" "$BI/e-valid/"
: > "$BI/e-valid/valid.jsonl"
# (as mlx-lm: an empty validation set is a warning, training goes on)
err=$("$CTUNE" lora --model $CM --data "$BI/e-valid" --train --iters 2 --batch-size 2 --adapter-path "$BI/e-valid-ad" 2>&1 >/dev/null); rc=$?
[ $rc -eq 0 ] && printf '%s' "$err" | grep -q 'warning: Validation set not found or empty' \
    && _record 1 "empty valid.jsonl: a warning, training proceeds" \
    || _record 0 "empty valid.jsonl: a warning, training proceeds" "exit $rc: $err"
: > "$BI/empty.yaml"
expect_ok "empty YAML config: no options, the flags still apply" \
    "$CTUNE" lora -c "$BI/empty.yaml" --model $CM $BARGS --adapter-path "$BI/e-yaml-ad"
printf 'just a string\n' > "$BI/scalar.yaml"
expect_fail "YAML config that is not a mapping" "scalar.yaml" \
    "$CTUNE" lora -c "$BI/scalar.yaml" --model $CM $BARGS --adapter-path "$BI/scalar-ad"
mkdir -p "$BI/e-ad"
cp "$BI/trunc/adapter_config.json" "$BI/e-ad/" && : > "$BI/e-ad/adapters.safetensors"
expect_fail "empty adapters.safetensors" "adapters.safetensors: file is 0 bytes" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/e-ad" --prompt-ids 1,2 --max-tokens 1
mkdir -p "$BI/e-adcfg"
cp "$BI/trunc/adapters.safetensors" "$BI/e-adcfg/" && : > "$BI/e-adcfg/adapter_config.json"
expect_fail "empty adapter_config.json" "adapter_config.json:1:1" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/e-adcfg" --prompt-ids 1,2 --max-tokens 1
: > "$BI/empty.txt"
expect_fail "empty perplexity text" "empty.txt" "$CTUNE" perplexity --model $CM --data "$BI/empty.txt"
expect_fail "empty calibration text" "calibration data is empty" \
    "$CTUNE" quant gptq --model $CM --data "$BI/empty.txt" --mlx-path "$BI/e-cal-out"
absent "empty calibration text: nothing written" "$BI/e-cal-out"

# Unsupported architecture, through the commands that load a model.
mkdir -p "$BI/arch"
cp $CM/* "$BI/arch/"
sed 's/"model_type": "llama"/"model_type": "bogus_arch"/' $CM/config.json > "$BI/arch/config.json"
expect_fail "unsupported architecture: generate" "bogus_arch" "$CTUNE" generate --model "$BI/arch" --prompt-ids 1 --max-tokens 1
expect_fail "unsupported architecture: lora" "bogus_arch" "$CTUNE" lora --model "$BI/arch" $BARGS --adapter-path "$BI/arch-ad"
absent "unsupported architecture: lora writes nothing" "$BI/arch-ad/adapters.safetensors"
expect_fail "unsupported architecture: convert" "bogus_arch" "$CTUNE" convert --model "$BI/arch" --mlx-path "$BI/arch-out"
absent "unsupported architecture: convert writes nothing" "$BI/arch-out"
grep -v model_type $CM/config.json > "$BI/arch/config.json"
expect_fail "config.json without model_type" "model_type" "$CTUNE" info "$BI/arch"

# Non-writable output (a regular file in the path: chmod does not stop root).
printf 'x' > "$BI/afile"
expect_fail "non-writable output: lora adapter path" "afile" \
    "$CTUNE" lora --model $CM $BARGS --adapter-path "$BI/afile/ad"
expect_fail "non-writable output: quant gptq" "afile" \
    "$CTUNE" quant gptq --model $CM --data "$BI/text.txt" --mlx-path "$BI/afile/q"
expect_fail "non-writable output: /proc" "/proc" \
    "$CTUNE" convert --model $CM --mlx-path /proc/ctune-out -q

# Disk full: a file size limit (ulimit -f, in KiB) makes writes fail with EFBIG
# once SIGXFSZ is ignored. The message says why; no output folder is left.
limited() { (trap '' XFSZ; ulimit -f 20; "$@"); }
expect_fail "disk full: convert says why" "File too large" limited "$CTUNE" convert --model $CM --mlx-path "$BI/full-cv"
absent "disk full: convert leaves nothing" "$BI/full-cv"
expect_fail "disk full: quant gptq says why" "File too large" \
    limited "$CTUNE" quant gptq --model $CM --data "$BI/text.txt" --mlx-path "$BI/full-q"
absent "disk full: quant gptq leaves nothing" "$BI/full-q"
expect_fail "disk full: fuse says why" "File too large" \
    limited "$CTUNE" fuse --model $CM --adapter-path "$BI/trunc" --save-path "$BI/full-fuse"
absent "disk full: fuse leaves nothing" "$BI/full-fuse"
expect_fail "disk full: lora adapters" "File too large" \
    sh -c "trap '' XFSZ; ulimit -f 1; exec '$CTUNE' lora --model $CM $BARGS --adapter-path '$BI/full-ad'"
absent "disk full: lora leaves no adapters file" "$BI/full-ad/adapters.safetensors"
left=$(find "$BI" -name '*.tmp*' | head -3)
[ -z "$left" ] && _record 1 "bad input: no temp files left anywhere" || _record 0 "bad input: no temp files left anywhere" "$left"

# Malformed (not empty) files of each kind: the message names the file, and
# the line where a text format has lines.
with_bad() { # folder name, file, content
    mkdir -p "$BI/$1" && cp $CM/* "$BI/$1/" && printf '%b' "$3" > "$BI/$1/$2"
}
with_bad m-config config.json '{\n  "model_type": "llama",\n  "hidden_size": 32,,\n}\n'
expect_fail "malformed config.json: file:line" "m-config/config.json:3:" "$CTUNE" info "$BI/m-config"
with_bad m-tok tokenizer.json '{"model": {"type": "BPE",\n "vocab": [1, 2}\n}\n'
expect_fail "malformed tokenizer.json: file:line" "m-tok/tokenizer.json:2:" \
    "$CTUNE" generate --model "$BI/m-tok" --prompt hi --max-tokens 1
with_bad m-tokcfg tokenizer_config.json '{"chat_template": "x",\n "eos_token": }\n'
expect_fail "malformed tokenizer_config.json: file:line" "m-tokcfg/tokenizer_config.json:2:" \
    "$CTUNE" generate --model "$BI/m-tokcfg" --prompt hi --max-tokens 1
with_bad m-st model.safetensors '\xff\xff\xff\xff\xff\xff\x00\x00{"a": 1}'
expect_fail "malformed model.safetensors: header length past the end" "m-st/model.safetensors" "$CTUNE" info "$BI/m-st"
printf 'GGUX\x03\x00\x00\x00' > "$BI/bad-magic.gguf"
expect_fail "malformed .gguf: bad magic" "bad-magic.gguf" "$CTUNE" info "$BI/bad-magic.gguf"
printf 'iters: 2\nlora_parameters: {rank: 4\nseed: 1\n' > "$BI/unclosed.yaml"
expect_fail "malformed YAML: file:line" "unclosed.yaml:" \
    "$CTUNE" lora -c "$BI/unclosed.yaml" --model $CM $BARGS --adapter-path "$BI/unclosed-ad"
mkdir -p "$BI/m-valid"
cp "$BI/data/train.jsonl" "$BI/m-valid/"
printf '{"text": "fine"}\n{"text": \n' > "$BI/m-valid/valid.jsonl"
expect_fail "malformed valid.jsonl: file:line" "valid.jsonl:2" \
    "$CTUNE" lora --model $CM --data "$BI/m-valid" --train --iters 2 --batch-size 2 --seed 1 --adapter-path "$BI/m-valid-ad"
absent "malformed valid.jsonl: no adapters written" "$BI/m-valid-ad/adapters.safetensors"
mkdir -p "$BI/m-adcfg"
cp "$BI/trunc/adapters.safetensors" "$BI/m-adcfg/" && printf '{"fine_tune_type": "lora",\n "num_layers": 2,\n "lora_parameters": {"rank": }}\n' > "$BI/m-adcfg/adapter_config.json"
expect_fail "malformed adapter_config.json: file:line" "m-adcfg/adapter_config.json:3:" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/m-adcfg" --prompt-ids 1,2 --max-tokens 1
mkdir -p "$BI/m-ad"
cp "$BI/trunc/adapter_config.json" "$BI/m-ad/" && printf '\x10\x00\x00\x00\x00\x00\x00\x00{"x": [1, 2, 3]}' > "$BI/m-ad/adapters.safetensors"
expect_fail "malformed adapters.safetensors" "m-ad/adapters.safetensors" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/m-ad" --prompt-ids 1,2 --max-tokens 1
mkdir -p "$BI/m-peft"
cp tests/fixtures/adapters/chat_peft/adapter_model.safetensors "$BI/m-peft/" && printf '{"peft_type": "LORA", "r": 2,\n "lora_alpha": "x"}\n' > "$BI/m-peft/adapter_config.json"
expect_fail "malformed PEFT adapter_config.json names the key" "lora_alpha" \
    "$CTUNE" generate --model $CM --adapter-path "$BI/m-peft" --prompt-ids 1,2 --max-tokens 1

# Past max_position_embeddings (256 for the chat model): allowed, as in mlx-lm
# and transformers (RoPE has no position table); the output is still finite.
expect_out "prompt longer than max_position_embeddings: generates" "Generation: 4 tokens" \
    "$CTUNE" generate --model $CM --prompt-ids "$(seq -s, 1 300)" --max-tokens 4 --temp 0
