"""`osception tempest`: upstream's test suite against an environment or the devcloud.

Needs: a populated cloud (its admin credentials, flavors, images, the external network);
Tempest from PyPI (the version the release table pins, `releases.Release.tempest_version`).

Lifecycle, one function per step:
  venv        Tempest and its report tools in a venv of the machine cache, per version,
              constrained by the release's services lock (its oslo.* match the cloud's)
  workspace   `tempest init` once per target, under its state folder (tempest/)
  facts       what the cloud says live: images, flavors, the external network, Neutron's
              extension list, Nova's newest microversion
  configure   templates/tempest/tempest.conf.j2 from those facts, with each service's
              sections from its folder (services/<name>/tempest.j2); what the target cannot
              have (the devcloud: a fake hypervisor, no data plane) switched off with why
  run         `tempest run`, then the run's subunit stream, JUnit XML (subunit2junitxml)
              and HTML report (subunit2html) in tempest/runs/<UTC time>/
  summary     ran/passed/failed/skipped from the JUnit XML (tempest_results)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import locks, releases, services
from .errors import OsceptionError
from .state import write_private
from .render.env import render_template

# -- defaults ----------------------------------------------------------------------
# The report tools beside Tempest: subunit2html (os-testr) and subunit2junitxml
# (python-subunit, which needs junitxml for it).
REPORT_TOOLS = ("os-testr==3.0.0", "junitxml==0.7")
# Pings and SSHes into a guest's floating IP whatever run_validation says: excluded where
# Tempest cannot reach the floating IPs (the devcloud without nodes: no guest runs).
NEEDS_FLOATING_IP_REACH = r"tempest\.scenario\.test_network_basic_ops"
RUNS = "runs"
JUNIT, HTML, SUBUNIT, CONF = "junit.xml", "report.html", "results.subunit", "tempest.conf"

# Without a data plane (the devcloud's fake driver): what the services' Tempest sections
# switch off (nova's compute-feature-enabled) say so, and guests are not logged into.
FAKE_HYPERVISOR = "the devcloud's hypervisor is Nova's fake driver: nothing really runs"


# -- the command's options: `osception tempest` (an environment) and `osception devcloud
# tempest` take the same.
SmokeOpt = Annotated[bool, typer.Option("--smoke", help="Tempest's smoke tests.")]
RegexOpt = Annotated[Optional[str], typer.Option("--regex", help="Tests whose id matches R.")]
ListOpt = Annotated[Optional[Path], typer.Option("--list", help="Tests named in FILE, one per line.")]
ConcurrencyOpt = Annotated[int, typer.Option(min=1, max=32, help="Workers.")]
CompareOpt = Annotated[Optional[tuple[str, str]], typer.Option(
    "--compare", metavar="RUN_A RUN_B", help="List the tests whose outcome differs between two runs.")]


class TempestError(OsceptionError, RuntimeError):
    """One line that says what failed and where to look."""


@dataclass
class Target:
    """Where Tempest runs and what it may expect there."""

    name: str  # "devcloud" or the environment's name
    release: releases.Release
    home: Path  # the target's tempest folder (workspace, runs)
    auth_url: str
    admin_password: str
    interface: str = "public"
    cacert: str | None = None
    data_plane: bool = True  # real hypervisors, agents: guests really boot and answer
    exclude: tuple[str, ...] = ()  # regexes of tests this target cannot pass (why: above)
    flavors: tuple[str, ...] = ()  # by name, first is flavor_ref
    images: tuple[str, ...] = ()
    # Where the cloud's users are: the command Tempest runs under (e.g. `ip netns exec
    # <namespace>`), from where the APIs answer by their public names and the guests'
    # floating IPs are reachable.
    prefix: tuple[str, ...] = ()
    # The image's user and password (CirrOS's, or the local guest's): Tempest logs into
    # its guests over SSH through their floating IPs (run_validation). None: it does not.
    login: tuple[str, str] | None = None
    # Why no noVNC console answers there (None: nova-novncproxy runs behind the ingress,
    # at the catalog's novnc endpoint, as on every environment).
    no_vnc_console: str | None = None

    @property
    def workspace(self) -> Path:
        return self.home / "workspace"


# -- venv ------------------------------------------------------------------------
def venv(release: releases.Release, cache: Path) -> Path:
    """Tempest of the release's pin with the report tools, built once per version."""
    path = cache / "tempest" / release.tempest_version
    stamp = path / ".osception-tempest"
    want = f"tempest=={release.tempest_version} {' '.join(REPORT_TOOLS)} {release.name}\n"
    if stamp.exists() and stamp.read_text() == want:
        return path
    shutil.rmtree(path, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(path)])
    _run([str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
          "--constraint", str(locks.path(release.name)),
          f"tempest=={release.tempest_version}", *REPORT_TOOLS])
    stamp.write_text(want)
    return path


# -- workspace ----------------------------------------------------------------------
def workspace(t: Target, tempest_venv: Path) -> Path:
    """`tempest init` once (its .stestr.conf, etc/, logs/), its registry beside it
    (not in ~/.tempest)."""
    ws = t.workspace
    if not (ws / ".stestr.conf").exists():
        shutil.rmtree(ws, ignore_errors=True)
        t.home.mkdir(parents=True, exist_ok=True)
        _run([str(tempest_venv / "bin" / "tempest"), "init", "--workspace-path",
              str(t.home / "workspace.yaml"), "--name", f"osception-{t.name}", str(ws)])
    return ws


# -- facts ----------------------------------------------------------------------------
def facts(t: Target, conn) -> dict:
    """What the cloud says live, for the config."""
    def find(finder, names, what):
        for name in names:
            found = finder(name, ignore_missing=True)
            if found is not None:
                return found
        raise TempestError(f"{t.name}: no {what} named {' or '.join(names)}: run `osception populate`")

    flavor = find(conn.compute.find_flavor, t.flavors, "flavor")
    flavor_alt = find(conn.compute.find_flavor, t.flavors[1:] or t.flavors, "flavor")
    image = find(conn.image.find_image, t.images, "image")
    external = list(conn.network.networks(is_router_external=True))
    public = external[0] if external else None
    # Where guests can move between: the hypervisors up and enabled.
    computes = [h for h in conn.compute.hypervisors(details=True)
                if h.state == "up" and h.status == "enabled"]
    return {
        "image": image.id, "image_alt": image.id, "flavor": flavor.id, "flavor_alt": flavor_alt.id,
        "public_network_id": public.id if public else None,
        "public_network_name": public.name if public else None,
        # Its floating IPs' subnet: with DVR it has a second one, the agents' gateway
        # subnet (service type network:floating_ip_agent_gateway), which Tempest's
        # external connectivity check cannot tell apart ([network] subnet_id).
        "public_subnet_id": next((s.id for s in conn.network.subnets(network_id=public.id, ip_version=4)
                                  if not s.service_types), None) if public else None,
        "network_extensions": network_extensions(conn, external),
        # Each catalog API's newest microversion (its version document), by catalog
        # type; none for an API without microversions.
        "max_microversions": {api.catalog_type: _version(getattr(conn, api.catalog_type).get_endpoint_data()
                                                         .max_microversion)
                              for s in services.SERVICES for api in s.apis if api.catalog_type},
        "computes": len(computes),
        # Their compute services' hosts, in order: the source and destination of the
        # migration tests that name them.
        "compute_hosts": sorted(h.service_details["host"] for h in computes),
    }


# Neutron's "get me a network": listed whenever its extension is loaded, but it allocates
# only from a default external network and a default subnet pool (auto-allocated-topology).
AUTO_ALLOCATION = "auto-allocated-topology"


def network_extensions(conn, external: list) -> list[str]:
    """Neutron's extensions as Tempest may expect them: AUTO_ALLOCATION only where it can
    allocate, from a default one of the EXTERNAL networks (else Tempest's
    AutoAllocateNetworkTest fails: 'Unable to automatically allocate a network')."""
    extensions = sorted(e.alias for e in conn.network.extensions())
    if AUTO_ALLOCATION in extensions and not (
            any(n.is_default for n in external)
            and any(True for _ in conn.network.subnet_pools(is_default=True))):
        extensions.remove(AUTO_ALLOCATION)
    return extensions


def _version(v) -> str | None:
    """keystoneauth's (2, 100) as Tempest writes it: 2.100."""
    return ".".join(str(p) for p in v) if v else None


# -- configure ---------------------------------------------------------------------
def configure(t: Target, facts_: dict) -> str:
    validation = ((False, "No data plane: no guest answers ping or SSH (" + FAKE_HYPERVISOR + ").")
                  if not t.data_plane else
                  (True, f"Guests are logged into as {t.login[0]} over SSH through their floating IPs.")
                  if t.login else
                  (False, "Guests are not logged into: the API and scenario results stand on "
                          "their own (set true to SSH into CirrOS)."))
    view = dict(facts_, version=t.release.tempest_version, target=t.name, release=t.release.name,
                workspace=t.workspace, admin_password=t.admin_password, auth_url=t.auth_url,
                region=services.REGION, interface=t.interface, cacert=t.cacert,
                data_plane=t.data_plane, fake_hypervisor=FAKE_HYPERVISOR, validation=validation,
                login=t.login, no_vnc_console=t.no_vnc_console,
                # Those with an API in the catalog: each has its sections (its folder's
                # tempest.j2).
                services=[s for s in services.SERVICES if any(a.catalog_type for a in s.apis)])
    return render_template("tempest/tempest.conf.j2", t=_View(view))


class _View(dict):
    __getattr__ = dict.__getitem__


# -- run -----------------------------------------------------------------------------
def run(t: Target, tempest_venv: Path, conf: str, selection: list[str], concurrency: int,
        say=print) -> Path:
    """One run into runs/<UTC time>/: tempest.conf (0600: the admin password), the
    subunit stream, the JUnit XML, the HTML report. Tempest's own exit code (1 when a
    test failed) is not an error here: the reports say what happened."""
    ws = t.workspace
    run_dir = t.home / RUNS / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir.mkdir(parents=True)
    write_private(run_dir / CONF, conf)
    bin_ = tempest_venv / "bin"
    argv = [*t.prefix, str(bin_ / "tempest"), "run", "--config-file", str(run_dir / CONF),
            "--concurrency", str(concurrency), *selection]
    if t.exclude:
        argv += ["--exclude-regex", "|".join(t.exclude)]
    under = f", under {' '.join(t.prefix)}" if t.prefix else ""
    say(f"tempest: {' '.join(argv[len(t.prefix) + 1:])} (in {ws}{under})")
    with open(run_dir / "tempest.out", "w") as out:
        subprocess.run(argv, cwd=ws, stdout=out, stderr=subprocess.STDOUT,
                       env={**os.environ, "PATH": f"{bin_}:{os.environ.get('PATH', '')}"})
    with open(run_dir / SUBUNIT, "wb") as f:
        r = subprocess.run([str(bin_ / "stestr"), "last", "--subunit"], cwd=ws, stdout=f,
                           stderr=subprocess.PIPE)
    if r.returncode or (run_dir / SUBUNIT).stat().st_size == 0:
        raise TempestError(f"tempest ran no test: see {run_dir / 'tempest.out'}")
    reports(bin_, run_dir)
    return run_dir


def reports(bin_: Path, run_dir: Path) -> None:
    """The run's subunit stream as JUnit XML (subunit2junitxml) and HTML (subunit2html)."""
    # Exit 1 when a test failed, the XML whole; some releases' python-subunit also prints
    # a traceback at the end (its result lacks wasSuccessful) after writing it. Its
    # stderr goes to a file of the run: only a missing or empty XML is a failure.
    with open(run_dir / SUBUNIT, "rb") as f, open(run_dir / "subunit2junitxml.err", "wb") as err:
        subprocess.run([str(bin_ / "subunit2junitxml"), "--no-passthrough", "-o", str(run_dir / JUNIT)],
                       stdin=f, stdout=subprocess.DEVNULL, stderr=err)
    if not (run_dir / JUNIT).exists() or (run_dir / JUNIT).stat().st_size == 0:
        raise TempestError(f"no JUnit report from the run's subunit stream: see {run_dir / 'subunit2junitxml.err'}")
    subprocess.run([str(bin_ / "subunit2html"), str(run_dir / SUBUNIT), str(run_dir / HTML)],
                   stdout=subprocess.DEVNULL, check=True)


def find_run(home: Path, name: str) -> Path:
    """A run by its folder name under runs/, or a path to a run folder or a JUnit file."""
    for candidate in (home / RUNS / name, Path(name)):
        if candidate.is_dir() and (candidate / JUNIT).exists():
            return candidate / JUNIT
        if candidate.is_file():
            return candidate
    have = sorted(p.name for p in (home / RUNS).glob("*")) if (home / RUNS).exists() else []
    raise TempestError(f"no tempest run {name!r}" + (f"; runs: {', '.join(have)}" if have else ""))


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        last = ((r.stderr or r.stdout).strip().splitlines() or ["no output"])[-1]
        raise TempestError(f"`{' '.join(argv[:3])} ...` failed: {last}")
