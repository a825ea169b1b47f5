"""What users and tests see of the devcloud: clouds.yaml entries (admin and a member
project), the member project itself, a flavor and an image to boot from, and the
check that the fake compute host can take servers."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime

import openstack
import yaml

from .. import releases, services
from ..secrets import Secrets
from ..state import write_private
from .layout import HOST, PORTS, Layout

ADMIN_CLOUD = "devcloud-admin"
MEMBER_CLOUD = "devcloud"
MEMBER_PROJECT = "demo"
MEMBER_USER = "demo"
FLAVOR = "devcloud.tiny"
IMAGE = "devcloud-raw"  # 1 MiB of zeros: the fake driver never reads it


def auth_url() -> str:
    return f"http://{HOST}:{PORTS['keystone']}/v3"


# This machine is the controller's side: its clients use the catalog's internal
# interface (http on 127.0.0.1). The public one is what the local nodes reach (https
# names through the relay, nodes.py) when they run, the same URLs otherwise.
CLIENT_INTERFACE = "internal"


def clouds(secrets: Secrets) -> dict:
    def entry(user: str, password: str, project: str) -> dict:
        return {
            "auth": {"auth_url": auth_url(), "username": user, "password": password,
                     "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": services.REGION,
            "identity_api_version": 3,
            "interface": CLIENT_INTERFACE,
        }

    return {"clouds": {
        ADMIN_CLOUD: entry("admin", secrets.admin_password, "admin"),
        MEMBER_CLOUD: entry(MEMBER_USER, secrets.demo_password, MEMBER_PROJECT),
    }}


def write_clouds_yaml(layout: Layout, secrets: Secrets) -> None:
    write_private(layout.clouds_yaml, yaml.safe_dump(clouds(secrets), sort_keys=False))


def connect_kwargs(secrets: Secrets, cloud: str = ADMIN_CLOUD) -> dict:
    """openstack.connect(**these): explicit, ignoring OS_* and the user's clouds.yaml."""
    c = clouds(secrets)["clouds"][cloud]
    return {**c["auth"], "region_name": services.REGION, "interface": CLIENT_INTERFACE,
            "load_envvars": False, "load_yaml_config": False}


def connect(secrets: Secrets, cloud: str = ADMIN_CLOUD) -> openstack.connection.Connection:
    return openstack.connect(**connect_kwargs(secrets, cloud))


def _find(finder, name: str, **kwargs):
    """finder(name) or None (openstacksdk deprecates ignore_missing=True)."""
    try:
        return finder(name, ignore_missing=False, **kwargs)
    except openstack.exceptions.NotFoundException:
        return None


def ensure_member_project(conn, secrets: Secrets) -> None:
    ident = conn.identity
    project = _find(ident.find_project, MEMBER_PROJECT, domain_id="default") or \
        ident.create_project(name=MEMBER_PROJECT, domain_id="default",
                             description="osception devcloud member project")
    user = _find(ident.find_user, MEMBER_USER, domain_id="default")
    if user is None:
        user = ident.create_user(name=MEMBER_USER, password=secrets.demo_password,
                                 domain_id="default", default_project_id=project.id)
    else:
        ident.update_user(user, password=secrets.demo_password)
    ident.assign_project_role_to_user(project, user, _find(ident.find_role, "member"))


def ensure_flavor_and_image(conn) -> None:
    if _find(conn.compute.find_flavor, FLAVOR) is None:
        conn.compute.create_flavor(name=FLAVOR, vcpus=1, ram=256, disk=1, is_public=True)
    if _find(conn.image.find_image, IMAGE) is None:
        conn.image.create_image(name=IMAGE, data=b"\0" * 2**20, disk_format="raw",
                                container_format="bare", visibility="public")


def compute_ready(conn, secrets: Secrets, since: datetime | None = None) -> bool:
    """nova-compute is up (and reported after `since`: a restarted one), has its
    resource provider in Placement, and its host is mapped into cell1 (else the
    scheduler answers NoValidHost)."""
    after = (since or datetime.min).replace(tzinfo=None).isoformat()
    try:
        up = [s for s in conn.compute.services(binary="nova-compute")
              if s.state == "up" and s.status == "enabled" and (s.updated_at or "") > after]
        providers = list(conn.placement.resource_providers())
    except openstack.exceptions.SDKException:
        return False
    if not up or not providers:
        return False
    r = subprocess.run(
        ["mysql", f"--host={HOST}", f"--port={PORTS['mariadb']}", "--user=nova", "-N", "-e",
         "SELECT COUNT(*) FROM host_mappings", "nova_api"],
        capture_output=True, text=True, env={**os.environ, "MYSQL_PWD": secrets.database["nova"]})
    return r.returncode == 0 and r.stdout.strip() not in ("", "0")


# The devcloud as an OUTER cloud for osception itself (tests, benchmarks): what a
# public cloud offers a project, under the names a test config uses; the image is the
# one an environment's controller boots by default.
OUTER_FLAVOR, OUTER_NETWORK, OUTER_PROVIDER = "osc.test", "Ext-Net", "Provider-Net"
OUTER_IMAGE = releases.CONTROLLER_OS.image


def dress_as_outer_cloud(admin, member) -> None:
    """A flavor, the controller OS's image, a shared flat `Ext-Net` and a provider network,
    and quotas large enough for 50-node benchmarks in the member's project."""
    if admin.compute.find_flavor(OUTER_FLAVOR) is None:
        admin.compute.create_flavor(name=OUTER_FLAVOR, vcpus=1, ram=128, disk=1, is_public=True)
    if admin.image.find_image(OUTER_IMAGE) is None:
        admin.image.create_image(name=OUTER_IMAGE, data=b"\0" * 1024, disk_format="raw",
                                 container_format="bare", visibility="public")
    for name, cidr in ((OUTER_NETWORK, "10.250.0.0/16"), (OUTER_PROVIDER, "198.51.100.0/24")):
        if admin.network.find_network(name) is None:  # flat and shared, like a public cloud's
            net = admin.network.create_network(name=name, is_shared=True, provider_network_type="flat",
                                               provider_physical_network=name.lower())
            admin.network.create_subnet(network_id=net.id, ip_version=4, cidr=cidr, name=name)
    project = member.current_project_id
    admin.set_compute_quotas(project, instances=200, cores=400, ram=400000, server_group_members=200)
    admin.set_network_quotas(project, port=1000, security_group=50, security_group_rule=500)
