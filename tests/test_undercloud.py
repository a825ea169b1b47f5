"""`up` and `down` against the local real OpenStack (the devcloud) as the outer cloud.

Servers run on Nova's fake driver: they go ACTIVE without booting, so the nodes'
progress lines are tested on recorded console output instead (test_progress.py)."""

from __future__ import annotations

import base64
import gzip
import threading

import pytest
import yaml

from osception import config, deploy, secrets
from osception import undercloud as uc
from osception.devcloud import cloud
from osception.render.node import load_ansible_vars

FLAVOR = cloud.OUTER_FLAVOR


def make_cfg(name: str, provider: bool = False, **nodes) -> config.Config:
    groups = {role: {"flavor": FLAVOR, "image": "Debian 13"} for role in ("controller", "compute", "network")}
    for role, count in nodes.items():
        groups[role]["count"] = count
    data = {"name": name, "network": "Ext-Net", "nodes": groups}
    if provider:
        data["public_network"] = {"mode": "provider", "network": "Provider-Net", "cidr": "198.51.100.0/24",
                                  "gateway": "198.51.100.1", "pool_start": "198.51.100.100",
                                  "pool_end": "198.51.100.200"}
    return config.Config.model_validate(data)


def counts(conn, env: str) -> dict[str, int]:
    """The environment's resources, counted through the API (the keypair by its name:
    whether `down` may delete it is for test_down.py)."""
    names = uc.Names(env)
    return {k: len(v) for k, v in uc.inventory(conn, names).items()} | {
        "keypairs": int(conn.compute.find_keypair(names.keypair, ignore_missing=True) is not None)}


ZERO = {"servers": 0, "ports": 0, "security_groups": 0, "server_groups": 0, "keypairs": 0}


@pytest.fixture(scope="module")
def outer(devcloud):
    """The devcloud, dressed as a public cloud (cloud.dress_as_outer_cloud)."""
    admin, member = devcloud.connect("admin"), devcloud.connect("member")
    cloud.dress_as_outer_cloud(admin, member)
    # What an interrupted earlier run of these tests left (their environments: t-*).
    for env in {e for e in uc.environments(member) if e.startswith("t-")} | {"t-full", "t-own", "t-pre"}:
        uc.destroy(member, uc.Names(env))
        member.compute.delete_keypair(uc.Names(env).keypair, ignore_missing=True)  # tests' own
    return member


def test_full_up_then_down_leaves_nothing(outer, devcloud, tmp_path):
    cfg = make_cfg("t-full", provider=True)
    sec = secrets.ensure(tmp_path, cfg.name)
    result = deploy.provision(outer, cfg, sec, tmp_path)
    names = uc.Names(cfg.name)

    assert sorted(result.servers) == ["compute-0", "compute-1", "k8s-0", "network-0", "network-1"]
    group = outer.compute.find_server_group(names.server_group)
    sg = uc.inventory(outer, names)["security_groups"][0]
    for node, server in result.servers.items():
        server = outer.compute.get_server(server.id)
        assert server.status == "ACTIVE"
        assert set(server.tags) == {"osception", "osception-env:t-full"}
        ports = {p.name: p for p in outer.network.ports(device_id=server.id)}
        primary, public = ports[names.port(node)], ports.get(names.public_port(node))
        assert [sg.id] == primary.security_group_ids
        # The controller never bridges the provider network: it gets no port there.
        assert (public is None) == (node == "k8s-0") and len(ports) == (1 if node == "k8s-0" else 2)
        # Disabling port security is for the network's owner (Neutron's default
        # policy): as a member, the provider port keeps the environment's group (the
        # branch where it is allowed: test_down.py's FakeCloud).
        if public is not None:
            assert public.is_port_security_enabled is True and public.security_group_ids == [sg.id]
        # The user data the server received (only admins may read it back) names
        # its own ports' MACs and IP.
        # sent gzip-compressed (render.checks.wire_user_data); cloud-init decompresses it
        user_data = gzip.decompress(base64.b64decode(
            devcloud.connect("admin").compute.get_server(server.id).user_data)).decode()
        assert user_data == result.plan.files[f"{node}/user-data"]
        if node != "k8s-0":
            vars_yaml = next(f["content"] for f in yaml.safe_load(user_data)["write_files"]
                             if f["path"].endswith("vars.yml"))
            node_vars = load_ansible_vars(vars_yaml)
            assert node_vars["node_mac"] == primary.mac_address
            assert node_vars["public_mac"] == public.mac_address
            assert node_vars["node_ip"] == primary.fixed_ips[0]["ip_address"]
            assert node_vars["controller_ip"] == result.plan.controller_ip
    assert sorted(group.member_ids) == sorted(result.servers[n].id for n in ("compute-0", "compute-1"))
    assert group.policy == "soft-anti-affinity"
    assert counts(outer, cfg.name) == {"servers": 5, "ports": 9, "security_groups": 1,
                                       "server_groups": 1, "keypairs": 1}
    # A second `up` changes nothing.
    again = deploy.provision(outer, cfg, sec, tmp_path)
    assert {n: s.id for n, s in again.servers.items()} == {n: s.id for n, s in result.servers.items()}

    uc.destroy(outer, names, sec.ssh["public"])
    assert counts(outer, cfg.name) == ZERO


def test_down_without_local_state_removes_everything(outer, tmp_path):
    cfg = make_cfg("t-lost", compute=1, network=1)
    sec = secrets.ensure(tmp_path / "a", cfg.name)
    deploy.provision(outer, cfg, sec, tmp_path / "a")
    # The state folder is gone: a new process knows only the environment's name.
    # Everything tagged goes; the keypair (no tag, no key to prove it ours) stays.
    uc.destroy(outer, uc.Names(cfg.name))
    assert counts(outer, cfg.name) == ZERO | {"keypairs": 1}
    uc.destroy(outer, uc.Names(cfg.name), sec.ssh["public"])
    assert counts(outer, cfg.name) == ZERO


def test_two_environments_do_not_touch_each_other(outer, tmp_path):
    a, b = make_cfg("t-a", compute=1, network=0), make_cfg("t-b", compute=1, network=0)
    sec_a, sec_b = secrets.ensure(tmp_path / "a", a.name), secrets.ensure(tmp_path / "b", b.name)
    deploy.provision(outer, a, sec_a, tmp_path / "a")
    deploy.provision(outer, b, sec_b, tmp_path / "b")
    assert counts(outer, "t-a")["servers"] == 2 and counts(outer, "t-b")["servers"] == 2
    assert {"t-a", "t-b"} <= set(uc.environments(outer))
    uc.destroy(outer, uc.Names("t-a"), sec_a.ssh["public"])
    assert counts(outer, "t-a") == ZERO
    assert counts(outer, "t-b") == {"servers": 2, "ports": 2, "security_groups": 1,
                                    "server_groups": 1, "keypairs": 1}
    uc.destroy(outer, uc.Names("t-b"), sec_b.ssh["public"])


def test_users_own_resources_survive_up_and_down(outer, tmp_path):
    net = outer.network.find_network("Ext-Net")
    mine_port = outer.network.create_port(network_id=net.id, name="osception-t-own-k8s-0-mine")
    mine_sg = outer.network.create_security_group(name="osception-t-own-other")
    mine_kp = outer.compute.create_keypair(name="osception-t-own-mine")
    flavor, image = outer.compute.find_flavor(FLAVOR), outer.image.find_image("Debian 13")
    mine_server = outer.compute.create_server(name="osception-t-own-k8s-0", flavor_id=flavor.id,
                                              image_id=image.id, networks=[{"uuid": net.id}])
    outer.compute.wait_for_server(mine_server)
    try:
        cfg = make_cfg("t-own", compute=0, network=0)
        sec = secrets.ensure(tmp_path, cfg.name)
        deploy.provision(outer, cfg, sec, tmp_path)
        uc.destroy(outer, uc.Names(cfg.name), sec.ssh["public"])
        # Same name as one of ours, but not tagged: not ours.
        assert outer.compute.get_server(mine_server.id).status == "ACTIVE"
        assert outer.network.get_port(mine_port.id)
        assert outer.network.get_security_group(mine_sg.id)
        assert outer.compute.find_keypair("osception-t-own-mine")
    finally:
        outer.compute.delete_server(mine_server)
        outer.network.delete_port(mine_port)
        outer.compute.delete_keypair(mine_kp)
        outer.compute.wait_for_delete(mine_server)
        outer.network.delete_security_group(mine_sg)


@pytest.mark.parametrize("change,message", [
    ({"nodes": {"compute": {"flavor": "no-such-flavor"}}}, "nodes.compute.flavor: no flavor 'no-such-flavor'"),
    ({"nodes": {"network": {"image": "No Such Image"}}}, "nodes.network.image: no image 'No Such Image'"),
    ({"network": "No-Such-Net"}, "network: no network 'No-Such-Net'"),
    ({"nodes": {"compute": {"count": 50}}}, "quota: instances: need"),
    ({"nodes": {"compute": {"count": 12}}}, "quota: server group members: 12 computes"),
])
def test_preflight_says_what_to_change_and_creates_nothing(outer, devcloud, tmp_path, change, message):
    base = make_cfg("t-pre").model_dump()
    for key, value in change.items():
        if isinstance(value, dict):
            for role, group in value.items():
                base[key][role].update(group)
        else:
            base[key] = value
    cfg = config.Config.model_validate(base)
    admin = devcloud.connect("admin")
    quotas = admin.get_compute_quotas(outer.current_project_id)
    if "quota" in message:
        admin.set_compute_quotas(outer.current_project_id, instances=20, server_group_members=10)
    before = len(list(outer.network.ports()))
    try:
        with pytest.raises(uc.PreflightError) as exc:
            deploy.provision(outer, cfg, secrets.ensure(tmp_path, cfg.name), tmp_path)
    finally:  # as they were, whatever they were
        admin.set_compute_quotas(outer.current_project_id, instances=quotas.instances,
                                 server_group_members=quotas.server_group_members)
    assert any(message in p for p in exc.value.problems), exc.value.problems
    assert counts(outer, cfg.name) == ZERO
    assert len(list(outer.network.ports())) == before


class Interrupted(BaseException):
    """Raised inside the SDK's HTTP layer: like Ctrl-C or a killed process mid-run."""


def count_calls(conn):
    """Count every HTTP request the connection makes; optionally stop at the k-th."""
    state = {"n": 0, "stop_at": None}
    lock = threading.Lock()
    original = conn.session.request

    def request(*args, **kwargs):
        with lock:
            state["n"] += 1
            if state["stop_at"] is not None and state["n"] >= state["stop_at"]:
                raise Interrupted(f"interrupted at call {state['n']}")
        return original(*args, **kwargs)

    conn.session.request = request
    return state, lambda: setattr(conn.session, "request", original)


def test_up_interrupted_at_many_points_resumes_without_duplicates_or_leaks(outer, tmp_path):
    cfg = make_cfg("t-fault", compute=1, network=1)
    sec = secrets.ensure(tmp_path, cfg.name)
    names = uc.Names(cfg.name)
    # The real sequence: how many API calls a full `up` makes.
    calls, restore = count_calls(outer)
    deploy.provision(outer, cfg, sec, tmp_path)
    total = calls["n"]
    restore()
    uc.destroy(outer, names, sec.ssh["public"])
    assert total > 20

    points = sorted({max(1, total * i // 12) for i in range(1, 12)})
    for k in points:
        calls, restore = count_calls(outer)
        calls["stop_at"] = k
        with pytest.raises(Interrupted):
            deploy.provision(outer, cfg, sec, tmp_path)
        restore()
        result = deploy.provision(outer, cfg, sec, tmp_path)  # resume
        assert len(result.servers) == 3
        assert counts(outer, cfg.name) == {"servers": 3, "ports": 3, "security_groups": 1,
                                           "server_groups": 1, "keypairs": 1}, f"after a stop at call {k}"
        uc.destroy(outer, names, sec.ssh["public"])
        assert counts(outer, cfg.name) == ZERO, f"leak after a stop at call {k}"
    print(f"fault injection: {len(points)} points out of {total} calls: {points}")


def test_cli_up_status_list_down(outer, devcloud, tmp_path, monkeypatch):
    """The commands a user types, against the devcloud as their cloud."""
    from typer.testing import CliRunner

    from osception.cli import app

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump(devcloud.clouds))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    cfg_file = tmp_path / "osception.yaml"
    data = make_cfg("t-cli", compute=1, network=0).model_dump(mode="json")
    data["cloud"] = "devcloud"
    cfg_file.write_text(yaml.safe_dump(data))
    home = tmp_path / "home"
    run = CliRunner().invoke
    common = ["-c", str(cfg_file), "--state-dir", str(home)]

    result = run(app, ["up", *common, "--no-follow"])
    assert result.exit_code == 0, result.output
    assert counts(outer, "t-cli")["servers"] == 2
    assert (home / "t-cli" / "resources.json").exists() and (home / "t-cli" / "plan" / "k8s-0" / "user-data").exists()
    result = run(app, ["status", "-c", str(cfg_file)])
    assert result.exit_code == 0 and "compute-0" in result.output and "pending" in result.output, result.output
    result = run(app, ["list", *common])
    assert result.exit_code == 0 and "t-cli" in result.output
    result = run(app, ["down", *common, "--yes"])
    assert result.exit_code == 0 and "deleted environment 't-cli'" in result.output, result.output
    assert counts(outer, "t-cli") == ZERO
