"""Preflight on its own, without a cloud: the names osception owns, what is missing,
and the quota arithmetic (what `up` still has to create against what is left).
The same against a real OpenStack: test_undercloud.py (the devcloud, slow)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from osception import config
from osception import undercloud as uc
from tests.test_down import FakeCloud

# 1 controller (4 cores, 16000 MB), 2 computes and 1 network node (2 cores, 8000 MB each):
# 4 servers, 10 cores, 40000 MB, 4 ports, 1 security group.
CFG = config.Config.model_validate({"name": "pf", "nodes": {
    "controller": {"count": 1, "flavor": "big"},
    "compute": {"count": 2, "flavor": "small"},
    "network": {"count": 1, "flavor": "small"}}})
NAMES = uc.Names("pf")
UNLIMITED = {"limit": -1, "used": 0, "reserved": 0}


class QuotaCloud(FakeCloud):
    """FakeCloud with what preflight reads: flavors, images, networks, limits, quotas."""

    def __init__(self, limits=None, quota=None):
        super().__init__()
        self.image = self
        self.current_project_id = "p"
        self.limits = {"instances": -1, "instances_used": 0, "total_cores": -1, "total_cores_used": 0,
                       "total_ram": -1, "total_ram_used": 0, "server_group_members": -1, **(limits or {})}
        self.quota = {"ports": UNLIMITED, "security_groups": UNLIMITED,
                      "security_group_rules": UNLIMITED, **(quota or {})}
        self.flavors_ = [SimpleNamespace(id="f1", name="big", vcpus=4, ram=16000),
                         SimpleNamespace(id="f2", name="small", vcpus=2, ram=8000)]
        self.images_ = [SimpleNamespace(id="i1", name="Debian 13")]
        self.networks_ = [SimpleNamespace(id="n1", name="Ext-Net", mtu=1500)]

    def authorize(self):
        return "token"

    def flavors(self):
        return list(self.flavors_)

    def images(self):
        return list(self.images_)

    def networks(self):
        return list(self.networks_)

    def find_image(self, name, ignore_missing=True):
        return next((i for i in self.images_ if name in (i.name, i.id)), None)

    def find_network(self, name, ignore_missing=True):
        return next((n for n in self.networks_ if name in (n.name, n.id)), None)

    def get_limits(self):
        return SimpleNamespace(absolute=SimpleNamespace(**self.limits))

    def get_quota(self, project_id, details=False):
        assert details and project_id == "p"
        return SimpleNamespace(**self.quota)

    def ours(self, kind: str, name: str):
        return self.add(kind, name, tags=[uc.TAG, uc.env_tag("pf")])


def problems(cloud) -> list[str]:
    try:
        uc.preflight(cloud, CFG, NAMES)
    except uc.PreflightError as e:
        return e.problems
    return []


# --- the names an environment owns -------------------------------------------------

@pytest.mark.parametrize("name", ["osception-pf-k8s-0", "osception-pf-compute-12", "osception-pf-network-1",
                                  "osception-pf-compute-0-public", "osception-pf-k8s-0-public",
                                  NAMES.server("compute-3"), NAMES.public_port("network-0")])
def test_an_environment_owns_its_node_names(name):
    assert NAMES.owns(name)


@pytest.mark.parametrize("name", [None, "", "osception-pf", "osception-pf-compute", "osception-pf-compute-x",
                                  "osception-pf-compute-0-other", "my-osception-pf-compute-0",
                                  "osception-pf-compute-0 ", "osception-pf-db-0",
                                  "osception-pf2-compute-0", "osception-p-compute-0"])
def test_nothing_else_is_owned_not_even_a_longer_environment_name(name):
    assert not NAMES.owns(name)


def test_a_dot_in_a_name_is_not_a_wildcard():
    assert not uc.Names("a-b").owns("osception-aXb-compute-0")


# --- what is missing -----------------------------------------------------------------

def test_every_missing_flavor_image_and_network_is_named_at_once_and_quotas_wait():
    cloud = QuotaCloud(limits={"instances": 0})
    cloud.flavors_.pop(0)  # "big"
    cloud.images_.clear()
    cloud.networks_.clear()
    found = problems(cloud)
    assert found == ["nodes.compute.image: no image 'Debian 13'; available: ",
                     "nodes.controller.flavor: no flavor 'big'; available: small",
                     "nodes.controller.image: no image 'Debian 13'; available: ",
                     "nodes.network.image: no image 'Debian 13'; available: ",
                     "network: no network 'Ext-Net'; available: "]


def test_a_cloud_with_room_passes_and_says_what_it_found():
    found = uc.preflight(QuotaCloud(), CFG, NAMES)
    assert {r: f.name for r, f in found.flavors.items()} == {"controller": "big", "compute": "small",
                                                            "network": "small"}
    assert found.network.name == "Ext-Net" and found.public_network is None


# --- the quota arithmetic --------------------------------------------------------------

@pytest.mark.parametrize("limit, used, line", [
    ("instances", "instances_used", "quota: instances: need 4 more, {left} left of {limit}"),
    ("total_cores", "total_cores_used", "quota: cores: need 10 more, {left} left of {limit}"),
    ("total_ram", "total_ram_used", "quota: RAM (MB): need 40000 more, {left} left of {limit}"),
])
def test_compute_quotas_fit_exactly_and_fail_one_short(limit, used, line):
    need = int(line.split("need ")[1].split()[0])
    assert problems(QuotaCloud(limits={limit: need + 5, used: 5})) == []
    found = problems(QuotaCloud(limits={limit: need + 4, used: 5}))
    assert len(found) == 1 and found[0].startswith(line.format(left=need - 1, limit=need + 4))


def test_servers_that_exist_already_are_not_asked_again():
    cloud = QuotaCloud(limits={"instances": 2, "total_cores": 4, "total_ram": 16000})
    assert len(problems(cloud)) == 3
    cloud.ours("servers_", NAMES.server("k8s-0"))
    cloud.ours("servers_", NAMES.server("compute-0"))
    cloud.add("servers_", NAMES.server("compute-1"), tags=[])  # not tagged: not ours, still to make
    # left to make: compute-1, network-0 = 2 servers, 4 cores, 16000 MB
    assert problems(cloud) == []


def test_unlimited_and_missing_limits_never_block():
    assert problems(QuotaCloud(limits={"instances": None, "total_cores": -1, "total_ram": None,
                                       "server_group_members": None})) == []


def test_the_anti_affinity_group_must_hold_every_compute():
    assert problems(QuotaCloud(limits={"server_group_members": 2})) == []
    found = problems(QuotaCloud(limits={"server_group_members": 1}))
    assert found == ["quota: server group members: 2 computes share one anti-affinity group, the "
                     "project allows 1; lower nodes.compute.count or raise the quota"]


def test_ports_count_what_exists_and_what_is_reserved():
    cloud = QuotaCloud(quota={"ports": {"limit": 10, "used": 6, "reserved": 1}})
    assert problems(cloud) == ["quota: ports: need 4 more, 3 left of 10; raise the project's quota"]
    cloud.ours("ports_", NAMES.port("k8s-0"))  # made by an interrupted `up`: 3 more to make
    assert problems(cloud) == []


def test_an_existing_security_group_needs_no_group_nor_rules():
    quota = {"security_groups": {"limit": 0, "used": 0}, "security_group_rules": {"limit": 0, "used": 0}}
    cloud = QuotaCloud(quota=quota)
    found = problems(cloud)
    assert [p.split(":")[1] for p in found] == [" security_groups", " security_group_rules"]
    assert found[0] == "quota: security_groups: need 1 more, 0 left of 0; raise the project's quota"
    cloud.ours("sgs", NAMES.security_group)
    assert problems(cloud) == []


class RuleCloud(QuotaCloud):
    """Records the security group and rules ensure_security_group creates; a new group
    comes with Neutron's own default rules, as on a real cloud."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.rules = []

    def create_security_group(self, name, tags=(), **attrs):
        sg = self.add("sgs", name, tags, **attrs)
        self.rules += [SimpleNamespace(direction="egress", ether_type=e, security_group_id=sg.id)
                       for e in ("IPv4", "IPv6")]
        return sg

    def set_tags(self, resource, tags):
        resource.tags = list(tags)

    def security_group_rules(self, security_group_id=None, direction=None):
        return [r for r in self.rules if direction in (None, r.direction)]

    def create_security_group_rule(self, **rule):
        unset = dict.fromkeys(("protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
                               "remote_group_id"))
        self.rules.append(SimpleNamespace(**(unset | rule)))


def test_preflight_counts_every_rule_a_new_security_group_gets():
    cloud = RuleCloud()
    uc.ensure_security_group(cloud, NAMES, CFG)
    made = len(cloud.rules)
    uc.ensure_security_group(cloud, NAMES, CFG)  # idempotent: nothing more
    assert len(cloud.rules) == made
    short = RuleCloud(quota={"security_group_rules": {"limit": made - 1, "used": 0}})
    assert problems(short) == [f"quota: security_group_rules: need {made} more, {made - 1} left of "
                               f"{made - 1}; raise the project's quota"]
    assert problems(RuleCloud(quota={"security_group_rules": {"limit": made, "used": 0}})) == []
