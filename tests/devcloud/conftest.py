"""The `devcloud` fixture: one real OpenStack for the whole test session.

It reuses a devcloud that is already running (e.g. after `osception devcloud up`)
and leaves it running; one it started itself is stopped at the end, unless
OSCEPTION_DEVCLOUD_KEEP=1 (then the next run reuses it: seconds instead of a minute).
Its release is $OSCEPTION_DEVCLOUD_RELEASE, else the default release (scripts/test.sh
runs the cloud tests once more for every other release of the table).
The services venv is $OSCEPTION_DEVCLOUD_VENV, else the release's in the machine's
cache (built from the lock osception ships when missing).
State: the devcloud folder of the state home ($OSCEPTION_HOME honoured).
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import openstack
import pytest

from osception import releases, secrets as secrets_mod
from osception.devcloud import Devcloud, Layout, cloud, venv as services
from osception.devcloud.layout import VENV_ENV_VAR
from osception.devcloud.lifecycle import START_ORDER

REPO = Path(__file__).resolve().parents[2]
RELEASE = os.environ.get("OSCEPTION_DEVCLOUD_RELEASE", releases.DEFAULT_RELEASE)


@dataclass(frozen=True)
class DevcloudInfo:
    layout: Layout
    clouds: dict  # a clouds.yaml document: clouds "devcloud" (member) and "devcloud-admin"
    admin: dict  # openstack.connect(**admin)
    member: dict  # openstack.connect(**member): project "demo", role member
    flavor: str  # a public flavor to boot from
    image: str  # a public raw image to boot from

    def connect(self, who: str = "member") -> openstack.connection.Connection:
        return openstack.connect(**(self.member if who == "member" else self.admin))


@functools.cache
def release_venv_of(release: str) -> Path:
    """The release's services venv in the machine's cache, built from the release's lock
    (kept while its stamp matches the lock): the one builder of both venv fixtures,
    services_venv and release_venv (tests/conftest.py)."""
    venv = services.cached(release)
    subprocess.run(["bash", str(services.VENV_SCRIPT), release, str(venv)], check=True)
    return venv


def _services_venv() -> Path:
    if os.environ.get(VENV_ENV_VAR):
        return Path(os.environ[VENV_ENV_VAR])
    return release_venv_of(RELEASE)


@pytest.fixture(scope="session")
def services_venv() -> Path:
    return _services_venv()


# Self-contained (no other fixture): tests/conftest.py imports it for the whole suite.
@pytest.fixture(scope="session")
def devcloud() -> DevcloudInfo:
    layout = Layout.default()
    dc = Devcloud(layout, say=lambda m: print(f"devcloud: {m}", flush=True))
    was_running = all(dc.procs.running(name) for name in START_ORDER)
    dc.up(release=RELEASE, venv=_services_venv())
    sec = secrets_mod.ensure(layout.root, "devcloud")
    yield DevcloudInfo(
        layout=layout,
        clouds=cloud.clouds(sec),
        admin=cloud.connect_kwargs(sec, cloud.ADMIN_CLOUD),
        member=cloud.connect_kwargs(sec, cloud.MEMBER_CLOUD),
        flavor=cloud.FLAVOR,
        image=cloud.IMAGE,
    )
    if not was_running and os.environ.get("OSCEPTION_DEVCLOUD_KEEP") != "1":
        dc.down()
