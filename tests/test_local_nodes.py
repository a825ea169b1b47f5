"""The devcloud's local nodes (osception/devcloud/nodes.py): what each node is given,
and the relay that stands at the controller's address (a real one, in a network
namespace of its own, with a real TLS handshake)."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from osception import config, render, secrets
from osception.devcloud import nodes
from osception.render.env import source
from osception.render.layout import NODE_ETC
from osception.render.node import load_ansible_vars, pip_env
from tests import netns


@pytest.fixture(scope="module")
def dc_secrets(tmp_path_factory) -> secrets.Secrets:
    return secrets.ensure(tmp_path_factory.mktemp("dc"), "devcloud")


@pytest.fixture(scope="module")
def node_plan(dc_secrets) -> render.Plan:
    return nodes.plan(config.Config(release="2025.1"), dc_secrets)


def test_nodes_get_the_placeholder_hosts_on_the_outer_network():
    addr = nodes.addresses(config.Config())
    assert addr["k8s-0"].ip == "10.231.0.10" == nodes.controller_ip(config.Config())
    assert addr["compute-1"].ip == "10.231.0.21" and addr["network-0"].ip == "10.231.0.40"
    assert all(ip.startswith("10.231.0.") for ip in (a.ip for a in addr.values()))


def test_node_config_gives_the_provider_network_and_the_apt_proxy():
    cfg = nodes.node_config(config.Config())
    assert cfg.apt_proxy == "http://10.231.0.10:3142"
    assert cfg.public_network.mode == "provider" and cfg.public_network.cidr == "10.231.1.0/24"
    assert cfg.public_network.gateway == nodes.PROVIDER_GATEWAY
    # what differs from a cloud VM, each one variable the nodes' user data carries
    assert cfg.ovs_datapath == "netdev" and cfg.libvirt_cgroups is False


def test_each_node_gets_the_user_data_osception_plan_renders_for_it(node_plan, dc_secrets):
    """Exactly render.build's user data with this machine's addresses: the controller's
    names resolve to the relay, packages come through the apt proxy."""
    cfg = nodes.node_config(config.Config(release="2025.1"))
    again = render.build(cfg, dc_secrets, nodes.addresses(cfg))
    for node in ("compute-0", "network-0"):
        ud = node_plan.files[f"{node}/user-data"]
        assert ud == again.files[f"{node}/user-data"]
        doc = yaml.safe_load(ud)
        assert doc["apt"] == {"proxy": "http://10.231.0.10:3142"}
        hosts = next(f["content"] for f in doc["write_files"] if f["path"] == "/etc/hosts")
        assert hosts.startswith("10.231.0.10 keystone.10.231.0.10.sslip.io")


def test_the_local_nodes_take_pypi_where_the_release_packages_cannot_be_fetched_here(dc_secrets):
    """The local nodes reach the Debian archive only: the defaults (2026.2, packages from
    the backports by extrepo) give them node_source pypi, said in one line; the release
    Debian 13 carries keeps its packages. Every release whose packages run in a Debian
    root here (node_chroot_runs) is one the local nodes can fetch."""
    from osception import releases

    cfg = nodes.node_config(config.Config())
    assert cfg.node_source == "pypi" and cfg.pip_index_url == nodes.pip_index_url(cfg)
    assert nodes.source_note(config.Config()) == (
        "release 2026.2's node packages (extrepo:openstack_hibiscus) cannot be fetched here (the local "
        "nodes reach the Debian archive only): the local nodes use node_source: pypi")
    assert nodes.plan(config.Config(), dc_secrets).cfg.node_source == "pypi"
    assert nodes.node_config(config.Config(release="2025.1")).node_source == "packages"
    assert nodes.source_note(config.Config(release="2025.1")) is None
    assert nodes.source_note(config.Config(node_source="pypi")) is None
    for release in releases.RELEASES.values():
        if "packages" in release.node_chroot_runs:
            assert nodes.packages_here(release), release.name


def test_a_node_records_what_it_was_built_from():
    """What decides whether a node is rebuilt (LocalNodes.up): another release, node
    source or base than its record."""
    base = "/cache/nodes/base-trixie"
    default = nodes.built_from(config.Config(), base)
    assert default == {"release": "2026.2", "node_source": "pypi", "base": base}
    assert nodes.built_from(config.Config(release="2025.1"), base)["node_source"] == "packages"
    assert nodes.built_from(config.Config(node_source="pypi"), base) == default
    assert nodes.built_from(config.Config(), f"/layer:{base}") != default


def test_network_config_is_static_by_name():
    net = yaml.safe_load(nodes.network_config(nodes.addresses(config.Config())["compute-0"]))
    assert net == {"version": 2, "ethernets": {"eth0": {"addresses": ["10.231.0.20/24"]}}}


def test_apt_proxy_must_be_an_http_url():
    with pytest.raises(ValueError, match="apt_proxy"):
        config.Config(apt_proxy="ftp://x")
    assert config.Config(apt_proxy="http://10.0.0.5:3142").apt_proxy == "http://10.0.0.5:3142"


def test_pypi_nodes_get_the_pip_proxy_as_their_index_and_pip_its_environment(dc_secrets):
    assert nodes.node_config(config.Config(release="2025.1")).pip_index_url is None  # packages: no pip
    cfg = nodes.node_config(config.Config(release="2026.2", node_source="pypi"))
    assert cfg.pip_index_url == "http://10.231.0.10:3141/index/"
    user_data = render.build(cfg, dc_secrets, nodes.addresses(cfg)).files["compute-0/user-data"]
    written = {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}
    node_vars = load_ansible_vars(written[f"{NODE_ETC}/vars.yml"])
    assert node_vars["pip_env"] == {"PIP_INDEX_URL": "http://10.231.0.10:3141/index/",
                                    "PIP_TRUSTED_HOST": "10.231.0.10:3141"}
    assert pip_env("https://mirror.example.com/simple/") == {
        "PIP_INDEX_URL": "https://mirror.example.com/simple/"}  # https: trusted by its certificate
    with pytest.raises(ValueError, match="pip_index_url"):
        config.Config(pip_index_url="file:///srv/simple")


# --- the relay, for real --------------------------------------------------------------

@pytest.fixture
def netns_root():
    """Root, and `ip netns` (slow tier: tests/conftest.py SLOW_FIXTURES)."""
    with netns.namespace("osc-test", [
            ["link", "add", "br-t", "type", "bridge"], ["addr", "add", "10.231.99.10/24", "dev", "br-t"],
            ["link", "set", "br-t", "up"], ["link", "set", "lo", "up"]], "the relay test") as name:
        yield name


def test_a_node_and_the_bake_builder_are_plugged_alike(netns_root, monkeypatch):
    """nodes._plug (LocalNodes.wire's, the bake builder's), with the test's namespace
    and bridge as the outer cloud's: the inside end in the node's namespace with the
    port's MAC, the outside end on the bridge; a port without a MAC gets no link, and
    plugging again keeps a running node's link (the same interface, not a new one)."""
    import os

    monkeypatch.setattr(nodes, "OUTER_NETNS", netns_root)
    inner = f"osc-plug-{os.getpid()}"

    def link(name: str, ns: str) -> dict:
        r = subprocess.run(["ip", "-j", "-n", ns, "link", "show", name], capture_output=True, text=True)
        return json.loads(r.stdout)[0] if r.returncode == 0 else {}

    links = [("eth0", "o-plug", "br-t", "fa:16:3e:00:00:42"), ("eth1", "p-plug", "br-t", None)]
    try:
        nodes._plug(inner, links)
        eth0 = link("eth0", inner)
        assert eth0["address"] == "fa:16:3e:00:00:42" and link("lo", inner)["operstate"] == "UNKNOWN"
        assert link("o-plug", netns_root)["master"] == "br-t" and "UP" in link("o-plug", netns_root)["flags"]
        assert link("eth1", inner) == {} and link("p-plug", netns_root) == {}
        nodes._plug(inner, links)
        assert link("eth0", inner)["ifindex"] == eth0["ifindex"]
    finally:
        subprocess.run(["ip", "netns", "del", inner], check=False)


def _backend(body: bytes) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_relay_forwards_raw_tcp_inside_its_namespace(netns_root, tmp_path, default_secrets):
    """The relay stands at the controller's address in the outer namespace and forwards
    raw TCP to 127.0.0.1, as servicelb does: a TLS backend's own certificate reaches the
    client in the namespace (verified by the environment's CA, so the relay's bytes are
    the backend's), a plain one answers too, and nothing listens outside the namespace."""
    import ssl

    from osception import tls
    ingress = tls.ingress(None, default_secrets.tls,
                          tls.server_cert(default_secrets.tls, "10.231.99.10.sslip.io", "10.231.99.10"))
    (tmp_path / "cert.pem").write_text(ingress.chain)
    (tmp_path / "key.pem").write_text(ingress.key)
    (tmp_path / "ca.pem").write_text(ingress.ca)
    traefik, metadata = _backend(b"keystone"), _backend(b"metadata")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    traefik.socket = ctx.wrap_socket(traefik.socket, server_side=True)  # as Traefik's websecure
    domain = "10.231.99.10.sslip.io"
    routes = {"netns": netns_root,
              "routes": [{"listen": "10.231.99.10:443", "to": f"127.0.0.1:{traefik.server_port}"},
                         {"listen": "10.231.99.10:8775", "to": f"127.0.0.1:{metadata.server_port}"}]}
    (tmp_path / "routes.json").write_text(json.dumps(routes))
    relay = subprocess.Popen([sys.executable, "-m", "osception.devcloud.relay", str(tmp_path / "routes.json")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert "relay ready" in relay.stdout.readline()

        def curl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", netns_root, "curl", "-sS", "--max-time", "5", *args],
                                  capture_output=True, text=True)

        r = curl("--cacert", str(tmp_path / "ca.pem"), "--resolve", f"keystone.{domain}:443:10.231.99.10",
                 f"https://keystone.{domain}/")
        assert r.stdout == "keystone", r.stderr
        r = curl("http://10.231.99.10:8775/")
        assert r.stdout == "metadata", r.stderr
        # Its listeners are inside the namespace, none in this machine's own.
        inside = subprocess.run(["ip", "netns", "exec", netns_root, "ss", "-Hltn"],
                                capture_output=True, text=True, check=True).stdout
        here = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
        assert "10.231.99.10:443" in inside and "10.231.99.10:" not in here
    finally:
        relay.terminate()
        relay.wait(10)
        traefik.shutdown()
        metadata.shutdown()


def test_tap_replugger_is_the_userspace_datapaths_alone_and_passes_shellcheck(tmp_path):
    """The compute's tap replugger (tasks/compute.yml): its script through shellcheck, and
    its tasks only where the datapath is netdev (the local nodes run it for real: the local
    cloud pass's soft reboot and resume)."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run scripts/test.sh")
    tasks = [t for t in yaml.safe_load(source("ansible/tasks/compute.yml")) if "osception-tap-replug" in str(t)]
    assert len(tasks) == 3 and all("ovs_datapath == \"netdev\"" in t["when"] for t in tasks)
    script = next(t["ansible.builtin.copy"]["content"] for t in tasks
                  if t.get("ansible.builtin.copy", {}).get("dest") == "/usr/local/sbin/osception-tap-replug")
    path = tmp_path / "osception-tap-replug"
    path.write_text(script)
    r = subprocess.run([exe, "-s", "sh", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("datapath", ["system", "netdev"])
def test_ovs_ports_script_passes_shellcheck(datapath, tmp_path):
    """The script that readies OVS's physical ports (tasks/common.yml) as Ansible writes
    it (its Jinja rendered as Ansible does, trim_blocks), through shellcheck; the local
    nodes run it for real (the netdev datapath)."""
    import jinja2
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run scripts/test.sh")
    tasks = yaml.safe_load(source("ansible/tasks/common.yml"))
    script = next(t["ansible.builtin.copy"]["content"] for t in tasks
                  if t.get("ansible.builtin.copy", {}).get("dest") == "/usr/local/sbin/osception-ovs-ports")
    path = tmp_path / "osception-ovs-ports"
    path.write_text(jinja2.Environment(trim_blocks=True).from_string(script).render(
        node_ip="10.231.0.21", public_mac="fa:16:3e:00:00:01", ovs_datapath=datapath))
    r = subprocess.run([exe, "-s", "sh", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    text = path.read_text()
    assert '= "fa:16:3e:00:00:01" ]' in text
    assert ("ip=10.231.0.21" in text) == (datapath == "netdev")
    assert ("add-br br-phy" in text) == (datapath == "netdev")


def test_l3_leftovers_script_passes_shellcheck_and_stops_between_the_agent_and_ovs(tmp_path):
    """The script that ends the L3 agent's routers at a node's shutdown (tasks/common.yml)
    through shellcheck, and its unit ordered so that systemd stops it after the agent and
    before Open vSwitch (the local cloud's reboot of a network node runs it for real)."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run scripts/test.sh")
    copies = {t["ansible.builtin.copy"]["dest"]: t["ansible.builtin.copy"].get("content")
              for t in yaml.safe_load(source("ansible/tasks/common.yml")) if "ansible.builtin.copy" in t}
    path = tmp_path / "osception-l3-leftovers"
    path.write_text(copies["/usr/local/sbin/osception-l3-leftovers"])
    r = subprocess.run([exe, "-s", "sh", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    unit = configparser.ConfigParser(strict=False)
    unit.read_string(copies["/etc/systemd/system/osception-l3-leftovers.service"])
    assert unit["Unit"]["Before"] == "neutron-l3-agent.service"  # started before, stopped after it
    assert "openvswitch-switch.service" in unit["Unit"]["After"].split()  # stopped before OVS
    assert unit["Service"]["ExecStop"] == "/usr/local/sbin/osception-l3-leftovers"
