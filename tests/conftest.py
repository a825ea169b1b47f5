from __future__ import annotations

from pathlib import Path

import pytest

from osception import config, releases, render, secrets

# The slow tier, decided in one place: a test is slow when it uses one of these
# fixtures (directly or through another fixture), whatever its module. Each names what
# it needs prepared: scripts/test.sh asks (--needs-file) and prepares only that, so
# `-m "not slow"` builds no services venv, fetches no Kolla source and needs no root.
# The one test marked slow by hand needs nothing prepared: ansible-lint, seconds of CPU.
SLOW_FIXTURES: dict[str, tuple[str, ...]] = {
    "services_venv": ("services-venv",),  # .venv-openstack-2026.1: the real services
    "release_venv": ("release-venvs",),  # .venv-openstack-<release> of every release
    "devcloud": ("services-venv", "devcloud"),  # a running devcloud (MariaDB, RabbitMQ...)
    "kolla_sources": ("kolla-sources",),  # a release's kolla sdists, in .cache/kolla
    "all_kolla_sources": ("kolla-sources",),  # every release's
    "debian13_root": ("root",),  # debootstrap and chroot
    "debian_minbase": ("root",),  # the same, for any node OS
    "netns_root": ("root",),  # network namespaces
    "guest_image": ("qemu",),
    # the devcloud with local compute and network nodes (nodes.py): a pass of its own
    # after the main run (scripts/test.sh), on a fresh devcloud
    "local_cloud": ("devcloud", "root", "local-nodes"),  # the local cloud's guest, booted by qemu-system-x86_64 (TCG)
}


def pytest_addoption(parser):
    parser.addoption("--needs-file", metavar="PATH",
                     help="write what the selected tests need prepared (words of SLOW_FIXTURES "
                          "in tests/conftest.py), one per line; for scripts/test.sh")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if any(name in SLOW_FIXTURES for name in item.fixturenames):
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    path = session.config.getoption("--needs-file")
    if path:
        needs = {need for item in session.items for name in item.fixturenames
                 for need in SLOW_FIXTURES.get(name, ())}
        Path(path).write_text("".join(f"{need}\n" for need in sorted(needs)))


# Session scope: the tests are grouped by release, each venv checked once.
@pytest.fixture(scope="session", params=list(releases.RELEASES))
def release(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def release_venv(release) -> Path:
    """The release's services venv in the machine's cache (slow: SLOW_FIXTURES)."""
    return release_venv_of(release)


@pytest.fixture(scope="session")
def state_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def default_plan(state_home) -> render.Plan:
    """The plan of the built-in defaults, with this session's secrets."""
    cfg = config.load(None)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    return render.build(cfg, sec)


@pytest.fixture(scope="session", params=list(releases.RELEASES))
def release_plan(request, state_home) -> render.Plan:
    """The defaults' plan on each release of the table (the same secrets)."""
    cfg = config.Config(release=request.param)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    return render.build(cfg, sec)


@pytest.fixture(scope="session")
def default_secrets(state_home, default_plan) -> secrets.Secrets:
    return secrets.ensure(state_home / "osception", "osception")


# The real services and the local real OpenStack (tests/devcloud/conftest.py).
from tests.devcloud.conftest import devcloud, release_venv_of, services_venv  # noqa: E402,F401
