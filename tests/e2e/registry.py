"""A model registry for the end-to-end tests, speaking Ollama's registry protocol and the
Hugging Face Hub's, over one real GGUF file.

It publishes:
  * `library/smollm2:135m` (registry.ollama.ai style): the GGUF as the model layer, plus a
    ChatML template, parameters and a license;
  * `library/corrupt:latest`: a model whose blob is served with a changed byte, so a pull must
    fail its digest check;
  * the Hugging Face repository `kiln-test/SmolLM2-135M-Instruct-GGUF` with the GGUF as
    `SmolLM2-135M-Instruct-Q4_1.gguf` and a LICENSE file.

Blobs honour `Range`. Faults: `drop_after=N` (constructor, or `POST /_faults {"drop_after": N}`)
cuts the first blob response after N body bytes; `require_token=True` answers 401 with a Bearer
challenge until a token from `/token` is sent. `GET /_stats` reports the blob bytes served.

Use it with `base_url, handle = start_registry(model_path)`; point kiln at it with
`KILN_REGISTRY=base_url` and `HF_ENDPOINT=base_url`; call `handle.stop()` when done.
"""

import hashlib
import json
import os
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
MEDIA = "application/vnd.ollama.image."
TOKEN = "e2e-anonymous-token"
HF_REPO = "kiln-test/SmolLM2-135M-Instruct-GGUF"
HF_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"

TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    # System messages stay in .Messages too (Ollama collates them into .System as well).
    "{{- range .Messages }}{{ if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}{{ end }}"
    "<|im_start|>assistant\n"
)
PARAMS = json.dumps({"stop": ["<|im_end|>"], "temperature": 0.2})
# The real Apache-2.0 text (SmolLM2's license), as a model repository ships it.
LICENSE = (pathlib.Path(__file__).resolve().parents[2] / "crates/kiln-library/testdata/licenses/apache-2.0.txt").read_text()


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class Registry:
    """What is published, the faults armed, and what was served."""

    def __init__(self, model_path, drop_after=None, require_token=False):
        self.lock = threading.Lock()
        self.drop_after = drop_after
        self.fail_next = 0  # blob requests still to answer 503, after any drop
        self.require_token = require_token
        self.served = {}  # digest -> body bytes sent
        self.blobs = {}  # digest -> ("file", path, size) or ("bytes", data)
        self.corrupt = set()
        self.manifests = {}  # "ns/model:tag" -> manifest bytes
        model_digest = _file_digest(model_path)
        self.blobs[model_digest] = ("file", model_path, os.path.getsize(model_path))
        model = self._layer(MEDIA + "model", model_digest)
        text = [self._add(MEDIA + kind, body.encode()) for kind, body in
                (("template", TEMPLATE), ("params", PARAMS), ("license", LICENSE))]
        self._publish("library/smollm2:135m", [model] + text)
        # Its own bytes, so corrupting them leaves smollm2 alone.
        bad = self._add(MEDIA + "model", hashlib.sha256(b"corrupt").digest() * 32768)
        self.corrupt.add(bad["digest"])
        self._publish("library/corrupt:latest", [bad])
        self.hf_files = {HF_FILE: model_digest, "LICENSE": LICENSE.encode()}

    def _layer(self, media_type, digest):
        kind = self.blobs[digest]
        size = kind[2] if kind[0] == "file" else len(kind[1])
        return {"mediaType": media_type, "digest": digest, "size": size}

    def _add(self, media_type, data):
        digest = _digest(data)
        self.blobs[digest] = ("bytes", data)
        return self._layer(media_type, digest)

    def _publish(self, name, layers):
        config = {"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                  "model_type": "135M", "file_type": "Q4_1",
                  "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}
        config_layer = self._add(CONFIG_TYPE, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config_layer, "layers": layers}
        self.manifests[name] = json.dumps(manifest).encode()

    def blob_bytes(self, digest, start, end):
        """Bytes [start, end] of a blob, changed in the middle if it is to be served corrupt."""
        kind = self.blobs[digest]
        if kind[0] == "file":
            with open(kind[1], "rb") as f:
                f.seek(start)
                data = bytearray(f.read(end + 1 - start))
        else:
            data = bytearray(kind[1][start:end + 1])
        if digest in self.corrupt and data:
            data[len(data) // 2] ^= 0xFF
        return bytes(data)

    def blob_size(self, digest):
        kind = self.blobs[digest]
        return kind[2] if kind[0] == "file" else len(kind[1])

    def take_failure(self):
        with self.lock:
            if self.fail_next > 0 and self.drop_after is None:
                self.fail_next -= 1
                return True
            return False

    def take_drop(self):
        with self.lock:
            n, self.drop_after = self.drop_after, None
            return n

    def count(self, digest, n):
        with self.lock:
            self.served[digest] = self.served.get(digest, 0) + n


def _handler(reg):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, body=b"", headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, value, status=200):
            self._send(status, json.dumps(value).encode(), [("Content-Type", "application/json")])

        def do_POST(self):
            if self.path != "/_faults":
                return self._send(404)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            with reg.lock:
                reg.drop_after = body.get("drop_after", reg.drop_after)
                reg.require_token = body.get("require_token", reg.require_token)
                reg.fail_next = body.get("fail_next", reg.fail_next)
            self._json({"ok": True})

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            if path == "/_stats":
                with reg.lock:
                    return self._json({"served": dict(reg.served)})
            if path == "/token":
                return self._json({"token": TOKEN})
            if len(parts) == 5 and parts[0] == "v2":
                return self._registry(*parts[1:])
            if len(parts) == 2 and parts[0] == "cdn":
                return self._blob(parts[1])
            if path == f"/api/models/{HF_REPO}/tree/main":
                return self._json(self._tree())
            prefix = f"/{HF_REPO}/resolve/main/"
            if path.startswith(prefix):
                return self._resolve(path[len(prefix):])
            self._send(404)

        def _registry(self, ns, model, kind, ref):
            if reg.require_token and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                host = self.headers.get("Host")
                challenge = f'Bearer realm="http://{host}/token",service="e2e",scope="repository:{ns}/{model}:pull"'
                return self._send(401, b"", [("WWW-Authenticate", challenge)])
            if kind == "manifests":
                manifest = reg.manifests.get(f"{ns}/{model}:{ref}")
                if manifest is None:
                    return self._json({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, 404)
                return self._send(200, manifest, [("Content-Type", MANIFEST_TYPE)])
            if kind == "blobs" and ref in reg.blobs:
                return self._send(307, b"", [("Location", f"/cdn/{ref}")])
            self._send(404)

        def _tree(self):
            entries = []
            for name, what in reg.hf_files.items():
                if isinstance(what, bytes):
                    entries.append({"type": "file", "path": name, "size": len(what), "oid": "0" * 40})
                else:
                    size = reg.blob_size(what)
                    entries.append({"type": "file", "path": name, "size": size, "oid": "0" * 40,
                                    "lfs": {"oid": what.split(":", 1)[1], "size": size, "pointerSize": 134}})
            return entries

        def _resolve(self, name):
            what = reg.hf_files.get(name)
            if what is None:
                return self._send(404)
            if isinstance(what, bytes):
                return self._send(200, what)
            self._send(302, b"", [("Location", f"/cdn/{what}")])

        def _blob(self, digest):
            if digest not in reg.blobs:
                return self._send(404)
            if reg.take_failure():
                return self._send(503)
            size = reg.blob_size(digest)
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and size:
                a, _, b = rng[len("bytes="):].partition("-")
                start, end, status = int(a), min(int(b), size - 1) if b else size - 1, 206
            self.send_response(status)
            self.send_header("Content-Length", str(end + 1 - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            limit = reg.take_drop()
            pos = start
            while pos <= end:
                n = min(1 << 20, end + 1 - pos)
                if limit is not None:
                    n = min(n, limit - (pos - start))
                    if n <= 0:
                        # Cut the connection mid-body, as a network failure would.
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                self.wfile.write(reg.blob_bytes(digest, pos, pos + n - 1))
                reg.count(digest, n)
                pos += n

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """Connections the client drops (cancelled pulls) are expected here, not worth a traceback."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


class Handle:
    def __init__(self, server, thread, registry):
        self.server, self.thread, self.registry = server, thread, registry

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start_registry(model_path, drop_after=None, require_token=False):
    """Serves the registry on 127.0.0.1 at a free port; returns (base_url, handle)."""
    reg = Registry(model_path, drop_after=drop_after, require_token=require_token)
    server = _QuietServer(("127.0.0.1", 0), _handler(reg))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}", Handle(server, thread, reg)


if __name__ == "__main__":
    # `python registry.py MODEL.gguf URL_FILE`: serve until killed, writing the base URL to
    # URL_FILE once listening (scripts/test-e2e.sh starts it before `kiln serve`).
    import sys

    url, handle = start_registry(sys.argv[1])
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(url)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    handle.thread.join()
