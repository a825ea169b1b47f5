"""TLS on the public endpoints: the environment's CA, the controller's certificate,
Traefik serving every Ingress with it and redirecting HTTP, the catalog and the
client files in HTTPS with the CA. The certificate is checked with the real
`openssl verify` and a real TLS handshake (Python's ssl, OpenSSL) on 127.0.0.1."""

from __future__ import annotations

import subprocess

import yaml
from cryptography import x509

from osception import config, endpoints, overcloud, render, tls
from osception.devcloud import ingress
from osception.render.controller import catalog, ingress_hosts
from osception.render.layout import NODE_ETC
from tests import pki


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
    chain = tls.server_cert(default_secrets.tls, default_plan.domain, "127.0.0.1")
    name = f"keystone.{default_plan.domain}"
    ca = default_plan.files["k8s-0/ca.pem"]
    assert pki.handshake(chain, default_secrets.tls["key"], name, ca, tmp_path) in ("TLSv1.2", "TLSv1.3")
    # The system's CAs only: refused.
    assert pki.handshake(chain, default_secrets.tls["key"], name, None, tmp_path).startswith("refused")


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
    # Traefik's arguments as k3s's chart makes them (tests/test_ingress.py runs them)
    args = ingress.chart_arguments(yaml.safe_load(traefik["spec"]["valuesContent"]))
    assert "--entryPoints.web.http.redirections.entryPoint.to=:443" in args
    assert "--entryPoints.web.http.redirections.entryPoint.scheme=https" in args
    user_data = yaml.safe_load(default_plan.files["k8s-0/user-data"])
    written = {f["path"]: f["content"] for f in user_data["write_files"]}
    assert written["/var/lib/rancher/k3s/server/manifests/traefik-config.yaml"] == \
        default_plan.files["k8s-0/k3s/traefik-config.yaml"]


def test_the_catalog_and_the_client_files_use_https_with_the_ca(tmp_path):
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    assert all(url.startswith("https://") for url in ep.public.values())
    assert all(s["public"].startswith("https://") for s in catalog(ep)["services"])
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


# --- a certificate of the user's own (tls: in osception.yaml) ----------------------------



def _own_plan(tmp_path, with_ca=True):
    from typer.testing import CliRunner

    from osception.cli import app

    ca = pki.make()
    files = ca.write(tmp_path)
    cfg = tmp_path / "osception.yaml"  # the paths relative to it, not to the working folder
    cfg.write_text(f"domain: {pki.DOMAIN}\ntls:\n  certificate: fullchain.pem\n  key: key.pem\n"
                   + ("  ca: ca.pem\n" if with_ca else ""))
    out, home = tmp_path / "out", tmp_path / "home"
    r = CliRunner().invoke(app, ["plan", "-c", str(cfg), "--out", str(out), "--state-dir", str(home)])
    assert r.exit_code == 0, r.output
    return ca, files, out, home


def _manifest_docs(out):
    return [d for p in sorted((out / "k8s-0" / "manifests").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]


def test_own_certificate_is_what_traefik_serves_and_a_real_client_accepts_it(tmp_path):
    ca, files, out, home = _own_plan(tmp_path)
    docs = _manifest_docs(out)
    (secret,) = [d for d in docs if d["metadata"]["name"] == "osception-tls"]
    served, key = secret["stringData"]["tls.crt"], secret["stringData"]["tls.key"]
    assert x509.load_pem_x509_certificates(served.encode()) == [ca.leaf, ca.intermediate]
    assert tls._public(tls.serialization.load_pem_private_key(key.encode(), None).public_key()) == \
        tls._public(ca.key.public_key())
    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    assert len(ingresses) == 7
    for ing in ingresses:
        assert ing["spec"]["tls"] == [{"hosts": [f"{ing['metadata']['name']}.{pki.DOMAIN}"],
                                       "secretName": "osception-tls"}]
    # clients verify it with the user's CA (k8s-0/ca.pem), not the environment's
    assert (out / "k8s-0" / "ca.pem").read_text() == pki.pem(ca.root)
    name = f"keystone.{pki.DOMAIN}"
    assert pki.handshake(served, key, name, (out / "k8s-0" / "ca.pem").read_text(), tmp_path) in ("TLSv1.2", "TLSv1.3")
    env_ca = yaml.safe_load((home / "osception" / "secrets.yaml").read_text())["tls"]["ca_cert"]
    assert pki.handshake(served, key, name, env_ca, tmp_path).startswith("refused")
    assert pki.handshake(served, key, "keystone.other.example.com", pki.pem(ca.root), tmp_path).startswith("refused")


def test_own_key_is_only_in_the_private_secret_and_the_environment_ca_stays(tmp_path, default_secrets):
    ca, files, out, home = _own_plan(tmp_path)
    key_b64 = "".join(tls._pem_key(ca.key).splitlines()[1:-1])  # the served key, as PKCS#8
    body = "".join(files["key"].read_text().splitlines()[1:-1])  # the user's file

    def holds(text):  # the key's base64, whatever the line breaks and indentation
        flat = "".join(text.split())
        return key_b64 in flat or body in flat

    holding = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and holds(p.read_text()))
    assert holding == ["k8s-0/manifests/01-secrets.yaml"]  # (the user data holds it inside the archive)
    assert all(oct((out / p).stat().st_mode & 0o777) == "0o600" for p in holding + ["k8s-0/user-data"])
    assert not any(holds(p.read_text()) for p in (home / "osception").rglob("*") if p.is_file())
    sec = yaml.safe_load((home / "osception" / "secrets.yaml").read_text())
    assert set(sec["tls"]) == {"ca_cert", "ca_key", "key"}  # the environment's own CA is kept


def test_controller_checks_its_ingress_with_the_ca_that_issued_the_served_certificate(tmp_path):
    (tmp_path / "a").mkdir()
    ca, files, out, home = _own_plan(tmp_path / "a")
    written = {f["path"]: f.get("content") for f in yaml.safe_load((out / "k8s-0" / "user-data").read_text())
               ["write_files"]}
    assert written["/etc/osception/ca.pem"] == pki.pem(ca.root)
    setup = written["/usr/local/sbin/osception-setup"]
    assert f"curl -sf --cacert /etc/osception/ca.pem --resolve keystone.{pki.DOMAIN}:443:127.0.0.1" in setup
    # a public CA's certificate without tls.ca: the system's CAs, no ca.pem anywhere
    (tmp_path / "b").mkdir()
    ca, files, out, home = _own_plan(tmp_path / "b", with_ca=False)
    written = {f["path"]: f.get("content") for f in yaml.safe_load((out / "k8s-0" / "user-data").read_text())
               ["write_files"]}
    assert "/etc/osception/ca.pem" not in written and not (out / "k8s-0" / "ca.pem").exists()
    assert f"curl -sf --resolve keystone.{pki.DOMAIN}:443:127.0.0.1" in written["/usr/local/sbin/osception-setup"]


def test_clients_use_tls_ca_or_the_system_cas(tmp_path, default_secrets):
    from osception import cli

    ca = pki.make()
    files = ca.write(tmp_path)
    for with_ca in (True, False):
        env_dir = tmp_path / f"env-{with_ca}"
        env_dir.mkdir(mode=0o700)
        own = config.Tls(certificate=files["certificate"], key=files["key"], ca=files["ca"] if with_ca else None)
        cfg = config.Config(domain=pki.DOMAIN, tls=own)
        access = cli._access(cfg, env_dir, default_secrets, None)
        assert access.auth_url == f"https://keystone.{pki.DOMAIN}/v3"
        out = overcloud.write_access_files(access, cfg, env_dir)
        clouds = yaml.safe_load(out["clouds.yaml"].read_text())["clouds"]
        openrc = out["admin"].read_text()
        if with_ca:
            assert (env_dir / "ca.pem").read_text() == pki.pem(ca.root)
            assert all(c["cacert"] == str(env_dir / "ca.pem") for c in clouds.values())
            assert f"export OS_CACERT={env_dir / 'ca.pem'}" in openrc
        else:
            assert not any("cacert" in c for c in clouds.values()) and "OS_CACERT" not in openrc
            assert not (env_dir / "ca.pem").exists()


def test_own_certificate_naming_each_endpoint_instead_of_a_wildcard(tmp_path, default_secrets):
    ca = pki.make()
    hosts = [f"{n}.{pki.DOMAIN}" for n in ("keystone", "glance", "placement", "neutron", "nova", "novnc", "skyline")]
    files = ca.write(tmp_path, leaf=ca.leaf_for(hosts))
    cfg = config.Config(domain=pki.DOMAIN, tls=config.Tls(certificate=files["certificate"], key=files["key"]))
    plan = render.build(cfg, default_secrets)
    assert sorted(ingress_hosts(t for p, t in plan.files.items() if p.startswith("k8s-0/manifests/"))) \
        == sorted(hosts)
    assert "k8s-0/ca.pem" not in plan.files  # no tls.ca: clients use the system's CAs


def _node_cafiles(out, node="compute-0"):
    """{option: CA file} of a node's config files, and the CA files its user data writes."""
    import configparser
    found = {}
    for conf in sorted((out / node / "config").iterdir()):
        p = configparser.ConfigParser(interpolation=None, strict=False)
        p.read_string(conf.read_text())
        for section in p.sections():
            for opt in ("cafile", "ssl_ca_file"):
                if p.has_option(section, opt):
                    found[f"{conf.name}[{section}]{opt}"] = p.get(section, opt)
    written = {f["path"]: f.get("content", "") for f in yaml.safe_load((out / node / "user-data").read_text())["write_files"]}
    return found, written


def test_nodes_verify_the_apis_with_tls_ca_and_rabbitmq_with_the_environment_ca(tmp_path):
    """With the user's certificate on the ingress, the nodes' services verify the APIs
    with tls.ca (written beside the environment's CA) and a real handshake with the
    served chain succeeds with that file; RabbitMQ's listener still carries the
    environment's certificate, verified with the environment's CA."""
    ca, files, out, home = _own_plan(tmp_path)
    found, written = _node_cafiles(out)
    api = {k: v for k, v in found.items() if not k.endswith("ssl_ca_file")}
    rabbit = {k: v for k, v in found.items() if k.endswith("ssl_ca_file")}
    assert api and set(api.values()) == {endpoints.NODE_INGRESS_CA}
    assert rabbit and set(rabbit.values()) == {endpoints.NODE_CA}
    assert written[endpoints.NODE_INGRESS_CA].strip() == pki.pem(ca.root).strip()
    env_ca = yaml.safe_load((home / "osception" / "secrets.yaml").read_text())["tls"]["ca_cert"]
    assert written[endpoints.NODE_CA].strip() == env_ca.strip()
    served = files["certificate"].read_text()
    key = files["key"].read_text()
    assert pki.handshake(served, key, f"glance.{pki.DOMAIN}", written[endpoints.NODE_INGRESS_CA],
                      tmp_path).startswith("TLS")
    assert pki.handshake(served, key, f"glance.{pki.DOMAIN}", written[endpoints.NODE_CA],
                      tmp_path).startswith("refused")


def test_nodes_use_the_system_cas_for_a_public_certificate_without_tls_ca(tmp_path):
    _, _, out, _ = _own_plan(tmp_path, with_ca=False)
    found, written = _node_cafiles(out)
    api = {v for k, v in found.items() if not k.endswith("ssl_ca_file")}
    assert api == {endpoints.SYSTEM_CA_BUNDLE}
    assert endpoints.NODE_INGRESS_CA not in written and endpoints.NODE_CA in written
    setup = written[f"{NODE_ETC}/setup"]
    assert f"curl -sf --cacert {endpoints.SYSTEM_CA_BUNDLE} https://keystone.{pki.DOMAIN}/v3" in setup


def test_a_ca_without_a_key_identifier_gets_a_note_a_new_one_none():
    """CAs made before key identifiers: strict verifiers refuse them (tests/pki.handshake
    strict), so plan and up say how to replace them; a new CA has one."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from osception import tls

    fresh = tls.make("x")
    assert tls.strict_note(fresh) is None
    key = serialization.load_pem_private_key(fresh["ca_key"].encode(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "osception x CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(key, hashes.SHA256()))
    note = tls.strict_note(dict(fresh, ca_cert=old.public_bytes(serialization.Encoding.PEM).decode()))
    assert "no subject key identifier" in note and "--regenerate-secrets" in note
