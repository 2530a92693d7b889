# ctune quant dynamic (the arithmetic, the search and the sensitivities file
# are unit-tested in tests/unit/test_dynamic_quant.c).
DQ="$TMP/dynamic"
mkdir -p "$DQ"
M=tests/fixtures/chat_model
DQ_FLAGS="--low-bits 2 --low-group-size 32 --high-bits 8 --high-group-size 32"
# A hand-made sensitivities file for the chat model's 15 modules.
{
    printf '['; v=1; sep=''
    for m in model.embed_tokens $(for l in 0 1; do for p in mlp.down_proj mlp.gate_proj mlp.up_proj \
        self_attn.k_proj self_attn.o_proj self_attn.q_proj self_attn.v_proj; do echo "model.layers.$l.$p"; done; done); do
        printf '%s["%s", %s]' "$sep" "$m" "$v"; sep=', '; v=$((v * 3 % 17))
    done
    printf ']\n'
} > "$DQ/hand.json"
expect_out "quant dynamic: given sensitivities" "7 of 15 modules at 8-bit group 32" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/h" --sensitivities "$DQ/hand.json" $DQ_FLAGS --target-bpw 6
expect_out "quant dynamic: the most sensitive module is high" $'"bits":\t8' \
    grep -A2 '"model.layers.1.mlp.down_proj"' "$DQ/h/config.json"
expect_ok "quant dynamic: the least sensitive one is not listed" \
    sh -c "! grep -q model.embed_tokens '$DQ/h/config.json'"
expect_out "quant dynamic: the output generates" "ids:" \
    "$CTUNE" generate --model "$DQ/h" --prompt-ids 1,2,3 --max-tokens 2 --print-ids

expect_fail "quant dynamic: target below all-low" "4.1399 bits per weight all low and 10.1099 all high" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --sensitivities "$DQ/hand.json" $DQ_FLAGS --target-bpw 3
expect_fail "quant dynamic: target above all-high" "cannot be reached" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --sensitivities "$DQ/hand.json" $DQ_FLAGS --target-bpw 11
expect_fail "quant dynamic: an unreachable target fails before estimating" "cannot be reached" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --data README.md --sequence-length 64 \
    --sensitivities-out "$DQ/never.json" $DQ_FLAGS --target-bpw 2
expect_ok "quant dynamic: no sensitivities file for an unreachable target" test ! -e "$DQ/never.json"
sed 's/model.layers.1.mlp.up_proj/model.layers.7.mlp.up_proj/' "$DQ/hand.json" > "$DQ/unknown.json"
expect_fail "quant dynamic: unknown module in the file" "unknown.json: entry 11: 'model.layers.7.mlp.up_proj' is not" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --sensitivities "$DQ/unknown.json" $DQ_FLAGS
printf '[["model.embed_tokens", "high"]]' > "$DQ/badval.json"
expect_fail "quant dynamic: bad entry" "badval.json: entry 1: expected [module path, number]" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --sensitivities "$DQ/badval.json"
expect_fail "quant dynamic: no data" "calibration data is needed: --data" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x"
expect_fail "quant dynamic: --report-ppl needs data" "for --report-ppl" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --sensitivities "$DQ/hand.json" --report-ppl
expect_fail "quant dynamic: 7 bits" "7 bits" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --high-bits 7 --data README.md
expect_fail "quant dynamic: bad target" "not a number" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/x" --target-bpw five --data README.md
expect_fail "quant dynamic: output exists" "already exists" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/h" --sensitivities "$DQ/hand.json"
expect_fail "quant dynamic: a quantized model" "already quantized" \
    "$CTUNE" quant dynamic --model "$DQ/h" --mlx-path "$DQ/x" --sensitivities "$DQ/hand.json"
expect_ok "quant dynamic: nothing left behind on failure" test ! -e "$DQ/x"

# Estimated sensitivities (KL against the float model on README.md).
DQ_CAL="--data README.md --sequence-length 64 --num-samples 6 --batch-size 4"
expect_out "quant dynamic: estimates and saves sensitivities" "Saved sensitivities of 15 modules to $DQ/est.json" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/e" $DQ_CAL $DQ_FLAGS --target-bpw 7 \
    --sensitivities-out "$DQ/est.json"
expect_out "quant dynamic: reusing them gives the same split" "3 of 15 modules" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/e2" --sensitivities "$DQ/est.json" $DQ_FLAGS --target-bpw 7
expect_ok "quant dynamic: ... and the same folder" cmp "$DQ/e/model.safetensors" "$DQ/e2/model.safetensors"
expect_out "quant dynamic: gradient checkpointing changes nothing" "Saved sensitivities" \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/e3" $DQ_CAL $DQ_FLAGS --target-bpw 7 --grad-checkpoint \
    --sensitivities-out "$DQ/est_ckpt.json"
expect_ok "quant dynamic: ... the same sensitivities" cmp "$DQ/est.json" "$DQ/est_ckpt.json"
expect_out "quant dynamic: --report-ppl" "Quantized PPL: " \
    "$CTUNE" quant dynamic --model $M --mlx-path "$DQ/p" --sensitivities "$DQ/est.json" $DQ_CAL $DQ_FLAGS \
    --target-bpw 7 --report-ppl
M_ABS=$(pwd)/$M
expect_out "quant dynamic: mlx-lm's default sensitivities file" "$(printf '%s' "$M_ABS" | tr / _)_sensitivities.json" \
    sh -c "cd '$DQ' && '$CTUNE' quant dynamic --model '$M_ABS' --mlx-path d $DQ_CAL --data '$(pwd)/README.md' $DQ_FLAGS \
    --target-bpw 7"
expect_ok "quant dynamic: ... written in the current folder" \
    test -s "$DQ/$(printf '%s' "$M_ABS" | tr / _)_sensitivities.json"
