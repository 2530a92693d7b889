#!/bin/bash
# Runs every tests/e2e/t_*.sh case file against the ctune binary given as $1.
set -u
cd "$(dirname "$0")/../.."
CTUNE=$(realpath "${1:-build/ctune}")
TMP=$(mktemp -d /tmp/ctune-e2e-XXXXXX)
ASSETS=$(realpath ../shared/assets 2>/dev/null || echo /nonexistent)
trap 'rm -rf "$TMP"' EXIT
. tests/e2e/lib.sh
for f in tests/e2e/t_*.sh; do
    . "$f"
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
