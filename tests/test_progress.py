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
