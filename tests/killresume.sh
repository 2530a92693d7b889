#!/bin/bash
# Kill/resume: `ctune lora` killed with SIGKILL at random moments and resumed
# with --resume must end with adapters byte-identical to an uninterrupted
# run's, and no file in the adapter folder may ever be partial.
#
# usage: tests/killresume.sh [CTUNE] [RUNS]   (from anywhere; default build/ctune, 20 runs)
# Needs only bash and the binary (no make). Runs in tests/assets.sh's suite
# through tests/assets/a_lora_parity.sh, and standalone. Prints one line per
# run and "N passed, N failed"; exits non-zero on a failure.
#
# Each run: train on the tiny chat fixture (39 iterations, batch 4,
# grad accumulation 2, save_every 3, so some checkpoints fall between the two
# micro-batches of an update and must carry the pending gradients, and the
# last iteration has a numbered checkpoint), killed at a
# random moment in [0, 1.3 x the uninterrupted time]; then --resume (or a fresh
# start when no checkpoint exists yet), killed again at random, until a run
# finishes. After every kill: each *.safetensors in the folder opens
# (`ctune info`). Temp files (*.tmp.PID) a kill leaves must be gone after the
# next run. The thread count is fixed (OMP_NUM_THREADS, default 1: on a
# shared 2-core machine 2 threads can be 30x slower from contention).
set -u
cd "$(dirname "$0")/.."
CTUNE=$(realpath "${1:-build/ctune}")
RUNS=${2:-20}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TMP=$(mktemp -d /tmp/ctune-killresume-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0

D="$TMP/data"
mkdir -p "$D"
for i in $(seq 1 24); do
    printf '{"messages": [{"role": "user", "content": "count to %d please"}, {"role": "assistant", "content": "a b c d e f %d"}]}\n' $i $i
done > "$D/train.jsonl"
head -4 "$D/train.jsonl" > "$D/valid.jsonl"
ARGS=(lora --model tests/fixtures/chat_model --data "$D" --train --iters 39 --batch-size 4 --grad-accumulation-steps 2
      --save-every 3 --steps-per-report 5 --steps-per-eval 10 --learning-rate 1e-2 --seed 7)

now_ms() { date +%s%3N; }

t0=$(now_ms)
"$CTUNE" "${ARGS[@]}" --adapter-path "$TMP/ref" >/dev/null 2>&1 || { echo "uninterrupted run failed"; echo "0 passed, 1 failed"; exit 1; }
ref_ms=$(( $(now_ms) - t0 ))
[ "$ref_ms" -lt 50 ] && ref_ms=50
echo "uninterrupted run: ${ref_ms} ms"

# Every .safetensors opens; prints the first one that does not.
check_files() { # dir
    local f
    for f in "$1"/*.safetensors; do
        [ -e "$f" ] || continue
        "$CTUNE" info "$f" >/dev/null 2>&1 || { echo "partial file after a kill: $(basename "$f")"; return 1; }
    done
    return 0
}

for run in $(seq 1 "$RUNS"); do
    A="$TMP/run$run"
    kills=0 problem="" stale=""
    while :; do
        extra=()
        ls "$A"/*_state.safetensors >/dev/null 2>&1 && extra=(--resume)
        "$CTUNE" "${ARGS[@]}" "${extra[@]}" --adapter-path "$A" >"$TMP/out" 2>&1 &
        pid=$!
        delay=$(( RANDOM * ref_ms * 13 / 10 / 32768 ))
        [ $kills -eq 0 ] && delay=$(( ref_ms / 20 + RANDOM * ref_ms * 9 / 10 / 32768 )) # the first kill lands inside the run
        [ $kills -ge 12 ] && delay=$((ref_ms * 50)) # enough kills: let it finish
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        if kill -0 $pid 2>/dev/null; then
            kill -KILL $pid 2>/dev/null
            wait $pid 2>/dev/null
            kills=$((kills + 1))
            problem=$(check_files "$A") || break
            stale=$(cd "$A" 2>/dev/null && ls | grep '\.tmp\.' | tr '\n' ' ')
            continue
        fi
        wait $pid
        rc=$?
        if [ $rc -ne 0 ]; then
            problem="exit $rc: $(tail -3 "$TMP/out")"
            break
        fi
        # The run finished: files from an earlier kill's writers must be gone.
        left=$(cd "$A" && ls | grep '\.tmp\.' | tr '\n' ' ')
        [ -n "$left" ] && problem="temp files left after the run finished: $left (after a kill: ${stale:-none})"
        break
    done
    if [ -z "$problem" ] && ! cmp -s "$TMP/ref/adapters.safetensors" "$A/adapters.safetensors"; then
        problem="adapters.safetensors differs from the uninterrupted run's"
    fi
    if [ -z "$problem" ]; then
        PASS=$((PASS + 1)); echo "ok   run $run: $kills kills, adapters identical"
    else
        FAIL=$((FAIL + 1)); echo "FAIL run $run ($kills kills): $problem"
    fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
