"""RabbitMQ as the release's services use it: every config with a transport_url (the
controller's pods, the compute and network nodes) has the `[oslo_messaging_rabbit]`
queue options kolla-ansible renders for that release, known to that release's
oslo.messaging; and the release table's RabbitMQ facts are those of its Kolla image.

With oslo.messaging's defaults every queue is non-durable and non-exclusive, which
RabbitMQ 4.3 (Kolla 23's) refuses: tests/devcloud/test_broker.py shows both on a
broker that denies what the release's RabbitMQ denies."""

from __future__ import annotations

import configparser
import json
import subprocess

import jinja2
import pytest
import yaml

from osception import config, endpoints, releases, render, secrets, topology
from osception.render.conf import node_config, service_config

SECTION = "oslo_messaging_rabbit"
# kolla-ansible options of the section we do not render, each with why: the thread
# model of the heartbeat (oslo.messaging 18, 2026.2's, has no such option any more),
# and the queue manager's process name of nova-api and nova-metadata, one nova.conf
# here serving every nova pod (each pod's own hostname keeps its queue names apart).
NOT_RENDERED = {"heartbeat_in_pthread", "processname"}


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def _on_the_bus(release: str, state_home) -> dict[str, tuple[configparser.ConfigParser, bool]]:
    """{label: (parsed file, reached over TLS)} of every rendered INI file with a
    transport_url: the controller's (plain TCP inside the cluster) and a compute and a
    network node's (RabbitMQ's TLS listener)."""
    cfg = config.Config(release=release)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    plan = render.build(cfg, sec)
    out = {}
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    for name, text in service_config(cfg, plan.release, sec, ep).items():
        out[f"controller:{name}"] = (_parse(text), False)
    addr = topology.placeholder_addresses(cfg)
    for node in plan.nodes:
        if node.name in ("compute-0", "network-0"):
            for dest, text in node_config(cfg, plan.release, sec, node, addr[node.name],
                                          plan.node_endpoints()).items():
                out[f"{node.name}:{dest}"] = (_parse(text), True)
    return {label: v for label, v in out.items() if v[0].has_option("DEFAULT", "transport_url")}


def test_every_service_on_the_bus_has_the_release_queue_options(release, state_home):
    rel = releases.get(release)
    files = _on_the_bus(release, state_home)
    # nova and neutron on the controller, nova-compute and the agents on the nodes
    assert {"controller:nova.conf", "controller:neutron.conf",
            "compute-0:/etc/nova/nova.conf", "network-0:/etc/neutron/neutron.conf"} <= set(files)
    for label, (parser, tls) in files.items():
        assert parser.has_section(SECTION), f"{label}: no [{SECTION}]"
        opts = dict(parser.items(SECTION, raw=True)) if parser.has_section(SECTION) else {}
        opts = {k: v for k, v in opts.items() if k not in parser.defaults()}
        assert opts.get("rabbit_quorum_queue") == "true", label
        on = {"use_queue_manager": rel.rabbit_queue_manager,
              "rabbit_transient_quorum_queue": rel.rabbit_transient_quorum_queue,
              "rabbit_stream_fanout": rel.rabbit_stream_fanout}
        for option, wanted in on.items():
            assert (opts.get(option) == "true") == wanted, f"{label}: {option}"
        if rel.rabbit_stream_fanout:  # a stream consumer needs a prefetch count
            assert int(opts["rabbit_qos_prefetch_count"]) == rel.rabbit_qos_prefetch_count
        assert (opts.get("ssl") == "true") == tls, f"{label}: ssl"
        assert ("ssl_ca_file" in opts) == tls, f"{label}: ssl_ca_file"
        if "transient_nonexcl_queues" in rel.rabbitmq_denied:
            # reply and fanout queues are durable (quorum, stream), else 541 on declare
            assert opts.get("rabbit_transient_quorum_queue") == "true", label
            assert opts.get("rabbit_stream_fanout") == "true", label


def test_every_rabbitmq_series_has_its_deprecated_features():
    for rel in releases.RELEASES.values():
        assert rel.rabbitmq in releases.RABBITMQ_DENIED, rel.name


LIST_OPTS = """
import json, sys
from oslo_config import cfg
from oslo_messaging._drivers import impl_rabbit
conf = cfg.ConfigOpts()
conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
conf(args=[], default_config_files=sys.argv[1:])
group = conf.oslo_messaging_rabbit
print(json.dumps({o.dest: str(getattr(group, o.dest)) for o in impl_rabbit.rabbit_opts}))
"""


def test_the_options_are_known_to_the_release_oslo_messaging(release, release_venv, state_home, tmp_path):
    """Each option of the section is one of the release's oslo.messaging, and the
    value its oslo.config loads is the one rendered (not the option's default)."""
    python = release_venv / "bin" / "python"
    for label, (parser, _tls) in _on_the_bus(release, state_home).items():
        f = tmp_path / "only.conf"
        only = configparser.ConfigParser(interpolation=None)
        only[SECTION] = {k: v for k, v in parser.items(SECTION, raw=True) if k not in parser.defaults()}
        with open(f, "w") as out:
            only.write(out)
        r = subprocess.run([str(python), "-c", LIST_OPTS, str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{label}: {r.stderr[-800:]}"
        loaded = json.loads(r.stdout)
        for option, value in only[SECTION].items():
            assert option in loaded, f"{label}: {option} is not an option of {release}'s oslo.messaging"
            assert loaded[option].lower() == value.lower(), f"{label}: {option}"


# -- against the release's Kolla and kolla-ansible sources ----------------------------

@pytest.fixture(scope="module")
def kolla_sources(release):
    from tests.kolla import sources
    return sources.get(releases.get(release))


def test_rabbitmq_series_is_the_kolla_image_pin(release, kolla_sources):
    """Release.rabbitmq is the rabbitmq-server pin of the release's Kolla `rabbitmq`
    image (the image osception runs), for each base distro Kolla builds."""
    rel = releases.get(release)
    # Kolla 18 and 20 build two images under docker/rabbitmq/: rabbitmq/ and rabbitmq-4-1/
    image = kolla_sources.docker / "rabbitmq"
    image = image / "rabbitmq" if (image / "rabbitmq" / "Dockerfile.j2").exists() else image
    pins = sorted(image.glob("apt_preferences_rabbitmq.*"))
    assert pins, f"no rabbitmq apt pin in {image}"
    for pin in pins:
        stanzas = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                   for block in pin.read_text().split("\n\n")]
        server = next(s for s in stanzas if s.get("Package") == "rabbitmq-server")
        assert server["Pin"] == f"version {rel.rabbitmq}.*", pin


def _kolla_ansible_vars(kolla_sources) -> dict:
    """kolla-ansible's group_vars (one all.yml before 21, all/*.yml after)."""
    group_vars = kolla_sources.ansible / "ansible" / "group_vars"
    files = [group_vars / "all.yml"] if (group_vars / "all.yml").exists() else sorted((group_vars / "all").glob("*.yml"))
    out = {}
    for f in files:
        out.update(yaml.safe_load(f.read_text()) or {})
    return out


def _kolla_ansible_section(kolla_sources, role: str, template: str, context: dict) -> dict[str, str]:
    """The `[oslo_messaging_rabbit]` of a kolla-ansible role's template, rendered with the
    role's group_vars (om_*, resolved as Ansible would) and `context`."""
    class Off(jinja2.ChainableUndefined):
        def __bool__(self):
            return False

    env = jinja2.Environment(undefined=Off)
    env.filters["bool"] = lambda v: str(v).lower() in ("true", "yes", "1")
    values = {k: v for k, v in _kolla_ansible_vars(kolla_sources).items() if k.startswith("om_")}
    values |= context
    for _ in range(5):  # om_* defaults refer to each other
        values = {k: env.from_string(v).render(values) if isinstance(v, str) else v for k, v in values.items()}
    text = (kolla_sources.roles / role / "templates" / template).read_text()
    start = text.index(f"[{SECTION}]\n")
    body = text[start:text.index("\n\n", start)]
    rendered = env.from_string(body).render(values)
    return dict(line.split(" = ", 1) for line in rendered.splitlines()[1:] if " = " in line)


@pytest.mark.parametrize("role,template,service,ours", [
    ("nova", "nova.conf.j2", "nova-conductor", "controller:nova.conf"),
    ("neutron", "neutron.conf.j2", "neutron-server", "controller:neutron.conf"),
    ("nova-cell", "nova.conf.j2", "nova-compute", "compute-0:/etc/nova/nova.conf"),
    ("neutron", "neutron.conf.j2", "neutron-openvswitch-agent", "network-0:/etc/neutron/neutron.conf"),
])
def test_queue_options_are_kolla_ansible_s(release, kolla_sources, state_home, role, template, service, ours):
    """Every option kolla-ansible's role sets in [oslo_messaging_rabbit], with its
    value (TLS as the file reaches RabbitMQ), is ours, but NOT_RENDERED; and we set none
    it does not."""
    parser, tls = _on_the_bus(release, state_home)[ours]
    mine = {k: v for k, v in parser.items(SECTION, raw=True) if k not in parser.defaults()}
    theirs = _kolla_ansible_section(kolla_sources, role, template, {
        "service_name": service, "om_enable_rabbitmq_tls": tls,
        "om_rabbitmq_cacert": mine.get("ssl_ca_file", "")})
    assert {k: v for k, v in theirs.items() if k not in NOT_RENDERED} == mine
