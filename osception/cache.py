"""The machine's cache: what is built or fetched once per machine and shared by every
environment, devcloud and checkout on it (Tempest's venvs; the devcloud's services
venvs, node roots, guest image; the test suite's downloads)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """$OSCEPTION_CACHE, else $XDG_CACHE_HOME/osception, else ~/.cache/osception
    (scripts/test.sh uses the same)."""
    if os.environ.get("OSCEPTION_CACHE"):
        return Path(os.environ["OSCEPTION_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "osception"
