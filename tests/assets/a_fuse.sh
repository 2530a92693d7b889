# ctune fuse against the reference packages (sourced by tests/assets.sh; skipped
# without the reference venv): tools/check_fuse.py (fuse math, transformers
# logits, GGUF exports read back by the gguf package) and tools/check_peft.py
# (PEFT export in peft, peft-made adapters in ctune) on the tiny fixtures (qwen2
# and qwen3 converted to float32 first), and on SmolLM2-135M (Q4_1 GGUF) when
# present: fuse a ctune-trained adapter, export GGUF, compare the tokenizer keys.
REF=${CTUNE_VENV_REF:-/work/main/.venv-ref}
if [ -x "$REF/bin/python" ] && "$REF/bin/python" -c 'import peft, gguf, transformers' 2>/dev/null; then
    expect_ok "fuse: check_fuse llama lora" "$REF/bin/python" tools/check_fuse.py --bin build
    expect_ok "fuse: check_fuse llama dora" "$REF/bin/python" tools/check_fuse.py --bin build --dora
    for m in qwen2 qwen3; do
        "$CTUNE" convert --model tests/fixtures/models/$m --mlx-path "$TMP/fuse-$m-f32" --dtype float32 >/dev/null 2>&1
        expect_ok "fuse: check_fuse $m dora" "$REF/bin/python" tools/check_fuse.py --bin build --model "$TMP/fuse-$m-f32" --dora
    done
    expect_ok "fuse: check_peft (export and import, lora and dora)" "$REF/bin/python" tools/check_peft.py --bin build
    SMOL=${CTUNE_SMOLLM_GGUF:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
    if [ -f "$SMOL" ]; then
        mkdir -p "$TMP/fuse-smol-data"
        for i in 1 2 3 4; do printf '{"text": "count %d and then some words"}\n' $i; done > "$TMP/fuse-smol-data/train.jsonl"
        cp "$TMP/fuse-smol-data/train.jsonl" "$TMP/fuse-smol-data/valid.jsonl"
        "$CTUNE" lora --model "$SMOL" --data "$TMP/fuse-smol-data" --train --iters 2 --batch-size 1 --num-layers 2 \
            --learning-rate 1e-3 --adapter-path "$TMP/fuse-smol-a" >/dev/null 2>&1
        expect_out "fuse: SmolLM2 GGUF base, Q8_0 GGUF export" "Fused 14 modules" "$CTUNE" fuse --model "$SMOL" \
            --adapter-path "$TMP/fuse-smol-a" --save-path "$TMP/fuse-smol" --export-gguf --gguf-type q8_0
        expect_out "fuse: SmolLM2 folder base (tokenizer.json), F16 GGUF export" "Fused 14 modules" "$CTUNE" fuse \
            --model "$TMP/fuse-smol" --adapter-path "$TMP/fuse-smol-a" --save-path "$TMP/fuse-smol2" --export-gguf
        KEYS=tokenizer.ggml.model,tokenizer.ggml.pre,tokenizer.ggml.tokens,tokenizer.ggml.token_type,tokenizer.ggml.merges,tokenizer.ggml.bos_token_id,tokenizer.ggml.eos_token_id,tokenizer.chat_template
        for g in "$TMP/fuse-smol/ggml-model-f16.gguf" "$TMP/fuse-smol2/ggml-model-f16.gguf"; do
            expect_ok "fuse: GGUF export's tokenizer = the source GGUF's ($(basename "$(dirname "$g")"))" \
                "$REF/bin/python" -c "
import sys
from gguf import GGUFReader
def fields(p):
    out = {}
    for k, f in GGUFReader(p).fields.items():
        out[k] = [bytes(f.parts[i]) if f.types[-1].name == 'STRING' else f.parts[i].tolist() for i in f.data]
    return out
a, b = fields('$SMOL'), fields('$g')
bad = [k for k in '$KEYS'.split(',') if k not in a or a.get(k) != b.get(k)]
print(bad); sys.exit(1 if bad else 0)"
        done
        a=$("$CTUNE" generate --model "$SMOL" --adapter-path "$TMP/fuse-smol-a" --prompt "count 3" --max-tokens 8 --print-ids 2>/dev/null | grep "^ids:")
        b=$("$CTUNE" generate --model "$TMP/fuse-smol" --prompt "count 3" --max-tokens 8 --print-ids 2>/dev/null | grep "^ids:")
        [ -n "$a" ] && [ "$a" = "$b" ] && _record 1 "fuse: SmolLM2 fused generates as GGUF+adapter" \
            || _record 0 "fuse: SmolLM2 fused generates as GGUF+adapter" "'$a' vs '$b'"
    fi
fi
