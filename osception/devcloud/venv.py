"""The services' virtual environment: built from the release's committed lock by
scripts/openstack-venv.sh (the same script and lock the test suite uses), plus the
devcloud's test ML2 driver."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .layout import Layout
from .processes import DevcloudError, tail

REPO = Path(__file__).resolve().parents[2]
VENV_SCRIPT = REPO / "scripts" / "openstack-venv.sh"
ML2_DRIVER = Path(__file__).resolve().parent / "fake_hypervisor_ml2"
ML2_DIST = "osception-fake-hypervisor-ml2"


def lock_file(release: str) -> Path:
    return REPO / "requirements" / f"openstack-{release}.txt"


def ensure(layout: Layout, release: str, venv: Path) -> None:
    """Build (or keep, when its stamp matches the lock) the venv, then add the ML2 driver."""
    log = layout.log("venv")
    if not VENV_SCRIPT.exists():
        raise DevcloudError(f"{VENV_SCRIPT} not found: run osception from a clone of its "
                            "repository, or give an existing services venv with --venv")
    if not lock_file(release).exists():
        raise DevcloudError(f"no lock for release {release} ({lock_file(release)}); "
                            "the devcloud needs one (see scripts/openstack-venv.sh)")
    with open(log, "ab") as out:
        rc = subprocess.run(["bash", str(VENV_SCRIPT), release, str(venv)],
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc:
        raise DevcloudError(f"building the services venv {venv} failed; end of {log}:\n{tail(log)}")
    install_driver(layout, venv)


def check(venv: Path) -> None:
    """A venv given by the user must at least hold the services."""
    if not (venv / "bin" / "keystone-manage").exists():
        raise DevcloudError(f"{venv} is not a services venv (no bin/keystone-manage); build one "
                            f"with: {VENV_SCRIPT} 2026.1 {venv}")


def install_driver(layout: Layout, venv: Path) -> None:
    python = str(venv / "bin" / "python")
    check = f"import importlib.metadata as m; m.version('{ML2_DIST}')"
    if subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return
    log = layout.log("venv")
    # Built from a copy: a build leaves build/ and *.egg-info beside the sources.
    src = layout.root / "build" / ML2_DRIVER.name
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ML2_DRIVER, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # pip fetches setuptools to build it (once per venv): the venv has no `wheel`.
    argv = [python, "-m", "pip", "install", "--no-deps",
            "--disable-pip-version-check", "--no-input", "-q", str(src)]
    with open(log, "ab") as out:
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc:
        raise DevcloudError(f"installing the test ML2 driver into {venv} failed; end of {log}:\n"
                            f"{tail(log)}")
