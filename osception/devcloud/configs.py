"""The devcloud's config files: osception's own service config (the text the
controller's ConfigMaps carry, rendered with local endpoints), the devcloud-only
overrides on top, and the few files the services need beside them."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import endpoints, ini, render, services
from ..config import Config
from ..secrets import Secrets
from ..state import write_private
from .layout import APIS, HOST, PORTS, Layout
from .overrides import overrides

# Where each rendered file goes: etc/<service>/<path>.
DESTINATIONS = {
    "keystone.conf": "keystone/keystone.conf",
    "glance-api.conf": "glance/glance-api.conf",
    "placement.conf": "placement/placement.conf",
    "neutron.conf": "neutron/neutron.conf",
    "ml2_conf.ini": "neutron/plugins/ml2/ml2_conf.ini",  # where OS_NEUTRON_CONFIG_DIR wants it
    "nova.conf": "nova/nova.conf",
    # nova-compute reads what a compute node gets (templates/conf/nova-compute.conf.j2).
    "nova-compute.conf": "nova-compute/nova.conf",
}
# Paste pipelines the services ship in their wheels (venv/etc/...), copied beside the config.
PASTE = {
    "glance": "glance/glance-api-paste.ini",
    "neutron": "neutron/api-paste.ini",
    "nova": "nova/api-paste.ini",
}
# How each API's WSGI module finds its config files.
CONFIG_ENV = {
    "keystone": ("OS_KEYSTONE_CONFIG_FILES", "keystone.conf"),
    "glance": ("OS_GLANCE_CONFIG_DIR", None),
    "placement": ("OS_PLACEMENT_CONFIG_DIR", None),
    "neutron": ("OS_NEUTRON_CONFIG_DIR", None),
    "nova": ("OS_NOVA_CONFIG_DIR", None),
}
WSGI_MODULES = {
    "keystone": "keystone.wsgi.api",
    "glance": "glance.wsgi.api",
    "placement": "placement.wsgi.api",
    "neutron": "neutron.wsgi.api",
    "nova": "nova.wsgi.osapi_compute",
}
# A module per API for gunicorn: the services' WSGI modules parse sys.argv with
# oslo.config at import, and gunicorn's own arguments would be "unrecognized".
APP_MODULE = '''"""gunicorn entry point of {service} for osception devcloud."""
import sys

sys.argv = sys.argv[:1]
from {module} import application  # noqa: E402,F401
'''


def local_endpoints() -> endpoints.Endpoints:
    return endpoints.local(
        HOST, database_port=PORTS["mariadb"], rabbitmq_port=PORTS["rabbitmq"],
        memcached_port=PORTS["memcached"], api_ports={name: PORTS[name] for name in APIS})


def compute_node_conf(cfg: Config, secrets: Secrets) -> str:
    """A compute node's nova.conf (as render.node_config() makes it), with local
    endpoints; the user's nova.conf overrides apply, as they do on the nodes."""
    text = render.render_template(
        "conf/nova-compute.conf.j2", ep=local_endpoints(), secrets=secrets, services=services,
        physnet=render.PHYSNET, controller_ip=HOST,
        node={"name": "devcloud-compute", "role": "compute", "ip": HOST})
    return ini.merge(text, cfg.overrides["nova.conf"]) if "nova.conf" in cfg.overrides else text


def rendered(cfg: Config, secrets: Secrets, layout: Layout) -> dict[str, str]:
    """{file name: text}: the controller's templates (and a compute node's nova.conf)
    with local endpoints, then the devcloud-only overrides."""
    files = render.service_config(cfg, secrets, local_endpoints())
    files["nova-compute.conf"] = compute_node_conf(cfg, secrets)
    extra = overrides(layout)
    return {name: ini.merge(text, extra.get(name, {})) for name, text in files.items()}


def write(cfg: Config, secrets: Secrets, layout: Layout, venv: Path) -> None:
    for name, text in rendered(cfg, secrets, layout).items():
        write_private(layout.etc("") / DESTINATIONS[name], text)
    for service, rel in PASTE.items():
        shutil.copyfile(venv / "etc" / rel, layout.etc(service) / Path(rel).name)
    # Keystone signs with the environment's keys, as on the controller (no fernet_setup).
    for kind, keys in (("fernet-keys", secrets.keystone_fernet_keys),
                       ("credential-keys", secrets.keystone_credential_keys)):
        for i, key in enumerate(keys):
            write_private(layout.etc("keystone") / kind / str(i), key)
    for service in APIS:
        (layout.apps / f"{service}_app.py").write_text(
            APP_MODULE.format(service=service, module=WSGI_MODULES[service]))
    for path in (layout.data("glance") / d for d in ("images", "staging", "tasks_work_dir")):
        path.mkdir(parents=True, exist_ok=True)
    for service in ("glance", "neutron", "nova", "nova-compute"):
        layout.lock(service).mkdir(parents=True, exist_ok=True)
    layout.data("neutron").mkdir(parents=True, exist_ok=True)
    layout.data("nova").mkdir(parents=True, exist_ok=True)
    layout.data("nova-compute").mkdir(parents=True, exist_ok=True)


def api_env(layout: Layout, service: str) -> dict[str, str]:
    var, file = CONFIG_ENV[service]
    where = layout.etc(service)
    return {var: str(where / file) if file else str(where)}


def files_of(layout: Layout, service: str) -> list[Path]:
    """The config files a service's processes read (their change restarts them)."""
    return sorted(p for p in layout.etc(service).rglob("*") if p.is_file())
