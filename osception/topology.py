"""The environment's topology: which nodes exist, their names and roles, and the
addresses they are given. The renderer (what each node receives) and the undercloud
(the servers and ports `up` makes and `down` removes) both read it from here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import Config

# Node names: <prefix>-<index>, per role, in creation order.
NAME_PREFIX = {"controller": "k8s", "compute": "compute", "network": "network"}
# Until `up` knows the real addresses, a plan uses documentation addresses (RFC 5737):
# 203.0.113.<host>, host = the role's base + the node's index.
PLACEHOLDER_HOST = {"controller": 10, "compute": 20, "network": 40}
PLACEHOLDER_CONTROLLER_IP = f"203.0.113.{PLACEHOLDER_HOST['controller']}"


@dataclass(frozen=True)
class Node:
    name: str  # k8s-0, compute-0, network-1 ...
    role: str  # controller | compute | network
    flavor: str
    image: str
    index: int

    @property
    def data_plane(self) -> bool:
        """compute and network nodes: Open vSwitch, and br-ex on the provider network.
        The controller runs no agent and never uses a provider port."""
        return self.role != "controller"


@dataclass(frozen=True)
class Address:
    """What the outer cloud gave a node's ports (known before the server exists)."""

    ip: str  # fixed IP on the outer network: the node's own address
    mac: str  # MAC of that port
    public_mac: str | None = None  # MAC of the port on the provider network, if any


def nodes(cfg: Config) -> list[Node]:
    """Every node of the environment, in creation order: k8s-0, compute-0.., network-0.."""
    out = []
    for role, prefix in NAME_PREFIX.items():
        group = getattr(cfg.nodes, role)
        out += [Node(f"{prefix}-{i}", role, group.flavor, cfg.node_image(role), i) for i in range(group.count)]
    return out


def is_node_name(name: str) -> bool:
    """k8s-0, compute-12, network-1 ...: a name nodes() can give."""
    return re.fullmatch(rf"({'|'.join(map(re.escape, NAME_PREFIX.values()))})-\d+", name) is not None


def public_port_nodes(cfg: Config) -> list[Node]:
    """The nodes that get a port on the outer provider network (public_network.mode
    provider): the data plane, whose br-ex bridges it. Never the controller."""
    return [n for n in nodes(cfg) if cfg.public_network.mode == "provider" and n.data_plane]


def placeholder_addresses(cfg: Config) -> dict[str, Address]:
    """Documentation addresses (RFC 5737) and locally administered MACs for `plan`."""
    base = PLACEHOLDER_HOST
    out = {}
    public_nodes = public_port_nodes(cfg)
    for n in nodes(cfg):
        host = base[n.role] + n.index
        public = f"02:00:00:00:01:{host:02x}" if n in public_nodes else None
        out[n.name] = Address(f"203.0.113.{host}", f"02:00:00:00:00:{host:02x}", public)
    return out
