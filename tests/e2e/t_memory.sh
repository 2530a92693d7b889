# Flat memory over a long training run (issue 10): LoRA on the tiny chat model
# for MEM_ITERS steps (batch 2, validation and checkpoints on the way). The
# process's resident size (VmRSS in /proc/<pid>/status) is sampled while it
# runs; the last sample past 80% of the steps may exceed the first one past
# 20% by at most MEM_GROWTH_KB. A leak of 256 bytes per step over the 3600
# steps between the two samples adds 900 kB and fails the check.
#
# Under ASan (a binary path with "asan") the run is shorter and the allocator
# quarantine is off, so that freed memory is reused as in the normal build;
# LeakSanitizer checks the leaks there. ASan records a stack trace per malloc
# in a store that never shrinks; its fast frame-pointer unwinder picks up
# garbage frames through code without frame pointers, so every such trace is
# "new" and that store grew by ~1 MB over the run with a flat heap
# (__sanitizer_get_current_allocated_bytes constant): the slow unwinder
# (fast_unwind_on_malloc=0) keeps the measurement about our memory. One thread: OpenMP threads on a busy
# machine make a tiny model hundreds of times slower.
MEM="$TMP/memory"
mkdir -p "$MEM/data"
for i in $(seq 1 40); do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %d"}]}\n' $i $i
done > "$MEM/data/train.jsonl"
head -4 "$MEM/data/train.jsonl" > "$MEM/data/valid.jsonl"
MEM_ITERS=6000
MEM_GROWTH_KB=${MEM_GROWTH_KB:-512}
case "$CTUNE" in *asan*) MEM_ITERS=1500 ;; esac

# Runs the training, sampling VmRSS every 50 ms; prints "early_kb late_kb".
mem_profile() {
    OMP_NUM_THREADS=1 ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0:fast_unwind_on_malloc=0" \
        "$CTUNE" lora --model tests/fixtures/chat_model --data "$MEM/data" --train --iters $MEM_ITERS --batch-size 2 \
        --steps-per-report $((MEM_ITERS / 50)) --steps-per-eval $((MEM_ITERS / 6)) --val-batches 2 \
        --save-every $((MEM_ITERS / 3)) --adapter-path "$MEM/ad" >"$MEM/log" 2>&1 &
    local pid=$! early="" late="" rss it
    # Until it exits (a zombie, state Z, has no VmRSS and still answers kill -0).
    while rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status 2>/dev/null) && [ -n "$rss" ]; do
        it=$(grep -o '^Iter [0-9]*: Train' "$MEM/log" | tail -1 | tr -dc 0-9)
        if [ -n "$it" ]; then
            [ -z "$early" ] && [ "$it" -ge $((MEM_ITERS / 5)) ] && early=$rss
            [ "$it" -ge $((MEM_ITERS * 4 / 5)) ] && late=$rss
        fi
        sleep 0.05
    done
    wait $pid || { echo "training failed: $(tail -3 "$MEM/log")"; return; }
    echo "${early:-none} ${late:-none}"
}

read -r mem_early mem_late mem_rest <<<"$(mem_profile)"
if [[ "$mem_early" =~ ^[0-9]+$ && "$mem_late" =~ ^[0-9]+$ ]] && [ -z "$mem_rest" ] &&
    [ $((mem_late - mem_early)) -le "$MEM_GROWTH_KB" ]; then
    _record 1 "memory: flat RSS over $MEM_ITERS training steps ($mem_early kB -> $mem_late kB)"
else
    _record 0 "memory: flat RSS over $MEM_ITERS training steps" \
        "early $mem_early kB, late $mem_late kB $mem_rest (bound +$MEM_GROWTH_KB kB)"
fi
