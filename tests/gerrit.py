"""A local HTTP server serving Gerrit's REST answers, standing for review.opendev.org
(this machine has no internet): GET /changes/<change>?o=CURRENT_REVISION (a ChangeInfo
with its current revision's _number, behind Gerrit's )]}' prefix) and
GET /changes/<change>/revisions/<patchset>/patch (the patch in base64), as Gerrit's
REST API documents them. Every request is recorded."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
from urllib.parse import urlsplit


class FakeGerrit:
    def __init__(self, changes: dict[int, dict[int, str]]):
        self.changes = changes  # {change: {patch set: patch text}}
        self.requests: list[str] = []
        self.url = ""

    def answer(self, path: str) -> tuple[int, bytes]:
        parts = urlsplit(path)
        segments = parts.path.strip("/").split("/")
        if len(segments) == 2 and segments[0] == "changes" and "o=CURRENT_REVISION" in parts.query:
            sets = self.changes.get(int(segments[1]))
            if not sets:
                return 404, b"Not found"
            current = max(sets)
            info = {"_number": int(segments[1]), "current_revision": f"{current:040x}",
                    "revisions": {f"{n:040x}": {"_number": n} for n in sets}}
            return 200, b")]}'\n" + json.dumps(info).encode()
        if len(segments) == 5 and segments[0] == "changes" and segments[2:5:2] == ["revisions", "patch"]:
            text = self.changes.get(int(segments[1]), {}).get(int(segments[3]))
            if text is None:
                return 404, b"Not found"
            return 200, base64.b64encode(text.encode())
        return 404, b"Not found"


@contextlib.contextmanager
def serving(changes: dict[int, dict[int, str]]):
    gerrit = FakeGerrit(changes)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            gerrit.requests.append(self.path)
            status, body = gerrit.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gerrit.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield gerrit
    finally:
        server.shutdown()
        server.server_close()
