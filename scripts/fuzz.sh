#!/bin/bash
# Builds the libFuzzer targets in tests/fuzz (clang, ASan + UBSan) and runs each
# for FUZZ_SECONDS (default 60) on a corpus seeded from tests/fixtures. Crashes
# are written to build-fuzz/crashes/<target>/; each one found becomes a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=build-fuzz
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fopenmp"
LIBS="-lcjson -lyaml -lopenblas -lpcre2-8 -lutf8proc -lcurl -lm -lpthread"
mkdir -p "$OUT/obj" "$OUT/corpus" "$OUT/crashes"
objs=()
# An object is rebuilt when its source or any header is newer (a changed struct
# in a header must not leave objects with the old layout).
newest_header=$(find include src -name '*.h' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
for src in $(find src -name '*.c' -not -path 'src/cli/*' | sort); do
    obj="$OUT/obj/$(echo "$src" | tr / _).o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
        clang $FLAGS -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done
seed() { # target, files...
    local t=$1; shift
    mkdir -p "$OUT/corpus/$t"
    for f in "$@"; do [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 1000000 ] && cp "$f" "$OUT/corpus/$t/"; done
    return 0
}
seed safetensors tests/fixtures/safetensors/*.safetensors tests/fixtures/safetensors/sharded/*.safetensors
seed gguf tests/fixtures/gguf/*.gguf
seed config tests/fixtures/config/*.json
seed tokenizer tests/fixtures/tokenizer/*.json
seed jinja tools/jinja_templates/*.jinja
seed jsonl tests/fixtures/data/*/*.jsonl tests/fixtures/data/*.jsonl
seed yaml tests/fixtures/data/*.yaml tests/fixtures/data/*/*.yaml
# fuzz_adapter's input: layout byte ('p': PEFT, 'm': mlx-lm), the
# config's length (2 bytes, little-endian), adapter_config.json, safetensors.
seed_adapter() { # folder, layout, safetensors name
    local cfg="$1/adapter_config.json" n
    [ -f "$cfg" ] && [ -f "$1/$3" ] || return 0
    n=$(stat -c %s "$cfg")
    mkdir -p "$OUT/corpus/adapter"
    { printf '%s' "$2"; printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))"; cat "$cfg" "$1/$3"; } \
        >"$OUT/corpus/adapter/$(basename "$1")"
}
for d in tests/fixtures/adapters/*/ tests/fixtures/train/*adapter*/; do
    seed_adapter "${d%/}" m adapters.safetensors
    seed_adapter "${d%/}" p adapter_model.safetensors
done
status=0
for t in ${FUZZ_TARGETS:-safetensors gguf config tokenizer jinja jsonl yaml adapter}; do
    clang $FLAGS -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "${objs[@]}" $LIBS -o "$OUT/fuzz_$t"
    mkdir -p "$OUT/crashes/$t"
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    if ! "$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -artifact_prefix="$OUT/crashes/$t/" \
        -print_final_stats=1 "$OUT/corpus/$t" 2>&1 | grep -E 'stat::number_of_executed_units|cov:|ERROR|SUMMARY' | tail -4; then
        :
    fi
    if ls "$OUT/crashes/$t"/* >/dev/null 2>&1; then
        echo "fuzz_$t: findings in $OUT/crashes/$t"
        status=1
    fi
done
exit $status
