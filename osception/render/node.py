"""A compute or network node's files (compute-N/..., network-N/...): its config
files, the playbooks and their variables (vars.yml, every string !unsafe to
Ansible), with node_source pypi its systemd units and the release's lock, its patch
files, and its user data. `osception bake` installs from the same variables."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from .. import endpoints, locks, releases, services
from .. import secrets as secrets_mod
from ..config import METADATA_ADDRESSES, Config
from ..secrets import Secrets
from ..topology import Address, Node
from .checks import SafeLoader, check_file, check_user_data
from .conf import node_config, secret_values
from .env import render_template, script, source
from .layout import BAKED_STAMP, NODE_CONSTRAINTS, NODE_ETC, NODE_PATCH_STATE, bake_id
from .patches import node_patches_of

if TYPE_CHECKING:
    from .plan import Plan

ANSIBLE_FILES = ("compute.yml", "network.yml", "tasks/common.yml", "tasks/compute.yml",
                 "tasks/network.yml")


def add_node(plan: Plan, secrets: Secrets, node: Node, address: Address) -> None:
    """compute-N / network-N: config files, the playbooks and their variables, user
    data, parsed back and sized like the controller's."""
    _data_plane_node(plan, secrets, secret_values(secrets), node, address, plan.mtu)
    for rel in [rel for rel in list(plan.files) if rel.startswith(f"{node.name}/")]:
        check_file(rel, plan.files[rel])
    check_user_data(plan, [node.name])


def _data_plane_node(plan: Plan, secrets: Secrets, hidden: list[str], node: Node, address: Address,
                     mtu: int) -> None:
    """compute-N / network-N: config files, the playbooks and their variables, user data."""
    cfg, release = plan.cfg, plan.release
    ep = plan.node_endpoints()
    files = node_config(cfg, release, secrets, node, address, ep)
    for dest, text in files.items():
        rel = f"{node.name}/config/{dest.rsplit('/', 1)[1]}"
        plan.files[rel] = text
        if any(v in text for v in hidden):
            plan.private.add(rel)
    pypi = cfg.node_source == "pypi"
    units = node_units(cfg, release, node.role)
    for dest, text in units.items():
        plan.files[f"{node.name}/systemd/{dest.rsplit('/', 1)[1]}"] = text
    node_patches, patch_files = node_patches_of(cfg, node, plan.reviews)
    vars_yaml = ansible_vars(node_vars(cfg, release, node, address, plan.controller_ip, mtu, node_patches, units))
    plan.files[f"{node.name}/user-data"] = render_template(
        "cloud-init/node.yaml.j2",
        node=node,
        release=release,
        domain=plan.domain,
        secrets=secrets,
        ep=ep,
        node_etc=NODE_ETC,
        vars_yaml=vars_yaml,
        files=files | units,
        constraints=node_lock(release) if pypi else None,
        node_source=cfg.node_source,
        playbooks={name: source(f"ansible/{name}") for name in ANSIBLE_FILES},
        step_sh=script("osception-step.sh"),
        setup_sh=render_template("scripts/node-setup.sh.j2", node=node, node_etc=NODE_ETC,
                                 release=release, services=services, ep=ep,
                                 node_source=cfg.node_source, baked=bake_id("node", cfg),
                                 baked_stamp=BAKED_STAMP, services_python=services_python(cfg),
                                 release_versions=releases.service_versions(
                                     release.name, tuple(services.NODE_PATCHABLE[node.role]))),
        public_mac=address.public_mac,
        apt_proxy=cfg.apt_proxy,
        ingress_ca=plan.ingress.ca if ep.cafile == endpoints.NODE_INGRESS_CA else None,
        patch_files={dest: base64.b64encode(data).decode() for dest, data in patch_files.items()},
        patch_script=script("osception-patch.py"),
        host_key=secrets_mod.host_key(secrets, node.name),
        nova_known_hosts=nova_known_hosts(plan, secrets, node),
        metadata_rules=METADATA_RULES,
    )
    plan.private.add(f"{node.name}/user-data")


# On a compute or network node only root reaches the outer cloud's metadata service
# (node.yaml.j2's bootcmd runs these): a policy rule, before the main table, that
# gives every other user's socket no route to its addresses. Root is cloud-init and
# osception's own steps; a QEMU process or a service is not.
METADATA_RULES = [["ip", f"-{a.version}", "rule", "add", "priority", "100", "to", f"{a}/{a.max_prefixlen}",
                   "uidrange", "1-4294967294", "prohibit"] for a in METADATA_ADDRESSES]


def nova_known_hosts(plan: Plan, secrets: Secrets, node: Node) -> list[str]:
    """What nova on compute `node` trusts when it migrates over SSH: the other computes'
    host keys, and nothing else. At any address ('*'): nova connects by IP, and a node's
    files know only its own and the controller's (each renders as soon as its port exists);
    the key is what identifies the peer."""
    return [secrets_mod.known_hosts_line(secrets, n.name, "*") for n in plan.nodes
            if n.role == "compute" and n.name != node.name]


def node_vars(cfg: Config, release: releases.Release, node: Node, address: Address, controller_ip: str,
              mtu: int, node_patches: list[dict], units: dict[str, str]) -> dict:
    """The playbooks' variables of one node (/etc/osception/vars.yml)."""
    pypi = cfg.node_source == "pypi"
    return {
        "node_name": node.name,
        "node_role": node.role,
        "node_etc": NODE_ETC,
        "node_ip": address.ip,
        "node_mac": address.mac,
        "public_mac": address.public_mac,
        "release": release.name,
        "extrepo": release.extrepo,
        "controller_ip": controller_ip,
        "physnet_mtu": mtu,
        "ovs_datapath": cfg.ovs_datapath,
        "libvirt_cgroups": cfg.libvirt_cgroups,
        "node_source": cfg.node_source,
        # the release's node OS's python3: pypi's venv is made with it
        "node_python": release.node_os.python,
        "packages": list((services.NODE_PYPI_PACKAGES if pypi else services.NODE_PACKAGES)[node.role]),
        # patches: (osception.yaml), every project this node runs (none: its pristine
        # code), applied by osception-patch.py with the services' own interpreter.
        "patches": node_patches,
        "patch_python": services_python(cfg),
        "patch_script": f"{NODE_ETC}/osception-patch.py",
        "patch_state": NODE_PATCH_STATE,
        "services": list(services.NODE_SERVICES[node.role]),
        # pypi only (empty otherwise): the venv, its projects and constraints, the
        # services' users, their systemd units and rootwrap.
        "venv": services.NODE_VENV,
        "pypi_projects": list(services.NODE_PYPI_PROJECTS[node.role]) if pypi else [],
        "pypi_constraints": NODE_CONSTRAINTS,
        # pip's environment: the site's index (osception.yaml pip_index_url); a plain
        # http one must be named trusted, or pip ignores it.
        "pip_env": pip_env(cfg.pip_index_url),
        "service_users": [
            {"name": u.name, "shell": u.shell, "uid": u.uid, "groups": list(u.groups), "sudo": list(u.sudo),
             "state_folders": [f"/var/lib/{u.name}", *(f"/var/lib/{u.name}/{d}" for d in u.state_folders)]}
            for u in services.NODE_USERS[node.role]
        ] if pypi else [],
        "units": [{"src": f"{NODE_ETC}/files{dest}", "dest": dest} for dest in units],
        # The packages make these; the config files and the rootwrap filters go there.
        "etc_folders": sorted({f.dest.rsplit("/", 1)[0] for f in services.NODE_FILES[node.role]} |
                              {f"/etc/{u.name}/rootwrap.d" for u in services.NODE_USERS[node.role]}) if pypi else [],
        "config_files": [
            {"src": f"{NODE_ETC}/files{f.dest}", "dest": f.dest, "group": f.group}
            for f in services.NODE_FILES[node.role]
        ],
        # Set to true only where services and the kernel cannot be touched (a chroot).
        "osception_chroot": False,
    }


def services_python(cfg: Config) -> str:
    """The interpreter a node's OpenStack services run with: Debian's, or the PyPI venv's."""
    return "/usr/bin/python3" if cfg.node_source == "packages" else f"{services.NODE_VENV}/bin/python3"


def pip_env(index_url: str | None) -> dict[str, str]:
    """The nodes' pip environment for an index (none: pypi.org's defaults)."""
    if index_url is None:
        return {}
    env = {"PIP_INDEX_URL": index_url}
    if index_url.startswith("http://"):
        env["PIP_TRUSTED_HOST"] = urlsplit(index_url).netloc
    return env


def node_units(cfg: Config, release: releases.Release, role: str) -> dict[str, str]:
    """node_source pypi: the systemd units of the role's services ({dest: text}); the
    packages bring their own."""
    if cfg.node_source != "pypi":
        return {}
    return {f"/etc/systemd/system/{name}.service":
            render_template("systemd/node-service.service.j2", unit=services.NODE_UNITS[name],
                            venv=services.NODE_VENV, release=release)
            for name in services.NODE_SERVICES[role] if name in services.NODE_UNITS}  # libvirtd: Debian's


def node_lock(release: releases.Release) -> str:
    """The release's lock (osception/locks/): a pypi node's pip constraints."""
    return locks.read(release.name)


class _AnsibleVarsDumper(yaml.SafeDumper):
    """YAML whose every string is tagged !unsafe: Ansible takes it as data and never
    templates it (a `{{ lookup('pipe', ...) }}` in a value would run as root)."""


ANSIBLE_UNSAFE = "!unsafe"  # Ansible's tag for a value it must not template
_AnsibleVarsDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar(ANSIBLE_UNSAFE, value, style='"'))
# Keys are the variables' names (and their fields'), osception's own: plain.
_AnsibleVarsDumper.add_representer(dict, lambda dumper, value: yaml.MappingNode(
    "tag:yaml.org,2002:map", [(dumper.represent_str(k), dumper.represent_data(v)) for k, v in value.items()]))


def ansible_vars(variables: dict) -> str:
    """A node's vars.yml (ansible-playbook -e @vars.yml): every string !unsafe, in double
    quotes (every control character escaped)."""
    return yaml.dump(variables, Dumper=_AnsibleVarsDumper, sort_keys=False, allow_unicode=False)


class _AnsibleVarsLoader(SafeLoader):
    """Reads vars.yml back (tests, tools): an !unsafe string is a string."""


_AnsibleVarsLoader.add_constructor(ANSIBLE_UNSAFE, lambda loader, node: loader.construct_scalar(node))


def load_ansible_vars(text: str) -> dict:
    return yaml.load(text, Loader=_AnsibleVarsLoader)
