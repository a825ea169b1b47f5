"""The compute and network nodes trust the environment's CA and reach the control
plane over TLS only: the APIs by their public names (https, resolved to the
controller's address in the nodes' /etc/hosts, never by public DNS), RabbitMQ on
its TLS listener. Proven on what the plan renders: the node configs and user data,
the controller's Services, a real handshake with the controller's certificate, and
(slow) a real RabbitMQ with the rendered TLS listener, reached by oslo.messaging
with the rendered node settings."""

from __future__ import annotations

import configparser
import os
import re
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from osception import endpoints, services
from osception.render.controller import catalog
from tests import pki

REPO = Path(__file__).resolve().parent.parent
SERVICES_VENV = REPO / ".venv-openstack-2026.1"


def _ini(text: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(interpolation=None)
    p.optionxform = str
    p.read_string(text)
    return p


def _user_data(plan, node):
    return yaml.safe_load(plan.files[f"{node}/user-data"])


def _written(plan, node):
    return {f["path"]: f for f in _user_data(plan, node)["write_files"]}


def _manifest_docs(plan):
    return [d for p, t in plan.files.items() if p.startswith("k8s-0/manifests/")
            for d in yaml.safe_load_all(t) if d]


def _hosts(plan, node) -> dict[str, str]:
    """name -> address, from the /etc/hosts lines the node's user data appends."""
    entry = _written(plan, node)["/etc/hosts"]
    assert entry.get("append") is True  # the image's own lines stay
    out = {}
    for line in entry["content"].splitlines():
        if line.strip() and not line.startswith("#"):
            ip, *names = line.split()
            out.update({n: ip for n in names})
    return out


def _urls(text: str) -> list[str]:
    """The URLs a node's service calls (not the console URL it hands to browsers, nor
    the other computes' libvirt a live migration reaches over SSH, test_host_keys')."""
    return [url for line in text.splitlines()
            if not line.startswith(("novncproxy_base_url", "live_migration_uri"))
            for url in re.findall(r"\b[a-z]+://[^\s]+", line)]


def test_nodes_trust_the_environment_ca(default_plan):
    for node in ("compute-0", "network-0"):
        written = _written(default_plan, node)
        ca = written[endpoints.NODE_CA]
        assert ca["content"] == default_plan.files["k8s-0/ca.pem"]
        assert ca["permissions"] == "0644"  # the services' users read it
        assert endpoints.NODE_CA.startswith("/usr/local/share/ca-certificates/")
        assert endpoints.NODE_CA.endswith(".crt")  # what update-ca-certificates picks up
        setup = written["/etc/osception/setup"]["content"]
        assert "update-ca-certificates" in setup


def test_nodes_resolve_the_api_names_to_the_controller_in_etc_hosts(default_plan):
    for node in ("compute-0", "network-0"):
        ud = _user_data(default_plan, node)
        # cloud-init keeps its hands off the other lines of /etc/hosts on every boot
        assert ud["manage_etc_hosts"] == "localhost"
        hosts = _hosts(default_plan, node)
        for name, api in services.APIS.items():
            if api.catalog_type:
                assert hosts[f"{name}.{default_plan.domain}"] == default_plan.controller_ip


def test_node_services_reach_every_api_over_https_with_the_ca(default_plan):
    for node in ("compute-0", "network-0"):
        hosts = _hosts(default_plan, node)
        for rel, text in default_plan.files.items():
            if not rel.startswith(f"{node}/config/"):
                continue
            for url in _urls(text):
                parts = urllib.parse.urlsplit(url)
                if parts.scheme == "rabbit":
                    continue
                assert parts.scheme == "https" or parts.port == services.APIS["metadata"].port, (rel, url)
                if parts.scheme == "https":
                    assert parts.hostname in hosts, (rel, url)
    nova = _ini(default_plan.files["compute-0/config/nova.conf"])
    for section in ("placement", "neutron", "glance", "service_user"):
        assert nova[section]["cafile"] == endpoints.NODE_CA, section
    for section in ("placement", "neutron", "glance"):
        # the public interface: the same https names as users, resolved privately
        assert nova[section]["valid_interfaces"] == "public", section
    assert nova["service_user"]["auth_url"].startswith(f"https://keystone.{default_plan.domain}")


def test_node_services_use_rabbitmq_over_tls_with_the_ca(default_plan):
    for rel in ("compute-0/config/nova.conf", "compute-0/config/neutron.conf",
                "network-0/config/neutron.conf"):
        conf = _ini(default_plan.files[rel])
        url = urllib.parse.urlsplit(conf["DEFAULT"]["transport_url"])
        assert (url.hostname, url.port) == (default_plan.controller_ip, services.RABBITMQ_TLS_PORT), rel
        rabbit = conf["oslo_messaging_rabbit"]
        assert (rabbit["ssl"], rabbit["ssl_ca_file"]) == ("true", endpoints.NODE_CA), rel
    setup = _written(default_plan, "compute-0")["/etc/osception/setup"]["content"]
    assert f"'</dev/tcp/\"$0\"/\"$1\"' {default_plan.controller_ip} {services.RABBITMQ_TLS_PORT}" in setup
    assert f"--cacert {endpoints.NODE_CA} https://keystone.{default_plan.domain}/v3" in setup


def test_the_controller_opens_only_tls_and_metadata_to_the_nodes(default_plan):
    svcs = {d["metadata"]["name"]: d for d in _manifest_docs(default_plan) if d["kind"] == "Service"}
    facing = {name: [p["port"] for p in s["spec"]["ports"]] for name, s in svcs.items()
              if s["spec"].get("type", "ClusterIP") == "LoadBalancer"}
    # Traefik (443) is k3s's own LoadBalancer; no API's plain port is on the controller's IP.
    assert facing == {"rabbitmq-tls": [services.RABBITMQ_TLS_PORT],
                      "metadata": [services.APIS["metadata"].port]}
    assert svcs["rabbitmq-tls"]["spec"]["selector"] == svcs["rabbitmq"]["spec"]["selector"]
    assert svcs["rabbitmq"]["spec"]["type"] == "ClusterIP"  # the pods' plain in-cluster listener
    # and the outer security group opens no API's own port to access_cidr (noVNC: HTTPS)
    assert not set(services.PUBLIC_PORTS) & {a.port for a in services.APIS.values()}


def test_the_catalog_internal_interface_stays_inside_the_cluster():
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    for s in catalog(ep)["services"]:
        api = services.APIS[s["name"]]
        assert s["internal"] == f"http://{api.name}:{api.port}{api.path}"
        assert s["public"] == f"https://{api.name}.203.0.113.10.sslip.io{api.path}"


def _rabbitmq_conf(plan) -> dict[str, str]:
    (cm,) = [d for d in _manifest_docs(plan) if d["metadata"]["name"] == "rabbitmq-config"]
    return dict(line.split(" = ", 1) for line in cm["data"]["rabbitmq.conf"].splitlines()
                if line.strip() and not line.startswith("#"))


def _rabbitmq_files(plan) -> dict[str, str]:
    """dest -> content of the TLS files rabbitmq's config.json installs."""
    import json
    docs = _manifest_docs(plan)
    (cm,) = [d for d in docs if d["metadata"]["name"] == "rabbitmq-config"]
    (secret,) = [d for d in docs if d["metadata"]["name"] == "rabbitmq-secrets"]
    out = {}
    for f in json.loads(cm["data"]["rabbitmq.json"])["config_files"]:
        key = f["source"].rsplit("/", 1)[1]
        if key.endswith(".pem"):
            out[f["dest"]] = secret["stringData"][key]
    return out


def test_rabbitmq_listens_with_tls_on_the_kolla_paths(default_plan):
    conf = _rabbitmq_conf(default_plan)
    assert conf["listeners.ssl.1"] == f"0.0.0.0:{services.RABBITMQ_TLS_PORT}"
    assert conf["listeners.tcp.1"] == f"0.0.0.0:{services.RABBITMQ_PORT}"
    files = _rabbitmq_files(default_plan)
    # kolla-ansible's rabbitmq role: /etc/rabbitmq/certs/rabbitmq-{cert,key}.pem
    assert set(files) == {"/etc/rabbitmq/certs/rabbitmq-cert.pem", "/etc/rabbitmq/certs/rabbitmq-key.pem"}
    assert conf["ssl_options.certfile"] == "/etc/rabbitmq/certs/rabbitmq-cert.pem"
    assert conf["ssl_options.keyfile"] == "/etc/rabbitmq/certs/rabbitmq-key.pem"


def test_a_node_with_only_the_ca_verifies_the_controller_by_name_and_address(default_plan, tmp_path):
    """The certificate the controller serves (its osception-tls Secret), a real TLS
    server, and a client holding only the CA the nodes get: every https name of the
    node configs and the controller's address verify."""
    (secret,) = [d for d in _manifest_docs(default_plan) if d["metadata"]["name"] == "osception-tls"]
    chain, key = secret["stringData"]["tls.crt"], secret["stringData"]["tls.key"]
    ca = _written(default_plan, "compute-0")[endpoints.NODE_CA]["content"]
    names = sorted({urllib.parse.urlsplit(u).hostname
                    for rel, text in default_plan.files.items() if rel.startswith("compute-0/config/")
                    for u in _urls(text) if u.startswith("https://")})
    assert f"keystone.{default_plan.domain}" in names
    names.append(default_plan.controller_ip)
    for name in names:  # strict, as Python 3.13 (Debian 13's, the nodes') verifies by default
        assert pki.handshake(chain, key, name, ca, tmp_path, strict=True) in ("TLSv1.2", "TLSv1.3"), name
    # A name the certificate lacks.
    assert pki.handshake(chain, key, "keystone.example.org", ca, tmp_path).startswith("refused")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OSLO_CAST = """
import sys
import oslo_messaging
from oslo_config import cfg
from oslo_messaging._metrics.client import oslo_messaging_metrics
conf = cfg.ConfigOpts()
conf.register_opts(oslo_messaging_metrics, group="oslo_messaging_metrics")
conf(["--config-file", sys.argv[1]], project="neutron")
transport = oslo_messaging.get_rpc_transport(conf)
client = oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="osception-tls-test"))
client.prepare(retry=0).cast({}, "ping")
transport.cleanup()
print("cast sent")
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not SERVICES_VENV.is_dir(),
                    reason="needs root (the broker's Debian 13 root) and the services' venv")
def test_oslo_messaging_reaches_the_rendered_tls_listener_with_only_the_ca(default_plan, tmp_path):
    """A throw-away RabbitMQ, the devcloud's (Debian 13's 4.x from its root in the machine
    cache, built once) denying what the release's RabbitMQ denies, with the rendered
    listener and certificate settings, and a node's rendered neutron.conf (address moved
    to 127.0.0.1): oslo.messaging casts over TLS with the release's queue options,
    verifying with the CA file alone; with another CA it is refused."""
    from osception.devcloud import infra
    from osception.devcloud.layout import Layout
    broker = infra.rabbitmq_root(Layout(tmp_path / "devcloud"), say=lambda *_: None)
    conf_dir, home = tmp_path / "etc", tmp_path / "home"
    (conf_dir / "certs").mkdir(parents=True)
    home.mkdir()
    for dest, text in _rabbitmq_files(default_plan).items():  # as config.json installs them
        path = conf_dir / Path(dest).relative_to(infra.RABBITMQ_ETC)
        path.write_text(text)
        path.chmod(0o600)
    amqp, tls_port, epmd_port, dist = _free_port(), _free_port(), _free_port(), _free_port()
    lines = [f"listeners.tcp.1 = 127.0.0.1:{amqp}", f"listeners.ssl.1 = 127.0.0.1:{tls_port}",
             "log.console = true", "log.file = false", "default_user = openstack",
             f"default_pass = {_password(default_plan)}"]
    lines += [f"{key} = {value}" for key, value in _rabbitmq_conf(default_plan).items()
              if key.startswith("ssl_options.")]
    lines += [f"deprecated_features.permit.{f} = false" for f in default_plan.release.rabbitmq_denied]
    (conf_dir / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
    (conf_dir / "enabled_plugins").write_text("[].\n")
    (conf_dir / "rabbitmq-env.conf").write_text("")
    etc, var = infra.RABBITMQ_ETC, infra.RABBITMQ_HOME
    env = dict(os.environ, HOME=var, RABBITMQ_NODENAME=f"osception-tls-test-{os.getpid()}@localhost",
               RABBITMQ_CONF_ENV_FILE=f"{etc}/rabbitmq-env.conf", RABBITMQ_CONFIG_FILE=f"{etc}/rabbitmq.conf",
               RABBITMQ_ADVANCED_CONFIG_FILE=f"{etc}/advanced.config",
               RABBITMQ_ENABLED_PLUGINS_FILE=f"{etc}/enabled_plugins",
               RABBITMQ_MNESIA_BASE=f"{var}/mnesia", RABBITMQ_LOG_BASE=f"{var}/log",
               RABBITMQ_LOGS="-", RABBITMQ_DIST_PORT=str(dist), ERL_EPMD_PORT=str(epmd_port),
               RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
    epmd = subprocess.Popen(["chroot", str(broker), "epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                            env=env)
    log = open(tmp_path / "rabbitmq.log", "w")
    rabbit = subprocess.Popen(infra.in_root(broker, {etc: conf_dir, var: home}, [infra.RABBITMQ_SERVER]),
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                assert rabbit.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "rabbitmq.log").read_text()[-3000:]
                time.sleep(0.5)
        ca = tmp_path / "ca.crt"
        ca.write_text(_written(default_plan, "compute-0")[endpoints.NODE_CA]["content"])
        node = default_plan.files["compute-0/config/neutron.conf"]
        node = node.replace(f"@{default_plan.controller_ip}:{services.RABBITMQ_TLS_PORT}/",
                            f"@127.0.0.1:{tls_port}/").replace(endpoints.NODE_CA, str(ca))
        assert f"127.0.0.1:{tls_port}" in node
        (tmp_path / "neutron.conf").write_text(node)
        py = str(SERVICES_VENV / "bin/python")
        # Its own process group, as systemd starts a service: oslo.messaging's queue
        # manager (use_queue_manager) reads /proc/<its process group>/stat, which is
        # gone when the group's leader has exited (a test run started in the background).
        r = subprocess.run([py, "-c", OSLO_CAST, str(tmp_path / "neutron.conf")],
                           capture_output=True, text=True, timeout=60, start_new_session=True)
        assert r.returncode == 0 and "cast sent" in r.stdout, r.stdout + r.stderr
        # Another environment's CA: the handshake fails, nothing is sent.
        from osception import tls
        ca.write_text(tls.make("other")["ca_cert"])
        r = subprocess.run([py, "-c", OSLO_CAST, str(tmp_path / "neutron.conf")],
                           capture_output=True, text=True, timeout=60, start_new_session=True)
        assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        os.killpg(rabbit.pid, 15)
        rabbit.wait(30)
        epmd.terminate()
        epmd.wait(10)
        log.close()


def _password(plan) -> str:
    url = _ini(plan.files["compute-0/config/neutron.conf"])["DEFAULT"]["transport_url"]
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password)
