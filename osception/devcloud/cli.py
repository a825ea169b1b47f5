"""`osception devcloud up | status | restart | down | env`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from .. import releases, secrets as secrets_mod
from .. import state
from .. import tempest as tempest_mod
from .layout import VENV_ENV_VAR, Layout
from .processes import DevcloudError

app = typer.Typer(
    help="A real OpenStack on this machine (Keystone, Glance, Placement, Neutron, Nova with a "
         "fake hypervisor) from the release's PyPI services, configured by osception's own "
         "templates. For tests and for checking tuned templates.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

StateOpt = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help=f"State home (default: ${state.ENV_VAR} or the user data "
                                     "dir); the devcloud lives in its devcloud/ folder."),
]


def _layout(state_dir: Path | None) -> Layout:
    return Layout.default(state_dir)


def _fail(message: str) -> None:
    err.print("[red]error:[/red]", end=" ")
    err.print(message, markup=False)  # log tails hold [brackets] that are not markup
    raise typer.Exit(1)


def _say(message: str) -> None:
    console.print(message, markup=False)


@app.command()
def up(
    release: Annotated[Optional[str], typer.Option(
        help=f"OpenStack release (default: {releases.DEFAULT_RELEASE}, or the config's).")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="An osception.yaml whose `overrides:` apply (remembered).")] = None,
    venv: Annotated[Optional[Path], typer.Option(
        help=f"An existing services venv (built from osception's lock); also ${VENV_ENV_VAR}. "
             "Default: one built under the state folder.")] = None,
    nodes: Annotated[bool, typer.Option(
        "--nodes", help="Also the plan's compute and network nodes, on this machine (root: "
                        "systemd-nspawn containers in network namespaces), each set up from "
                        "its own user data: 1 compute and 1 network node unless counted below.")] = False,
    computes: Annotated[Optional[int], typer.Option(min=0, max=8, help="Local compute nodes (implies --nodes).")] = None,
    network_nodes: Annotated[Optional[int], typer.Option(min=0, max=8, help="Local network nodes (implies --nodes).")] = None,
    bake: Annotated[bool, typer.Option(
        "--bake", help="With local nodes: bake their node image first (once per release), as "
                       "`osception bake` does on a cloud; they boot on it.")] = False,
    state_dir: StateOpt = None,
) -> None:
    """Start the devcloud (or whatever part of it is down). Idempotent."""
    from . import cloud
    from .lifecycle import Devcloud

    layout = _layout(state_dir)
    wanted = None
    if nodes or computes is not None or network_nodes is not None:
        wanted = {"compute": 1 if computes is None else computes,
                  "network": 1 if network_nodes is None else network_nodes}
    try:
        settings = Devcloud(layout, say=_say).up(release, config, venv, nodes=wanted, bake=bake)
    except DevcloudError as e:
        _fail(str(e))
    _say(f"config    {layout.root / 'etc'}  (logs: {layout.root / 'logs'})")
    _say(f"clouds    {layout.clouds_yaml}: {cloud.MEMBER_CLOUD} (member of project "
         f"{cloud.MEMBER_PROJECT}) and {cloud.ADMIN_CLOUD}")
    _say(f"try       eval \"$(osception devcloud env --shell)\"; "
         f"{settings.venv}/bin/openstack server list")


@app.command()
def status(state_dir: StateOpt = None) -> None:
    """Every devcloud process: pid, port, running or not; the local nodes' progress and
    per-step timings, from their consoles. Exit code 1 unless all run."""
    from .. import board
    from .lifecycle import Devcloud, Settings
    from .nodes import LocalNodes

    layout = _layout(state_dir)
    rows = Devcloud(layout).status()
    table = Table(title=f"osception devcloud ({layout.root})")
    for col in ("process", "pid", "port", "state"):
        table.add_column(col)
    for name, pid, st, port in rows:
        color = {"running": "green", "starting": "yellow"}.get(st, "red")
        table.add_row(name, str(pid or ""), str(port or ""), f"[{color}]{st}[/{color}]")
    console.print(table)
    timings = Settings.load(layout).timings
    if timings:
        console.print("last up: " + " ".join(f"{k}={v}s" for k, v in timings.items()))
    nodes = LocalNodes(layout).progress()
    if nodes:  # the local nodes' progress, read from their consoles as `osception status` does
        console.print(board.table(nodes))
        console.print(board.steps(nodes))
    if any(st != "running" for _, _, st, _ in rows):
        raise typer.Exit(1)


@app.command()
def down(
    purge: Annotated[bool, typer.Option(
        "--purge", help="Also remove its data, config, logs and secrets (the services venvs stay in the machine cache).")] = False,
    state_dir: StateOpt = None,
) -> None:
    """Stop every process the devcloud started (by its own pids)."""
    from .lifecycle import Devcloud

    Devcloud(_layout(state_dir), say=_say).down(purge)


@app.command()
def restart(
    node: Annotated[Optional[str], typer.Argument(
        help="A node of the plan: a local node (compute-0, network-0...) or the controller "
             "(k8s-0: the devcloud's own processes). Default: the controller, then every node.")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Reboot a node as its VM would be rebooted: a local node's container goes through its
    own shutdown and a real boot (its services from their enabled units, no setup run
    again); the controller's processes stop and start from the state `up` left (no
    database bootstrapped again). Returns once the rebooted nodes' agents report again."""
    from .lifecycle import Devcloud

    try:
        took = Devcloud(_layout(state_dir), say=_say).restart(node)
    except DevcloudError as e:
        _fail(str(e))
    _say("restarted: " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()))


@app.command()
def env(
    shell: Annotated[bool, typer.Option(
        "--shell", help="Print `export OS_CLIENT_CONFIG_FILE=... OS_CLOUD=...` instead.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="With --shell: the admin cloud.")] = False,
    state_dir: StateOpt = None,
) -> None:
    """Print the devcloud's clouds.yaml (holds passwords), or shell exports for it."""
    from . import cloud

    layout = _layout(state_dir)
    if not state.Layout(layout.root).secrets.exists():
        _fail(f"no devcloud in {layout.root}; run `osception devcloud up`")
    sec = secrets_mod.ensure(layout.root, "devcloud")
    cloud.write_clouds_yaml(layout, sec)
    if shell:
        name = cloud.ADMIN_CLOUD if admin else cloud.MEMBER_CLOUD
        print(f"export OS_CLIENT_CONFIG_FILE={layout.clouds_yaml}\nexport OS_CLOUD={name}")
    else:
        print(yaml.safe_dump(cloud.clouds(sec), sort_keys=False), end="")


@app.command()
def smoke(state_dir: StateOpt = None) -> None:
    """With local nodes (`up --nodes`): populate the devcloud as `osception populate` does
    (the guest made here in place of CirrOS), then run `osception smoke`'s checks, the
    floating-IP ping from the outer network's side. Exit code 1 when a check fails."""
    from .. import board, overcloud
    from . import cloud, guest, nodes
    from .lifecycle import Settings

    layout = _layout(state_dir)
    settings = Settings.load(layout)
    if not settings.nodes:
        _fail("the devcloud runs no local nodes (its hypervisor is fake): "
              "start them with `osception devcloud up --nodes`")
    sec = secrets_mod.ensure(layout.root, "devcloud")
    cfg = nodes.node_config(settings.run_config())
    access = overcloud.Access(cloud.auth_url(), sec.admin_password, sec.demo_password,
                              interface=cloud.CLIENT_INTERFACE)
    env_dir = layout.root / "overcloud"
    env_dir.mkdir(exist_ok=True)
    try:
        changes = overcloud.populate(access, cfg, sec.ssh["public"], env_dir, local_images=guest_images())
    except Exception as e:  # noqa: BLE001 (one line, as `osception populate`)
        _fail(f"populate: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    _say(f"populate: {len(changes.made)} changes")
    checks = overcloud.smoke(access, cfg, cfg.nodes.compute.count, cfg.nodes.network.count,
                             image=guest.NAME, ping=nodes.PING)
    if not board.print_checks(console, checks):
        raise typer.Exit(1)


@app.command()
def tempest(
    smoke: tempest_mod.SmokeOpt = False,
    regex: tempest_mod.RegexOpt = None,
    test_list: tempest_mod.ListOpt = None,
    concurrency: tempest_mod.ConcurrencyOpt = 2,
    compare_runs: tempest_mod.CompareOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Run upstream's Tempest (pinned per release) against the devcloud: what it cannot
    have is switched off, with why. Reports (JUnit XML, HTML, subunit) in its state folder
    under tempest/runs/; output and exit codes as `osception tempest`'s."""
    from .. import cli  # the product's command does the run (devcloud -> product only)

    cli.run_tempest(*_tempest_target(state_dir, cli.fail), smoke, regex, test_list,
                    concurrency, compare_runs)


def _tempest_target(state_dir: Path | None, fail):
    """(Target, Access) of the devcloud. With local nodes, Tempest runs where the cloud's
    users are: in the outer network's namespace, reaching the APIs by the https names
    the nodes use (through the relay and Traefik, verified with the environment's CA)
    and the guests' floating IPs directly; it logs into the guest `devcloud smoke`
    populated, on the flavors it made. Without nodes, on this machine's side: the fake
    hypervisor's flavor and image, no guest to reach."""
    from .. import endpoints, overcloud, tls
    from ..render.plan import domain_of
    from . import cloud, guest, nodes
    from .lifecycle import Settings

    layout = _layout(state_dir)
    if not layout.settings.exists():
        fail(f"no devcloud in {layout.root}: run `osception devcloud up`")
    settings = Settings.load(layout)
    sec = secrets_mod.ensure(layout.root, "devcloud")
    cfg = settings.run_config()
    # What Tempest's facts are read with: the admin, from this machine's side.
    access = overcloud.Access(cloud.auth_url(), sec.admin_password, sec.demo_password,
                              interface=cloud.CLIENT_INTERFACE)
    home = layout.root / "tempest"
    release = releases.get(settings.release)
    if not settings.nodes:
        return tempest_mod.Target(
            "devcloud", release, home, access.auth_url, sec.admin_password,
            interface=cloud.CLIENT_INTERFACE, data_plane=False, flavors=(cloud.FLAVOR,),
            images=(cloud.IMAGE,), exclude=(tempest_mod.NEEDS_FLOATING_IP_REACH,),
            no_vnc_console=NO_VNC_CONSOLE), access
    home.mkdir(parents=True, exist_ok=True)
    ca = home / "ca.pem"
    ca.write_text(tls.client_ca(cfg.tls, sec.tls))
    return tempest_mod.Target(
        "devcloud", release, home, endpoints.auth_url(domain_of(cfg, nodes.controller_ip(cfg))),
        sec.admin_password, interface="public", cacert=str(ca),
        flavors=tuple(f.name for f in cfg.overcloud.flavors), images=(guest.NAME,),
        prefix=("ip", "netns", "exec", nodes.OUTER_NETNS), login=(guest.USER, guest.PASSWORD),
        no_vnc_console=NO_VNC_CONSOLE), access


# Tempest's noVNC tests need the console proxy behind the ingress, which the devcloud
# does not run yet (layout.py: no consoles or dashboard here).
NO_VNC_CONSOLE = "the devcloud runs no noVNC console proxy: no console to open"


def guest_images():
    """populate's local images (`devcloud smoke`, `osception populate --local-guest`): the
    guest made on this machine (built once, in the machine cache), uploaded."""
    from . import guest

    made = guest.build()
    return lambda conn: guest.upload(conn, made)


def guest_image_name() -> str:
    """The image `osception smoke --local-guest` boots."""
    from . import guest

    return guest.NAME


@app.command("guest")
def guest_image() -> None:
    """Make the local cloud's guest image from Debian packages (one disk, as CirrOS: syslinux
    booting a kernel and an initramfs of busybox, dropbear, netcat: it behaves as CirrOS) in
    the machine cache; `osception populate --local-guest` uploads it."""
    from . import guest

    try:
        g = guest.build()
    except DevcloudError as e:
        _fail(str(e))
    for what, path in (("kernel", g.kernel), ("initramfs", g.initrd), ("disk", g.disk)):
        _say(f"{what:10} {path}  ({path.stat().st_size} bytes)")
    _say(f"{'login':10} {guest.USER} / {guest.PASSWORD} on the serial console and over SSH "
         "(port 22: hostfwd=tcp:127.0.0.1:2222-:22), or a key of the metadata")
    _say(f"{'boot it':10} qemu-system-x86_64 -accel tcg -m 128 -nographic "
         f"-drive file={g.disk},format=qcow2,if=virtio,snapshot=on -netdev user,id=n0,restrict=on,"
         "hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n0")
