"""`up`: preflight, then the environment's resources, created concurrently.

    preflight -> keypair, security group, server group -> ports (their MACs and IPs)
    -> render the plan with those addresses -> servers -> follow the progress lines

Every step looks before it creates, so running `up` again after an interruption at
any point completes the environment without duplicates.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from . import day2, progress, render, topology
from . import undercloud as uc
from .config import Config
from .secrets import Secrets
from .state import StateError, read_state, write_private

RESOURCES = "resources.json"
TIMINGS = "timings.json"


@dataclass
class UpResult:
    plan: render.Plan
    servers: dict[str, object]  # node -> server


def _parallel(fn, items, workers: int = 8) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def provision(conn, cfg: Config, secrets: Secrets, env_dir: Path, say=lambda msg: None) -> UpResult:
    phases = progress.Laps(digits=2)  # timings.json: "provision"
    names = uc.Names(cfg.name)
    found = uc.preflight(conn, cfg, names)
    say("preflight passed")
    phases.lap("preflight")

    nodes = topology.nodes(cfg)
    public_nodes = topology.public_port_nodes(cfg)

    def sg_and_ports():
        """The security group, then the ports that name it."""
        sg = uc.ensure_security_group(conn, names, cfg)
        phases.lap("security-group")
        wanted = [uc.PortWanted(names.port(n.name), found.network, sg) for n in nodes] + [
            uc.PortWanted(names.public_port(n.name), found.public_network, sg, port_security=False)
            for n in public_nodes]
        return uc.ensure_ports(conn, names, wanted)

    # The keypair and the server group (only the servers need them) meanwhile.
    with ThreadPoolExecutor(max_workers=3) as pool:
        keypair = pool.submit(uc.ensure_keypair, conn, names, secrets.ssh["public"])
        group = pool.submit(uc.ensure_server_group, conn, names) if cfg.nodes.compute.count else None
        made = sg_and_ports()
        keypair.result()
        group = group.result() if group else None
    ports = {n.name: (made[names.port(n.name)], made.get(names.public_port(n.name))) for n in nodes}
    addresses = {name: uc.address_of(p, pub) for name, (p, pub) in ports.items()}
    say(f"keypair, security group, server group and {len(ports)} nodes' ports ready")
    phases.lap("ports")

    mtu = getattr(found.network, "mtu", None) or cfg.mtu
    plan = render.build(cfg, secrets, addresses, mtu=mtu)
    render.write(plan, env_dir / "plan")
    _save(env_dir, names, ports, addresses, {}, mtu)
    phases.lap("render")

    requests = {n.name: uc.server_request(
        names, n, found, plan.files[f"{n.name}/user-data"], [x for x in ports[n.name] if x is not None],
        server_group=group if n.role == "compute" else None) for n in nodes}
    servers = uc.ensure_servers(conn, names, requests)
    _save(env_dir, names, ports, addresses, servers, mtu)
    phases.lap("servers")
    servers = uc.wait_active(conn, names, servers)
    say(f"{len(servers)} servers ACTIVE")
    phases.lap("active")
    day2.record_created(plan, env_dir)  # what `osception apply` compares with
    _write_timings(env_dir, provision={**phases.laps, "total": phases.total()})
    return UpResult(plan, servers)


def _write_timings(env_dir: Path, **parts) -> None:
    path = env_dir / TIMINGS
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
    write_private(env_dir / RESOURCES, json.dumps(data, indent=2, sort_keys=True))


def load_resources(env_dir: Path) -> dict:
    path = env_dir / RESOURCES
    text = read_state(path, private=False)  # ids and addresses, no secret
    try:
        data = json.loads(text) if text is not None else {}
    except (ValueError, RecursionError):
        raise StateError(f"{path}: not valid JSON; `osception up` writes it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes", {}), dict):
        raise StateError(f"{path}: not the resources osception wrote; `osception up` writes it again")
    return data


def poll_progress(conn, servers: dict[str, object]) -> dict[str, progress.NodeProgress]:
    """Read each node's console log and fold its progress lines."""
    def one(item):
        node, server = item
        out = conn.compute.get_server_console_output(server)["output"] or ""
        return node, progress.parse(out, node=node).get(node, progress.NodeProgress(node))
    return dict(_parallel(one, servers.items()))


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
