"""The progress board `up` and `status` show."""

from datetime import datetime

from rich.console import Console

from osception import board, progress

CONSOLE = """\
OSCEPTION 2026-11-27T10:00:00Z k8s-0 install-k3s started
OSCEPTION 2026-11-27T10:00:31Z k8s-0 install-k3s done
OSCEPTION 2026-11-27T10:01:00Z k8s-0 wait-control-plane started
OSCEPTION 2026-11-27T10:01:31Z k8s-0 wait-control-plane waiting deploy/keystone: ImagePullBackOff quay.io/x [y]
OSCEPTION 2026-11-27T10:01:31Z k8s-0 wait-control-plane waiting deploy/nova-api: init wait: waiting for job/nova-db-sync
OSCEPTION 2026-11-27T10:00:40Z compute-0 packages started
"""


def render(state) -> str:
    out = Console(record=True, width=200)
    out.print(board.table(state, now=datetime(2026, 11, 27, 10, 2, 0)))
    return out.export_text()


def test_the_controller_row_says_what_is_not_ready_and_why():
    text = render(progress.parse(CONSOLE))
    rows = [line for line in text.splitlines() if "deploy/" in line or "wait-control-plane" in line]
    assert "wait-control-plane (started)" in rows[0] and "k8s-0" in rows[0] and "120s" in rows[0]
    assert "deploy/keystone: ImagePullBackOff quay.io/x [y]" in rows[1]  # as is: no markup
    assert "deploy/nova-api: init wait: waiting for job/nova-db-sync" in rows[2]


def test_a_failed_controller_keeps_its_reasons_a_finished_one_does_not():
    failed = render(progress.parse(CONSOLE + (
        "OSCEPTION 2026-11-27T10:21:00Z k8s-0 wait-control-plane failed exit 1: timed out after 1200s\n"
        "OSCEPTION 2026-11-27T10:21:00Z k8s-0 node failed step wait-control-plane failed\n")))
    assert "wait-control-plane: exit 1: timed out after 1200s" in failed
    assert "deploy/keystone: ImagePullBackOff" in failed
    done = render(progress.parse(CONSOLE + (
        "OSCEPTION 2026-11-27T10:09:00Z k8s-0 wait-control-plane done\n"
        "OSCEPTION 2026-11-27T10:09:00Z k8s-0 check-ingress started\n")))
    assert "check-ingress (started)" in done and "deploy/" not in done


def rows(state) -> dict[str, list[str]]:
    """node -> its cells (node, state, step, elapsed), for rows that start a node."""
    cells = [[c.strip() for c in line.split("│")[1:5]] for line in render(state).splitlines()
             if line.count("│") == 5]
    return {c[0]: c for c in cells if c[0]}


def test_elapsed_runs_to_now_while_running_and_stops_at_the_end_when_done():
    state = progress.parse(
        "OSCEPTION 2026-11-27T10:00:00Z compute-0 packages started\n"
        "OSCEPTION 2026-11-27T10:00:10Z compute-0 packages done\n"
        "OSCEPTION 2026-11-27T10:00:10Z compute-0 config started\n"
        "OSCEPTION 2026-11-27T10:00:45Z compute-0 config done\n"
        "OSCEPTION 2026-11-27T10:00:45Z compute-0 node done\n"
        "OSCEPTION 2026-11-27T10:00:30Z network-0 packages started\n")
    state["network-1"] = progress.NodeProgress("network-1")
    row = rows(state)
    assert list(row) == ["compute-0", "network-0", "network-1"]  # sorted by node
    assert row["compute-0"] == ["compute-0", "done", "config (done)", "45s"]
    assert row["network-0"] == ["network-0", "running", "packages (started)", "90s"]  # now: 10:02:00
    assert row["network-1"] == ["network-1", "pending", "waiting for the first line", "-"]


def test_steps_table_gives_each_step_its_duration_and_a_running_one_none():
    out = Console(record=True, width=200)
    out.print(board.steps(progress.parse(CONSOLE)))
    rows = {tuple(c.strip() for c in line.split("│")[1:-1]) for line in out.export_text().splitlines()
            if "│" in line}
    assert ("k8s-0", "install-k3s", "done", "31") in rows
    assert ("k8s-0", "wait-control-plane", "started", "") in rows
    assert ("compute-0", "packages", "started", "") in rows


def test_the_live_board_shows_the_progress_it_is_given_and_stays():
    """One board for `up`, `status --watch` and `apply`: what the block hands it is what
    remains on the screen when the block ends."""
    out = Console(record=True, width=200)
    with board.live(out) as show:
        show(progress.parse(CONSOLE))
    text = out.export_text()
    assert "wait-control-plane (started)" in text and "packages (started)" in text
    assert "waiting for the first line" not in text  # the empty board it started with is gone
