"""The controller's Jobs, run here: each Job's init containers and containers as the
rendered manifests give them (manifests.py maps them onto this machine), in the
order the Jobs wait for each other.

Each Job leaves a stamp (bootstrap.json): a fingerprint of its rendered pod (commands,
environment, the files of its volumes) and of the venv, so a warm `up` skips what is
done and runs a Job again when anything it runs with changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from ..secrets import Secrets
from .layout import Layout
from .manifests import Local, Manifests, Pod
from .processes import DevcloudError, tail


CONTAINER_TIMEOUT = 600  # s; the slowest, nova's migrations, takes about a minute


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
    def __init__(self, layout: Layout, secrets: Secrets, venv: Path, manifests: Manifests):
        self.layout, self.secrets, self.venv = layout, secrets, venv
        self.manifests = manifests
        self.local = Local(layout, venv)
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
        if step.startswith("job:"):
            h.update(self._job(step.removeprefix("job:")).fingerprint().encode())
        return h.hexdigest()

    def _job(self, app: str) -> Pod:
        return next(p for p in self.manifests.pods.values() if p.kind == "Job" and p.app == app)

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
    def run(self, log_name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """One container's command; it fails by name, also when it never ends (a Job's
        script may wait in a loop for something that never comes)."""
        log = self.layout.log(log_name)
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                    start_new_session=True)  # its own group, killed as one
            try:
                code = proc.wait(timeout=CONTAINER_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise DevcloudError(f"{log_name}: `{_short(argv)}` did not end within "
                                    f"{CONTAINER_TIMEOUT} s; end of {log}:\n{tail(log)}") from None
        if code:
            raise DevcloudError(f"{log_name}: `{_short(argv)}` "
                                f"failed (exit code {code}); end of {log}:\n{tail(log)}")

    def run_job(self, pod: Pod) -> bool:
        """One Job, as its pod runs: init containers in order, then its containers.
        The `wait` init containers are the devcloud's order of the steps. False: done
        before with the same pod."""
        step = f"job:{pod.stable_name}"
        if self.done(step):
            return False
        self.local.write_volumes(pod)
        for c in [*pod.init, *pod.containers]:
            if c.waits is not None:
                continue
            self.local.link_homes(set(self.local.set_configs(pod, c)))
            argv, env = self.local.command(pod, c)
            self.run(f"job-{pod.stable_name}", argv, env)
        self.mark(step)
        return True

    def pending(self, service: str) -> bool:
        return not all(self.done(f"job:{j.app}") for j in self.manifests.jobs(service))

    # -- the steps ------------------------------------------------------------
    def migrate(self, service: str) -> bool:
        """The Jobs of a service's manifest that wait for no API: databases, schema
        migrations (Keystone: and its bootstrap). False: nothing to do."""
        ran = [self.run_job(job) for job in self.manifests.jobs(service)
               if not job.apis_awaited]
        return any(ran)

    def after_api(self, api: str) -> None:
        """The Jobs that wait for `api` to answer (Keystone: the service accounts)."""
        for pod in self.manifests.pods.values():
            if pod.kind == "Job" and pod.apis_awaited == {api}:
                self.run_job(pod)
