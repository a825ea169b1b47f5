"""Databases, schema migrations and Keystone's bootstrap, the way the controller's
Jobs do them (same scripts, same commands, same order within each service), then
the service users and catalog through the controller's own service_accounts.py.

Each step leaves a stamp (bootstrap.json): a fingerprint of what it ran with, so a
warm `up` skips what is already done and redoes it when the config or venv changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

from .. import render, services
from ..secrets import Secrets
from . import configs, infra
from .layout import APIS, Layout
from .processes import DevcloudError, tail

SCRIPTS = Path(render.__file__).parent / "templates" / "scripts"
REGION = "RegionOne"


def _short(argv: list[str]) -> str:
    """`keystone-manage bootstrap` for a long command line: its name and sub-commands."""
    words, skip = [Path(argv[0]).name], False
    for arg in argv[1:]:
        if skip or arg.startswith("-"):
            skip = not skip and arg.startswith("--") and "=" not in arg
            continue
        words.append(Path(arg).name if "/" in arg else arg)
    return " ".join(words)


class Bootstrap:
    def __init__(self, layout: Layout, secrets: Secrets, venv: Path):
        self.layout, self.secrets, self.venv = layout, secrets, venv
        self._lock = threading.Lock()  # stamps are written from several threads

    # -- stamps ---------------------------------------------------------------
    def _stamps(self) -> dict:
        try:
            return json.loads(self.layout.bootstrap_stamps.read_text())
        except (OSError, ValueError):
            return {}

    def fingerprint(self, step: str) -> str:
        h = hashlib.sha256(f"{step}\0{self.venv.resolve()}".encode())
        stamp = self.venv / ".osception-lock.sha256"  # which lock the venv holds
        h.update(stamp.read_bytes() if stamp.exists() else b"")
        h.update(json.dumps(self.secrets.data, sort_keys=True).encode())  # e.g. re-made secrets
        service = step.split(":")[0]
        for path in configs.files_of(self.layout, service) if service in APIS else ():
            h.update(path.read_bytes())
        return h.hexdigest()

    def done(self, step: str) -> bool:
        return self._stamps().get(step) == self.fingerprint(step)

    def mark(self, step: str) -> None:
        with self._lock:
            stamps = self._stamps()
            stamps[step] = self.fingerprint(step)
            self.layout.bootstrap_stamps.write_text(json.dumps(stamps, indent=1))

    def forget(self) -> None:
        """A fresh database server: everything must run again."""
        self.layout.bootstrap_stamps.unlink(missing_ok=True)

    # -- running things -------------------------------------------------------
    def run(self, log_name: str, argv: list[str], env: dict[str, str] | None = None) -> str:
        log = self.layout.log(log_name)
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               env={**os.environ, **(env or {})})
            out.write(r.stdout + r.stderr)
        if r.returncode:
            raise DevcloudError(f"{log_name}: `{_short(argv)}` "
                                f"failed (exit code {r.returncode}); "
                                f"end of {log}:\n{tail(log)}")
        return r.stdout.decode(errors="replace")

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def conf(self, service: str, *files: str) -> list[str]:
        out = []
        for f in files:
            out += ["--config-file", str(self.layout.etc(service) / f)]
        return out

    # -- the steps ------------------------------------------------------------
    def databases(self, service: str) -> None:
        """templates/scripts/create_databases.sh, as the Jobs' init container runs it."""
        self.run(f"bootstrap-{service}", ["bash", str(SCRIPTS / "create_databases.sh")], {
            **infra.db_env(self.secrets),
            "DB_NAMES": " ".join(services.DATABASES[service]),
            "DB_USER": service,
            "DB_PASSWORD": self.secrets.database[service],
        })

    def migrate(self, service: str) -> bool:
        """One service's Job: databases, then its migrations. False: nothing to do."""
        step = f"{service}:migrate"
        if self.done(step):
            return False
        self.databases(service)
        for argv, env in self.commands(service):
            if argv[-1] == "create_cell" and " cell1 " in self.run(
                    "bootstrap-nova", [self.bin("nova-manage"), *self.conf("nova", "nova.conf"),
                                       "cell_v2", "list_cells"]):
                continue  # create_cell is not idempotent (the Job skips it the same way)
            if argv[-1] == "create_cell":
                argv = [*argv, "--name", "cell1"]
            self.run(f"bootstrap-{service}", argv, env)
        self.mark(step)
        return True

    def commands(self, service: str) -> list[tuple[list[str], dict | None]]:
        """The commands of the controller's Job of `service` (templates/k8s/*.yaml.j2)."""
        if service == "keystone":
            urls = next(s for s in render.catalog(configs.local_endpoints())["services"]
                        if s["name"] == "keystone")
            manage = [self.bin("keystone-manage"), *self.conf("keystone", "keystone.conf")]
            return [
                (manage + ["db_sync"], None),
                (manage + ["bootstrap", "--bootstrap-username", "admin",
                           "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                           "--bootstrap-service-name", "keystone",
                           "--bootstrap-region-id", REGION,
                           "--bootstrap-public-url", urls["public"],
                           "--bootstrap-internal-url", urls["internal"],
                           "--bootstrap-admin-url", urls["internal"]],
                 # From the env rather than the command line, which `ps` shows.
                 {"OS_BOOTSTRAP_PASSWORD": self.secrets.admin_password}),
            ]
        if service == "glance":
            return [([self.bin("glance-manage"), *self.conf("glance", "glance-api.conf"),
                      "db_sync"], None)]
        if service == "placement":
            return [([self.bin("placement-manage"), *self.conf("placement", "placement.conf"),
                      "db", "sync"], None)]
        if service == "neutron":
            return [([self.bin("neutron-db-manage"),
                      *self.conf("neutron", "neutron.conf", "plugins/ml2/ml2_conf.ini"),
                      "upgrade", "heads"], None)]
        if service == "nova":
            manage = [self.bin("nova-manage"), *self.conf("nova", "nova.conf")]
            return [(manage + args, None) for args in (
                ["api_db", "sync"], ["cell_v2", "map_cell0"], ["cell_v2", "create_cell"],
                ["db", "sync"], ["db", "online_data_migrations"])]
        raise ValueError(service)

    def service_accounts(self) -> None:
        """templates/scripts/service_accounts.py with the venv's python, as the Job runs it."""
        step = "keystone:accounts"
        if self.done(step):
            return
        ep = configs.local_endpoints()
        catalog = render.catalog(ep)
        catalog["services"] = [s for s in catalog["services"] if s["name"] != "keystone"]
        path = self.layout.etc("") / "catalog.json"  # not a file keystone reads
        path.write_text(json.dumps(catalog, indent=1))
        env = {"OS_AUTH_URL": f"{ep.internal['keystone']}/v3",
               "OS_PASSWORD": self.secrets.admin_password}
        env |= {f"OSCEPTION_PASSWORD_{u.upper()}": p
                for u, p in self.secrets.service_users.items()}
        self.run("bootstrap-keystone", [self.bin("python"), str(SCRIPTS / "service_accounts.py"),
                                        str(path)], env)
        self.mark(step)
