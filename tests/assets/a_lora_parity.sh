# ctune lora against mlx-lm and under SIGKILL (issue 6 acceptance):
# - kill/resume: tests/killresume.sh (20 runs killed at random moments and
#   resumed, adapters byte-identical, no partial file); needs only the binary;
# - with the reference venv (.venv-ref with mlx + mlx-lm): adapter interop
#   (tools/adapter_interop.py) and 20-step training parity (tools/lora_parity.py)
#   on the tiny chat fixture. The SmolLM2-135M variants are run by hand
#   (adapter_interop.py without --smollm2 /nonexistent; lora_parity.py --smollm2).
_suite() { # name, command...: one _record per "N passed, N failed" of a sub-suite
    local name=$1 out line
    shift
    out=$("$@" 2>&1)
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, 0 failed$' | tail -1)
    [ -n "$line" ] && _record 1 "$name: $line" || _record 0 "$name" "$(printf '%s\n' "$out" | grep -E 'FAIL|rror|passed' | head -20)"
}
_suite "lora kill/resume" tests/killresume.sh "$CTUNE" 20
if [ -x .venv-ref/bin/python ] && .venv-ref/bin/python -c 'import mlx_lm' 2>/dev/null; then
    _suite "lora adapters interop with mlx-lm" env OMP_NUM_THREADS=1 .venv-ref/bin/python tools/adapter_interop.py --smollm2 /nonexistent
    _suite "lora training parity with mlx-lm" env OMP_NUM_THREADS=1 .venv-ref/bin/python tools/lora_parity.py
fi
# kill -9 during convert / fuse / quant gptq: outputs never partial, reruns complete.
expect_out "kill -9 during convert/fuse/quant: no partial outputs" ", 0 failed" tests/killfiles.sh "$CTUNE" 5
