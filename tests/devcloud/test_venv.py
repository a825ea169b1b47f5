"""The services venv's lock, script and ML2 driver are package data: an installed
osception (no clone) finds them through importlib.resources and builds the venv."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import osception
from osception import locks, releases
from osception.devcloud import venv
from osception.devcloud.layout import Layout
from osception.devcloud.processes import DevcloudError

PACKAGE = Path(osception.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_every_file_the_venv_build_needs_is_package_data():
    globs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["osception"]
    shipped = {p for g in globs for p in PACKAGE.glob(g) if p.is_file()}
    needed = {venv.VENV_SCRIPT, *(locks.path(r) for r in releases.RELEASES),
              *(p for p in venv.ML2_DRIVER.rglob("*") if p.is_file() and "__pycache__" not in p.parts)}
    assert venv.ML2_DRIVER / "pyproject.toml" in needed
    assert needed <= shipped, sorted(map(str, needed - shipped))
    assert all(p.is_relative_to(PACKAGE) for p in needed)


def test_the_script_reads_the_release_lock_the_product_ships(tmp_path):
    """A venv whose stamp is the lock's sha256 is kept: the script found the lock in
    osception/locks."""
    dest = tmp_path / "venv"
    (dest / "bin").mkdir(parents=True)
    os.symlink(sys.executable, dest / "bin" / "python")
    (dest / ".osception-lock.sha256").write_text(
        hashlib.sha256(locks.path("2026.1").read_bytes()).hexdigest() + "\n")
    r = subprocess.run(["bash", str(venv.VENV_SCRIPT), "2026.1", str(dest)],
                       capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert f"{dest} is up to date with openstack-2026.1.txt" in r.stdout


def test_a_release_without_lock_is_named_with_the_locked_ones(tmp_path):
    r = subprocess.run(["bash", str(venv.VENV_SCRIPT), "2099.1", str(tmp_path / "v")],
                       capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.returncode == 2 and "no lock for release '2099.1'" in r.stderr
    locked = re.escape(", ".join(releases.RELEASES))  # every release has its lock
    with pytest.raises(DevcloudError, match=rf"no lock for release 2099\.1 in .*osception/locks \(locked: {locked}\)"):
        venv.ensure(Layout(tmp_path / "devcloud"), "2099.1", tmp_path / "v")
