"""`up`: preflight, then the environment's resources, created concurrently.

    preflight -> security group (its rules, keypair, server group meanwhile)
    -> each node on its own: its ports (MAC, IP) -> its user data -> its server
       (the controller's port first: every node's user data names its address)
    -> every server ACTIVE -> follow the progress lines

Every step looks before it creates, so running `up` again after an interruption at
any point completes the environment without duplicates.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from . import bake, day2, progress, render, topology
from . import undercloud as uc
from .config import NAME_RE, Config
from .secrets import Secrets
from .state import DuplicateKey, Layout, StateError, read_state, unique_keys, write_private
from .render.controller import add_controller
from .render.node import add_node
from .render.plan import new_plan


@dataclass
class UpResult:
    plan: render.Plan
    servers: dict[str, object]  # node -> server


def provision(conn, cfg: Config, secrets: Secrets, env_dir: Path, say=lambda msg: None) -> UpResult:
    """Each node goes its own way as soon as it can: its ports, its user data (which
    needs its own address and the controller's only), its server. Nothing waits for
    the slowest port, so the servers' creation overlaps the ports' as in a parallel
    apply (bench/provision.py measures it against that floor)."""
    phases = progress.Laps(digits=2)  # timings.json: "provision"
    names = uc.Names(cfg.name)
    found = uc.preflight(conn, cfg, names)
    _use_baked(conn, cfg, found, say)
    say("preflight passed")
    phases.lap("preflight")

    nodes = topology.nodes(cfg)
    controller = next(n for n in nodes if n.name == "k8s-0")
    public = {n.name for n in topology.public_port_nodes(cfg)}
    mtu = getattr(found.network, "mtu", None) or cfg.mtu
    marks: dict[str, float] = {}  # when the pipeline's last port, render, create ended
    render_seconds = []
    lock = threading.Lock()

    def mark(step: str) -> None:
        with lock:
            marks[step] = max(marks.get(step, 0.0), time.monotonic())

    with ThreadPoolExecutor(max_workers=uc.WORKERS) as pool:
        # The keypair and the server group (only the servers need them) and what exists
        # already, during the security group (the ports need it).
        keypair = pool.submit(uc.ensure_keypair, conn, names, secrets.ssh["public"])
        group = pool.submit(uc.ensure_server_group, conn, names) if cfg.nodes.compute.count else None
        have_ports = pool.submit(uc.existing_ports, conn, names)
        have_servers = pool.submit(uc.existing_servers, conn, names)
        sg = uc.ensure_security_group_without_rules(conn, names)
        rules = pool.submit(uc.ensure_security_group_rules, conn, cfg, sg)  # the ports need the group only
        phases.lap("security-group")
        pipeline_start = time.monotonic()

        def ports_of(node):
            wanted = [uc.PortWanted(names.port(node.name), found.network, sg)]
            if node.name in public:
                wanted.append(uc.PortWanted(names.public_port(node.name), found.public_network, sg,
                                            port_security=False))
            made = [uc.ensure_port(conn, names, w, have_ports.result().get(w.name, [])) for w in wanted]
            mark("ports")
            return made[0], (made[1] if len(made) > 1 else None)

        controller_ports = pool.submit(ports_of, controller)

        # What every node's files share needs the controller's address only; then
        # each node (the controller too) adds its own files, as its port comes.
        plan_future = pool.submit(lambda: new_plan(
            cfg, secrets, uc.address_of(*controller_ports.result()), mtu=mtu))

        def one(node):
            port, public_port = controller_ports.result() if node is controller else ports_of(node)
            address = uc.address_of(port, public_port)
            plan = plan_future.result()
            t = time.monotonic()
            if node.data_plane:
                add_node(plan, secrets, node, address)
            else:
                add_controller(plan, secrets)
            with lock:
                render_seconds.append(time.monotonic() - t)
            user_data = plan.files[f"{node.name}/user-data"]
            mark("render")
            keypair.result()
            request = uc.server_request(names, node, found, user_data, [p for p in (port, public_port) if p],
                                        server_group=group.result() if group and node.role == "compute" else None)
            server = uc.ensure_server(conn, request, have_servers.result().get(request["name"], []))
            mark("servers")
            return node.name, (port, public_port), address, server

        done = list(pool.map(one, nodes))
        rules.result()
    ports = {name: p for name, p, _, _ in done}
    addresses = {name: a for name, _, a, _ in done}
    servers = {name: s for name, *_, s in done}
    plan = plan_future.result()
    render.write(plan, Layout(env_dir).plan)
    _save(env_dir, names, ports, addresses, servers, mtu)
    say(f"keypair, security group, server group, {len(ports)} nodes' ports, user data and servers created")
    phases.lap("pipeline")
    servers = uc.wait_active(conn, names, servers)
    say(f"{len(servers)} servers ACTIVE")
    phases.lap("active")
    day2.record_created(plan, env_dir)  # what `osception apply` compares with
    # The pipeline's steps overlap: each is the time from its start (after the security
    # group) until its last node was through; render is the CPU time spent rendering.
    steps = {step: round(marks[step] - pipeline_start, 2) for step in ("ports", "servers")}
    _write_timings(env_dir, provision={**phases.laps, **steps, "render": round(sum(render_seconds), 2),
                                       "total": phases.total()})
    return UpResult(plan, servers)


def _use_baked(conn, cfg: Config, found: uc.Found, say) -> None:
    """base_images: baked: the release's baked images (`osception bake`) for the roles
    that have one; the others boot their stock nodes.*.image, said so."""
    if cfg.base_images != "baked":
        return
    baked = bake.baked_images(conn, cfg)
    for role in sorted(found.images):
        if role in baked:
            found.images[role] = baked[role]
            say(f"{role} nodes boot the baked image {baked[role].name}")
        else:
            say(f"{role} nodes boot the stock image {cfg.node_image(role)!r}: no baked image "
                f"for {cfg.release} (`osception bake` makes it)")


def _write_timings(env_dir: Path, **parts) -> None:
    path = Layout(env_dir).timings
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        data = {}
    data.update(parts)
    write_private(path, json.dumps(data, indent=2, sort_keys=True))


def _save(env_dir: Path, names, ports, addresses, servers, mtu: int | None) -> None:
    data = {
        "env": names.env,
        "mtu": mtu,  # the outer network's, as the plan used it (`osception apply` renders again)
        "nodes": {
            node: {
                "ip": addresses[node].ip,
                "mac": addresses[node].mac,
                "public_mac": addresses[node].public_mac,
                "port": p.id,
                "public_port": pub.id if pub else None,
                "server": servers[node].id if node in servers else None,
            }
            for node, (p, pub) in ports.items()
        },
    }
    write_private(Layout(env_dir).resources, json.dumps(data, indent=2, sort_keys=True))


def load_resources(env_dir: Path) -> dict:
    """resources.json, checked field by field: its addresses reach user data, nova.conf
    and ssh's command line (`apply`, `ssh`, `logs`), so each must be exactly what the
    outer cloud gave, never a value that carries more."""
    path = Layout(env_dir).resources
    text = read_state(path, private=False)  # ids and addresses, no secret
    try:
        data = json.loads(text, object_pairs_hook=unique_keys) if text is not None else {}
    except DuplicateKey as e:
        raise StateError(f"{path}: {_shown(e.key)}: given twice; `osception up` writes it again") from None
    except (ValueError, RecursionError):
        raise StateError(f"{path}: not valid JSON; `osception up` writes it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes", {}), dict):
        raise StateError(f"{path}: not the resources osception wrote; `osception up` writes it again")
    if problem := _resources_problem(data):
        raise StateError(f"{path}: {problem[0]}: {problem[1]}; `osception up` writes it again")
    return data


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # Nova's and Neutron's ids
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")  # as Neutron gives it


def _ipv4(v: object) -> bool:
    try:
        return isinstance(v, str) and str(ipaddress.IPv4Address(v)) == v
    except ValueError:
        return False


# Each field of a node: (required, check, what it must be). public_mac and mtu came
# with later versions; older files lack them.
_NODE_FIELDS = {
    "ip": (True, _ipv4, "must be an IPv4 address"),
    "mac": (True, lambda v: isinstance(v, str) and _MAC.fullmatch(v), "must be a MAC address"),
    "public_mac": (False, lambda v: v is None or isinstance(v, str) and _MAC.fullmatch(v),
                   "must be a MAC address or null"),
    "port": (True, lambda v: isinstance(v, str) and _UUID.fullmatch(v), "must be a port ID (a UUID)"),
    "public_port": (False, lambda v: v is None or isinstance(v, str) and _UUID.fullmatch(v),
                    "must be a port ID (a UUID) or null"),
    "server": (False, lambda v: v is None or isinstance(v, str) and _UUID.fullmatch(v),
               "must be a server ID (a UUID) or null"),
}


def _shown(key: object) -> str:
    return str(key) if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(key)) else "(a key that is not a name)"


def _resources_problem(data: dict) -> tuple[str, str] | None:
    """The first field of resources.json that is not what `_save` writes: (key, problem)."""
    for key in data:
        if key not in ("env", "mtu", "nodes"):
            return _shown(key), "unknown key"
    if "env" in data and not (isinstance(data["env"], str) and re.fullmatch(NAME_RE, data["env"])):
        return "env", "must be an environment name"
    mtu = data.get("mtu")
    if mtu is not None and not (type(mtu) is int and 68 <= mtu <= 65535):
        return "mtu", "must be a number from 68 to 65535, or null"
    for node, fields in data.get("nodes", {}).items():
        if not topology.is_node_name(node):
            return f"nodes.{_shown(node)}", "not a node name (k8s-0, compute-1...)"
        if not isinstance(fields, dict):
            return f"nodes.{node}", "must be a mapping"
        for key in fields:
            if key not in _NODE_FIELDS:
                return f"nodes.{node}.{_shown(key)}", "unknown key"
        for key, (required, ok, what) in _NODE_FIELDS.items():
            if key not in fields:
                if required:
                    return f"nodes.{node}.{key}", "missing"
            elif not ok(fields[key]):
                return f"nodes.{node}.{key}", what
    return None


def poll_progress(conn, servers: dict[str, object]) -> dict[str, progress.NodeProgress]:
    """Read each node's console log and fold its progress lines."""
    def one(item):
        node, server = item
        out = conn.compute.get_server_console_output(server)["output"] or ""
        return node, progress.parse(out, node=node).get(node, progress.NodeProgress(node))
    return dict(uc.concurrently(one, list(servers.items()), workers=8))


def follow(conn, servers: dict[str, object], env_dir: Path, on_update, timeout: float,
           interval: float = 10.0) -> dict[str, progress.NodeProgress]:
    """Poll until every node reports its final line (or one fails, or time runs out)."""
    state: dict[str, progress.NodeProgress] = {}
    try:
        for _ in sdk_utils.iterate_timeout(timeout, "nodes still setting up", wait=interval):
            state = poll_progress(conn, servers)
            on_update(state)
            _write_timings(env_dir, **{n: progress.timings(p) for n, p in state.items()})
            if (all(p.state in ("done", "failed") for p in state.values())
                    or any(p.state == "failed" for p in state.values())):
                return state
    except sdk_exc.ResourceTimeout:
        pass  # the caller reports the nodes that did not finish
    return state
