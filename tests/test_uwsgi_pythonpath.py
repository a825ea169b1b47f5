"""The controller's patched projects are imported from the pod's copy through
PYTHONPATH (k8s/_kolla.j2). Kolla's API containers run the distribution's uWSGI with its
python3 plugin (kolla-ansible's uwsgi.ini: `plugins = python3`); this runs Debian's
uWSGI and python3 plugin for real, with an app that imports a package the system also
has (yaml): with PYTHONPATH the pod's copy wins, without it the system's package."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from osception.render.patches import PATCH_PATHS

UWSGI = Path("/usr/bin/uwsgi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path: Path, pythonpath: str | None) -> str:
    port = _free_port()
    ini = tmp_path / "probe.ini"
    # The settings of k8s/_kolla.j2's uwsgi_ini that matter here, plus Debian's http router.
    ini.write_text(f"[uwsgi]\nhttp = 127.0.0.1:{port}\nmaster = true\nlazy-apps = true\n"
                   "plugins-dir = /usr/lib/uwsgi/plugins\nplugins = http,python3\n"
                   f"module = probe_app\nchdir = {tmp_path / 'app'}\nprocesses = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen([str(UWSGI), "--ini", str(ini)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                time.sleep(0.2)
        raise AssertionError("uWSGI did not answer")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not UWSGI.exists(), reason="scripts/test.sh installs uwsgi-core and uwsgi-plugin-python3")
def test_uwsgi_imports_the_patched_copy_first_through_pythonpath(tmp_path):
    shadow = tmp_path / PATCH_PATHS["site"].lstrip("/")
    (shadow / "yaml").mkdir(parents=True)
    (shadow / "yaml" / "__init__.py").write_text("__version__ = 'patched copy'\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "probe_app.py").write_text(
        "import yaml\n\n\ndef application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [f'{yaml.__version__} {yaml.__file__}'.encode()]\n")
    assert _serve(tmp_path, str(shadow)) == f"patched copy {shadow}/yaml/__init__.py"
    assert _serve(tmp_path, None).startswith(("5.", "6.")) and "/dist-packages/yaml/" in _serve(tmp_path, None)
