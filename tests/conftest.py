from __future__ import annotations

from pathlib import Path

import pytest

from osception import config, render, secrets


@pytest.fixture(scope="session")
def state_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def default_plan(state_home) -> render.Plan:
    """The plan of the built-in defaults, with this session's secrets."""
    cfg = config.load(None)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    return render.build(cfg, sec)


@pytest.fixture(scope="session")
def default_secrets(state_home, default_plan) -> secrets.Secrets:
    return secrets.ensure(state_home / "osception", "osception")


# The local real OpenStack, for the tests that talk to a cloud (tests/devcloud/conftest.py).
from tests.devcloud.conftest import devcloud  # noqa: E402,F401
