"""Every OpenStack config file osception generates, against the real option
definitions of the release: oslo-config-validator --fatal-warnings, then every
value loaded through oslo.config. Runs in .venv-openstack-2026.1 (scripts/test.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from osception import config, endpoints, ini, render, secrets, services, topology
from tests.validators import oslo

RELEASE = "2026.1"  # the release whose services are in the lock the suite installs


def _files(tmp_path, state_home):
    """(path, validator kind) of every rendered INI file: controller and nodes."""
    cfg = config.Config(release=RELEASE)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    out = []
    # The control plane, whole (before the secret split), as its services read it.
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    for name, text in render.service_config(cfg, sec, ep).items():
        out.append((name, text, name))
    # A compute and a network node.
    plan = render.build(cfg, sec)
    addr = topology.placeholder_addresses(cfg)
    for node in plan.nodes:
        if node.name in ("compute-0", "network-0"):
            files = render.node_config(cfg, sec, node, addr[node.name], plan.controller_ip, plan.domain)
            for dest, text in files.items():
                base = dest.rsplit("/", 1)[1]
                kind = "nova.conf" if base.startswith("nova") else base
                out.append((f"{node.name}:{base}", text, kind))
    return out


def test_every_generated_ini_is_valid_for_the_release(services_venv, tmp_path, state_home):
    files = _files(tmp_path, state_home)
    kinds = {k for _, _, k in files}
    assert kinds >= set(services.CONTROLLER_INI) | set(services.NODE_INI)
    failures = []
    for label, text, kind in files:
        f = tmp_path / label.replace(":", "_")
        f.write_text(text)
        try:
            oslo.assert_valid(services_venv, f, kind)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n\n".join(failures)


def test_validators_catch_a_bad_key_and_a_bad_value(services_venv, tmp_path, state_home):
    """The checks above can fail: a typo in a key, a wrong value, a renamed option."""
    cfg = config.Config()
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("x.sslip.io", "203.0.113.10")
    nova = render.service_config(cfg, sec, ep)["nova.conf"]
    ml2 = render.service_config(cfg, sec, ep)["ml2_conf.ini"]
    cases = [
        ("nova.conf", ini.merge(nova, {"scheduler": {"discover_hosts_in_cell_interval": 60}})),
        ("nova.conf", ini.merge(nova, {"DEFAULT": {"debug": "maybe"}})),
        # a misspelt keystoneauth session option in a group nova lists as an OptGroup
        ("nova.conf", ini.merge(nova, {"glance": {"ca_file": "/etc/ca.crt"}})),
        ("ml2_conf.ini", ini.merge(ml2, {"ml2": {"tenant_network_types": "vxlan"}})),
    ]
    for kind, text in cases:
        f = tmp_path / kind
        f.write_text(text)
        with pytest.raises(AssertionError):
            oslo.assert_valid(services_venv, f, kind)


def test_user_overrides_are_validated_too(services_venv, tmp_path, state_home):
    p = tmp_path / "o.yaml"
    p.write_text("overrides: {neutron.conf: {DEFAULT: {api_workers: 4}}, nova.conf: {quota: {instances: 40}}}\n")
    cfg = config.load(p)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    confs = render.service_config(cfg, sec, endpoints.local())
    for name in ("neutron.conf", "nova.conf"):
        f = tmp_path / name
        f.write_text(confs[name])
        oslo.assert_valid(services_venv, f)
    assert "api_workers = 4" in confs["neutron.conf"]


# Glance's own validate_import_uri (what the image import API calls before a
# web-download), reading the rendered glance-api.conf through oslo.config.
GLANCE_FILTER = """
import sys
from oslo_config import cfg
import glance.async_.flows._internal_plugins  # registers [import_filtering_opts]
from glance.common import utils
cfg.CONF([], project="glance", default_config_files=[sys.argv[1]])
for uri in sys.argv[2:]:
    print(uri, utils.validate_import_uri(uri))
"""


def _glance_filter(venv: Path, conf_text: str, tmp_path: Path, *uris: str) -> dict[str, bool]:
    conf = tmp_path / "glance-api.conf"
    conf.write_text(conf_text)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", GLANCE_FILTER, str(conf), *uris],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return {uri: ok == "True" for uri, ok in (line.rsplit(" ", 1) for line in out.splitlines())}


def test_glance_web_download_fetches_only_from_the_image_hosts(services_venv, tmp_path, state_home):
    # Image hosts as IP literals: Glance admits a host NAME only when it resolves in
    # DNS, which nothing does on this offline machine (on a cloud cloud.debian.org does).
    images = ["http://198.51.100.7/cirros.img", "https://[2001:db8::7]:8443/debian.qcow2"]
    cfg = config.Config.model_validate({"release": RELEASE, "overcloud": {"images": [
        {"name": f"i{n}", "url": url} for n, url in enumerate(images)]}})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    conf = render.service_config(cfg, sec, ep)["glance-api.conf"]
    assert "allowed_hosts = [198.51.100.7,2001:db8::7]" in conf
    assert "allowed_ports = [80,443,8443]" in conf
    refused = ["http://169.254.169.254/openstack/latest/user_data",  # the outer metadata service
               "http://127.0.0.1/x", "http://10.0.0.5:3306/", "file:///etc/passwd",
               "http://198.51.100.7:8080/x", "http://198.51.100.8/cirros.img"]
    verdict = _glance_filter(services_venv, conf, tmp_path, *images, *refused)
    assert [u for u in images if not verdict[u]] == []
    assert [u for u in refused if verdict[u]] == []


def test_import_hosts_replace_the_image_hosts_and_no_host_turns_web_download_off(
        services_venv, tmp_path, state_home):
    cfg = config.Config.model_validate({"overcloud": {"import_hosts": ["images.example.org"]}})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    conf = render.service_config(cfg, sec, ep)["glance-api.conf"]
    assert "allowed_hosts = [images.example.org]" in conf
    off = config.Config.model_validate({"overcloud": {"images": []}})
    conf = render.service_config(off, sec, ep)["glance-api.conf"]
    # An empty allowed_hosts would let Glance fetch from anywhere: the method is off.
    assert "enabled_import_methods = [glance-direct]\n" in conf
    assert _glance_filter(services_venv, conf, tmp_path, "http://169.254.169.254/") == {
        "http://169.254.169.254/": True}  # what an empty filter would admit, hence the method off
