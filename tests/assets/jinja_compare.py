#!/usr/bin/env python3
"""Renders every chat template in ../shared/assets (chat-templates/*.jinja, the
"chat_template" of chat-templates/*.json and tokenizers/*/tokenizer_config.json)
on 20 conversations with Python Jinja2 configured as transformers does and with
build/tools/jinja_render, and compares the outputs byte for byte (errors must
match too). Usage: .venv/bin/python tests/assets/jinja_compare.py [ASSETS_DIR]
Prints "N passed, N failed"; exits non-zero on any failure.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from jinja_reference import conversations, render  # noqa: E402


def templates(assets):
    for path in sorted(glob.glob(os.path.join(assets, "chat-templates", "*.jinja"))):
        with open(path, encoding="utf-8", newline="") as f:
            yield os.path.basename(path), f.read()
    configs = sorted(glob.glob(os.path.join(assets, "chat-templates", "*.json")))
    configs += sorted(glob.glob(os.path.join(assets, "tokenizers", "*", "tokenizer_config.json")))
    for path in configs:
        with open(path, encoding="utf-8") as f:
            tpl = json.load(f).get("chat_template")
        name = os.path.relpath(path, assets)
        if isinstance(tpl, str):
            yield name, tpl
        elif isinstance(tpl, list):  # named templates
            for item in tpl:
                yield f"{name}[{item['name']}]", item["template"]


def main():
    assets = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "assets")
    tool = os.path.join(ROOT, "build", "tools", "jinja_render")
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        ctx_paths = []
        for i, ctx in enumerate(conversations()):
            p = os.path.join(tmp, f"ctx{i}.json")
            with open(p, "w", encoding="utf-8") as f:
                json.dump(ctx, f, ensure_ascii=False)
            ctx_paths.append((p, ctx))
        for name, src in templates(assets):
            tpath = os.path.join(tmp, "template.jinja")
            with open(tpath, "w", encoding="utf-8", newline="") as f:
                f.write(src)
            bad = 0
            for i, (cpath, ctx) in enumerate(ctx_paths):
                kind, want = render(src, ctx)
                p = subprocess.run([tool, tpath, cpath], capture_output=True)
                got = p.stdout.decode("utf-8") if p.returncode == 0 else p.stderr.decode("utf-8")
                ok = (kind == "ok" and p.returncode == 0 and got == want) or (
                    kind == "error" and p.returncode != 0 and want in got)
                if not ok:
                    bad += 1
                    print(f"FAIL {name} conversation {i}: expected {kind} {want!r}, got {got!r}")
            if bad:
                failed += 1
            else:
                passed += 1
                print(f"ok   {name} ({len(ctx_paths)} conversations)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
