"""MariaDB, RabbitMQ and memcached from the distro, each as the devcloud's OWN instance:
own data dir under the state folder, own ports (layout.PORTS), bound to 127.0.0.1.
The machine's own services of these packages, if any, are never used or touched.

RabbitMQ is Debian 13's (4.x: it reads `deprecated_features.permit.*`), whatever this
machine runs, from a minimal Debian 13 root of its own in the machine's cache, run
with chroot in a mount namespace of its own (the devcloud's config, certificates and
data bound in) on this machine's network: it refuses what the release's RabbitMQ
refuses (releases.Release.rabbitmq_denied), with the controller's rabbitmq.conf."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .. import releases, services
from ..secrets import Secrets
from ..state import write_private
from .layout import HOST, PORTS, Layout
from .manifests import Manifests
from .processes import DevcloudError, Spec, tail
from .venv import cache_home

# Debian package -> a file it installs that the devcloud runs.
PACKAGES = {
    "mariadb-server": "/usr/sbin/mariadbd",
    "memcached": "/usr/bin/memcached",
    "debootstrap": "/usr/sbin/debootstrap",  # RabbitMQ's Debian 13 root
}
RABBITMQ_NODE = "osception-devcloud@localhost"
# RabbitMQ's root: Debian 13's rabbitmq-server (4.0.5 in trixie) and its Erlang.
RABBITMQ_SUITE = "trixie"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# Where the root sees the devcloud's RabbitMQ files: the paths of the controller's
# rabbitmq.conf (templates/k8s/11-rabbitmq.yaml.j2), so it applies as rendered.
RABBITMQ_ETC = "/etc/rabbitmq"
RABBITMQ_HOME = "/var/lib/rabbitmq"


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_packages(layout: Layout, say=print) -> list[str]:
    """Install the missing packages when root, else say exactly what to install; then
    RabbitMQ's root (once per machine)."""
    missing = [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        rabbitmq_root(layout, say)
        return []
    command = f"apt-get install -y --no-install-recommends {' '.join(missing)}"
    if not is_root() or not shutil.which("apt-get"):
        raise DevcloudError(f"missing Debian packages: {' '.join(missing)}; "
                            f"install them with: sudo {command}")
    log = layout.log("apt")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        for argv in (["apt-get", "update", "-qq"],
                     ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                      "-o", "DPkg::Lock::Timeout=300", *missing]):
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode:
                raise DevcloudError(f"`{' '.join(argv)}` failed; end of {log}:\n{tail(log)}")
    rabbitmq_root(layout, say)
    return missing


def rabbitmq_root_dir() -> Path:
    """Where RabbitMQ's root is: the machine's cache, shared by every devcloud."""
    return cache_home() / "rabbitmq" / f"root-{RABBITMQ_SUITE}"


def rabbitmq_root(layout: Layout, say=print) -> Path:
    """A minimal Debian 13 root with rabbitmq-server, built once per machine in its cache
    (debootstrap from the nodes' Debian mirror), then only read."""
    from .nodes import MIRROR  # noqa: PLC0415 (the nodes' mirror setting)
    root = rabbitmq_root_dir()
    if (root / ".osception-complete").exists():
        return root
    if not is_root():
        raise DevcloudError("the devcloud's RabbitMQ runs from a Debian 13 root built once with "
                            "debootstrap (root needed): run `osception devcloud up` as root once")
    build = root.with_name(root.name + ".build")
    shutil.rmtree(build, ignore_errors=True)
    build.parent.mkdir(parents=True, exist_ok=True)
    say(f"building RabbitMQ's Debian 13 root in {root} (debootstrap, once)")
    log = layout.log("rabbitmq-root")
    with open(log, "wb") as out:
        rc = subprocess.run(["debootstrap", "--variant=minbase", "--include=rabbitmq-server",
                             RABBITMQ_SUITE, str(build), MIRROR],
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc or not (build / RABBITMQ_SERVER.lstrip("/")).exists():
        raise DevcloudError(f"debootstrap of RabbitMQ's root failed; end of {log}:\n{tail(log)}")
    shutil.rmtree(build / "var/cache/apt/archives", ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    build.rename(root)
    version = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
                             capture_output=True, text=True).stdout.strip()
    (root / ".osception-complete").write_text(f"rabbitmq-server {version}\n")
    return root


def in_root(root: Path, binds: dict[str, Path], argv: list[str]) -> list[str]:
    """argv run in `root` (chroot) in a mount namespace of its own: the root read-only,
    /proc, /dev, a /tmp of its own and `binds` ({path in the root: path here}) mounted
    for this process only; they go away with it. The network is this machine's."""
    mounts = ['mount --bind "$r" "$r"', 'mount -o remount,bind,ro "$r"',
              'mount -t proc proc "$r/proc"', 'mount --bind /dev "$r/dev"',
              'mount -t tmpfs tmpfs "$r/tmp"']
    mounts += [f'mount --bind {shlex.quote(str(here))} "$r"{shlex.quote(inside)}'
               for inside, here in binds.items()]
    script = f'set -e; r={shlex.quote(str(root))}; ' + "; ".join(mounts) + '; exec chroot "$r" "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "osception-root", *argv]


def db_root_password(secrets: Secrets) -> str:
    # One MariaDB holds every service's databases here (the controller runs one per
    # service): it is made with the root password of Keystone's, the first one...
    return secrets.database_root["keystone"]


def open_to_every_root_password(secrets: Secrets) -> None:
    """...and stands in for every service's MariaDB (host mariadb-<service>): root
    logs in over TCP with any service's root password, as each Job's init container
    does with its own (MariaDB: one authentication method per password, OR-ed)."""
    via = " OR ".join(f"mysql_native_password USING PASSWORD('{p}')"
                      for p in dict.fromkeys([db_root_password(secrets),
                                              *secrets.database_root.values()]))
    argv = ["mariadb", f"--host={HOST}", f"--port={PORTS['mariadb']}", "--user=root",
            "-e", f"ALTER USER 'root'@'{HOST}' IDENTIFIED VIA {via}"]
    r = subprocess.run(argv, capture_output=True, text=True,
                       env={**os.environ, "MYSQL_PWD": db_root_password(secrets)})
    if r.returncode:
        raise DevcloudError(f"MariaDB refused the services' root passwords: {r.stderr.strip()}")


def _socket(layout: Layout) -> Path:
    """MariaDB's own unix socket (root's way in); unix sockets allow ~107 bytes."""
    path = layout.root / "run" / "mysqld.sock"
    if len(str(path)) > 100:
        digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:12]
        path = Path("/tmp") / f"osception-devcloud-{digest}.sock"
    return path


def init_mariadb(layout: Layout, secrets: Secrets) -> None:
    """A fresh data dir on the first start. Root logs in through the socket (as the
    system's root) or over TCP with the devcloud's password; services use their own users."""
    datadir = layout.data("mariadb")
    if mariadb_initialized(layout):
        return
    if datadir.exists():
        shutil.rmtree(datadir)  # a half-made data dir from an interrupted first start
    datadir.mkdir(parents=True)
    password = db_root_password(secrets)
    extra = layout.root / "run" / "mariadb-init.sql"
    # FLUSH PRIVILEGES loads the grant tables, which the bootstrap runs without.
    write_private(extra, "FLUSH PRIVILEGES;\n"
                         f"CREATE USER 'root'@'{HOST}' IDENTIFIED BY '{password}';\n"
                         f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{HOST}' WITH GRANT OPTION;\n")
    argv = ["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--skip-test-db",
            "--skip-name-resolve", f"--extra-file={extra}"]
    if is_root():
        argv.append("--user=root")
    log = layout.log("mariadb-install-db")
    with open(log, "wb") as out:
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
    extra.unlink()
    if rc:
        raise DevcloudError(f"mariadb-install-db failed; end of {log}:\n{tail(log)}")
    _init_marker(layout).touch()


def _init_marker(layout: Layout) -> Path:
    return layout.data("mariadb.initialized")


def mariadb_initialized(layout: Layout) -> bool:
    return _init_marker(layout).exists()


def mariadb(layout: Layout) -> Spec:
    argv = [
        PACKAGES["mariadb-server"], "--no-defaults",  # never the machine's /etc/mysql
        f"--datadir={layout.data('mariadb')}", f"--socket={_socket(layout)}",
        f"--pid-file={layout.root / 'run' / 'mysqld.pid'}",
        f"--bind-address={HOST}", f"--port={PORTS['mariadb']}", "--skip-name-resolve",
        "--max-connections=1000",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
        # Throw-away data: no fsync per commit and no doublewrite make the schema
        # migrations much faster, and a crash of the process still loses nothing.
        "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
    ]
    if is_root():
        argv.append("--user=root")  # the data dir is root's, under root's home
    return Spec("mariadb", argv, port=PORTS["mariadb"])


def epmd(layout: Layout) -> Spec:
    # RabbitMQ's Erlang VM would otherwise start (or use) the machine's epmd on 4369;
    # this one is the root's Erlang's.
    root = rabbitmq_root_dir()
    return Spec("epmd", ["chroot", str(root), "epmd", "-port", str(PORTS["epmd"]), "-address", HOST],
                port=PORTS["epmd"])


def rabbitmq_conf(man: Manifests, release: releases.Release) -> str:
    """The controller's rabbitmq.conf (ConfigMap rabbitmq-config) on the devcloud's
    ports, denying the deprecated features the release's RabbitMQ denies by default
    (Debian 13's 4.0 permits them unless told)."""
    ports = {services.RABBITMQ_PORT: PORTS["rabbitmq"], services.RABBITMQ_TLS_PORT: PORTS["rabbitmq-tls"]}
    lines = []
    for line in man.config_maps["rabbitmq-config"]["rabbitmq.conf"].splitlines():
        key, sep, value = (part.strip() for part in line.partition("="))
        if sep and key.startswith("listeners."):
            port = int(value.rsplit(":", 1)[1])
            line = f"{key} = {HOST}:{ports[port]}"
        elif key.startswith("log."):
            continue  # the devcloud's own, below
        lines.append(line)
    lines += ["# osception devcloud: what the release's RabbitMQ "
              f"{release.rabbitmq} denies by default",
              *(f"deprecated_features.permit.{f} = false" for f in release.rabbitmq_denied),
              "log.console = true", "log.console.level = warning", "log.file = false"]
    return "\n".join(lines) + "\n"


def rabbitmq(layout: Layout, man: Manifests, release: releases.Release) -> Spec:
    """The controller's RabbitMQ: its rabbitmq.conf (both listeners: plain for the
    services here, TLS with the controller's certificate for the local nodes), its
    definitions.json (the services' user and permissions), Debian 13's broker."""
    root = rabbitmq_root_dir()
    home = layout.data("rabbitmq")  # also $HOME: the Erlang cookie lives there
    # Its data dir is of the broker that made it: another one's (an earlier devcloud's
    # Debian 12 broker) it cannot upgrade. Queues and messages are throw-away here.
    broker = root / ".osception-complete"
    stamp = home / ".osception-broker"
    if broker.exists() and (not stamp.exists() or stamp.read_text() != broker.read_text()):
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        stamp.write_text(broker.read_text())
    home.mkdir(parents=True, exist_ok=True)
    conf = layout.etc("rabbitmq")
    (conf / "certs").mkdir(parents=True, exist_ok=True)
    write_private(conf / "rabbitmq.conf", rabbitmq_conf(man, release))
    secret = man.secrets["rabbitmq-secrets"]
    for name in ("definitions.json", "rabbitmq-cert.pem", "rabbitmq-key.pem"):
        write_private(conf / ("certs" if name.endswith(".pem") else "") / name, secret[name])
    (conf / "enabled_plugins").write_text("[].\n")  # no management plugin, no extra port
    (conf / "rabbitmq-env.conf").write_text("# osception devcloud: all settings are in the env\n")
    env = {
        "HOME": RABBITMQ_HOME,
        "RABBITMQ_NODENAME": RABBITMQ_NODE,
        "RABBITMQ_CONF_ENV_FILE": f"{RABBITMQ_ETC}/rabbitmq-env.conf",
        "RABBITMQ_CONFIG_FILE": f"{RABBITMQ_ETC}/rabbitmq.conf",
        "RABBITMQ_ADVANCED_CONFIG_FILE": f"{RABBITMQ_ETC}/advanced.config",
        "RABBITMQ_ENABLED_PLUGINS_FILE": f"{RABBITMQ_ETC}/enabled_plugins",
        "RABBITMQ_MNESIA_BASE": f"{RABBITMQ_HOME}/mnesia",
        "RABBITMQ_LOG_BASE": f"{RABBITMQ_HOME}/log",
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq-dist"]),
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    argv = in_root(root, {RABBITMQ_ETC: conf, RABBITMQ_HOME: home}, [RABBITMQ_SERVER])
    return Spec("rabbitmq", argv, port=PORTS["rabbitmq"], env=env,
                config=[conf / "rabbitmq.conf", conf / "definitions.json", conf / "certs" / "rabbitmq-cert.pem"],
                cwd=home)


def memcached(layout: Layout) -> Spec:
    argv = [PACKAGES["memcached"], "-l", HOST, "-p", str(PORTS["memcached"]), "-U", "0", "-m", "64"]
    if is_root():
        argv += ["-u", "root"]  # memcached refuses root unless told which user to be
    return Spec("memcached", argv, port=PORTS["memcached"])


def flush_memcached() -> None:
    """Keystone caches in memcached: stale entries after re-made databases break logins."""
    import socket

    with socket.create_connection((HOST, PORTS["memcached"]), timeout=5) as s:
        s.sendall(b"flush_all\r\n")
        s.recv(64)
