"""A service is a folder (issue 25): osception/services/<name>/ holds everything that
is that service's alone, and the shared machinery iterates over services.SERVICES.

Two checks:
- every service folder is complete, with the same parts as the others and nothing
  its record does not declare;
- no file of osception/ outside services/ names a service, except those listed in
  NAMED_ELSEWHERE, each with the names it may use and why. A name is the service's
  name as code writes it (case-sensitive, a whole word: `nova` in "nova-compute" or
  /etc/nova), in code and template text; prose that explains (Python comments and
  docstrings, the templates' own comments) is not counted.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest
import yaml

import osception
from osception import services
from osception.services.record import Devcloud, Service

PACKAGE = Path(osception.__file__).parent
NAMES = tuple(s.name for s in services.SERVICES)
SCANNED = (".py", ".j2", ".yml", ".sh")

# file (under osception/): (the services it may name, why they are named there and not
# in their folders).
_INFRA = ("mariadb", "rabbitmq", "memcached")
NAMED_ELSEWHERE: dict[str, tuple[tuple[str, ...], str]] = {
    # -- the compute and network nodes: nova's and neutron's node side --------------
    "templates/ansible/tasks/common.yml": (("neutron", "nova"),
        "the nodes' playbook installs and starts nova's and neutron's node side "
        "(shared.NODE_PACKAGES, NODE_UNITS: the agents, nova-compute), not a controller service"),
    "templates/ansible/tasks/compute.yml": (("nova",), "the compute node's nova-compute and libvirt"),
    "templates/ansible/tasks/network.yml": (("neutron",), "the network node's Neutron agents"),
    "templates/conf/nova-compute.conf.j2": (("glance", "neutron", "nova", "placement"),
        "a compute node's nova.conf (shared.NODE_FILES): the APIs nova-compute calls"),
    "templates/conf/neutron-agent.conf.j2": (("neutron",), "the nodes' neutron.conf (shared.NODE_FILES)"),
    "templates/conf/dhcp_agent.ini.j2": (("neutron",), "a network node's DHCP agent (shared.NODE_FILES)"),
    "templates/cloud-init/node.yaml.j2": (("nova",),
        "a compute node's files for nova's live migration over SSH (its key pair)"),
    "render/conf.py": (("nova",), "a compute node's nova-compute-<virt_type>.conf, by the node's hypervisor"),
    "secrets.py": (("nova",), "the compute nodes' SSH key pair for nova's live migration"),
    "templates/scripts/node-setup.sh.j2": (("keystone", "rabbitmq"),
        "a node waits until the controller answers: Keystone through the ingress, RabbitMQ"),
    # -- what every service shares ----------------------------------------------------
    "templates/conf/_auth.j2": (("keystone", "memcached"),
        "the auth sections every service's config has: Keystone's URLs and the token cache"),
    "endpoints.py": (("keystone", *_INFRA),
        "where every service reaches the infrastructure, and Keystone's URL every client starts from"),
    "templates/k8s/00-namespace.yaml.j2": (("mariadb",),
        "the scripts ConfigMap every service's Jobs share (mariadb-bootstrap.sh)"),
    "templates/k8s/01-secrets.yaml.j2": (("keystone", "mariadb", "rabbitmq", "skyline"),
        "the cluster's Secrets, one manifest applied before every service's (01-secrets.yaml; "
        "in each service's manifest they would change the plan's files): each service's "
        "secrets.conf comes from SERVICES, but the infrastructure's, Keystone's keys and "
        "Skyline's whole skyline.yaml are of a shape of their own"),
    "templates/k8s/_kolla.j2": (("mariadb",),
        "the Kolla macros' create-databases init container: a service's databases on its MariaDB"),
    "templates/scripts/controller-setup.sh.j2": (("keystone",),
        "the controller is ready when Keystone answers through the ingress"),
    "render/controller.py": (("keystone", "mariadb"),
        "Keystone's own endpoints are its bootstrap's, the others' the service-accounts Job's; "
        "MariaDB's size units (`resources:` in osception.yaml)"),
    "releases.py": (("keystone", "glance", "placement", "neutron", "nova", *_INFRA),
        "the release table, per release: the infrastructure's series (MariaDB, RabbitMQ, "
        "memcached), the project versions it reports, what a release's images lack (2024.1: "
        "which services have no uWSGI)"),
    # -- words for the user ---------------------------------------------------------
    "cli.py": (("nova", "skyline"),
        "`up` prints Skyline's URL; `logs`' help gives process names as examples"),
    "config.py": (("glance", "keystone", "neutron", "nova", "placement"),
        "the osception.yaml `init` writes: its comments show keys by example "
        "(an image, nova.conf overrides, the projects `patches:` takes)"),
    "overcloud.py": (("neutron", "placement"),
        "openstacksdk's service proxy (conn.placement) and the smoke check's skip message"),
    # -- the devcloud: its infrastructure, Keystone first, the fake hypervisor ----------
    "devcloud/infra.py": (("keystone", *_INFRA),
        "the devcloud's one MariaDB, RabbitMQ and memcached (machinery: every service's "
        "database server is this one MariaDB, its root password keystone's)"),
    "devcloud/layout.py": (_INFRA, "the infrastructure's devcloud ports (the services' are theirs)"),
    "devcloud/manifests.py": (("mariadb",), "every service's database host, mariadb-<service>, is the one MariaDB"),
    "devcloud/configs.py": (("nova", *_INFRA),
        "the infrastructure's local endpoints; the fake hypervisor's nova-compute reads a "
        "compute node's nova.conf"),
    "devcloud/lifecycle.py": (("keystone", "nova", *_INFRA),
        "the infrastructure's start and stop order; Keystone starts first and its service "
        "accounts before any other API (every API validates tokens with it); the fake "
        "hypervisor's nova-compute"),
    "devcloud/cloud.py": (("keystone", "mariadb", "nova", "placement"),
        "the devcloud's auth URL is Keystone's; the fake hypervisor's compute host is "
        "schedulable once nova-compute, its Placement provider and its cell mapping say so"),
    "devcloud/venv.py": (("keystone", "nova"),
        "a services venv is known by its keystone-manage; the fake hypervisor driver goes into nova/virt"),
    "devcloud/nodes.py": (("nova", "rabbitmq"),
        "the local nodes: their nova-compute services, and RabbitMQ's TLS port relayed to them"),
    "devcloud/fake_hypervisor_ml2/osception_fake_snapshots.py": (("glance", "nova"),
        "the fake hypervisor driver is a Nova driver module (it imports nova and nova.image.glance)"),
}


def folders() -> list[Path]:
    return sorted(p for p in services.FOLDER.iterdir() if (p / "__init__.py").is_file())


def parts(service: Service) -> set[str]:
    """The files its folder must have: what its record declares."""
    catalog = any(a.catalog_type for a in service.apis)
    return {"__init__.py", "manifest.yaml.j2", *(f"{c}.j2" for c in service.configs),
            *(["devcloud.py"] if service.devcloud else []), *(["tempest.j2"] if catalog else [])}


def test_every_service_folder_is_in_services_in_lifecycle_order():
    assert [p.name for p in folders()] == sorted(NAMES)
    assert [s.order for s in services.SERVICES] == sorted(s.order for s in services.SERVICES)


@pytest.mark.parametrize("name", NAMES)
def test_a_service_folder_has_the_same_parts_as_every_other(name, default_plan):
    module = importlib.import_module(f"osception.services.{name}")
    service = module.SERVICE
    assert service.name == name
    doc = module.__doc__ or ""
    assert doc.startswith(f"{name}: "), "the docstring says what it is, under its name"
    assert "Depends on:" in doc and "Lifecycle:" in doc
    files = {p.name for p in (services.FOLDER / name).iterdir() if p.name != "__pycache__"}
    assert files == parts(service), "a file its record does not name, or a part missing"
    catalog = any(a.catalog_type for a in service.apis)
    # The devcloud runs every service of the catalog (and none other: the infrastructure
    # is its own, Skyline it does not run), and Tempest tests each.
    assert (service.devcloud is not None) == catalog
    if service.devcloud:
        assert module.devcloud.DEVCLOUD is service.devcloud
        # An API's process is named as its API and has a port; every process is a
        # Deployment of the service's manifest (on a release that has it).
        api_names = {a.name for a in service.apis}
        manifest = yaml.safe_load_all(default_plan.files[f"k8s-0/manifests/{service.manifest}"])
        deployments = {d["metadata"]["name"] for d in manifest if d and d["kind"] == "Deployment"}
        for process, spec in service.devcloud.processes.items():
            assert (spec.port is not None) == (process in api_names), process
            if spec.release_has is None or getattr(default_plan.release, spec.release_has):
                assert spec.deployment in deployments, process


def test_the_parts_check_fails_for_an_undeclared_template(tmp_path):
    """The check above compares with the record: a template the record names no more
    (or a new one it does not name) is a difference."""
    glance = next(s for s in services.SERVICES if s.name == "glance")
    without = Service(**{**glance.__dict__, "configs": ()})
    assert parts(glance) - parts(without) == {"glance-api.conf.j2"}
    assert parts(Service(**{**glance.__dict__, "devcloud": None})) == parts(glance) - {"devcloud.py"}
    assert isinstance(glance.devcloud, Devcloud)


def code(path: Path) -> str:
    """Its text without prose: a Python file without its comments and docstrings, a
    template without its comments ({# #}, and lines that start with #)."""
    text = path.read_text()
    if path.suffix != ".py":
        text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docstrings.add(first.lineno)
    return " ".join(t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                    if t.type != tokenize.COMMENT
                    and not (t.type == tokenize.STRING and t.start[0] in docstrings))


def named(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{file under root: the services it names}, for every file outside services/."""
    word = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")
    out = {}
    for path in sorted(root.rglob("*")):
        if (path.suffix in SCANNED and path.is_file()
                and not path.is_relative_to(root / "services")):
            found = set(word.findall(code(path)))
            if found:
                out[path.relative_to(root).as_posix()] = found
    return out


def test_no_file_outside_services_names_a_service_without_a_reason():
    found = named()
    unexplained = {f: sorted(names - set(NAMED_ELSEWHERE.get(f, ((), ""))[0]))
                   for f, names in found.items()}
    assert {f: n for f, n in unexplained.items() if n} == {}
    # An entry naming a service its file names no more is stale: the list stays as short
    # as the code.
    assert {f: sorted(set(names) - found.get(f, set())) for f, (names, _) in NAMED_ELSEWHERE.items()
            if set(names) - found.get(f, set())} == {}
    assert all(why for _, why in NAMED_ELSEWHERE.values())


def test_the_naming_check_reads_code_not_prose(tmp_path):
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "x.py").write_text('NAME = "nova"\n')  # a service's own folder
    (tmp_path / "prose.py").write_text('"""nova: explained."""\n# glance, in a comment\nX = 1\n')
    (tmp_path / "wired.py").write_text('"""Doc."""\nPORT = {"glance": 9292}\n')
    (tmp_path / "t.yaml.j2").write_text("{# keystone #}\n# neutron\nimage: nova-api\n")
    (tmp_path / "notes.txt").write_text("nova\n")  # not a scanned kind of file
    assert named(tmp_path) == {"wired.py": {"glance"}, "t.yaml.j2": {"nova"}}
