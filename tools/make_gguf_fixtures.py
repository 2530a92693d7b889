#!/usr/bin/env python3
"""Makes the GGUF reference fixtures in tests/fixtures/gguf/ with the `gguf`
package (llama.cpp's gguf-py) and numpy.

Recreate the reference venv with:
    python3 -m venv .venv-ref && .venv-ref/bin/pip install gguf numpy
Run from the repo root:
    .venv-ref/bin/python tools/make_gguf_fixtures.py            # write fixtures
    .venv-ref/bin/python tools/make_gguf_fixtures.py --check F  # read a GGUF (e.g. ctune-written) with gguf-py
    .venv-ref/bin/python tools/make_gguf_fixtures.py --compare build/tools/gguf_dump F.gguf [NAME...]
        # one-off check on a real model: ctune's dequantization of tensors NAME
        # (default: a few of each type) against gguf-py's, bit for bit

Outputs:
  meta.gguf      every metadata value type (scalars and arrays, strings too),
                 general.alignment = 64, two small F32 tensors
  meta_v2.gguf   the same bytes with the version field set to 2
  types.gguf     one tensor "t.<TYPE>" per supported ggml type, from seeded data
  deq_<TYPE>.f32 gguf-py's dequantization of that tensor (raw little-endian f32)
  quant_input.f32, quant_<TYPE>.bin   quantizer input and gguf-py's quantized bytes
  manifest.json  tensor names, types, GGUF shapes (ne[0] first) and file names
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

OUT = "tests/fixtures/gguf"
rng = np.random.default_rng(20240611)

# (type, numpy shape (rows, cols)); cols is GGUF ne[0].
TENSORS = [
    (T.F32, (3, 8)),
    (T.F16, (2, 16)),
    (T.BF16, (2, 16)),
    (T.Q8_0, (3, 64)),
    (T.Q4_0, (3, 64)),
    (T.Q4_1, (3, 64)),
    (T.Q5_0, (3, 64)),
    (T.Q5_1, (3, 64)),
    (T.Q2_K, (2, 256)),
    (T.Q3_K, (2, 256)),
    (T.Q4_K, (2, 256)),
    (T.Q5_K, (2, 256)),
    (T.Q6_K, (2, 256)),
]

# Byte offsets of the f16 scale fields inside each K-quant block (the rest is random bits).
K_SCALE_FIELDS = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def f16_bytes(x):
    return np.array([x], dtype=np.float16).view(np.uint8)


def make_tensor(qtype, shape):
    """-> (array to store, raw_dtype or None, expected f32 dequantization)."""
    rows, cols = shape
    data = rng.normal(0, 1, size=shape).astype(np.float32)
    if qtype == T.F32:
        data[0, :3] = [0.0, -0.0, 1e-40]  # zero, negative zero, subnormal
        return data, None, data
    if qtype == T.F16:
        data[0, :4] = [65504.0, -0.0, 6e-8, np.inf]  # max, -0, subnormal, inf
        stored = data.astype(np.float16)
        return stored, None, gguf.quants.dequantize(stored.view(np.uint8), T.F16).reshape(shape)
    if qtype in K_SCALE_FIELDS:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        nblocks = rows * cols // block_size
        blocks = rng.integers(0, 256, size=(nblocks, type_size), dtype=np.uint8)
        for b in range(nblocks):
            for off in K_SCALE_FIELDS[qtype]:
                blocks[b, off:off + 2] = f16_bytes(rng.normal(0, 0.05))
        stored = blocks.reshape(rows, -1)
    else:
        data[0, :32] = 0.0  # an all-zero block (d = 0)
        stored = gguf.quants.quantize(data, qtype)
    return stored, qtype, gguf.quants.dequantize(stored, qtype).reshape(shape)


def write_types():
    w = gguf.GGUFWriter(f"{OUT}/types.gguf", "llama")
    manifest = []
    for qtype, shape in TENSORS:
        name = f"t.{qtype.name}"
        stored, raw, expected = make_tensor(qtype, shape)
        w.add_tensor(name, stored, raw_dtype=raw)
        fname = f"deq_{qtype.name}.f32"
        expected.astype("<f4").tofile(f"{OUT}/{fname}")
        manifest.append({"name": name, "type": int(qtype), "type_name": qtype.name,
                         "ne": [shape[1], shape[0]], "expected": fname})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return manifest


def quant_input():
    """Eight blocks of 32: random, all zero, constant, mixed scales and exact ties."""
    x = rng.normal(0, 1, size=(8, 32)).astype(np.float32)
    x[1] = 0.0
    x[2] = 0.75
    x[3] *= 1000.0
    x[4] *= 1e-3
    x[5, :4] = [2.0, -2.0, 1.0, -1.0]  # equal magnitudes of both signs: first one wins
    x[6] = np.arange(32, dtype=np.float32) / 2 - 8  # values landing on rounding ties
    x[7] = np.round(x[7] * 4) / 4
    return x.reshape(-1)


def write_quants():
    x = quant_input()
    x.astype("<f4").tofile(f"{OUT}/quant_input.f32")
    out = []
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.BF16, T.F16):
        q = np.asarray(gguf.quants.quantize(x, qtype)).view(np.uint8)
        fname = f"quant_{qtype.name}.bin"
        q.tofile(f"{OUT}/{fname}")
        out.append({"type": int(qtype), "type_name": qtype.name, "bytes": fname, "n": int(x.size)})
    return out


def write_meta():
    path = f"{OUT}/meta.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("general.alignment", 64)
    w.data_alignment = 64
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_key_value("test.arr_u8", [1, 2, 255], V.ARRAY, V.UINT8)
    w.add_key_value("test.arr_i16", [-3, 4], V.ARRAY, V.INT16)
    w.add_key_value("test.arr_i32", [-1, 0, 7], V.ARRAY, V.INT32)
    w.add_key_value("test.arr_u64", [2**64 - 1, 3], V.ARRAY, V.UINT64)
    w.add_key_value("test.arr_f32", [0.5, -2.25], V.ARRAY, V.FLOAT32)
    w.add_key_value("test.arr_f64", [1e300, -0.125], V.ARRAY, V.FLOAT64)
    w.add_key_value("test.arr_bool", [True, False, True], V.ARRAY, V.BOOL)
    w.add_key_value("test.arr_str", ["a", "", "\u00fc", "with space"], V.ARRAY, V.STRING)
    # A tokenizer-shaped block: 1000 tokens "tok<i>", scores -i/10, types i % 6.
    n = 1000
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_token_list([f"tok{i}" for i in range(n)])
    w.add_token_scores([-i / 10 for i in range(n)])
    w.add_token_types([i % 6 for i in range(n)])
    w.add_bos_token_id(1)
    w.add_add_bos_token(True)
    w.add_tensor("tiny.a", np.arange(15, dtype=np.float32).reshape(3, 5))
    w.add_tensor("tiny.b", np.arange(7, dtype=np.float32) * -1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = bytearray(open(path, "rb").read())
    data[4:8] = (2).to_bytes(4, "little")
    open(f"{OUT}/meta_v2.gguf", "wb").write(bytes(data))


def check(path):
    """Prints what gguf-py sees in a GGUF file (used on ctune-written files)."""
    r = gguf.GGUFReader(path)
    for f in r.fields.values():
        print(f"kv {f.name} {[t.name for t in f.types]}")
    for t in r.tensors:
        deq = gguf.quants.dequantize(t.data, t.tensor_type)
        print(f"tensor {t.name} {t.tensor_type.name} {list(t.shape)} sum={float(np.sum(deq, dtype=np.float64)):.6f}")


def compare(dump, path, names):
    """Dequantizes tensors with ctune (gguf_dump --raw) and gguf-py; prints mismatches."""
    import subprocess
    import tempfile
    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    if not names:
        seen = {}
        for t in r.tensors:
            seen.setdefault(t.tensor_type, []).append(t.name)
        names = [n for group in seen.values() for n in group[:3]]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t = by_name[name]
            out = os.path.join(tmp, "t.f32")
            subprocess.run([dump, "--raw", name, out, path], check=True)
            ours = np.fromfile(out, dtype="<f4")
            ref = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
            same = ours.size == ref.size and np.array_equal(ours.view(np.uint32), ref.view(np.uint32))
            diff = float(np.max(np.abs(ours - ref))) if ours.size == ref.size else float("inf")
            failed += not same
            print(f"{'ok  ' if same else 'DIFF'} {name} {t.tensor_type.name} n={ref.size} max_abs_diff={diff:g}")
    print(f"{len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
        return
    if len(sys.argv) >= 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    os.makedirs(OUT, exist_ok=True)
    manifest = {"tensors": write_types(), "quantize": write_quants()}
    write_meta()
    with open(f"{OUT}/manifest.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
