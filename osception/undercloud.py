"""The outer cloud, through openstacksdk: preflight, ensure (idempotent), tear down.

Every resource of an environment is named `osception-<env>-...` and, where the API
supports tags (servers, ports, security groups), tagged `osception` and
`osception-env:<env>`, so `down` finds it again without local state; the tag is
checked here as well as by the server's filter. Nothing tagged that does not carry
both the name pattern and the environment tag is ever deleted. Resources without
tags are deleted only when proven ours: the keypair by its exact name and the
environment's own public key, the server group by its exact name and members that
are all the environment's servers.
"""

from __future__ import annotations

import base64
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openstack
from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from . import services
from .config import Config
from .errors import OsceptionError
from .render.checks import wire_user_data
from .state import Layout
from .topology import Address, Node, is_node_name, nodes, public_port_nodes

TAG = "osception"


def env_tag(env: str) -> str:
    return f"osception-env:{env}"


@dataclass(frozen=True)
class Names:
    env: str

    @property
    def prefix(self) -> str:
        return f"osception-{self.env}"

    @property
    def keypair(self) -> str:
        return self.prefix

    @property
    def security_group(self) -> str:
        return self.prefix

    @property
    def server_group(self) -> str:
        return f"{self.prefix}-compute"

    def server(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def port(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def public_port(self, node: str) -> str:
        return f"{self.prefix}-{node}-public"

    def owns(self, name: str | None) -> bool:
        """Whether a server or port name is one this environment makes (or made:
        k8s-N-public, the controller's provider port of older versions, which `down`
        still removes)."""
        if not name or not name.startswith(f"{self.prefix}-"):
            return False
        node = name.removeprefix(f"{self.prefix}-").removesuffix("-public")
        return is_node_name(node)


class PreflightError(OsceptionError):
    """Everything that must change before `up` creates anything, one line each."""

    label = "preflight"

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return self.problems


def connect(cfg: Config) -> openstack.connection.Connection:
    """clouds.yaml entry `cloud:`, else OS_CLOUD / OS_* as every OpenStack tool does."""
    return openstack.connect(cloud=cfg.cloud) if cfg.cloud else openstack.connect()


# --- preflight -------------------------------------------------------------------

@dataclass
class Found:
    """What preflight looked up, reused by `up` (and by `bake`: look_up)."""

    flavors: dict[str, object] = field(default_factory=dict)  # role -> flavor
    images: dict[str, object] = field(default_factory=dict)  # role -> image
    network: object = None
    public_network: object = None


def _listing(items, limit=8) -> str:
    names = sorted(i.name for i in items)
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def preflight(conn, cfg: Config, names: Names) -> Found:
    """Check credentials, names and quotas. Raises PreflightError; creates nothing."""
    found, problems = look_up(conn, cfg, {n.role for n in nodes(cfg)})
    if cfg.public_network.mode == "provider":
        found.public_network = conn.network.find_network(cfg.public_network.network, ignore_missing=True)
        if found.public_network is None:
            problems.append(f"public_network.network: no network {cfg.public_network.network!r}")

    if not problems:
        problems += _quota_problems(conn, cfg, names, found)
    if problems:
        raise PreflightError(problems)
    return found


def look_up(conn, cfg: Config, roles) -> tuple[Found, list[str]]:
    """The credentials checked (PreflightError at once), then the flavor and image of
    each role and the network: what `up` and `bake` create servers from, looked up
    once. Returns them and a line for each that is missing."""
    try:
        conn.authorize()
    except sdk_exc.SDKException as e:
        where = f"clouds.yaml entry {cfg.cloud!r}" if cfg.cloud else "OS_CLOUD / OS_* variables"
        raise PreflightError([f"credentials: the cloud refused them ({_short(e)}); check {where}"]) from None

    problems: list[str] = []
    found = Found()
    flavors = list(conn.compute.flavors())
    for role in sorted(roles):
        group = getattr(cfg.nodes, role)
        flavor = next((f for f in flavors if group.flavor in (f.name, f.id)), None)
        if flavor is None:
            problems.append(f"nodes.{role}.flavor: no flavor {group.flavor!r}; available: {_listing(flavors)}")
        found.flavors[role] = flavor
        image = conn.image.find_image(cfg.node_image(role), ignore_missing=True)
        if image is None:
            problems.append(f"nodes.{role}.image: no image {cfg.node_image(role)!r}; "
                            f"available: {_listing(conn.image.images())}")
        found.images[role] = image
    found.network = conn.network.find_network(cfg.network, ignore_missing=True)
    if found.network is None:
        problems.append(f"network: no network {cfg.network!r}; available: {_listing(conn.network.networks())}")
    return found, problems


def _quota_problems(conn, cfg: Config, names: Names, found: Found) -> list[str]:
    """Compare what `up` still has to create with what the project has left."""
    existing = {s.name for s in _env_servers(conn, names)}
    new = [n for n in nodes(cfg) if names.server(n.name) not in existing]
    cores = sum(found.flavors[n.role].vcpus for n in new)
    ram = sum(found.flavors[n.role].ram for n in new)
    have_ports = {p.name for p in _env_ports(conn, names)}
    want_ports = [names.port(n.name) for n in nodes(cfg)]
    want_ports += [names.public_port(n.name) for n in public_port_nodes(cfg)]
    new_ports = len([p for p in want_ports if p not in have_ports])
    new_sg = 0 if _env_security_group(conn, names) else 1

    problems = []
    limits = conn.compute.get_limits().absolute
    for what, need, limit, used, key in (
        ("instances", len(new), limits.instances, limits.instances_used, "nodes.*.count"),
        ("cores", cores, limits.total_cores, limits.total_cores_used, "nodes.*.flavor or count"),
        ("RAM (MB)", ram, limits.total_ram, limits.total_ram_used, "nodes.*.flavor or count"),
    ):
        if limit is not None and limit >= 0 and used + need > limit:
            problems.append(f"quota: {what}: need {need} more, {limit - used} left of {limit}; "
                            f"lower {key} or raise the project's quota")
    computes = cfg.nodes.compute.count
    members = limits.server_group_members
    if computes and members is not None and 0 <= members < computes:
        problems.append(f"quota: server group members: {computes} computes share one anti-affinity group, "
                        f"the project allows {members}; lower nodes.compute.count or raise the quota")
    quota = conn.network.get_quota(conn.current_project_id, details=True)
    for what, need in (("ports", new_ports), ("security_groups", new_sg),
                       ("security_group_rules",
                        new_sg * (len(security_group_rules(cfg, "")) + DEFAULT_SECURITY_GROUP_RULES))):
        q = getattr(quota, what, None)
        if isinstance(q, dict) and q.get("limit", -1) >= 0:
            left = q["limit"] - q.get("used", 0) - q.get("reserved", 0)
            if need > left:
                problems.append(f"quota: {what}: need {need} more, {left} left of {q['limit']}; "
                                "raise the project's quota")
    return problems


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


# --- finding an environment's resources ------------------------------------------

def _tags(env: str) -> list[str]:
    return [TAG, env_tag(env)]


def _tagged(resource, names: Names) -> bool:
    """The environment's tag, checked here too: a cloud that ignores the `tags` filter
    of a listing must not hand the user's resources to `down`."""
    return env_tag(names.env) in (resource.tags or [])


def _env_servers(conn, names: Names) -> list:
    # A deleted server may still be listed for a moment, as DELETED: it is gone.
    return [s for s in conn.compute.servers(tags=env_tag(names.env))
            if _tagged(s, names) and names.owns(s.name) and s.status != "DELETED"]


def _env_ports(conn, names: Names, adopt_untagged: bool = False) -> list:
    """The environment's ports: tagged, with our names. `up` also adopts an untagged
    port with our exact name: one created on a cloud without tags-on-create whose
    tagging was interrupted. `down` never does: it deletes tagged resources only."""
    listing = conn.network.ports() if adopt_untagged else conn.network.ports(tags=env_tag(names.env))
    return [p for p in listing  # adopting: one listing of the project's ports, not two
            if names.owns(p.name) and (_tagged(p, names) or (adopt_untagged and not p.tags))]


def _env_security_group(conn, names: Names, adopt_untagged: bool = False):
    for sg in conn.network.security_groups(name=names.security_group):
        if sg.name == names.security_group and (_tagged(sg, names) or (adopt_untagged and not sg.tags)):
            return sg
    return None


def _create_tagged(create, tag, env: str, **kwargs):
    """Create with tags in the same call where Neutron allows it (tag-creation);
    else create, then tag (a crash in between is healed by the next `up`)."""
    try:
        return create(tags=_tags(env), **kwargs)
    except sdk_exc.BadRequestException as e:
        if "tags" not in str(e):
            raise
        resource = create(**kwargs)
        tag(resource, _tags(env))
        return resource


def _same_key(a: str, b: str) -> bool:
    """Two OpenSSH public keys are the same key when type and base64 body match."""
    return a.split()[:2] == b.split()[:2]


def _env_keypair(conn, names: Names, public_key: str | None, notes: list[str] | None = None):
    """The keypair named like ours, if it holds the environment's own public key.
    Keypairs carry no tags: without the key (no local state) it is not proven ours."""
    kp = conn.compute.find_keypair(names.keypair, ignore_missing=True)
    if kp is None or kp.name != names.keypair:
        return None
    if public_key is not None and _same_key(kp.public_key or "", public_key):
        return kp
    if notes is not None:
        why = (f"it holds another key than this environment's {Layout.SSH_PUBLIC_KEY}" if public_key is not None
               else f"no local state ({Layout.SSH_PUBLIC_KEY}) proves it is this environment's")
        notes.append(f"kept keypair {names.keypair!r}: {why}; delete it yourself if it is yours")
    return None


def _env_server_groups(conn, names: Names, our_servers: set[str], notes: list[str] | None = None) -> list:
    """Server groups carry no tags: ours are named exactly like ours and hold no server
    but the environment's (a race of two `up` runs may have made two)."""
    found = []
    for group in conn.compute.server_groups():
        if group.name != names.server_group:
            continue
        strangers = set(group.member_ids or []) - our_servers
        if strangers:
            if notes is not None:
                notes.append(f"kept server group {names.server_group!r} ({group.id}): it holds "
                             f"{len(strangers)} server(s) that are not this environment's")
            continue
        found.append(group)
    return found


def inventory(conn, names: Names, public_key: str | None = None, notes: list[str] | None = None
              ) -> dict[str, list]:
    """Every resource of the environment that exists now, by kind. `public_key`: the
    environment's own (ssh/id_ed25519.pub), the only proof that the keypair is ours.
    What has our name but is not proven ours is left out, with one line in `notes`."""
    sg = _env_security_group(conn, names)
    servers = _env_servers(conn, names)
    keypair = _env_keypair(conn, names, public_key, notes)
    return {
        "servers": servers,
        "ports": _env_ports(conn, names),
        "security_groups": [sg] if sg else [],
        "server_groups": _env_server_groups(conn, names, {s.id for s in servers}, notes),
        "keypairs": [keypair] if keypair else [],
    }


def environments(conn) -> list[str]:
    """Names of the environments that have servers or ports in this project."""
    found = set()
    for res in list(conn.compute.servers(tags=TAG)) + list(conn.network.ports(tags=TAG)):
        for t in res.tags or []:
            if t.startswith("osception-env:"):
                found.add(t.split(":", 1)[1])
    return sorted(found)


# --- ensure: each step finds first, creates only what is missing ------------------

def ensure_keypair(conn, names: Names, public_key: str):
    kp = conn.compute.find_keypair(names.keypair, ignore_missing=True)
    if kp is not None and kp.public_key.split()[:2] != public_key.split()[:2]:
        raise PreflightError([f"keypair {names.keypair!r} exists with another key; "
                              "delete it or pick another environment name"])
    return kp or conn.compute.create_keypair(name=names.keypair, public_key=public_key)


# Neutron gives a new security group two rules of its own (egress, IPv4 and IPv6).
DEFAULT_SECURITY_GROUP_RULES = 2


def security_group_rules(cfg: Config, sg_id: str) -> list[dict]:
    """The ingress rules of the environment's group (preflight counts them too)."""
    wanted = [dict(protocol="tcp", port_range_min=p, port_range_max=p, remote_ip_prefix=cfg.access_cidr,
                   ether_type="IPv4")
              for p in services.PUBLIC_PORTS]
    # Everything between members: RabbitMQ, metadata, VXLAN reach only the nodes.
    wanted += [dict(remote_group_id=sg_id, ether_type=e) for e in ("IPv4", "IPv6")]
    wanted += [dict(protocol="icmp", remote_ip_prefix=cfg.access_cidr, ether_type="IPv4")]
    return wanted


def ensure_security_group(conn, names: Names, cfg: Config):
    """The group, then its rules (`up` adds the rules
    while the ports that name the group are being created)."""
    sg = ensure_security_group_without_rules(conn, names)
    ensure_security_group_rules(conn, cfg, sg)
    return sg


def ensure_security_group_without_rules(conn, names: Names):
    """The environment's security group itself, without its rules: all a port needs."""
    sg = _env_security_group(conn, names, adopt_untagged=True)
    if sg is None:
        sg = _create_tagged(
            conn.network.create_security_group, conn.network.set_tags, names.env,
            name=names.security_group,
            description=f"osception environment {names.env}: its nodes only, plus SSH and HTTP(S)")
    if set(_tags(names.env)) - set(sg.tags or []):
        conn.network.set_tags(sg, _tags(names.env))
    return sg


def ensure_security_group_rules(conn, cfg: Config, sg) -> None:
    """The group's ingress rules, those missing created concurrently."""
    wanted = security_group_rules(cfg, sg.id)
    have = list(conn.network.security_group_rules(security_group_id=sg.id, direction="ingress"))
    missing = [rule for rule in wanted
               if not any(all(getattr(h, k) == v for k, v in rule.items()) for h in have)]
    concurrently(lambda rule: conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", **rule), missing)


def ensure_server_group(conn, names: Names):
    group = conn.compute.find_server_group(names.server_group, ignore_missing=True)
    return group or conn.compute.create_server_group(name=names.server_group, policy="soft-anti-affinity")


# How many calls `up` has in flight at once: every port, then every server, of an
# environment of up to this many nodes, concurrently (one openstacksdk process).
WORKERS = 32


@dataclass(frozen=True)
class PortWanted:
    name: str
    network: object
    security_group: object = None
    port_security: bool = True


def concurrently(fn, items, workers: int = WORKERS) -> list:
    """fn over items, up to `workers` calls in flight, results in order."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(fn, items))


def existing_ports(conn, names: Names) -> dict[str, list]:
    """The environment's ports by name, from one listing (untagged ones of our exact
    names adopted, see _env_ports): what ensure_port is given."""
    existing: dict[str, list] = {}
    for p in _env_ports(conn, names, adopt_untagged=True):
        existing.setdefault(p.name, []).append(p)
    return existing


def ensure_ports(conn, names: Names, wanted: list[PortWanted]) -> dict[str, object]:
    """Every wanted port, by name: what exists listed once, the rest created concurrently."""
    existing = existing_ports(conn, names)
    return dict(concurrently(lambda w: (w.name, ensure_port(conn, names, w, existing.get(w.name, []))),
                              wanted))


def ensure_port(conn, names: Names, w: PortWanted, existing: list):
    """One port: the one of `existing` (those with its name), else created; tagged."""
    port = existing[0] if existing else None
    for extra in existing[1:]:  # a create retried after a lost answer: keep one
        conn.network.delete_port(extra)
    if port is None:
        kwargs = dict(name=w.name, network_id=w.network.id)
        create = functools.partial(_create_tagged, conn.network.create_port, conn.network.set_tags, names.env)
        port = None
        if not w.port_security:
            # The provider port carries the new cloud's own addresses (floating IPs,
            # routers): no filtering. Neutron's default policy lets only the network's
            # owner ask for that; elsewhere the port keeps the environment's group.
            try:
                port = create(port_security_enabled=False, **kwargs)
            except sdk_exc.ForbiddenException:
                pass
        if port is None:
            port = create(security_group_ids=[w.security_group.id], **kwargs)
    if set(_tags(names.env)) - set(port.tags or []):
        conn.network.set_tags(port, _tags(names.env))
    return port


def address_of(port, public_port=None) -> Address:
    ip = next(f["ip_address"] for f in port.fixed_ips if ":" not in f["ip_address"])
    return Address(ip=ip, mac=port.mac_address, public_mac=public_port.mac_address if public_port else None)


def server_request(names: Names, node: Node, found: Found, user_data: str, ports: list,
                   server_group=None) -> dict:
    """The create-server call of a node."""
    kwargs = dict(
        name=names.server(node.name),
        flavor_id=found.flavors[node.role].id,
        image_id=found.images[node.role].id,
        networks=[{"port": p.id} for p in ports],
        key_name=names.keypair,
        # gzip-compressed: cloud-init decompresses it (render.checks.wire_user_data)
        user_data=base64.b64encode(wire_user_data(user_data)).decode(),
        tags=_tags(names.env),
        metadata={"osception-env": names.env, "osception-node": node.name},
    )
    if server_group is not None:
        kwargs["scheduler_hints"] = {"group": server_group.id}
    return kwargs


def existing_servers(conn, names: Names) -> dict[str, list]:
    """The environment's servers by name, from one listing: what ensure_server is given."""
    mine: dict[str, list] = {}
    for s in _env_servers(conn, names):
        mine.setdefault(s.name, []).append(s)
    return mine


def ensure_servers(conn, names: Names, requests: dict[str, dict]) -> dict[str, object]:
    """Every node's server, by node ({node: server_request(...)}): what exists listed
    once; the rest created concurrently. Not waited for."""
    mine = existing_servers(conn, names)
    return dict(concurrently(lambda item: (item[0], ensure_server(conn, item[1], mine.get(item[1]["name"], []))),
                              list(requests.items())))


def ensure_server(conn, request: dict, existing: list):
    """One node's server (request: server_request(...)): the one of `existing` (those
    with its name), an ERROR one replaced, else created. Not waited for."""
    server = next((s for s in existing if s.status != "ERROR"), existing[0] if existing else None)
    for extra in existing:  # a create retried after a lost answer: keep one
        if extra is not server:
            conn.compute.delete_server(extra)
    if server is not None and server.status == "ERROR":
        delete_servers(conn, [server])
        server = None
    return server or conn.compute.create_server(**request)


def wait_active(conn, names: Names, servers: dict[str, object], timeout: float = 900,
                interval: float = 2) -> dict[str, object]:
    """Until every server is ACTIVE, from one listing of the environment's servers per
    round (not one poll per server); one that goes to ERROR fails it, named."""
    node_of = {s.id: node for node, s in servers.items()}
    for _ in sdk_utils.iterate_timeout(timeout, f"servers not ACTIVE within {timeout:.0f} s", wait=interval):
        now = {s.id: s for s in _env_servers(conn, names) if s.id in node_of}
        for s in now.values():
            if s.status == "ERROR":
                fault = (getattr(s, "fault", None) or {}).get("message", "no fault given")
                raise sdk_exc.ResourceFailure(f"{node_of[s.id]}: server {s.id} went to ERROR: {fault}")
        if len(now) == len(node_of) and all(s.status == "ACTIVE" for s in now.values()):
            return {node_of[i]: s for i, s in now.items()}
    raise AssertionError("unreachable: iterate_timeout raises")


# --- teardown --------------------------------------------------------------------

# How long Nova may take to delete a server (its disk, its ports' unbinding).
DELETE_TIMEOUT = 600


def delete_servers(conn, servers: list, timeout: float = DELETE_TIMEOUT) -> None:
    """Delete the servers, every request sent before the first wait, and wait until each
    is gone (openstacksdk's wait_for_delete): what comes next (its ports, its server
    group, a new server of the same name) must not find it still there. One already
    gone is no error (delete_server's ignore_missing, on by default)."""
    for s in servers:
        conn.compute.delete_server(s)
    for s in servers:
        conn.compute.wait_for_delete(s, wait=timeout)


def destroy(conn, names: Names, public_key: str | None = None, progress=lambda msg: None) -> dict[str, int]:
    """Delete every resource of the environment, in dependency order. Resumable.
    Only what carries the environment's tag, or (keypair, server group) is proven
    ours as `inventory` says; everything else stays."""
    counts = {}
    servers = _env_servers(conn, names)
    delete_servers(conn, servers)
    counts["servers"] = len(servers)
    progress(f"deleted {len(servers)} servers")
    ports = _env_ports(conn, names)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda p: conn.network.delete_port(p, ignore_missing=True), ports))
    counts["ports"] = len(ports)
    sg = _env_security_group(conn, names)
    if sg is not None:
        _retry_in_use(lambda: conn.network.delete_security_group(sg, ignore_missing=True))
    counts["security_groups"] = int(sg is not None)
    groups = _env_server_groups(conn, names, {s.id for s in servers})
    for group in groups:
        conn.compute.delete_server_group(group, ignore_missing=True)
    counts["server_groups"] = len(groups)
    keypair = _env_keypair(conn, names, public_key)
    if keypair is not None:
        conn.compute.delete_keypair(keypair, ignore_missing=True)
    counts["keypairs"] = int(keypair is not None)
    return counts


# How long a security group may stay "in use" after its last port is deleted.
IN_USE_TIMEOUT = 60


def _retry_in_use(call) -> None:
    """A security group stays 'in use' for a moment after its last port goes."""
    last: Exception | None = None
    try:
        for _ in sdk_utils.iterate_timeout(IN_USE_TIMEOUT, "security group still in use"):
            try:
                return call()
            except sdk_exc.ConflictException as e:
                last = e
    except sdk_exc.ResourceTimeout:
        raise last from None
