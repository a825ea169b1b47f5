"""Per-environment secrets: generated once, kept 0600 in the state folder, reused.

Nothing here is ever printed; templates get them through `Secrets`, and the
controller's manifests carry them only in Kubernetes Secrets.
"""

from __future__ import annotations

import base64
import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import services
from .state import write_private

FILE = "secrets.yaml"
FERNET_KEYS = 2  # key 0 is staged, key 1 is primary: what keystone-manage fernet_setup makes


def _password() -> str:
    return _random.token_urlsafe(24)  # URL- and INI-safe: goes into transport_url


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _ssh_keypair(comment: str) -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return {"private": private, "public": f"{public} {comment}"}


def _wanted(env: str) -> dict:
    """Every secret an environment needs, freshly generated."""
    return {
        "admin_password": _password(),
        "demo_password": _password(),
        "rabbitmq_password": _password(),
        "rabbitmq_erlang_cookie": _random.token_hex(20),
        "metadata_secret": _password(),
        "database_root": {db: _password() for db in services.DATABASES},
        "database": {
            user: _password() for user in services.DATABASES
        },  # one database user per service, named as the service
        "service_users": {user: _password() for user in services.SERVICE_USERS},
        "skyline_secret_key": _password(),
        "keystone_fernet_keys": [_fernet_key() for _ in range(FERNET_KEYS)],
        "keystone_credential_keys": [_fernet_key() for _ in range(FERNET_KEYS)],
        "ssh": _ssh_keypair(f"osception-{env}"),
        # nova live/cold migration between computes: its own key, never shared.
        "migration_ssh": _ssh_keypair(f"osception-{env}-nova-migration"),
    }


def _fill(have: dict, wanted: dict) -> bool:
    """Add what is missing from `have` (recursively); True when something was added."""
    changed = False
    for key, value in wanted.items():
        if key not in have:
            have[key] = value
            changed = True
        elif isinstance(value, dict) and isinstance(have[key], dict) and key != "ssh":
            changed |= _fill(have[key], value)
    return changed


@dataclass(frozen=True)
class Secrets:
    data: dict

    def __getattr__(self, key: str):
        try:
            return self.data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:  # never show values, not even in a traceback
        return f"Secrets({', '.join(sorted(self.data))})"


def ensure(env_dir: Path, env: str) -> Secrets:
    """Load the environment's secrets, generating (and saving) whatever is missing."""
    path = env_dir / FILE
    have: dict = {}
    if path.exists():
        have = yaml.safe_load(path.read_text()) or {}
    if _fill(have, _wanted(env)) or not path.exists():
        write_private(path, yaml.safe_dump(have, sort_keys=True))
    ssh = env_dir / "ssh"
    private = ssh / "id_ed25519"
    if not private.exists() or private.read_text() != have["ssh"]["private"]:
        write_private(private, have["ssh"]["private"])
        (ssh / "id_ed25519.pub").write_text(have["ssh"]["public"] + "\n")
    os.chmod(path, 0o600)
    return Secrets(have)
