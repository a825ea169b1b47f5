"""The new cloud: populate it (idempotently) and prove it works (smoke test).

The service users and the catalog are NOT made here: the controller's
`service-accounts` Job registers them, inside the control plane, because the
services and the nodes need them before anybody runs a command. `populate` only
checks the catalog is there, then adds what users need: flavors, images, the
public network, a demo project with its network, router, rules and keypair, and
openrc / clouds.yaml files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import openstack
import yaml
from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from . import services, topology, undercloud
from .config import Config
from .state import Layout, write_private

EXPECTED_SERVICES = tuple(services.APIS[name].catalog_type for name in services.CATALOG_APIS)


@dataclass(frozen=True)
class Access:
    """How to reach the new cloud as admin."""

    auth_url: str
    admin_password: str
    demo_password: str
    cacert: str | None = None  # the environment's CA (ca.pem), for its HTTPS endpoints
    # The catalog interface to use: users are outside the controller (public); the
    # devcloud's own machine is its controller side (internal).
    interface: str = "public"


def admin_conn(access: Access) -> openstack.connection.Connection:
    return openstack.connect(auth_url=access.auth_url, username="admin", password=access.admin_password,
                             project_name="admin", user_domain_name="Default",
                             project_domain_name="Default", region_name=services.REGION,
                             interface=access.interface,
                             **({"cacert": access.cacert} if access.cacert else {}))


def demo_conn(access: Access, project: str) -> openstack.connection.Connection:
    return openstack.connect(auth_url=access.auth_url, username="demo", password=access.demo_password,
                             project_name=project, user_domain_name="Default",
                             project_domain_name="Default", region_name=services.REGION,
                             interface=access.interface,
                             **({"cacert": access.cacert} if access.cacert else {}))


@dataclass
class Changes:
    """What a populate run created or changed: empty on a second run."""

    made: list[str] = field(default_factory=list)

    def add(self, what: str) -> None:
        self.made.append(what)


# --- populate --------------------------------------------------------------------

def populate(access: Access, cfg: Config, public_key: str, state_dir: Path,
             wait_images: float = 600, local_images=None) -> Changes:
    """LOCAL_IMAGES, for a cloud on this machine (its Glance cannot fetch the config's
    images from here): the caller's own images instead, a function that uploads them
    through the admin connection it is given and returns the names it made."""
    conn = admin_conn(access)
    ch = Changes()
    missing = [t for t in EXPECTED_SERVICES if not list(conn.identity.services(type=t))]
    if missing:
        raise RuntimeError(f"the catalog lacks {', '.join(missing)}: the control plane's "
                           "service-accounts Job has not run (kubectl -n openstack logs job/service-accounts)")
    _flavors(conn, cfg, ch)
    public = _public_network(conn, cfg, ch)
    project, user = _demo_account(conn, cfg, access, ch)
    demo = demo_conn(access, cfg.overcloud.demo_project)
    _demo_network(demo, conn, cfg, public, ch)
    _demo_security_rules(demo, ch)
    if demo.compute.find_keypair("demo", ignore_missing=True) is None:
        demo.compute.create_keypair(name="demo", public_key=public_key)
        ch.add("keypair demo")
    if local_images is not None:
        for name in local_images(conn):
            ch.add(f"image {name}")
    else:
        _images(conn, cfg, ch, wait_images)
    write_access_files(access, cfg, state_dir)
    return ch


def _flavors(conn, cfg: Config, ch: Changes) -> None:
    have = {f.name: f for f in conn.compute.flavors()}
    for f in cfg.overcloud.flavors:
        old = have.get(f.name)
        if old is not None and (old.vcpus, old.ram, old.disk) == (f.vcpus, f.ram, f.disk):
            continue
        if old is not None:  # flavors are immutable: replace a changed one
            conn.compute.delete_flavor(old)
        conn.compute.create_flavor(name=f.name, vcpus=f.vcpus, ram=f.ram, disk=f.disk, is_public=True)
        ch.add(f"flavor {f.name}")


def import_from_url(conn, image, url: str) -> None:
    """Ask Glance to fetch the image itself (web-download). openstacksdk returns the
    response without raising: a refusal (e.g. Glance's import filter) is raised here."""
    response = conn.image.import_image(image, method="web-download", uri=url)
    try:
        sdk_exc.raise_from_response(response)
    except sdk_exc.HttpException as e:
        raise RuntimeError(f"image {image.name}: Glance refused to fetch {url} ({e.details or e}); "
                           "a host not in overcloud.images needs overcloud.import_hosts") from None


def _images(conn, cfg: Config, ch: Changes, wait: float) -> None:
    """Glance fetches each image itself (image import, web-download)."""
    pending = []
    for spec in cfg.overcloud.images:
        image = conn.image.find_image(spec.name, ignore_missing=True)
        if image is not None and image.status in ("active", "importing", "saving"):
            pending.append(image)
            continue
        if image is not None:  # queued/killed: an import that never finished
            conn.image.delete_image(image)
        image = conn.image.create_image(name=spec.name, disk_format=spec.disk_format,
                                        container_format="bare", visibility="public",
                                        **spec.properties)
        import_from_url(conn, image, spec.url)
        ch.add(f"image {spec.name}")
        pending.append(image)
    deadline = time.monotonic() + wait
    for image in pending:
        wait_imported(conn, image, deadline - time.monotonic())


def wait_imported(conn, image, wait: float) -> None:
    """Until IMAGE is active. A web-download that fails (e.g. a redirect to a host the
    import filter refuses) puts the image back to `queued`, not `killed`: the reason is
    only in its import task (Images API 2.12+), read here so that populate fails at
    once with Glance's own words instead of waiting out the timeout."""
    deadline = time.monotonic() + max(wait, 0)
    while True:
        image = conn.image.get_image(image)
        if image.status == "active":
            return
        failed = sorted((t for t in conn.image.image_tasks(image)
                         if t.type == "api_image_import" and t.status == "failure"),
                        key=lambda t: t.created_at or "")
        if image.status in ("killed", "deleted") or (failed and image.status == "queued"):
            why = failed[-1].message if failed else f"status {image.status}"
            raise RuntimeError(f"image {image.name}: import failed ({why}); check that Glance can "
                               "reach its URL, and that every host it redirects to is in the "
                               "image's redirect_hosts (or overcloud.import_hosts)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"image {image.name}: not active after {wait:.0f} s; "
                               "check that Glance can reach its URL")
        time.sleep(1)


def _public_network(conn, cfg: Config, ch: Changes):
    pub = cfg.public_network
    if pub.mode == "none":
        return None
    net = conn.network.find_network("public", ignore_missing=True)
    if net is None:
        net = conn.network.create_network(name="public", is_router_external=True, is_shared=False,
                                          provider_network_type="flat", provider_physical_network=services.PHYSNET)
        ch.add("network public")
    if conn.network.find_subnet("public-subnet", network_id=net.id, ignore_missing=True) is None:
        pool = [{"start": pub.pool_start, "end": pub.pool_end}] if pub.pool_start and pub.pool_end else None
        conn.network.create_subnet(name="public-subnet", network_id=net.id, ip_version=4, cidr=pub.cidr,
                                   gateway_ip=pub.gateway, is_dhcp_enabled=False,
                                   **({"allocation_pools": pool} if pool else {}))
        ch.add("subnet public-subnet")
    if conn.network.find_subnet("public-fip-agent-gateway", network_id=net.id, ignore_missing=True) is None:
        conn.network.create_subnet(name="public-fip-agent-gateway", network_id=net.id, ip_version=4,
                                   cidr=cfg.overcloud.fip_agent_gateway_cidr, gateway_ip=None,
                                   is_dhcp_enabled=False,
                                   service_types=["network:floatingip_agent_gateway"])
        ch.add("subnet public-fip-agent-gateway")
    return net


def _demo_account(conn, cfg: Config, access: Access, ch: Changes):
    name = cfg.overcloud.demo_project
    project = conn.identity.find_project(name, domain_id="default", ignore_missing=True)
    if project is None:
        project = conn.identity.create_project(name=name, domain_id="default", description="demo project")
        ch.add(f"project {name}")
    user = conn.identity.find_user("demo", domain_id="default", ignore_missing=True)
    if user is None:
        user = conn.identity.create_user(name="demo", password=access.demo_password, domain_id="default",
                                         default_project_id=project.id)
        ch.add("user demo")
    member = conn.identity.find_role("member")
    if not conn.identity.validate_user_has_project_role(project, user, member):
        conn.identity.assign_project_role_to_user(project, user, member)
        ch.add("role member for demo")
    return project, user


def _demo_network(demo, admin, cfg: Config, public, ch: Changes) -> None:
    net = demo.network.find_network("demo-net", ignore_missing=True)
    if net is None:
        net = demo.network.create_network(name="demo-net")
        ch.add("network demo-net")
    subnet = demo.network.find_subnet("demo-subnet", network_id=net.id, ignore_missing=True)
    if subnet is None:
        subnet = demo.network.create_subnet(name="demo-subnet", network_id=net.id, ip_version=4,
                                            cidr=cfg.overcloud.demo_cidr, dns_nameservers=["1.1.1.1"])
        ch.add("subnet demo-subnet")
    router = demo.network.find_router("demo-router", ignore_missing=True)
    if router is None:
        kwargs = {"external_gateway_info": {"network_id": public.id}} if public is not None else {}
        router = demo.network.create_router(name="demo-router", **kwargs)
        ch.add("router demo-router")
    ports = demo.network.ports(device_id=router.id, network_id=net.id)
    if not any(p.device_owner.startswith("network:router_interface") for p in ports):
        demo.network.add_interface_to_router(router, subnet_id=subnet.id)
        ch.add("router interface on demo-subnet")


def _demo_security_rules(demo, ch: Changes) -> None:
    """ICMP and SSH into the demo project's default security group."""
    sg = demo.network.find_security_group("default", project_id=demo.current_project_id)
    rules = list(demo.network.security_group_rules(security_group_id=sg.id, direction="ingress"))
    for proto, port in (("icmp", None), ("tcp", 22)):
        if any(r.protocol == proto and r.port_range_min == port and r.remote_ip_prefix == "0.0.0.0/0"
               for r in rules):
            continue
        demo.network.create_security_group_rule(
            security_group_id=sg.id, direction="ingress", ether_type="IPv4", protocol=proto,
            port_range_min=port, port_range_max=port, remote_ip_prefix="0.0.0.0/0")
        ch.add(f"rule {proto}{'/' + str(port) if port else ''} in demo's default group")


def write_access_files(access: Access, cfg: Config, state_dir: Path) -> dict[str, Path]:
    """openrc-admin, openrc-demo and clouds.yaml in the environment's state folder (0600)."""
    users = {"admin": ("admin", access.admin_password),
             "demo": (cfg.overcloud.demo_project, access.demo_password)}
    clouds, out = {}, {}
    paths = Layout(state_dir)
    for user, (project, password) in users.items():
        rc = "\n".join([
            f"# osception environment {cfg.name}: {user}. Use: source {paths.openrc(user)}",
            f"export OS_AUTH_URL={access.auth_url}",
            f"export OS_USERNAME={user}",
            f"export OS_PASSWORD='{password}'",
            f"export OS_PROJECT_NAME={project}",
            "export OS_USER_DOMAIN_NAME=Default",
            "export OS_PROJECT_DOMAIN_NAME=Default",
            f"export OS_REGION_NAME={services.REGION}",
            "export OS_IDENTITY_API_VERSION=3",
            *([f"export OS_CACERT={access.cacert}"] if access.cacert else []),
            "unset OS_CLOUD",
            "",
        ])
        out[user] = paths.openrc(user)
        write_private(out[user], rc)
        clouds[f"{cfg.name}-{user}"] = {
            "auth": {"auth_url": access.auth_url, "username": user, "password": password,
                     "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": services.REGION, "identity_api_version": 3,
            **({"cacert": access.cacert} if access.cacert else {}),
        }
    out["clouds.yaml"] = paths.clouds_yaml
    write_private(out["clouds.yaml"], yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return out


# --- smoke -----------------------------------------------------------------------

@dataclass
class Check:
    name: str
    status: str  # pass | fail | skip
    seconds: float
    detail: str = ""


class _Skip(Exception):
    pass


def smoke(access: Access, cfg: Config, expected_computes: int, expected_network_nodes: int,
          server_timeout: float = 300, image: str | None = None,
          ping: tuple[str, ...] = ("ping",)) -> list[Check]:
    """Ordered checks; stops at the first failure and names it. `ping`: the command that
    pings from the outer side (the devcloud's local nodes: inside its outer namespace). Checks that cannot run
    where the cloud runs (no real hypervisor: no console login, no ping) are skipped
    with the reason, never passed. The server boots IMAGE, else the config's first."""
    results: list[Check] = []
    ctx: dict = {}
    boot_image = image or cfg.overcloud.images[0].name

    def run(name, fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            results.append(Check(name, "pass", time.monotonic() - t0, detail))
            return True
        except _Skip as e:
            results.append(Check(name, "skip", time.monotonic() - t0, str(e)))
            return True
        except Exception as e:  # the first broken link: name it and stop
            results.append(Check(name, "fail", time.monotonic() - t0, f"{type(e).__name__}: {e}"[:300]))
            return False

    def token():
        ctx["admin"] = admin_conn(access)
        ctx["admin"].authorize()
        return "admin token issued"

    def catalog():
        entries = ctx["admin"].service_catalog
        types = {e["type"]: e for e in entries}
        missing = [t for t in EXPECTED_SERVICES if t not in types]
        if missing:
            raise RuntimeError(f"catalog lacks {', '.join(missing)}")
        for t in EXPECTED_SERVICES:
            ifaces = {ep["interface"] for ep in types[t]["endpoints"]}
            if not {"public", "internal"} <= ifaces:
                raise RuntimeError(f"{t}: endpoints {sorted(ifaces)}, want public and internal")
        return ", ".join(EXPECTED_SERVICES)

    def apis():
        a = ctx["admin"]
        counts = {"images": len(list(a.image.images())), "networks": len(list(a.network.networks())),
                  "servers": len(list(a.compute.servers(all_projects=True))),
                  "resource providers": len(list(a.placement.resource_providers()))}
        return ", ".join(f"{v} {k}" for k, v in counts.items())

    def hypervisors():
        hyps = list(ctx["admin"].compute.hypervisors(details=True))
        ctx["fake"] = bool(hyps) and all(h.hypervisor_type == "fake" for h in hyps)
        up = [h for h in hyps if h.state == "up" and h.status == "enabled"]
        if len(up) < expected_computes:
            raise RuntimeError(f"{len(up)} of {expected_computes} computes registered and up")
        return f"{len(up)} up" + (" (fake driver)" if ctx["fake"] else "")

    def agents():
        a = list(ctx["admin"].network.agents())
        if not a and ctx.get("fake"):
            raise _Skip("no neutron agents: this cloud's data plane is fake (devcloud)")
        dead = [f"{x.agent_type}@{x.host}" for x in a if not x.is_alive]
        if dead:
            raise RuntimeError(f"dead agents: {', '.join(dead)}")
        # Each data-plane node (its hostname is its node name): the OVS, L3 and metadata
        # agents, L3 in DVR's mode for its role; DHCP on the network nodes.
        have = {(x.host, x.agent_type): x for x in a}
        missing, modes = [], []
        for node in (n for n in topology.nodes(cfg) if n.data_plane):
            for kind in ("Open vSwitch agent", "L3 agent", "Metadata agent"):
                if (node.name, kind) not in have:
                    missing.append(f"{kind}@{node.name}")
            mode = "dvr_snat" if node.role == "network" else "dvr"
            l3 = have.get((node.name, "L3 agent"))
            if l3 is not None and (l3.configuration or {}).get("agent_mode") != mode:
                modes.append(f"{node.name}: L3 agent_mode {(l3.configuration or {}).get('agent_mode')}, want {mode}")
        if not any(kind == "DHCP agent" for _, kind in have):
            missing.append("DHCP agent")
        if missing or modes:
            raise RuntimeError("; ".join(([f"missing: {', '.join(missing)}"] if missing else []) + modes))
        dhcp = sorted(host for host, kind in have if kind == "DHCP agent")
        return (f"{len(a)} alive: OVS, L3 (dvr on {expected_computes}, dvr_snat on "
                f"{expected_network_nodes}), metadata per node; DHCP on {', '.join(dhcp)}")

    def boot():
        demo = demo_conn(access, cfg.overcloud.demo_project)
        ctx["demo"] = demo
        # What populate made: the first flavor and image of the config (or the local guest).
        flavor = demo.compute.find_flavor(cfg.overcloud.flavors[0].name, ignore_missing=False)
        image = demo.image.find_image(boot_image, ignore_missing=False)
        net = demo.network.find_network("demo-net")
        server = demo.compute.create_server(name="osception-smoke", flavor_id=flavor.id,
                                            image_id=image.id, networks=[{"uuid": net.id}],
                                            key_name="demo")
        ctx["server"] = server
        server = demo.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"],
                                              interval=2, wait=server_timeout)
        ctx["server"] = server
        return f"{server.name} ACTIVE on {flavor.name}/{image.name}"

    def console_login():
        if ctx.get("fake"):
            raise _Skip("fake hypervisor: instances do not really boot")
        for _ in sdk_utils.iterate_timeout(server_timeout, "no login prompt on the console", wait=5):
            out = ctx["demo"].compute.get_server_console_output(ctx["server"])["output"] or ""
            if "login:" in out:
                return "login prompt seen"

    def reachability():
        if ctx.get("fake"):
            raise _Skip("fake data plane: no packets to ping")
        if cfg.public_network.mode == "none":
            raise _Skip("public_network.mode is none: no floating IP to reach")
        return _ping_floating_ip(ctx["demo"], ctx["server"], ping)

    steps = [("token", token), ("catalog", catalog), ("apis", apis), ("hypervisors", hypervisors),
             ("network agents", agents), ("boot server", boot), ("console login", console_login),
             ("floating IP ping", reachability)]
    try:
        for name, fn in steps:
            if not run(name, fn):
                break
    finally:  # leave nothing behind
        if "server" in ctx:
            undercloud.delete_servers(ctx["demo"], [ctx["server"]], timeout=SERVER_DELETE_TIMEOUT)
    return results


# How long the smoke test's server may take to go (the inner cloud's Nova, a tiny guest).
SERVER_DELETE_TIMEOUT = 120
# How long a new floating IP may take to answer (DVR's FIP namespace, ARP).
PING_TIMEOUT = 120


def _ping_floating_ip(demo, server, ping: tuple[str, ...] = ("ping",)) -> str:
    import subprocess

    public = demo.network.find_network("public")
    fip = demo.network.create_ip(floating_network_id=public.id)
    try:
        port = next(demo.network.ports(device_id=server.id))
        demo.network.update_ip(fip, port_id=port.id)
        for _ in sdk_utils.iterate_timeout(PING_TIMEOUT, f"{fip.floating_ip_address} does not answer ping"):
            if subprocess.run([*ping, "-c", "1", "-W", "2", fip.floating_ip_address],
                              capture_output=True).returncode == 0:
                return f"{fip.floating_ip_address} answers"
    finally:
        demo.network.delete_ip(fip, ignore_missing=True)


__all__ = ["Access", "populate", "smoke", "write_access_files", "sdk_exc"]
