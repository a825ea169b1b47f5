"""TLS on the public endpoints: the environment's CA, the controller's certificate,
Traefik serving every Ingress with it and redirecting HTTP, the catalog and the
client files in HTTPS with the CA. The certificate is checked with the real
`openssl verify` and a real TLS handshake (Python's ssl, OpenSSL) on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import yaml
from cryptography import x509

from osception import config, endpoints, overcloud, render, tls


def _docs(plan):
    return [d for p, t in plan.files.items() if p.startswith("k8s-0/manifests/")
            for d in yaml.safe_load_all(t) if d]


def test_the_certificate_names_the_endpoints_and_chains_to_the_ca(default_plan, tmp_path):
    (secret,) = [d for d in _docs(default_plan) if d["metadata"]["name"] == "osception-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    chain = secret["stringData"]["tls.crt"]
    cert = x509.load_pem_x509_certificate(chain.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"*.{default_plan.domain}" in sans.get_values_for_type(x509.DNSName)
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == [default_plan.controller_ip]
    (tmp_path / "ca.pem").write_text(default_plan.files["k8s-0/ca.pem"])
    (tmp_path / "cert.pem").write_text(chain)
    r = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_real_handshake_with_the_ca_succeeds_and_without_it_fails(default_plan, default_secrets, tmp_path):
    (tmp_path / "chain.pem").write_text(tls.server_cert(default_secrets.tls, default_plan.domain, "127.0.0.1"))
    (tmp_path / "key.pem").write_text(default_secrets.tls["key"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(n):
        for _ in range(n):
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)
            except (ssl.SSLError, OSError):
                pass

    t = threading.Thread(target=serve, args=(2,), daemon=True)
    t.start()
    name = f"keystone.{default_plan.domain}"
    trusting = ssl.create_default_context(cafile=None, cadata=default_plan.files["k8s-0/ca.pem"])
    with socket.create_connection(("127.0.0.1", port)) as raw, trusting.wrap_socket(raw, server_hostname=name) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        s.sendall(b"x")
    default = ssl.create_default_context()  # the system's CAs only
    try:
        with socket.create_connection(("127.0.0.1", port)) as raw, default.wrap_socket(raw, server_hostname=name):
            raise AssertionError("a client without the environment's CA accepted the certificate")
    except ssl.SSLCertVerificationError:
        pass
    t.join(5)
    listener.close()


def test_every_ingress_is_https_and_http_redirects(default_plan):
    ingresses = [d for d in _docs(default_plan) if d["kind"] == "Ingress"]
    assert len(ingresses) == 7
    for ing in ingresses:
        (entry,) = ing["spec"]["tls"]
        assert entry["secretName"] == "osception-tls"
        assert entry["hosts"] == [r["host"] for r in ing["spec"]["rules"]]
    traefik = yaml.safe_load(default_plan.files["k8s-0/k3s/traefik-config.yaml"])
    assert (traefik["apiVersion"], traefik["kind"], traefik["metadata"]) == (
        "helm.cattle.io/v1", "HelmChartConfig", {"name": "traefik", "namespace": "kube-system"})
    args = yaml.safe_load(traefik["spec"]["valuesContent"])["additionalArguments"]
    assert "--entryPoints.web.http.redirections.entryPoint.to=websecure" in args
    assert "--entryPoints.web.http.redirections.entryPoint.scheme=https" in args
    user_data = yaml.safe_load(default_plan.files["k8s-0/user-data"])
    written = {f["path"]: f["content"] for f in user_data["write_files"]}
    assert written["/var/lib/rancher/k3s/server/manifests/traefik-config.yaml"] == \
        default_plan.files["k8s-0/k3s/traefik-config.yaml"]


def test_the_catalog_and_the_client_files_use_https_with_the_ca(tmp_path):
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    assert all(url.startswith("https://") for url in ep.public.values())
    assert all(s["public"].startswith("https://") for s in render.catalog(ep)["services"])
    cfg = config.load(None)
    access = overcloud.Access("https://keystone.x.sslip.io/v3", "a" * 20, "b" * 20, str(tmp_path / "ca.pem"))
    files = overcloud.write_access_files(access, cfg, tmp_path)
    assert f"export OS_CACERT={tmp_path / 'ca.pem'}" in files["admin"].read_text()
    clouds = yaml.safe_load(files["clouds.yaml"].read_text())["clouds"]
    assert all(c["cacert"] == str(tmp_path / "ca.pem") for c in clouds.values())


def test_the_plan_stays_byte_identical_with_the_certificate(state_home):
    from osception import secrets
    cfg = config.load(None)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    a, b = render.build(cfg, sec), render.build(cfg, sec)
    assert a.files == b.files
