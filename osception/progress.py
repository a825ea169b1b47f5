"""The progress contract: how a node tells the world what it is doing.

Each setup step of every node prints one line to the serial console (and to
/var/log/osception/progress.log), in this fixed format:

    OSCEPTION <timestamp> <node> <step> <state> [<message>]

    timestamp  UTC, ISO 8601, seconds: 2026-11-27T10:20:07Z
    node       the node name: k8s-0, compute-1 ...
    step       [a-z0-9-]+, the step name; the reserved step `node` is the final line
    state      started | done | failed | waiting
    message    optional free text to the end of the line (on failed: the reason)

A running step may say what it is waiting for: a report of `waiting` lines, all with
the same timestamp, one per thing not ready (the controller names each workload of
the control plane that is not ready and why). A report replaces the step's previous
one; a step that ends `done` drops it, one that `failed` keeps it.
The last line of a node is `... <node> node done` or `... <node> node failed <reason>`.
The console-log API of the outer cloud returns the serial console, so `up` can
follow every node without SSH. Lines may come with a prefix (a kernel timestamp,
`cloud-init[123]:`) and may repeat; the parser is tolerant of both.
The shell side of the contract is templates/scripts/osception-step.sh.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

MARK = "OSCEPTION"
FINAL_STEP = "node"
STATES = ("started", "done", "failed", "waiting")

LINE = re.compile(
    rf"{MARK} (?P<ts>\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<node>[a-z0-9-]+) "
    rf"(?P<step>[a-z0-9-]+) (?P<state>{'|'.join(STATES)})(?: (?P<message>.*?))?\s*$"
)


@dataclass(frozen=True)
class Event:
    ts: datetime
    node: str
    step: str
    state: str
    message: str = ""


@dataclass
class Step:
    name: str
    started: datetime | None = None
    ended: datetime | None = None
    state: str = "started"
    message: str = ""
    notes: list[str] = field(default_factory=list)  # the last `waiting` report
    noted: datetime | None = None  # its timestamp

    @property
    def seconds(self) -> float | None:
        if self.started and self.ended:
            return (self.ended - self.started).total_seconds()
        return None


@dataclass
class NodeProgress:
    node: str
    steps: list[Step] = field(default_factory=list)
    state: str = "pending"  # pending | running | done | failed
    reason: str = ""

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps else None


def parse_line(line: str) -> Event | None:
    m = LINE.search(line.rstrip("\r\n"))
    if not m:
        return None
    ts = datetime.strptime(m["ts"], "%Y-%m-%dT%H:%M:%SZ")
    return Event(ts, m["node"], m["step"], m["state"], (m["message"] or "").strip())


def parse(console: str, node: str | None = None) -> dict[str, NodeProgress]:
    """Fold a console log into per-node progress. Duplicate lines count once."""
    seen: set[Event] = set()
    out: dict[str, NodeProgress] = {}
    for raw in console.splitlines():
        ev = parse_line(raw)
        if ev is None or ev in seen or (node is not None and ev.node != node):
            continue
        seen.add(ev)
        prog = out.setdefault(ev.node, NodeProgress(ev.node))
        if ev.step == FINAL_STEP:
            if ev.state in ("done", "failed"):
                prog.state, prog.reason = ev.state, ev.message
            continue
        step = next((s for s in reversed(prog.steps) if s.name == ev.step), None)
        if ev.state == "started" or step is None:
            step = Step(ev.step, started=ev.ts)
            prog.steps.append(step)
        if ev.state == "waiting":
            if step.noted is None or ev.ts > step.noted:
                step.notes, step.noted = [], ev.ts
            if ev.ts == step.noted:
                step.notes.append(ev.message)
        elif ev.state != "started":
            step.ended, step.state, step.message = ev.ts, ev.state, ev.message
            if ev.state == "done":
                step.notes = []
        if prog.state not in ("done", "failed"):
            prog.state = "failed" if ev.state == "failed" else "running"
            if ev.state == "failed":
                prog.reason = f"{ev.step}: {ev.message}".rstrip(": ")
    return out


def timings(prog: NodeProgress) -> dict[str, float]:
    """Seconds per finished step, for the environment's state."""
    return {s.name: s.seconds for s in prog.steps if s.seconds is not None}


class Laps:
    """Seconds per phase of a command run here (`up`'s provisioning, `devcloud up`), for
    its summary and state."""

    def __init__(self, digits: int = 1):
        self.digits = digits
        self.start = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, self.digits)
        self.last = now

    def total(self) -> float:
        return round(time.monotonic() - self.start, self.digits)
