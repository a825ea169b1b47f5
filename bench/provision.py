"""Provisioning speed: `up` against the parallel floor and the sequential CLI, side by
side in one run, on the same cloud.

    python bench/provision.py [--sizes 5,20,50] [--before CHECKOUT]

Needs a running devcloud (`osception devcloud up`), used as the outer cloud (servers on
Nova's fake driver). For each size N, one after the other on the same cloud:

  floor       the least any tool can do: N ports and N servers (same flavor, image and
              user data size as a node's) all created concurrently from one
              openstacksdk process, then one listing every 2 s until all are ACTIVE
              (what OpenTofu's parallel apply approximates)
  osception   `deploy.provision`, what `osception up --no-follow` runs: preflight,
              security group (keypair, server group meanwhile), then each node its
              ports, user data and server, then ACTIVE; its phases from the
              timings.json it writes (ports, servers: until the last node's was done,
              overlapping; render: CPU seconds)
  before      (--before CHECKOUT: a worktree of an earlier commit) the same, with that
              code, in its own interpreter
  sequential  one `openstack server create` (no --wait) after another, as a shell loop
              would, then one listing every 2 s until all are ACTIVE

It prints seconds, osception / floor, and osception's phases. Everything is deleted
after each measurement. Not a test: timings vary by machine; ratios are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openstack import utils as sdk_utils  # noqa: E402

from osception import config, deploy, render, secrets, state  # noqa: E402
from osception import undercloud as uc  # noqa: E402
from osception.devcloud import Layout, cloud  # noqa: E402
from osception.render.checks import wire_user_data

FLAVOR, IMAGE, NETWORK = cloud.OUTER_FLAVOR, cloud.OUTER_IMAGE, cloud.OUTER_NETWORK
INTERVAL = 2  # s between listings, as uc.wait_active


def cfg_for(n: int, name: str) -> config.Config:
    network = 2 if n >= 5 else 0
    groups = {"controller": {"count": 1}, "compute": {"count": n - 1 - network}, "network": {"count": network}}
    for g in groups.values():
        g.update(flavor=FLAVOR, image=IMAGE)
    return config.Config.model_validate({"name": name, "network": NETWORK, "nodes": groups})


def user_data(work: Path) -> str:
    """A node's user data as the outer cloud receives it (a compute's, gzip+base64)."""
    plan = render.build(cfg_for(5, "bench-ud"), secrets.ensure(work / "bench-ud", "bench-ud"))
    import base64
    return base64.b64encode(wire_user_data(plan.files["compute-0/user-data"])).decode()


def wait_all_active(member, ids: set[str]) -> None:
    for _ in sdk_utils.iterate_timeout(1800, "servers not ACTIVE", wait=INTERVAL):
        status = {s.id: s.status for s in member.compute.servers() if s.id in ids}
        if len(status) == len(ids) and all(v == "ACTIVE" for v in status.values()):
            return


def delete_named(member, prefix: str) -> None:
    servers = [s for s in member.compute.servers() if (s.name or "").startswith(prefix)]
    for s in servers:
        member.compute.delete_server(s)
    for s in servers:
        member.compute.wait_for_delete(s, wait=600)
    for p in [p for p in member.network.ports() if (p.name or "").startswith(prefix)]:
        member.network.delete_port(p)


def time_floor(member, n: int, data: str) -> float:
    net = member.network.find_network(NETWORK)
    flavor, image = member.compute.find_flavor(FLAVOR), member.image.find_image(IMAGE)
    t0 = time.monotonic()

    def one(i: int) -> str:
        port = member.network.create_port(name=f"floor-{n}-{i}", network_id=net.id)
        return member.compute.create_server(name=f"floor-{n}-{i}", flavor_id=flavor.id, image_id=image.id,
                                            networks=[{"port": port.id}], user_data=data).id

    with ThreadPoolExecutor(max_workers=min(n, uc.WORKERS)) as pool:
        ids = set(pool.map(one, range(n)))
    wait_all_active(member, ids)
    elapsed = time.monotonic() - t0
    delete_named(member, f"floor-{n}-")
    return elapsed


def time_osception(member, n: int, work: Path) -> tuple[float, dict]:
    cfg = cfg_for(n, f"bench-{n}")
    sec = secrets.ensure(work / cfg.name, cfg.name)
    t0 = time.monotonic()
    deploy.provision(member, cfg, sec, work / cfg.name)
    elapsed = time.monotonic() - t0
    phases = json.loads(state.Layout(work / cfg.name).timings.read_text())["provision"]
    uc.destroy(member, uc.Names(cfg.name), sec.ssh["public"])
    return elapsed, phases


BEFORE = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from osception import config, deploy, secrets
from osception import undercloud as uc
from osception.devcloud import Layout, cloud
n, flavor, image, network = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
net_nodes = 2 if n >= 5 else 0
groups = {"controller": {"count": 1}, "compute": {"count": n - 1 - net_nodes}, "network": {"count": net_nodes}}
for g in groups.values():
    g.update(flavor=flavor, image=image)
cfg = config.Config.model_validate({"name": f"before-{n}", "network": network, "nodes": groups})
member = cloud.connect(secrets.ensure(Layout.default().root, "devcloud"), cloud.MEMBER_CLOUD)
work = Path(tempfile.mkdtemp())
sec = secrets.ensure(work / cfg.name, cfg.name)
t0 = time.monotonic()
deploy.provision(member, cfg, sec, work / cfg.name)
print(time.monotonic() - t0)
uc.destroy(member, uc.Names(cfg.name), sec.ssh["public"])
"""


def time_before(checkout: Path, n: int) -> float:
    """`deploy.provision` of another checkout (an earlier commit), in its own interpreter."""
    r = subprocess.run([sys.executable, "-c", BEFORE, str(checkout), str(n), FLAVOR, IMAGE, NETWORK],
                       capture_output=True, text=True, check=True)
    return float(r.stdout.split()[-1])


def time_sequential(member, n: int, work: Path, venv: Path, clouds_yaml: Path, data: str) -> float:
    """One `openstack server create` after another (no --wait), then wait for all."""
    import base64
    path = work / "user-data"
    path.write_bytes(base64.b64decode(data))  # gzip, as the others send it (cloud-init reads it)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_CLIENT_CONFIG_FILE=str(clouds_yaml), OS_CLOUD=cloud.MEMBER_CLOUD)
    names = [f"seq-{n}-{i}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:
        subprocess.run([str(venv / "bin/openstack"), "server", "create", "--flavor", FLAVOR, "--image", IMAGE,
                        "--network", NETWORK, "--user-data", str(path), name],
                       env=env, check=True, capture_output=True)
    ids = {s.id for s in member.compute.servers() if s.name in names}
    wait_all_active(member, ids)
    elapsed = time.monotonic() - t0
    delete_named(member, f"seq-{n}-")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,20,50")
    ap.add_argument("--before", type=Path, help="a checkout of an earlier osception, timed too")
    args = ap.parse_args()
    layout = Layout.default()
    sec = secrets.ensure(layout.root, "devcloud")
    admin, member = cloud.connect(sec, cloud.ADMIN_CLOUD), cloud.connect(sec, cloud.MEMBER_CLOUD)
    cloud.dress_as_outer_cloud(admin, member)
    settings = json.loads(layout.settings.read_text())
    venv = Path(os.environ.get("OSCEPTION_DEVCLOUD_VENV") or settings["venv"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = user_data(work)
        for n in (int(x) for x in args.sizes.split(",")):
            floor = time_floor(member, n, data)
            ours, phases = time_osception(member, n, work)
            before = time_before(args.before, n) if args.before else None
            seq = time_sequential(member, n, work, venv, layout.clouds_yaml, data)
            rows.append((n, floor, ours, before, seq, phases))
            print(f"N={n:3}  floor {floor:6.1f}s  osception {ours:6.1f}s  before {before or 0:6.1f}s  "
                  f"sequential {seq:6.1f}s  osception/floor {ours / floor:4.2f}  phases {phases}", flush=True)
    print("\n| nodes | floor | `up` (provision) | before | sequential CLI | up / floor | before / floor "
          "| sequential / up |")
    print("|---|---|---|---|---|---|---|---|")
    for n, floor, ours, before, seq, _ in rows:
        b = f"{before:.1f} s | " if before else "- | "
        bf = f"{before / floor:.2f} | " if before else "- | "
        print(f"| {n} | {floor:.1f} s | {ours:.1f} s | {b}{seq:.1f} s | {ours / floor:.2f} | {bf}{seq / ours:.2f} |")
    order = [k for k in ("preflight", "security-group", "ports", "render", "servers", "pipeline", "active", "total")
             if k in rows[0][5]]
    print("\n| nodes | " + " | ".join(order) + " |")
    print("|---|" + "---|" * len(order))
    for n, *_, phases in rows:
        print(f"| {n} | " + " | ".join(f"{phases[k]:.1f} s" for k in order) + " |")


if __name__ == "__main__":
    main()
