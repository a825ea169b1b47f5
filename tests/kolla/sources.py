"""The Kolla and kolla-ansible sources of each release, as test inputs.

Each release in osception's table pins one `kolla` and one `kolla-ansible` source
release (PyPI sdists). They are downloaded once into `.cache/kolla/` (ignored by git,
kept between runs on one machine) and unpacked there; `scripts/test.sh` fetches them
before the tests run (`python -m tests.kolla.sources`), so a test never downloads.

    python -m tests.kolla.sources      fetch and unpack the sources of every release
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from osception import releases

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "kolla"


@dataclass(frozen=True)
class KollaSources:
    release: releases.Release
    kolla: Path  # the unpacked kolla sdist: docker/, kolla/common/users.py
    ansible: Path  # the unpacked kolla-ansible sdist: ansible/roles/, ansible/group_vars/

    @property
    def docker(self) -> Path:
        # Kolla 23 (2026.2) moved docker/ into the package: kolla/docker/.
        old = self.kolla / "docker"
        return old if old.is_dir() else self.kolla / "kolla" / "docker"

    @property
    def roles(self) -> Path:
        return self.ansible / "ansible" / "roles"


def _unpacked(dist: str, version: str) -> Path:
    """<CACHE>/<dist>-<version>/, downloading and unpacking the sdist if needed."""
    folder = CACHE / f"{dist.replace('-', '_') if dist == 'kolla-ansible' else dist}-{version}"
    if (folder / "PKG-INFO").exists():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers fetch once
        if (folder / "PKG-INFO").exists():
            return folder
        sdist = next(CACHE.glob(f"{folder.name}.tar.gz"), None)
        if sdist is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                 "--disable-pip-version-check", "-d", str(CACHE), f"{dist}=={version}"],
                check=True)
            sdist = CACHE / f"{folder.name}.tar.gz"
        with tarfile.open(sdist) as tar:
            tar.extractall(CACHE, filter="data")
    if not (folder / "PKG-INFO").exists():
        raise RuntimeError(f"{sdist} did not unpack to {folder}")
    return folder


def get(release: releases.Release) -> KollaSources:
    return KollaSources(release, _unpacked("kolla", release.kolla_version),
                        _unpacked("kolla-ansible", release.kolla_ansible_version))


if __name__ == "__main__":
    for r in releases.RELEASES.values():
        s = get(r)
        print(f"{r.name}: {s.kolla.name}, {s.ansible.name}")
