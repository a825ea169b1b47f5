"""What the controller runs, read from a rendered plan's manifests, and how the
devcloud runs the very same on this machine.

The manifests are the one source of truth. From each Job and Deployment the devcloud
takes its containers: the command (a Kolla container's is the `command` of its
config.json), the environment (Secret values resolved from the rendered Secrets),
the files of its volumes (ConfigMap items and Secret keys, as the kubelet projects
them) and the files its config.json copies into place. Only what must differ on a
local machine is mapped, all of it in this table:

    in the controller's containers         on this machine
    a volume mount (/var/lib/kolla/        pods/<pod>/<volume>/, the volume's files
      config_files, /scripts, /catalog)      written as the kubelet projects them
    an emptyDir (the `patched` copy of a   pods/<pod>/<volume>-<pod's fingerprint>/:
      patched project: k8s/_kolla.j2)        new with each new pod spec, as a new pod's
    /var/lib/kolla/venv (Kolla's venv)     the services venv: python3, and first on PATH
    /opt/ansible (kolla-toolbox's venv)    the services venv (it has openstacksdk)
    /etc/<project>                         etc/<project>; oslo.config's own discovery of
                                             <project>.conf, <prog>.conf and the
                                             <project>.conf.d drop-in searches ~/.<project>
                                             before /etc/<project>: HOME is home/, where
                                             .<project> links to etc/<project>; the WSGI
                                             modules that name /etc/<project> themselves
                                             read OS_<PROJECT>_CONFIG_DIR
    host mariadb-<service>, port 3306      the devcloud's one MariaDB (every service's
                                             root password opens it; infra.py)
    owner/perm of config.json files        perm as given; every file is the devcloud
                                             user's (no other users here)

The other init containers run as they are (create-databases; the `patch` of a
patched project, whose copy the containers then import first: PYTHONPATH maps to the
emptyDir's folder). Not run here, each for a reason: the `wait` init containers (wait_for.py asks the
Kubernetes API about Jobs; the devcloud runs the steps in the order their targets
name instead), uWSGI (not in the services venv: lifecycle.py serves the ini's
`module` with gunicorn) and the image's own files (api-paste.ini, metadefs: configs.IMAGE_FILES).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .. import services
from ..state import write_private
from .layout import HOST, PORTS, Layout
from .processes import DevcloudError

KOLLA_CONFIG = "/var/lib/kolla/config_files"
EMPTY_DIR = re.compile(r".+-[0-9a-f]{12}")  # pods/<pod>/<volume>-<spec>: Local.empty_dir
WAIT_SCRIPT = "wait_for.py"

# The table above, as data ({venv}: the services venv, {root}: the devcloud's folder;
# each volume mount goes to pods/<pod>/<volume>/ beside these paths).
PATHS = {
    "/var/lib/kolla/venv": "{venv}",
    "/opt/ansible": "{venv}",  # kolla-toolbox's venv (openstacksdk): the services venv
    "/etc": "{root}/etc",
}
# The Kubernetes Service of each service's MariaDB -> layout.HOST.
DB_HOST = re.compile(f"mariadb-({'|'.join(map(re.escape, services.DATABASES))})")
ENV = {
    # A Kolla image's PATH, its venv first (and the same from one `up` to the next:
    # a process's env is part of what it was started with).
    "PATH": "{venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "{root}/home",
    "MYSQL_TCP_PORT": str(PORTS["mariadb"]),  # the MariaDB client's default port
}


@dataclass(frozen=True)
class Container:
    name: str
    command: list[str] | None  # None: the image's own (Kolla: config.json's command)
    env: dict[str, str]  # Secret and ConfigMap references resolved
    mounts: dict[str, str]  # mount path -> volume name

    @property
    def waits(self) -> list[str] | None:
        """The targets of a wait_for.py init container, else None."""
        cmd = self.command or []
        for i, arg in enumerate(cmd):
            if arg.endswith("/" + WAIT_SCRIPT):
                return cmd[i + 1:]
        return None


@dataclass(frozen=True)
class Pod:
    kind: str  # Job | Deployment
    name: str  # a Job's carries a hash of its spec: keystone-bootstrap-1a2b3c4d
    app: str  # its pods' label `app`, the same from one plan to the next
    service: str  # of its manifest: 20-keystone.yaml -> keystone
    init: list[Container]
    containers: list[Container]
    volumes: dict[str, dict[str, str]]  # volume -> {path inside it: text}
    empty_dirs: tuple[str, ...] = ()  # its emptyDir volumes

    @property
    def stable_name(self) -> str:
        """The same from one plan to the next: a Job's app label, a Deployment's name."""
        return self.app if self.kind == "Job" else self.name

    @property
    def waits(self) -> list[str]:
        return [t for c in self.init if c.waits for t in c.waits]

    @property
    def apis_awaited(self) -> set[str]:
        """The APIs its init containers wait for: http/keystone:5000/v3 -> keystone."""
        return {t.removeprefix("http/").split(":")[0].split("/")[0]
                for t in self.waits if t.startswith("http/")}

    def config_json(self, c: Container) -> dict | None:
        """A Kolla container's config.json (the volume mounted at KOLLA_CONFIG)."""
        volume = c.mounts.get(KOLLA_CONFIG)
        text = self.volumes.get(volume, {}).get("config.json") if volume else None
        return json.loads(text) if text else None

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def _service_of(path: str) -> str:
    return path.rsplit("/", 1)[-1].split("-", 1)[-1].removesuffix(".yaml")


class Manifests:
    """The control plane's ConfigMaps, Secrets, Jobs and Deployments of a rendered plan."""

    def __init__(self, files: dict[str, str], with_nodes: bool = False):
        self.with_nodes = with_nodes  # the devcloud runs local nodes (nodes.py)
        docs = [(_service_of(path), doc) for path, text in sorted(files.items())
                if path.startswith("k8s-0/manifests/")
                for doc in yaml.safe_load_all(text) if doc]
        self.config_maps = {d["metadata"]["name"]: d.get("data") or {}
                            for _, d in docs if d["kind"] == "ConfigMap"}
        self.secrets = {d["metadata"]["name"]: {
            **{k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()},
            **(d.get("stringData") or {})} for _, d in docs if d["kind"] == "Secret"}
        self.pods = {d["metadata"]["name"]: self._pod(svc, d) for svc, d in docs
                     if d["kind"] in ("Job", "Deployment")}

    def pod(self, name: str) -> Pod:
        try:
            return self.pods[name]
        except KeyError:
            raise DevcloudError(f"the rendered manifests have no Job or Deployment {name!r}") \
                from None

    def jobs(self, service: str) -> list[Pod]:
        """The Jobs of a service's manifest, in their order there."""
        return [p for p in self.pods.values() if p.kind == "Job" and p.service == service]

    def _pod(self, service: str, doc: dict) -> Pod:
        template = doc["spec"]["template"]
        spec = template["spec"]
        name = doc["metadata"]["name"]
        app = (template.get("metadata") or {}).get("labels", {}).get("app", name)
        return Pod(doc["kind"], name, app, service,
                   [self._container(c) for c in spec.get("initContainers") or []],
                   [self._container(c) for c in spec["containers"]],
                   {v["name"]: self._volume(v) for v in spec.get("volumes") or []},
                   tuple(v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v))

    def _source(self, kind: str, name: str) -> dict[str, str]:
        found = (self.config_maps if kind == "configMap" else self.secrets).get(name)
        if found is None:
            raise DevcloudError(f"the rendered manifests have no {kind} {name!r}")
        return found

    def _items(self, kind: str, ref: dict) -> dict[str, str]:
        data = self._source(kind, ref.get("name") or ref.get("secretName"))
        if ref.get("items") is None:
            return dict(data)
        return {i["path"]: data[i["key"]] for i in ref["items"]}

    def _volume(self, volume: dict) -> dict[str, str]:
        for kind in ("configMap", "secret"):
            if kind in volume:
                return self._items(kind, volume[kind])
        if "projected" in volume:
            files: dict[str, str] = {}
            for src in volume["projected"]["sources"]:
                kind = next(iter(src))
                if kind in ("serviceAccountToken", "downwardAPI") or \
                        (kind == "configMap" and src[kind]["name"] == services.KUBE_ROOT_CA):
                    continue  # the `wait` container's API access: it does not run here
                files |= self._items(kind, src[kind])
            return files
        return {}  # a claim or an emptyDir: nothing to project

    def _container(self, c: dict) -> Container:
        env: dict[str, str] = {}
        for ref in c.get("envFrom") or []:
            kind = "secret" if "secretRef" in ref else "configMap"
            env |= self._source(kind, ref[f"{kind}Ref"]["name"])
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
                continue
            ref = e["valueFrom"]
            kind = "secret" if "secretKeyRef" in ref else "configMap"
            key = ref[f"{kind}KeyRef"]
            env[e["name"]] = self._source(kind, key["name"])[key["key"]]
        command = c.get("command")
        if c.get("args") is not None:
            if command is None:
                raise DevcloudError(f"container {c['name']}: `args` without a `command` "
                                    "(the image's entrypoint) cannot run here")
            command = [*command, *c["args"]]
        return Container(c["name"], command, env,
                         {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []})


class Local:
    """A pod's containers on this machine: the table in this module's docstring."""

    def __init__(self, layout: Layout, venv: Path):
        self.layout, self.venv = layout, venv

    # -- paths ----------------------------------------------------------------
    @property
    def home(self) -> Path:
        """HOME of the controller's processes: ~/.<project> is etc/<project>."""
        return Path(self._fill(ENV["HOME"]))

    def volume_dir(self, pod: Pod, volume: str) -> Path:
        return self.layout.root / "pods" / pod.stable_name / volume

    def empty_dir(self, pod: Pod, volume: str) -> Path:
        """An emptyDir: new for each new pod spec (a pod of a changed spec is a new pod),
        so what a running process uses stays as it is until it is replaced."""
        return self.layout.root / "pods" / pod.stable_name / f"{volume}-{pod.fingerprint()[:12]}"

    def mounts(self, pod: Pod, c: Container) -> dict[str, Path]:
        return {path: self.empty_dir(pod, vol) if vol in pod.empty_dirs else self.volume_dir(pod, vol)
                for path, vol in c.mounts.items() if pod.volumes.get(vol) or vol in pod.empty_dirs}

    def stale_empty_dirs(self, pod: Pod) -> list[Path]:
        """The emptyDir folders of the pod's earlier specs (and of volumes it no longer has)."""
        folder = self.layout.root / "pods" / pod.stable_name
        current = {self.empty_dir(pod, v) for v in pod.empty_dirs}
        return [p for p in sorted(folder.glob("*-*")) if p.is_dir()
                and EMPTY_DIR.fullmatch(p.name) and p not in current]

    def path(self, path: str, mounts: dict[str, Path]) -> str:
        """A path inside the container -> here; other text is returned as is."""
        table = {**{k: self._fill(v) for k, v in PATHS.items()},
                 **{k: str(v) for k, v in mounts.items()}}
        for prefix in sorted(table, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/"):
                return table[prefix] + path[len(prefix):]
        return path

    def arg(self, arg: str, mounts: dict[str, Path]) -> str:
        """An argument: a path, or --option=path."""
        opt, eq, value = arg.partition("=")
        return f"{opt}={self.path(value, mounts)}" if eq and opt.startswith("-") \
            else self.path(arg, mounts)

    # -- files ----------------------------------------------------------------
    def write_volumes(self, pod: Pod) -> list[Path]:
        """Write each volume's files as the kubelet projects them (0600; only changed
        files are rewritten). Returns the files."""
        out = []
        for volume, files in pod.volumes.items():
            for rel, text in files.items():
                out.append(_write(self.volume_dir(pod, volume) / rel, text, 0o600))
        return out

    def set_configs(self, pod: Pod, c: Container) -> list[Path]:
        """What Kolla's set_configs does at a container's start (COPY_ALWAYS): copy each
        config_files entry to its dest, with its perm; then the permissions. Returns
        the files written."""
        config = pod.config_json(c)
        if config is None:
            return []
        mounts = self.mounts(pod, c)
        out = []
        for entry in config.get("config_files", []):
            sources = sorted(glob.glob(self.path(entry["source"], mounts)))
            if not sources:
                if entry.get("optional"):
                    continue
                raise DevcloudError(f"{pod.name}/{c.name}: config.json names "
                                    f"{entry['source']}, which its volumes do not hold")
            dest = self._dest(pod, c, entry["dest"])
            perm = int(entry["perm"], 8) if entry.get("perm") else 0o600
            for src in sources:
                target = dest / Path(src).name if len(sources) > 1 or entry["dest"].endswith("/") \
                    else dest
                out.append(_write(target, Path(src).read_text(), perm))
        for entry in config.get("permissions", []):
            path = Path(self.path(entry["path"], mounts))
            if entry.get("perm") and path.is_relative_to(self.layout.root) and path.exists():
                os.chmod(path, int(entry["perm"], 8))
            # Other paths (e.g. a volume at /var/lib/glance) and owners: container-only.
        return out

    def project(self, pod: Pod, c: Container) -> str:
        """The /etc/<project> folder its config.json copies into: keystone, nova, ..."""
        config = pod.config_json(c) or {}
        dests = [e["dest"] for e in config.get("config_files", [])]
        if not dests or not dests[0].startswith("/etc/"):
            raise DevcloudError(f"{pod.name}/{c.name}: config.json copies nothing to /etc")
        return dests[0].split("/")[2]

    def _dest(self, pod: Pod, c: Container, dest: str) -> Path:
        local = self.path(dest, {})
        if local == dest:
            raise DevcloudError(f"{pod.name}/{c.name}: config.json copies to {dest}, which "
                                "has no local place (osception/devcloud/manifests.py)")
        return Path(local)

    def link_homes(self, files: set[Path]) -> None:
        """home/.<project> -> etc/<project>, for the etc/<project> folders of `files`."""
        etc = self.layout.root / "etc"
        self.home.mkdir(parents=True, exist_ok=True)
        for project in {p.relative_to(etc).parts[0] for p in files if p.is_relative_to(etc)}:
            link = self.home / f".{project}"
            if not link.is_symlink():
                link.symlink_to(etc / project)

    # -- commands -------------------------------------------------------------
    def env(self, c: Container, mounts: dict[str, Path]) -> dict[str, str]:
        """The container's env, hosts and paths mapped, plus the local stand-ins."""
        env = {k: HOST if DB_HOST.fullmatch(v) else self.arg(v, mounts)
               for k, v in c.env.items()}
        return env | {k: self._fill(v) for k, v in ENV.items()}

    def _fill(self, template: str) -> str:
        return template.format(venv=self.venv, root=self.layout.root)

    def command(self, pod: Pod, c: Container) -> tuple[list[str], dict[str, str]]:
        """argv and env of a container (after set_configs, for a Kolla one)."""
        mounts = self.mounts(pod, c)
        if c.command is not None:
            words = c.command
        else:
            config = pod.config_json(c)
            if config is None:
                raise DevcloudError(f"{pod.name}/{c.name} has neither a command nor a "
                                    "Kolla config.json")
            words = shlex.split(config["command"])  # kolla_start: exec $CMD
        argv = [self.arg(w, mounts) for w in words]
        env = self.env(c, mounts)
        which = shutil.which(argv[0], path=env["PATH"])
        if which is None:
            raise DevcloudError(f"{pod.name}/{c.name}: `{argv[0]}` is neither in the "
                                f"services venv nor on PATH")
        return [which, *argv[1:]], env


def _write(path: Path, text: str, mode: int) -> Path:
    """Write only when the text changed (running services read these files)."""
    try:
        same = path.read_text() == text
    except OSError:
        same = False
    if not same:
        write_private(path, text)
    os.chmod(path, mode)
    return path
