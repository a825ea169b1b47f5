"""The services' INI files, for the controller's pods (service_config) and for a
compute or network node (node_config): the services' config templates rendered with the user's
`overrides` merged in, and the secret values the controller splits out of them.
The devcloud starts the real services from these very files."""

from __future__ import annotations

from .. import endpoints, ini, releases, services
from ..config import Config
from ..secrets import Secrets
from ..topology import Address, Node, nodes
from .checks import PlanError
from .env import LINE_BREAK, render_template
from .layout import DEFAULT_MTU


def secret_values(secrets: Secrets) -> list[str]:
    """Every secret string, for splitting them out of config files (and for tests).
    The public halves (an SSH public key, the CA's certificate) are not secrets."""
    found: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in ("public", "ca_cert"):
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            found.append(v)

    walk(secrets.data)
    return found


def _ini(cfg: Config, template: str, name: str, **context) -> str:
    """One INI file from its template, with the user's overrides for `name` merged in."""
    text = render_template(template, **context)
    for section, options in cfg.overrides.get(name, {}).items():
        for key, value in options.items():  # the merge writes each as it is, one line
            if any(LINE_BREAK.search(v) for v in (section, key, ini.ini_value(value))):
                shown = ".".join(t.encode("unicode_escape").decode() for t in (name, section, key))
                raise PlanError(f"overrides.{shown}: a line break where one INI line goes")
    return ini.merge(text, cfg.overrides[name]) if name in cfg.overrides else text


def service_config(cfg: Config, release: releases.Release, secrets: Secrets, ep: endpoints.Endpoints,
                   names=services.CONTROLLER_INI, mtu: int = DEFAULT_MTU) -> dict[str, str]:
    """Render the control plane's INI files for one place, with the user's overrides
    (`release`: the config's, as the plan resolved it)."""
    context = dict(
        ep=ep,
        secrets=secrets,
        services=services,
        release=release,
        mtu={"physnet": mtu},
        ml2_project_network_types_option=release.ml2_project_network_types_option,
        web_download=cfg.overcloud.web_download,
        control_host=control_host(cfg),
    )
    return {name: _ini(cfg, config_template(name), name, **context) for name in names}


def config_template(name: str) -> str:
    """The template of a controller's config file: <service>/<name>.j2 in the folder
    of the service that renders it."""
    return services.CONFIG_TEMPLATES[name]


def control_host(cfg: Config) -> str:
    """The `host` the control plane's services register under (nova.conf): the
    controller's node name, the same from one pod to the next."""
    return next(n.name for n in nodes(cfg) if n.role == "controller")


def node_config(cfg: Config, release: releases.Release, secrets: Secrets, node: Node, address: Address,
                ep: endpoints.Endpoints) -> dict[str, str]:
    """The config files of a compute or network node, keyed by their path on the node
    (`release`: the config's, as the plan resolved it; `ep`: where it reaches the
    controller, Plan.node_endpoints())."""
    context = dict(
        ep=ep,
        secrets=secrets,
        services=services,
        controller_ip=ep.controller,
        node={"name": node.name, "role": node.role, "ip": address.ip},
        ovs_datapath=cfg.ovs_datapath,
        bindir=node_bindir(cfg),
        release=release,
    )
    files = {f.dest: _ini(cfg, f"conf/{f.template}.j2", f.name, **context)
             for f in services.NODE_FILES[node.role]}
    if node.role == "compute":
        for virt_type in ("kvm", "qemu"):
            files[f"/etc/nova/nova-compute-{virt_type}.conf"] = render_template(
                "conf/nova-compute-libvirt.conf.j2", virt_type=virt_type, **context)
    return files


def node_bindir(cfg: Config) -> str:
    """Where a node's OpenStack programs are: Debian's packages', or the PyPI venv's."""
    return "/usr/bin" if cfg.node_source == "packages" else f"{services.NODE_VENV}/bin"
