"""The devcloud's config files: the controller's plan rendered with local endpoints and
the devcloud-only overrides (overrides.py), its pods' volumes and what their
config.json files copy into etc/<project>/ (manifests.py), and the few files the
services need beside them."""

from __future__ import annotations

import configparser
import dataclasses
import os
import shlex
import shutil
from pathlib import Path

from .. import endpoints, ini, releases, render, services, topology
from . import ingress
from ..config import Config
from ..secrets import Secrets
from ..state import write_private
from .layout import APIS, DEPLOYMENTS, HOST, NODE_DEPLOYMENTS, PORTS, Layout
from .manifests import EMPTY_DIR, Local, Manifests, Pod
from .overrides import overrides
from .processes import DevcloudError
from ..render.conf import node_config, service_config
from ..render.plan import domain_of

# Files the Kolla images ship in /etc/<project> (from the services' packages); here
# the same files (or folders) from the venv (venv/etc/...) go to etc/<project>/.
IMAGE_FILES = tuple(f for s in services.SERVICES if s.devcloud for f in s.devcloud.image_files)
# A module per API for gunicorn: the services' WSGI modules parse sys.argv with
# oslo.config at import, and gunicorn's own arguments would be "unrecognized".
APP_MODULE = '''"""gunicorn entry point of {service} for osception devcloud."""
import sys

sys.argv = sys.argv[:1]
from {module} import {callable} as application  # noqa: E402,F401
'''
# Before 2025.1 the uWSGI ini names the project's WSGI script (`wsgi-file`, pbr's
# wsgi_scripts): the same script, run as uWSGI imports it, gives `application`.
APP_SCRIPT = '''"""gunicorn entry point of {service} for osception devcloud."""
import runpy
import sys

sys.argv = sys.argv[:1]
application = runpy.run_path({script!r}, run_name="{service}_wsgi")["application"]
'''
# nova-compute reads what a compute node gets (templates/conf/nova-compute.conf.j2).
COMPUTE_CONF = "nova-compute/nova.conf"
# Where a compute node keeps the nova.conf the devcloud's nova-compute reads.
COMPUTE_NODE_NOVA_CONF = "/etc/nova/nova.conf"


def local_endpoints(public_domain: str | None = None) -> endpoints.Endpoints:
    """Everything on 127.0.0.1; with local nodes, the catalog's public interface is
    theirs: https://<api>.<domain> through the relay (nodes.py), as on a controller."""
    ep = endpoints.local(
        HOST, database_port=PORTS["mariadb"], rabbitmq_port=PORTS["rabbitmq"],
        memcached_port=PORTS["memcached"], api_ports={name: PORTS[name] for name in APIS})
    if public_domain is None:
        return ep
    return dataclasses.replace(ep, public=endpoints.public_urls(public_domain))


def compute_conf(cfg: Config, release: releases.Release, secrets: Secrets, layout: Layout) -> str:
    """The nova.conf the devcloud's nova-compute reads: a compute node's exactly as
    render.conf.node_config() makes it (the user's nova.conf overrides included), with the
    devcloud's local endpoints, then the devcloud-only overrides (`release`: the config's)."""
    node = topology.Node("devcloud-compute", "compute", flavor="", image="", index=0)
    files = node_config(cfg, release, secrets, node, topology.Address(HOST, ""), local_endpoints())
    return ini.merge(files[COMPUTE_NODE_NOVA_CONF], overrides(layout, release)["nova-compute.conf"])


def devcloud_config(cfg: Config, layout: Layout, nodes: bool = False) -> Config:
    """The user's config with the devcloud-only overrides merged in last, and Glance's
    web-download allowed to fetch from this machine (HOST): a laptop serves its test
    images itself. Any other host stays refused, as on the controller."""
    merged = {name: {sec: dict(opts) for sec, opts in files.items()}
              for name, files in cfg.overrides.items()}
    for name, sections in overrides(layout, releases.get(cfg.release), nodes).items():
        for section, options in sections.items():
            merged.setdefault(name, {}).setdefault(section, {}).update(options)
    hosts = (*cfg.overcloud.web_download["hosts"], HOST)
    overcloud = cfg.overcloud.model_copy(update={"import_hosts": tuple(sorted(set(hosts)))})
    return cfg.model_copy(update={"overrides": merged, "overcloud": overcloud})


def plan(cfg: Config, secrets: Secrets, layout: Layout, nodes: bool = False) -> render.Plan:
    """The controller's plan as `osception plan` renders it, with local endpoints and the
    devcloud-only overrides: its manifests say what the devcloud runs. With local
    nodes, at their addresses (nodes.addresses) and with their public names."""
    if not nodes:
        return render.build(devcloud_config(cfg, layout), secrets, ep=local_endpoints())
    from . import nodes as local_nodes  # noqa: PLC0415 (openstacksdk: only when used)
    merged = devcloud_config(local_nodes.node_config(cfg), layout, nodes)
    addresses = local_nodes.addresses(cfg)
    domain = domain_of(cfg, addresses["k8s-0"].ip)
    return render.build(merged, secrets, addresses, ep=local_endpoints(domain))


def rendered(cfg: Config, secrets: Secrets, layout: Layout) -> dict[str, str]:
    """{file name: text}: each service config file whole (as the ConfigMap file and its
    secrets.conf drop-in read together), and a compute node's nova.conf."""
    release = releases.get(cfg.release)
    files = service_config(devcloud_config(cfg, layout), release, secrets, local_endpoints())
    files["nova-compute.conf"] = compute_conf(cfg, release, secrets, layout)
    return files


def write(cfg: Config, secrets: Secrets, layout: Layout, venv: Path, nodes: bool = False) -> Manifests:
    """Every file the devcloud's processes read: the volumes of the pods it runs, what
    their config.json copies to etc/<project>/, as Kolla's set_configs does, and the
    ingress's arguments and routes (ingress.py)."""
    p = plan(cfg, secrets, layout, nodes)
    plan_files = p.files
    man = Manifests(plan_files, with_nodes=nodes)
    local = Local(layout, venv)
    written: set[Path] = set(ingress.write(layout, plan_files, man, deployments(man)))
    for pod in pods_run(man):
        written.update(local.write_volumes(pod))
        for c in pod.containers:
            written.update(local.set_configs(pod, c))
    for rel in IMAGE_FILES:
        src = venv / "etc" / rel
        for path in sorted(src.rglob("*")) if src.is_dir() else [src]:
            if path.is_file():
                dest = layout.etc("") / path.relative_to(venv / "etc")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                written.add(dest)
    for s in services.SERVICES:  # the services' devcloud-only files (Devcloud.files)
        for rel, text in (s.devcloud.files(layout) if s.devcloud else {}).items():
            write_private(layout.etc("") / rel, text)
            written.add(layout.etc("") / rel)
    _sweep(layout, written)
    local.link_homes(written)
    if nodes:  # the nodes run nova-compute, each with its own nova.conf
        (layout.etc("") / COMPUTE_CONF).unlink(missing_ok=True)
    else:  # the devcloud's own, on the fake driver
        write_private(layout.etc("") / COMPUTE_CONF, compute_conf(cfg, p.release, secrets, layout))
    for service in uwsgi_apis(man):
        (layout.apps / f"{service}_app.py").write_text(app_module(layout, man, venv, service))
    for folder in folders(layout, p.release, nodes):
        folder.mkdir(parents=True, exist_ok=True)
    return man


def folders(layout: Layout, release: releases.Release, nodes: bool) -> list[Path]:
    """The folders the services' processes keep their state and locks in: every path
    the devcloud-only overrides give under data/ or lock/ (the others, under etc/, are
    written with the config)."""
    paths = {v for sections in overrides(layout, release, nodes).values()
             for options in sections.values() for v in options.values() if isinstance(v, Path)}
    return sorted(p for p in paths if p.is_relative_to(layout.root / "data")
                  or p.is_relative_to(layout.root / "lock"))


def deployments(man: Manifests) -> dict[str, str]:
    """{process: Deployment} the devcloud runs: DEPLOYMENTS, and with local nodes (the
    plan then has their Deployments' config) those of NODE_DEPLOYMENTS this release has."""
    out = dict(DEPLOYMENTS)
    if man.with_nodes:
        out |= {p: d for p, d in NODE_DEPLOYMENTS.items() if d in man.pods}
    return out


def pods_run(man: Manifests) -> list[Pod]:
    """The Jobs of the devcloud's services and the Deployments it runs."""
    return [*(job for svc in APIS for job in man.jobs(svc)),
            *(man.pod(name) for name in deployments(man).values())]


def _sweep(layout: Layout, written: set[Path]) -> None:
    """Files in a project's etc folder (or a pod's volume) that no config.json (no
    volume) holds any more. A pod's emptyDirs are what its containers made: not swept."""
    folders = {top / p.relative_to(top).parts[0] for p in written
               for top in (layout.root / "etc", layout.root / "pods") if p.is_relative_to(top)}
    for folder in folders:
        for top, dirs, files in os.walk(folder):
            if Path(top) == folder and folder.parent == layout.root / "pods":
                dirs[:] = [d for d in dirs if not EMPTY_DIR.fullmatch(d)]
            for name in files:
                if Path(top, name) not in written:
                    Path(top, name).unlink()


def _command(man: Manifests, service: str) -> list[str]:
    pod = man.pod(deployments(man)[service])
    return shlex.split((pod.config_json(pod.containers[0]) or {}).get("command", ""))


def uwsgi_apis(man: Manifests) -> list[str]:
    """The APIs whose Deployment runs `uwsgi <ini>` (the devcloud serves their module
    under gunicorn). The others run their own server as the Deployment says: before
    2025.2, the eventlet `neutron-server` (releases.Release.neutron_split)."""
    return [service for service in deployments(man)
            if service in PORTS and _command(man, service)[:1] == ["uwsgi"]]


def app_module(layout: Layout, man: Manifests, venv: Path, service: str) -> str:
    """The gunicorn entry point of what the API's uWSGI ini loads: its `module`, or its
    `wsgi-file` (a script of the image's venv bin/, here the services venv's)."""
    module = uwsgi_option(layout, man, service, "module", fallback="")
    if module:
        module, _, attr = module.partition(":")
        return APP_MODULE.format(service=service, module=module, callable=attr or "application")
    script = venv / "bin" / Path(uwsgi_option(layout, man, service, "wsgi-file")).name
    return APP_SCRIPT.format(service=service, script=str(script))


def uwsgi_option(layout: Layout, man: Manifests, service: str, option: str,
                 fallback: str | None = None) -> str:
    """An option of the uWSGI ini the API's Deployment runs (`uwsgi <ini>`)."""
    pod = man.pod(deployments(man)[service])
    words = _command(man, service)
    if words[:1] != ["uwsgi"] or len(words) != 2:
        raise DevcloudError(f"{pod.name}: the devcloud serves APIs that run `uwsgi <ini>`, "
                            f"not `{shlex.join(words)}`")
    ini_path = Path(Local(layout, Path()).path(words[1], {}))
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(ini_path.read_text())
    if fallback is not None:
        return parser.get("uwsgi", option, fallback=fallback)
    return parser.get("uwsgi", option)


def api_env(layout: Layout, service: str) -> dict[str, str]:
    """Where an API's WSGI module finds /etc/<project> when it names that folder itself
    (the <project>.conf.d drop-in it finds through HOME: manifests.py)."""
    return {f"OS_{service.upper()}_CONFIG_DIR": str(layout.etc(service))}


def files_of(layout: Layout, service: str) -> list[Path]:
    """The config files a service's processes read (their change restarts them)."""
    return sorted(p for p in layout.etc(service).rglob("*") if p.is_file())
