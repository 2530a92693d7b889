#!/bin/sh
# Installs what ctune needs to build and test, idempotently:
#   - C libraries and tools from Debian's packages (apt-get), when missing;
#   - a project virtualenv (.venv) with the Python tools the tests use to check
#     our files against independent readers (safetensors, numpy, jinja2, tokenizers).
# Usage: scripts/install-deps.sh [--python]   (--python also makes .venv)
set -eu
cd "$(dirname "$0")/.."

PKGS="build-essential clang make pkg-config libcjson-dev libyaml-dev libopenblas-dev \
libpcre2-dev libutf8proc-dev libcurl4-openssl-dev libomp-dev openmpi-bin libopenmpi-dev python3 python3-venv"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: apt-get install$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ "${1:-}" = "--python" ]; then
    PY=/usr/bin/python3
    [ -x "$PY" ] || PY=python3
    if [ ! -x .venv/bin/python ]; then
        echo "install-deps: creating .venv"
        "$PY" -m venv .venv
    fi
    if ! .venv/bin/python -c "import safetensors, numpy, jinja2, tokenizers" 2>/dev/null; then
        echo "install-deps: pip install safetensors numpy jinja2 tokenizers into .venv"
        .venv/bin/pip install -q --disable-pip-version-check safetensors numpy jinja2 tokenizers
    fi
fi
