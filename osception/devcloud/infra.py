"""MariaDB, RabbitMQ and memcached from the distro, each as the devcloud's OWN instance:
own data dir under the state folder, own ports (layout.PORTS), bound to 127.0.0.1.
The machine's own services of these packages, if any, are never used or touched."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .. import services
from ..secrets import Secrets
from ..state import write_private
from .layout import HOST, PORTS, Layout
from .processes import DevcloudError, Spec, tail

# Debian package -> a file it installs that the devcloud runs.
PACKAGES = {
    "mariadb-server": "/usr/sbin/mariadbd",
    "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "memcached": "/usr/bin/memcached",
}
RABBITMQ_NODE = "osception-devcloud@localhost"


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_packages(layout: Layout) -> list[str]:
    """Install the missing packages when root, else say exactly what to install."""
    missing = [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
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
    return missing


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
    # RabbitMQ's Erlang VM would otherwise start (or use) the machine's epmd on 4369.
    return Spec("epmd", ["epmd", "-port", str(PORTS["epmd"]), "-address", HOST],
                port=PORTS["epmd"])


def rabbitmq(layout: Layout, secrets: Secrets) -> Spec:
    home = layout.data("rabbitmq")  # also $HOME: the Erlang cookie lives there
    home.mkdir(parents=True, exist_ok=True)
    conf = layout.etc("rabbitmq")
    # default_user is created on the first boot: the user of transport_url.
    write_private(conf / "rabbitmq.conf", "\n".join([
        f"listeners.tcp.1 = {HOST}:{PORTS['rabbitmq']}",
        f"default_user = {services.RABBITMQ_USER}",
        f"default_pass = {secrets.rabbitmq_password}",
        "log.console = true",
        "log.console.level = warning",
        "log.file = false",
    ]) + "\n")
    (conf / "enabled_plugins").write_text("[].\n")  # no management plugin, no extra port
    (conf / "rabbitmq-env.conf").write_text("# osception devcloud: all settings are in the env\n")
    env = {
        "HOME": str(home),
        "RABBITMQ_NODENAME": RABBITMQ_NODE,
        "RABBITMQ_CONF_ENV_FILE": str(conf / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
        "RABBITMQ_CONFIG_FILE": str(conf / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(conf / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(conf / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(layout.root / "logs"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq-dist"]),
        "ERL_EPMD_PORT": str(PORTS["epmd"]),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    return Spec("rabbitmq", [PACKAGES["rabbitmq-server"]], port=PORTS["rabbitmq"], env=env,
                config=[conf / "rabbitmq.conf"], cwd=home)


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
