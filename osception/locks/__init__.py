"""The services lock of each release: a full `pip freeze` of its OpenStack services
(keystone, glance, placement, neutron, nova, skyline and everything they import), one
file per release beside this module (openstack-<release>.txt), shipped as package data.

Product facts, read only here: a `pypi` node's pip constraints (render), the versions
`osception releases` prints, the constraints Tempest is installed with. The devcloud's
services venv and the test suite's are built from the same files
(devcloud/services-venv/openstack-venv.sh).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# pip installs a package as a plain folder: the locks are files in it.
DIR = Path(str(resources.files(__package__)))


def path(release: str) -> Path:
    """The release's lock file (it may not exist: `released()` lists those that do)."""
    return DIR / f"openstack-{release}.txt"


def read(release: str) -> str:
    return path(release).read_text()


def released() -> list[str]:
    """The releases that have a lock, oldest first."""
    return sorted(p.stem.removeprefix("openstack-") for p in DIR.glob("openstack-*.txt"))


def pins(release: str) -> dict[str, str]:
    """{distribution: version} of every `name==version` line."""
    return dict(line.split("==", 1) for line in read(release).splitlines()
                if "==" in line and not line.startswith("#"))
