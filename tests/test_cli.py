"""The CLI's conventions without a cloud: exit codes (0 ok, 1 a failed run, 2 bad
input) and a visible message for every failure."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

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


# --- one error base class, said in one place ---------------------------------------------

def _error_classes():
    """Every exception class osception defines, module by module (templates are not imported:
    what they hold runs on the nodes)."""
    import importlib
    import inspect
    import pkgutil

    import osception

    for info in pkgutil.walk_packages(osception.__path__, "osception."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == info.name:
                yield cls


# Exceptions that never reach the user as they are, each with why.
NOT_FOR_THE_USER = {
    "osception.state.DuplicateKey": "a YAMLError for the YAML readers, which turn it into a StateError "
                                    "or a ConfigError naming the file and line",
    "osception.overcloud._Skip": "smoke's own flow: a check skipped, reported as such in its line",
}


def test_every_error_of_osception_derives_from_one_base_carrying_its_exit_code():
    from osception import errors

    found = {f"{c.__module__}.{c.__qualname__}": c for c in _error_classes()}
    assert set(NOT_FOR_THE_USER) <= set(found)  # the reasons above name classes that exist
    ours = {name: c for name, c in found.items() if name not in NOT_FOR_THE_USER}
    assert len(ours) >= 8, sorted(ours)  # config, state, plan, user data, preflight, bake, tempest, devcloud
    for name, cls in ours.items():
        assert issubclass(cls, errors.OsceptionError), name
        assert cls.exit_code in (errors.FAILED, errors.BAD_INPUT), name
    assert (errors.FAILED, errors.BAD_INPUT) == (1, 2)  # the README's table


def test_an_osception_error_from_anywhere_in_a_command_is_said_once_with_its_exit_code(tmp_path, monkeypatch):
    from osception import errors

    class Stuck(errors.OsceptionError):
        exit_code = errors.FAILED
        label = "stuck"

        def lines(self):
            return ["first\x1b[2J", "second"]

    def conn(cfg):
        raise Stuck()

    monkeypatch.setattr(cli, "_conn", conn)
    r = CliRunner().invoke(cli.app, ["list", "--state-dir", str(tmp_path)])
    assert (r.exit_code, r.output) == (1, "stuck: first?[2J\nstuck: second\n")
    assert isinstance(r.exception, SystemExit)  # said, not a crash


def test_a_failure_inside_populate_is_said_once(tmp_path):
    """populate's net for the new cloud's errors lets osception's own through whole: the
    missing controller address is one line, not that line plus `populate: 2`."""
    r = CliRunner().invoke(cli.app, ["populate", "--env", "clitest", "--state-dir", str(tmp_path)])
    assert r.exit_code == 2
    assert r.output.splitlines() == [f"error: environment 'clitest' has no controller address in "
                                     f"{tmp_path / 'clitest'}; run `osception up` or pass --auth-url"]


# --- preflight: each problem one line, in `up` and `bake` alike --------------------------

LONG_NETWORK = "a-provider-network-whose-name-alone-is-wider-than-the-terminal-" + "x" * 40


def _preflight_cloud():
    from tests.test_preflight import QuotaCloud

    cloud = QuotaCloud()
    cloud.networks_.clear()
    cloud.find_flavor = lambda name, ignore_missing=True: next(
        (f for f in cloud.flavors_ if name in (f.name, f.id)), None)
    return cloud


@pytest.mark.parametrize("command", [["up", "--no-follow", "--state-dir", "{home}"], ["bake"]])
def test_each_preflight_problem_is_one_line_however_long(tmp_path, monkeypatch, command):
    cfg = tmp_path / "osception.yaml"
    cfg.write_text(f"name: pf\nnetwork: {LONG_NETWORK}\nnodes: {{controller: {{flavor: big}}, "
                   "compute: {flavor: small}, network: {flavor: small}}\n")
    monkeypatch.setattr(cli, "_conn", lambda cfg: _preflight_cloud())
    args = [a.format(home=tmp_path / "h") for a in command] + ["-c", str(cfg)]
    r = CliRunner().invoke(cli.app, args)
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    assert lines and all(line.startswith("preflight: ") for line in lines), r.output
    assert f"preflight: network: no network {LONG_NETWORK!r}" in [line.split(";")[0] for line in lines]
