#!/bin/bash
# Kill -9 during file-writing commands: `ctune convert`, `ctune fuse` and
# `ctune quant gptq` on the tiny chat fixture, each killed with SIGKILL at a
# random moment in [0, 1.2 x its uninterrupted time], RUNS times. After each
# kill the output folder either does not exist or is complete: `ctune info`
# loads it and every file is byte-identical to an uninterrupted run's. Then a
# rerun (into the same path, when the kill left none) must complete and match,
# and no temp folder or file may be left beside the output: the rerun removes
# the "<out>.tmp-<pid>-XXXXXX" folder the killed process left (its PID is dead).
#
# usage: tests/killfiles.sh [CTUNE] [RUNS]   (from anywhere; default build/ctune, 10 runs each)
# Needs only bash and the binary. Prints one line per run and "N passed, N failed";
# exits non-zero on a failure. About 30 s with the default build.
set -u
cd "$(dirname "$0")/.."
CTUNE=$(realpath "${1:-build/ctune}")
RUNS=${2:-10}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TMP=$(mktemp -d /tmp/ctune-killfiles-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0
CM=tests/fixtures/chat_model

# Adapters for fuse: a short training run.
D="$TMP/data"
mkdir -p "$D"
for i in 1 2 3 4 5 6 7 8; do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$D/train.jsonl"
head -4 "$D/train.jsonl" > "$D/valid.jsonl"
"$CTUNE" lora --model $CM --data "$D" --train --iters 4 --batch-size 4 --seed 1 --adapter-path "$TMP/adapters" \
    >/dev/null 2>&1 || { echo "training the adapters failed"; echo "0 passed, 1 failed"; exit 1; }

# The command line of each tool, writing to $1. `exec`: run in the background,
# the function is a subshell, and SIGKILL must reach ctune itself.
cmd_convert() { exec "$CTUNE" convert --model $CM --mlx-path "$1" -q --q-group-size 32; }
cmd_fuse() { exec "$CTUNE" fuse --model $CM --adapter-path "$TMP/adapters" --save-path "$1" --export-gguf --gguf-type q8_0; }
cmd_gptq() {
    exec "$CTUNE" quant gptq --model $CM --mlx-path "$1" --group-size 32 --data README.md --sequence-length 64 --num-samples 8
}

now_ms() { date +%s%3N; }

# "" when folder $1 is complete (loads, same files and bytes as reference $2).
check_complete() { # out, ref
    "$CTUNE" info "$1" >/dev/null 2>&1 || { echo "does not load"; return; }
    local a b
    a=$(cd "$1" && find . -type f | sort) b=$(cd "$2" && find . -type f | sort)
    [ "$a" = "$b" ] || { echo "file list differs: $(echo $a) vs $(echo $b)"; return; }
    local f
    for f in $b; do
        cmp -s "$1/$f" "$2/$f" || { echo "$f differs from the uninterrupted run's"; return; }
    done
}

for tool in convert fuse gptq; do
    t0=$(now_ms)
    ("cmd_$tool" "$TMP/$tool-ref") >"$TMP/out" 2>&1 || { echo "uninterrupted $tool failed: $(tail -2 "$TMP/out")"; FAIL=$((FAIL + 1)); continue; }
    ref_ms=$(($(now_ms) - t0))
    [ "$ref_ms" -lt 20 ] && ref_ms=20
    echo "uninterrupted $tool: $ref_ms ms"
    killed=0 stale=0
    for run in $(seq 1 "$RUNS"); do
        O="$TMP/$tool-$run"
        "cmd_$tool" "$O" >"$TMP/out" 2>&1 &
        pid=$!
        delay=$((RANDOM * ref_ms * 12 / 10 / 32768))
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        state="finished"
        if kill -0 $pid 2>/dev/null; then
            kill -KILL $pid 2>/dev/null
            state="killed at $delay ms"
            killed=$((killed + 1))
        fi
        wait $pid 2>/dev/null
        left=$(ls -d "$O".tmp* 2>/dev/null | wc -l) # temps the kill left, before any rerun
        stale=$((stale + left))
        problem=""
        if [ -e "$O" ]; then
            problem=$(check_complete "$O" "$TMP/$tool-ref")
            [ -n "$problem" ] && problem="partial output after a kill: $problem"
        else
            # Nothing at the output path: a rerun must complete.
            if ("cmd_$tool" "$O") >"$TMP/out" 2>&1; then
                problem=$(check_complete "$O" "$TMP/$tool-ref")
                [ -n "$problem" ] && problem="rerun output: $problem"
                state="$state, rerun"
            else
                problem="rerun failed: $(tail -2 "$TMP/out")"
            fi
        fi
        if [ -z "$problem" ] && ls -d "$O".tmp* >/dev/null 2>&1; then
            problem="temp left beside a complete output: $(ls -d "$O".tmp*)"
        fi
        if [ -z "$problem" ]; then
            PASS=$((PASS + 1)); echo "ok   $tool run $run ($state)"
        else
            FAIL=$((FAIL + 1)); echo "FAIL $tool run $run ($state): $problem"
        fi
    done
    echo "$tool: $killed of $RUNS runs killed mid-way; $stale temp folders left by the kills, all removed by the reruns"
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
