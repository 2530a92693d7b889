#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub, for tests/unit/test_hub.c.

Serves a few tiny repositories on 127.0.0.1 (an ephemeral port, written to --port-file) the
way huggingface.co does:
  GET /api/{models,datasets}/<org>/<name>/revision/<rev>  -> {"id", "sha", "siblings": [{"rfilename"}]}
  GET /[datasets/]<org>/<name>/resolve/<sha>/<path>        -> the file, with an ETag (git blob sha1),
      or for LFS files a 302 to /cdn/<sha256> carrying X-Linked-Etag: "<sha256>"
With --token, the API and resolve URLs answer 401 unless "Authorization: Bearer <token>".
Every request path is appended to --log. The server exits by itself after --lifetime seconds.
Standard library only.
"""
import argparse
import hashlib
import http.server
import json
import os
import threading

SHA = "0123456789abcdef0123456789abcdef01234567"

REPOS = {
    ("models", "org/tiny"): {
        "config.json": b'{"model_type": "llama", "hidden_size": 8}\n',
        "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        "tokenizer_config.json": b'{"chat_template": "{{ messages }}"}\n',
        "sub/dir/extra.json": b'{"nested": true}\n',
        "README.md": b"# model card\n",
        "onnx/model.onnx": b"not wanted",
    },
    ("datasets", "org/data"): {
        "train.jsonl": b"".join(b'{"text": "train %d"}\n' % i for i in range(6)),
        "validation.jsonl": b'{"text": "valid 0"}\n{"text": "valid 1"}\n',
        "test.jsonl": b'{"text": "test 0"}\n',
        "README.md": b"# dataset card\n",
    },
    ("datasets", "org/pq"): {
        "data/train-00000-of-00001.parquet": b"PAR1",
        "README.md": b"# parquet only\n",
    },
}
LFS = {"model.safetensors"}


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub(http.server.BaseHTTPRequestHandler):
    token = None
    log_path = None

    def log_message(self, fmt, *args):  # quiet on stderr; the log file records requests
        pass

    def reply(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        return self.token is None or self.headers.get("Authorization") == "Bearer " + self.token

    def do_GET(self):
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(self.path + "\n")
        parts = self.path.lstrip("/").split("/")
        if parts[0] == "cdn" and len(parts) == 2:
            for files in REPOS.values():
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == parts[1]:
                        return self.reply(200, data)
            return self.reply(404)
        if not self.authorized():
            return self.reply(401, b'{"error": "Invalid credentials"}')
        if parts[0] == "api" and len(parts) == 6 and parts[4] == "revision":
            files = REPOS.get((parts[1], parts[2] + "/" + parts[3]))
            if files is None or parts[5] not in ("main", SHA):
                return self.reply(404, b'{"error": "Repository not found"}')
            body = {"id": parts[2] + "/" + parts[3], "sha": SHA,
                    "siblings": [{"rfilename": name} for name in sorted(files)]}
            return self.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        kind = "models"
        if parts[0] == "datasets":
            kind, parts = "datasets", parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and parts[3] == SHA:
            files = REPOS.get((kind, parts[0] + "/" + parts[1]), {})
            name = "/".join(parts[4:])
            if name not in files:
                return self.reply(404, b"Entry not found")
            data = files[name]
            if name in LFS:
                digest = hashlib.sha256(data).hexdigest()
                return self.reply(302, b"", {"Location": "/cdn/" + digest, "X-Linked-Etag": '"%s"' % digest})
            return self.reply(200, data, {"ETag": '"%s"' % git_blob_sha1(data)})
        return self.reply(404)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    Hub.token = args.token
    Hub.log_path = args.log
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
