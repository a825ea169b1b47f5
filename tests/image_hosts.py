"""The default images' hosts played locally: each real host by an HTTP server on an
address of its own, answering the way the real one does, redirects included.

What the real hosts answer (read from their own sources, not from osception's config,
which is what the tests check against):
- download.cirros-cloud.net: every image file is a 302 to the GitHub release of the same
  version (its .htaccess RewriteRule, github.com/cirros-dev/cirros/issues/5);
- github.com: a release download is a 302 to a signed, short-lived URL on GitHub's asset
  host, release-assets.githubusercontent.com since 2025 (objects.githubusercontent.com
  before), with another path and a query string;
- cloud.debian.org: serves its images itself.
Port 80 everywhere (the real chain is 443 throughout): one port for every hop, as Glance
admits only the ports of [import_filtering_opts] allowed_ports at each hop.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from pathlib import Path
from urllib.parse import urlparse

# Each real host and the local address that plays it. 127.0.0.2 stays unused: it stands
# for the outer cloud's metadata service in test_overcloud.py.
STAND_IN = {
    "download.cirros-cloud.net": "127.0.0.11",
    "github.com": "127.0.0.12",
    "release-assets.githubusercontent.com": "127.0.0.13",
    "cloud.debian.org": "127.0.0.14",
}
PORT = 80
SIZE = 2**20  # bytes of each image (zeros: a raw image)


def local_url(url: str) -> str:
    """URL with its host replaced by the stand-in's address (http, port 80)."""
    u = urlparse(url)
    return u._replace(scheme="http", netloc=STAND_IN[u.hostname]).geturl()


def _routes(urls: list[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """{address: {path (with query): ("redirect", location) | ("file", name)}} for the
    real URLs, as their hosts answer them (module docstring)."""
    routes: dict[str, dict[str, tuple[str, str]]] = {a: {} for a in STAND_IN.values()}
    for n, url in enumerate(urls):
        u = urlparse(url)
        name = Path(u.path).name
        if u.hostname == "download.cirros-cloud.net":
            version = u.path.strip("/").split("/")[0]
            release = f"/cirros-dev/cirros/releases/download/{version}/{name}"
            asset = (f"/github-production-release-asset/{230000000 + n}/{n:08x}-cafe-4e3a-9d2b-000000000000"
                     f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
                     f"&response-content-disposition=attachment%3B%20filename%3D{name}")
            routes[STAND_IN["download.cirros-cloud.net"]][u.path] = (
                "redirect", f"http://{STAND_IN['github.com']}{release}")
            routes[STAND_IN["github.com"]][release] = (
                "redirect", f"http://{STAND_IN['release-assets.githubusercontent.com']}{asset}")
            routes[STAND_IN["release-assets.githubusercontent.com"]][asset] = ("file", name)
        elif u.hostname == "cloud.debian.org":
            routes[STAND_IN["cloud.debian.org"]][u.path] = ("file", name)
        else:
            raise ValueError(f"no local stand-in for {u.hostname}: add how it answers")
    return routes


@contextlib.contextmanager
def serve(urls: list[str], extra: dict[str, dict[str, tuple[str, str]]] | None = None):
    """Serve the images of URLS (real URLs) from their hosts' stand-ins, and the EXTRA
    routes ({address: {path: route}}); yields the list of requests seen, as (address, path)."""
    routes = _routes(urls)
    for address, more in (extra or {}).items():
        routes[address].update(more)
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            address = self.server.server_address[0]
            seen.append((address, self.path))
            kind, value = routes[address].get(self.path, ("missing", ""))
            if kind == "redirect":
                self.send_response(302)
                self.send_header("Location", value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "file":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(SIZE))
                self.end_headers()
                self.wfile.write(b"\0" * SIZE)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    servers = []
    try:
        for address in STAND_IN.values():
            server = http.server.ThreadingHTTPServer((address, PORT), Handler)
            servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        yield seen
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
