#!/bin/bash
# Checks that use the real files in ../shared/assets (never committed here).
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
CTUNE=$(realpath build/ctune)
ASSETS=$(realpath ../shared/assets)
TMP=$(mktemp -d /tmp/ctune-assets-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/e2e/lib.sh
for f in tests/assets/a_*.sh; do
    [ -e "$f" ] && . "$f"
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
