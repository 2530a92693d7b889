#!/usr/bin/env python3
"""Round trip through ctune's safetensors reader and writer, checked with the
Python `safetensors` package (the reference implementation).

For each case: write a file with the Python package, copy it with
build/tools/st_copy (ct_safetensors_open + ct_safetensors_write), read the copy
back with the Python package and compare names, dtypes, shapes, bytes and
metadata; where the metadata has at most one key (so that its order is
defined) the copy must equal the original byte for byte. Also checks that
`ctune info FILE.safetensors --json` lists the right names, shapes and dtypes.

Usage: .venv/bin/python tests/interop/safetensors_roundtrip.py build/ctune
"""
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import safetensors
from safetensors import TensorSpec

CTUNE = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/ctune")
ST_COPY = os.path.join(os.path.dirname(CTUNE), "tools", "st_copy")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))


_keep = []  # buffers TensorSpec points into


def raw_spec(torch_style_dtype, shape, data: bytes):
    """A tensor for dtypes numpy lacks (bf16, fp8): raw little-endian bytes."""
    buf = ctypes.create_string_buffer(data, len(data))
    _keep.append(buf)
    return TensorSpec(dtype=torch_style_dtype, shape=list(shape), data_ptr=ctypes.addressof(buf), data_len=len(data))


def np_spec(a):
    a = np.ascontiguousarray(a)
    _keep.append(a)
    return TensorSpec(dtype=a.dtype.name, shape=list(a.shape), data_ptr=a.ctypes.data, data_len=a.nbytes)


def read_raw(path):
    """{name: (dtype, shape, bytes)} and metadata, via the package's torch-free deserializer."""
    with open(path, "rb") as f:
        items = safetensors.deserialize(f.read())
    tensors = {name: (t["dtype"], list(t["shape"]), bytes(t["data"])) for name, t in items}
    with safetensors.safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    return tensors, meta


def cases():
    rng = np.random.default_rng(1234)
    all_dtypes = {}
    for dt in ["float64", "float32", "float16", "int64", "int32", "int16", "int8",
               "uint64", "uint32", "uint16", "uint8"]:
        info = np.finfo(dt) if dt.startswith("float") else np.iinfo(dt)
        if dt.startswith("float"):
            a = rng.standard_normal((3, 5)).astype(dt)
            a.flat[0], a.flat[1] = info.max, info.min
        else:
            a = rng.integers(info.min, info.max, size=(3, 5), dtype=dt, endpoint=True)
        all_dtypes["t_" + dt] = np_spec(a)
    all_dtypes["t_bool"] = np_spec(rng.integers(0, 2, size=(4, 2)).astype(np.bool_))
    for dt in ["bfloat16", "float8_e4m3fn", "float8_e5m2"]:
        width = 2 if dt == "bfloat16" else 1
        all_dtypes["t_" + dt] = raw_spec(dt, (2, 7), rng.bytes(14 * width))
    all_dtypes["scalar_f32"] = np_spec(np.array(2.5, dtype=np.float32))
    all_dtypes["scalar_i64"] = np_spec(np.array(-7, dtype=np.int64))
    all_dtypes["empty_f16"] = np_spec(np.zeros((0, 3), dtype=np.float16))
    all_dtypes["empty_bf16"] = raw_spec("bfloat16", (4, 0), b"")
    all_dtypes["rank4"] = np_spec(rng.standard_normal((2, 1, 3, 2)).astype(np.float32))
    yield "all_dtypes", all_dtypes, {"format": "pt", "note": "ctune interop \u00e9\u4e2d \"q\"\n"}

    yield "no_metadata", {"w": np_spec(np.arange(12, dtype=np.float32).reshape(3, 4))}, None
    yield "one_metadata", {"b": np_spec(np.ones(3, np.int8)), "a": np_spec(np.zeros(2, np.float64))}, {"format": "mlx"}
    yield "no_tensors", {}, {"format": "pt"}
    yield "odd_names", {
        "model.layers.0.self_attn.q_proj.lora_a": np_spec(rng.standard_normal((8, 2)).astype(np.float32)),
        "caf\u00e9 \"quoted\" \\ name": np_spec(np.arange(3, dtype=np.uint16)),
        "": np_spec(np.array([1], np.uint8)),
    }, {"k": "v"}
    many = {f"layer.{i}.weight": np_spec(rng.standard_normal((i % 5 + 1, 3)).astype([np.float32, np.float16][i % 2]))
            for i in range(40)}
    yield "many_tensors", many, {"format": "pt"}


def run_case(tmp, name, tensors, meta):
    src = os.path.join(tmp, name + ".safetensors")
    dst = os.path.join(tmp, name + ".copy.safetensors")
    safetensors.serialize_file(tensors, src, metadata=meta)
    r = subprocess.run([ST_COPY, src, dst], capture_output=True, text=True)
    check(f"{name}: st_copy succeeds", r.returncode == 0, r.stderr.strip())
    if r.returncode != 0:
        return
    want, want_meta = read_raw(src)
    try:
        got, got_meta = read_raw(dst)
    except Exception as e:  # the reference reader refused our file
        check(f"{name}: Python safetensors reads the copy", False, repr(e))
        return
    check(f"{name}: Python safetensors reads the copy", True)
    check(f"{name}: same tensor names", sorted(got) == sorted(want), f"{sorted(got)} vs {sorted(want)}")
    bad = [n for n in want if n in got and got[n] != want[n]]
    check(f"{name}: same dtypes, shapes and bytes", not bad, f"differ: {bad}")
    check(f"{name}: same metadata", got_meta == want_meta, f"{got_meta} vs {want_meta}")
    if meta is None or len(meta) <= 1:
        with open(src, "rb") as a, open(dst, "rb") as b:
            check(f"{name}: copy is byte-identical", a.read() == b.read())
    run_info(name, src, want)


def run_info(name, path, want):
    r = subprocess.run([CTUNE, "info", path, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        check(f"{name}: ctune info --json", False, r.stderr.strip())
        return
    try:
        info = json.loads(r.stdout)
    except ValueError as e:
        check(f"{name}: ctune info --json is JSON", False, str(e))
        return
    listed = {t["name"]: (t["dtype"], t["shape"]) for t in info["tensors"]}
    expected = {n: (v[0], v[1]) for n, v in want.items()}
    check(f"{name}: ctune info lists names, dtypes, shapes", listed == expected, f"{listed} vs {expected}")
    params = sum(int(np.prod(v[1], dtype=np.int64)) for v in want.values())
    nbytes = sum(len(v[2]) for v in want.values())
    check(f"{name}: ctune info totals", info["parameters"] == params and info["bytes"] == nbytes,
          f"{info['parameters']}/{info['bytes']} vs {params}/{nbytes}")


def main():
    if not os.access(ST_COPY, os.X_OK):
        check("st_copy built", False, ST_COPY + " missing (run make)")
    else:
        with tempfile.TemporaryDirectory(prefix="ctune-st-interop-") as tmp:
            for name, tensors, meta in cases():
                run_case(tmp, name, tensors, meta)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
