"""The nodes keep their secrets to themselves: on a compute or network node only root
reaches the outer cloud's metadata service (which serves the user data and its
passwords), and the guests' VNC consoles listen on the node's private address only."""

from __future__ import annotations

import configparser
import subprocess
import sys

import pytest
import yaml

from osception import config, render, secrets, topology
from osception.render.node import METADATA_RULES
from tests import netns

NOBODY = 65534


@pytest.fixture(scope="module")
def plan():
    cfg = config.Config(nodes={"compute": {"count": 2}, "network": {"count": 1}})
    return render.build(cfg, secrets.throwaway(cfg.name))


def _bootcmd(plan, node: str) -> list[list[str]]:
    return yaml.safe_load(plan.files[f"{node}/user-data"])["bootcmd"]


def test_the_metadata_rules_come_first_on_every_data_plane_node(plan):
    for node in (n.name for n in plan.nodes if n.data_plane):
        assert _bootcmd(plan, node)[:len(METADATA_RULES)] == METADATA_RULES, node
    # both addresses of the metadata service (OpenStack's IPv6 one too)
    assert {r[r.index("to") + 1] for r in METADATA_RULES} == {"169.254.169.254/32", "fe80::a9fe:a9fe/128"}


def test_vnc_listens_on_the_compute_s_own_private_address(plan):
    addresses = topology.placeholder_addresses(plan.cfg)
    for node in (n for n in plan.nodes if n.role == "compute"):
        nova = configparser.ConfigParser(interpolation=None, strict=False)
        nova.read_string(plan.files[f"{node.name}/config/nova.conf"])
        assert nova["vnc"]["server_listen"] == addresses[node.name].ip
        assert nova["vnc"]["server_proxyclient_address"] == addresses[node.name].ip


# Who can open a socket to the metadata address, in a network namespace that routes it
# (a dummy link stands for the node's network), with the user data's own rules applied.
PROBE = """
import os, socket, sys
if sys.argv[1] != "0":
    os.setgid(int(sys.argv[1])); os.setuid(int(sys.argv[1]))
ifindex = socket.if_nametoindex("osc-md")
for family, address in ((socket.AF_INET, ("169.254.169.254", 80)),
                        (socket.AF_INET6, ("fe80::a9fe:a9fe", 80, 0, ifindex))):
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.connect(address)  # UDP: a route lookup, no packet
        print(family.name, "reached")
    except OSError as e:
        print(family.name, "refused", e.strerror)
"""


@pytest.fixture
def netns_root():
    """Root and a network namespace of our own (slow tier: tests/conftest.py SLOW_FIXTURES)."""
    with netns.namespace("osc-md", [
            ["link", "set", "lo", "up"], ["link", "add", "osc-md", "type", "veth", "peer", "osc-md-peer"],
            ["link", "set", "osc-md-peer", "up"], ["link", "set", "osc-md", "up"],
            ["addr", "add", "10.231.98.10/24", "dev", "osc-md"],
            ["-6", "addr", "add", "fe80::10/64", "dev", "osc-md", "nodad"],
            ["route", "add", "169.254.169.254/32", "dev", "osc-md"]], "the metadata isolation test") as name:
        yield name


def _probe(ns: str, uid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, str(uid)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.splitlines()


def test_only_root_reaches_the_metadata_service(plan, netns_root):
    reached = ["AF_INET reached", "AF_INET6 reached"]
    assert _probe(netns_root, 0) == reached and _probe(netns_root, NOBODY) == reached  # the control
    for rule in _bootcmd(plan, "compute-0")[:len(METADATA_RULES)]:  # as cloud-init runs them
        subprocess.run(["ip", "netns", "exec", netns_root, *rule], check=True)
    assert _probe(netns_root, 0) == reached
    assert _probe(netns_root, NOBODY) == ["AF_INET refused Permission denied", "AF_INET6 refused Permission denied"]
    assert _probe(netns_root, 1) == ["AF_INET refused Permission denied", "AF_INET6 refused Permission denied"]
