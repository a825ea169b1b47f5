"""`up` is idempotent and repairs a crashed devcloud; `status` and `env` tell the truth."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import yaml
from typer.testing import CliRunner

from osception.devcloud import Devcloud, cloud
from osception.devcloud.cli import app
from osception.devcloud.lifecycle import START_ORDER, Settings


def _pids(dc: Devcloud) -> dict[str, int]:
    return {name: dc.procs.record(name)["pid"] for name in START_ORDER}


def _cli(devcloud, *args):
    return CliRunner().invoke(app, [*args, "--state-dir", str(devcloud.layout.root.parent)])


def test_up_on_a_running_devcloud_changes_nothing(devcloud):
    dc = Devcloud(devcloud.layout, say=print)
    before = _pids(dc)
    dc.up(venv=Path(Settings.load(devcloud.layout).venv))
    assert _pids(dc) == before


def test_up_restarts_what_crashed_and_only_that(devcloud):
    dc = Devcloud(devcloud.layout, say=print)
    before = _pids(dc)
    for name in ("glance", "nova-compute"):
        os.killpg(before[name], signal.SIGKILL)
    dc.up()
    after = _pids(dc)
    changed = {name for name in START_ORDER if after[name] != before[name]}
    assert changed == {"glance", "nova-compute"}
    assert all(dc.procs.running(name) for name in START_ORDER)
    # ...and it serves again: the restarted compute host takes a server.
    conn = devcloud.connect("member")
    net = conn.network.create_network(name="devcloud-test-after-crash")
    try:
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.40.0.0/24")
        server = conn.compute.create_server(
            name="devcloud-test-after-crash", networks=[{"uuid": net.id}],
            flavor_id=conn.compute.find_flavor(devcloud.flavor, ignore_missing=False).id,
            image_id=conn.image.find_image(devcloud.image, ignore_missing=False).id)
        conn.compute.wait_for_server(server, wait=120)
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=120)
    finally:
        conn.network.delete_network(net)


def test_status_lists_every_process_running(devcloud):
    r = _cli(devcloud, "status")
    assert r.exit_code == 0, r.output
    for name in START_ORDER:
        assert name in r.output


def test_env_prints_clouds_yaml_and_shell_exports(devcloud):
    r = _cli(devcloud, "env")
    assert r.exit_code == 0, r.output
    clouds = yaml.safe_load(r.output)["clouds"]
    assert set(clouds) == {cloud.ADMIN_CLOUD, cloud.MEMBER_CLOUD}
    assert clouds == devcloud.clouds["clouds"]
    r = _cli(devcloud, "env", "--shell")
    assert f"OS_CLIENT_CONFIG_FILE={devcloud.layout.clouds_yaml}" in r.output
    assert f"OS_CLOUD={cloud.MEMBER_CLOUD}" in r.output
    assert oct(devcloud.layout.clouds_yaml.stat().st_mode & 0o777) == "0o600"


def test_up_with_nodes_retires_the_fake_hypervisor(devcloud):
    """After a plain `up`, `up --nodes` stops the devcloud's own nova-compute (the fake
    hypervisor) and deletes its compute service, said in one line: only the local
    nodes are computes. While it hosts a server (the user's: Nova refuses the delete,
    409), the service is disabled instead, and a plain `up` enables it again. (Here the
    step itself, on the session's devcloud, which a plain `up` then brings back.)"""
    from osception import secrets as secrets_mod
    from osception.devcloud.lifecycle import RETIRED_REASON

    secrets = secrets_mod.ensure(devcloud.layout.root, "devcloud")
    dc = Devcloud(devcloud.layout, say=(said := []).append)
    conn = devcloud.connect("admin")

    def fake_services():
        return list(conn.compute.services(binary="nova-compute"))

    hosts = sorted({s.host for s in fake_services()})
    assert hosts and dc.procs.running("nova-compute")
    server = conn.compute.create_server(
        name="osception-test-retire", networks="none",
        flavor_id=conn.compute.find_flavor(devcloud.flavor, ignore_missing=False).id,
        image_id=conn.image.find_image(devcloud.image, ignore_missing=False).id)
    try:
        conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
        dc._retire_fake_compute(secrets)
        assert not dc.procs.running("nova-compute")
        assert [(s.status, s.disabled_reason) for s in fake_services()] == \
            [("disabled", RETIRED_REASON)] * len(hosts)
        assert len(said) == 1 and said[0].startswith(
            "the local nodes are the computes: stopped the devcloud's fake nova-compute and "
            f"disabled its compute service ({hosts[0]}: it still hosts "), said
        said.clear()
        dc.up()  # plain: the fake hypervisor is the compute again
        assert [s.status for s in fake_services()] == ["enabled"] * len(hosts)
        assert f"the fake nova-compute is the compute again: enabled its service ({hosts[0]})" in said
    finally:
        conn.compute.delete_server(server, ignore_missing=True)
        conn.compute.wait_for_delete(server, wait=120)
    left = [(s.name, s.id) for s in conn.compute.servers(all_projects=True, compute_host=hosts[0])]
    assert left == [], f"servers another test left on the fake hypervisor: {left}"
    said.clear()
    try:
        dc._retire_fake_compute(secrets)
        assert not dc.procs.running("nova-compute")
        assert fake_services() == []
        assert said == [f"the local nodes are the computes: stopped the devcloud's fake nova-compute "
                        f"and deleted its compute service ({', '.join(hosts)})"]
    finally:
        dc.up()  # the fake hypervisor back for the session's other tests
    assert dc.procs.running("nova-compute")
