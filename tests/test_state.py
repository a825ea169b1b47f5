"""State that never silently changes: secrets made once, changed only on request, one
command at a time per environment, files written where nobody else can interfere."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from osception import config, render, secrets, state
from osception.cli import app
from osception.render.checks import check, check_file
from osception.render.conf import secret_values
from tests import pods

ROOT = Path(__file__).resolve().parents[1]


def _plan(home: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["plan", "--state-dir", str(home), "--out", str(out), *extra])


def _admin(home: Path) -> str:
    return yaml.safe_load((home / "osception" / "secrets.yaml").read_text())["admin_password"]


def test_secrets_change_only_on_the_explicit_flag(tmp_path):
    home = tmp_path / "home"
    env = home / "osception"
    assert _plan(home, tmp_path / "a").exit_code == 0
    first, key = _admin(home), (env / "ssh" / "id_ed25519").read_text()
    assert _plan(home, tmp_path / "b").exit_code == 0
    assert _admin(home) == first

    result = _plan(home, tmp_path / "c", secrets.REGENERATE)
    assert result.exit_code == 0, result.output
    assert _admin(home) != first
    assert (env / "ssh" / "id_ed25519").read_text() != key
    # The old secrets and key are kept aside, never deleted or overwritten, and it says where.
    kept = sorted(p.name for p in env.iterdir() if p.name.startswith(("secrets.yaml.", "ssh.")))
    assert len(kept) == 2, kept
    assert _admin_of(env / kept[0]) == first and (env / kept[1] / "id_ed25519").read_text() == key
    assert "kept the old secrets.yaml as" in result.output
    # It also repairs a damaged environment: the damaged file is what is kept aside.
    (env / "secrets.yaml").write_text("admin_password: [")
    assert _plan(home, tmp_path / "d").exit_code == 2
    assert _plan(home, tmp_path / "e", secrets.REGENERATE).exit_code == 0
    assert _plan(home, tmp_path / "f").exit_code == 0


def _admin_of(path: Path) -> str:
    return yaml.safe_load(path.read_text())["admin_password"]


def test_a_secret_missing_from_the_file_is_never_made_again(tmp_path):
    env = tmp_path / "osception"
    secrets.ensure(env, "osception")
    data = yaml.safe_load((env / "secrets.yaml").read_text())
    data.pop("skyline_secret_key"), data["service_users"].pop("nova")
    state.write_private(env / "secrets.yaml", yaml.safe_dump(data))
    before = (env / "secrets.yaml").read_bytes()
    with pytest.raises(state.StateError, match="service_users.nova: missing"):
        secrets.ensure(env, "osception")
    assert (env / "secrets.yaml").read_bytes() == before


def test_racing_first_uses_all_get_the_same_secrets(tmp_path, monkeypatch):
    """Even without the CLI's lock: of several processes making an environment's secrets at
    once, one file wins and all use it. The generator is slowed down to widen the race."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = secrets._wanted
    monkeypatch.setattr(secrets, "_wanted", lambda env, *more: (time.sleep(0.3), wanted(env, *more))[1])
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda _: secrets.ensure(tmp_path / "e", "e").admin_password, range(6)))
    assert len(set(made)) == 1
    assert made[0] == secrets.ensure(tmp_path / "e", "e").admin_password


def _spawn_plan(home: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "osception.cli", "plan", "--state-dir", str(home), "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


PLANS = 4  # processes: enough to race (they wait for each other: asserted), each one costs a second


def test_concurrent_plans_on_a_fresh_environment_agree_on_the_secrets(tmp_path):
    """Before the lock: 10 concurrent plans wrote up to 3 different admin passwords."""
    home = tmp_path / "home"
    procs = [_spawn_plan(home, tmp_path / f"out{i}") for i in range(PLANS)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    # They did run at once: some found the environment's lock taken.
    assert any("waiting for another osception command" in err for _, err in results), results
    passwords = {line for i in range(PLANS)
                 for line in (tmp_path / f"out{i}/k8s-0/manifests/01-secrets.yaml").read_text().splitlines()
                 if "admin-password:" in line}
    assert len(passwords) == 1
    assert passwords == {f'  admin-password: "{_admin(home)}"'}
    assert not [p for p in (home / "osception").rglob("*.tmp")]


def test_a_second_command_waits_for_the_lock_and_says_so(tmp_path):
    home = tmp_path / "home"
    with state.lock(home / "osception"):
        proc = _spawn_plan(home, tmp_path / "out")
        assert "waiting for another osception command on" in proc.stderr.readline()
        time.sleep(1)
        assert proc.poll() is None, "plan did not wait for the lock"
        assert not (home / "osception" / "secrets.yaml").exists()
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert (home / "osception" / "secrets.yaml").exists()


def test_plan_out_never_follows_a_planted_symlink_or_temporary_file(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    victim_private, victim_public = tmp_path / "stolen", tmp_path / "bashrc"
    victim_public.write_text("mine\n")
    (out / "k8s-0" / "manifests").mkdir(parents=True)
    (out / "k8s-0" / "user-data").symlink_to(victim_private)           # would receive the secrets
    (out / "k8s-0" / "user-data.tmp").symlink_to(victim_private)       # the old fixed temporary name
    (out / "k8s-0" / "manifests" / "33-nova.yaml").symlink_to(victim_public)  # would be overwritten
    result = _plan(home, out)
    assert result.exit_code == 0, result.output
    assert not victim_private.exists()
    assert victim_public.read_text() == "mine\n"
    user_data = out / "k8s-0" / "user-data"
    assert not user_data.is_symlink() and stat.S_IMODE(user_data.stat().st_mode) == 0o600
    assert not (out / "k8s-0" / "manifests" / "33-nova.yaml").is_symlink()
    assert not [p for p in out.rglob(".*.tmp")]


def test_private_files_are_made_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        state.write_private(tmp_path / "p" / "f", "x")
        state.write_file(tmp_path / "p" / "g", "x", 0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p" / "f").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "p" / "g").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "p").stat().st_mode) == 0o700


def test_user_text_is_never_rich_markup(tmp_path):
    out = tmp_path / "[bold]x[/bold]"
    result = _plan(tmp_path / "home", out)
    assert result.exit_code == 0, result.output
    assert "[bold]x[/bold]" in result.output.replace("\n", "")


# Injections that get past the config's validation (here: by building the models without it)
# end as one line where they are rendered (a line break where one line goes), which `plan`
# and `up` both run, before the parse-back.
INJECTIONS = [
    ({"overrides": {"nova.conf": {"DEFAULT": {"debug": "true\n[database]\nconnection = x"}}}},
     "overrides.nova.conf.DEFAULT.debug: a line break"),
    ({"overrides": {"neutron.conf": {"DEFAULT": {"debug": "true\ndebug = false"}}}},
     "overrides.neutron.conf.DEFAULT.debug: a line break"),
    ({"overrides": {"keystone.conf": {"DEFAULT": {"debug": "true\n}{"}}}}, "overrides.keystone.conf.DEFAULT.debug"),
]


@pytest.mark.parametrize("values,expected", INJECTIONS)
def test_an_injection_past_validation_ends_as_one_line(default_secrets, values, expected):
    cfg = config.Config.model_construct(**{**dict(config.Config()), **values})
    with pytest.raises(render.PlanError) as exc:
        render.build(cfg, default_secrets)
    assert expected in str(exc.value) and "\n" not in str(exc.value)
    assert all(v not in str(exc.value) for v in secret_values(default_secrets))


# An image name is one JSON string in the manifest (render's `image`): YAML structure in it
# stays in the name (kubelet refuses to pull it), never in the pod.
IMAGE_INJECTIONS = [
    ("nova-api", "x:1\n          securityContext: {privileged: true}", "k8s-0/manifests/33-nova.yaml"),
    ("keystone", "x:1\n          image: evil:1", "k8s-0/manifests/20-keystone.yaml"),
    ("keystone", "x:1\", \"privileged\": true, \"y\": \"", "k8s-0/manifests/20-keystone.yaml"),
]


@pytest.mark.parametrize("service,image,manifest", IMAGE_INJECTIONS)
def test_an_image_name_past_validation_arrives_as_data(default_secrets, service, image, manifest):
    cfg = config.Config.model_construct(**{**dict(config.Config()), "images": {service: image}})
    plan = render.build(cfg, default_secrets)
    containers = [c for _, spec in pods.pod_specs(yaml.safe_load_all(plan.files[manifest]))
                  for c in pods.containers(spec)]
    assert image in [c["image"] for c in containers]
    assert not any("evil" in c["image"] and c["image"] != image for c in containers)
    assert not any(c.get("securityContext", {}).get("privileged") for c in containers)


def test_every_rendered_file_of_the_defaults_parses_back(default_plan):
    check(default_plan)  # raises on the first that does not
    unchecked = [r for r in default_plan.files if not check_file(r, default_plan.files[r])]
    assert all(r.endswith((".py", ".sh")) for r in unchecked), unchecked  # scripts: shellcheck's
    assert len(default_plan.files) - len(unchecked) > 40


# --- the state folder's layout: its paths named once ---------------------------------------

def test_plan_writes_the_state_folder_its_layout_names(tmp_path):
    """A new environment's folder after `plan` holds exactly the layout's secrets, SSH key
    pair and plan, with their modes."""
    home = tmp_path / "h"
    r = CliRunner().invoke(app, ["plan", "--state-dir", str(home)])
    assert r.exit_code == 0, r.output
    paths = state.Layout.of("osception", home)
    found = {p for p in paths.root.rglob("*") if paths.plan not in p.parents}
    assert found == {paths.secrets, paths.ssh, paths.ssh_key, paths.ssh_public_key, paths.plan}
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in (paths.secrets, paths.ssh_key, paths.ssh_public_key)} == {
        paths.secrets: 0o600, paths.ssh_key: 0o600, paths.ssh_public_key: 0o644}
    assert (paths.plan / "k8s-0" / "user-data").is_file()
    assert paths.known_hosts.parent == paths.ssh  # kept aside with the key pair on --regenerate-secrets


# The file names of an environment's state folder, as a module would spell them by hand.
STATE_NAMES = ("id_ed25519", "ssh/known_hosts", "resources.json", "timings.json", "secrets.yaml", "openrc-")
# Modules that may still spell one, each with why.
SPELLED_ELSEWHERE = {
    "osception/state.py": "the layout itself",
}


def _strings(tree):
    """Every string constant of a module but its docstrings (prose may name the files)."""
    import ast

    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value


def test_no_module_spells_a_path_of_the_state_folder_but_the_layout():
    import ast

    package = ROOT / "osception"
    spelled = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("osception/templates/") or any(
                rel == where or rel.startswith(where + "/") or rel == where + ".py" for where in SPELLED_ELSEWHERE):
            continue
        for text in _strings(ast.parse(path.read_text())):
            if any(name in text for name in STATE_NAMES):
                spelled.setdefault(rel, []).append(text)
    assert spelled == {}
