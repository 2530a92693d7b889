#!/bin/bash
# Runs every test suite and ends with one line "N passed, N failed" summing
# them: unit tests (release and ASan+UBSan builds), end-to-end CLI tests (both
# builds), and interop tests against Python reference readers (.venv).
set -u
cd "$(dirname "$0")/.."
total_pass=0
total_fail=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# ctune runs OpenBLAS single-threaded (openblas_set_num_threads(1)); this also
# keeps OpenBLAS from starting its idle thread pool at load time, which makes
# LeakSanitizer's exit-time scan crash ("Tracer caught signal 11", garbage
# DTLS) in some runs, e.g. quant awq on a plain-text file.
export OPENBLAS_NUM_THREADS=1

run_suite() { # name, command...
    local name=$1; shift
    echo "=== $name"
    local out
    out=$(mktemp)
    "$@" 2>&1 | tee "$out" | grep -vE '^ok   ' 
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    rm -f "$out"
    if [ -z "$line" ]; then
        echo "suite $name: no result line (exit $rc)"
        total_fail=$((total_fail + 1))
        return
    fi
    local p f
    p=$(echo "$line" | awk '{print $1}')
    f=$(echo "$line" | awk '{print $3}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "suite $name: exited $rc"
        f=1
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

run_suite unit build/ctune-tests
run_suite unit-asan build-asan/ctune-tests
run_suite e2e tests/e2e/run.sh build/ctune
run_suite e2e-asan tests/e2e/run.sh build-asan/ctune
for t in tests/interop/*.py; do
    [ -e "$t" ] || continue
    run_suite "interop $(basename "$t")" .venv/bin/python "$t" build/ctune
done

echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
