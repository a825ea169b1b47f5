"""The controller's files (k8s-0/...): its service config split into ConfigMaps and
Secrets, the control plane's manifests (the Keystone catalog and the tuning knobs
they read), their rollout hashes, the archive that carries them in its user data,
and the user data itself."""

from __future__ import annotations

import base64
import io
import lzma
import re
import tarfile
from typing import TYPE_CHECKING

import yaml

from .. import endpoints, ini, releases, services, tls
from .. import secrets as secrets_mod
from ..config import Config, ConfigError
from ..secrets import Secrets
from .checks import SafeLoader, check_file, check_user_data
from .conf import config_template, secret_values, service_config
from .env import render_template, script, templates, tojson
from .layout import BAKED_STAMP, CONTROLLER_ARCHIVE, DIAGNOSER, K3S_EXEC, NAMESPACE, NODE_ETC, bake_id
from .patches import controller_patches
from .rollout import containers, day2, pod_specs

if TYPE_CHECKING:
    from .plan import Plan


def add_controller(plan: Plan, secrets: Secrets, ep: endpoints.Endpoints | None = None) -> None:
    """The controller's files (k8s-0/...), parsed back and sized. `ep`: where the
    control plane's services reach each other, when not in k3s (the devcloud)."""
    cfg, release, ip, domain, mtu = plan.cfg, plan.release, plan.controller_ip, plan.domain, plan.mtu
    ep = ep or endpoints.controller(domain, ip)
    # Service config: split so that no secret value ever reaches a ConfigMap.
    full = service_config(cfg, release, secrets, ep, mtu=mtu)
    hidden = secret_values(secrets)
    conf, conf_secret = {}, {}
    for name, text in full.items():
        conf[name], conf_secret[name] = ini.split_secrets(text, hidden)
        plan.files[f"k8s-0/config/{name}"] = conf[name]
        if conf_secret[name]:
            secret_name = name.rsplit(".", 1)[0] + ".secret.conf"
            plan.files[f"k8s-0/config/{secret_name}"] = conf_secret[name]
            plan.private.add(f"k8s-0/config/{secret_name}")

    # A service's config files that are not INI (skyline.yaml): no overrides and no split,
    # the whole file is its Secret's (it holds secrets).
    for name in (c for s in services.SERVICES for c in s.configs if c not in s.ini):
        conf_secret[name] = render_template(config_template(name), ep=ep, secrets=secrets, services=services)
        plan.files[f"k8s-0/config/{name}"] = conf_secret[name]
        plan.private.add(f"k8s-0/config/{name}")

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
        catalog={**keystone_catalog,
                 "services": [s for s in keystone_catalog["services"] if s["name"] != "keystone"]},
        keystone_urls=next(s for s in keystone_catalog["services"] if s["name"] == "keystone"),
        image=lambda n: tojson(services.image(n, release, cfg.images)),
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
    manifests = {name: render_template(template, **context) for name, template in manifest_templates()}
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


def manifest_templates() -> list[tuple[str, str]]:
    """(manifest, its template) in the order the controller applies them (their
    numbers): the cluster's own (templates/k8s/: namespace, secrets) and each service's
    (<service>/manifest.yaml.j2, named by its order: 20-keystone.yaml)."""
    cluster = {t.removeprefix("k8s/").removesuffix(".j2"): t for t in templates("k8s")
               if not t.removeprefix("k8s/").startswith("_") and t.endswith(".yaml.j2")}
    return sorted({**cluster, **{s.manifest: s.manifest_template for s in services.SERVICES}}.items())


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


_SECRET_DOC = re.compile(r"^kind: Secret$", re.M)


def holds_secret(manifest: str) -> bool:
    """A manifest with a Kubernetes Secret among its documents (top-level `kind:` lines
    only: a ConfigMap quoting the words stays public)."""
    return bool(_SECRET_DOC.search(manifest))


def ingress_hosts(manifests) -> list[str]:
    """The host of every Ingress rule: the names users reach the controller by."""
    return [rule["host"] for text in manifests for doc in yaml.load_all(text, Loader=SafeLoader)
            if doc and doc.get("kind") == "Ingress" for rule in doc["spec"]["rules"]]


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


def kolla_images(plan: Plan) -> list[str]:
    """Every container image the control plane's manifests name, once."""
    return sorted({c["image"] for rel, text in plan.files.items() if rel.startswith("k8s-0/manifests/")
                   for _, spec in pod_specs(yaml.safe_load_all(text)) for c in containers(spec)})
