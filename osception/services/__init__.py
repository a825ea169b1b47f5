"""The control plane's services, one folder each, and the tables read from them.

A service is a folder, osception/services/<name>/: its record (SERVICE in its
__init__.py: images, APIs, databases, Keystone user, config files), its manifest
(manifest.yaml.j2), its config templates, what the devcloud runs of it (devcloud.py)
and its Tempest sections (tempest.j2). SERVICES lists them in lifecycle order;
the flat tables below (APIS, DATABASES, ...) are read from it, for the templates,
secrets, the endpoint map and the tests. What is no one service's (the region, the
infrastructure's ports, the nodes' packages) is in shared.py, re-exported here.
A port or a database name is written nowhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from . import skyline
from .record import Api, NodeFile, Service
from .shared import *  # noqa: F403 (the shared facts, as services.<NAME>)
from .shared import SHARED_IMAGE_UIDS, SHARED_IMAGES

# osception/services/: the service folders (the template loader reads them).
FOLDER = Path(__file__).parent

# Every folder here that is a package is a service (a new service is a new folder), in
# lifecycle order: the order of their manifests' numbers.
SERVICES: tuple[Service, ...] = tuple(sorted(
    (importlib.import_module(f"{__name__}.{m.name}").SERVICE
     for m in pkgutil.iter_modules([str(FOLDER)]) if m.ispkg),
    key=lambda s: s.order))
SKYLINE_APISERVER_PORT = skyline.APISERVER_PORT

# HTTP APIs, on these ports inside the cluster. Users and the compute/network nodes
# reach them through Traefik at https://<name>.<domain>; the nodes also reach the
# nova metadata API on its port on the controller's IP.
APIS: dict[str, Api] = {a.name: a for s in SERVICES for a in s.apis}
# The APIs in the Keystone catalog, in the order `populate`, `smoke` and the devcloud use.
CATALOG_APIS = tuple(name for name, api in APIS.items() if api.catalog_type)
# The projects `patches:` may patch: the services osception runs, by repository name,
# which is also their Python package's.
PATCHABLE = CATALOG_APIS

# One MariaDB server per service, holding that service's databases.
DATABASES: dict[str, tuple[str, ...]] = {s.name: s.databases for s in SERVICES if s.databases}

# Keystone users of the services (project "service") and their roles there: the
# least each needs, checked against the release's own policy defaults
# (tests/test_service_roles.py runs them through oslo.policy). "service" is what
# keystonemiddleware's service tokens and the service-to-service APIs ask for.
SERVICE_USER_ROLES: dict[str, tuple[str, ...]] = {s.name: s.user_roles for s in SERVICES if s.user_roles}
SERVICE_USERS = tuple(SERVICE_USER_ROLES)

# Kolla images of the control plane; `images:` in osception.yaml overrides any.
KOLLA_IMAGES = (*(i for s in SERVICES for i in s.images), *SHARED_IMAGES)
# The uid of the user a Kolla image runs as, for the images whose user is not root
# and that run containers of ours (not through kolla_start): Kolla's fixed uids
# (kolla/common/users.py). Their Dockerfiles name the user (`USER nova`), which the
# kubelet cannot check against runAsNonRoot: runAsUser gives the same user by number.
# tests/kolla/test_contract.py reads both from each release's Kolla sources.
KOLLA_IMAGE_UIDS: dict[str, int] = {**SHARED_IMAGE_UIDS, **{i: u for s in SERVICES for i, u in s.image_uids.items()}}

# The template of each config file the controller renders: <service>/<file>.j2, in the
# folder of the service that renders it (the template loader's name for it).
CONFIG_TEMPLATES: dict[str, str] = {c: f"{s.name}/{c}.j2" for s in SERVICES for c in s.configs}

# INI files osception generates; `overrides:` in osception.yaml is keyed by these.
CONTROLLER_INI = tuple(f for s in SERVICES for f in s.ini)
# nova.conf and neutron.conf overrides apply on the controller and on the nodes.
INI_FILES = (*CONTROLLER_INI, *NODE_INI)  # noqa: F405

# The projects of `patches:` a node role runs, with their services there (a patch
# restarts only those).
NODE_PATCHABLE: dict[str, dict[str, tuple[str, ...]]] = {
    role: {p: tuple(s for s in names if s.startswith(f"{p}-")) for p in PATCHABLE
           if any(s.startswith(f"{p}-") for s in names)}
    for role, names in NODE_SERVICES.items()  # noqa: F405
}
