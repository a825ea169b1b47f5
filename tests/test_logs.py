"""`osception logs`: the command it runs over SSH, and its errors, without SSH."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml
from typer.testing import CliRunner

from osception import cli, logs, render, secrets, services
from osception.cli import app


@pytest.fixture
def env(tmp_path, monkeypatch, default_plan):
    """An environment as `up` leaves it: its plan and its nodes' addresses; SSH recorded."""
    home = tmp_path / "home"
    env_dir = home / "osception"
    secrets.ensure(env_dir, "osception")
    render.write(default_plan, env_dir / "plan")
    nodes = {"k8s-0": "192.0.2.10", "compute-0": "192.0.2.20", "network-1": "192.0.2.41"}
    (env_dir / "resources.json").write_text(json.dumps({"env": "osception", "nodes": {
        n: {"ip": ip, "mac": "02:00:00:00:00:01", "port": str(uuid.uuid4()), "public_port": None,
            "server": str(uuid.uuid4())}
        for n, ip in nodes.items()}}))
    ran = []
    monkeypatch.setattr(cli, "_run", lambda args: ran.append(args) or 0)
    return home, env_dir, ran


def invoke(home, *args):
    return CliRunner().invoke(app, ["logs", *args, "--state-dir", str(home)])


def test_controller_service_log_is_kubectl_logs_over_ssh(env):
    home, env_dir, ran = env
    r = invoke(home, "k8s-0", "nova-api", "--lines", "20")
    assert r.exit_code == 0, r.output
    known = env_dir / "ssh" / "known_hosts"
    assert ran == [["ssh", "-i", str(env_dir / "ssh" / "id_ed25519"), "-o", "IdentitiesOnly=yes",
                    "-o", "StrictHostKeyChecking=yes", "-o", f'UserKnownHostsFile="{known}"',
                    "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias=k8s-0", "-o", "CheckHostIP=no",
                    "-o", "UpdateHostKeys=no", "debian@192.0.2.10", "sudo", "k3s", "kubectl", "-n", "openstack",
                    "logs", "deploy/nova-api", "--all-containers", "--prefix", "--tail", "20"]]


def test_jobs_statefulsets_and_k3s_itself(env, default_plan):
    home, _, ran = env
    for service in ("nova-db-sync", "mariadb-nova", "k3s"):
        assert invoke(home, "k8s-0", service).exit_code == 0
    job = next(d["metadata"]["name"] for rel, text in default_plan.files.items() if "/manifests/" in rel
               for d in yaml.safe_load_all(text) if d and d["kind"] == "Job"
               and d["metadata"]["name"].startswith("nova-db-sync"))
    assert job != "nova-db-sync"  # named after its spec
    assert [args[args.index("debian@192.0.2.10") + 1:] for args in ran] == [
        ["sudo", "k3s", "kubectl", "-n", "openstack", "logs", f"job/{job}", "--all-containers", "--prefix",
         "--tail", "100"],
        ["sudo", "k3s", "kubectl", "-n", "openstack", "logs", "sts/mariadb-nova", "--all-containers", "--prefix",
         "--tail", "100"],
        ["sudo", "journalctl", "--no-pager", "-u", "k3s", "-n", "100"],
    ]


def test_node_service_log_is_journalctl(env):
    home, _, ran = env
    assert invoke(home, "compute-0", "nova-compute", "-n", "5").exit_code == 0
    assert ran[0][ran[0].index("debian@192.0.2.20") + 1:] == [
        "sudo", "journalctl", "--no-pager", "-u", "nova-compute", "-n", "5"]
    assert "HostKeyAlias=compute-0" in ran[0]


def test_without_a_service_it_lists_them_and_connects_nowhere(env):
    home, _, ran = env
    r = invoke(home, "network-1")
    assert r.exit_code == 0 and ran == []
    assert [line.split()[0] for line in r.output.splitlines()] == list(services.NODE_SERVICES["network"])
    r = invoke(home, "k8s-0")
    listed = dict(line.split() for line in r.output.splitlines())
    assert listed["nova-api"] == "deploy/nova-api" and listed["keystone-bootstrap"].startswith("job/keystone-bootstrap-")
    assert listed["rabbitmq"] == "sts/rabbitmq" and listed["k3s"] == "unit/k3s"
    assert "nova-config" not in listed  # a ConfigMap has no log


def test_unknown_node_or_service_is_one_line_exit_2(env):
    home, _, ran = env
    r = invoke(home, "compute-7", "nova-compute")
    assert r.exit_code == 2 and "no node 'compute-7'" in r.output and "compute-0, k8s-0, network-1" in r.output
    r = invoke(home, "compute-0", "nova-api")
    assert r.exit_code == 2 and "no service 'nova-api' on compute-0; known: libvirtd, nova-compute" in r.output
    r = invoke(home, "k8s-0", "nova-compute")
    assert r.exit_code == 2 and "no service 'nova-compute' on k8s-0" in r.output
    assert "Traceback" not in r.output and ran == []


def test_the_remote_exit_status_is_the_commands(env, monkeypatch):
    home, _, _ = env
    monkeypatch.setattr(cli, "_run", lambda args: 255)
    assert invoke(home, "k8s-0", "keystone").exit_code == 255


def test_an_environment_without_nodes(tmp_path):
    r = CliRunner().invoke(app, ["logs", "k8s-0", "--state-dir", str(tmp_path)])
    assert r.exit_code == 2 and "none (run up)" in r.output


def test_sources_come_from_the_manifests():
    text = ("kind: ConfigMap\nmetadata: {name: x-config}\n---\nkind: Deployment\nmetadata: {name: x}\n"
            "spec: {template: {metadata: {labels: {app: x}}}}\n---\nkind: Job\nmetadata: {name: x-sync-0a1b2c3d}\n"
            "spec: {template: {metadata: {labels: {app: x-sync}}}}\n")
    assert logs.sources("controller", [text]) == {"k3s": "unit/k3s", "x": "deploy/x", "x-sync": "job/x-sync-0a1b2c3d"}
