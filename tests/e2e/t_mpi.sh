# ctune lora under mpirun (docs/distributed.md): -np 2 gives the run of one
# process with the same global batch and seed (loss at every step, final
# weights), for LoRA and full fine-tuning, with gradient accumulation and
# resume; batch sizes not divisible by the rank count and dead or stuck ranks
# give clear errors. SGD makes the comparison exact to rounding, element by
# element: Adam's updates are ~lr * sign(g) for any |g| above ~3e-7, so a
# gradient entry that is zero up to rounding can flip sign between two
# summation orders and move a few weights by ~lr (see docs/distributed.md);
# with Adam the weights are compared by norm ratio ||a - b|| / ||b|| per
# tensor. MPI_VERBOSE=1 prints the weight differences measured.
if ! command -v mpirun >/dev/null 2>&1 || ! ldd "$CTUNE" 2>/dev/null | grep -q libmpi; then
    echo "skip t_mpi.sh: mpirun not found or $CTUNE built without MPI (counted as nothing)"
else
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# OpenMPI's plugins leak by design at exit: in the sanitizer build, leak
# checking stays with the single-process runs of the same code (and the
# two-ranks-as-threads unit tests); ASan and UBSan still check the ranks.
MPI_ASAN="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpi2() { ASAN_OPTIONS=$MPI_ASAN mpirun -np 2 -x OMP_NUM_THREADS=1 -x ASAN_OPTIONS "$CTUNE" "$@"; }
MD="$TMP/mpi-data"
mkdir -p "$MD"
# Rows of different lengths, so the ranks' token counts differ in most batches.
for i in $(seq 1 16); do
    printf '{"messages": [{"role": "user", "content": "count %d"}, {"role": "assistant", "content": "a b c %s"}]}\n' \
        $i "$(seq -s ' ' 1 $((i % 7)))"
done > "$MD/train.jsonl"
head -6 "$MD/train.jsonl" > "$MD/valid.jsonl"
MARGS="--model tests/fixtures/chat_model --data $MD --batch-size 4 --optimizer sgd --learning-rate 0.1 --steps-per-report 1 --steps-per-eval 4 --save-every 3 --seed 3 --train"

# Every train_loss and val_loss of two metrics.jsonl, in order, within 1e-5 relative.
same_losses() { # name, a/metrics.jsonl, b/metrics.jsonl
    local out
    out=$(paste <(grep -o '"\(train\|val\)_loss":[^,}]*' "$2") <(grep -o '"\(train\|val\)_loss":[^,}]*' "$3") | awk -F'[:\t]' '
        { n++; d = $2 - $4; if (d < 0) d = -d; r = d / ($4 < 0 ? -$4 : $4); if (r > worst) worst = r
          if ($1 != $3) bad = 1 }
        END { if (n < 2 || bad || worst > 1e-5) print "FAIL " n " values, worst relative difference " worst; else print "ok" }')
    [ "$out" = ok ] && _record 1 "$1" || _record 0 "$1" "$out; $(head -3 "$2"; head -3 "$3")"
}
same_weights() { # name, a.safetensors, b.safetensors[, -f]
    local out
    out=$("$(dirname "$CTUNE")/tools/st_diff" ${4:-} "$2" "$3" 2>&1)
    [ -n "${MPI_VERBOSE:-}" ] && echo "    $1: $out"
    awk -v d="${out%% *}" 'BEGIN { exit !(d + 0 <= 1e-5) }' && [ -n "$out" ] && _record 1 "$1" \
        || _record 0 "$1" "worst relative difference (tensor): $out"
}
compare_runs() { # name, extra args... (ST_DIFF_FLAGS=-f: compare weights by norm ratio)
    local name=$1; shift
    local d1="$TMP/mpi-$name-1" d2="$TMP/mpi-$name-2"
    OMP_NUM_THREADS=1 "$CTUNE" lora $MARGS "$@" --adapter-path "$d1" >/dev/null 2>&1
    expect_out "mpi $name: -np 2 trains" "Train loss" mpi2 lora $MARGS "$@" --adapter-path "$d2"
    same_losses "mpi $name: every loss of -np 2 equals -np 1 (1e-5 relative)" "$d1/metrics.jsonl" "$d2/metrics.jsonl"
    same_weights "mpi $name: final weights of -np 2 equal -np 1 (1e-5 relative)" "$d1/adapters.safetensors" \
        "$d2/adapters.safetensors" ${ST_DIFF_FLAGS:-}
}
compare_runs lora --iters 8
compare_runs full --iters 6 --fine-tune-type full --num-layers 1
compare_runs accum --iters 8 --grad-accumulation-steps 2
ST_DIFF_FLAGS=-f compare_runs adam --iters 8 --optimizer adam --learning-rate 1e-5

# DWQ (ctune quant dwq) data-parallel: the same validation KLs and the same
# learned scales, biases and norms (Adam: compared by norm ratio per tensor).
DWQ_ARGS=(quant dwq --model tests/fixtures/chat_model --group-size 32 --bits 2 --data README.md --max-seq-length 33
          --num-samples 16 --learning-rate 1e-4 --top-k 32 --batch-size 4)
OMP_NUM_THREADS=1 "$CTUNE" "${DWQ_ARGS[@]}" --mlx-path "$TMP/mpi-dwq-1" > "$TMP/mpi-dwq-1.out" 2>/dev/null
expect_out "mpi dwq: -np 2 trains" "4 steps on 16 sequences" mpi2 "${DWQ_ARGS[@]}" --mlx-path "$TMP/mpi-dwq-2"
same_kl=$(paste <(grep -o 'validation KL [0-9.]* -> [0-9.]*' "$TMP/mpi-dwq-1.out") \
                <(mpi2 "${DWQ_ARGS[@]}" --mlx-path "$TMP/mpi-dwq-3" 2>/dev/null | grep -o 'validation KL [0-9.]* -> [0-9.]*') |
          awk '{ r1 = ($3 - $8) / $8; r2 = ($5 - $10) / $10; if (r1 < 0) r1 = -r1; if (r2 < 0) r2 = -r2
                 if (NF == 10 && r1 <= 1e-5 && r2 <= 1e-5) print "ok"; else print "FAIL " $0 }')
[ "$same_kl" = ok ] && _record 1 "mpi dwq: validation KLs of -np 2 equal -np 1 (1e-5 relative)" \
    || _record 0 "mpi dwq: validation KLs of -np 2 equal -np 1" "$same_kl"
same_weights "mpi dwq: learned scales, biases and norms of -np 2 equal -np 1 (norm ratio 1e-5)" \
    "$TMP/mpi-dwq-1/model.safetensors" "$TMP/mpi-dwq-2/model.safetensors" -f
expect_fail "mpi dwq: batch size not divisible by the ranks" "(batch 3, 2 workers)" \
    mpi2 "${DWQ_ARGS[@]}" --batch-size 3 --mlx-path "$TMP/mpi-dwq-odd"

# Resume across a checkpoint taken in the middle of an accumulation (iteration 3 of 2-step updates).
mpi2 lora $MARGS --iters 3 --grad-accumulation-steps 2 --adapter-path "$TMP/mpi-res" >/dev/null 2>&1
expect_out "mpi: --resume with 2 ranks" "Iter 8: Train loss" mpi2 lora $MARGS --iters 8 --grad-accumulation-steps 2 \
    --resume --adapter-path "$TMP/mpi-res"
same_weights "mpi: resumed -np 2 run equals the uninterrupted -np 1 run" "$TMP/mpi-accum-1/adapters.safetensors" \
    "$TMP/mpi-res/adapters.safetensors"
grep -q '"comm_bytes_per_step"' "$TMP/mpi-lora-2/metrics.jsonl" && _record 1 "mpi: metrics report bytes reduced per step" \
    || _record 0 "mpi: metrics report bytes reduced per step" "$(tail -2 "$TMP/mpi-lora-2/metrics.jsonl")"
expect_fail "mpi: batch size not divisible by the ranks" "(batch 3, 2 workers)" \
    mpi2 lora $MARGS --iters 2 --batch-size 3 --adapter-path "$TMP/mpi-odd"

# A stuck rank (SIGSTOP) and a dead one (SIGKILL): the other rank must end the
# job with a non-zero exit, the stuck case with our timeout message.
rank_pid() { # mpirun pid, rank
    local p
    for p in $(pgrep -P "$1"); do
        tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$p"
    done
}
kill_rank() { # name, signal, needle
    local name=$1 sig=$2 needle=$3 dir="$TMP/mpi-kill-$2" log="$TMP/mpi-kill-$2.log" mp victim t0 rc
    ( ASAN_OPTIONS=$MPI_ASAN exec mpirun -np 2 -x OMP_NUM_THREADS=1 -x ASAN_OPTIONS "$CTUNE" lora $MARGS \
        --iters 1000000 --steps-per-report 1000 --save-every 1000000 --comm-timeout 5 --adapter-path "$dir" \
        >"$log" 2>&1 ) &
    mp=$!
    for _ in $(seq 1 300); do [ -s "$dir/metrics.jsonl" ] && break; sleep 0.1; done
    victim=$(rank_pid "$mp" 1)
    t0=$(date +%s)
    [ -n "$victim" ] && kill "-$sig" "$victim"
    for _ in $(seq 1 300); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$mp" 2>/dev/null; then
        kill -9 "$mp" $(pgrep -P "$mp") 2>/dev/null
        wait "$mp"
        _record 0 "$name" "still running 30 s after the kill: $(tail -5 "$log")"
        return
    fi
    wait "$mp"; rc=$?
    if [ -n "$victim" ] && [ "$rc" -ne 0 ] && [ $(($(date +%s) - t0)) -le 20 ] && grep -qF -- "$needle" "$log"; then
        _record 1 "$name"
    else
        _record 0 "$name" "victim '$victim', exit $rc: $(tail -8 "$log")"
    fi
}
kill_rank "mpi: a stuck rank -> the other fails within --comm-timeout" STOP "did not complete within 5 s"
kill_rank "mpi: a killed rank -> the job ends non-zero" KILL "signal 9"
fi
