"""Jinja2 over templates/ -> {relative path: text}. Pure and deterministic.

The layout of a plan (what `osception plan --out DIR` writes):

    k8s-0/user-data            the controller's cloud-init document (the manifests and the
                               diagnoser inside, as one xz-compressed tar: CONTROLLER_ARCHIVE)
    k8s-0/manifests/*.yaml     the control plane, one readable file per service
    k8s-0/kube_diagnose.py     what the controller runs to say which workloads are not ready
    k8s-0/config/*             the rendered service config files (secrets in *.secret.conf)
    compute-N/user-data        (and network-N/...) what each data-plane node receives
"""

from __future__ import annotations

import base64
import configparser
import email
import io
import gzip
import json
import lzma
import re
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import yaml

from . import endpoints, ini, releases, services, tls
from . import patches as patches_mod
from .topology import Address, Node, nodes, placeholder_addresses
from .config import METADATA_ADDRESSES, Config, ConfigError
from . import secrets as secrets_mod
from . import __version__
from .secrets import Secrets
from .state import check_dir, write_file

NODE_ETC = "/etc/osception"  # on every node: setup script, playbooks, vars, rendered files
NODE_CONSTRAINTS = f"{NODE_ETC}/constraints.txt"  # node_source pypi: the release's lock
NODE_PATCHES = f"{NODE_ETC}/patches"  # patches: files, per project
# `osception bake`: what a baked image was made for ("node 2026.2 packages 0.1.0"),
# written in it; the setup scripts skip what it installed when it matches theirs.
BAKED_STAMP = "/var/lib/osception/baked"
# k3s's server flags, the same whether the setup installs it or the bake did.
K3S_EXEC = "server --write-kubeconfig-mode=0600"
NODE_PATCH_STATE = "/var/lib/osception/patches"  # osception-patch.py's state, per project
DEFAULT_MTU = 1500
NAMESPACE = "openstack"
# The controller's manifests travel in its user data as one archive, unpacked under NODE_ETC.
CONTROLLER_ARCHIVE = f"{NODE_ETC}/manifests.tar.xz"
# PyYAML's libyaml parser where it is built in (the same documents, several times faster
# than the pure-Python one: a plan parses its manifests twice).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DIAGNOSER = "kube_diagnose.py"  # in the archive too: run while the control plane converges
# Nova's API schema (nova/api/openstack/compute/schemas/servers.py, server create and
# rebuild, every microversion) takes `user_data` as a base64 string of at most 65535
# characters: Nova counts the base64 text of what the server is given (wire_user_data:
# the gzip of the cloud-config), at most 49149 bytes of it.
NOVA_USER_DATA_LIMIT = 65535

class PlanError(ValueError):
    """A rendered file that does not parse back: one line naming it, never its content."""


# What ends a line for one of the rendered formats' parsers: YAML (PyYAML's and
# cloud-init's: also NEL, LS, PS), INI (oslo.config reads Python's lines), shell.
LINE_BREAK = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


class Block(str):
    """Text a filter made to span lines where it goes: indented into a YAML block
    scalar (indent), or serialized for its place (tojson, yaml, sh)."""


@jinja2.pass_context
def _finalize(context, value):
    """A value is never structure: every `{{ ... }}` of every template is one line,
    unless a filter made it a Block for its place. A line break in a value would start
    a new YAML key, INI option or shell command (a node's user data, its nova.conf)."""
    if isinstance(value, str) and not isinstance(value, Block) and LINE_BREAK.search(value):
        raise PlanError(f"{context.name}: a value holding a line break where one line goes "
                        "(a value in osception.yaml, secrets.yaml or resources.json)")
    if isinstance(value, str) and not isinstance(value, Block) and _is_ini(context.name):
        # oslo.config substitutes `$name` / `${group.name}` with another option's value
        # (a `$` alone fails the service); `$$` is its literal dollar.
        return value.replace("$", "$$")
    return value


def _is_ini(template: str | None) -> bool:
    """A template of an oslo.config INI file (templates/conf/, but Skyline's YAML)."""
    return bool(template) and template.startswith("conf/") and not template.endswith(".yaml.j2")


class _Context(jinja2.runtime.Context):
    """A macro's output is a Block: a template's own lines, each of its values passed
    through _finalize where the macro wrote it."""

    def call(__self, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
        rv = super().call(__obj, *args, **kwargs)
        return Block(rv) if isinstance(__obj, jinja2.runtime.Macro) and isinstance(rv, str) else rv


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("osception", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    finalize=_finalize,
)
_env.context_class = _Context


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _tojson(v, indent=None, sort_keys=True) -> Block:
    """JSON is YAML: a string in double quotes, every control character escaped."""
    return Block(json.dumps(v, indent=indent, sort_keys=sort_keys))


def _sh(v) -> str:
    """One shell word (POSIX quoting), whatever the value holds (a line break: refused
    by _finalize, as in any value: the script is itself indented into user data)."""
    return shlex.quote(str(v))


@jinja2.pass_context
def _ini_list(context, items) -> str:
    """An oslo.config list option's value: the items joined by commas, none holding a
    comma (oslo.config splits on it: one host would become two), a bracket, a quote or
    a space."""
    items = [str(i) for i in items]
    if any(not i or re.search(r"[,\[\]\"'\s]", i) for i in items):
        raise PlanError(f"{context.name}: a list item empty or holding a comma, bracket, quote or space "
                        "(a value in osception.yaml)")
    return ",".join(items)


_env.filters["b64"] = _b64
_env.filters["ini_list"] = _ini_list
_env.filters["tojson"] = _tojson
_env.filters["sh"] = _sh
_env.filters["indent"] = lambda *a, **k: Block(jinja2.filters.do_indent(*a, **k))
# {"a": 1} | merge({"b": 2}) -> {"a": 1, "b": 2}: Jinja has no ** in dict literals.
_env.filters["merge"] = lambda a, *more: {k: v for d in (a, *more) for k, v in d.items()}
_env.filters["yaml"] = lambda v: Block(yaml.safe_dump(v, sort_keys=False, default_flow_style=False).rstrip())


@dataclass
class Plan:
    cfg: Config
    release: releases.Release
    controller_ip: str
    domain: str
    nodes: list[Node]
    files: dict[str, str] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)  # files written 0600
    ingress: tls.Ingress | None = None  # what Traefik serves, and what verifies it
    mtu: int = DEFAULT_MTU  # the outer network's: the nodes' physical network
    tls_cert: str | None = None  # the controller's certificate, the environment's CA issued
    # patches: reviews, pinned when the plan is made ({(project, index in its list): Review})
    reviews: dict[tuple[str, int], patches_mod.Review] = field(default_factory=dict)

    def node_endpoints(self) -> endpoints.Endpoints:
        """Where a compute or network node reaches the controller. Its services verify
        the APIs with the environment's CA, or with the user's `tls.ca`, or (a public
        CA's certificate given without it) with the system's CAs."""
        own = self.cfg.tls
        cafile = (endpoints.NODE_CA if own is None else
                  endpoints.NODE_INGRESS_CA if self.ingress.ca else endpoints.SYSTEM_CA_BUNDLE)
        return endpoints.nodes(self.domain, self.controller_ip, cafile)

    @property
    def services(self) -> list[str]:
        """The control plane's services, from its manifests: 20-keystone.yaml -> keystone
        (00-namespace and 01-secrets hold no service)."""
        return [p.split("/")[-1].split("-", 1)[1].removesuffix(".yaml")
                for p in sorted(self.files)
                if p.startswith("k8s-0/manifests/") and not p.split("/")[-1].startswith("0")]

    def mode(self, rel: str) -> int:
        """The file's mode, on the operator's disk and in a node's archive alike."""
        return 0o600 if rel in self.private else 0o644

    @property
    def user_data_sizes(self) -> dict[str, int]:
        """Each node's user data as Nova counts it (see NOVA_USER_DATA_LIMIT), of the
        nodes rendered so far."""
        return {n.name: user_data_size(self.files[f"{n.name}/user-data"]) for n in self.nodes
                if f"{n.name}/user-data" in self.files}


class UserDataTooLarge(ValueError):
    """A node's user data over Nova's limit: the server could never be created."""


def wire_user_data(text: str) -> bytes:
    """What a server is given: its cloud-config gzip-compressed. cloud-init decompresses
    gzip user data itself (user_data.convert_string); the plan keeps the readable text.
    mtime=0: the same text always gives the same bytes."""
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def user_data_size(text: str) -> int:
    """The user data as Nova counts it: the base64 of what the server is given."""
    return len(base64.b64encode(wire_user_data(text)))


def check_user_data(plan: Plan, names: list[str] | None = None) -> None:
    """Each node's user data (of `names`: only theirs) within Nova's limit."""
    for node in names if names is not None else [n.name for n in plan.nodes]:
        size = user_data_size(plan.files[f"{node}/user-data"])
        if size > NOVA_USER_DATA_LIMIT:
            raise UserDataTooLarge(
                f"{node}: user data is {size} bytes of base64 as Nova counts it, over Nova's "
                f"limit of {NOVA_USER_DATA_LIMIT}")


_SECRET_DOC = re.compile(r"^kind: Secret$", re.M)


CHECKSUM_ANNOTATION = "osception/config-checksum"
JOB_LABEL = "osception/job"


def referenced_config(pod: dict) -> list[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret of the plan a pod spec reads (not
    Kubernetes' own kube-root-ca.crt, which the plan does not make)."""
    refs = set()
    for v in pod.get("volumes", []):
        if "configMap" in v:
            refs.add(("ConfigMap", v["configMap"]["name"]))
        if "secret" in v:
            refs.add(("Secret", v["secret"]["secretName"]))
        for src in v.get("projected", {}).get("sources", []):
            if "configMap" in src and src["configMap"]["name"] != services.KUBE_ROOT_CA:
                refs.add(("ConfigMap", src["configMap"]["name"]))
            if "secret" in src:
                refs.add(("Secret", src["secret"]["name"]))
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                refs.add(("Secret", ref["secretKeyRef"]["name"]))
            if "configMapKeyRef" in ref:
                refs.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                refs.add(("Secret", e["secretRef"]["name"]))
            if "configMapRef" in e:
                refs.add(("ConfigMap", e["configMapRef"]["name"]))
    return sorted(refs)


def day2(manifests: dict[str, str]) -> dict[str, str]:
    """Make `kubectl apply` of a new plan on a running controller do the right thing:

    - every pod template carries the checksum of the ConfigMaps and Secrets it reads
      (annotation osception/config-checksum), so a changed setting rolls exactly the
      workloads that read it, and nothing else;
    - every Job is named after a hash of its spec and of what it reads
      (keystone-bootstrap-1a2b3c4d): Jobs are immutable, so a changed Job is a new Job
      that runs again, and the waits that name it follow; `kubectl apply --prune -l
      osception/job` (controller-setup) removes the Jobs of older plans.
    An unchanged plan gives the same text, so re-applying it changes nothing."""
    import hashlib

    # Each manifest as its text documents (split on the `---` lines the templates write)
    # and each document parsed once: the checksums go back into the text as written.
    parts = {name: re.split(r"(?m)^---\n", text) for name, text in manifests.items()}
    loaded = {name: [yaml.load(part, Loader=_SafeLoader) for part in ps] for name, ps in parts.items()}
    objects = {(d["kind"], d["metadata"]["name"]): d for ds in loaded.values() for d in ds
               if d and d["kind"] in ("ConfigMap", "Secret")}

    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    jobs = {}
    for name, ds in loaded.items():
        for k, d in enumerate(ds):
            if d and d["kind"] in ("Deployment", "StatefulSet", "Job"):
                pod = d["spec"]["template"]
                read = [objects[r] for r in referenced_config(pod["spec"])]
                checksum = digest([[o["kind"], o["metadata"]["name"], o.get("data"), o.get("stringData")]
                                   for o in read])[:16]
                pod.setdefault("metadata", {}).setdefault("annotations", {})[CHECKSUM_ANNOTATION] = checksum
                parts[name][k] = _annotate(parts[name][k], checksum)
                if d["kind"] == "Job":
                    jobs[d["metadata"]["name"]] = f"{d['metadata']['name']}-{digest(d['spec'])[:8]}"
    out = {}
    for name, ps in parts.items():
        text = "---\n".join(ps)
        for job, new in jobs.items():
            text = re.sub(rf"(\bjob/|^  name: ){re.escape(job)}\b(?=[\"\n])", rf"\g<1>{new}", text, flags=re.M)
            text = text.replace(f"kind: Job\nmetadata:\n  name: {new}\n",
                                f"kind: Job\nmetadata:\n  name: {new}\n  labels:\n    {JOB_LABEL}: \"true\"\n")
        out[name] = text
    return out


def _annotate(document: str, checksum: str) -> str:
    """Add the checksum annotation to a workload document's pod template, as text (the
    manifests stay as written, comments included)."""
    line = f'        {CHECKSUM_ANNOTATION}: "{checksum}"\n'
    if re.search(r"(?m)^    metadata:\n(      labels:\n(        .*\n)+)?      annotations:\n", document):
        return re.sub(r"(?m)^(      annotations:\n)", lambda m: m.group(1) + line, document, count=1)
    return re.sub(r"(?m)^(  template:\n    metadata:\n)", lambda m: m.group(1) + "      annotations:\n" + line,
                  document, count=1)


def ingress_hosts(manifests) -> list[str]:
    """The host of every Ingress rule: the names users reach the controller by."""
    return [rule["host"] for text in manifests for doc in yaml.load_all(text, Loader=_SafeLoader)
            if doc and doc.get("kind") == "Ingress" for rule in doc["spec"]["rules"]]


def holds_secret(manifest: str) -> bool:
    """A manifest with a Kubernetes Secret among its documents (top-level `kind:` lines
    only: a ConfigMap quoting the words stays public)."""
    return bool(_SECRET_DOC.search(manifest))


def archive(plan: Plan, members: dict[str, str]) -> bytes:
    """{name in the archive: plan file} as one tar.xz, the same bytes for the same plan:
    sorted names, mtime 0, owner root, each file's mode from Plan.mode."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, rel in sorted(members.items()):
            data = plan.files[rel].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), plan.mode(rel), 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)


ANSIBLE_FILES = ("compute.yml", "network.yml", "tasks/common.yml", "tasks/compute.yml",
                 "tasks/network.yml")


def source(path: str) -> str:
    """A file under templates/, as is (not rendered)."""
    return _env.loader.get_source(_env, path)[0]


def script(name: str) -> str:
    return source(f"scripts/{name}")


def catalog(ep: endpoints.Endpoints) -> dict:
    """The Keystone catalog: public URLs through the ingress, internal ones inside the
    cluster (see endpoints)."""
    return {
        "region": services.REGION,
        "services": [
            {"name": name, "type": api.catalog_type,
             "public": ep.public[name] + api.path, "internal": ep.internal[name] + api.path}
            for name, api in services.APIS.items() if api.catalog_type
        ],
        "users": {user: list(roles) for user, roles in services.SERVICE_USER_ROLES.items()},
        "managed_roles": list(services.MANAGED_SERVICE_ROLES),
    }


def knob_reader(cfg: Config, used: dict[str, set[str]]):
    """`knobs(service, **defaults)` for the templates: the defaults a template declares,
    with the user's `tuning.<service>` applied; a knob the template lacks is an error."""
    def knobs(service: str, **defaults):
        tuned = cfg.tuning.get(service, {})
        unknown = sorted(set(tuned) - set(defaults))
        if unknown:
            raise ConfigError(f"tuning.{service}.{unknown[0]}: unknown knob; {service} has: "
                              f"{', '.join(sorted(defaults))}")
        for knob, value in tuned.items():
            if problem := knob_problem(defaults[knob], value):
                raise ConfigError(f"tuning.{service}.{knob}: {problem}")
        used[service] = set(defaults)
        return {**defaults, **tuned}
    return knobs


# The sizes the templates' knobs take: Kubernetes quantities (storage: 20Gi) and
# MariaDB's (innodb_buffer_pool_size: 64M); a knob takes the kind of its default.
SIZE_UNITS = {"kubernetes": ("Ki", "Mi", "Gi", "Ti"), "mariadb": ("K", "M", "G")}


def knob_problem(default: int | str, value: object) -> str | None:
    """Why `value` cannot replace a knob's `default`, or None: a count for a count
    (at least 1: no service runs on 0 processes), a size of the same kind for a size."""
    if type(default) is int:
        if type(value) is not int or value < 1:
            return f"must be a whole number of at least 1, like its default {default}"
        return None
    units = next(u for u in SIZE_UNITS.values() if default.lstrip("0123456789") in u)
    number, unit = (value.rstrip("KMGTi"), value[len(value.rstrip("KMGTi")):]) if isinstance(value, str) else ("", "")
    if not (number.isdigit() and int(number) > 0 and unit in units):
        return f"must be a size like its default {default} (a number and {', '.join(units)})"
    return None


def render_template(name: str, **context) -> str:
    return _env.get_template(name).render(**context)


def secret_values(secrets: Secrets) -> list[str]:
    """Every secret string, for splitting them out of config files (and for tests).
    The public halves (an SSH public key, the CA's certificate) are not secrets."""
    found: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in ("public", "ca_cert"):
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            found.append(v)

    walk(secrets.data)
    return found


def _ini(cfg: Config, template: str, name: str, **context) -> str:
    """One INI file from templates/conf/, with the user's overrides for `name` merged in."""
    text = render_template(f"conf/{template}.j2", **context)
    for section, options in cfg.overrides.get(name, {}).items():
        for key, value in options.items():  # the merge writes each as it is, one line
            if any(LINE_BREAK.search(v) for v in (section, key, ini.ini_value(value))):
                shown = ".".join(t.encode("unicode_escape").decode() for t in (name, section, key))
                raise PlanError(f"overrides.{shown}: a line break where one INI line goes")
    return ini.merge(text, cfg.overrides[name]) if name in cfg.overrides else text


def service_config(cfg: Config, secrets: Secrets, ep: endpoints.Endpoints,
                   names=services.CONTROLLER_INI, mtu: int = DEFAULT_MTU) -> dict[str, str]:
    """Render the control plane's INI files for one place, with the user's overrides."""
    release = releases.get(cfg.release)
    context = dict(
        ep=ep,
        secrets=secrets,
        services=services,
        release=release,
        mtu={"physnet": mtu},
        ml2_project_network_types_option=release.ml2_project_network_types_option,
        web_download=cfg.overcloud.web_download,
        control_host=control_host(cfg),
    )
    return {name: _ini(cfg, name, name, **context) for name in names}


def control_host(cfg: Config) -> str:
    """The `host` the control plane's services register under (nova.conf): the
    controller's node name, the same from one pod to the next."""
    return next(n.name for n in nodes(cfg) if n.role == "controller")


def node_config(cfg: Config, secrets: Secrets, node: Node, address: Address,
                ep: endpoints.Endpoints) -> dict[str, str]:
    """The config files of a compute or network node, keyed by their path on the node
    (`ep`: where it reaches the controller, Plan.node_endpoints())."""
    context = dict(
        ep=ep,
        secrets=secrets,
        services=services,
        controller_ip=ep.controller,
        node={"name": node.name, "role": node.role, "ip": address.ip},
        ovs_datapath=cfg.ovs_datapath,
        bindir=node_bindir(cfg),
        release=releases.get(cfg.release),
    )
    files = {f.dest: _ini(cfg, f.template, f.name, **context)
             for f in services.NODE_FILES[node.role]}
    if node.role == "compute":
        for virt_type in ("kvm", "qemu"):
            files[f"/etc/nova/nova-compute-{virt_type}.conf"] = render_template(
                "conf/nova-compute-libvirt.conf.j2", virt_type=virt_type, **context)
    return files


def node_bindir(cfg: Config) -> str:
    """Where a node's OpenStack programs are: Debian's packages', or the PyPI venv's."""
    return "/usr/bin" if cfg.node_source == "packages" else f"{services.NODE_VENV}/bin"


def services_python(cfg: Config) -> str:
    """The interpreter a node's OpenStack services run with: Debian's, or the PyPI venv's."""
    return "/usr/bin/python3" if cfg.node_source == "packages" else f"{services.NODE_VENV}/bin/python3"


def node_lock(release: releases.Release) -> str:
    """The release's lock (the devcloud's): a pypi node's pip constraints."""
    from .devcloud.venv import lock_file

    return lock_file(release.name).read_text()


def pip_env(index_url: str | None) -> dict[str, str]:
    """The nodes' pip environment for an index (none: pypi.org's defaults)."""
    if index_url is None:
        return {}
    env = {"PIP_INDEX_URL": index_url}
    if index_url.startswith("http://"):
        env["PIP_TRUSTED_HOST"] = urlsplit(index_url).netloc
    return env


def domain_of(cfg: Config, controller_ip: str) -> str:
    """The endpoints' DNS name: `domain`, else <controller IP>.sslip.io (a public
    wildcard name that resolves to that IP)."""
    return cfg.domain or f"{controller_ip}.sslip.io"


def build(cfg: Config, secrets: Secrets, addresses: dict[str, Address] | None = None,
          mtu: int | None = None, ep: endpoints.Endpoints | None = None) -> Plan:
    """Everything every node receives. `addresses` come from the outer cloud's ports;
    without them (plan), documentation addresses stand in. `ep`: where the control
    plane's services reach each other, when not in the controller's k3s (the devcloud)."""
    addresses = addresses or placeholder_addresses(cfg)
    plan = new_plan(cfg, secrets, addresses["k8s-0"], mtu=mtu)
    add_controller(plan, secrets, ep=ep)
    for node in plan.nodes:
        if node.data_plane:
            add_node(plan, secrets, node, addresses[node.name])
    return plan


def new_plan(cfg: Config, secrets: Secrets, controller: Address, mtu: int | None = None) -> Plan:
    """A plan without files yet: what every node's files share (the controller's
    address and names, what the APIs present and what verifies them). Then the
    controller's files (add_controller) and each node's (add_node), in any order, even
    at once: each writes only its own. A node's files depend on its own address and
    the controller's only, so `up` renders each as soon as its port exists."""
    ip = controller.ip
    domain = domain_of(cfg, ip)
    plan = Plan(cfg, releases.get(cfg.release), ip, domain, nodes(cfg), mtu=mtu or cfg.mtu or DEFAULT_MTU)
    plan.tls_cert = tls.server_cert(secrets.tls, domain, ip)
    # what Traefik serves: that certificate, or the user's own (tls: in osception.yaml)
    plan.ingress = tls.ingress(cfg.tls, secrets.tls, plan.tls_cert)
    plan.reviews = resolve_reviews(cfg)
    if plan.reviews:  # what the plan pins, readable beside the files that carry it
        plan.files[REVIEWS_FILE] = yaml.safe_dump([
            {"project": project, "patch": i, "review": r.review, "change": r.change,
             "patchset": r.patchset, "sha256": r.sha256, "url": f"{patches_mod.GERRIT}/c/{r.change}/{r.patchset}"}
            for (project, i), r in sorted(plan.reviews.items())], sort_keys=False)
    return plan


REVIEWS_FILE = "reviews.yaml"


def resolve_reviews(cfg: Config) -> dict[tuple[str, int], patches_mod.Review]:
    """Every `review:` patch of the config pinned: its patch set, content and sha256,
    fetched from Gerrit now (a config without reviews needs no network)."""
    out = {}
    for project, patches in sorted(cfg.patches.items()):
        for i, p in enumerate(patches, 1):
            if p.review is not None:
                try:
                    out[(project, i)] = patches_mod.resolve(p.review)
                except patches_mod.PatchError as e:
                    raise ConfigError(f"patches.{project}.{i - 1}: {e}") from None
    return out


def add_controller(plan: Plan, secrets: Secrets, ep: endpoints.Endpoints | None = None) -> None:
    """The controller's files (k8s-0/...), parsed back and sized. `ep`: where the
    control plane's services reach each other, when not in k3s (the devcloud)."""
    cfg, release, ip, domain, mtu = plan.cfg, plan.release, plan.controller_ip, plan.domain, plan.mtu
    ep = ep or endpoints.controller(domain, ip)
    # Service config: split so that no secret value ever reaches a ConfigMap.
    full = service_config(cfg, secrets, ep, mtu=mtu)
    hidden = secret_values(secrets)
    conf, conf_secret = {}, {}
    for name, text in full.items():
        conf[name], conf_secret[name] = ini.split_secrets(text, hidden)
        plan.files[f"k8s-0/config/{name}"] = conf[name]
        if conf_secret[name]:
            secret_name = name.rsplit(".", 1)[0] + ".secret.conf"
            plan.files[f"k8s-0/config/{secret_name}"] = conf_secret[name]
            plan.private.add(f"k8s-0/config/{secret_name}")

    skyline_yaml = render_template("conf/skyline.yaml.j2", ep=ep, secrets=secrets, services=services)
    plan.files["k8s-0/config/skyline.yaml"] = skyline_yaml
    plan.private.add("k8s-0/config/skyline.yaml")

    keystone_catalog = catalog(ep)
    context = dict(
        cfg=cfg,
        release=release,
        secrets=secrets,
        services=services,
        namespace=NAMESPACE,
        domain=domain,
        controller_ip=ip,
        ep=ep,
        conf=conf,
        conf_secret=conf_secret,
        skyline_yaml=skyline_yaml,
        catalog={**keystone_catalog,
                 "services": [s for s in keystone_catalog["services"] if s["name"] != "keystone"]},
        keystone_urls=next(s for s in keystone_catalog["services"] if s["name"] == "keystone"),
        image=lambda n: _tojson(services.image(n, release, cfg.images)),
        knobs=knob_reader(cfg, tuned := {}),
        # patches: (osception.yaml) on the controller: each project's patch files and the
        # arguments of its pods' `patch` init container (k8s/_kolla.j2)
        **controller_patches(cfg, plan.reviews),
        script=script,
        k3s_version=releases.K3S_VERSION,
        k3s_exec=K3S_EXEC,
        baked=bake_id("controller", cfg),
        baked_stamp=BAKED_STAMP,
        tls_cert=plan.tls_cert,
        ingress=(ingress := plan.ingress),
        host_key=secrets_mod.host_key(secrets, "k8s-0"),
    )
    manifests = {}
    for template in sorted(_env.list_templates(filter_func=lambda t: t.startswith("k8s/"))):
        base = template.removeprefix("k8s/")
        if base.startswith("_") or not base.endswith(".yaml.j2"):
            continue
        manifests[base.removesuffix(".j2")] = render_template(template, **context)
    for name, text in manifests.items():  # before day2 reads them
        check_file(f"k8s-0/manifests/{name}", text)
    if cfg.tls is not None:  # the user's certificate must name every host of an Ingress
        tls.check_names(cfg.tls, ingress.chain, ingress_hosts(manifests.values()))
    manifests = day2(manifests)
    for name, text in manifests.items():
        plan.files[f"k8s-0/manifests/{name}"] = text
        if holds_secret(text):
            plan.private.add(f"k8s-0/manifests/{name}")

    for service in sorted(set(cfg.tuning) - set(tuned)):
        raise ConfigError(f"tuning.{service}: no template has knobs for it; "
                          f"tunable: {', '.join(sorted(tuned))}")

    setup_sh = render_template("scripts/controller-setup.sh.j2", node="k8s-0", node_etc=NODE_ETC,
                               archive_path=CONTROLLER_ARCHIVE, **context)
    plan.files[f"k8s-0/{DIAGNOSER}"] = script(DIAGNOSER)
    manifests_tar = archive(plan, {f"manifests/{name}": f"k8s-0/manifests/{name}" for name in manifests}
                            | {DIAGNOSER: f"k8s-0/{DIAGNOSER}"})
    plan.files["k8s-0/k3s/traefik-config.yaml"] = render_template("k3s/traefik-config.yaml.j2")
    if ingress.ca is not None:  # what verifies the ingress (none: the system's CAs)
        plan.files["k8s-0/ca.pem"] = ingress.ca
    plan.files["k8s-0/user-data"] = render_template(
        "cloud-init/controller.yaml.j2", traefik_config=plan.files["k8s-0/k3s/traefik-config.yaml"],
        ca_pem=ingress.ca, node="k8s-0", step_sh=script("osception-step.sh"),
        setup_sh=setup_sh, node_etc=NODE_ETC, archive_path=CONTROLLER_ARCHIVE,
        archive_b64=base64.b64encode(manifests_tar).decode(), **context
    )
    plan.private.add("k8s-0/user-data")
    for rel in [rel for rel in list(plan.files) if rel.startswith("k8s-0/")]:
        check_file(rel, plan.files[rel])
    check_user_data(plan, ["k8s-0"])


def add_node(plan: Plan, secrets: Secrets, node: Node, address: Address) -> None:
    """compute-N / network-N: config files, the playbooks and their variables, user
    data, parsed back and sized like the controller's."""
    _data_plane_node(plan, secrets, secret_values(secrets), node, address, plan.mtu)
    for rel in [rel for rel in list(plan.files) if rel.startswith(f"{node.name}/")]:
        check_file(rel, plan.files[rel])
    check_user_data(plan, [node.name])


def _data_plane_node(plan: Plan, secrets: Secrets, hidden: list[str], node: Node, address: Address,
                     mtu: int) -> None:
    """compute-N / network-N: config files, the playbooks and their variables, user data."""
    cfg, release = plan.cfg, plan.release
    ep = plan.node_endpoints()
    files = node_config(cfg, secrets, node, address, ep)
    for dest, text in files.items():
        rel = f"{node.name}/config/{dest.rsplit('/', 1)[1]}"
        plan.files[rel] = text
        if any(v in text for v in hidden):
            plan.private.add(rel)
    pypi = cfg.node_source == "pypi"
    units = node_units(cfg, release, node.role)
    for dest, text in units.items():
        plan.files[f"{node.name}/systemd/{dest.rsplit('/', 1)[1]}"] = text
    node_patches, patch_files = node_patches_of(cfg, node, plan.reviews)
    vars_yaml = ansible_vars(node_vars(cfg, release, node, address, plan.controller_ip, mtu, node_patches, units))
    plan.files[f"{node.name}/user-data"] = render_template(
        "cloud-init/node.yaml.j2",
        node=node,
        release=release,
        domain=plan.domain,
        secrets=secrets,
        ep=ep,
        node_etc=NODE_ETC,
        vars_yaml=vars_yaml,
        files=files | units,
        constraints=node_lock(release) if pypi else None,
        node_source=cfg.node_source,
        playbooks={name: source(f"ansible/{name}") for name in ANSIBLE_FILES},
        step_sh=script("osception-step.sh"),
        setup_sh=render_template("scripts/node-setup.sh.j2", node=node, node_etc=NODE_ETC,
                                 release=release, services=services, ep=ep,
                                 node_source=cfg.node_source, baked=bake_id("node", cfg),
                                 baked_stamp=BAKED_STAMP, services_python=services_python(cfg),
                                 release_versions=releases.service_versions(
                                     release.name, tuple(services.NODE_PATCHABLE[node.role]))),
        public_mac=address.public_mac,
        apt_proxy=cfg.apt_proxy,
        ingress_ca=plan.ingress.ca if ep.cafile == endpoints.NODE_INGRESS_CA else None,
        patch_files={dest: base64.b64encode(data).decode() for dest, data in patch_files.items()},
        patch_script=script("osception-patch.py"),
        host_key=secrets_mod.host_key(secrets, node.name),
        nova_known_hosts=nova_known_hosts(plan, secrets, node),
        metadata_rules=METADATA_RULES,
    )
    plan.private.add(f"{node.name}/user-data")


# On a compute or network node only root reaches the outer cloud's metadata service
# (node.yaml.j2's bootcmd runs these): a policy rule, before the main table, that
# gives every other user's socket no route to its addresses. Root is cloud-init and
# osception's own steps; a QEMU process or a service is not.
METADATA_RULES = [["ip", f"-{a.version}", "rule", "add", "priority", "100", "to", f"{a}/{a.max_prefixlen}",
                   "uidrange", "1-4294967294", "prohibit"] for a in METADATA_ADDRESSES]


def nova_known_hosts(plan: Plan, secrets: Secrets, node: Node) -> list[str]:
    """What nova on compute `node` trusts when it migrates over SSH: the other computes'
    host keys, and nothing else. At any address ('*'): nova connects by IP, and a node's
    files know only its own and the controller's (each renders as soon as its port exists);
    the key is what identifies the peer."""
    return [secrets_mod.known_hosts_line(secrets, n.name, "*") for n in plan.nodes
            if n.role == "compute" and n.name != node.name]


def bake_id(kind: str, cfg: Config) -> str:
    """What an image baked for this config holds: its kind, release, (nodes) where
    OpenStack comes from, and osception's version (its scripts and k3s version)."""
    source = [cfg.node_source] if kind == "node" else []
    return " ".join([kind, cfg.release, *source, __version__])


def bake_user_data(cfg: Config, kind: str) -> str:
    """The user data of `osception bake`'s builder server of `kind` (node, controller):
    it installs what every such node of this release installs first, resets cloud-init
    and powers off for the snapshot."""
    release = releases.get(cfg.release)
    context = dict(cfg=cfg, release=release, node_etc=NODE_ETC, baked=bake_id(kind, cfg),
                   baked_stamp=BAKED_STAMP, node_source=cfg.node_source, step_sh=script("osception-step.sh"))
    if kind == "controller":
        plan = build(cfg, secrets_mod.throwaway(cfg.name))  # rendered only for its image names
        bake_sh = render_template("scripts/bake-controller.sh.j2", k3s_version=releases.K3S_VERSION,
                                  k3s_exec=K3S_EXEC, images=kolla_images(plan), **context)
        return render_template("cloud-init/bake.yaml.j2", kind=kind, bake_sh=bake_sh, files={}, **context)
    files, roles = {}, ("compute", "network")
    # A config with one node of each role, at documentation addresses: only the
    # packages pass runs, which reads neither.
    one_each = cfg.model_copy(update={"nodes": cfg.nodes.model_copy(update={
        role: getattr(cfg.nodes, role).model_copy(update={"count": 1}) for role in roles})})
    addresses = placeholder_addresses(one_each)
    for role in roles:  # both roles' packages: one image for every compute and network node
        node = next(n for n in nodes(one_each) if n.role == role)
        units = node_units(cfg, release, role)
        files |= {f"{NODE_ETC}/files{dest}": text for dest, text in units.items()}
        files[f"{NODE_ETC}/bake-vars/{role}.yml"] = ansible_vars(
            node_vars(cfg, release, node, addresses[node.name], addresses["k8s-0"].ip, DEFAULT_MTU, [], units))
    files |= {f"{NODE_ETC}/ansible/{name}": source(f"ansible/{name}") for name in ANSIBLE_FILES}
    if cfg.node_source == "pypi":
        files[NODE_CONSTRAINTS] = node_lock(release)
    # Every service both roles run, and what the packages enable that the nodes keep off
    # (their config pass says so too): none starts before the node's own setup.
    disable = sorted({s for role in roles for s in services.NODE_SERVICES[role]}
                     | {"openvswitch-switch", "haproxy", "keepalived", "radvd"})
    bake_sh = render_template("scripts/bake-node.sh.j2", roles=roles, services_off=disable, **context)
    return render_template("cloud-init/bake.yaml.j2", kind=kind, bake_sh=bake_sh, files=files,
                           apt_proxy=cfg.apt_proxy, **context)


def kolla_images(plan: Plan) -> list[str]:
    """Every container image the control plane's manifests name, once."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            for key in ("containers", "initContainers"):
                found.update(c["image"] for c in value.get(key) or [] if isinstance(c, dict) and "image" in c)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for rel, text in plan.files.items():
        if rel.startswith("k8s-0/manifests/"):
            for document in yaml.safe_load_all(text):
                walk(document)
    return sorted(found)


def node_units(cfg: Config, release: releases.Release, role: str) -> dict[str, str]:
    """node_source pypi: the systemd units of the role's services ({dest: text}); the
    packages bring their own."""
    if cfg.node_source != "pypi":
        return {}
    return {f"/etc/systemd/system/{name}.service":
            render_template("systemd/node-service.service.j2", unit=services.NODE_UNITS[name],
                            venv=services.NODE_VENV, release=release)
            for name in services.NODE_SERVICES[role] if name in services.NODE_UNITS}  # libvirtd: Debian's


class _AnsibleVarsDumper(yaml.SafeDumper):
    """YAML whose every string is tagged !unsafe: Ansible takes it as data and never
    templates it (a `{{ lookup('pipe', ...) }}` in a value would run as root)."""


ANSIBLE_UNSAFE = "!unsafe"  # Ansible's tag for a value it must not template
_AnsibleVarsDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar(ANSIBLE_UNSAFE, value, style='"'))
# Keys are the variables' names (and their fields'), osception's own: plain.
_AnsibleVarsDumper.add_representer(dict, lambda dumper, value: yaml.MappingNode(
    "tag:yaml.org,2002:map", [(dumper.represent_str(k), dumper.represent_data(v)) for k, v in value.items()]))


def ansible_vars(variables: dict) -> str:
    """A node's vars.yml (ansible-playbook -e @vars.yml): every string !unsafe, in double
    quotes (every control character escaped)."""
    return yaml.dump(variables, Dumper=_AnsibleVarsDumper, sort_keys=False, allow_unicode=False)


class _AnsibleVarsLoader(_SafeLoader):
    """Reads vars.yml back (tests, tools): an !unsafe string is a string."""


_AnsibleVarsLoader.add_constructor(ANSIBLE_UNSAFE, lambda loader, node: loader.construct_scalar(node))


def load_ansible_vars(text: str) -> dict:
    return yaml.load(text, Loader=_AnsibleVarsLoader)


def node_vars(cfg: Config, release: releases.Release, node: Node, address: Address, controller_ip: str,
              mtu: int, node_patches: list[dict], units: dict[str, str]) -> dict:
    """The playbooks' variables of one node (/etc/osception/vars.yml)."""
    pypi = cfg.node_source == "pypi"
    return {
        "node_name": node.name,
        "node_role": node.role,
        "node_etc": NODE_ETC,
        "node_ip": address.ip,
        "node_mac": address.mac,
        "public_mac": address.public_mac,
        "release": release.name,
        "extrepo": release.extrepo,
        "controller_ip": controller_ip,
        "physnet_mtu": mtu,
        "ovs_datapath": cfg.ovs_datapath,
        "libvirt_cgroups": cfg.libvirt_cgroups,
        "node_source": cfg.node_source,
        # the release's node OS's python3: pypi's venv is made with it
        "node_python": release.node_os.python,
        "packages": list((services.NODE_PYPI_PACKAGES if pypi else services.NODE_PACKAGES)[node.role]),
        # patches: (osception.yaml), every project this node runs (none: its pristine
        # code), applied by osception-patch.py with the services' own interpreter.
        "patches": node_patches,
        "patch_python": services_python(cfg),
        "patch_script": f"{NODE_ETC}/osception-patch.py",
        "patch_state": NODE_PATCH_STATE,
        "services": list(services.NODE_SERVICES[node.role]),
        # pypi only (empty otherwise): the venv, its projects and constraints, the
        # services' users, their systemd units and rootwrap.
        "venv": services.NODE_VENV,
        "pypi_projects": list(services.NODE_PYPI_PROJECTS[node.role]) if pypi else [],
        "pypi_constraints": NODE_CONSTRAINTS,
        # pip's environment: the site's index (osception.yaml pip_index_url); a plain
        # http one must be named trusted, or pip ignores it.
        "pip_env": pip_env(cfg.pip_index_url),
        "service_users": [
            {"name": u.name, "shell": u.shell, "uid": u.uid, "groups": list(u.groups), "sudo": list(u.sudo),
             "state_folders": [f"/var/lib/{u.name}", *(f"/var/lib/{u.name}/{d}" for d in u.state_folders)]}
            for u in services.NODE_USERS[node.role]
        ] if pypi else [],
        "units": [{"src": f"{NODE_ETC}/files{dest}", "dest": dest} for dest in units],
        # The packages make these; the config files and the rootwrap filters go there.
        "etc_folders": sorted({f.dest.rsplit("/", 1)[0] for f in services.NODE_FILES[node.role]} |
                              {f"/etc/{u.name}/rootwrap.d" for u in services.NODE_USERS[node.role]}) if pypi else [],
        "config_files": [
            {"src": f"{NODE_ETC}/files{f.dest}", "dest": f.dest, "group": f.group}
            for f in services.NODE_FILES[node.role]
        ],
        # Set to true only where services and the kernel cannot be touched (a chroot).
        "osception_chroot": False,
    }


# Where a pod's `patch` init container works (k8s/_kolla.j2): its patch files (the
# project's ConfigMap) and osception-patch.py, and an emptyDir holding the patched copy of the package (first
# on the containers' PYTHONPATH) and osception-patch.py's state.
PATCH_PATHS = {"files": "/var/lib/osception-patches", "script": "/var/lib/osception-patches/osception-patch.py",
               "root": "/var/lib/osception",
               "site": "/var/lib/osception/patched", "state": "/var/lib/osception/patch-state"}


def patch_file_name(i: int, name: str) -> str:
    """A `patches: file:`'s name where it lands (a ConfigMap key, a node's file): its
    place in the project's list, then its name with anything but [-._a-zA-Z0-9] made
    `-` (a line break, `/`, Jinja or shell in a name never reaches a node)."""
    return f"{i:02d}-" + re.sub(r"[^-._a-zA-Z0-9]", "-", name)


def patch_text(project: str, i: int, path: Path, state_home: Path | None = None) -> str:
    """patches.<project>.<i - 1>.file's text, read as patches.read_file checks it;
    ConfigError, one line naming the key."""
    try:
        return patches_mod.read_file(path, state_home)
    except patches_mod.PatchError as e:
        raise ConfigError(f"patches.{project}.{i - 1}.file: {e}") from None


def check_patch_files(cfg: Config, state_home: Path | None) -> None:
    """Every `patches: file:` of the config, as the plan will read it (the command's
    state home known: none may be inside it)."""
    for project, patches in sorted(cfg.patches.items()):
        for i, p in enumerate(patches, 1):
            if p.file is not None:
                patch_text(project, i, p.file, state_home)


def controller_patches(cfg: Config, reviews: dict[tuple[str, int], patches_mod.Review]) -> dict:
    """The templates' `patches` ({project: osception-patch.py's patch arguments, files
    of the ConfigMap; a review's pinned to its sha256}), `patch_files` ({project:
    {ConfigMap key: text}}, a review's content as the plan pinned it) and `patch_paths`."""
    args: dict[str, list[str]] = {}
    files: dict[str, dict[str, str]] = {}
    for project, patches in cfg.patches.items():
        files[project] = {}
        for i, p in enumerate(patches, 1):
            if p.file is None:
                review = reviews[(project, i)]
                key = f"{i:02d}-{review.file_name}"
                files[project][key] = review.text
                args.setdefault(project, []).append(patches_mod.pinned(f"{PATCH_PATHS['files']}/{key}", review))
                continue
            key = patch_file_name(i, p.file.name)
            files[project][key] = patch_text(project, i, p.file)
            args.setdefault(project, []).append(f"{PATCH_PATHS['files']}/{key}")
    return {"patches": args, "patch_files": files, "patch_paths": PATCH_PATHS}


def node_patches_of(cfg: Config, node: Node, reviews: dict[tuple[str, int], patches_mod.Review]
                    ) -> tuple[list[dict], dict[str, bytes]]:
    """The node's `patches` variable (each project it runs: its patch files in order, a
    review's pinned to its sha256, and its services) and the patch files its user data
    carries (a review's content as the plan pinned it: the node fetches nothing)."""
    out, files = [], {}
    for project, units in services.NODE_PATCHABLE[node.role].items():
        paths = []
        for i, p in enumerate(cfg.patches.get(project, []), 1):
            if p.file is not None:
                dest = f"{NODE_PATCHES}/{project}/{patch_file_name(i, p.file.name)}"
                files[dest] = patch_text(project, i, p.file).encode()
                paths.append(dest)
            else:
                review = reviews[(project, i)]
                dest = f"{NODE_PATCHES}/{project}/{i:02d}-{review.file_name}"
                files[dest] = review.text.encode()
                paths.append(patches_mod.pinned(dest, review))
        out.append({"project": project, "files": paths, "services": list(units)})
    return out, files


class _YAMLLoader(_SafeLoader):
    """Safe YAML that also refuses a key given twice (an injected key would override)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, "a key given twice", key_node.start_mark)
            seen.add(key if isinstance(key, (str, int, float, bool)) else id(key))
        return super().construct_mapping(node, deep)


def _check_yaml(text: str, cloud_config: bool = False) -> None:
    docs = [d for d in yaml.load_all(text, Loader=_YAMLLoader) if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ValueError("not a mapping")
    if cloud_config and (len(docs) != 1 or not text.startswith("#cloud-config\n")):
        raise ValueError("not one #cloud-config document")


def _check_ini(text: str) -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # option names are case-sensitive, as in oslo.config
    parser.read_string(text)


def _check_user_data(text: str) -> None:
    if text.startswith("#cloud-config"):
        return _check_yaml(text, cloud_config=True)
    message = email.message_from_string(text)  # MIME multi-part user data
    parts = [p for p in message.walk() if p.get_content_type() == "text/cloud-config"]
    if not message.is_multipart() or not parts:
        raise ValueError("neither #cloud-config nor MIME multi-part user data with a cloud-config part")
    for part in parts:
        _check_yaml(part.get_payload(decode=True).decode(), cloud_config=True)


def _problem(e: Exception) -> str:
    """What is wrong, with a line number, and no text of the file (it may hold secrets)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        return f"line {mark.line + 1}: {e.problem or e.context}" if mark else str(e.problem)
    if isinstance(e, configparser.DuplicateSectionError):
        return f"line {e.lineno}: a section given twice"
    if isinstance(e, configparser.DuplicateOptionError):
        return f"line {e.lineno}: an option given twice in [{e.section}]"
    if isinstance(e, configparser.MissingSectionHeaderError):
        return f"line {e.lineno}: an option before any [section]"
    if isinstance(e, configparser.ParsingError):
        return f"line {e.errors[0][0]}: not an INI line"
    return str(e) if isinstance(e, ValueError) and not isinstance(e, UnicodeError) else type(e).__name__


def check_file(rel: str, text: str) -> bool:
    """Parse back one rendered document by its name (cloud-config, YAML, INI); False when
    it is none of those (a script). Raises PlanError, one line naming the file."""
    name = rel.rsplit("/", 1)[-1]
    try:
        if name == "user-data":
            _check_user_data(text)
        elif name.endswith(".yaml"):
            _check_yaml(text)
        elif name.endswith((".conf", ".ini")):
            _check_ini(text)
        elif name.endswith(".pem"):
            from cryptography import x509
            x509.load_pem_x509_certificates(text.encode())
        else:
            return False
    except (yaml.YAMLError, configparser.Error, ValueError, RecursionError) as e:
        raise PlanError(f"{rel}: the rendered file does not parse ({_problem(e)}); "
                        "a value in osception.yaml or secrets.yaml broke it") from None
    return True


def check(plan: Plan) -> None:
    """Parse back every rendered document: what a value of the user's could inject ends
    here as one line, before anything is written or sent."""
    for rel, text in sorted(plan.files.items()):
        check_file(rel, text)


def check_target(plan: Plan, out: Path) -> None:
    """Refuse, writing nothing, a folder `write` would write into that is not the
    user's alone (StateError, one line naming it): `plan --out` checks it with the
    rest of its input, before the environment's state is made."""
    folders = {out} | {p for rel in plan.files for p in (out / rel).parents if out in p.parents}
    for folder in sorted(folders):
        check_dir(folder)


def write(plan: Plan, out: Path) -> None:
    """Write the plan's files under `out`; files holding secrets get mode 0600.

    Every folder must be the user's and writable by nobody else; every file is
    written anew (never through a planted symlink or temporary file)."""
    check_target(plan, out)  # refuse a bad folder before anything is created or written
    for rel, text in sorted(plan.files.items()):
        write_file(out / rel, text, plan.mode(rel), dir_mode=0o755)
