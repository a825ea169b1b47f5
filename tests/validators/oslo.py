"""Validate rendered OpenStack config files with the real oslo.config tooling.

Plain functions, no pytest fixtures. Everything runs in a separate venv that holds
the services of one release (build it with
``osception/devcloud/services-venv/openstack-venv.sh 2026.1 DEST``, from ``osception/locks/``, as the fixtures of
tests/devcloud/conftest.py do); this module itself needs only the standard library.

    from tests.validators import oslo
    r = oslo.validate(venv, Path("out/nova.conf"))            # oslo-config-validator
    assert r.returncode == 0, r.stdout + r.stderr
    r = oslo.load_values(venv, Path("out/nova.conf"))         # values through ConfigOpts
    assert r.returncode == 0, r.stdout + r.stderr
    oslo.assert_valid(venv, path)                             # both, AssertionError on failure

``name`` picks the kind of file when the basename is not one of NAMESPACES
(e.g. ``validate(venv, tmp / "compute.conf", name="nova.conf")``).
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADER = HERE / "_oslo_load.py"
BATCH = HERE / "_oslo_batch.py"

# oslo.config.opts namespaces per file, as in each project's oslo-config-generator
# configuration of release 2026.1 (read from the sdists of keystone 29.1.0,
# nova 33.0.2, neutron 28.0.2, glance 32.0.0, openstack-placement 15.0.0):
#   keystone  config-generator/keystone.conf
#   glance    etc/oslo-config-generator/glance-api.conf
#   placement etc/placement/config-generator.conf
#   nova      etc/nova/nova-config-generator.conf
#   neutron   etc/oslo-config-generator/{neutron.conf,ml2_conf.ini,*_agent.ini}
NAMESPACES: dict[str, list[str]] = {
    "keystone.conf": [
        "keystone", "oslo.cache", "oslo.log", "oslo.messaging", "oslo.policy",
        "oslo.db", "oslo.middleware", "osprofiler",
    ],
    # "glance": the image import options (glance/opts.py list_image_import_opts), which
    # glance-api registers on its own CONF and reads from glance-api.conf too
    # ([import_filtering_opts] restricts web-download).
    "glance-api.conf": [
        "castellan.config", "glance", "glance.api", "glance.store", "os_brick",
        "glance.multi_store", "oslo.concurrency", "oslo.messaging", "oslo.db",
        "oslo.policy", "keystonemiddleware.auth_token", "oslo.limit", "oslo.log",
        "oslo.middleware.cors", "oslo.middleware.healthcheck",
        "oslo.middleware.http_proxy_to_wsgi", "oslo.reports",
    ],
    "placement.conf": [
        "placement.conf", "keystonemiddleware.auth_token", "oslo.log",
        "oslo.middleware.cors", "oslo.middleware.http_proxy_to_wsgi", "oslo.policy",
        "osprofiler",
    ],
    "neutron.conf": [
        "neutron", "neutron.agent", "neutron.db", "neutron.experimental",
        "neutron.extensions", "nova.auth", "ironic.auth", "placement.auth",
        "designate.auth", "oslo.log", "oslo.cache", "oslo.db", "oslo.policy",
        "oslo.privsep", "oslo.concurrency", "oslo.messaging", "oslo.middleware.cors",
        "oslo.middleware.healthcheck", "oslo.middleware.http_proxy_to_wsgi",
        "oslo.reports", "oslo.service.periodic_task", "oslo.service.service",
        "oslo.service.sslutils", "oslo.service.wsgi", "oslo.versionedobjects",
        "keystonemiddleware.auth_token", "osprofiler",
    ],
    "ml2_conf.ini": ["neutron.ml2", "neutron.ml2.ovn", "oslo.log"],
    "openvswitch_agent.ini": ["neutron.ml2.ovs.agent", "oslo.log"],
    "l3_agent.ini": ["neutron.az.agent", "neutron.base.agent", "neutron.l3.agent", "oslo.log"],
    "dhcp_agent.ini": ["neutron.az.agent", "neutron.base.agent", "neutron.dhcp.agent", "oslo.log"],
    "metadata_agent.ini": ["neutron.metadata.agent", "oslo.log", "oslo.cache"],
    # One file for nova-api/conductor/scheduler and nova-compute. nova deliberately
    # leaves oslo.db out: its own "nova.conf" namespace defines [database] and
    # [api_database]. os_vif / os_brick cover [os_vif_ovs] and [os_brick].
    "nova.conf": [
        "nova.conf", "oslo.limit", "oslo.log", "oslo.messaging", "oslo.policy",
        "oslo.privsep", "oslo.service.periodic_task", "oslo.service.service",
        "oslo.middleware", "oslo.concurrency", "oslo.reports", "oslo.versionedobjects",
        "keystonemiddleware.auth_token", "osprofiler", "os_vif", "os_brick",
    ],
}

# glance's reserved file stores; their sections are named at run time.
GLANCE_RESERVED_STORES = ("os_glance_staging_store", "os_glance_tasks_store")


def kind(conf: Path, name: str | None = None) -> str:
    """The NAMESPACES key for a file: ``name`` if given, else the file's basename."""
    key = name or Path(conf).name
    if key not in NAMESPACES:
        raise KeyError(f"no oslo namespaces known for {key!r}; pass name= one of {sorted(NAMESPACES)}")
    return key


def namespaces(conf: Path, name: str | None = None) -> list[str]:
    return list(NAMESPACES[kind(conf, name)])


def _read_sections(conf: Path) -> configparser.ConfigParser:
    # oslo files may repeat keys (MultiStrOpt); only names are needed here.
    cp = configparser.ConfigParser(strict=False, interpolation=None, default_section="\0none")
    cp.optionxform = str  # keep key case
    cp.read(conf, encoding="utf-8")
    return cp


def dynamic_groups(conf: Path, name: str | None = None) -> list[str]:
    """Sections whose names are chosen by the operator, so oslo-config-validator
    cannot know them and must be told ``--exclude-group``. Only glance-api.conf has
    such: each ``[DEFAULT] enabled_backends`` NAME:TYPE names a section, plus the
    reserved staging/tasks stores. load_values() still checks these sections."""
    if kind(conf, name) != "glance-api.conf":
        return []
    cp = _read_sections(conf)
    groups: list[str] = []
    if cp.has_section("DEFAULT") and cp.has_option("DEFAULT", "enabled_backends"):
        for item in cp.get("DEFAULT", "enabled_backends").split(","):
            backend = item.split(":", 1)[0].strip()
            if backend:
                groups.append(backend)
    groups += [g for g in GLANCE_RESERVED_STORES if cp.has_section(g)]
    return [g for g in dict.fromkeys(groups) if cp.has_section(g)]


def validator_command(venv: Path, conf: Path, name: str | None = None) -> list[str]:
    cmd = [str(Path(venv) / "bin" / "oslo-config-validator"), "--fatal-warnings"]
    for ns in namespaces(conf, name):
        cmd += ["--namespace", ns]
    for group in dynamic_groups(conf, name):
        cmd += ["--exclude-group", group]
    cmd += ["--input-file", str(conf)]
    return cmd


def validate(venv: Path, conf: Path, name: str | None = None, *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``oslo-config-validator --fatal-warnings`` on ``conf``.

    Fails (returncode 1) on unknown sections/options and on deprecated option
    NAMES (renamed or moved options). It does not look at values, does not flag
    options that are only "deprecated for removal", and ignores unknown keys in
    [keystone_authtoken] (a known-incomplete group): load_values() covers those.
    Messages are on stderr (``ERROR:root:...`` / ``WARNING:root:...``)."""
    return subprocess.run(
        validator_command(venv, conf, name),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


# Options deprecated for removal that osception sets on purpose, each with why. Every
# other one is an error (load_values).
DEPRECATED_ON_PURPOSE = {
    # Nova names no other way to give the user of a live migration's qemu+ssh://
    # connection (libvirtd's, as root): the scheme alone logs in as root with root's
    # keys. With it, libvirtd logs in as nova, by the migration key, and no compute
    # grants root SSH to another (nova-compute.conf.j2, compute.yml). Deprecated since
    # Ocata (15.0.0) and still read by every release osception supports.
    "libvirt/live_migration_uri": "live migration as nova, not root",
}


def load_command(venv: Path, conf: Path, name: str | None = None, *,
                 allow_deprecated: bool = False, as_json: bool = False) -> list[str]:
    cmd = [str(Path(venv) / "bin" / "python"), str(LOADER), "--input-file", str(conf)]
    for ns in namespaces(conf, name):
        cmd += ["--namespace", ns]
    if allow_deprecated:
        cmd.append("--allow-deprecated")
    for option in DEPRECATED_ON_PURPOSE:
        cmd += ["--keep-deprecated", option]
    if as_json:
        cmd.append("--json")
    return cmd


def load_values(venv: Path, conf: Path, name: str | None = None, *,
                allow_deprecated: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Register every option of the file's namespaces with oslo.config, parse the
    file with ConfigOpts and read back every option it sets.

    returncode 1 with one ``ERROR [section] key: ...`` line on stdout per problem:
    bad values (``debug = maybe``, ports out of range, unknown choices, broken
    ``$`` references), unknown sections/keys (including [keystone_authtoken] and
    other keystoneauth groups, checked against their auth_type's plugin), keys set
    twice, deprecated names and deprecated-for-removal options (pass
    ``allow_deprecated=True`` to accept the last two)."""
    return subprocess.run(
        load_command(venv, conf, name, allow_deprecated=allow_deprecated),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def load_json(venv: Path, conf: Path, name: str | None = None, *,
              allow_deprecated: bool = False, timeout: float = 300) -> dict:
    """Like load_values() but returns ``{"errors": [...], "values": {group: {opt: value}}}``
    with the values as oslo.config typed them (non-JSON types as str)."""
    r = subprocess.run(
        load_command(venv, conf, name, allow_deprecated=allow_deprecated, as_json=True),
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"loader failed (rc={r.returncode}):\n{r.stdout}{r.stderr}") from None


def assert_valid(venv: Path, conf: Path, name: str | None = None, *, allow_deprecated: bool = False) -> None:
    """validate() and load_values() (through problems(): one process for both);
    AssertionError with what both said if either fails."""
    found = problems(venv, [(conf, name)], allow_deprecated=allow_deprecated)
    if found:
        raise AssertionError(found[0])


def problems(venv: Path, files: list[tuple[Path, str | None]], *, allow_deprecated: bool = False) -> list[str]:
    """assert_valid's two checks on many files: one process per kind of file (its
    projects imported once, not once per file and check), the kinds in parallel, one
    per core. Returns a message per failing file (the file, its kind, what each failing
check said), [] when all pass."""
    by_kind: dict[str, list[Path]] = defaultdict(list)
    for conf, name in files:
        by_kind[kind(conf, name)].append(Path(conf))

    def check(item: tuple[str, list[Path]]) -> list[str]:
        name, confs = item
        jobs = [{"validator": validator_command(venv, c, name)[1:],
                 "loader": load_command(venv, c, name, allow_deprecated=allow_deprecated)[2:]}
                for c in confs]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(jobs, f)
            f.flush()
            r = subprocess.run([str(Path(venv) / "bin" / "python"), str(BATCH), f.name],
                               capture_output=True, text=True, timeout=600, check=False)
        if r.returncode != 0:
            return [f"{name}: the batch of {len(confs)} file(s) failed (rc={r.returncode}):\n{r.stdout}{r.stderr}"]
        out = []
        for conf, result in zip(confs, json.loads(r.stdout)):
            said = [f"{check} rc={rc}:\n{text}" for check, (rc, text) in
                    (("oslo-config-validator", result["validator"]), ("load_values", result["loader"])) if rc != 0]
            if said:
                out.append(f"{conf} ({name}):\n" + "\n".join(said))
        return out

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return [p for found in pool.map(check, by_kind.items()) for p in found]


if __name__ == "__main__":  # python -m tests.validators.oslo VENV FILE [NAME]
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m tests.validators.oslo VENV FILE [NAME]")
    _venv, _conf = Path(sys.argv[1]), Path(sys.argv[2])
    _name = sys.argv[3] if len(sys.argv) == 4 else None
    rc = 0
    for fn in (validate, load_values):
        res = fn(_venv, _conf, _name)
        print(f"{fn.__name__}: rc={res.returncode}")
        sys.stdout.write(res.stdout)
        sys.stdout.write(res.stderr)
        rc |= res.returncode
    sys.exit(rc)
