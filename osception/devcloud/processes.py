"""Start, watch and stop the devcloud's processes by their own pids, never by name.

Every process starts in its own session (so its pid is also its process group id)
with stdout+stderr going to logs/<name>.log, and gets a record in run/<name>.json:
pid, the kernel's start time of that pid (so a recycled pid is never mistaken for
ours) and a fingerprint of its command line and config files (so `up` restarts
a process whose config changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FAILED, OsceptionError
from .layout import HOST, Layout


class DevcloudError(OsceptionError, RuntimeError):
    """A problem told in one line (plus, for a failed service, the end of its log)."""

    exit_code = FAILED  # the devcloud's processes did not come up: a run that failed


@dataclass
class Spec:
    name: str
    argv: list[str]
    port: int | None = None  # must be free before the start
    env: dict[str, str] = field(default_factory=dict)
    config: list[Path] = field(default_factory=list)  # a change restarts the process
    ready: Callable[[], bool] | None = None  # default: the port accepts connections
    cwd: Path | None = None

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([self.argv, sorted(self.env.items())]).encode())
        for path in sorted(self.config):
            h.update(str(path).encode())
            h.update(path.read_bytes() if path.is_file() else b"-")
        return h.hexdigest()

    def is_ready(self) -> bool:
        if self.ready is not None:
            return self.ready()
        return self.port is None or port_open(self.port)


def port_taken(spec: Spec) -> DevcloudError:
    return DevcloudError(
        f"port {spec.port} ({spec.name}) is already in use by another program; "
        f"free it (see `ss -ltnp 'sport = :{spec.port}'`) and run `up` again")


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # [state, ppid, pgrp, ..., starttime at 19]


def _alive(pid: int, start_time: str | None = None) -> bool:
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or fields[19] == start_time


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, found through /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def _reap(pid: int) -> None:
    try:  # our own child (started by this same command): collect its exit status
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class Processes:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.started: dict[str, subprocess.Popen] = {}  # by this command, for fast failure reports

    def record(self, name: str) -> dict | None:
        path = self.layout.record(name)
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and "pid" in rec else None

    def running(self, name: str) -> bool:
        rec = self.record(name)
        return rec is not None and _alive(rec["pid"], rec["start_time"])

    def current(self, spec: Spec) -> bool:
        """Running, and started with this very command line and config."""
        rec = self.record(spec.name)
        return self.running(spec.name) and rec.get("fingerprint") == spec.fingerprint()

    def start(self, spec: Spec) -> None:
        if spec.port is not None and port_open(spec.port):
            raise port_taken(spec)
        log_path = self.layout.log(spec.name)
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%F %T')} start: {' '.join(spec.argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                spec.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env}, cwd=spec.cwd or self.layout.root,
                start_new_session=True,  # own process group: stopped as one, by its id
            )
        fields = _stat(proc.pid)
        start_time = fields[19] if fields else None
        self.layout.record(spec.name).write_text(json.dumps({
            "pid": proc.pid, "start_time": start_time, "argv": spec.argv,
            "fingerprint": spec.fingerprint(),
        }))
        self.started[spec.name] = proc

    def stop(self, names: list[str], grace: float = 20) -> None:
        """SIGTERM the process groups of `names` together, SIGKILL what outlives `grace`."""
        groups = {}
        for name in names:
            rec = self.record(name)
            if rec and _alive(rec["pid"], rec["start_time"]):
                groups[name] = rec["pid"]
                _signal_group(rec["pid"], signal.SIGTERM)
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            for name, pgid in list(groups.items()):
                _reap(pgid)
                if not _group_members(pgid):
                    del groups[name]
            time.sleep(0.2)
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGKILL)
            for _ in range(50):
                _reap(pgid)
                if not _group_members(pgid):
                    break
                time.sleep(0.1)
        for name in names:
            self.layout.record(name).unlink(missing_ok=True)
            self.started.pop(name, None)

    def wait_ready(self, specs: list[Spec], timeout: float) -> None:
        """Until every spec is ready; a process that exits or stays unready fails by name."""
        pending = {s.name: s for s in specs}
        deadline = time.monotonic() + timeout
        while pending:
            for name, spec in list(pending.items()):
                if not self.running(name):
                    proc = self.started.get(name)
                    code = f" (exit code {proc.poll()})" if proc and proc.poll() is not None else ""
                    raise self.failure(name, f"{name} exited during its start{code}")
                if spec.is_ready():
                    del pending[name]
            if pending and time.monotonic() > deadline:
                name = next(iter(pending))
                raise self.failure(name, f"{name} did not become ready within {timeout:.0f} s")
            time.sleep(0.3)

    def failure(self, name: str, message: str, lines: int = 25) -> DevcloudError:
        log = self.layout.log(name)
        return DevcloudError(f"{message}; end of {log}:\n{tail(log, lines)}")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
