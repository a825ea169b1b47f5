"""What `up` asks the outer cloud for and what `down` deletes, without a cloud.

`FakeCloud` is a mock of an openstacksdk connection: it holds resources in lists,
answers listings the way we tell it (e.g. ignoring the `tags` filter, as a cloud
without the tag extension may) and records every create and delete. The same
behaviour against a real OpenStack is in test_undercloud.py (the devcloud, slow)."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from types import SimpleNamespace

from openstack import exceptions

from osception import config, deploy, render, secrets, state, topology
from osception import undercloud as uc

PROVIDER = {"mode": "provider", "network": "Provider-Net", "cidr": "198.51.100.0/24",
            "gateway": "198.51.100.1", "pool_start": "198.51.100.100", "pool_end": "198.51.100.200"}


def provider_cfg(name: str = "t-prov") -> config.Config:
    return config.Config.model_validate({"name": name, "public_network": PROVIDER})


class FakeCloud:
    """A mock openstacksdk connection (compute and network proxies in one object)."""

    def __init__(self, honour_tag_filter: bool = True):
        self.honour_tag_filter = honour_tag_filter
        self.servers_, self.ports_, self.sgs, self.groups, self.keypairs = [], [], [], [], []
        self.deleted: list[tuple[str, str]] = []
        self.compute = self.network = self
        self._ids = itertools.count(1)

    def _listing(self, items, tags=None, name=None):
        if tags is not None and self.honour_tag_filter:
            items = [i for i in items if tags in (i.tags or [])]
        return [i for i in items if name is None or i.name == name]

    def add(self, kind: str, name: str, tags=(), **attrs):
        item = SimpleNamespace(id=f"{kind}-{next(self._ids)}", name=name, tags=list(tags),
                               status="ACTIVE", **attrs)
        getattr(self, kind).append(item)
        return item

    # listings and lookups
    def servers(self, tags=None):
        return self._listing(self.servers_, tags)

    def ports(self, tags=None):
        return self._listing(self.ports_, tags)

    def security_groups(self, name=None):
        return self._listing(self.sgs, name=name) if self.honour_tag_filter else list(self.sgs)

    def server_groups(self):
        return list(self.groups)

    def find_keypair(self, name, ignore_missing=True):
        return next((k for k in self.keypairs if k.name == name), None)

    # deletes (recorded)
    def _delete(self, kind, item):
        self.deleted.append((kind, item.name))
        getattr(self, kind).remove(item)

    def delete_server(self, s):
        self._delete("servers_", s)

    def wait_for_delete(self, s, wait=None):
        pass

    def delete_port(self, p, ignore_missing=True):
        self._delete("ports_", p)

    def delete_security_group(self, sg, ignore_missing=True):
        self._delete("sgs", sg)

    def delete_server_group(self, g, ignore_missing=True):
        self._delete("groups", g)

    def delete_keypair(self, k, ignore_missing=True):
        self._delete("keypairs", k)


def _uuid(name: str) -> str:
    """An ID as Nova and Neutron give them (resources.json holds only those)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


# --- the provider port: compute and network nodes only -----------------------------

def test_up_gives_a_provider_port_to_compute_and_network_nodes_only(tmp_path, monkeypatch):
    cfg = provider_cfg()
    sec = secrets.ensure(tmp_path, cfg.name)
    asked, macs, lock = [], iter(range(1, 100)), threading.Lock()

    def ensure_port(conn, names, w, existing):
        with lock:  # the nodes ask concurrently
            asked.append((w.name, w.network))
            n = next(macs)
        return SimpleNamespace(id=_uuid(w.name), mac_address=f"fa:16:3e:00:00:{n:02x}",
                               fixed_ips=[{"ip_address": f"192.0.2.{n}"}])

    found = uc.Found(network="Ext-Net", public_network="Provider-Net")
    monkeypatch.setattr(uc, "preflight", lambda conn, cfg, names: found)
    monkeypatch.setattr(uc, "ensure_keypair", lambda *a: None)
    monkeypatch.setattr(uc, "ensure_security_group_without_rules", lambda *a: SimpleNamespace(id="sg"))
    monkeypatch.setattr(uc, "ensure_security_group_rules", lambda *a: None)
    monkeypatch.setattr(uc, "ensure_server_group", lambda *a: SimpleNamespace(id="group"))
    monkeypatch.setattr(uc, "existing_ports", lambda *a: {})
    monkeypatch.setattr(uc, "existing_servers", lambda *a: {})
    monkeypatch.setattr(uc, "ensure_port", ensure_port)
    monkeypatch.setattr(uc, "server_request", lambda names, node, *a, **k: {"name": node.name})
    monkeypatch.setattr(uc, "ensure_server", lambda conn, request, existing: SimpleNamespace(id=_uuid(request["name"])))
    monkeypatch.setattr(uc, "wait_active", lambda conn, names, servers: servers)
    monkeypatch.setattr(deploy.bake, "baked_images", lambda conn, cfg: {})

    result = deploy.provision(None, cfg, sec, tmp_path)
    public = sorted(name for name, net in asked if net == "Provider-Net")
    assert public == [f"osception-t-prov-{n}-public"
                      for n in ("compute-0", "compute-1", "network-0", "network-1")]
    assert len(asked) == 5 + 4
    # The controller's user data names no provider port; each node's names its own.
    controller = result.plan.files["k8s-0/user-data"]
    assert "public_mac" not in controller and "MACAddress" not in controller
    for node in ("compute-0", "network-1"):
        assert "MACAddress=fa:16:3e:" in result.plan.files[f"{node}/user-data"]
    # Rendered node by node as the ports came, the plan is the one rendered at once
    # from the same addresses.
    addresses = {name: uc.address_of(*ports) for name, ports in _ports_by_node(tmp_path).items()}
    assert result.plan.files == render.build(cfg, sec, addresses, mtu=result.plan.mtu).files
    timings = json.loads(state.Layout(tmp_path).timings.read_text())["provision"]
    assert {"preflight", "security-group", "ports", "render", "servers", "pipeline", "active",
            "total"} <= set(timings)


def _ports_by_node(env_dir):
    """The ports `up` recorded in resources.json, as address_of takes them."""
    nodes = deploy.load_resources(env_dir)["nodes"]
    return {name: (SimpleNamespace(fixed_ips=[{"ip_address": n["ip"]}], mac_address=n["mac"]),
                   SimpleNamespace(mac_address=n["public_mac"]) if n["public_mac"] else None)
            for name, n in nodes.items()}


def test_plan_has_no_provider_mac_for_the_controller():
    addresses = topology.placeholder_addresses(provider_cfg())
    assert addresses["k8s-0"].public_mac is None
    assert all(addresses[n].public_mac for n in ("compute-0", "compute-1", "network-0", "network-1"))


def test_preflight_counts_no_provider_port_for_the_controller():
    """Port quota: 5 nodes' ports and 4 provider ports fit in a quota of 9."""
    cfg = provider_cfg()
    flavor = SimpleNamespace(vcpus=1, ram=1)
    found = uc.Found(flavors={r: flavor for r in ("controller", "compute", "network")})
    cloud = FakeCloud()
    cloud.get_limits = lambda: SimpleNamespace(absolute=SimpleNamespace(
        instances=-1, instances_used=0, total_cores=-1, total_cores_used=0,
        total_ram=-1, total_ram_used=0, server_group_members=-1))
    cloud.current_project_id = "p"
    cloud.get_quota = lambda project, details: SimpleNamespace(
        ports={"limit": 9, "used": 0, "reserved": 0},
        security_groups={"limit": -1}, security_group_rules={"limit": -1})
    assert uc._quota_problems(cloud, cfg, uc.Names(cfg.name), found) == []
    cloud.get_quota = lambda project, details: SimpleNamespace(
        ports={"limit": 8, "used": 0, "reserved": 0},
        security_groups={"limit": -1}, security_group_rules={"limit": -1})
    assert uc._quota_problems(cloud, cfg, uc.Names(cfg.name), found) == [
        "quota: ports: need 9 more, 8 left of 8; raise the project's quota"]


# --- down: only what is proven ours ----------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOurEnvironmentsOwnKeyxxxxxxxxxxxxxxxxxxxxxx osception-t-own"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISomebodyElsesKeyxxxxxxxxxxxxxxxxxxxxxxxxx me@laptop"
TAGS = ("osception", "osception-env:t-own")


def environment(cloud: FakeCloud, keypair_key: str = KEY) -> dict:
    """What `up` makes for t-own (one compute), plus an older version's controller
    provider port; and the user's own resources, named like ours but untagged."""
    ours = {
        "server": cloud.add("servers_", "osception-t-own-compute-0", TAGS),
        "ports": [cloud.add("ports_", f"osception-t-own-{n}", TAGS)
                  for n in ("k8s-0", "compute-0", "k8s-0-public", "compute-0-public")],
        "sg": cloud.add("sgs", "osception-t-own", TAGS),
        "keypair": cloud.add("keypairs", "osception-t-own", public_key=keypair_key),
    }
    ours["group"] = cloud.add("groups", "osception-t-own-compute", member_ids=[ours["server"].id])
    cloud.add("servers_", "osception-t-own-k8s-0")  # the user's, untagged
    cloud.add("servers_", "osception-t-own-network-0", ["osception", "osception-env:t-other"])
    cloud.add("ports_", "osception-t-own-k8s-0-public")
    cloud.add("sgs", "osception-t-own", ["osception-env:t-other"])
    return ours


def test_down_deletes_the_environment_and_an_old_controller_provider_port():
    cloud = FakeCloud()
    ours = environment(cloud)
    counts = uc.destroy(cloud, uc.Names("t-own"), KEY)
    assert counts == {"servers": 1, "ports": 4, "security_groups": 1, "server_groups": 1, "keypairs": 1}
    assert ("ports_", "osception-t-own-k8s-0-public") in cloud.deleted
    assert ours["keypair"] not in cloud.keypairs and ours["group"] not in cloud.groups
    assert sorted(cloud.deleted) == sorted(
        [("servers_", "osception-t-own-compute-0"), ("sgs", "osception-t-own"),
         ("groups", "osception-t-own-compute"), ("keypairs", "osception-t-own")]
        + [("ports_", p.name) for p in ours["ports"]])


def test_down_asks_for_every_server_to_go_before_waiting_for_each():
    """Nova deletes the servers side by side: `down` (uc.delete_servers, as bake and
    smoke) sends every delete first, then waits for each until it is gone."""
    class Waiting(FakeCloud):
        def wait_for_delete(self, s, wait=None):
            self.deleted.append(("waited", s.name, wait))

    cloud = Waiting()
    names = [cloud.add("servers_", f"osception-t-own-compute-{i}", TAGS).name for i in range(3)]
    assert uc.destroy(cloud, uc.Names("t-own"), KEY)["servers"] == 3
    assert cloud.deleted[:6] == ([("servers_", n) for n in names]
                                 + [("waited", n, uc.DELETE_TIMEOUT) for n in names])


def test_down_on_a_cloud_ignoring_the_tags_filter_deletes_only_tagged_resources():
    """The mock returns every server, port and security group whatever the filter:
    the untagged ones (and another environment's) named like ours must survive."""
    cloud = FakeCloud(honour_tag_filter=False)
    ours = environment(cloud)
    uc.destroy(cloud, uc.Names("t-own"), KEY)
    assert [s.name for s in cloud.servers_] == ["osception-t-own-k8s-0", "osception-t-own-network-0"]
    assert [(p.name, p.tags) for p in cloud.ports_] == [("osception-t-own-k8s-0-public", [])]
    assert [s.tags for s in cloud.sgs] == [["osception-env:t-other"]]
    assert ours["server"] not in cloud.servers_


def test_down_keeps_a_keypair_holding_another_key():
    cloud = FakeCloud()
    environment(cloud, keypair_key=OTHER)
    notes = []
    assert uc.inventory(cloud, uc.Names("t-own"), KEY, notes)["keypairs"] == []
    assert notes == ["kept keypair 'osception-t-own': it holds another key than this environment's "
                     "ssh/id_ed25519.pub; delete it yourself if it is yours"]
    assert uc.destroy(cloud, uc.Names("t-own"), KEY)["keypairs"] == 0
    assert [k.public_key for k in cloud.keypairs] == [OTHER]


def test_down_without_the_key_keeps_the_keypair():
    cloud = FakeCloud()
    environment(cloud)
    notes = []
    uc.inventory(cloud, uc.Names("t-own"), None, notes)
    assert notes == ["kept keypair 'osception-t-own': no local state (ssh/id_ed25519.pub) proves it "
                     "is this environment's; delete it yourself if it is yours"]
    assert uc.destroy(cloud, uc.Names("t-own"), None)["keypairs"] == 0
    assert len(cloud.keypairs) == 1 and len(cloud.servers_) == 2


def test_down_keeps_a_server_group_holding_servers_not_ours():
    cloud = FakeCloud()
    ours = environment(cloud)
    ours["group"].member_ids.append("somebody-elses-server")
    cloud.add("groups", "osception-t-own-compute-old", member_ids=[])
    notes = []
    assert uc.inventory(cloud, uc.Names("t-own"), KEY, notes)["server_groups"] == []
    assert notes == [f"kept server group 'osception-t-own-compute' ({ours['group'].id}): it holds "
                     "1 server(s) that are not this environment's"]
    assert uc.destroy(cloud, uc.Names("t-own"), KEY)["server_groups"] == 0
    assert len(cloud.groups) == 2


def test_down_deletes_every_server_group_of_ours_a_race_left():
    cloud = FakeCloud()
    environment(cloud)
    cloud.add("groups", "osception-t-own-compute", member_ids=[])
    assert uc.destroy(cloud, uc.Names("t-own"), KEY)["server_groups"] == 2
    assert cloud.groups == []


def test_cli_down_reads_the_environments_key_and_says_what_it_keeps(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from osception import cli

    cloud = FakeCloud()
    environment(cloud)
    monkeypatch.setattr(cli, "_conn", lambda cfg: cloud)
    cfg_file = tmp_path / "osception.yaml"
    cfg_file.write_text("name: t-own\n")
    run = CliRunner().invoke
    # No local state: everything tagged goes, the keypair stays, with one line.
    result = run(cli.app, ["down", "-c", str(cfg_file), "--state-dir", str(tmp_path / "none"), "--yes"])
    assert result.exit_code == 0, result.output
    assert "kept keypair 'osception-t-own': no local state" in result.output
    assert "0 keypairs" in result.output and len(cloud.keypairs) == 1
    # With the environment's key in its state folder, the keypair goes too.
    (tmp_path / "home" / "t-own" / "ssh").mkdir(parents=True)
    (tmp_path / "home" / "t-own" / "ssh" / "id_ed25519.pub").write_text(KEY + "\n")
    result = run(cli.app, ["down", "-c", str(cfg_file), "--state-dir", str(tmp_path / "home"), "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 keypairs" in result.output and cloud.keypairs == []


# --- the provider port's port security: off where allowed, else the environment's group --

class PortCloud(FakeCloud):
    """Creates ports; a member may not disable port security (Neutron's default policy)."""

    def __init__(self, may_disable_port_security: bool):
        super().__init__()
        self.may_disable = may_disable_port_security
        self.asked: list[dict] = []

    def create_port(self, **kwargs):
        self.asked.append(kwargs)
        if kwargs.get("port_security_enabled") is False and not self.may_disable:
            raise exceptions.ForbiddenException("(rule:create_port:port_security_enabled) is disallowed")
        return self.add("ports_", kwargs.pop("name"), tags=kwargs.pop("tags", ()),
                        security_group_ids=kwargs.pop("security_group_ids", []), **kwargs)

    def set_tags(self, resource, tags):
        resource.tags = list(tags)


def test_the_network_owner_gets_a_provider_port_without_port_security():
    cloud, names = PortCloud(may_disable_port_security=True), uc.Names("t-ps")
    name = names.public_port("compute-0")
    port = uc.ensure_ports(cloud, names, [uc.PortWanted(name, SimpleNamespace(id="net"),
                                                        SimpleNamespace(id="sg"), port_security=False)])[name]
    assert port.port_security_enabled is False and port.security_group_ids == []
    assert len(cloud.asked) == 1 and set(port.tags) == {uc.TAG, uc.env_tag("t-ps")}


def test_a_member_gets_a_provider_port_with_the_environments_group():
    cloud, names = PortCloud(may_disable_port_security=False), uc.Names("t-ps")
    name = names.public_port("compute-0")
    port = uc.ensure_ports(cloud, names, [uc.PortWanted(name, SimpleNamespace(id="net"),
                                                        SimpleNamespace(id="sg"), port_security=False)])[name]
    assert [a.get("port_security_enabled") for a in cloud.asked] == [False, None]
    assert port.security_group_ids == ["sg"] and not hasattr(port, "port_security_enabled")
    assert [p.name for p in cloud.ports_] == [names.public_port("compute-0")]  # one port, no leftover
