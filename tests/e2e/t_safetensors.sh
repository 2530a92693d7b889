# ctune info FILE.safetensors: the reference fixture, and one malformed file per
# validation rule (built here with printf/head, no Python), each refused with its
# specific message.
ST_FIX=tests/fixtures/safetensors/all_dtypes.safetensors

# st_le64 N: N as 8 little-endian bytes.
st_le64() {
    local n=$1 i
    for i in 0 1 2 3 4 5 6 7; do
        printf "\\$(printf '%03o' $((n & 255)))"
        n=$((n >> 8))
    done
}

# st_make NAME HEADER NDATA: $TMP/NAME.safetensors with HEADER (ASCII) and NDATA zero bytes.
st_make() {
    local f="$TMP/$1.safetensors"
    { st_le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$f"
    printf '%s' "$f"
}

st_entry() { # NAME DTYPE SHAPE BEGIN END
    printf '"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%s,%s]}' "$1" "$2" "$3" "$4" "$5"
}

expect_out "safetensors info lists tensors" "t_f8_e4m3" "$CTUNE" info "$ST_FIX"
expect_out "safetensors info totals" "19 tensors, 95 parameters, 330 bytes" "$CTUNE" info "$ST_FIX"
expect_out "safetensors info --json" '"F8_E5M2"' "$CTUNE" info "$ST_FIX" --json
expect_ok "safetensors minimal file" "$CTUNE" info "$(st_make good "{$(st_entry a F32 2 0 8)}" 8)"

expect_fail "safetensors missing file" "cannot open" "$CTUNE" info "$TMP/absent.safetensors"

printf 'abc' >"$TMP/short.safetensors"
expect_fail "safetensors shorter than 8 bytes" "short.safetensors: file is 3 bytes, shorter than the 8-byte header length" \
    "$CTUNE" info "$TMP/short.safetensors"

# The fixture's header is 1264 bytes: keep 8 data bytes of 330.
head -c 1280 "$ST_FIX" >"$TMP/trunc.safetensors"
expect_fail "safetensors truncated data" 'tensor "t_u64": data_offsets [0, 48] run past the end of the data (8 bytes)' \
    "$CTUNE" info "$TMP/trunc.safetensors"

head -c 100 "$ST_FIX" >"$TMP/trunc_header.safetensors"
expect_fail "safetensors header length past EOF" "header length 1264 runs past the end of the file (100 bytes)" \
    "$CTUNE" info "$TMP/trunc_header.safetensors"

{ st_le64 4000000000; printf '{}'; } >"$TMP/huge.safetensors"
expect_fail "safetensors absurd header length" "header length 4000000000 is too large" "$CTUNE" info "$TMP/huge.safetensors"

expect_fail "safetensors offsets out of range" 'tensor "a": data_offsets [0, 400] run past the end of the data (8 bytes)' \
    "$CTUNE" info "$(st_make range "{$(st_entry a F32 100 0 400)}" 8)"

expect_fail "safetensors overlapping tensors" 'tensor "b": data_offsets [4, 12] overlap tensor "a" [0, 8]' \
    "$CTUNE" info "$(st_make overlap "{$(st_entry a F32 2 0 8),$(st_entry b F32 2 4 12)}" 12)"

expect_fail "safetensors hole in the data" "data bytes [4, 8) belong to no tensor (a hole)" \
    "$CTUNE" info "$(st_make hole "{$(st_entry a F32 1 0 4),$(st_entry b F32 1 8 12)}" 12)"

expect_fail "safetensors size mismatch" 'tensor "a": data_offsets span 8 bytes but BF16 shape needs 6' \
    "$CTUNE" info "$(st_make size "{$(st_entry a BF16 3 0 8)}" 8)"

expect_fail "safetensors bad JSON" "header:1:" "$CTUNE" info "$(st_make badjson '{"a":{"dtype":}' 0)"
expect_fail "safetensors bad JSON message" "malformed JSON" "$CTUNE" info "$TMP/badjson.safetensors"

expect_fail "safetensors unknown dtype" 'tensor "a": unknown dtype "F128"' \
    "$CTUNE" info "$(st_make dtype "{$(st_entry a F128 1 0 16)}" 16)"

expect_fail "safetensors duplicate name" 'duplicate tensor "a" in the header' \
    "$CTUNE" info "$(st_make dup "{$(st_entry a F32 1 0 4),$(st_entry a F32 1 4 8)}" 8)"

expect_fail "safetensors negative dimension" 'tensor "a": negative dimension -1 in shape' \
    "$CTUNE" info "$(st_make negdim "{$(st_entry a F32 -1 0 4)}" 4)"

expect_fail "safetensors metadata not strings" '__metadata__ "k" must be a string, got a number' \
    "$CTUNE" info "$(st_make meta '{"__metadata__":{"k":1}}' 0)"
