"""`up`, `status` and `down`: the devcloud's whole life, in the controller's order.

up:  packages -> venv -> the controller's plan, its pods' files -> MariaDB, RabbitMQ,
     memcached -> per service, in parallel: its Jobs (databases, migrations; Keystone:
     + bootstrap), then its API -> the Jobs waiting for Keystone (service users and
     catalog) -> nova-compute -> member project, flavor, image -> the compute host
     can take servers.
Each step is skipped when already done and current, so `up` on a running devcloud
does nothing, and after a crash restarts only what is down.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from .. import config as config_mod
from .. import releases
from ..progress import Laps
from .. import secrets as secrets_mod
from . import cloud, configs, infra, ingress
from . import venv as venv_mod
from .bootstrap import Bootstrap
from .layout import APIS, DEPLOYMENTS, HOST, NODE_DEPLOYMENTS, PORTS, PROCESSES, VENV_ENV_VAR, Layout
from .manifests import Local, Manifests
from .processes import DevcloudError, Processes, Spec, port_open, port_taken

# Why `up --nodes` disabled the fake hypervisor's compute service (a plain `up` enables
# a service disabled for this reason only, never one an operator disabled).
RETIRED_REASON = "osception devcloud: the local nodes are the computes"
# What must keep running for the fake hypervisor's compute host to become schedulable.
NOVA_DAEMONS = ("nova-conductor", "nova-scheduler", "nova-compute")
# Traefik (ingress.py) needs nothing started before it: it answers 502 until its
# backends listen, as on the controller.
INFRA = ("epmd", "rabbitmq", "memcached", "mariadb", "traefik")
# The services' daemons that serve no API (e.g. Nova's conductor and scheduler): they
# start once their service's migrations are done, after its API.
DAEMONS = tuple(p for p in DEPLOYMENTS if p not in APIS)
# The services' processes, then the fake hypervisor's nova-compute (its own, not a
# Deployment of the controller: a compute node's).
START_ORDER = (*INFRA, *APIS, *DAEMONS, "nova-compute")
# Stop order: the services first, together (Nova's daemons hang once RabbitMQ is
# gone), the bus and the databases last.
STOP_ORDER = [("traefik", "nova-compute", *PROCESSES),
              ("rabbitmq", "memcached"), ("mariadb",), ("epmd",)]
API_TIMEOUT = 180
COMPUTE_TIMEOUT = 180


def _http_ready(port: int, path: str = "/") -> Callable[[], bool]:
    def check() -> bool:
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5).close()
            return True
        except urllib.error.HTTPError as e:
            return e.code < 500  # e.g. Glance's 300 Multiple Choices
        except OSError:
            return False

    return check


@dataclass
class Settings:
    """What `up` was last run with; a later `up` without options reuses it."""

    release: str = releases.DEFAULT_RELEASE
    venv: str | None = None
    config: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Local compute and network nodes (nodes.py): {"compute": N, "network": M}, or None
    # for the fake hypervisor in the devcloud itself.
    nodes: dict[str, int] | None = None

    @classmethod
    def load(cls, layout: Layout) -> "Settings":
        try:
            return cls(**json.loads(layout.settings.read_text()))
        except (OSError, ValueError, TypeError):
            return cls()

    def user_config(self) -> config_mod.Config:
        """The osception.yaml given to `up` (its `overrides:` apply), else the defaults."""
        try:
            # The devcloud's image hosts are on this machine (tests/image_hosts.py plays them).
            return (config_mod.load(Path(self.config), config_mod.LOCAL_IMAGE_HOSTS) if self.config
                    else config_mod.Config())
        except config_mod.ConfigError as e:
            raise DevcloudError(str(e)) from None

    def run_config(self) -> config_mod.Config:
        """The config the devcloud runs: the user's, on the devcloud's release."""
        data = self.user_config().model_dump()
        data["release"] = self.release
        for role, count in (self.nodes or {}).items():
            data["nodes"][role]["count"] = count
        return config_mod.Config.model_validate(data, context=config_mod.LOCAL_IMAGE_HOSTS)

    def save(self, layout: Layout) -> None:
        layout.settings.write_text(json.dumps(self.__dict__, indent=1) + "\n")


class Devcloud:
    def __init__(self, layout: Layout, say: Callable[[str], None] = print):
        self.layout = layout
        self.say = say
        self.procs = Processes(layout)

    # -- what runs ------------------------------------------------------------
    def specs(self, venv: Path, secrets, man: Manifests, release: releases.Release) -> dict[str, Spec]:
        """Every process: the infrastructure, the controller's Deployments as the manifests
        give them (APIs under gunicorn instead of uWSGI), and a compute node's nova-compute."""
        lay = self.layout
        local = Local(lay, venv)
        out = {s.name: s for s in (infra.epmd(lay), infra.rabbitmq(lay, man, release),
                                   infra.memcached(lay), infra.mariadb(lay),
                                   ingress.spec(lay, self.say))}
        under_gunicorn = configs.uwsgi_apis(man)
        for name, deployment in configs.deployments(man).items():
            pod = man.pod(deployment)
            c = pod.containers[0]
            project = local.project(pod, c)  # nova for nova-api and nova-metadata
            if name in under_gunicorn:  # uwsgi <ini>: its module under gunicorn (configs.APP_MODULE)
                env = local.env(c, local.mounts(pod, c))
                argv = [str(venv / "bin" / "gunicorn"), "--bind", f"{HOST}:{PORTS[name]}",
                        "--workers", str(PROCESSES[name].workers), "--worker-class", "sync",
                        "--timeout", "300", "--graceful-timeout", "10",
                        # uWSGI, the controller's server, reads no X-Forwarded-* header;
                        # gunicorn would (from 127.0.0.1: Traefik here) and hide an API
                        # that does not parse them itself (enable_proxy_headers_parsing).
                        "--forwarded-allow-ips", "",
                        "--pythonpath", str(lay.apps), f"{name}_app:application"]
                out[name] = Spec(name, argv, port=PORTS[name],
                                 env=env | configs.api_env(lay, project),
                                 config=[*configs.files_of(lay, project), lay.apps / f"{name}_app.py"],
                                 ready=_http_ready(PORTS[name], PROCESSES[name].ready))
            else:  # its own command; an API among them listens where overrides.py says
                argv, env = local.command(pod, c)
                api = name in APIS
                out[name] = Spec(name, argv, env=env, port=PORTS[name] if api else None,
                                 config=configs.files_of(lay, project),
                                 ready=_http_ready(PORTS[name], PROCESSES[name].ready) if api else None)
        if man.with_nodes:  # nova-compute runs on the local nodes
            return out
        # A compute node's nova-compute, not the controller's: no manifest runs it.
        out["nova-compute"] = Spec(
            "nova-compute", [str(venv / "bin" / "nova-compute"), "--config-file",
                             str(lay.etc("") / configs.COMPUTE_CONF)],
            # and its fake hypervisor (venv.install_fake_snapshots): a new one restarts it
            config=[*configs.files_of(lay, "nova-compute"), venv_mod.FAKE_SNAPSHOTS])
        return out

    def _init_containers(self, man: Manifests, venv: Path) -> None:
        """The Deployments' init containers other than `wait` (a patched project's
        `patch`, k8s/_kolla.j2), as a new pod's, before anything starts or restarts: a
        pod of a changed spec gets a new emptyDir (manifests.Local.empty_dir), so a
        patch that does not apply leaves the running processes as they are."""
        local = Local(self.layout, venv)
        for deployment in sorted(set(configs.deployments(man).values())):
            pod = man.pod(deployment)
            for c in (c for c in pod.init if c.waits is None):
                argv, env = local.command(pod, c)
                r = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
                if r.returncode:
                    raise DevcloudError(f"{pod.name}/{c.name}: "
                                        f"{r.stderr.strip().removeprefix('patch failed: ')}")
                if not r.stdout.startswith("unchanged"):
                    self.say(f"  {pod.name}/{c.name}: {r.stdout.strip()}")

    def _drop_stale_empty_dirs(self, man: Manifests, venv: Path) -> None:
        """Once every process runs with its pod's current spec: the older emptyDirs."""
        local = Local(self.layout, venv)
        for pod in man.pods.values():
            for folder in local.stale_empty_dirs(pod):
                shutil.rmtree(folder, ignore_errors=True)

    def check_ports(self, specs: dict[str, Spec]) -> None:
        """Before starting anything: every port we need is ours or free."""
        for spec in specs.values():
            if spec.port and not self.procs.running(spec.name) and port_open(spec.port):
                raise port_taken(spec)

    def ensure_running(self, specs: list[Spec]) -> list[Spec]:
        """Start what is down; restart what runs with another command line or config."""
        started = []
        for spec in specs:
            if self.procs.current(spec):
                continue
            if self.procs.running(spec.name):
                self.say(f"  restarting {spec.name} (its config changed)")
                self.procs.stop([spec.name])
            self.procs.start(spec)
            started.append(spec)
        return started

    # -- up -------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self):
        """One `up` or `down` at a time per devcloud (e.g. a test run and a user)."""
        self.layout.make_dirs()
        with open(self.layout.root / "devcloud.lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.say("waiting for another `osception devcloud` command to finish")
                fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def up(self, release: str | None = None, config_path: Path | None = None,
           venv: Path | None = None, nodes: dict[str, int] | None = None, bake: bool = False) -> Settings:
        """`nodes`: start local compute and network nodes ({"compute": N, "network": M});
        None keeps what the last `up` had. `bake`: first bake their node image, as
        `osception bake` does on a cloud (nodes.LocalNodes.bake)."""
        with self.exclusive():
            return self._up(release, config_path, venv, nodes, bake)

    def _up(self, release: str | None, config_path: Path | None, venv: Path | None,
            nodes: dict[str, int] | None = None, bake: bool = False) -> Settings:
        lay = self.layout
        clock = Laps()
        settings = Settings.load(lay)
        if config_path is not None:
            settings.config = str(config_path.resolve())
        cfg = settings.user_config()
        release = release or (cfg.release if config_path else None) or settings.release
        releases.get(release)  # a clear error for an unknown release
        venv = venv or (Path(os.environ[VENV_ENV_VAR]) if os.environ.get(VENV_ENV_VAR) else None)
        if (venv is None and settings.venv and settings.release == release
                and Path(settings.venv).exists()):
            venv = Path(settings.venv)  # the venv of the last `up`
        settings.release = release
        if nodes is not None:
            settings.nodes = nodes or None
        cfg = settings.run_config()
        secrets = secrets_mod.ensure(lay.root, "devcloud")

        installed = infra.ensure_packages(lay, self.say)
        if installed:
            self.say(f"installed {' '.join(installed)}")
        clock.lap("packages")
        settings.venv = str(self._venv(release, venv))
        settings.save(lay)
        clock.lap("venv")

        man = configs.write(cfg, secrets, lay, Path(settings.venv), nodes=bool(settings.nodes))
        self._init_containers(man, Path(settings.venv))
        specs = self.specs(Path(settings.venv), secrets, man, releases.get(release))
        boot = Bootstrap(lay, secrets, Path(settings.venv), man)
        if (all(self.procs.current(s) for s in specs.values()) and self._all_ready(specs)
                and not any(boot.pending(svc) for svc in APIS)):
            cloud.write_clouds_yaml(lay, secrets)
            if settings.nodes:  # a node whose user data changed gets its day-2 pass
                self._nodes(cfg, secrets, clock, bake)
            self.say("devcloud already running")
            return settings

        self.check_ports(specs)
        self._infrastructure(specs, boot, secrets)
        clock.lap("infrastructure")
        self.say(f"MariaDB, RabbitMQ, memcached ready ({clock.laps['infrastructure']} s)")
        self._services(specs, boot, clock)
        self.say(f"APIs answer: {', '.join(APIS)} ({clock.total()} s since start)")
        self._compute(specs, boot, secrets)
        self._drop_stale_empty_dirs(man, Path(settings.venv))
        clock.lap("compute")
        if settings.nodes:
            self._nodes(cfg, secrets, clock, bake)

        cloud.write_clouds_yaml(lay, secrets)
        settings.timings = {**clock.laps, "total": clock.total()}
        settings.save(lay)
        self.say(f"devcloud up in {clock.total()} s "
                 + " ".join(f"{k}={v}" for k, v in clock.laps.items()))
        return settings

    def _venv(self, release: str, venv: Path | None) -> Path:
        """The given venv (plus the test ML2 driver), else the release's in the machine's
        cache (built when missing or stale)."""
        if venv is None:
            venv = venv_mod.cached(release)
            self.say(f"services venv {venv} (release {release})")
            venv_mod.ensure(self.layout, release, venv)
        else:
            venv_mod.check(venv)
            venv_mod.install_driver(self.layout, venv)
        return venv.resolve()

    def _infrastructure(self, specs: dict[str, Spec], boot: Bootstrap, secrets) -> None:
        if not infra.mariadb_initialized(self.layout):
            boot.forget()  # a fresh MariaDB: every migration must run again
        infra.init_mariadb(self.layout, secrets)
        epmd, *others = [specs[n] for n in INFRA]
        self.ensure_running([epmd])  # before RabbitMQ's Erlang looks for one
        self.procs.wait_ready([epmd], 30)
        self.ensure_running(others)
        self.procs.wait_ready(others, 90)
        infra.open_to_every_root_password(secrets)

    def _services(self, specs: dict[str, Spec], boot: Bootstrap, clock: Laps) -> None:
        """Each service's migrations in parallel, as the controller's Jobs run; each API
        starts once its own are done, Keystone first, then its users and catalog."""
        with ThreadPoolExecutor(max_workers=len(APIS)) as pool:
            if boot.pending("keystone"):
                infra.flush_memcached()  # Keystone's bootstrap must meet an empty cache
            migrations = {svc: pool.submit(boot.migrate, svc) for svc in APIS}
            migrations["keystone"].result()
            self.ensure_running([specs["keystone"]])
            self.procs.wait_ready([specs["keystone"]], API_TIMEOUT)
            boot.after_api("keystone")  # the service accounts
            clock.lap("keystone")
            for svc in APIS[1:]:
                migrations[svc].result()
                self.ensure_running([specs[svc]])
            self.ensure_running([specs[p] for p in DAEMONS])
            # With local nodes: the nova metadata API and the Neutron RPC server (where
            # split), on the databases the migrations above made.
            for_nodes = [specs[p] for p in NODE_DEPLOYMENTS if p in specs]
            self.ensure_running(for_nodes)
            ran = [svc for svc, f in migrations.items() if f.result()]
        if ran:
            self.say(f"databases and migrations done: {', '.join(ran)}")
        self.procs.wait_ready([specs[s] for s in APIS] + for_nodes, API_TIMEOUT)
        clock.lap("apis")

    def _compute(self, specs: dict[str, Spec], boot: Bootstrap, secrets) -> None:
        """nova-compute, once its service user exists (it registers in Placement once,
        at start), the member project, flavor and image, then a schedulable host."""
        local = "nova-compute" in specs
        restarted = self.ensure_running([specs["nova-compute"]]) if local else []
        since = datetime.now(timezone.utc) if restarted else None
        conn = cloud.connect(secrets)
        if not boot.done("keystone:member"):
            cloud.ensure_member_project(conn, secrets)
            cloud.ensure_flavor_and_image(conn)
            boot.mark("keystone:member")
        if not local:  # the local nodes' nova-compute joins later (_nodes)
            return
        self._restore_fake_compute(conn)
        try:
            for _ in sdk_utils.iterate_timeout(COMPUTE_TIMEOUT, "compute host", wait=1):
                if cloud.compute_ready(conn, secrets, since):
                    break
                for daemon in NOVA_DAEMONS:
                    if not self.procs.running(daemon):
                        raise self.procs.failure(daemon, f"{daemon} exited")
        except sdk_exc.ResourceTimeout:
            raise self.procs.failure("nova-compute", "the compute host did not become "
                                     f"schedulable within {COMPUTE_TIMEOUT} s") from None

    def _nodes(self, cfg: config_mod.Config, secrets, clock: Laps, bake: bool = False) -> None:
        """The local compute and network nodes: booted, set up from their own user data,
        followed until each says done (or failed)."""
        from .nodes import LocalNodes, NODES_TIMEOUT

        self._retire_fake_compute(secrets)
        local = LocalNodes(self.layout, say=self.say)
        local.up(cfg, secrets, bake=bake)
        clock.lap("nodes-boot")
        local.follow(NODES_TIMEOUT)
        clock.lap("nodes-setup")

    def _retire_fake_compute(self, secrets) -> None:
        """With local nodes, nova-compute runs on them only: the devcloud's own (the fake
        hypervisor a plain `up` started) stops, and its compute service goes (else the
        scheduler may still place servers on it). Nova refuses to delete a compute service
        that still hosts servers (409): those are the user's, so the service is disabled
        instead (nothing is scheduled there) and the line says how to remove it."""
        from .. import topology
        from .nodes import forget_host

        running = self.procs.running("nova-compute")
        if running:
            self.procs.stop(["nova-compute"])
        conn = cloud.connect(secrets)
        deleted, disabled = [], []
        for svc in conn.compute.services(binary="nova-compute"):
            if topology.is_node_name(svc.host):
                continue
            try:
                conn.compute.delete_service(svc, ignore_missing=True)
            except sdk_exc.ConflictException:
                if svc.status != "disabled":
                    conn.compute.disable_service(svc, svc.host, svc.binary,
                                                 disabled_reason=RETIRED_REASON)
                hosted = len(list(conn.compute.servers(all_projects=True, compute_host=svc.host)))
                disabled.append(f"{svc.host}: it still hosts {hosted} server(s); delete them "
                                "and `devcloud up --nodes` again removes it")
            else:
                forget_host(secrets, svc.host)  # its Neutron agents, if any
                deleted.append(svc.host)
        done = (["stopped the devcloud's fake nova-compute"] if running else []) + \
            ([f"deleted its compute service ({', '.join(sorted(deleted))})"] if deleted else []) + \
            ([f"disabled its compute service ({'; '.join(sorted(disabled))})"] if disabled else [])
        if done:
            self.say("the local nodes are the computes: " + " and ".join(done))

    def _restore_fake_compute(self, conn) -> None:
        """A plain `up` after `up --nodes`: the fake hypervisor's compute service that
        `up --nodes` disabled (it hosted servers) is enabled again."""
        for svc in conn.compute.services(binary="nova-compute"):
            if svc.status == "disabled" and svc.disabled_reason == RETIRED_REASON:
                conn.compute.enable_service(svc, svc.host, svc.binary)
                self.say(f"the fake nova-compute is the compute again: enabled its service ({svc.host})")

    def _all_ready(self, specs: dict[str, Spec]) -> bool:
        return all(s.is_ready() for s in specs.values())

    # -- restart --------------------------------------------------------------
    def restart(self, node: str | None = None) -> dict[str, float]:
        """Reboot a node of the plan as its VM would be: a local node (nodes.LocalNodes.reboot),
        or the controller: its processes (and the relay, servicelb's part) stopped, then
        started again by `up` from the same rendered state (done migrations and bootstrap
        stay done). None: the controller, then the network nodes, then the computes. Then,
        until every rebooted node (every node, after the controller's) reports again: since
        its boot, or the controller's start. Seconds: the controller's (until its APIs answer
        again) and `reporting` (until every rebooted node reports)."""
        from .. import topology
        from .nodes import LocalNodes

        if not self.layout.settings.exists():
            raise DevcloudError(f"no devcloud in {self.layout.root}: run `osception devcloud up`")
        with self.exclusive():
            settings = Settings.load(self.layout)
            cfg = settings.run_config()
            controller = next(n.name for n in topology.nodes(cfg) if n.role == "controller")
            local = LocalNodes(self.layout, say=self.say)
            names = local.names() if settings.nodes else []
            if node not in (None, controller, *names):
                raise DevcloudError(f"no node {node} in this devcloud: its nodes are "
                                    f"{', '.join([controller, *names])}")
            secrets = secrets_mod.ensure(self.layout.root, "devcloud")
            since = datetime.now(timezone.utc)
            start = time.monotonic()
            took = {}
            if node in (None, controller):
                self.say(f"{controller}: stopping the controller's processes")
                for group in [("relay",), *STOP_ORDER]:
                    self.procs.stop(list(group))
                self._up(None, None, None)
                took[controller] = time.monotonic() - start
            # an agent's report after the controller's start is to the new one
            back = {name: since for name in names} if node in (None, controller) else {}
            # The network nodes before the computes, as a planned restart of a whole cloud
            # goes: the guests Nova starts again on a compute's boot find DHCP and their
            # routers (a guest that gives up DHCP, as CirrOS does, would stay unreachable).
            for role in ("network", "compute"):
                rebooted = [n for n in local.local_nodes(cfg)
                            if n.node.role == role and node in (None, n.node.name)]
                if rebooted:
                    with ThreadPoolExecutor(max_workers=len(rebooted)) as pool:
                        back |= dict(zip([n.node.name for n in rebooted], pool.map(local.reboot, rebooted)))
            if back:
                local.wait_back(secrets, back)
                took["reporting"] = time.monotonic() - start
            return took

    # -- status / down --------------------------------------------------------
    def processes(self) -> list[str]:
        """Every process this devcloud runs: with local nodes, no nova-compute here but
        what the nodes need (NODE_DEPLOYMENTS this release has, the apt proxy, the relay)
        and the nodes themselves."""
        settings = Settings.load(self.layout)
        if not settings.nodes:
            return list(START_ORDER)
        from .nodes import LocalNodes

        release = releases.get(settings.release)
        for_nodes = [p for p in NODE_DEPLOYMENTS
                     if PROCESSES[p].release_has is None or getattr(release, PROCESSES[p].release_has)]
        from .nodes import node_config

        proxies = ["apt-cacher-ng"] + (["pip-proxy"] if node_config(settings.run_config()).node_source == "pypi"
                                       else [])
        return [n for n in START_ORDER if n != "nova-compute"] + for_nodes + proxies + \
            ["relay"] + [f"node-{n}" for n in LocalNodes(self.layout).names()]

    def status(self) -> list[tuple[str, int | None, str, int | None]]:
        """(process, pid, state, port) for every process the devcloud runs."""
        rows = []
        for name in self.processes():
            rec = self.procs.record(name)
            port = PORTS.get(name)
            if not self.procs.running(name):
                rows.append((name, None, "stopped", port))
                continue
            if name in APIS:
                ready = _http_ready(port, PROCESSES[name].ready)()
            else:
                ready = port is None or port_open(port)
            rows.append((name, rec["pid"], "running" if ready else "starting", port))
        return rows

    def down(self, purge: bool = False) -> None:
        if not self.layout.root.exists():
            self.say(f"no devcloud in {self.layout.root}")
            return
        with self.exclusive():
            self._down(purge)

    def _down(self, purge: bool) -> None:
        from .nodes import LocalNodes

        LocalNodes(self.layout, say=self.say).down()
        known = {n for group in STOP_ORDER for n in group}
        strays = [p.stem for p in (self.layout.root / "run").glob("*.json") if p.stem not in known]
        for group in [tuple(strays), *STOP_ORDER]:
            running = [n for n in group if self.procs.running(n)]
            if running:
                self.say(f"stopping {', '.join(running)}")
            self.procs.stop(list(group))
        if purge and self.layout.root.exists():
            for child in self.layout.root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            self.say(f"removed the devcloud's data in {self.layout.root} (the services venvs "
                     f"stay in {venv_mod.cache_home() / 'venvs'})")
