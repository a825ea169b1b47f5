"""A network namespace of a test's own, made with iproute2 and removed afterwards: the
`netns_root` fixtures of the tests that need one (slow tier: tests/conftest.py
SLOW_FIXTURES) yield from it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def namespace(prefix: str, ip_commands: list[list[str]], why: str) -> Iterator[str]:
    """Namespace `<prefix>-<pid>`, set up by `ip -n NAME <command>` for each command."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail(f"{why} needs root and iproute2: run scripts/test.sh as root")
    name = f"{prefix}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for args in ip_commands:
            subprocess.run(["ip", "-n", name, *args], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
