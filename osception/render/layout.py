"""Where the plan's files land on the nodes, and the names the controller's and the
nodes' setup share with `osception bake` (its stamp, k3s's flags): the controller,
the nodes and the bake render from these, so one changed fact changes all three."""

from __future__ import annotations

from .. import __version__
from ..config import Config

NODE_ETC = "/etc/osception"  # on every node: setup script, playbooks, vars, rendered files
NODE_CONSTRAINTS = f"{NODE_ETC}/constraints.txt"  # node_source pypi: the release's lock
NODE_PATCHES = f"{NODE_ETC}/patches"  # patches: files, per project
# `osception bake`: what a baked image was made for ("node 2026.2 packages 0.1.0"),
# written in it; the setup scripts skip what it installed when it matches theirs.
BAKED_STAMP = "/var/lib/osception/baked"
# k3s's server flags, the same whether the setup installs it or the bake did.
K3S_EXEC = "server --write-kubeconfig-mode=0600"
NODE_PATCH_STATE = "/var/lib/osception/patches"  # osception-patch.py's state, per project
DEFAULT_MTU = 1500  # the nodes' physical network, when neither the outer cloud nor the config says
NAMESPACE = "openstack"  # the control plane's, in the controller's k3s
# The controller's manifests travel in its user data as one archive, unpacked under NODE_ETC.
CONTROLLER_ARCHIVE = f"{NODE_ETC}/manifests.tar.xz"
DIAGNOSER = "kube_diagnose.py"  # in the archive too: run while the control plane converges


def bake_id(kind: str, cfg: Config) -> str:
    """What an image baked for this config holds: its kind, release, (nodes) where
    OpenStack comes from, and osception's version (its scripts and k3s version)."""
    source = [cfg.node_source] if kind == "node" else []
    return " ".join([kind, cfg.release, *source, __version__])
