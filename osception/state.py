"""Per-environment state: one folder per environment name.

    <state home>/<env>/
        secrets.yaml          generated passwords and keys (0600)
        ssh/id_ed25519[.pub]  the environment's SSH keypair (0600 / 0644)
        plan/                 the last `osception plan` / `up` rendering

The state home is `$OSCEPTION_HOME`, else the user's data dir
(e.g. ~/.local/share/osception); the CLI's `--state-dir` wins over both.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "OSCEPTION_HOME"


def home(override: Path | None = None) -> Path:
    if override is not None:
        return override
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(platformdirs.user_data_dir("osception"))


def env_dir(name: str, override: Path | None = None) -> Path:
    return home(override) / name


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
