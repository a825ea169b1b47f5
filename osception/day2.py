"""`osception apply`: bring a running environment to the plan its config renders now.

    render (the same secrets, the addresses and MTU `up` recorded)
    -> what differs from the plan last applied (applied/): the controller's Kubernetes
       objects (and the workloads that roll: render.rollout.day2 puts the checksum of what each
       pod reads in its template), and each node's files
    -> --diff: print that and stop
    -> over SSH with the environment's key: the controller first (its new files, then
       `osception-setup apply`: kubectl apply, wait for the Jobs and every roll-out),
       then every node whose files changed, in parallel (`setup apply`: the Ansible
       config pass, whose handlers restart only the services whose files changed, and
       the patch pass, which restarts only a project whose code changed)
    -> applied/ is the new plan.

Setup stays cloud-init's; this is day 2 only. Each node's files are the write_files of
its user data, the very ones cloud-init wrote, sent as one tar over the SSH session
(never through a file on this machine). A failure leaves applied/ as it was: the next
`apply` redoes the same changes (every pass is idempotent).
"""

from __future__ import annotations

import base64
import gzip
import io
import shlex
import shutil
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from . import progress, render
from .state import Layout, write_file
from .render.layout import NODE_ETC

CONTROLLER = "k8s-0"
MANIFESTS = f"{CONTROLLER}/manifests/"
# What runs the day-2 pass on each kind of node (its path in the user data's write_files).
SETUP = {"controller": "/usr/local/sbin/osception-setup", "node": f"{NODE_ETC}/setup"}


def unpack_command(dest: str = "/", python: str = "python3") -> str:
    """Unpack the tar on stdin into `dest` with Python's data filter: no member outside
    it, no device, modes as given minus group/other write."""
    code = ("import sys, tarfile; "
            f"tarfile.open(fileobj=sys.stdin.buffer, mode='r|*').extractall({dest!r}, filter='data')")
    return f"umask 077 && {shlex.quote(python)} -c {shlex.quote(code)}"


@dataclass(frozen=True)
class File:
    content: bytes
    mode: int
    append: bool = False  # cloud-init appends it (/etc/hosts): first boot only


def write_files(user_data: str) -> dict[str, File]:
    """The files cloud-init's write_files writes from this user data, by path."""
    out = {}
    for f in yaml.safe_load(user_data).get("write_files", []):
        data = f.get("content", "")
        encoding = f.get("encoding")
        if encoding == "gz+b64":
            raw = gzip.decompress(base64.b64decode(data))
        elif encoding == "b64":
            raw = base64.b64decode(data)
        else:
            raw = data.encode()
        out[f["path"]] = File(raw, int(f.get("permissions", "0644"), 8), bool(f.get("append")))
    return out


def _objects(files: dict[str, str]) -> dict[str, dict]:
    """{Kind/name: document} of the controller's manifests."""
    out = {}
    for path, text in sorted(files.items()):
        if path.startswith(MANIFESTS):
            for doc in yaml.safe_load_all(text):
                if doc:
                    out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


@dataclass
class Changes:
    objects: dict[str, str] = field(default_factory=dict)  # Kind/name -> added|changed|removed
    rolls: list[str] = field(default_factory=list)  # workloads whose pods are replaced
    nodes: dict[str, list[str]] = field(default_factory=dict)  # node -> its changed files

    @property
    def empty(self) -> bool:
        return not self.objects and not self.nodes

    def lines(self) -> list[str]:
        out = []
        for name, how in self.objects.items():
            out.append(f"controller: {how} {name}")
        if self.rolls:
            out.append(f"controller: rolls {', '.join(self.rolls)}")
        for node, paths in self.nodes.items():
            if node != CONTROLLER or not self.objects:
                out.append(f"{node}: {len(paths)} file(s) changed: {', '.join(paths)}")
        return out or ["nothing to apply: the environment has this plan"]


def _key_of_job(name: str) -> str:
    """A Job's name without the hash of its spec (render.rollout.day2): keystone-bootstrap."""
    head, _, tail = name.rpartition("-")
    return head if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else name


def diff(old: dict[str, str], new: render.Plan) -> Changes:
    """What applying `new` over the plan `old` (its files) changes."""
    changes = Changes()
    before, after = _objects(old), _objects(new.files)
    # A Job of a changed spec is a new Job (its name carries the spec's hash): a change
    # of that Job, and kubectl apply --prune removes the old one.
    jobs_before = {_key_of_job(n): n for n in before if n.startswith("Job/")}
    for name in sorted(after.keys() | before.keys()):
        if name.startswith("Job/") and _key_of_job(name) in jobs_before and name not in before:
            changes.objects[name] = "changed"
        elif name.startswith("Job/") and name not in after and any(
                _key_of_job(n) == _key_of_job(name) for n in after if n.startswith("Job/")):
            continue  # the same Job, renamed: counted once, above
        elif name not in before:
            changes.objects[name] = "added"
        elif name not in after:
            changes.objects[name] = "removed"
        elif before[name] != after[name]:
            changes.objects[name] = "changed"
    changes.rolls = [n for n, how in changes.objects.items()
                     if how == "changed" and n.split("/")[0] in ("Deployment", "StatefulSet")
                     and before[n]["spec"]["template"] != after[n]["spec"]["template"]]
    for node in new.nodes:
        rel = f"{node.name}/user-data"
        if rel not in old:
            changes.nodes[node.name] = ["(new node: `osception up` creates it)"]
            continue
        was, now = write_files(old[rel]), write_files(new.files[rel])
        changed = sorted(p for p in was.keys() | now.keys()
                         if was.get(p) != now.get(p) and not (now.get(p) or was[p]).append)
        if changed:  # the controller's: its manifests' archive (objects above) and others
            changes.nodes[node.name] = changed
    return changes


def bundle(user_data: str) -> bytes:
    """The node's files as a tar (paths relative to /), without those cloud-init appends."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, f in sorted(write_files(user_data).items()):
            if f.append:
                continue
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(f.content), f.mode, int(time.time())
            tar.addfile(info, io.BytesIO(f.content))
    return buf.getvalue()


def remote_command(node: str) -> str:
    """On the node, as root: its files in, then its setup script's day-2 pass, with the
    progress lines on stdout too."""
    setup = SETUP["controller" if node == CONTROLLER else "node"]
    return f"{unpack_command()} && OSCEPTION_ECHO=1 {setup} apply"


def run_on(node: str, ssh_argv: list[str], user_data: str,
           on_line: Callable[[str], None], become: tuple[str, ...] = ("sudo",)) -> progress.NodeProgress:
    """The node's day-2 pass over SSH: its files in, `setup apply`, progress lines out.
    (`ssh_argv`: anything that runs the rest of the line on the node; the devcloud's
    nodes are entered with nsenter, as root: no `become`.)"""
    proc = subprocess.Popen([*ssh_argv, *become, "sh", "-c", remote_command(node)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(bundle(user_data))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the remote side ended early: its output says why
    seen, last = [], ""
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if progress.parse_line(line):
            seen.append(line)
            on_line(line)
        elif line.strip():
            last = line.strip()
    code = proc.wait()
    state = progress.parse("\n".join(seen), node=node).get(node, progress.NodeProgress(node))
    if code and state.state != "failed":
        state.state, state.reason = "failed", f"ssh exit {code}: {last[:200]}"
    return state


def apply(plan: render.Plan, changes: Changes, ssh_argv: Callable[[str], list[str]],
          on_update: Callable[[dict[str, progress.NodeProgress]], None]) -> dict[str, progress.NodeProgress]:
    """The controller (when its objects changed), then the changed nodes in parallel."""
    lines: dict[str, list[str]] = {}
    board: dict[str, progress.NodeProgress] = {}

    def line(node: str, text: str) -> None:
        lines.setdefault(node, []).append(text)
        board[node] = progress.parse("\n".join(lines[node]), node=node).get(node, progress.NodeProgress(node))
        on_update(dict(board))

    def one(node: str) -> tuple[str, progress.NodeProgress]:
        return node, run_on(node, ssh_argv(node), plan.files[f"{node}/user-data"], lambda t: line(node, t))

    if CONTROLLER in changes.nodes:
        node, state = one(CONTROLLER)
        board[node] = state
        on_update(dict(board))
        if state.state != "done":
            return board
    with ThreadPoolExecutor(max_workers=8) as pool:
        for node, state in pool.map(one, [n for n in changes.nodes if n != CONTROLLER
                                          and f"{n}/user-data" in plan.files]):
            board[node] = state
    on_update(dict(board))
    return board


def record_created(plan: render.Plan, env_dir: Path) -> None:
    """After `up` made the servers: the files of nodes it created (those not recorded
    yet; a node `up` found running keeps what it was given)."""
    had = applied(env_dir)
    if had is None:
        record(plan, env_dir)
        return
    new = {n.name for n in plan.nodes if f"{n.name}/user-data" not in had}
    for rel, text in plan.files.items():
        if rel.split("/", 1)[0] in new:
            write_file(Layout(env_dir).applied / rel, text, plan.mode(rel), dir_mode=0o755)


def record(plan: render.Plan, env_dir: Path) -> None:
    """The plan the environment now has (after `up` rendered it, after `apply` did it)."""
    shutil.rmtree(Layout(env_dir).applied, ignore_errors=True)  # no file of an older plan stays
    render.write(plan, Layout(env_dir).applied)


def applied(env_dir: Path) -> dict[str, str] | None:
    folder = Layout(env_dir).applied
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}

