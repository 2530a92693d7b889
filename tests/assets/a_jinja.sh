# Sourced by tests/assets.sh: every chat template in ../shared/assets renders
# byte-identically to Python Jinja2 (as transformers configures it) on 20
# conversations. Uses $ASSETS, $TMP and lib.sh's PASS/FAIL counters.
jinja_out="$TMP/jinja_compare.txt"
if .venv/bin/python tests/assets/jinja_compare.py "$ASSETS" >"$jinja_out" 2>&1; then
    PASS=$((PASS + 1))
    echo "ok   jinja: $(tail -1 "$jinja_out") asset templates identical to Python Jinja2"
else
    FAIL=$((FAIL + 1))
    echo "FAIL jinja: asset templates differ from Python Jinja2"
    cat "$jinja_out"
fi
