"""The Kolla contract: what osception's controller manifests may assume of the Kolla
images of a release, read from that release's own `kolla` and `kolla-ansible` sources.

Pure functions over a rendered plan and the unpacked sources (tests/kolla/sources.py);
the tests in test_contract.py call them for every release in the table.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from osception import render
from tests import pods

from .sources import KollaSources

CONFIG_DIR = "/var/lib/kolla/config_files"


# --- the containers of a plan ------------------------------------------------------

@dataclass
class Container:
    workload: str  # e.g. "Deployment/nova-api"
    name: str  # container name
    init: bool
    image: str  # full reference
    spec: dict
    pod: dict  # the pod spec
    # Files the container sees, by mount path: {mountPath: {relative path: text}}
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def kolla_image(self) -> str:
        """quay.io/openstack.kolla/nova-api:2026.1-ubuntu-noble -> nova-api"""
        return self.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.name}{' (init)' if self.init else ''}"

    @property
    def config_json(self) -> dict | None:
        files = self.mounts.get(CONFIG_DIR)
        return None if files is None else json.loads(files["config.json"])

    @property
    def env(self) -> dict[str, str | None]:
        """Literal env values; None for values from Secrets."""
        return {e["name"]: e.get("value") for e in self.spec.get("env", [])}


def documents(plan: render.Plan) -> list[dict]:
    docs = []
    for path, text in sorted(plan.files.items()):
        if path.startswith("k8s-0/manifests/"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def _data(doc: dict) -> dict[str, str]:
    if doc["kind"] == "Secret":
        import base64
        out = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        out.update(doc.get("stringData", {}))
        return out
    return dict(doc.get("data", {}))


# ConfigMaps Kubernetes publishes in every namespace itself (kube-controller-manager's
# root-ca-cert-publisher): a projected token volume names it, the plan never holds it.
CLUSTER_CONFIGMAPS = {"kube-root-ca.crt"}


def _volume_files(volume: dict, objects: dict[tuple[str, str], dict]) -> dict[str, str]:
    """The files of a ConfigMap, Secret or projected volume, as the kubelet lays them out."""
    def source(kind, ref):
        data = _data(objects[(kind, ref["name"])])
        if "items" in ref:
            return {i["path"]: data[i["key"]] for i in ref["items"]}
        return data

    if "configMap" in volume:
        return source("ConfigMap", volume["configMap"])
    if "secret" in volume:
        return source("Secret", {"name": volume["secret"]["secretName"], **volume["secret"]})
    if "projected" in volume:
        files: dict[str, str] = {}
        for s in volume["projected"]["sources"]:
            if s.get("configMap", {}).get("name") in CLUSTER_CONFIGMAPS:
                continue  # published by Kubernetes itself in every namespace, not the plan's
            if "configMap" in s:
                files.update(source("ConfigMap", s["configMap"]))
            elif "secret" in s:
                files.update(source("Secret", s["secret"]))
        return files
    return {}


def containers(plan: render.Plan) -> list[Container]:
    docs = documents(plan)
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    out = []
    for d, pod in pods.pod_specs(docs):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for init in (True, False):
            for c in pods.containers(pod, init):
                mounts = {m["mountPath"]: _volume_files(volumes[m["name"]], objects)
                          for m in c.get("volumeMounts", []) if m["name"] in volumes}
                out.append(Container(f"{d['kind']}/{d['metadata']['name']}", c["name"], init,
                                     c["image"], c, pod, mounts))
    return out


# --- Kolla's users, images and their user ------------------------------------------

def kolla_users(src: KollaSources) -> dict[str, tuple[int, int]]:
    """Kolla's fixed uids/gids (kolla/common/users.py): {"nova": (42436, 42436), ...}"""
    scope: dict = {}
    exec((src.kolla / "kolla" / "common" / "users.py").read_text(), scope)
    return {name.removesuffix("-user"): (v["uid"], v["gid"]) for name, v in scope["USERS"].items()}


def image_dir(src: KollaSources, image: str) -> Path | None:
    """docker/<...>/<image>/ holding that image's Dockerfile.j2, or None."""
    for dockerfile in src.docker.rglob("Dockerfile.j2"):
        if dockerfile.parent.name == image:
            return dockerfile.parent
    return None


def image_chain(src: KollaSources, image: str) -> list[Path]:
    """The image's folder, then its parents' (nova-api -> nova-base -> openstack-base -> base)."""
    chain = []
    folder = image_dir(src, image)
    while folder is not None:
        chain.append(folder)
        m = re.search(r"^FROM .*\}\}(?:\{\{ image_prefix \}\})?([a-z0-9-]+):\{\{ tag \}\}",
                      (folder / "Dockerfile.j2").read_text(), re.M)
        folder = image_dir(src, m.group(1)) if m else None
    return chain


def image_user(src: KollaSources, image: str) -> str:
    """The user an image runs as: the last USER of its Dockerfile chain, else root."""
    for folder in image_chain(src, image):
        users = re.findall(r"^USER (\S+)", (folder / "Dockerfile.j2").read_text(), re.M)
        if users:
            return users[-1]
    return "root"


# --- Kolla's own set_configs.py, run on a container's projected volume --------------

_RUNNER = """
import grp, pwd, runpy, sys, json
users = json.loads(sys.argv.pop(1))
def getpwnam(name):
    if name not in users:
        raise KeyError(f"getpwnam(): name not found: {name!r} (not a Kolla user)")
    uid, gid = users[name]
    return pwd.struct_passwd((name, "x", uid, gid, "", "/", "/bin/false"))
def getpwuid(uid):
    for name, (u, g) in users.items():
        if u == uid:
            return pwd.struct_passwd((name, "x", u, g, "", "/", "/bin/false"))
    raise KeyError(f"getpwuid(): uid not found: {uid}")
def getgrgid(gid):
    for name, (u, g) in users.items():
        if g == gid:
            return grp.struct_group((name, "x", g, []))
    raise KeyError(f"getgrgid(): gid not found: {gid}")
def getgrnam(name):
    if name not in users:
        raise KeyError(f"getgrnam(): name not found: {name!r} (not a Kolla group)")
    return grp.struct_group((name, "x", users[name][1], []))
pwd.getpwnam, grp.getgrnam, pwd.getpwuid, grp.getgrgid = getpwnam, getgrnam, getpwuid, getgrgid
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def lay_out_projected_volume(folder: Path, files: dict[str, str]) -> None:
    """As the kubelet's atomic writer does: the files in a hidden timestamped folder,
    `..data` pointing at it, and one symlink per top-level entry through `..data`."""
    stamp = folder / "..2026_01_01_00_00_00.000000001"
    for rel, text in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (folder / "..data").symlink_to(stamp.name)
    for top in {rel.split("/", 1)[0] for rel in files}:
        (folder / top).symlink_to(f"..data/{top}")


def run_set_configs(src: KollaSources, container: Container, root: Path, check: bool = False,
                    ) -> subprocess.CompletedProcess:
    """Run this release's set_configs.py, unmodified but for its absolute paths being
    moved under `root` (as if `root` were the container's /), on the container's
    config folder laid out as the kubelet projects it. Owners resolve through Kolla's
    own users table, so an owner the images do not have fails as it would in the image."""
    code = (src.docker / "base" / "set_configs.py").read_text()
    for path in (CONFIG_DIR, "/run_command", "/etc/kolla/defaults", "/configured"):
        code = code.replace(f"'{path}", f"'{root}{path}").replace(f'"{path}', f'"{root}{path}')
    root.mkdir(parents=True, exist_ok=True)
    (root / "set_configs.py").write_text(code)

    config_dir = root / CONFIG_DIR.lstrip("/")
    if not config_dir.exists():
        config_dir.mkdir(parents=True)
        files = dict(container.mounts[CONFIG_DIR])
        config = json.loads(files["config.json"])
        for entry in config.get("config_files", []):
            entry["source"] = f"{root}{entry['source']}"
            entry["dest"] = f"{root}{entry['dest']}"
        for entry in config.get("permissions", []) + config.get("directories", []):
            entry["path"] = f"{root}{entry['path']}"
            # what the image itself has (e.g. /var/lib/glance): create it as a folder
            Path(entry["path"]).mkdir(parents=True, exist_ok=True)
        files["config.json"] = json.dumps(config)
        lay_out_projected_volume(config_dir, files)
    (root / "etc" / "kolla").mkdir(parents=True, exist_ok=True)

    users = {name: list(ids) for name, ids in kolla_users(src).items()}
    users["root"] = [0, 0]
    env = {**os.environ, **{k: v for k, v in container.env.items() if v is not None}}
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(users), str(root / "set_configs.py"),
         *(["--check"] if check else [])],
        env=env, capture_output=True, text=True, timeout=60)


# --- what a container executes -------------------------------------------------------

SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until", "case",
    "esac", "function", "{", "}", "!", "[[", "]]", "[", "]", "exec", "set", "export", "echo",
    "exit", "return", "local", "read", "test", "true", "false", ":", "cd", "shift", "trap",
    "printf", "sleep", "source", ".", "wait", "unset", "let", "eval", "break", "continue",
    "command", "pushd", "popd",
}
# words that run the next word as the command
_PREFIXES = {"if", "elif", "until", "while", "then", "do", "else", "!", "exec", "command", "sudo",
             "-E", "time"}
_QUOTED = re.compile(r"'[^']*'" + r'|"(?:[^"\\]|\\.)*"')
_SPLIT = re.compile(r"\|\||&&|[;|&()`]|\$\(|\bthen\b|\bdo\b|\belse\b")


def shell_commands(text: str) -> set[str]:
    """The programs a (simple) shell script runs: its interpreter (shebang) and the
    first word of each simple command, skipping assignments, quoted text, here-document
    bodies and shell keywords/builtins (`exec X` counts X)."""
    found: set[str] = set()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    if lines and lines[0].startswith("#!"):
        words = lines[0][2:].split()
        found.add(words[1] if words and words[0].endswith("/env") and len(words) > 1 else words[0])
    heredoc = None
    for line in lines:
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
        line = re.sub(_QUOTED, "''", line)  # drop quoted text
        line = line.split(" #", 1)[0]
        for part in _SPLIT.split(line):
            words = part.split()
            while words and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=.*", words[0])
                             or words[0] in _PREFIXES):
                words.pop(0)
            if not words:
                continue
            word = words[0]
            if word in SHELL_WORDS or word.startswith(("$", "-", ">", "<", "[", "'", "}", "{")):
                continue
            if re.fullmatch(r"[A-Za-z0-9_./+-]+", word) and not word.isdigit():
                found.add(word)
    return found


@dataclass(frozen=True)
class Call:
    executable: str
    where: str  # what calls it, for messages


def calls(container: Container) -> list[Call]:
    """Every executable the container runs inside its image: its command (through
    `bash -c` and `bash FILE` for the scripts it mounts), its probes, and the command
    of its config.json with the scripts that command runs."""
    out: list[Call] = []
    mounted = {f"{mount}/{rel}": text for mount, files in container.mounts.items()
               for rel, text in files.items()}
    config = container.config_json
    if config is not None:
        # what kolla_start runs before the command: set_configs copies the files there
        for entry in config.get("config_files", []):
            src = entry["source"]
            if src in mounted:
                mounted[entry["dest"]] = mounted[src]

    literal_env = {k: v for k, v in container.env.items() if v is not None}

    def expand(script: str) -> str:
        """The container's literal env values in place of "$X"/"${X}" (DB_CLIENT...)."""
        return re.sub(r'"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?',
                      lambda m: literal_env.get(m.group(1), m.group(0)), script)

    def argv(args: list[str], where: str):
        if not args:
            return
        exe = args[0]
        out.append(Call(exe, where))
        if os.path.basename(exe) in ("bash", "sh"):
            if len(args) > 2 and args[1] == "-c":
                for word in shell_commands(expand(args[2])):
                    out.append(Call(word, f"{where} (bash -c)"))
            elif len(args) > 1 and args[1] in mounted:
                for word in shell_commands(expand(mounted[args[1]])):
                    out.append(Call(word, f"{where} ({args[1]})"))
        elif exe.endswith(("python3", "python")) and len(args) > 1:
            pass  # a Python script: it calls no executable (checked: our scripts use no subprocess)

    spec = container.spec
    argv(list(spec.get("command", [])) + list(spec.get("args", [])), f"{container.label} command")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if "exec" in spec.get(probe, {}):
            argv(spec[probe]["exec"]["command"], f"{container.label} {probe}")
    if config is not None and not spec.get("command"):
        # the image's own entrypoint: kolla_start (base/start.sh) runs config.json's command
        out.append(Call("kolla_start", f"{container.label} entrypoint"))
    if config is not None and (not spec.get("command") or "kolla_start" in " ".join(spec.get("command", []))):
        argv(shlex.split(config["command"]), f"{container.label} config.json command")
    return out


# --- what Kolla ships or calls, per image ---------------------------------------------

def role_dirs(src: KollaSources, image: str) -> list[Path]:
    """The kolla-ansible roles that deploy an image: those whose defaults name it
    (`nova_api_image: "{{ docker_image_url }}nova-api"` -> role nova; kolla-ansible 18:
    `"{{ docker_namespace }}/nova-api"`)."""
    mark = re.compile(r'\}\}/?' + re.escape(image) + r'"')
    return sorted(p for p in src.roles.iterdir()
                  if (p / "defaults" / "main.yml").exists()
                  and mark.search((p / "defaults" / "main.yml").read_text()))


def _commands_of_role_templates(role: Path) -> dict[str, Path]:
    """Programs of the config.json commands and shell scripts a role installs."""
    found = {}
    for tpl in sorted((role / "templates").glob("*.json.j2")):
        for m in re.finditer(r'"command":\s*"([^"{]+)', tpl.read_text()):
            found.setdefault(m.group(1).split()[0], tpl)
    for tpl in sorted((role / "templates").glob("*.sh.j2")):
        for name in shell_commands(tpl.read_text()):
            found.setdefault(name, tpl)
    return found


def _healthcheck_commands(role: Path) -> set[str]:
    defaults = role / "defaults" / "main.yml"
    found = set()
    if defaults.exists():
        for m in re.finditer(r'_healthcheck_test: \["CMD-SHELL", "([^"]+)"\]', defaults.read_text()):
            found |= shell_commands(m.group(1).replace("{{", "").replace("}}", ""))
    return found


def kolla_executables(src: KollaSources, image: str) -> dict[str, str]:
    """{executable: where Kolla shows it} for one image: what its Dockerfiles COPY or
    install into a bin folder, what its (and its parents') shell scripts run
    (start.sh, extend_start.sh, healthchecks), and what kolla-ansible's roles for
    its project run in it (config.json commands, container healthchecks). Names are
    keyed both by basename (PATH lookup) and by absolute path where Kolla gives one."""
    found: dict[str, str] = {}

    def add(name: str, where: Path):
        found.setdefault(name, str(where.relative_to(src.kolla.parent)))
        if name.startswith("/"):
            found.setdefault(os.path.basename(name), str(where.relative_to(src.kolla.parent)))

    for folder in image_chain(src, image):
        dockerfile = folder / "Dockerfile.j2"
        for m in re.finditer(r"(?:COPY|ADD|install -m \d+)\s+(?:[^\n]*?\s)?(/usr/(?:local/)?s?bin/[\w.-]+)",
                             dockerfile.read_text()):
            add(m.group(1), dockerfile)
        for m in re.finditer(r"^COPY ([^\n]+) (/usr/local/bin/)$", dockerfile.read_text(), re.M):
            for name in m.group(1).split():
                add(m.group(2) + name, dockerfile)
        for script in sorted(folder.iterdir()):
            if script.is_file() and script.read_bytes()[:2] == b"#!":
                for name in shell_commands(script.read_text()):
                    add(name, script)
    for role in role_dirs(src, image):
        for name, tpl in _commands_of_role_templates(role).items():
            add(name, tpl)
        for name in _healthcheck_commands(role):
            add(name, role / "defaults" / "main.yml")
    return found


@dataclass(frozen=True)
class Evidence:
    """An executable that Kolla's files show an image has, where the automatic reading
    above cannot see it. `file` (relative to the sdist) must match `pattern`."""
    folder: str  # an image folder of the chain: the entry applies to every image built FROM it
    executable: str
    source: str  # "kolla" or "kolla-ansible"
    file: str
    pattern: str
    why: str


EVIDENCE = (
    Evidence("openstack-base", "uwsgi", "kolla", "docker/openstack-base/Dockerfile.j2", r"'uwsgi',",
             "openstack-base installs the distribution's uwsgi package (/usr/bin/uwsgi) for the APIs"),
    Evidence("base", "python3", "kolla", "docker/base/set_configs.py", r"\A#!/usr/bin/env python3\n",
             "kolla_set_configs (base/set_configs.py) runs through `env python3` in every image"),
    Evidence("openstack-base", "/var/lib/kolla/venv/bin/python3", "kolla",
             "docker/openstack-base/Dockerfile.j2", r"python3 -m venv --system-site-packages /var/lib/kolla/venv",
             "the services' venv, created with python3 -m venv"),
    Evidence("kolla-toolbox", "/opt/ansible/bin/python3", "kolla", "docker/kolla-toolbox/Dockerfile.j2",
             r"venv_path='/opt/ansible'[\s\S]*python3 -m venv --system-site-packages \{\{ venv_path \}\}",
             "kolla-toolbox's venv (openstacksdk, ansible) is /opt/ansible, created with python3 -m venv"),
)


def evidence_holds(src: KollaSources, e: Evidence) -> bool:
    if e.source == "kolla":  # docker/... wherever this Kolla keeps docker/ (23: kolla/docker/)
        path = src.docker.parent / e.file
    else:
        path = src.ansible / e.file
    return path.exists() and re.search(e.pattern, path.read_text()) is not None


def allowed_executables(src: KollaSources, image: str) -> dict[str, str]:
    allowed = kolla_executables(src, image)
    chain = {f.name for f in image_chain(src, image)}
    for e in EVIDENCE:
        if e.folder in chain and evidence_holds(src, e):
            allowed.setdefault(e.executable, f"{e.file} ({e.why})")
    return allowed


def is_allowed(exe: str, allowed: dict[str, str]) -> bool:
    """An absolute path must be shown as that path; a bare name (PATH) by its name."""
    return exe in allowed


# --- kolla-ansible's roles: uWSGI settings, bootstrap commands -----------------------

# Our uWSGI files -> (kolla-ansible role, service_name in its service-uwsgi-config call).
UWSGI_FILES = {
    "keystone-api-uwsgi.ini": ("keystone", "keystone"),
    "glance-api-uwsgi.ini": ("glance", "glance-api"),
    "placement-api-uwsgi.ini": ("placement", "placement-api"),
    "neutron-server-uwsgi.ini": ("neutron", "neutron-server"),
    "nova-api-uwsgi.ini": ("nova", "nova-api"),
    "nova-metadata-uwsgi.ini": ("nova", "nova-metadata"),
}
# Settings that depend on the deployment, not on the service: kolla-ansible's values
# come from its inventory, ours from the pod (address, port, processes, TLS, logs).
UWSGI_DEPLOYMENT_VARS = ("host", "http_port", "workers", "tls_backend", "tls_cert", "tls_key",
                         "socket_port", "env", "log_dir", "log_file")
# Where we differ from kolla-ansible, and why (checked: exactly these keys differ).
UWSGI_DEVIATIONS = {
    "logto2": "no log file: uWSGI logs to the container's stderr, which `kubectl logs` shows",
    "logfile-chmod": "no log file (see logto2)",
}


def ini_pairs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _human_to_bytes(v: str) -> int:
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return int(v[:-1]) * units[v[-1]] if v[-1] in units else int(v)


def uwsgi_call(src: KollaSources, role: str, service_name: str) -> dict | None:
    """The vars of kolla-ansible's service-uwsgi-config call for one service, with every
    var that does not depend on the deployment evaluated; None if the role has none."""
    import jinja2
    tasks = src.roles / role / "tasks" / "config.yml"
    if not tasks.exists():
        return None
    defaults = yaml.safe_load((src.roles / role / "defaults" / "main.yml").read_text())
    services = next((v[service_name] for k, v in defaults.items()
                     if k.endswith("_services") and isinstance(v, dict) and service_name in v), {})
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["bool"] = lambda v: str(v).lower() in ("true", "yes", "1")
    env.filters["human_to_bytes"] = _human_to_bytes
    for task in yaml.safe_load(tasks.read_text()) or []:
        include = next((v for k, v in task.items()
                        if k.split(".")[-1] in ("include_role", "import_role")), None) or {}
        if include.get("name") != "service-uwsgi-config":
            continue
        items = task.get("loop") or [None]
        for item in items:
            item_name = item and env.from_string(str(item.get("name"))).render()
            context = {"item": {"name": item_name}, "service": services}
            name = env.from_string(str(task["vars"]["service_name"])).render(**context)
            if name != service_name:
                continue
            resolved = {}
            for key, value in task["vars"].items():
                short = key.removeprefix("service_uwsgi_config_")
                if not key.startswith("service_uwsgi_config_") or short in UWSGI_DEPLOYMENT_VARS:
                    continue
                resolved[key] = env.from_string(str(value)).render(**context)
            return resolved
    return None


def kolla_ansible_uwsgi(src: KollaSources, role: str, service_name: str, ours: dict[str, str]) -> str | None:
    """kolla-ansible's uWSGI file for the service, rendered with its own role's values
    and our deployment values (address, port, processes)."""
    import jinja2
    call = uwsgi_call(src, role, service_name)
    if call is None:
        return None
    template = src.roles / "service-uwsgi-config" / "templates" / "uwsgi.ini.j2"
    defaults = yaml.safe_load((src.roles / "service-uwsgi-config" / "defaults" / "main.yml").read_text())
    host, _, port = ours["http"].rpartition(":")
    context = {
        **{k: v for k, v in defaults.items() if "{{" not in str(v)},
        **call,
        "service_uwsgi_config_host": host, "service_uwsgi_config_http_port": port,
        "service_uwsgi_config_workers": ours["processes"], "service_uwsgi_config_tls_backend": False,
        "service_uwsgi_config_socket_port": "", "service_uwsgi_config_log_dir": role,
        "service_uwsgi_config_log_file": f"{service_name}-uwsgi.log", "kolla_base_distro": "ubuntu",
    }
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["bool"] = lambda v: str(v).lower() in ("true", "yes", "1")
    return env.from_string(template.read_text()).render(**context)


def bootstrap_commands(src: KollaSources, image: str) -> list[str]:
    """The commands of Kolla's own bootstrap of an image (the KOLLA_BOOTSTRAP block of
    its extend_start.sh), each as "program action": `nova-manage db sync --local_cell`
    -> "nova-manage sync", `sudo -H -u keystone keystone-manage ${X} db_sync` ->
    "keystone-manage db_sync"."""
    folder = image_dir(src, image)
    script = folder / "extend_start.sh" if folder else None
    if not script or not script.exists():
        return []
    m = re.search(r'if \[\[ "\$\{!KOLLA_BOOTSTRAP\[@\]\}" \]\]; then\n(.*?)\n\s*exit 0', script.read_text(), re.S)
    lines = [line for line in (m.group(1).splitlines() if m else [])
             if not line.strip().startswith(("#", "if", "fi", "for", "done", "pushd", "popd",
                                             "SITE_PACKAGES", "echo"))]
    return [a for a in map(action, lines) if a]


def action(command: str) -> str | None:
    """"program action" of a command line: its program and its last bare word."""
    words = re.sub(r"\$\{[^}]*\}|\$\w+", "", command).split()
    if words[:1] == ["sudo"]:  # `sudo -H -u keystone keystone-manage ...`
        words.pop(0)
        while words and words[0].startswith("-"):
            option = words.pop(0)
            if option in ("-u", "-g") and words:
                words.pop(0)
    if not words or words[0] == "exec":
        words = words[1:]
    if not words:
        return None
    bare = [w for w in words[1:] if re.fullmatch(r"[a-z_][a-z0-9_]*", w)]
    return f"{words[0]} {bare[-1]}" if bare else words[0]


# A Kolla bootstrap step we run differently, and why.
BOOTSTRAP_DEVIATIONS = {
    "neutron-db-manage head": "we run `neutron-db-manage ... upgrade heads` with our config files: "
                              "every branch of the neutron schema, as neutron's install guide does",
}


# --- kolla-ansible's config.json of the same container --------------------------------

# kolla-ansible deployment options osception turns on for a container, and why: its
# config.json is rendered with them, so the files they add are compared too.
ENABLED_OPTIONS = {
    "rabbitmq": ({"rabbitmq_enable_tls": "true", "project_name": "rabbitmq"},
                 "the TLS listener the compute and network nodes reach (its certificate and key)"),
}


def kolla_ansible_config(src: KollaSources, image: str, container: str) -> dict | None:
    """kolla-ansible's config.json template for a container of that image, rendered
    with every deployment option off (no TLS, no custom policy, no extra CA) but those
    of ENABLED_OPTIONS: its command and the files it installs. None if no role has
    that container."""
    import jinja2

    class Off(jinja2.ChainableUndefined):
        def __bool__(self):
            return False

    env = jinja2.Environment(undefined=Off)
    env.filters["bool"] = lambda v: False if isinstance(v, jinja2.Undefined) else str(v).lower() in ("true", "yes", "1")
    env.filters["put_address_in_context"] = lambda v, *a: v
    env.filters["basename"] = lambda v: os.path.basename(str(v))
    env.filters["dirname"] = lambda v: os.path.dirname(str(v))
    names = [container, container.removesuffix("s")]  # neutron-periodic-workers -> -worker
    for role in role_dirs(src, image):
        for name in names:
            tpl = role / "templates" / f"{name}.json.j2"
            if tpl.exists():
                text = env.from_string(tpl.read_text()).render(
                    container_config_directory=CONFIG_DIR, kolla_base_distro="ubuntu",
                    neutron_plugin_agent="openvswitch", **ENABLED_OPTIONS.get(container, ({},))[0])
                return json.loads(text)
    return None


# How our containers differ from kolla-ansible's config.json of the same container,
# and why. Keys: (container, "command") or (container, a kolla-ansible destination we
# do not install). The test checks that exactly these differ, release by release.
CONFIG_DEVIATIONS = {
    ("keystone", "command"): "kolla-ansible's keystone-startup.sh waits for the fernet keys that its "
                             "keystone-fernet/keystone-ssh containers distribute; osception ships the keys "
                             "in the Secret, so uWSGI starts directly",
    ("keystone", "/usr/bin/keystone-startup.sh"): "see the command",
    ("keystone", "/etc/apache2/conf-enabled/wsgi-keystone.conf"): "2025.1's kolla-ansible serves keystone "
        "with Apache mod_wsgi; osception runs keystone.wsgi.api under the uWSGI every openstack-base "
        "image installs, in every release",
    ("glance-api", "command"): "before 2026.1 kolla-ansible runs eventlet glance-api; osception runs "
                               "glance.wsgi.api under the image's uWSGI in every release",
    ("neutron-rpc-server", "command"): "the config files are named on the command line, as for neutron-server",
    ("neutron-periodic-workers", "command"): "the config files are named on the command line, as for neutron-server",
    ("placement-api", "/etc/placement/migrate-db.rc"): "kolla-ansible's tool for moving placement's data "
                                                       "out of nova's database; osception starts fresh",
    ("neutron-server", "/var/lib/neutron/.ssh/id_rsa"): "for ML2 drivers that configure physical switches "
                                                        "over SSH; osception runs ML2/Open vSwitch only",
    ("rabbitmq", "/etc/rabbitmq/rabbitmq-env.conf"): "one node with the StatefulSet's stable host name: "
                                                     "RabbitMQ's defaults; logs on the console (rabbitmq.conf)",
    ("rabbitmq", "/etc/rabbitmq/enabled_plugins"): "no management or Prometheus plugin",
    ("rabbitmq", "/etc/rabbitmq/erl_inetrc"): "no cluster: Erlang's name resolution defaults",
    ("rabbitmq", "/etc/rabbitmq/advanced.config"): "no cluster: no advanced Erlang settings",
}
# Files we install that kolla-ansible's config.json does not list, and why.
EXTRA_FILES = {
    r"/etc/\w+/\w+\.conf\.d/secrets\.conf$": "the password lines of the service's config, from its Secret "
                                            "(oslo.config reads <project>.conf.d/ after the main file)",
    r"/etc/keystone/(fernet|credential)-keys/\d+$": "the keys, from the Secret (kolla-ansible: keystone-fernet)",
    r"/etc/\w+/[\w-]+-uwsgi\.ini$": "the API's uWSGI file, as service-uwsgi-config writes it",
}


def config_differences(src: KollaSources, container: Container) -> tuple[set, set] | None:
    """(differences, extra files) of one long-running container against kolla-ansible's
    config.json for it; None where kolla-ansible has no such container."""
    theirs = kolla_ansible_config(src, container.kolla_image, container.name)
    if theirs is None:
        return None
    ours = container.config_json
    diffs = set()
    # Arguments kolla-ansible fills from its inventory render empty here ("-l  -p "):
    # then only the program is compared.
    holes = re.search(r"\s\s|\s$", theirs["command"])
    if ours["command"].split()[0] != theirs["command"].split()[0] or (
            not holes and ours["command"] != theirs["command"]):
        diffs.add((container.name, "command"))
    mine = {e["dest"]: e for e in ours["config_files"]}
    for entry in theirs["config_files"]:
        if entry["dest"] not in mine:
            if not entry.get("optional"):
                diffs.add((container.name, entry["dest"]))
        elif (mine[entry["dest"]]["owner"], mine[entry["dest"]]["perm"]) != (entry["owner"], entry["perm"]):
            diffs.add((container.name, entry["dest"] + " owner/perm"))
    extra = {d for d in mine if d not in {e["dest"] for e in theirs["config_files"]}}
    return diffs, extra


# --- kolla_start under a container's capabilities ------------------------------------

def kolla_start_runs_sudo(src: KollaSources) -> bool:
    """Whether the release's kolla_start (base/start.sh, the images' entrypoint) runs
    programs through sudo: then it needs privilege escalation (sudo is setuid root)."""
    base = src.docker / "base"
    installed = re.search(r"^COPY start\.sh /usr/local/bin/kolla_start$",
                          (base / "Dockerfile.j2").read_text(), re.M)
    return bool(installed) and re.search(r"^sudo ", (base / "start.sh").read_text(), re.M) is not None


def goes_through_kolla_start(container: Container) -> bool:
    """The container runs Kolla's kolla_start: as its image's entrypoint, or from a
    script of its command (mariadb-bootstrap.sh)."""
    return any(call.executable == "kolla_start" for call in calls(container))


def _installed_files(src: KollaSources, image: str) -> dict[str, Path]:
    """{path in the image: Kolla source file} of the scripts and sudoers the image's
    Dockerfile chain COPYs into /usr/local/bin and /etc/sudoers*, base first."""
    out: dict[str, Path] = {}
    for folder in reversed(image_chain(src, image)):
        for m in re.finditer(r"^COPY (\S+) (/usr/local/bin/\S+|/etc/sudoers\S*)$",
                             (folder / "Dockerfile.j2").read_text(), re.M):
            if (folder / m.group(1)).is_file():
                out[m.group(2)] = folder / m.group(1)
    return out


def run_kolla_start(src: KollaSources, container: Container, debian_root: Path, work: Path,
                    capabilities: set[str], no_new_privs: bool = False) -> tuple[bool, str]:
    """Run the release's kolla_start for `container` as its image's user, in an overlay of
    a Debian root that has sudo (the images' sudo comes from their distribution), with
    the image's scripts and sudoers from the Kolla sources, Kolla's users, the container's
    config folder as the kubelet projects it, and exactly `capabilities` in the bounding
    set (what a container keeps after `drop: [ALL]`, `add: [...]`). The service itself is
    a stub that exits 0. (passed, log): passed when kolla_start exits 0 and every file of
    config.json has its owner and mode."""
    root, upper, scratch = work / "root", work / "upper", work / "scratch"
    for d in (root, upper, scratch):
        d.mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={debian_root},upperdir={upper},workdir={scratch}", str(root)], check=True)
    try:
        for dest, source in _installed_files(src, container.kolla_image).items():
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(0o440 if dest.startswith("/etc/sudoers") else 0o755)
        for name in ("kolla_extend_start", "kolla_httpd_setup"):  # sourced, may be absent (touch)
            (root / "usr/local/bin" / name).touch()
        (root / "etc/apache2").mkdir(parents=True, exist_ok=True)
        (root / "etc/apache2/envvars").touch()  # what kolla_httpd_setup sources (Apache's)
        config = container.config_json
        program = root / "usr/local/bin" / os.path.basename(config["command"].split()[0])
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
        lay_out_projected_volume(root / CONFIG_DIR.lstrip("/"), container.mounts[CONFIG_DIR])
        users = kolla_users(src)
        user = image_user(src, container.kolla_image)
        setup = [f"groupadd -g {users['kolla'][1]} kolla"]
        for name in sorted(({user} | {e["owner"].split(":")[0] for e in config["config_files"]}) - {"root"}):
            uid, gid = users[name]
            setup.append(f"groupadd -g {gid} {name} && useradd -u {uid} -g {gid} -G kolla -M -s /bin/bash {name}")
        setup.append("mkdir -p /var/log/kolla && chgrp kolla /var/log/kolla && chmod 2775 /var/log/kolla"
                     " && chmod 1777 /tmp"
                     f" && echo '127.0.0.1 localhost {socket.gethostname()}' > /etc/hosts")  # sudo resolves it
        subprocess.run(["chroot", str(root), "sh", "-ec", " && ".join(setup)], check=True, capture_output=True)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "KOLLA_BASE_DISTRO": "debian",  # the images' ENV
               **{k: v for k, v in container.env.items() if v is not None}}
        bounding = ",".join(["-all"] + [f"+{c.lower()}" for c in sorted(capabilities)])
        done = subprocess.run(
            ["chroot", str(root), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
             "setpriv", "--bounding-set", bounding, "--reuid", user, "--regid", user, "--init-groups",
             *(["--no-new-privs"] if no_new_privs else []), "--", "kolla_start"],
            capture_output=True, text=True, timeout=120)
        log = done.stdout + done.stderr
        passed = done.returncode == 0
        for entry in config["config_files"]:
            dest = root / entry["dest"].lstrip("/")
            want = (users.get(entry["owner"], (0, 0))[0], int(entry["perm"], 8))
            got = (dest.stat().st_uid, dest.stat().st_mode & 0o777) if dest.exists() else None
            if got != want:
                passed = False
                log += f"\n{entry['dest']}: {got} instead of {want}"
        return passed, log
    finally:
        subprocess.run(["umount", str(root)], check=True)
