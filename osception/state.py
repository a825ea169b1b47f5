"""Per-environment state: one folder per environment name, its paths in `Layout`.

The state home is `$OSCEPTION_HOME`, else the user's data dir
(e.g. ~/.local/share/osception); the CLI's `--state-dir` wins over both.

Everything osception writes goes through `write_file`: a fresh temporary file
(O_EXCL, O_NOFOLLOW, random name) in a folder that only the user can write, then
renamed over the target. A planted symlink or `*.tmp` is never followed or reused,
and a reader never sees half a file. `lock` keeps one command at a time on an
environment.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets as _random
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import yaml

from .errors import OsceptionError

ENV_VAR = "OSCEPTION_HOME"
MAX_STATE_FILE = 1 << 20  # bytes; every state file osception writes is a few KiB


class StateError(OsceptionError, ValueError):
    """A problem with a state file or folder, told in one line naming it."""


class DuplicateKey(yaml.YAMLError):
    """A mapping that names the same key twice (YAML and JSON would keep the last)."""

    def __init__(self, key: object, line: int | None = None):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: a later
    `access_cidr: 0.0.0.0/0` must not silently win over the first."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` overrides by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise DuplicateKey(key, key_node.start_mark.line + 1)
                    seen.add(key)
                except TypeError:  # an unhashable key: the safe loader refuses it next
                    pass
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """YAML as yaml.safe_load reads it, but a duplicate key raises DuplicateKey."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json.loads' object_pairs_hook: a duplicate key raises DuplicateKey."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def read_input(path: Path, limit: int) -> bytes:
    """The bytes of a file the user gives osception (osception.yaml, tls: files), read
    as OpenSSH reads its config: a regular file (a FIFO must not hang the command, a
    device is not a file), owned by the user (or root), writable by nobody else (who
    could write it could choose what runs on the nodes). Refusals are StateError, one
    line naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise StateError(f"{path}: cannot read: {e.strerror}") from None

    def check(st: os.stat_result) -> None:
        if st.st_uid not in (os.getuid(), 0):
            raise StateError(f"{path}: owned by uid {st.st_uid}, not by you; osception reads only your own files")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise StateError(f"{path}: writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                             f"`chmod go-w {path}`")

    data = _read_regular(fd, path, limit, check)
    if len(data) > limit:
        raise StateError(f"{path}: larger than {limit // 1024} KiB")
    return data


def _read_regular(fd: int, path: Path, limit: int, check) -> bytes:
    """At most limit + 1 bytes of the open file `fd` (closed here), after it was found a
    regular file and `check(its stat)` raised nothing: the one reader of read_input and
    read_state, so a FIFO or a device is never read and a huge file never loaded."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{path}: not a regular file")
        check(st)
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
        return data
    except OSError as e:
        raise StateError(f"{path}: cannot read: {e.strerror}") from None
    finally:
        os.close(fd)


def home(override: Path | None = None) -> Path:
    if override is not None:
        return override
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(platformdirs.user_data_dir("osception"))


def env_dir(name: str, override: Path | None = None) -> Path:
    return home(override) / name


@dataclass(frozen=True)
class Layout:
    """An environment's state folder: every path in it named here, once (the devcloud's
    own folder: devcloud/layout.py; it keeps its secrets and SSH key the same way).

        <state home>/<env>/
            secrets.yaml          generated passwords and keys (0600)
            ssh/id_ed25519[.pub]  the environment's SSH keypair (0600 / 0644)
            ssh/known_hosts       its nodes' host keys, checked by `ssh`, `logs` and `apply`
            resources.json        what `up` made on the outer cloud: ids, addresses, MACs, MTU
            timings.json          seconds per phase, node and step
            plan/                 the last `osception plan` / `up` rendering
            applied/              the plan as last applied by `up` or `apply`
            ca.pem                the CA clients check the endpoints with (HTTPS)
            openrc-admin, openrc-demo, clouds.yaml   the new cloud's access (0600)
            tempest/              Tempest's workspace and runs
    """

    # As messages name them: relative to the folder.
    SECRETS = "secrets.yaml"
    SSH = "ssh"  # the key pair and known_hosts: kept aside whole with the secrets (--regenerate-secrets)
    SSH_KEY = f"{SSH}/id_ed25519"
    SSH_PUBLIC_KEY = f"{SSH_KEY}.pub"
    KNOWN_HOSTS = f"{SSH}/known_hosts"
    RESOURCES = "resources.json"
    TIMINGS = "timings.json"
    PLAN = "plan"
    APPLIED = "applied"
    CA = "ca.pem"
    CLOUDS_YAML = "clouds.yaml"
    TEMPEST = "tempest"

    root: Path

    @classmethod
    def of(cls, name: str, state_home: Path | None = None) -> "Layout":
        return cls(env_dir(name, state_home))

    @property
    def secrets(self) -> Path:
        return self.root / self.SECRETS

    @property
    def ssh(self) -> Path:
        return self.root / self.SSH

    @property
    def ssh_key(self) -> Path:
        return self.root / self.SSH_KEY

    @property
    def ssh_public_key(self) -> Path:
        return self.root / self.SSH_PUBLIC_KEY

    @property
    def known_hosts(self) -> Path:
        return self.root / self.KNOWN_HOSTS

    @property
    def resources(self) -> Path:
        return self.root / self.RESOURCES

    @property
    def timings(self) -> Path:
        return self.root / self.TIMINGS

    @property
    def plan(self) -> Path:
        return self.root / self.PLAN

    @property
    def applied(self) -> Path:
        return self.root / self.APPLIED

    @property
    def ca(self) -> Path:
        return self.root / self.CA

    @property
    def clouds_yaml(self) -> Path:
        return self.root / self.CLOUDS_YAML

    @property
    def tempest(self) -> Path:
        return self.root / self.TEMPEST

    def openrc(self, user: str) -> Path:
        return self.root / f"openrc-{user}"


def _check_owned(path: Path, st: os.stat_result) -> None:
    """A folder we write into: a folder, ours, and writable by nobody else."""
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{path}: not a folder")
    if st.st_uid != os.getuid():
        raise StateError(f"{path}: owned by uid {st.st_uid}, not by you; choose a folder of your own")
    # Group-writable is fine only for the user's own (private) group, as umask 002 makes.
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != os.getgid()):
        raise StateError(f"{path}: writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                         "choose a folder only you can write")


def check_dir(path: Path) -> None:
    """Refuse an existing `path` that is not a folder of the user's, writable by them alone."""
    if path.exists() or path.is_symlink():
        try:
            _check_owned(path, path.stat())
        except FileNotFoundError:  # a dangling symlink
            raise StateError(f"{path}: a symbolic link to nothing") from None


def ensure_dir(path: Path, mode: int = 0o700) -> None:
    """Create `path` (and its parents) if missing; refuse a folder others could write."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError:
        raise StateError(f"{path}: exists and is not a folder") from None
    _check_owned(path, path.stat())


@contextlib.contextmanager
def _folder(path: Path, mode: int):
    """An open descriptor of folder `path`, checked after opening: ours, writable by us alone."""
    ensure_dir(path, mode)
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _check_owned(path, os.fstat(dfd))
        yield dfd
    finally:
        os.close(dfd)


def _temp(dfd: int, name: str, text: str, mode: int) -> str:
    """A new file in the folder `dfd` holding `text`: random name, O_EXCL, O_NOFOLLOW."""
    tmp = f".{name}.{_random.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    return tmp


def write_file(path: Path, text: str, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """Write `text` to `path` atomically with `mode`, never through a symlink or a planted file.

    The temporary file is renamed over `path`, which replaces a symlink there rather
    than following it.
    """
    with _folder(path.parent, dir_mode) as dfd:
        tmp = _temp(dfd, path.name, text, mode)
        try:
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner, never briefly world-readable."""
    write_file(path, text, 0o600)


def create_new(path: Path, text: str, mode: int = 0o600) -> bool:
    """Create `path` holding `text` only if nothing is there yet (atomically, whole).

    Returns False, writing nothing, when `path` exists: of several processes creating
    the same file at once, exactly one wins and the others read the winner's file.
    """
    with _folder(path.parent, 0o700) as dfd:
        tmp = _temp(dfd, path.name, text, mode)
        try:
            os.link(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp, dir_fd=dfd)
        return True


def read_state(path: Path, private: bool = True, limit: int = MAX_STATE_FILE) -> str | None:
    """The text of a state file, or None when it does not exist.

    Refuses, in one line naming the file and never showing its content: a symlink,
    anything but a regular file of the user's, a private file others can read or
    write, a file larger than `limit`, text that is not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateError(f"{path}: is a symbolic link; osception keeps its state in plain files") from None
        raise StateError(f"{path}: cannot read: {e.strerror}") from None

    def check(st: os.stat_result) -> None:
        if st.st_uid != os.getuid():
            raise StateError(f"{path}: owned by uid {st.st_uid}, not by you")
        if private and st.st_mode & 0o077:
            raise StateError(f"{path}: readable or writable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                             f"it may have leaked: check it, then `chmod 600 {path}`")

    data = _read_regular(fd, path, limit, check)
    if len(data) > limit:
        raise StateError(f"{path}: larger than {limit // 1024} KiB; not a file osception wrote")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StateError(f"{path}: not UTF-8 text (byte {e.start})") from None


@contextlib.contextmanager
def lock(path: Path, say=lambda msg: None):
    """Hold the environment's lock (flock on its state folder) for the block.

    A second command on the same environment says once that it waits, then waits.
    The lock goes with the process: a killed command never leaves it behind.
    """
    ensure_dir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another osception command on {path} to finish (Ctrl-C to give up)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
