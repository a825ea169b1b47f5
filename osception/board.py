"""The live progress board: one row per node, its current step and elapsed time; and
the per-step timings `status` prints under it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from rich.table import Table
from rich.text import Text

from .progress import NodeProgress

STYLE = {"pending": "dim", "running": "yellow", "done": "green", "failed": "bold red"}


def table(state: dict[str, NodeProgress], now: datetime | None = None) -> Table:
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    t = Table(show_header=True, header_style="bold")
    for col in ("node", "state", "step", "elapsed"):
        t.add_column(col)
    for node, prog in sorted(state.items()):
        step = prog.current
        started = prog.steps[0].started if prog.steps else None
        end = step.ended if (prog.state in ("done", "failed") and step and step.ended) else now
        elapsed = f"{int((end - started).total_seconds())}s" if started else "-"
        label = Text(f"{step.name} ({step.state})" if step else "waiting for the first line")
        if prog.state == "failed":
            label = Text(prog.reason)
            if step and step.state == "failed" and step.message and step.message not in prog.reason:
                label.append(f"\n{step.name}: {step.message}")
        if step and step.notes and prog.state != "done":  # what the step waits for, and why
            label.append("".join(f"\n  {n}" for n in step.notes), style="dim")
        t.add_row(node, Text(prog.state, style=STYLE[prog.state]), label, elapsed)  # no markup anywhere
    return t


@contextlib.contextmanager
def live(console) -> Iterator[Callable[[dict[str, NodeProgress]], None]]:
    """The board on `console` while the block runs (`up`, `status --watch`, `apply`),
    redrawn once a second; the block is given the function that takes the nodes'
    progress as it changes. The last board stays on the screen."""
    from rich.live import Live

    with Live(table({}), console=console, refresh_per_second=1) as shown:
        yield lambda state: shown.update(table(state))


def steps(state: dict[str, NodeProgress]) -> Table:
    """Every step of every node with its state and duration (a running step: blank), as
    read from the consoles: where a node spent its time."""
    t = Table(show_header=True, header_style="bold")
    for col in ("node", "step", "state", "seconds"):
        t.add_column(col)
    for node, prog in sorted(state.items()):
        for step in prog.steps:
            secs = f"{step.seconds:.0f}" if step.seconds is not None else ""
            t.add_row(node, step.name, Text(step.state, style=STYLE.get(step.state, "")), secs)
    return t


CHECK_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def print_checks(console, checks) -> bool:
    """smoke's checks, one line each (`osception smoke`, `osception devcloud smoke`);
    True when none failed."""
    for c in checks:
        console.print(Text.assemble((f"{c.status:4}", CHECK_STYLE[c.status]),
                                    f" {c.name:18} {c.seconds:6.1f}s  {c.detail}"), highlight=False)
    return not any(c.status == "fail" for c in checks)
