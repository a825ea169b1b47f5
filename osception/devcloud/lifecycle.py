"""`up`, `status` and `down`: the devcloud's whole life, in the controller's order.

up:  packages -> venv -> config files -> MariaDB, RabbitMQ, memcached ->
     per service, in parallel: databases + migrations (Keystone: + bootstrap), then its
     API -> service users and catalog -> nova-compute -> member project, flavor, image
     -> the compute host can take servers.
Each step is skipped when already done and current, so `up` on a running devcloud
does nothing, and after a crash restarts only what is down.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import config as config_mod
from .. import releases, secrets as secrets_mod
from . import cloud, configs, infra, venv as venv_mod
from .bootstrap import Bootstrap
from .layout import APIS, HOST, PORTS, VENV_ENV_VAR, Layout
from .processes import DevcloudError, Processes, Spec, port_open

# Sync gunicorn workers per API: one request at a time each. Keystone checks
# every other API's tokens; Nova and Neutron call each other while booting servers.
WORKERS = {"keystone": 2, "glance": 1, "placement": 1, "neutron": 2, "nova": 2}
NOVA_DAEMONS = ("nova-conductor", "nova-scheduler", "nova-compute")
INFRA = ("epmd", "rabbitmq", "memcached", "mariadb")
START_ORDER = (*INFRA, *APIS, *NOVA_DAEMONS)
# Stop order: Nova first (its daemons hang once RabbitMQ is gone), the bus and the
# databases last.
STOP_ORDER = [("nova-compute", "nova-scheduler", "nova-conductor", *APIS),
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

    @classmethod
    def load(cls, layout: Layout) -> "Settings":
        try:
            return cls(**json.loads(layout.settings.read_text()))
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, layout: Layout) -> None:
        layout.settings.write_text(json.dumps(self.__dict__, indent=1) + "\n")


class Devcloud:
    def __init__(self, layout: Layout, say: Callable[[str], None] = print):
        self.layout = layout
        self.say = say
        self.procs = Processes(layout)

    # -- what runs ------------------------------------------------------------
    def specs(self, venv: Path, secrets) -> dict[str, Spec]:
        lay = self.layout
        out = {s.name: s for s in (infra.epmd(lay), infra.rabbitmq(lay, secrets),
                                   infra.memcached(lay), infra.mariadb(lay))}
        for svc in APIS:
            argv = [str(venv / "bin" / "gunicorn"), "--bind", f"{HOST}:{PORTS[svc]}",
                    "--workers", str(WORKERS[svc]), "--worker-class", "sync",
                    "--timeout", "300", "--graceful-timeout", "10",
                    "--pythonpath", str(lay.apps), f"{svc}_app:application"]
            out[svc] = Spec(svc, argv, port=PORTS[svc], env=configs.api_env(lay, svc),
                            config=[*configs.files_of(lay, svc), lay.apps / f"{svc}_app.py"],
                            ready=_http_ready(PORTS[svc], "/v3" if svc == "keystone" else "/"))
        nova_conf = lay.etc("nova") / "nova.conf"
        for daemon in NOVA_DAEMONS:
            out[daemon] = Spec(daemon, [str(venv / "bin" / daemon), "--config-file", str(nova_conf)],
                               config=configs.files_of(lay, "nova"))
        return out

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
    def up(self, release: str | None = None, config_path: Path | None = None,
           venv: Path | None = None) -> Settings:
        lay = self.layout
        lay.make_dirs()
        settings = Settings.load(lay)
        timings: dict[str, float] = {}
        t0 = time.monotonic()

        def phase(name: str, since: float) -> float:
            now = time.monotonic()
            timings[name] = round(now - since, 1)
            return now

        if config_path is not None:
            settings.config = str(config_path.resolve())
        cfg = config_mod.load(Path(settings.config)) if settings.config else config_mod.Config()
        release = release or (cfg.release if config_path else None) or settings.release
        releases.get(release)  # a clear error for an unknown release
        if cfg.release != release:
            cfg = config_mod.Config.model_validate(cfg.model_dump() | {"release": release})
        venv = venv or (Path(os.environ[VENV_ENV_VAR]) if os.environ.get(VENV_ENV_VAR) else None)
        if venv is None and settings.venv and settings.release == release:
            venv = Path(settings.venv)
        settings.release = release
        secrets = secrets_mod.ensure(lay.root, "devcloud")

        t = time.monotonic()
        installed = infra.ensure_packages(lay)
        if installed:
            self.say(f"installed {' '.join(installed)}")
        t = phase("packages", t)
        if venv is None:
            venv = lay.default_venv
            self.say(f"services venv {venv} (release {release})")
            venv_mod.ensure(lay, release, venv)
        else:
            venv_mod.check(venv)
            venv_mod.install_driver(lay, venv)
        venv = venv.resolve()
        settings.venv = str(venv)
        settings.save(lay)
        t = phase("venv", t)

        configs.write(cfg, secrets, lay, venv)
        specs = self.specs(venv, secrets)
        if all(self.procs.current(s) for s in specs.values()) and self._all_ready(specs):
            cloud.write_clouds_yaml(lay, secrets)
            self.say("devcloud already running")
            return settings

        # The infrastructure; a fresh MariaDB means every migration must run again.
        boot = Bootstrap(lay, secrets, venv)
        if not infra.mariadb_initialized(lay):
            boot.forget()
        infra.init_mariadb(lay, secrets)
        infra_specs = [specs[n] for n in INFRA]
        self.ensure_running(infra_specs[:1])  # epmd before RabbitMQ's Erlang looks for one
        self.procs.wait_ready(infra_specs[:1], 30)
        self.ensure_running(infra_specs[1:])
        self.procs.wait_ready(infra_specs, 90)
        t = phase("infrastructure", t)
        self.say(f"MariaDB, RabbitMQ, memcached ready ({timings['infrastructure']} s)")

        with ThreadPoolExecutor(max_workers=len(APIS)) as pool:
            # Keystone's bootstrap must meet an empty cache (stale tokens, roles).
            if not boot.done("keystone:migrate"):
                infra.flush_memcached()
            migrations = {svc: pool.submit(boot.migrate, svc) for svc in APIS}
            migrations["keystone"].result()
            self.ensure_running([specs["keystone"]])
            self.procs.wait_ready([specs["keystone"]], API_TIMEOUT)
            boot.service_accounts()
            t_accounts = phase("keystone", t)
            for svc in APIS[1:]:
                migrations[svc].result()
                self.ensure_running([specs[svc]])
            self.ensure_running([specs["nova-conductor"], specs["nova-scheduler"]])
            ran = [svc for svc, f in migrations.items() if f.result()]
        if ran:
            self.say(f"databases and migrations done: {', '.join(ran)}")
        self.procs.wait_ready([specs[s] for s in APIS], API_TIMEOUT)
        t = phase("apis", t_accounts)
        self.say(f"APIs answer: {', '.join(APIS)} ({round(t - t0, 1)} s since start)")

        # nova-compute registers in Placement once, at start: after its service user exists.
        since = datetime.now(timezone.utc) if self.ensure_running([specs["nova-compute"]]) else None
        conn = cloud.connect(secrets)
        if not boot.done("keystone:member"):
            cloud.ensure_member_project(conn, secrets)
            cloud.ensure_flavor_and_image(conn)
            boot.mark("keystone:member")
        deadline = time.monotonic() + COMPUTE_TIMEOUT
        while not cloud.compute_ready(conn, secrets, since):
            for daemon in NOVA_DAEMONS:
                if not self.procs.running(daemon):
                    raise self.procs.failure(daemon, f"{daemon} exited")
            if time.monotonic() > deadline:
                raise self.procs.failure("nova-compute", "the compute host did not become "
                                         f"schedulable within {COMPUTE_TIMEOUT} s")
            time.sleep(1)
        phase("compute", t)
        timings["total"] = round(time.monotonic() - t0, 1)
        cloud.write_clouds_yaml(lay, secrets)
        settings.timings = timings
        settings.save(lay)
        self.say(f"devcloud up in {timings['total']} s "
                 + " ".join(f"{k}={v}" for k, v in timings.items() if k != "total"))
        return settings

    def _all_ready(self, specs: dict[str, Spec]) -> bool:
        return all(s.is_ready() for s in specs.values())

    # -- status / down --------------------------------------------------------
    def status(self) -> list[tuple[str, int | None, str, int | None]]:
        """(process, pid, state, port) for every process the devcloud runs."""
        rows = []
        for name in START_ORDER:
            rec = self.procs.record(name)
            port = PORTS.get(name)
            if not self.procs.running(name):
                rows.append((name, None, "stopped", port))
                continue
            if name in APIS:
                ready = _http_ready(port, "/v3" if name == "keystone" else "/")()
            else:
                ready = port is None or port_open(port)
            rows.append((name, rec["pid"], "running" if ready else "starting", port))
        return rows

    def down(self, purge: bool = False) -> None:
        known = {n for group in STOP_ORDER for n in group}
        strays = [p.stem for p in (self.layout.root / "run").glob("*.json") if p.stem not in known]
        for group in [tuple(strays), *STOP_ORDER]:
            running = [n for n in group if self.procs.running(n)]
            if running:
                self.say(f"stopping {', '.join(running)}")
            self.procs.stop(list(group))
        if purge and self.layout.root.exists():
            keep = self.layout.default_venv
            for child in self.layout.root.iterdir():
                if child != keep:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            self.say(f"removed the devcloud's data in {self.layout.root}"
                     + (f" (kept its venv {keep})" if keep.exists() else ""))
