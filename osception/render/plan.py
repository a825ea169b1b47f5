"""The Plan (everything every node receives, as {relative path: text}) and how one
is made: the shared part first (new_plan: the controller's address and names, the
certificates, the pinned reviews), then the controller's files and each node's, in
any order; and writing it to disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import endpoints, releases, tls
from .. import patches as patches_mod
from ..config import Config
from ..secrets import Secrets
from ..state import check_dir, write_file
from ..topology import Address, Node, nodes, placeholder_addresses
from .checks import user_data_size
from .controller import add_controller
from .layout import DEFAULT_MTU
from .node import add_node
from .patches import resolve_reviews


@dataclass
class Plan:
    cfg: Config
    release: releases.Release
    controller_ip: str
    domain: str
    nodes: list[Node]
    files: dict[str, str] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)  # files written 0600
    ingress: tls.Ingress | None = None  # what Traefik serves, and what verifies it
    mtu: int = DEFAULT_MTU  # the outer network's: the nodes' physical network
    tls_cert: str | None = None  # the controller's certificate, the environment's CA issued
    # patches: reviews, pinned when the plan is made ({(project, index in its list): Review})
    reviews: dict[tuple[str, int], patches_mod.Review] = field(default_factory=dict)

    def node_endpoints(self) -> endpoints.Endpoints:
        """Where a compute or network node reaches the controller. Its services verify
        the APIs with the environment's CA, or with the user's `tls.ca`, or (a public
        CA's certificate given without it) with the system's CAs."""
        own = self.cfg.tls
        cafile = (endpoints.NODE_CA if own is None else
                  endpoints.NODE_INGRESS_CA if self.ingress.ca else endpoints.SYSTEM_CA_BUNDLE)
        return endpoints.nodes(self.domain, self.controller_ip, cafile)

    @property
    def services(self) -> list[str]:
        """The control plane's services, from its manifests: 20-keystone.yaml -> keystone
        (00-namespace and 01-secrets hold no service)."""
        return [p.split("/")[-1].split("-", 1)[1].removesuffix(".yaml")
                for p in sorted(self.files)
                if p.startswith("k8s-0/manifests/") and not p.split("/")[-1].startswith("0")]

    def mode(self, rel: str) -> int:
        """The file's mode, on the operator's disk and in a node's archive alike."""
        return 0o600 if rel in self.private else 0o644

    @property
    def user_data_sizes(self) -> dict[str, int]:
        """Each node's user data as Nova counts it (see NOVA_USER_DATA_LIMIT), of the
        nodes rendered so far."""
        return {n.name: user_data_size(self.files[f"{n.name}/user-data"]) for n in self.nodes
                if f"{n.name}/user-data" in self.files}


def domain_of(cfg: Config, controller_ip: str) -> str:
    """The endpoints' DNS name: `domain`, else <controller IP>.sslip.io (a public
    wildcard name that resolves to that IP)."""
    return cfg.domain or f"{controller_ip}.sslip.io"


def build(cfg: Config, secrets: Secrets, addresses: dict[str, Address] | None = None,
          mtu: int | None = None, ep: endpoints.Endpoints | None = None) -> Plan:
    """Everything every node receives. `addresses` come from the outer cloud's ports;
    without them (plan), documentation addresses stand in. `ep`: where the control
    plane's services reach each other, when not in the controller's k3s (the devcloud)."""
    addresses = addresses or placeholder_addresses(cfg)
    plan = new_plan(cfg, secrets, addresses["k8s-0"], mtu=mtu)
    add_controller(plan, secrets, ep=ep)
    for node in plan.nodes:
        if node.data_plane:
            add_node(plan, secrets, node, addresses[node.name])
    return plan


def new_plan(cfg: Config, secrets: Secrets, controller: Address, mtu: int | None = None) -> Plan:
    """A plan without files yet: what every node's files share (the controller's
    address and names, what the APIs present and what verifies them). Then the
    controller's files (add_controller) and each node's (add_node), in any order, even
    at once: each writes only its own. A node's files depend on its own address and
    the controller's only, so `up` renders each as soon as its port exists."""
    ip = controller.ip
    domain = domain_of(cfg, ip)
    plan = Plan(cfg, releases.get(cfg.release), ip, domain, nodes(cfg), mtu=mtu or cfg.mtu or DEFAULT_MTU)
    plan.tls_cert = tls.server_cert(secrets.tls, domain, ip)
    # what Traefik serves: that certificate, or the user's own (tls: in osception.yaml)
    plan.ingress = tls.ingress(cfg.tls, secrets.tls, plan.tls_cert)
    plan.reviews = resolve_reviews(cfg)
    if plan.reviews:  # what the plan pins, readable beside the files that carry it
        plan.files[REVIEWS_FILE] = yaml.safe_dump([
            {"project": project, "patch": i, "review": r.review, "change": r.change,
             "patchset": r.patchset, "sha256": r.sha256, "url": f"{patches_mod.GERRIT}/c/{r.change}/{r.patchset}"}
            for (project, i), r in sorted(plan.reviews.items())], sort_keys=False)
    return plan


REVIEWS_FILE = "reviews.yaml"


def check_target(plan: Plan, out: Path) -> None:
    """Refuse, writing nothing, a folder `write` would write into that is not the
    user's alone (StateError, one line naming it): `plan --out` checks it with the
    rest of its input, before the environment's state is made."""
    folders = {out} | {p for rel in plan.files for p in (out / rel).parents if out in p.parents}
    for folder in sorted(folders):
        check_dir(folder)


def write(plan: Plan, out: Path) -> None:
    """Write the plan's files under `out`; files holding secrets get mode 0600.

    Every folder must be the user's and writable by nobody else; every file is
    written anew (never through a planted symlink or temporary file)."""
    check_target(plan, out)  # refuse a bad folder before anything is created or written
    for rel, text in sorted(plan.files.items()):
        write_file(out / rel, text, plan.mode(rel), dir_mode=0o755)
