"""How the devcloud starts and stops processes, and how it fails: real processes,
no OpenStack needed."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from osception.devcloud.layout import Layout
from osception.devcloud.processes import DevcloudError, Processes, Spec, port_open


@pytest.fixture
def procs(tmp_path) -> Processes:
    layout = Layout(tmp_path / "devcloud")
    layout.make_dirs()
    p = Processes(layout)
    yield p
    p.stop([r.stem for r in (layout.root / "run").glob("*.json")], grace=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_taken_port_is_named(procs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DevcloudError, match=f"port {port} \\(keystone\\) is already in use"):
            procs.start(Spec("keystone", ["sleep", "60"], port=port))


def test_a_service_that_fails_to_start_is_named_with_its_log(procs):
    procs.start(Spec("glance", ["sh", "-c", "echo 'glance: no such option'; exit 3"],
                     port=_free_port()))
    with pytest.raises(DevcloudError) as e:
        procs.wait_ready([Spec("glance", [], port=None, ready=lambda: False)], timeout=10)
    assert "glance exited during its start (exit code 3)" in str(e.value)
    assert "glance: no such option" in str(e.value)


def test_a_service_that_never_gets_ready_is_named(procs):
    spec = Spec("placement", ["sleep", "60"], port=_free_port())
    procs.start(spec)
    with pytest.raises(DevcloudError, match="placement did not become ready within 1 s"):
        procs.wait_ready([spec], timeout=1)


def test_stop_ends_the_whole_process_group_even_if_it_ignores_sigterm(procs):
    port = _free_port()
    script = ("trap '' TERM; python3 -c \"import socket,time; s=socket.socket(); "
              f"s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(300)\" & wait")
    spec = Spec("nova-compute", ["sh", "-c", script], port=port)
    procs.start(spec)
    procs.wait_ready([spec], timeout=10)
    started = time.monotonic()
    procs.stop(["nova-compute"], grace=1)
    assert time.monotonic() - started < 10
    assert not procs.running("nova-compute")
    assert not port_open(port)  # the child (same group) is gone too


def test_a_recycled_pid_is_not_ours(procs):
    spec = Spec("memcached", ["sleep", "60"])
    procs.start(spec)
    assert procs.running("memcached") and procs.current(spec)
    rec = procs.record("memcached")
    rec["start_time"] = "1"  # the same pid, started at another time: someone else's
    procs.layout.record("memcached").write_text(json.dumps(rec))
    assert not procs.running("memcached")
    os.killpg(rec["pid"], signal.SIGKILL)  # not ours to `stop` any more: by its own id
