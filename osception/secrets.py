"""Per-environment secrets: generated once, kept 0600 in the state folder, reused.

Nothing here is ever printed; templates get them through `Secrets`, and the
controller's manifests carry them only in Kubernetes Secrets.

An existing `secrets.yaml` is never changed behind the user's back: a damaged one
(not YAML, a key missing, given twice or unknown, a value of the wrong shape, an
expired or weak CA) stops the command with one line naming the file and the key,
and never quotes a value. A block is never made anew for an existing file: a file
without its `tls:` would get a new CA that nothing trusts yet, silently. New secrets
are made only for a new environment, on `--regenerate-secrets` (which keeps the old
ones aside), and for a service new to an existing environment: one that osception
gained after the environment was made, which the file holds nothing for in any of the
per-service blocks (PER_SERVICE). Its secrets are added, every other one stays as it
was, and `ensure` says so. A service the file holds some but not all of is damage,
as any missing key. The SSH key files are never overwritten.

The generator `_wanted` is the schema: a file must hold exactly its keys, each of
the same shape.

`peek` reads them (or makes a new environment's in memory) and writes nothing, so a
command checks all its input first; `ensure` then writes what `peek` made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets as _random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import services, state, tls
from .state import Layout, StateError

REGENERATE = "--regenerate-secrets"  # the only way to replace an environment's secrets
PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # what _password makes; safe in INI, YAML, URLs
_PUBLIC_RE = re.compile(r"ssh-ed25519 [A-Za-z0-9+/]+=* [A-Za-z0-9@._-]+")  # goes into cloud-config as is
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
FERNET_KEYS = 2  # key 0 is staged, key 1 is primary: what keystone-manage fernet_setup makes


def _password() -> str:
    return _random.token_urlsafe(24)  # URL- and INI-safe: goes into transport_url


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _ssh_keypair(comment: str, key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    key = key or Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return {"private": private, "public": f"{public} {comment}"}


def _wanted(env: str, have_tls: object = None) -> dict:
    """Every secret an environment needs, freshly generated. `have_tls`: an existing
    file's `tls` entry, used as is (checked by tls.problem) rather than making a new CA
    (an RSA key) on every load only to compare shapes."""
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
        # every node's SSH host key derives from it (host_key): a node added later gets
        # its own, and the file never changes for it
        "ssh_host_key_seed": _random.token_urlsafe(32),
        # the environment's CA and the key of the controller's certificate (tls.py)
        "tls": have_tls if have_tls is not None else tls.make(env),
    }


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


def host_key(secrets: Secrets, node: str) -> dict[str, str]:
    """`node`'s SSH host key (ed25519: private, public), the same on every run: derived
    from the environment's seed and the node's name (HKDF-SHA256). cloud-init installs it
    (ssh_keys:), and `ssh`, `logs`, `apply` and the computes' migrations trust exactly it:
    no trust on first use."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"osception ssh host key {node}".encode()).derive(secrets.ssh_host_key_seed.encode())
    pair = _ssh_keypair(node, Ed25519PrivateKey.from_private_bytes(seed))
    return pair | {"private": _openssh_private(seed, node)}


def _openssh_private(seed: bytes, comment: str) -> str:
    """An unencrypted ed25519 key in OpenSSH's format (PROTOCOL.key), byte for byte the
    same for the same key: cryptography's has random check words, and a host key that
    changed its text on every plan would make every node's user data differ."""
    def string(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_blob = string(b"ssh-ed25519") + string(public)
    check = hashlib.sha256(b"osception check " + seed).digest()[:4]  # a constant, not a secret
    body = check * 2 + key_blob + string(seed + public) + string(comment.encode())
    body += bytes(range(1, 1 + (-len(body)) % 8))  # padding 1, 2, 3 ... to the cipher's block (8 for none)
    blob = b"openssh-key-v1\0" + string(b"none") + string(b"none") + string(b"") + struct.pack(">I", 1) \
        + string(key_blob) + string(body)
    text = base64.b64encode(blob).decode()
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return "\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----", ""])


def known_hosts_line(secrets: Secrets, node: str, *names: str) -> str:
    """A known_hosts line: `node`'s host key under `names` (default: the node's name)."""
    return f"{','.join(names or (node,))} {' '.join(host_key(secrets, node)['public'].split()[:2])}"


def _fernet_problem(keys: object, count: int) -> str | None:
    if not isinstance(keys, list) or len(keys) != count:
        return f"must be a list of {count} keys"
    for key in keys:
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii")) if isinstance(key, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32 or base64.urlsafe_b64encode(raw).decode() != key:
            return "every key must be 32 bytes in URL-safe base64"
    return None


def _ssh_problem(pair: object) -> tuple[str, str] | None:
    if not isinstance(pair, dict) or set(pair) != {"private", "public"}:
        return "", "must be a mapping of private and public"
    private, public = pair["private"], pair["public"]
    try:
        key = serialization.load_ssh_private_key(private.encode(), None) if isinstance(private, str) else None
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        return ".private", "not an unencrypted OpenSSH ed25519 private key"
    mine = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    if not isinstance(public, str) or not _PUBLIC_RE.fullmatch(public) or public.split(" ")[:2] != mine.split():
        return ".public", "not the public half of the private key, with a plain comment"
    return None


def _problem(have: object, wanted: object, key: str) -> tuple[str, str] | None:
    """The first way `have` differs from the shape of the fresh `wanted`: (key, problem)."""
    if isinstance(wanted, dict):
        if not isinstance(have, dict):
            return key, "must be a mapping"
        for k in have:
            if k not in wanted:
                name = k if isinstance(k, str) and _KEY_RE.fullmatch(k) else "(a key that is not a name)"
                return f"{key}.{name}" if key else name, "unknown key"
        for k, value in wanted.items():
            sub = f"{key}.{k}" if key else k
            if k not in have:
                return sub, "missing"
            if k in ("ssh", "migration_ssh"):
                found = _ssh_problem(have[k])
                if found:
                    return sub + found[0], found[1]
            elif k == "tls":
                if problem := tls.problem(have[k]):
                    return sub, problem
            elif k in ("keystone_fernet_keys", "keystone_credential_keys"):
                if problem := _fernet_problem(have[k], len(value)):
                    return sub, problem
            elif found := _problem(have[k], value, sub):
                return found
        return None
    if not isinstance(have, str) or not PASSWORD_RE.fullmatch(have):
        return key, "must be 16 to 128 letters, digits, '-' or '_'"
    return None


# The blocks that hold one secret per service, by the service's name.
PER_SERVICE = ("database_root", "database", "service_users")


def _new_services(have: dict, wanted: dict) -> list[str]:
    """The services `wanted` has secrets for and `have` holds none for, in any block."""
    blocks = [b for b in PER_SERVICE if isinstance(have.get(b), dict)]
    if len(blocks) < len(PER_SERVICE):  # a block missing or damaged: _problem names it
        return []
    names = {name for b in PER_SERVICE for name in wanted[b]}
    return sorted(n for n in names if not any(n in have[b] for b in PER_SERVICE))


def _with_new_services(have: dict, new: list[str], made: dict) -> dict:
    """`have` with the secrets of the services `new` taken from `made`, nothing else changed."""
    if not new:
        return have
    return {**have, **{b: {**have[b], **{n: made[b][n] for n in new if n in made[b]}}
                       for b in PER_SERVICE}}


def _parse(text: str, path: Path, env: str) -> tuple[dict, list[str]]:
    """The secrets of an existing file, each checked, with those of the services new to
    it made (in memory): (secrets, the new services)."""
    try:
        have = state.load_yaml(text)
    except state.DuplicateKey as e:  # which value is meant? Neither is taken
        name = e.key if isinstance(e.key, str) and _KEY_RE.fullmatch(e.key) else "(a key that is not a name)"
        raise StateError(f"{path}: line {e.line}: {name}: given twice; restore it from a backup, or start "
                         f"over with `osception plan {REGENERATE}`") from None
    except yaml.YAMLError as e:  # its message quotes the file: never show it
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise StateError(f"{path}:{where} not valid YAML; restore it from a backup, or start over "
                         f"with `osception plan {REGENERATE}`") from None
    except RecursionError:
        raise StateError(f"{path}: not valid YAML (nested too deeply)") from None
    if not isinstance(have, dict):
        raise StateError(f"{path}: must be a mapping of secrets; restore it from a backup, or start "
                         f"over with `osception plan {REGENERATE}`")
    wanted = _wanted(env, have.get("tls"))
    new = _new_services(have, wanted)
    have = _with_new_services(have, new, wanted)
    if found := _problem(have, wanted, ""):
        raise StateError(f"{path}: {found[0]}: {found[1]}; restore it from a backup, or start over "
                         f"with `osception plan {REGENERATE}`")
    return have, new


def _retire(env_dir: Path) -> list[tuple[str, Path]]:
    """Move the current secrets and SSH key aside (never deleted), for a fresh start."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = []
    for name in (Layout.SECRETS, Layout.SSH):
        old = env_dir / name
        if old.exists() or old.is_symlink():
            kept, n = env_dir / f"{name}.{stamp}", 0
            while kept.exists() or kept.is_symlink():  # a second start-over within the same second
                n += 1
                kept = env_dir / f"{name}.{stamp}.{n}"
            os.rename(old, kept)
            moved.append((name, kept))
    return moved


def _key_file(path: Path, text: str, private: bool, make: bool = True) -> None:
    """Make the SSH key file, or check that it is the one in secrets.yaml: never overwrite it.
    `make` False: only check an existing one."""
    current = state.read_state(path, private=private)
    if current is None and (not make or state.create_new(path, text, 0o600 if private else 0o644)):
        return
    if (current or state.read_state(path, private=private)) != text:
        raise StateError(f"{path}: is not the key in {Layout.SECRETS}, and osception never overwrites it; "
                         f"restore the right one, or start over with `osception plan {REGENERATE}`")


def _key_files(env_dir: Path, have: dict, make: bool) -> None:
    paths = Layout(env_dir)
    _key_file(paths.ssh_key, have["ssh"]["private"], private=True, make=make)
    _key_file(paths.ssh_public_key, have["ssh"]["public"] + "\n", private=False, make=make)


def _lost(env_dir: Path) -> None:
    """No secrets.yaml: refuse when what was made with the secrets is still there."""
    paths = Layout(env_dir)
    lost = [p for p in (paths.ssh_key, paths.resources) if p.exists() or p.is_symlink()]
    if lost:
        raise StateError(f"{paths.secrets}: missing, but {lost[0]} exists: the environment's secrets were "
                         f"lost; restore {Layout.SECRETS}, or start over with `osception plan {REGENERATE}`")


def throwaway(env: str) -> Secrets:
    """Fresh secrets in memory, written nowhere: for a plan rendered only to read what
    it names (`osception bake` lists the control plane's images)."""
    return Secrets(_wanted(env))


def peek(env_dir: Path, env: str, regenerate: bool = False) -> Secrets:
    """The secrets `ensure` will give, writing nothing: the existing file's, each
    checked (and its SSH key files, where they exist), or a new environment's made in
    memory (also with `regenerate`). Hand them to `ensure(..., fresh=)` once every
    other input is checked. Raises StateError (one line naming the file)."""
    state.check_dir(env_dir)
    if not regenerate:
        text = state.read_state(Layout(env_dir).secrets)
        if text is not None:
            have, _ = _parse(text, Layout(env_dir).secrets, env)
            _key_files(env_dir, have, make=False)
            return Secrets(have)
        _lost(env_dir)
    return Secrets(_wanted(env))


def ensure(env_dir: Path, env: str, regenerate: bool = False, say=lambda msg: None,
           fresh: Secrets | None = None) -> Secrets:
    """The environment's secrets: made on first use (`fresh`, from `peek`, if given),
    then only ever read.

    Raises StateError (one line naming the file) for anything damaged. Several
    processes making a new environment's secrets at once all end up with the same;
    adding a new service's is done under the environment's lock (the CLI holds it).
    """
    path = Layout(env_dir).secrets
    if regenerate:
        for name, kept in _retire(env_dir):
            say(f"kept the old {name} as {kept}")
    text = state.read_state(path)
    if text is None:
        _lost(env_dir)
        made = fresh.data if fresh is not None else _wanted(env)
        if state.create_new(path, yaml.safe_dump(made, sort_keys=True)):
            have = made
        else:  # another process made them a moment ago: use those
            text = state.read_state(path)
    if text is not None:
        have, new = _parse(text, path, env)
        if new:  # peek's, when given: the secrets the rest of the input was checked with
            if fresh is not None:
                have = _with_new_services(have, new, fresh.data)
            state.write_private(path, yaml.safe_dump(have, sort_keys=True))
            say(f"{path}: made the secrets of {', '.join(new)}, new to this environment "
                f"(every other secret is as it was)")
    _key_files(env_dir, have, make=True)
    return Secrets(have)
