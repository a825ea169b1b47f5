"""The CLI's conventions without a cloud: exit codes (0 ok, 1 a failed run, 2 bad
input) and a visible message for every failure."""

from __future__ import annotations

from types import SimpleNamespace

from typer.testing import CliRunner

from osception import cli, deploy, progress


def _up(tmp_path, monkeypatch, final: dict[str, progress.NodeProgress]):
    """`up` against a stand-in cloud: provisioning succeeds, following ends with `final`."""
    monkeypatch.setattr(cli, "_conn", lambda cfg: object())
    monkeypatch.setattr(deploy, "provision", lambda conn, cfg, sec, env_dir, say: SimpleNamespace(
        plan=SimpleNamespace(controller_ip="203.0.113.10", domain="203.0.113.10.sslip.io"),
        servers={name: object() for name in final}))
    monkeypatch.setattr(deploy, "follow", lambda conn, servers, env_dir, on_update, timeout: final)
    return CliRunner().invoke(cli.app, ["up", "--env", "clitest", "--state-dir", str(tmp_path),
                                        "--timeout", "7"])


def _node(name: str, *lines: str) -> progress.NodeProgress:
    text = "\n".join(f"OSCEPTION 2026-11-27T10:00:0{i}Z {name} {line}" for i, line in enumerate(lines))
    return progress.parse(text, node=name).get(name, progress.NodeProgress(name))


def test_up_that_runs_out_of_time_says_which_nodes_and_exits_1(tmp_path, monkeypatch):
    final = {"k8s-0": _node("k8s-0", "k3s started", "k3s done", "node done"),
             "compute-0": _node("compute-0", "install-packages started")}
    r = _up(tmp_path, monkeypatch, final)
    assert r.exit_code == 1
    assert "not finished after 7 s: compute-0 (install-packages)" in r.output
    assert "osception status --watch" in r.output


def test_up_with_a_failed_node_names_it_and_exits_1(tmp_path, monkeypatch):
    final = {"k8s-0": _node("k8s-0", "k3s started", "k3s failed no disk", "node failed k3s")}
    r = _up(tmp_path, monkeypatch, final)
    assert r.exit_code == 1
    assert "k8s-0 failed:" in r.output and "not finished" not in r.output


def test_bad_input_exits_2_and_a_missing_openrc_is_one_line(tmp_path):
    r = CliRunner().invoke(cli.app, ["openrc", "--env", "Bad_Name", "--state-dir", str(tmp_path)])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    r = CliRunner().invoke(cli.app, ["openrc", "--env", "clitest", "--state-dir", str(tmp_path)])
    assert r.exit_code == 2 and "does not exist yet" in r.output
