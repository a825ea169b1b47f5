"""The `osception` command line."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import config as config_mod
from . import endpoints, errors, releases, render, secrets, state, topology
from . import tempest as tempest_mod  # its options: `tempest`'s and `devcloud tempest`'s
from .render.checks import NOVA_USER_DATA_LIMIT
from .render.patches import check_patch_files
from .render.plan import check_target, domain_of


_held: list[contextlib.ExitStack] = []  # what the running command holds (its environment's lock)


class _Group(typer.core.TyperGroup):
    """Every command: an OsceptionError ends as its line(s) and its exit code, and any
    filesystem error as one line naming the file (exit 2), never as a traceback; this
    is the one place that turns them into output. What the command holds (`lock`) is
    released when it ends."""

    def invoke(self, ctx):
        try:
            with contextlib.ExitStack() as held:
                _held.append(held)
                try:
                    return super().invoke(ctx)
                finally:
                    _held.pop()
        except errors.OsceptionError as e:
            _stop(e)
        except OSError as e:
            if not isinstance(e.filename, (str, bytes, Path)):  # not a file (e.g. the network): not ours
                raise
            _stop(errors.OsceptionError(f"{e.filename}: {e.strerror or type(e).__name__}"))


app = typer.Typer(
    cls=_Group,
    help="A real multi-node OpenStack on top of an existing OpenStack cloud.",
    no_args_is_help=True,
    add_completion=False,
)
# The product's one import of the devcloud (tests/test_layering.py): `osception devcloud`
# is its sub-app, and `--local-guest` uploads or boots the guest it makes.
from .devcloud import cli as devcloud_cli  # noqa: E402

app.add_typer(devcloud_cli.app, name="devcloud")
# No Rich markup: user text (names, paths, messages from the cloud) is shown as is.
console = Console(markup=False)
err = Console(stderr=True, markup=False)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="osception.yaml (default: ./osception.yaml if present)."),
]
EnvOpt = Annotated[Optional[str], typer.Option("--env", "-e", help="Environment name (overrides `name:`).")]
StateOpt = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help=f"State home (default: ${state.ENV_VAR} or the user data dir)."),
]


def clean(text: object) -> str:
    """User or cloud text as it may reach the terminal: control characters (escape
    sequences, carriage returns, line breaks) shown as '?', never acted on."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", "?", str(text))


def fail(message: str) -> NoReturn:
    """Stop the command: one line on stderr, exit 2 (said by _stop)."""
    raise errors.OsceptionError(message)


def _stop(e: errors.OsceptionError) -> NoReturn:
    """Each of the error's lines on stderr, as it is, even wider than the terminal (a
    problem is one line), then its exit code. Control characters of user text are
    shown as '?'."""
    for line in e.lines():
        err.print(f"{e.label}:", clean(line), style="red", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def load_config(path: Path | None, env: str | None) -> config_mod.Config:
    if path is None and Path("osception.yaml").exists():
        path = Path("osception.yaml")
    if env is not None and not re.fullmatch(config_mod.NAME_RE, env):
        fail(f"--env: must be 2 to 32 lowercase letters, digits or '-' ({config_mod.NAME_RE})")
    cfg = config_mod.load(path)
    return cfg if env is None else cfg.model_copy(update={"name": env})


def say(message: str) -> None:
    """A note on stderr, on one line."""
    err.print(clean(message), soft_wrap=True, highlight=False)


def lock(env_dir: Path) -> None:
    """Hold the environment's lock until the command ends (a second one waits, saying so)."""
    _held[-1].enter_context(state.lock(env_dir, say=say))


def environment(path: Path | None, env: str | None, state_dir: Path | None):
    """What every command of an environment starts with: its config and its state
    folder, without touching either (status, ssh, logs, openrc, down read them)."""
    cfg = load_config(path, env)
    return cfg, state.env_dir(cfg.name, state_dir)


def load_environment(path: Path | None, env: str | None, state_dir: Path | None, regenerate: bool = False,
                     certificate: bool = False, check=None):
    """environment(), locked, with its secrets (made on first use): the commands that
    write state (plan, up, apply, populate, smoke). Nothing is created or written
    before all the command's input is checked: the config, the files of `tls:`
    (`certificate`: plan, up, apply), the secrets already there, and `check(cfg,
    env_dir, secrets)`, which renders what the command will (every patch file, tuning
    knob and certificate name) and checks where it goes (`--out`); run on the secrets
    as they will be (a new environment's made in memory), and again should another
    command have made different ones meanwhile. Returns (cfg, env_dir, secrets, what
    `check` returned)."""
    from . import tls

    cfg, env_dir = environment(path, env, state_dir)
    if certificate and cfg.tls is not None:
        tls.own(cfg.tls)
    check_patch_files(cfg, state.home(state_dir))  # none is a file of the state home
    planned = secrets.peek(env_dir, cfg.name, regenerate)  # reads, writes nothing
    checked = check(cfg, env_dir, planned) if check else None
    lock(env_dir)
    sec = secrets.ensure(env_dir, cfg.name, regenerate, say=say, fresh=planned)
    if check and sec.data != planned.data:  # another command made this environment's first
        checked = check(cfg, env_dir, sec)
    if certificate and cfg.tls is None:
        note = tls.strict_note(sec.tls)
        if note:
            say(f"note: {note}")
    return cfg, env_dir, sec, checked


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path("osception.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented osception.yaml holding every default."""
    import errno
    import os

    if (path.exists() or path.is_symlink()) and not force:
        fail(f"{path} exists; use --force to overwrite it")
    # 0644 whatever the umask (plan refuses a config others can write, as OpenSSH does);
    # never through a symbolic link planted where the file goes.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        fail(f"{path}: {'a symbolic link; osception writes a plain file' if e.errno == errno.ELOOP else e.strerror}")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o644)
        f.write(config_mod.DEFAULT_YAML)
    console.print(f"wrote {path}")


@app.command()
def plan(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Write the files here (default: the env's state).")
    ] = None,
    state_dir: StateOpt = None,
    regenerate_secrets: Annotated[bool, typer.Option(
        secrets.REGENERATE, help="Replace the environment's secrets and SSH key with new ones "
        "(the old ones are kept aside). A running environment keeps its old passwords.")] = False,
) -> None:
    """Render every file every node will receive. Needs no cloud."""
    def check(cfg, env_dir, sec):
        result = render.build(cfg, sec)
        check_target(result, out or state.Layout(env_dir).plan)
        return result

    cfg, env_dir, sec, result = load_environment(config, env, state_dir, regenerate_secrets,
                                                 certificate=True, check=check)
    target = out or state.Layout(env_dir).plan
    render.write(result, target)

    table = Table(title=f"osception plan: {cfg.name}", show_header=True)
    table.add_column("node")
    table.add_column("role")
    table.add_column("flavor")
    table.add_column("image")
    table.add_column("user data", justify="right")
    sizes = result.user_data_sizes
    for node in result.nodes:
        size = sizes[node.name]
        table.add_row(node.name, node.role, node.flavor, node.image,
                      f"{size} B ({100 * size / NOVA_USER_DATA_LIMIT:.0f}%)")
    console.print(table)
    rel = result.release
    console.print(f"release   {rel.name} ({rel.codename}); control plane images {rel.kolla_tag}; "
                  f"node packages {rel.package_source}")
    console.print(f"services  {', '.join(result.services)}")
    console.print(f"endpoints {endpoints.auth_url(result.domain)} ...", highlight=False)
    if result.controller_ip == topology.PLACEHOLDER_CONTROLLER_IP:
        console.print(f"          (controller IP unknown until `up`: shown as {result.controller_ip})")
    console.print(f"user data bytes of base64, as Nova counts them (limit {NOVA_USER_DATA_LIMIT} a node)")
    console.print(f"files     {len(result.files)} written to {target}")
    console.print(f"state     {env_dir} (secrets 0600)")


def _conn(cfg):
    from . import undercloud

    try:
        return undercloud.connect(cfg)
    except Exception as e:  # openstacksdk's and keystoneauth's own classes, not ours (no cloud configured,
        # an unknown clouds.yaml entry, a bad auth type...): each said as a problem of `cloud:`
        fail(f"cloud: {str(e).splitlines()[0]}; set `cloud:` or OS_CLOUD / OS_* variables")


@app.command()
def up(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Follow the nodes' progress.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow the nodes before giving up.")] = 3600,
) -> None:
    """Create (or complete) the environment on the outer cloud."""
    from . import board, deploy

    # a config that does not render stops here, before anything is written or the cloud touched
    cfg, env_dir, sec, _ = load_environment(config, env, state_dir, certificate=True,
                                            check=lambda cfg, env_dir, sec: render.build(cfg, sec))
    conn = _conn(cfg)
    result = deploy.provision(conn, cfg, sec, env_dir, say=lambda m: console.print(m, style="dim"))
    console.print(f"controller {result.plan.controller_ip}; plan in {state.Layout(env_dir).plan}")
    if not follow:
        return
    with board.live(console) as show:
        final = deploy.follow(conn, result.servers, env_dir, show, timeout)
    failed = [p for p in final.values() if p.state == "failed"]
    unfinished = [p for p in final.values() if p.state not in ("done", "failed")]
    if failed or unfinished:
        for p in failed:
            err.print(f"{p.node} failed:", clean(p.reason), style="red", highlight=False)
            for note in p.current.notes if p.current else []:
                err.print(f"  {clean(note)}", markup=False, highlight=False)
        if unfinished and not failed:
            where = ", ".join(f"{p.node} ({p.current.name if p.current else p.state})" for p in unfinished)
            err.print(f"not finished after {timeout} s: {clean(where)}; the nodes go on: "
                      "`osception status --watch` follows them", style="red", markup=False, highlight=False)
        raise typer.Exit(1)
    from . import overcloud

    access = _access(cfg, env_dir, sec, None)
    changes = overcloud.populate(access, cfg, sec.ssh["public"], env_dir)
    console.print(f"populated the new cloud ({len(changes.made)} changes)")
    console.print(f"ready: Skyline http://skyline.{result.plan.domain}, "
                  f"Keystone {access.auth_url}; source {state.Layout(env_dir).openrc('admin')}")


@app.command()
def status(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Keep refreshing.")] = False,
) -> None:
    """Show each node's progress, read from the outer cloud's console logs."""
    from . import board, deploy, undercloud

    cfg, env_dir = environment(config, env, state_dir)
    conn = _conn(cfg)
    names = undercloud.Names(cfg.name)
    servers = {s.metadata.get("osception-node", s.name): s for s in undercloud.inventory(conn, names)["servers"]}
    if not servers:
        fail(f"environment {cfg.name!r} has no servers on this cloud")
    if not watch:
        state = deploy.poll_progress(conn, servers)
        console.print(board.table(state))
        console.print(board.steps(state))
        return
    with board.live(console) as show:
        deploy.follow(conn, servers, env_dir, show, timeout=24 * 3600)


@app.command()
def down(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    state_dir: StateOpt = None,
) -> None:
    """Delete every resource of the environment (found by tag and name), nothing else."""
    from . import undercloud

    cfg, env_dir = environment(config, env, state_dir)
    lock(env_dir)
    # The keypair carries no tag: only the environment's own public key proves it ours.
    public_key = state.read_state(state.Layout(env_dir).ssh_public_key, private=False)
    conn = _conn(cfg)
    names = undercloud.Names(cfg.name)
    notes: list[str] = []
    found = undercloud.inventory(conn, names, public_key, notes)
    for note in notes:
        console.print(note, highlight=False)
    total = sum(len(v) for v in found.values())
    if total == 0:
        console.print(f"environment {cfg.name!r}: nothing to delete")
        return
    summary = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in found.items() if v)
    if not yes and not typer.confirm(f"Delete environment {cfg.name!r}: {summary}?"):
        raise typer.Exit(1)
    counts = undercloud.destroy(conn, names, public_key, progress=lambda m: console.print(m, style="dim"))
    console.print(f"deleted environment {cfg.name!r}: " +
                  ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))


@app.command()
def bake(
    config: ConfigOpt = None,
    release: Annotated[Optional[str], typer.Option("--release", "-r", help="The release (default: the config's).")] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="node or controller (default: both).")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the release's baked images instead.")] = False,
    every_release: Annotated[bool, typer.Option("--every-release", help="With --delete: every release's.")] = False,
) -> None:
    """Make the release's node and controller images on the outer cloud (`up` boots them)."""
    from . import bake as bake_mod

    cfg = load_config(config, None)
    if release is not None:
        if release not in releases.RELEASES:
            fail(f"--release: {release!r} is not one of {', '.join(releases.RELEASES)}")
        cfg = cfg.model_copy(update={"release": release})
    if only is not None and only not in bake_mod.KINDS:
        fail(f"--only: {only!r} is not one of {', '.join(bake_mod.KINDS)}")
    conn = _conn(cfg)
    show = lambda m: console.print(m, style="dim")  # noqa: E731
    if delete:
        n = bake_mod.delete(conn, cfg, say=show, every_release=every_release)
        console.print(f"deleted {n} baked images of {'every release' if every_release else cfg.release}")
        return
    made = bake_mod.bake(conn, cfg, say=show, kinds=(only,) if only else bake_mod.KINDS)
    for kind, image in made.items():
        console.print(f"{kind}: {image.name} ({image.id})")


@app.command("list")
def list_envs(
    config: ConfigOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Environments known locally, and those found on the cloud by tag."""
    from . import undercloud

    local = sorted(p.name for p in state.home(state_dir).glob("*") if state.Layout(p).secrets.exists())
    cfg = load_config(config, None)
    remote = undercloud.environments(_conn(cfg))
    table = Table()
    for col in ("environment", "local state", "on the cloud"):
        table.add_column(col)
    for name in sorted(set(local) | set(remote)):
        table.add_row(name, "yes" if name in local else "-", "yes" if name in remote else "-")
    console.print(table)


@app.command()
def ssh(
    node: Annotated[str, typer.Argument(help="k8s-0, compute-0, network-1 ...")],
    command: Annotated[Optional[list[str]], typer.Argument(help="Command to run.")] = None,
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    user: Annotated[str, typer.Option(help="Login user of the image.")] = "debian",
) -> None:
    """SSH to a node with the environment's key."""
    import os

    _, env_dir = environment(config, env, state_dir)
    os.execvp("ssh", _ssh_args(env_dir, node, user) + (command or []))


@app.command()
def apply(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    diff: Annotated[bool, typer.Option("--diff", help="Only show what would change.")] = False,
    user: Annotated[str, typer.Option(help="Login user of the image.")] = "debian",
) -> None:
    """Bring a running environment to the plan its config renders now (day 2, over SSH):
    the controller's changed Kubernetes objects, then each node whose files changed."""
    from . import board, day2, deploy

    def check(cfg, env_dir, sec):
        """What `up` recorded, then the plan the config renders now for those nodes."""
        resources = deploy.load_resources(env_dir)
        nodes = resources.get("nodes", {})
        if not nodes or day2.applied(env_dir) is None:
            fail(f"{cfg.name}: no environment that `osception up` made here; `apply` changes a running one")
        if "mtu" not in resources:
            fail(f"{state.Layout(env_dir).resources}: written before `apply` existed; "
                 "run `osception up` once to record the ports' MACs and the MTU")
        missing = [n.name for n in topology.nodes(cfg) if n.name not in nodes]
        if missing:
            fail(f"new node(s) {', '.join(missing)}: `osception up` creates them; `apply` changes running ones")
        addresses = {n: topology.Address(v["ip"], v["mac"], v.get("public_mac")) for n, v in nodes.items()}
        return render.build(cfg, sec, addresses, mtu=resources["mtu"])

    cfg, env_dir, sec, plan = load_environment(config, env, state_dir, certificate=True, check=check)
    old = day2.applied(env_dir)
    changes = day2.diff(old, plan)
    for line in changes.lines():
        console.print(line, highlight=False, markup=False)
    if diff or changes.empty:
        return
    with board.live(console) as show:
        final = day2.apply(plan, changes, lambda n: _ssh_args(env_dir, n, user, batch=True), show)
    failed = [p for p in final.values() if p.state != "done"]
    for p in failed:
        err.print(f"{p.node} failed:", clean(p.reason or p.state), style="red", highlight=False)
    if failed:
        err.print("nothing recorded: `osception apply` again redoes the same changes", style="red")
        raise typer.Exit(1)
    day2.record(plan, env_dir)
    console.print(f"applied: {len(final)} node(s) brought to the plan in {state.Layout(env_dir).applied}")


def _ssh_args(env_dir: Path, node: str, user: str, batch: bool = False) -> list[str]:
    """`ssh` to a node of the environment, with its key; the remote command goes after.
    The node must show the host key osception made for it (cloud-init installed it):
    the environment's own known_hosts, by the node's name (HostKeyAlias, whatever its
    address), checked strictly; the user's known_hosts is neither read nor written."""
    from . import deploy

    nodes = deploy.load_resources(env_dir).get("nodes", {})
    if node not in nodes:
        fail(f"no node {node!r} in {env_dir}; known: {', '.join(sorted(nodes)) or 'none (run up)'}")
    sec = secrets.peek(env_dir, env_dir.name)  # reads, writes nothing
    known = state.Layout(env_dir).known_hosts
    text = "".join(secrets.known_hosts_line(sec, name) + "\n" for name in sorted(nodes))
    if state.read_state(known, private=False) != text:
        state.write_file(known, text, mode=0o644)
    key = state.Layout(env_dir).ssh_key
    return ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f'UserKnownHostsFile="{known}"', "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"HostKeyAlias={node}", "-o", "CheckHostIP=no", "-o", "UpdateHostKeys=no",
            *(["-o", "BatchMode=yes"] if batch else []), f"{user}@{nodes[node]['ip']}"]


def _run(args: list[str]) -> int:
    import subprocess

    return subprocess.run(args).returncode


@app.command()
def logs(
    node: Annotated[str, typer.Argument(help="k8s-0, compute-0, network-1 ...")],
    service: Annotated[Optional[str], typer.Argument(help="nova-api, nova-compute ... (omit to list them)")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many of the last lines.")] = 100,
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    user: Annotated[str, typer.Option(help="Login user of the image.")] = "debian",
) -> None:
    """A service's recent log, over SSH: `kubectl logs` on the controller, `journalctl` on a node."""
    from . import logs as logs_mod

    cfg, env_dir = environment(config, env, state_dir)
    ssh_args = _ssh_args(env_dir, node, user)
    role = next((n.role for n in topology.nodes(cfg) if n.name == node), None)
    if role is None:
        fail(f"node {node!r} is not in the configuration of {cfg.name!r}")
    plan_dir = state.Layout(env_dir).plan
    manifests = sorted((plan_dir / node / "manifests").glob("*.yaml")) if role == "controller" else []
    if role == "controller" and not manifests:
        fail(f"no plan in {plan_dir}; run `osception up`")
    known = logs_mod.sources(role, (p.read_text() for p in manifests))
    if service is None:
        for name, source in known.items():
            console.print(f"{name:28} {source}", highlight=False)
        return
    if service not in known:
        fail(f"no service {service!r} on {node}; known: {', '.join(known)}")
    raise typer.Exit(_run(ssh_args + logs_mod.command(known[service], lines)))


def _access(cfg, env_dir: Path, sec, auth_url: str | None):
    """Where the new cloud's Keystone is: --auth-url, else the controller's ingress name."""
    from . import deploy, endpoints, overcloud

    if auth_url is None:
        ip = None
        if cfg.domain is None:
            nodes = deploy.load_resources(env_dir).get("nodes", {})
            if "k8s-0" not in nodes:
                fail(f"environment {cfg.name!r} has no controller address in {env_dir}; "
                     "run `osception up` or pass --auth-url")
            ip = nodes["k8s-0"]["ip"]
        auth_url = endpoints.auth_url(domain_of(cfg, ip))
    from . import tls

    cacert = None
    ca = tls.client_ca(cfg.tls, sec.tls) if auth_url.startswith("https://") else None
    if ca is not None:
        # clients check the controller's certificate with the environment's own CA, or
        # with tls.ca; a certificate of your own without tls.ca: with the system's CAs
        cacert = state.Layout(env_dir).ca
        state.write_private(cacert, ca)
    return overcloud.Access(auth_url, sec.admin_password, sec.demo_password,
                            str(cacert) if cacert else None)


AuthUrlOpt = Annotated[
    Optional[str], typer.Option("--auth-url", help="The new cloud's Keystone (default: the controller's).")
]
LocalGuestOpt = Annotated[
    bool, typer.Option("--local-guest", help="For a cloud on this machine (which cannot fetch "
                       "CirrOS): the guest made here from Debian packages (`osception devcloud "
                       "guest`) instead of the config's images.")
]


@app.command()
def populate(config: ConfigOpt = None, env: EnvOpt = None, state_dir: StateOpt = None,
             auth_url: AuthUrlOpt = None, local_guest: LocalGuestOpt = False) -> None:
    """Create flavors, images, networks and the demo project in the new cloud (idempotent)."""
    from . import overcloud

    cfg, env_dir, sec, _ = load_environment(config, env, state_dir)
    try:
        local_images = devcloud_cli.guest_images() if local_guest else None
        changes = overcloud.populate(_access(cfg, env_dir, sec, auth_url), cfg, sec.ssh["public"], env_dir,
                                     local_images=local_images)
    except errors.OsceptionError:  # already one line of its own (e.g. no controller address)
        raise
    except Exception as e:  # the new cloud's APIs (openstacksdk, keystoneauth: classes of their own) or the
        # local guest image: whatever fails, one line naming the step, never a traceback
        fail(f"populate: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    for what in changes.made:
        console.print(f"created {what}")
    console.print(f"{len(changes.made)} changes; openrc files in {env_dir}")


@app.command()
def smoke(config: ConfigOpt = None, env: EnvOpt = None, state_dir: StateOpt = None,
          auth_url: AuthUrlOpt = None, local_guest: LocalGuestOpt = False) -> None:
    """Check the new cloud link by link; stop at and name the first broken one."""
    from . import board, overcloud

    cfg, env_dir, sec, _ = load_environment(config, env, state_dir)
    image = devcloud_cli.guest_image_name() if local_guest else None
    checks = overcloud.smoke(_access(cfg, env_dir, sec, auth_url), cfg,
                             cfg.nodes.compute.count, cfg.nodes.network.count, image=image)
    if not board.print_checks(console, checks):
        raise typer.Exit(1)


@app.command()
def tempest(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    state_dir: StateOpt = None,
    smoke: tempest_mod.SmokeOpt = False,
    regex: tempest_mod.RegexOpt = None,
    test_list: tempest_mod.ListOpt = None,
    concurrency: tempest_mod.ConcurrencyOpt = 2,
    compare_runs: tempest_mod.CompareOpt = None,
) -> None:
    """Run upstream's Tempest (pinned per release) against the environment; reports
    (JUnit XML, HTML, subunit) in its state folder under tempest/runs/. The devcloud's:
    `osception devcloud tempest`."""
    run_tempest(*_tempest_target(config, env, state_dir), smoke, regex, test_list, concurrency,
                compare_runs)


def run_tempest(target, access, smoke: bool, regex: str | None, test_list: Path | None,
                concurrency: int, compare_runs: tuple[str, str] | None) -> None:
    """Tempest on a target (an environment, or the devcloud's from `osception devcloud
    tempest`): a run and its summary line (exit 1 when a test failed), or --compare."""
    from . import tempest_results

    try:
        if compare_runs:
            a, b = (tempest_results.outcomes(tempest_mod.find_run(target.home, r)) for r in compare_runs)
            differ = tempest_results.compare(a, b)
            for name, x, y in differ:
                console.print(f"{x:>7} -> {y:<7} {name}", soft_wrap=True)
            console.print(f"A: {tempest_results.summarize(a).line()}")
            console.print(f"B: {tempest_results.summarize(b).line()}")
            console.print(f"{len(differ)} tests differ")
            return
        chosen = [o for o in (smoke, regex, test_list) if o]
        if len(chosen) != 1:
            fail("tempest: say which tests: --smoke, --regex R or --list FILE (one of them)")
        selection = ["--smoke"] if smoke else ["--regex", regex] if regex else ["--load-list", str(test_list.resolve())]
        from . import overcloud
        from .cache import cache_home

        t = target
        tempest_venv = tempest_mod.venv(t.release, cache_home())
        tempest_mod.workspace(t, tempest_venv)
        conf = tempest_mod.configure(t, tempest_mod.facts(t, overcloud.admin_conn(access)))
        run_dir = tempest_mod.run(t, tempest_venv, conf, selection, concurrency, say=console.print)
    except ValueError as e:  # tempest_results: a report that is not JUnit XML (TempestError: the group says it)
        fail(str(e))
    results = tempest_results.outcomes(run_dir / tempest_mod.JUNIT)
    summary = tempest_results.summarize(results)
    groups = tempest_results.by_group(results)
    if len(groups) > 1:
        for group, counts in groups.items():
            console.print(f"  {group}: {counts.line()}")
    console.print(f"tempest {run_dir.name}: {summary.line()}")
    console.print(f"reports   {run_dir / tempest_mod.JUNIT}  {run_dir / tempest_mod.HTML}", soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def _tempest_target(config, env, state_dir):
    """(Target, Access): the environment, with populate's flavors and images."""
    cfg, env_dir, sec, _ = load_environment(config, env, state_dir)
    access = _access(cfg, env_dir, sec, None)
    return tempest_mod.Target(
        cfg.name, releases.get(cfg.release), state.Layout(env_dir).tempest, access.auth_url, sec.admin_password,
        cacert=access.cacert, flavors=tuple(f.name for f in cfg.overcloud.flavors),
        images=tuple(i.name for i in cfg.overcloud.images)), access


@app.command()
def openrc(config: ConfigOpt = None, env: EnvOpt = None, state_dir: StateOpt = None,
           user: Annotated[str, typer.Option(help="admin or demo")] = "admin") -> None:
    """Say which file to source to use the new cloud."""
    cfg, env_dir = environment(config, env, state_dir)
    path = state.Layout(env_dir).openrc(user)
    if user not in ("admin", "demo"):
        fail("--user: admin or demo")
    if not path.exists():
        fail(f"{path} does not exist yet; run `osception populate` (or `up`)")
    console.print(f"source {path}")
    console.print(f"# or: export OS_CLIENT_CONFIG_FILE={state.Layout(env_dir).clouds_yaml} OS_CLOUD={cfg.name}-{user}",
                  highlight=False)


@app.command("releases")
def list_releases() -> None:
    """List the supported OpenStack releases and what this repository's tests prove
    for each (on a machine like its CI's: no outer cloud, no registry)."""
    table = Table()
    for col in ("release", "Kolla images", "nodes", "services (lock)", "Tempest",
                "proven here"):
        table.add_column(col)
    for rel in releases.RELEASES.values():
        mark = " (default)" if rel.name == releases.DEFAULT_RELEASE else ""
        versions = " ".join(f"{p} {v}" for p, v in releases.service_versions(rel.name).items())
        proven = ["oslo validators", "devcloud cloud tests",
                  "Kolla contract" + (" with gaps" if rel.kolla_gaps else "")]
        proven += [f"node chroot run ({source})" for source in rel.node_chroot_runs]
        table.add_row(f"{rel.name} {rel.codename}{mark}", rel.kolla_tag,
                      f"{rel.node_os.name}, {rel.package_source}", versions, rel.tempest_version,
                      ", ".join(proven))
    console.print(table)
    for rel in releases.RELEASES.values():
        if rel.kolla_gaps:
            console.print(f"{rel.name} gaps: {rel.kolla_gaps}", highlight=False)
    # One block per release, components as rows: readable in 100 columns.
    for rel in releases.RELEASES.values():
        table = Table(title=f"{rel.name} {rel.codename}: what a real environment runs",
                      title_justify="left")
        table.add_column("component", no_wrap=True)
        table.add_column("version", no_wrap=True)
        table.add_column("source")
        for c in releases.components(rel):
            table.add_row(c.name, c.version, c.source)
        console.print(table)
    console.print("Not provable here (a real cloud shows them): the Kolla images pulled and run "
                  "by k3s, the nodes' package repositories online (extrepo), the data plane.",
                  highlight=False)


if __name__ == "__main__":
    app()
