"""`osception apply` (osception/day2.py): what a new plan changes on a running
environment, computed from two real plans: the controller's Kubernetes objects and the
workloads that roll (exactly those that read what changed), and each node's files; the
files a node receives are the write_files of its user data, unpacked by the very
command the node runs (Python's tarfile, data filter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from osception import config, day2, render, secrets, topology
from osception.render.layout import CONTROLLER_ARCHIVE, NODE_ETC, NODE_PATCHES

NOVA_WORKLOADS = ["Deployment/nova-api", "Deployment/nova-conductor", "Deployment/nova-metadata",
                  "Deployment/nova-novncproxy", "Deployment/nova-scheduler"]


@pytest.fixture(scope="module")
def sec(state_home):
    return secrets.ensure(state_home / "osception", "osception")


def _plan(sec, **update) -> render.Plan:
    cfg = config.load(None).model_copy(update=update)
    return render.build(cfg, sec)


@pytest.fixture(scope="module")
def base(sec) -> render.Plan:
    return _plan(sec)


def test_the_same_plan_changes_nothing(base, sec):
    changes = day2.diff(base.files, _plan(sec))
    assert changes.empty and changes.lines() == ["nothing to apply: the environment has this plan"]


def test_a_controller_setting_rolls_exactly_the_workloads_that_read_it(base, sec):
    changes = day2.diff(base.files, _plan(sec, overrides={"nova.conf": {"DEFAULT": {"debug": True}}}))
    job, = [name for name in changes.objects if name.startswith("Job/nova-db-sync-")]
    assert changes.objects == {"ConfigMap/nova-config": "changed", job: "changed",
                               **{w: "changed" for w in NOVA_WORKLOADS}}
    assert changes.rolls == NOVA_WORKLOADS
    assert "controller: rolls " + ", ".join(NOVA_WORKLOADS) in changes.lines()
    # the computes' own nova.conf takes the override too; nothing else of theirs changes
    computes = [n.name for n in base.nodes if n.role == "compute"]
    assert changes.nodes == {"k8s-0": [CONTROLLER_ARCHIVE]} | {
        n: [f"{NODE_ETC}/files/etc/nova/nova.conf"] for n in computes}


def test_a_nova_patch_changes_the_nova_pods_and_the_computes_not_the_network_nodes(base, sec, tmp_path):
    (tmp_path / "fix.patch").write_text("diff --git a/nova/x.py b/nova/x.py\n--- a/nova/x.py\n+++ b/nova/x.py\n"
                                        "@@ -1 +1 @@\n-a\n+b\n")
    new = _plan(sec, patches={"nova": [config.Patch(file=tmp_path / "fix.patch")]})
    changes = day2.diff(base.files, new)
    assert changes.objects["ConfigMap/nova-patches"] == "added"
    assert changes.objects["ConfigMap/osception-patch"] == "added"
    assert changes.rolls == NOVA_WORKLOADS  # keystone, glance, placement, neutron untouched
    computes = [n.name for n in new.nodes if n.role == "compute"]
    assert sorted(changes.nodes) == sorted(["k8s-0", *computes])
    for node in computes:
        assert f"{NODE_PATCHES}/nova/01-fix.patch" in changes.nodes[node]
        assert f"{NODE_ETC}/vars.yml" in changes.nodes[node]


def test_a_changed_job_is_one_change_not_an_added_and_a_removed_one(base, sec):
    changes = day2.diff(base.files, _plan(sec, overrides={"nova.conf": {"DEFAULT": {"debug": True}}}))
    jobs = [name for name in changes.objects if name.startswith("Job/nova-db-sync")]
    assert len(jobs) == 1 and changes.objects[jobs[0]] == "changed"
    assert not [how for how in changes.objects.values() if how == "removed"]


def test_the_bundle_unpacks_with_the_nodes_own_command_to_its_write_files(base, tmp_path):
    user_data = base.files["compute-0/user-data"]
    files = day2.write_files(user_data)
    # the node's command, with a folder of this machine for /
    assert day2.remote_command("compute-0").startswith(day2.unpack_command() + " && ")
    unpack = day2.unpack_command(str(tmp_path), python=sys.executable)
    subprocess.run(["sh", "-c", unpack], input=day2.bundle(user_data), check=True)
    for path, f in files.items():
        target = tmp_path / path.lstrip("/")
        if f.append:
            assert not target.exists(), path  # /etc/hosts: first boot only
            continue
        assert target.read_bytes() == f.content, path
        assert target.stat().st_mode & 0o777 == f.mode & 0o755, path  # data filter: no group/other write
    assert any(f.mode == 0o600 for f in files.values())  # the secrets stay 0600


def test_the_remote_command_runs_the_setup_scripts_day2_pass(base):
    assert day2.remote_command("k8s-0").endswith("OSCEPTION_ECHO=1 /usr/local/sbin/osception-setup apply")
    assert day2.remote_command("compute-0").endswith(f"OSCEPTION_ECHO=1 {NODE_ETC}/setup apply")
    for node in ("k8s-0", "compute-0"):
        paths = day2.write_files(base.files[f"{node}/user-data"])
        setup = day2.SETUP["controller" if node == "k8s-0" else "node"]
        script = paths[setup].content.decode()
        assert 'if [ "${1:-}" = apply ]; then' in script and 'finish "done" "plan applied"' in script


def test_apply_runs_the_controller_first_and_stops_when_it_fails(base, sec, tmp_path):
    """The transport is a stand-in (the remote side's output, as a node's setup prints
    it); what is tested is the order and the board."""
    new = _plan(sec, overrides={"nova.conf": {"DEFAULT": {"debug": True}}})
    changes = day2.diff(base.files, new)
    changes.nodes = {"k8s-0": changes.nodes["k8s-0"], "compute-0": ["/etc/osception/vars.yml"]}
    calls = []

    def transport(node: str, fail: bool) -> list[str]:
        calls.append(node)
        end = "failed exit 1: kubectl" if fail else "done"
        script = (f"cat >/dev/null; echo 'OSCEPTION 2026-12-06T10:00:00Z {node} apply-manifests started'; "
                  f"echo 'OSCEPTION 2026-12-06T10:00:02Z {node} apply-manifests {end}'; "
                  + ("exit 1" if fail else f"echo 'OSCEPTION 2026-12-06T10:00:03Z {node} node done plan applied'"))
        return ["sh", "-c", script, "--"]  # run_on appends: sudo sh -c REMOTE

    boards = []
    final = day2.apply(new, changes, lambda n: transport(n, fail=True), boards.append)
    assert calls == ["k8s-0"] and final["k8s-0"].state == "failed"
    assert "apply-manifests" in final["k8s-0"].reason
    calls.clear()
    final = day2.apply(new, changes, lambda n: transport(n, fail=False), boards.append)
    assert calls == ["k8s-0", "compute-0"]
    assert {n: p.state for n, p in final.items()} == {"k8s-0": "done", "compute-0": "done"}
    assert boards[-1]["compute-0"].steps[0].name == "apply-manifests"


def test_record_keeps_what_running_nodes_were_given(base, sec, tmp_path):
    day2.record_created(base, tmp_path)
    (tmp_path / "bigger.yaml").write_text("nodes:\n  compute:\n    count: 3\n"
                                          "overrides:\n  nova.conf:\n    DEFAULT:\n      debug: true\n")
    bigger = render.build(config.load(tmp_path / "bigger.yaml"), sec)
    day2.record_created(bigger, tmp_path)  # `up` again: one more compute
    had = day2.applied(tmp_path)
    assert had["k8s-0/user-data"] == base.files["k8s-0/user-data"]  # as it runs
    new = [n.name for n in bigger.nodes if f"{n.name}/user-data" not in base.files]
    assert new and all(had[f"{n}/user-data"] == bigger.files[f"{n}/user-data"] for n in new)
    assert topology.is_node_name(new[0])
