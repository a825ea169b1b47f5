"""Where the devcloud keeps everything, and the ports it listens on: one table each.

    <state home>/devcloud/
        secrets.yaml            this devcloud's passwords and keys (0600)
        devcloud.json           release, venv and config file of the last `up`
        clouds.yaml             admin and member entries (0600)
        etc/<project>/          config files where config.json puts them in /etc/<project>/
        pods/<pod>/<volume>/    the files of each pod's volumes (ConfigMaps, Secrets)
        home/                   HOME of the services: .<project> -> etc/<project>
        apps/                   tiny WSGI modules gunicorn loads
        data/                   MariaDB, RabbitMQ, Glance images, Nova/Neutron state
        lock/<service>/         oslo.concurrency lock paths
        logs/<process>.log      stdout+stderr of every process
        run/<process>.json      pid records: what `down` stops, what `up` restarts
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import services, state

HOST = "127.0.0.1"
VENV_ENV_VAR = "OSCEPTION_DEVCLOUD_VENV"

# The processes the devcloud runs of the services, {name: services.record.Process}, in
# lifecycle order: each service's Deployments it runs (its folder's devcloud.py). (Not
# nova-novncproxy, neutron's periodic workers, skyline: no consoles or dashboard here.)
PROCESSES = {name: p for s in services.SERVICES if s.devcloud for name, p in s.devcloud.processes.items()}
# Own ports, away from the services' usual ones, so that a MariaDB, RabbitMQ,
# memcached or another OpenStack already on this machine is never touched.
# Mostly the usual port + 20000; RabbitMQ is off that pattern because 25672 is
# the usual RabbitMQ's own Erlang distribution port. An API's is its service's
# (PROCESSES: a process named as its API).
PORTS = {
    "mariadb": 23306,
    "rabbitmq": 25682,
    "rabbitmq-tls": 25671,  # the controller's TLS listener (the local nodes', via the relay)
    "rabbitmq-dist": 25683,  # Erlang distribution, bound to 127.0.0.1
    "epmd": 24369,  # our own Erlang port mapper, not the machine's
    "memcached": 21211,
    **{name: p.port for name, p in PROCESSES.items() if p.port},
    # The controller's ingress (ingress.py): Traefik's entry points, the chart's pod
    # ports + 20000 (websecure 8443, web 8000); the Service's 443 and 80 are the relay's.
    "traefik": 28443,
    "traefik-web": 28000,
}
APIS = services.CATALOG_APIS  # the devcloud runs every API of the catalog
# The controller's Deployments the devcloud runs: process -> Deployment of the manifests.
DEPLOYMENTS = {name: p.deployment for name, p in PROCESSES.items() if not p.for_nodes}
# With local nodes (nodes.py), what their agents and guests need besides (a release
# may not have one: Process.release_has). nova-compute runs on the nodes.
NODE_DEPLOYMENTS = {name: p.deployment for name, p in PROCESSES.items() if p.for_nodes}


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def default(cls, state_home: Path | None = None) -> "Layout":
        return cls(state.home(state_home) / "devcloud")

    def etc(self, service: str) -> Path:
        return self.root / "etc" / service

    def data(self, name: str) -> Path:
        return self.root / "data" / name

    def lock(self, service: str) -> Path:
        return self.root / "lock" / service

    def log(self, process: str) -> Path:
        return self.root / "logs" / f"{process}.log"

    def record(self, process: str) -> Path:
        return self.root / "run" / f"{process}.json"

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def settings(self) -> Path:
        return self.root / "devcloud.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def bootstrap_stamps(self) -> Path:
        return self.root / "bootstrap.json"

    def make_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # holds passwords and a database open to its owner
        for sub in ("etc", "apps", "data", "lock", "logs", "run"):
            (self.root / sub).mkdir(exist_ok=True)
