"""The services' virtual environment: built from the release's lock (osception/locks)
by openstack-venv.sh (the same script and lock the test suite uses), plus the devcloud's
test ML2 driver. All three are package data (locks/, services-venv/,
fake_hypervisor_ml2/), so an installed osception builds it as a clone does."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from .. import locks
from ..cache import cache_home
from .layout import Layout
from .processes import DevcloudError, tail


def _data(name: str) -> Path:
    """A folder of this package's data; pip installs packages as plain folders."""
    return Path(str(resources.files(__package__) / name))


VENV_SCRIPT = _data("services-venv") / "openstack-venv.sh"
ML2_DRIVER = _data("fake_hypervisor_ml2")
ML2_DIST = "osception-fake-hypervisor-ml2"


def cached(release: str) -> Path:
    """The release's services venv in the machine's cache: built once per lock."""
    return cache_home() / "venvs" / f"openstack-{release}"


def site_packages(venv: Path) -> Path:
    """The venv's site-packages (lib/python3.X/site-packages)."""
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise DevcloudError(f"{venv} has no lib/python3*/site-packages")
    return found[-1]


def ensure(layout: Layout, release: str, venv: Path) -> None:
    """Build (or keep, when its stamp matches the lock) the venv, then add the ML2 driver."""
    log = layout.log("venv")
    if not locks.path(release).exists():
        raise DevcloudError(f"no lock for release {release} in {locks.DIR} (locked: "
                            f"{', '.join(locks.released())})")
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
    install_fake_snapshots(venv)
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


FAKE_SNAPSHOTS = ML2_DRIVER / "osception_fake_snapshots.py"


def install_fake_snapshots(venv: Path) -> None:
    """The fake hypervisor with snapshots (a test aid, beside the ML2 driver), where
    Nova looks for `compute_driver`: only in nova.virt (nova/virt/driver.py loads
    'nova.virt.<compute_driver>'), so the file goes there, in this venv only."""
    dest = site_packages(venv) / "nova" / "virt" / FAKE_SNAPSHOTS.name
    if not dest.exists() or dest.read_bytes() != FAKE_SNAPSHOTS.read_bytes():
        shutil.copyfile(FAKE_SNAPSHOTS, dest)
