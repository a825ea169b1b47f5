"""deploy.follow: `up` watching every node's console until each says its last line,
one fails, or time runs out; the board refreshed and timings saved at every look."""

from __future__ import annotations

import json
import stat
import time

from osception import deploy
from osception.state import Layout

T = "2026-11-27T10:00:{:02d}Z"


def line(second: int, node: str, step: str, state: str, message: str = "") -> str:
    return f"[  12.3] cloud-init[901]: OSCEPTION {T.format(second)} {node} {step} {state} {message}\n"


class Consoles:
    """A compute proxy whose console logs grow by one chunk per look."""

    def __init__(self, chunks: dict[str, list[str]]):
        self.chunks, self.looks = chunks, dict.fromkeys(chunks, 0)
        self.compute = self

    def get_server_console_output(self, server):  # one thread per server and look
        self.looks[server] += 1
        return {"output": "".join(self.chunks[server][: self.looks[server]])}


def follow(conn, tmp_path, timeout=600):
    seen = []
    state = deploy.follow(conn, {n: n for n in conn.chunks}, tmp_path, seen.append, timeout, interval=0)
    return state, seen


def test_follows_until_every_node_says_its_last_line(tmp_path):
    conn = Consoles({
        "k8s-0": [line(0, "k8s-0", "k3s", "started"), line(9, "k8s-0", "k3s", "done"),
                  line(9, "k8s-0", "node", "done")],
        "compute-0": [line(1, "compute-0", "packages", "started"),
                      line(5, "compute-0", "packages", "done") + line(5, "compute-0", "node", "done")],
    })
    state, seen = follow(conn, tmp_path)
    assert {n: p.state for n, p in state.items()} == {"k8s-0": "done", "compute-0": "done"}
    assert len(seen) == 3  # looked until the slower node's last line, not once more
    assert [s["k8s-0"].state for s in seen] == ["running", "running", "done"]
    timings = json.loads(Layout(tmp_path).timings.read_text())
    assert timings["k8s-0"]["k3s"] == 9 and timings["compute-0"]["packages"] == 4
    assert stat.S_IMODE(Layout(tmp_path).timings.stat().st_mode) == 0o600


def test_one_failed_node_ends_the_watch_with_its_reason(tmp_path):
    conn = Consoles({
        "k8s-0": [line(0, "k8s-0", "k3s", "started")] * 5,
        "network-0": [line(0, "network-0", "ovs", "started"),
                      line(3, "network-0", "ovs", "failed", "exit 1: no br-ex")] + [""] * 3,
    })
    state, seen = follow(conn, tmp_path)
    assert len(seen) == 2
    assert state["network-0"].state == "failed" and state["network-0"].reason == "ovs: exit 1: no br-ex"
    assert state["k8s-0"].state == "running"


def test_time_running_out_returns_what_is_known(tmp_path):
    conn = Consoles({"k8s-0": [line(0, "k8s-0", "k3s", "started")] * 1000, "compute-0": [""] * 1000})
    start = time.monotonic()
    state, seen = follow(conn, tmp_path, timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 30
    assert seen and seen[-1] == state
    assert {n: p.state for n, p in state.items()} == {"k8s-0": "running", "compute-0": "pending"}
