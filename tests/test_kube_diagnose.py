"""The controller's diagnosis of a converging control plane, on recorded
`kubectl -n openstack get pods,jobs -o json` output (tests/data/kube/)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from osception.render.env import TEMPLATES

DATA = Path(__file__).parent / "data" / "kube"
SCRIPT = TEMPLATES / "scripts" / "kube_diagnose.py"

_spec = importlib.util.spec_from_file_location("kube_diagnose", SCRIPT)
kd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kd)

# The last log line of each container, as `kubectl logs --tail=1 [--previous]` gives it.
LOGS = {
    ("nova-db-sync-5tqmd", "db-sync", True):
        "sqlalchemy.exc.OperationalError: (pymysql.err.OperationalError) (1045, \"Access denied for user "
        "'nova'@'10.42.0.31' (using password: YES)\")",
    ("nova-api-84c7d6f5b-r9t4k", "wait", False): "waiting for job/nova-db-sync: not yet",
    ("skyline-db-sync-c2n8v", "db-sync", False): "alembic.util.exc.CommandError: Can't locate revision 'f1e2'",
    ("neutron-server-5c9d8b7a6-k4j7h", "neutron-server", False): "",
}


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def cut(line: str) -> str:
    return line if len(line) <= kd.WIDTH else line[:kd.WIDTH - 3] + "..."


def recorded_logs(calls: list):
    def logs(pod, container, previous):
        calls.append((pod, container, previous))
        return LOGS[(pod, container, previous)]
    return logs


def test_one_line_per_workload_not_ready_worst_first():
    calls = []
    lines = kd.diagnose(load("converging.json"), recorded_logs(calls))
    assert lines == [cut(line) for line in [
        "job/neutron-db-sync: failed, BackoffLimitExceeded: Job has reached the specified backoff limit",
        "job/skyline-db-sync: 2 pods failed, retrying; last: Error (exit 2): "
        "alembic.util.exc.CommandError: Can't locate revision 'f1e2'",
        "job/nova-db-sync: CrashLoopBackOff (exit 1, 6 restarts): "
        + LOGS[("nova-db-sync-5tqmd", "db-sync", True)],
        "deploy/glance-api: init wait: ErrImagePull quay.io/openstack.kolla/kolla-toolbox:2026.1-ubuntu-noble",
        "deploy/keystone: ImagePullBackOff quay.io/openstack.kolla/keystone:2026.1-ubuntu-noble",
        "deploy/nova-conductor: CreateContainerConfigError: couldn't find key transport-url in Secret "
        "openstack/nova-secrets",
        "sts/mariadb-glance: Unschedulable: 0/1 nodes are available: pod has unbound immediate "
        "PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful "
        "for scheduling.",
        "deploy/nova-api: init wait: waiting for job/nova-db-sync: not yet",
        "deploy/neutron-server: running, not ready (1 restarts)",
    ]]
    assert lines[2].endswith("...") and lines[6].endswith("...")
    assert all(len(line) <= kd.WIDTH for line in lines)
    # Logs are read for the lines that need them only; a crash reads the previous container.
    assert sorted(calls) == sorted(LOGS)


def test_ready_pods_completed_jobs_and_leftover_pods_say_nothing():
    # converging.json also holds a completed Job and its pod, a ready MariaDB and
    # memcached, a terminating keystone pod and an evicted memcached pod.
    names = {line.split(":")[0] for line in kd.diagnose(load("converging.json"), lambda *a: "")}
    assert not names & {"job/keystone-bootstrap", "sts/mariadb-keystone", "deploy/memcached"}
    assert kd.diagnose(load("ready.json"), no_logs) == []


def no_logs(pod, container, previous):
    raise AssertionError(f"no log needed, asked for {pod}/{container}")


def test_a_crash_without_logs_falls_back_to_the_termination_message():
    doc = load("converging.json")
    pod = next(i for i in doc["items"] if i["metadata"]["name"] == "nova-db-sync-5tqmd")
    pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] = "nova-manage: no cell1"
    lines = kd.diagnose(doc, lambda *a: "")
    assert "job/nova-db-sync: CrashLoopBackOff (exit 1, 6 restarts): nova-manage: no cell1" in lines


def test_the_report_is_bounded():
    lines = kd.diagnose(load("converging.json"), lambda *a: "x", limit=3)
    assert len(lines) == 4 and lines[-1] == "... and 6 more not ready"
    assert lines[0].startswith("job/neutron-db-sync:")


def test_main_asks_kubectl(tmp_path, capsys):
    """main() as the controller runs it, with a kubectl that answers from the recording."""
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >>{tmp_path}/calls\n'
        f'case "$*" in *" get pods,jobs -o json") cat {DATA}/converging.json ;;\n'
        '  *" logs "*) printf "first\\nlast line of %s\\n" "$4" ;;\n'
        "esac\n")
    kubectl.chmod(0o755)
    assert kd.main(["openstack", str(kubectl)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "deploy/nova-api: init wait: last line of nova-api-84c7d6f5b-r9t4k" in out
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "-n openstack get pods,jobs -o json"
    assert "-n openstack logs nova-db-sync-5tqmd -c db-sync --tail=1 --previous" in calls


def test_main_says_why_kubectl_failed(tmp_path, capsys):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\necho 'The connection to the server 127.0.0.1:6443 was refused' >&2\nexit 1\n")
    kubectl.chmod(0o755)
    assert kd.main(["openstack", str(kubectl)]) == 1
    assert capsys.readouterr().out == \
        "kubectl get pods,jobs: The connection to the server 127.0.0.1:6443 was refused\n"


def test_it_runs_with_the_standard_library_only(tmp_path):
    """The controller has Debian's python3 and nothing else: no import beyond the stdlib."""
    import subprocess

    r = subprocess.run([sys.executable, "-I", "-S", "-c",
                        f"import runpy; runpy.run_path({str(SCRIPT)!r})"],
                       capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    imported = {line.split()[1] for line in SCRIPT.read_text().splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= set(sys.stdlib_module_names), imported
