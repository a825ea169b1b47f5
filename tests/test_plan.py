"""`osception plan`: layout, determinism, secrets on disk, the CLI."""

from __future__ import annotations

import re
import stat

import yaml
import typer
from typer.testing import CliRunner

from osception import config, render, secrets
from osception.cli import app
from osception.render import checks
from osception.render.checks import user_data_size
from osception.render.conf import secret_values

NODES = ["k8s-0", "compute-0", "compute-1", "network-0", "network-1"]


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_twice_gives_identical_files(tmp_path):
    runner = CliRunner()
    home = tmp_path / "home"
    for out in ("a", "b"):
        result = runner.invoke(app, ["plan", "--out", str(tmp_path / out), "--state-dir", str(home)])
        assert result.exit_code == 0, result.output
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b and len(a) > 20


def test_layout_of_plan_out(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "o"), "--state-dir", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "o"
    assert sorted(p.name for p in out.iterdir()) == sorted(NODES)
    assert (out / "k8s-0" / "user-data").read_text().startswith("#cloud-config\n")
    manifests = sorted(p.name for p in (out / "k8s-0" / "manifests").iterdir())
    assert manifests[0] == "00-namespace.yaml" and "33-nova.yaml" in manifests
    assert (out / "k8s-0" / "config" / "nova.conf").exists()
    # Files with secrets are private.
    for rel in ("k8s-0/user-data", "k8s-0/manifests/01-secrets.yaml", "k8s-0/config/nova.secret.conf"):
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o600, rel
    assert stat.S_IMODE((out / "k8s-0/manifests/33-nova.yaml").stat().st_mode) == 0o644
    # The summary names release, services and where the files went.
    assert "2026.2" in result.output and "keystone" in result.output and str(out) in result.output.replace("\n", "")


def test_secrets_are_generated_once_private_and_never_printed(tmp_path):
    home = tmp_path / "h"
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "o"), "--state-dir", str(home)])
    env = home / "osception"
    data = yaml.safe_load((env / "secrets.yaml").read_text())
    assert stat.S_IMODE((env / "secrets.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((env / "ssh" / "id_ed25519").stat().st_mode) == 0o600
    assert (env / "ssh" / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    assert data["ssh"]["private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    for value in secret_values(secrets.Secrets(data)):
        assert value not in result.output
    # Every password differs: nothing shared between users or services.
    flat = [data["admin_password"], data["rabbitmq_password"], data["metadata_secret"],
            *data["database"].values(), *data["database_root"].values(), *data["service_users"].values()]
    assert len(set(flat)) == len(flat) and all(len(p) >= 32 for p in flat)
    assert len(data["keystone_fernet_keys"]) == 2
    assert set(data["keystone_fernet_keys"]).isdisjoint(data["keystone_credential_keys"])
    # A second run keeps them.
    again = secrets.ensure(env, "osception")
    assert again.data == data


def test_two_environments_get_different_secrets(tmp_path):
    a = secrets.ensure(tmp_path / "a", "a")
    b = secrets.ensure(tmp_path / "b", "b")
    assert a.admin_password != b.admin_password
    assert a.ssh["public"] != b.ssh["public"]
    assert a.migration_ssh["private"] != b.migration_ssh["private"]
    shown = repr(a) + str(a)
    assert not [v for v in (a.admin_password, *a.database.values(), a.ssh["private"]) if v in shown]
    assert shown.startswith("Secrets(admin_password, ")  # the keys, never a value


def test_state_dir_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("OSCEPTION_HOME", str(tmp_path / "envhome"))
    result = CliRunner().invoke(app, ["plan", "--env", "demo1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "envhome" / "demo1" / "secrets.yaml").exists()


def test_plan_default_out_is_the_env_state(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--state-dir", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h" / "osception" / "plan" / "k8s-0" / "user-data").exists()


def test_init_writes_the_commented_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    text = (tmp_path / "osception.yaml").read_text()
    assert text.count("#") > 20
    assert config.load(tmp_path / "osception.yaml") == config.Config()
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2 and "--force" in again.output
    # plan picks ./osception.yaml up by itself.
    (tmp_path / "osception.yaml").write_text(text.replace('release: "2026.2"', 'release: "2025.1"'))
    result = runner.invoke(app, ["plan", "--state-dir", str(tmp_path / "h")])
    assert result.exit_code == 0 and "2025.1" in result.output


def test_every_release_renders(release_plan):
    """Each release's own images and option names (the plans rendered once a session)."""
    rel = release_plan.release
    assert release_plan.cfg.release == rel.name
    assert f":{rel.kolla_tag}" in release_plan.files["k8s-0/manifests/33-nova.yaml"]
    assert f"{rel.ml2_project_network_types_option} = vxlan" in release_plan.files["k8s-0/config/ml2_conf.ini"]


def test_help_lists_every_command_with_what_it_does():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    panel = result.output.split(" Commands ")[1]
    # "│ name   what it does │"; a wrapped description continues on a row without name
    listed = dict(re.findall(r"^│ (\S+) +(\S.*?) *│$", panel, flags=re.M))
    commands = typer.main.get_command(app).commands
    assert sorted(listed) == sorted(name for name, c in commands.items() if not c.hidden)
    assert {"init", "plan", "up", "down", "devcloud"} <= set(listed)


def test_plan_reports_each_nodes_user_data_size(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "o"), "--state-dir", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    for node in NODES:
        size = user_data_size((tmp_path / "o" / node / "user-data").read_text())
        line = next(x for x in result.output.splitlines() if f" {node} " in x)
        assert f"{size} B ({round(100 * size / 65535)}%)" in line, line
    assert "65535" in result.output


def test_plan_fails_before_writing_when_user_data_is_over_novas_limit(tmp_path):
    import secrets as random

    # 60,000 random hex digits in nova.conf: xz cannot shrink them below Nova's limit.
    cfg = tmp_path / "osception.yaml"
    cfg.write_text(yaml.safe_dump({"overrides": {"nova.conf": {"DEFAULT": {"x": random.token_hex(30000)}}}}))
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["plan", "-c", str(cfg), "--out", str(out), "--state-dir", str(tmp_path / "h")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: k8s-0: user data is ") and "limit of 65535" in lines[0], lines[0]
    assert not out.exists()


def test_the_limit_is_checked_on_every_node_with_the_exact_size(tmp_path, monkeypatch):
    home = tmp_path / "h"
    sec = secrets.ensure(home / "osception", "osception")
    sizes = render.build(config.Config(), sec).user_data_sizes
    node = max(sizes, key=sizes.get)
    monkeypatch.setattr(checks, "NOVA_USER_DATA_LIMIT", sizes[node] - 1)
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "o"), "--state-dir", str(home)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {node}: user data is {sizes[node]} bytes of base64 as Nova counts it, "
                                     f"over Nova's limit of {sizes[node] - 1}")
    monkeypatch.setattr(checks, "NOVA_USER_DATA_LIMIT", sizes[node])
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "o"), "--state-dir", str(home)])
    assert result.exit_code == 0, result.output
