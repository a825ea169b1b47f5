"""`osception bake`'s builder user data: what every node of a kind (controller, node)
installs first for this config's release, from the same scripts, variables and
image names as the plan, so a baked image holds exactly what the setup would install."""

from __future__ import annotations

from .. import releases, services
from .. import secrets as secrets_mod
from ..config import Config
from ..topology import nodes, placeholder_addresses
from .controller import kolla_images
from .env import render_template, script, source
from .layout import BAKED_STAMP, DEFAULT_MTU, K3S_EXEC, NODE_CONSTRAINTS, NODE_ETC, bake_id
from .node import ANSIBLE_FILES, ansible_vars, node_lock, node_units, node_vars
from .plan import build


def bake_user_data(cfg: Config, kind: str) -> str:
    """The user data of `osception bake`'s builder server of `kind` (node, controller):
    it installs what every such node of this release installs first, resets cloud-init
    and powers off for the snapshot."""
    release = releases.get(cfg.release)
    context = dict(cfg=cfg, release=release, node_etc=NODE_ETC, baked=bake_id(kind, cfg),
                   baked_stamp=BAKED_STAMP, node_source=cfg.node_source, step_sh=script("osception-step.sh"))
    if kind == "controller":
        plan = build(cfg, secrets_mod.throwaway(cfg.name))  # rendered only for its image names
        bake_sh = render_template("scripts/bake-controller.sh.j2", k3s_version=releases.K3S_VERSION,
                                  k3s_exec=K3S_EXEC, images=kolla_images(plan), **context)
        return render_template("cloud-init/bake.yaml.j2", kind=kind, bake_sh=bake_sh, files={}, **context)
    files, roles = {}, ("compute", "network")
    # A config with one node of each role, at documentation addresses: only the
    # packages pass runs, which reads neither.
    one_each = cfg.model_copy(update={"nodes": cfg.nodes.model_copy(update={
        role: getattr(cfg.nodes, role).model_copy(update={"count": 1}) for role in roles})})
    addresses = placeholder_addresses(one_each)
    for role in roles:  # both roles' packages: one image for every compute and network node
        node = next(n for n in nodes(one_each) if n.role == role)
        units = node_units(cfg, release, role)
        files |= {f"{NODE_ETC}/files{dest}": text for dest, text in units.items()}
        files[f"{NODE_ETC}/bake-vars/{role}.yml"] = ansible_vars(
            node_vars(cfg, release, node, addresses[node.name], addresses["k8s-0"].ip, DEFAULT_MTU, [], units))
    files |= {f"{NODE_ETC}/ansible/{name}": source(f"ansible/{name}") for name in ANSIBLE_FILES}
    if cfg.node_source == "pypi":
        files[NODE_CONSTRAINTS] = node_lock(release)
    # Every service both roles run, and what the packages enable that the nodes keep off
    # (their config pass says so too): none starts before the node's own setup.
    disable = sorted({s for role in roles for s in services.NODE_SERVICES[role]}
                     | {"openvswitch-switch", "haproxy", "keepalived", "radvd"})
    bake_sh = render_template("scripts/bake-node.sh.j2", roles=roles, services_off=disable, **context)
    return render_template("cloud-init/bake.yaml.j2", kind=kind, bake_sh=bake_sh, files=files,
                           apt_proxy=cfg.apt_proxy, **context)
