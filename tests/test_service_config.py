"""Every OpenStack config file osception generates, against the real option
definitions of the release: oslo-config-validator --fatal-warnings, then every
value loaded through oslo.config. Runs in .venv-openstack-2026.1 (scripts/test.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from osception import config, endpoints, ini, render, secrets, services
from tests.validators import oslo

REPO = Path(__file__).resolve().parent.parent
RELEASE = "2026.1"  # the release whose services are in the lock the suite installs


@pytest.fixture(scope="session")
def openstack_venv() -> Path:
    venv = REPO / f".venv-openstack-{RELEASE}"
    subprocess.run([str(REPO / "scripts/openstack-venv.sh"), RELEASE, str(venv)], check=True)
    return venv


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
    addr = render.placeholder_addresses(cfg)
    for node in plan.nodes:
        if node.name in ("compute-0", "network-0"):
            files = render.node_config(cfg, sec, node, addr[node.name], plan.controller_ip, plan.domain)
            for dest, text in files.items():
                base = dest.rsplit("/", 1)[1]
                kind = "nova.conf" if base.startswith("nova") else base
                out.append((f"{node.name}:{base}", text, kind))
    return out


def test_every_generated_ini_is_valid_for_the_release(openstack_venv, tmp_path, state_home):
    files = _files(tmp_path, state_home)
    kinds = {k for _, _, k in files}
    assert kinds >= set(services.CONTROLLER_INI) | set(services.NODE_INI)
    failures = []
    for label, text, kind in files:
        f = tmp_path / label.replace(":", "_")
        f.write_text(text)
        try:
            oslo.assert_valid(openstack_venv, f, kind)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n\n".join(failures)


def test_validators_catch_a_bad_key_and_a_bad_value(openstack_venv, tmp_path, state_home):
    """The checks above can fail: a typo in a key, a wrong value, a renamed option."""
    cfg = config.Config()
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("x.sslip.io", "203.0.113.10")
    nova = render.service_config(cfg, sec, ep)["nova.conf"]
    ml2 = render.service_config(cfg, sec, ep)["ml2_conf.ini"]
    cases = [
        ("nova.conf", ini.merge(nova, {"scheduler": {"discover_hosts_in_cell_interval": 60}})),
        ("nova.conf", ini.merge(nova, {"DEFAULT": {"debug": "maybe"}})),
        ("ml2_conf.ini", ini.merge(ml2, {"ml2": {"tenant_network_types": "vxlan"}})),
    ]
    for kind, text in cases:
        f = tmp_path / kind
        f.write_text(text)
        with pytest.raises(AssertionError):
            oslo.assert_valid(openstack_venv, f, kind)


def test_user_overrides_are_validated_too(openstack_venv, tmp_path, state_home):
    p = tmp_path / "o.yaml"
    p.write_text("overrides: {neutron.conf: {DEFAULT: {api_workers: 4}}, nova.conf: {quota: {instances: 40}}}\n")
    cfg = config.load(p)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    confs = render.service_config(cfg, sec, endpoints.local())
    for name in ("neutron.conf", "nova.conf"):
        f = tmp_path / name
        f.write_text(confs[name])
        oslo.assert_valid(openstack_venv, f)
    assert "api_workers = 4" in confs["neutron.conf"]
