# lib.sh: helpers for end-to-end CLI tests. Each tests/e2e/t_*.sh file calls
#   expect_ok    "name" cmd...              exit 0
#   expect_fail  "name" "needle" cmd...     non-zero exit, stderr has "error: " and needle, no crash
#   expect_out   "name" "needle" cmd...     exit 0 and stdout contains needle
# $CTUNE is the binary under test, $TMP a scratch folder, $ASSETS ../shared/assets (may not exist).
PASS=0
FAIL=0

_record() { # ok?, name, detail
    if [ "$1" = 1 ]; then
        PASS=$((PASS + 1)); echo "ok   $2"
    else
        FAIL=$((FAIL + 1)); echo "FAIL $2"; printf '%s\n' "$3" | sed 's/^/    /' | head -20
    fi
}

expect_ok() {
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    [ $rc -eq 0 ] && _record 1 "$name" || _record 0 "$name" "exit $rc: $out"
}

expect_out() {
    local name=$1 needle=$2; shift 2
    local out rc
    out=$("$@" 2>/dev/null); rc=$?
    if [ $rc -eq 0 ] && printf '%s' "$out" | grep -qF -- "$needle"; then
        _record 1 "$name"
    else
        _record 0 "$name" "exit $rc, stdout lacks '$needle': $out"
    fi
}

expect_fail() {
    local name=$1 needle=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && printf '%s' "$err" | grep -q '^error: ' \
        && printf '%s' "$err" | grep -qF -- "$needle" \
        && ! printf '%s' "$err" | grep -qE 'AddressSanitizer|runtime error:'; then
        _record 1 "$name"
    else
        _record 0 "$name" "exit $rc, stderr: $err"
    fi
}
