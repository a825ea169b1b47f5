"""Provisioning speed: osception vs the original approach, side by side, one run.

    python bench/provision.py [--sizes 5,20,50]

Needs a running devcloud (`osception devcloud up`), used as the outer cloud. For
each size N it times, on the same cloud, one after the other:
  osception  `deploy.provision`: preflight, keypair, security group, server group,
             N ports and N servers created concurrently, waited ACTIVE
  original   one `openstack server create --wait` CLI call after another (the
             original system's way), N servers with the same user data size
and prints the seconds, the ratio, and seconds per node (how time grows with N).
Both environments are deleted after each size. Not a test: timings vary by machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from osception import config, deploy, secrets  # noqa: E402
from osception import undercloud as uc  # noqa: E402
from osception.devcloud import Layout, cloud  # noqa: E402

FLAVOR, IMAGE, NETWORK = cloud.OUTER_FLAVOR, cloud.OUTER_IMAGE, cloud.OUTER_NETWORK


def cfg_for(n: int, name: str) -> config.Config:
    network = 2 if n >= 5 else 0
    groups = {"controller": {"count": 1}, "compute": {"count": n - 1 - network}, "network": {"count": network}}
    for g in groups.values():
        g.update(flavor=FLAVOR, image=IMAGE)
    return config.Config.model_validate({"name": name, "network": NETWORK, "nodes": groups})


def time_osception(member, n: int, work: Path) -> float:
    cfg = cfg_for(n, f"bench-{n}")
    sec = secrets.ensure(work / cfg.name, cfg.name)
    t0 = time.monotonic()
    deploy.provision(member, cfg, sec, work / cfg.name)
    elapsed = time.monotonic() - t0
    uc.destroy(member, uc.Names(cfg.name), sec.ssh["public"])
    return elapsed


def time_original(member, n: int, work: Path, venv: Path, clouds_yaml: Path) -> float:
    """One `openstack server create --wait` after another, like a shell loop would."""
    user_data = work / "user-data"
    user_data.write_text("#cloud-config\n" + "# padding\n" * 2000)  # ~20 KB, like a node's
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "OS_CLOUD": cloud.MEMBER_CLOUD}
    for key in [k for k in env if k.startswith("OS_") and k not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")]:
        del env[key]
    names = [f"orig-{n}-{i}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:
        subprocess.run([str(venv / "bin/openstack"), "server", "create", "--flavor", FLAVOR, "--image", IMAGE,
                        "--network", NETWORK, "--user-data", str(user_data), "--wait", name],
                       env=env, check=True, capture_output=True)
    elapsed = time.monotonic() - t0
    for name in names:
        server = member.compute.find_server(name)
        member.compute.delete_server(server)
    for name in names:
        server = member.compute.find_server(name, ignore_missing=True)
        if server is not None:
            member.compute.wait_for_delete(server)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,20,50")
    args = ap.parse_args()
    layout = Layout.default()
    sec = secrets.ensure(layout.root, "devcloud")
    admin, member = cloud.connect(sec, cloud.ADMIN_CLOUD), cloud.connect(sec, cloud.MEMBER_CLOUD)
    cloud.dress_as_outer_cloud(admin, member)
    venv = Path(os.environ.get("OSCEPTION_DEVCLOUD_VENV", Path(__file__).resolve().parent.parent
                               / ".venv-openstack-2026.1"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in (int(x) for x in args.sizes.split(",")):
            ours = time_osception(member, n, work)
            theirs = time_original(member, n, work, venv, layout.clouds_yaml)
            rows.append((n, ours, theirs))
            print(f"N={n:3}  osception {ours:7.1f}s ({ours / n:5.2f}s/node)  "
                  f"original {theirs:7.1f}s ({theirs / n:5.2f}s/node)  ratio {theirs / ours:5.1f}x",
                  flush=True)
    print("\n| nodes | osception | original (CLI, sequential) | original / osception |")
    print("|---|---|---|---|")
    for n, ours, theirs in rows:
        print(f"| {n} | {ours:.1f} s ({ours / n:.2f} s/node) | {theirs:.1f} s ({theirs / n:.2f} s/node) "
              f"| {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
