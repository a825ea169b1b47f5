from datetime import datetime

from osception import progress

# Recorded-style console output: kernel noise, cloud-init prefixes, a repeated line.
CONSOLE = """\
[    4.120000] cloud-init[512]: Cloud-init v. 24.1 running 'modules:final'
OSCEPTION 2026-11-27T10:00:00Z k8s-0 install-k3s started
[   40.000000] cloud-init[512]: OSCEPTION 2026-11-27T10:00:31Z k8s-0 install-k3s done
OSCEPTION 2026-11-27T10:00:31Z k8s-0 install-k3s done
OSCEPTION 2026-11-27T10:00:31Z k8s-0 wait-k3s started
OSCEPTION 2026-11-27T10:00:45Z k8s-0 wait-k3s done
OSCEPTION 2026-11-27T10:00:45Z k8s-0 apply-manifests started
OSCEPTION 2026-11-27T10:00:47Z k8s-0 apply-manifests failed exit 1: error: no objects passed to apply
OSCEPTION 2026-11-27T10:00:47Z k8s-0 node failed step apply-manifests failed, see /var/log/osception/apply-manifests.log
"""


def test_parses_steps_durations_and_failure():
    prog = progress.parse(CONSOLE)["k8s-0"]
    assert [s.name for s in prog.steps] == ["install-k3s", "wait-k3s", "apply-manifests"]
    assert progress.timings(prog) == {"install-k3s": 31.0, "wait-k3s": 14.0, "apply-manifests": 2.0}
    assert prog.state == "failed"
    assert "apply-manifests" in prog.reason
    assert prog.current.message == "exit 1: error: no objects passed to apply"


def test_running_and_done():
    running = progress.parse(CONSOLE.splitlines()[1] + "\n")["k8s-0"]
    assert running.state == "running" and running.current.name == "install-k3s"
    done = progress.parse("OSCEPTION 2026-11-27T10:05:00Z compute-1 node done ready\n")
    assert done["compute-1"].state == "done" and done["compute-1"].reason == "ready"


def test_ignores_noise_and_filters_node():
    text = "OSCEPTION bogus line\nosception 2026-11-27T10:00:00Z a b started\n" + CONSOLE
    assert set(progress.parse(text)) == {"k8s-0"}
    assert progress.parse(CONSOLE, node="compute-0") == {}


def test_partial_last_line_is_ignored():
    assert progress.parse("OSCEPTION 2026-11-27T10:00:00Z k8s-0 inst") == {}


# The controller while its control plane converges: two reports, then a timeout.
CONVERGING = """\
OSCEPTION 2026-11-27T10:01:00Z k8s-0 wait-control-plane started
OSCEPTION 2026-11-27T10:01:31Z k8s-0 wait-control-plane waiting deploy/keystone: ImagePullBackOff quay.io/x
OSCEPTION 2026-11-27T10:01:31Z k8s-0 wait-control-plane waiting deploy/nova-api: init wait: waiting for job/nova-db-sync
OSCEPTION 2026-11-27T10:02:02Z k8s-0 wait-control-plane waiting job/nova-db-sync: CrashLoopBackOff (exit 1, 2 restarts): boom
OSCEPTION 2026-11-27T10:02:02Z k8s-0 wait-control-plane waiting deploy/nova-api: init wait: waiting for job/nova-db-sync
[   99.000000] cloud-init[512]: OSCEPTION 2026-11-27T10:01:31Z k8s-0 wait-control-plane waiting deploy/keystone: ImagePullBackOff quay.io/x
"""


def test_a_waiting_report_replaces_the_previous_one():
    prog = progress.parse(CONVERGING)["k8s-0"]
    assert prog.state == "running" and len(prog.steps) == 1
    step = prog.current
    assert step.state == "started" and step.noted == datetime(2026, 11, 27, 10, 2, 2)
    assert step.notes == ["job/nova-db-sync: CrashLoopBackOff (exit 1, 2 restarts): boom",
                          "deploy/nova-api: init wait: waiting for job/nova-db-sync"]


def test_a_failed_step_keeps_its_last_report_a_done_step_drops_it():
    failed = progress.parse(CONVERGING + (
        "OSCEPTION 2026-11-27T10:21:00Z k8s-0 wait-control-plane failed exit 1: timed out after 1200s\n"
        "OSCEPTION 2026-11-27T10:21:00Z k8s-0 node failed step wait-control-plane failed\n"))["k8s-0"]
    assert failed.state == "failed" and len(failed.current.notes) == 2
    done = progress.parse(CONVERGING + "OSCEPTION 2026-11-27T10:05:00Z k8s-0 wait-control-plane done\n")["k8s-0"]
    assert done.state == "running" and done.current.notes == []
    assert progress.timings(done) == {"wait-control-plane": 240.0}


def test_waiting_on_the_final_step_does_not_end_the_node():
    prog = progress.parse(CONVERGING + "OSCEPTION 2026-11-27T10:05:00Z k8s-0 node waiting odd\n")["k8s-0"]
    assert prog.state == "running"
