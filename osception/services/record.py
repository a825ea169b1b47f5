"""What a service of the controller is: the record each service folder declares
(osception/services/<name>/__init__.py: SERVICE), and the parts it is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Api:
    name: str  # Kubernetes Service and ingress host name: <name>.<domain>
    port: int
    catalog_type: str | None = None  # None: not in the Keystone catalog
    path: str = ""  # endpoint URL suffix, e.g. /v2.1 for compute
    # The WSGI application uWSGI serves: a module of the project (2025.1 on), or before
    # (releases.Release.wsgi_modules False) pbr's WSGI script in the image's venv bin/.
    wsgi_module: str | None = None
    wsgi_script: str | None = None


@dataclass(frozen=True)
class Process:
    """A process the devcloud (osception/devcloud/) runs for a service on this machine:
    one of the Deployments of its manifest, as the manifest gives it."""

    deployment: str
    # An API's port in the devcloud (None: it serves none): its own, away from the
    # usual one (mostly the usual + 20000), so that an OpenStack already on this
    # machine is never touched.
    port: int | None = None
    # An API's gunicorn sync workers: one request at a time each.
    workers: int = 1
    # An API's path that answers once it is up.
    ready: str = "/"
    # Only with local compute and network nodes: what their agents and guests need.
    for_nodes: bool = False
    # A releases.Release attribute that must be true for the release to have it.
    release_has: str | None = None


@dataclass(frozen=True)
class Devcloud:
    """What the devcloud runs of a service and how its config differs from the
    controller's (its folder's devcloud.py): the devcloud's machinery reads these."""

    # {process name: Process}, in the order they start; an API's process is named as
    # the API.
    processes: dict[str, Process]
    # Files the Kolla image ships in /etc/<project> from the project's package: the
    # devcloud takes them from the services venv's etc/ (<project>/<file or folder>).
    image_files: tuple[str, ...] = ()
    # (layout, host, release, nodes) -> {config file: {section: {option: value}}}: the
    # devcloud-only overrides, merged last. A path among them under the layout's data
    # or lock folders is a folder the devcloud makes before the service starts.
    overrides: Callable[..., dict] = lambda layout, host, release, nodes: {}
    # (layout) -> {path under etc/: text}: devcloud-only files beside its config.
    files: Callable[..., dict[str, str]] = lambda layout: {}


@dataclass(frozen=True)
class Service:
    """One service of the control plane, everything that is its alone. Its folder,
    osception/services/<name>/, holds this record (its __init__.py's SERVICE, under a
    docstring saying what it is and what it needs), its Kubernetes template
    (manifest.yaml.j2), the templates of the config files it renders (<file>.j2), its
    devcloud part (devcloud.py) and its Tempest sections (tempest.j2)."""

    name: str
    # Its manifest's number: k8s-0/manifests/<NN>-<name>.yaml. The controller applies
    # the manifests in that order, so it is also the service's place in the lifecycle.
    order: int
    # Its Kolla images (`images:` in osception.yaml overrides any).
    images: tuple[str, ...]
    # The uid of each of its images whose user is not root and that runs containers
    # of ours (not through kolla_start): see shared.KOLLA_START_CAPABILITIES.
    image_uids: dict[str, int] = field(default_factory=dict)
    # Its HTTP APIs, inside the cluster; through Traefik at https://<api>.<domain>.
    apis: tuple[Api, ...] = ()
    # Its databases, on a MariaDB server of its own.
    databases: tuple[str, ...] = ()
    # Its Keystone user's roles in project "service"; (): it has no user.
    user_roles: tuple[str, ...] = ()
    # The controller's config files it renders from <file>.j2 in its folder; an INI
    # file among them (.conf, .ini) is one `overrides:` in osception.yaml is keyed by.
    configs: tuple[str, ...] = ()
    # What the devcloud runs of it (its folder's devcloud.py); None: the devcloud runs
    # none of its processes (the infrastructure is the devcloud's own: devcloud/infra.py).
    devcloud: Devcloud | None = None
    # Tempest's [service_available] option that says it runs; None: Tempest assumes it
    # (keystone) or has none (placement). Its Tempest sections: tempest.j2 in its
    # folder, when it has an API in the catalog.
    tempest_available: str | None = None

    @property
    def manifest(self) -> str:
        """Its manifest's name in the plan (k8s-0/manifests/)."""
        return f"{self.order:02d}-{self.name}.yaml"

    @property
    def manifest_template(self) -> str:
        """Its manifest's template, in its folder."""
        return f"{self.name}/manifest.yaml.j2"

    @property
    def ini(self) -> tuple[str, ...]:
        """Its controller config files that are oslo.config INI files."""
        return tuple(c for c in self.configs if c.endswith((".conf", ".ini")))


@dataclass(frozen=True)
class NodeFile:
    """A config file osception renders for a compute or network node."""

    dest: str  # where the playbook installs it
    template: str  # templates/conf/<template>.j2
    group: str  # owner is root, group this service's (mode 0640), as Debian ships it

    @property
    def name(self) -> str:  # the key of `overrides:` in osception.yaml
        return self.dest.rsplit("/", 1)[1]
