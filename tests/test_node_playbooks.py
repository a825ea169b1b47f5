"""The compute and network playbooks: syntax, lint, and a REAL run against a
Debian 13 root (debootstrap) through Ansible's chroot connection.

In the chroot, only what needs a booted kernel is skipped, by the one variable
osception_chroot=true (service starts, sysctl, Open vSwitch bridges)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from osception import config, day2, locks, releases, render, secrets, services
from osception.render.checks import NOVA_USER_DATA_LIMIT, user_data_size
from osception.render.env import TEMPLATES
from osception.render.layout import NODE_CONSTRAINTS, NODE_ETC
from osception.render.node import load_ansible_vars, node_lock

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = TEMPLATES / "ansible"
CACHE = REPO / ".cache"
MIRROR = os.environ.get("OSCEPTION_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The releases the table says are proven by a real run in a Debian root, per node source
# (releases.Release.node_chroot_runs). In pypi mode the compute role's run installs both
# projects (nova and neutron, with the agents): the network role's (neutron only, plus the
# DHCP agent's dnsmasq) is left out to keep CI inside its time.
PYPI_RUNS = [r.name for r in releases.RELEASES.values() if "pypi" in r.node_chroot_runs]
PACKAGES_RUNS = [r.name for r in releases.RELEASES.values() if "packages" in r.node_chroot_runs]


def _bin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(os.sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/test.sh (pip install -e '.[test]')")
    return found


@pytest.mark.slow  # ansible-lint: 8 s of CPU and more on a busy machine (docs/contributing.md, Tests)
def test_playbooks_pass_syntax_check_and_strict_lint(tmp_path):
    work = tmp_path / "ansible"
    shutil.copytree(ANSIBLE_DIR, work)
    for playbook in ("compute.yml", "network.yml"):
        r = subprocess.run([_bin("ansible-playbook"), "-i", "localhost,", "--syntax-check", playbook],
                           cwd=work, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([_bin("ansible-lint"), "--offline", "--strict", "compute.yml", "network.yml"],
                       cwd=work, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failure(s), 0 warning(s)" in r.stdout + r.stderr


def test_only_kernel_and_service_tasks_depend_on_the_chroot_variable():
    """osception_chroot may skip service starts, sysctl and OVS, and nothing else."""
    allowed = re.compile(r"systemd_service|systemctl try-restart|sysctl|ovs-vsctl|/sys/class/net", re.S)
    for path in ANSIBLE_DIR.rglob("*.yml"):
        for item in yaml.safe_load(path.read_text()) or []:
            tasks = item.get("tasks", []) + item.get("handlers", []) if "hosts" in item else [item]
            for task in tasks:
                if "osception_chroot" in str(task.get("when", "")):
                    body = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "when")})
                    assert allowed.search(body), f"{path.name}: {task['name']}"
                    assert "services" in task.get("tags", ["services"]), task["name"]


@pytest.mark.parametrize("release", list(releases.RELEASES))
def test_pypi_nodes_get_the_release_lock_and_the_same_config_files(release, tmp_path):
    """node_source pypi: the lock in the user data (well under Nova's limit), no backports,
    the packages mode's config files but for the venv's rootwrap, a unit per service."""
    sec = secrets.ensure(tmp_path / "state", "osception")
    plans = {source: render.build(config.Config(release=release, node_source=source), sec)
             for source in ("packages", "pypi")}
    lock = locks.read(release)
    for role in ("compute", "network"):
        node = f"{role}-0"
        user_data = plans["pypi"].files[f"{node}/user-data"]
        assert user_data_size(user_data) < NOVA_USER_DATA_LIMIT // 2
        written = {f["path"]: f["content"] for f in yaml.safe_load(user_data)["write_files"]}
        assert written[NODE_CONSTRAINTS] == lock
        assert "extrepo" not in written[f"{NODE_ETC}/setup"]
        node_vars = load_ansible_vars(written[f"{NODE_ETC}/vars.yml"])
        assert node_vars["node_source"] == "pypi"
        assert [u["dest"] for u in node_vars["units"]] == [
            f"/etc/systemd/system/{s}.service" for s in services.NODE_SERVICES[role] if s != "libvirtd"]
        for name in (n for n in services.NODE_SERVICES[role] if n in services.NODE_UNITS):
            unit = plans["pypi"].files[f"{node}/systemd/{name}.service"]  # the venv's requests: the system's CAs
            assert "Environment=REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\n" in unit, name
        packages_files = {k: v for k, v in plans["packages"].files.items() if k.startswith(f"{node}/config/")}
        pypi_files = {k: v for k, v in plans["pypi"].files.items() if k.startswith(f"{node}/config/")}
        assert pypi_files == {k: v.replace("sudo /usr/bin/neutron-rootwrap", "sudo /opt/openstack/bin/neutron-rootwrap")
                              for k, v in packages_files.items()}
        packages_written = yaml.safe_load(plans["packages"].files[f"{node}/user-data"])["write_files"]
        assert NODE_CONSTRAINTS not in [f["path"] for f in packages_written]


# --- the real run --------------------------------------------------------------------

def _minbase(node_os: releases.NodeOS) -> Path:
    """A minimal Debian root of that version (a tarball of it), built once and kept in
    .cache/. adduser: every cloud image has it, and the OpenStack packages' scripts need it."""
    name = node_os.name.replace("-", "")  # debian13
    tar = CACHE / f"{name}-minbase.tar"
    if not tar.exists():
        if shutil.which("debootstrap") is None:
            pytest.fail("debootstrap is not installed: run scripts/test.sh (apt-get install debootstrap)")
        CACHE.mkdir(exist_ok=True)
        build = CACHE / f"{name}-build"
        shutil.rmtree(build, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-apt,adduser",
                        node_os.codename, str(build), MIRROR], check=True, capture_output=True)
        subprocess.run(["tar", "-C", str(build), "-cf", f"{tar}.tmp", "."], check=True)
        os.replace(f"{tar}.tmp", tar)
        shutil.rmtree(build)
    return tar


@pytest.fixture(scope="session")
def debian13_root() -> Path:
    return _minbase(releases.DEBIAN_13)


@pytest.fixture(scope="session")
def debian_minbase():
    """_minbase for any node OS of the release table."""
    return _minbase


def _cloud_init_write_files(root: Path, user_data: str) -> None:
    """Do what cloud-init's write_files does with this user data, inside `root` (the
    files as `osception apply` reads them: day2.write_files)."""
    for path_, f in day2.write_files(user_data).items():
        path = root / path_.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if f.append:  # e.g. /etc/hosts: the image's own lines stay
            with path.open("ab") as out:
                out.write(f.content)
        else:
            path.write_bytes(f.content)
        path.chmod(f.mode)  # cloud-init's default mode 0644 when none is given


@contextlib.contextmanager
def _like_a_vm(root: Path, hostname: str, pip_cache: Path | None = None):
    """What a booted cloud image has and a bare chroot lacks: /proc and /dev/pts
    (package scripts read /proc/net/route, apt wants a pty), a resolvable host name,
    and no service starts (policy-rc.d). Test harness, not playbook. `pip_cache`: this
    machine's, as root's pip cache inside (downloads and built wheels kept across runs)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/hostname").write_text(hostname + "\n")
    with open(root / "etc/hosts", "a") as f:
        f.write(f"127.0.1.1 {hostname}\n")
    mounts = [(["-t", "proc", "proc"], root / "proc"), (["--bind", "/dev/pts"], root / "dev/pts")]
    if pip_cache is not None:
        pip_cache.mkdir(parents=True, exist_ok=True)
        mounts.append((["--bind", str(pip_cache)], root / "root/.cache/pip"))
        # This machine's way to PyPI: a TLS-intercepting proxy's CA, if it has one.
        if os.environ.get("PIP_CERT"):
            shutil.copyfile(os.environ["PIP_CERT"], root / PIP_CERT_IN_ROOT.lstrip("/"))
    done = []
    try:
        for args, target in mounts:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


PIP_CERT_IN_ROOT = "/root/pip-cert.pem"  # test harness: what this machine's PIP_CERT names


def _run_playbook(root: Path, role: str) -> tuple[int, str]:
    cmd = [
        _bin("ansible-playbook"), "-c", "community.general.chroot", "-i", f"{root},",
        "-e", f"@{root}/etc/osception/vars.yml", "-e", '{"osception_chroot": true}',
        "-e", "ansible_python_interpreter=/usr/bin/python3",
        str(root / f"etc/osception/ansible/{role}.yml"),
    ]
    # Nothing of this machine's pip settings (PIP_FIND_LINKS...) reaches the node's pip.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "DEBIAN_FRONTEND": "noninteractive"}
    if (root / PIP_CERT_IN_ROOT.lstrip("/")).exists():  # requests prefers REQUESTS_CA_BUNDLE
        env.update(PIP_CERT=PIP_CERT_IN_ROOT, REQUESTS_CA_BUNDLE=PIP_CERT_IN_ROOT)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = r.stdout + r.stderr
    m = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert r.returncode == 0 and m and m[4] == "0", out[-4000:]
    return int(m[2]), out


def _owner(root: Path, path: str) -> tuple[str, str, int]:
    st = (root / path.lstrip("/")).stat()
    def name(db: str, num: int) -> str:
        for line in (root / f"etc/{db}").read_text().splitlines():
            parts = line.split(":")
            if parts[2] == str(num):
                return parts[0]
        return str(num)
    return name("passwd", st.st_uid), name("group", st.st_gid), st.st_mode & 0o7777


@pytest.mark.parametrize("release", PACKAGES_RUNS)  # Debian 13 carries 2025.1 itself
@pytest.mark.parametrize("role", ["compute", "network"])
def test_playbook_really_sets_up_a_debian13_root(release, role, debian13_root, tmp_path):
    cfg = config.Config(release=release)
    sec = secrets.ensure(tmp_path / "state", cfg.name)
    plan = render.build(cfg, sec)
    node = f"{role}-0"

    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(debian13_root)], check=True)
    _cloud_init_write_files(root, plan.files[f"{node}/user-data"])
    with _like_a_vm(root, node):
        changed, _ = _run_playbook(root, role)
        assert changed > 0
        # Idempotent: a second run changes nothing.
        changed, out = _run_playbook(root, role)
        assert changed == 0, out[-4000:]

    # The packages are installed...
    r = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Status}\n",
                        *services.NODE_PACKAGES[role]], capture_output=True, text=True)
    assert r.stdout.count("install ok installed") == len(services.NODE_PACKAGES[role]), r.stdout
    # ...and every config file is osception's, root:<service> 0640, as Debian ships them.
    for f in services.NODE_FILES[role]:
        assert (root / f.dest.lstrip("/")).read_text() == plan.files[f"{node}/config/{f.name}"], f.dest
        assert _owner(root, f.dest) == ("root", f.group, 0o640), f.dest
    if role == "compute":
        # No /dev/kvm in a chroot: QEMU, and a migration-safe CPU model.
        assert (root / "etc/nova/nova-compute.conf").read_text() == \
            plan.files[f"{node}/config/nova-compute-qemu.conf"]
        assert _owner(root, "/var/lib/nova/.ssh/id_ed25519") == ("nova", "nova", 0o600)
        assert (root / "var/lib/nova/.ssh/authorized_keys").read_text().strip() == sec.migration_ssh["public"]
        assert _owner(root, "/var/lib/nova/.ssh") == ("nova", "nova", 0o700)
    assert "net.ipv4.ip_forward = 1" in (root / "etc/sysctl.d/60-osception.conf").read_text()
    if role == "compute":
        _patches_apply_idempotently_and_revert(cfg, sec, plan, root, role, node, tmp_path)


def _patches_apply_idempotently_and_revert(cfg, sec, plan, root, role, node, tmp_path):
    """patches: a change to the nova Debian installed (a real format-patch of it), given
    in the config: the config pass applies it, again changes nothing, and once it is
    removed from the config the pristine code is back."""
    target = root / "usr/lib/python3/dist-packages/nova/version.py"
    pristine = target.read_bytes()
    repo = tmp_path / "nova-repo"
    (repo / "nova").mkdir(parents=True)
    shutil.copy(target, repo / "nova/version.py")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(git + args, check=True, capture_output=True)
    (repo / "nova/version.py").write_text(target.read_text() + "OSCEPTION_PATCHED = True\n")
    subprocess.run(git + ["commit", "-qam", "Mark nova patched"], check=True, capture_output=True)
    patch = Path(subprocess.run(git + ["format-patch", "-1", "-o", str(tmp_path)], check=True,
                                capture_output=True, text=True).stdout.strip())
    patched = render.build(cfg.model_copy(update={"patches": {"nova": [config.Patch(file=patch)]}}), sec)
    with _like_a_vm(root, node):
        _cloud_init_write_files(root, patched.files[f"{node}/user-data"])
        changed, out = _run_playbook(root, role)
        assert changed > 0, out[-4000:]
        assert target.read_text().endswith("OSCEPTION_PATCHED = True\n")
        assert (root / "var/lib/osception/patches/nova/pristine/nova/version.py").read_bytes() == pristine
        changed, out = _run_playbook(root, role)  # the same patches: nothing changes
        assert changed == 0, out[-4000:]
        _cloud_init_write_files(root, plan.files[f"{node}/user-data"])  # the patch removed
        changed, out = _run_playbook(root, role)
        assert changed > 0, out[-4000:]
    assert target.read_bytes() == pristine
    assert not (root / "var/lib/osception/patches/nova/pristine").exists()


# --- node_source: pypi ---------------------------------------------------------------
# The oldest and the newest release of the table, each on its own node OS (2024.1: Debian 12).
PIP_CACHE = Path(os.environ.get("OSCEPTION_CACHE", Path.home() / ".cache/osception")) / "pip"


@pytest.mark.parametrize(("release", "role"), [(r, "compute") for r in PYPI_RUNS])
def test_playbook_really_sets_up_a_pypi_node(release, role, debian_minbase, tmp_path):
    cfg = config.Config(release=release, node_source="pypi")
    sec = secrets.ensure(tmp_path / "state", cfg.name)
    plan = render.build(cfg, sec)
    node, venv = f"{role}-0", services.NODE_VENV
    assert user_data_size(plan.files[f"{node}/user-data"]) < NOVA_USER_DATA_LIMIT // 2

    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(debian_minbase(plan.release.node_os))], check=True)
    _cloud_init_write_files(root, plan.files[f"{node}/user-data"])
    with _like_a_vm(root, node, PIP_CACHE):
        # A cloud image boots with systemd; a minbase root has none (systemd-analyze below).
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-qq", "-y", "--no-install-recommends", "systemd"]):
            subprocess.run(["chroot", str(root), *cmd], check=True, capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        started = time.monotonic()
        changed, _ = _run_playbook(root, role)
        first = time.monotonic() - started
        assert changed > 0
        started = time.monotonic()
        changed, out = _run_playbook(root, role)  # idempotent: a second run changes nothing
        print(f"\n{release} {role} pypi: first run {first:.0f} s, second {time.monotonic() - started:.0f} s")
        assert changed == 0, out[-4000:]

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True)

    # The system pieces are Debian's, and no OpenStack package among them...
    r = run("dpkg-query", "-W", "-f", "${Package} ${Status}\n", *services.NODE_PYPI_PACKAGES[role])
    assert r.stdout.count("install ok installed") == len(services.NODE_PYPI_PACKAGES[role]), r.stdout
    r = run("dpkg-query", "-W", "-f", "${Package}\n", "python3-nova", "python3-neutron")
    assert r.stdout.strip() == "", r.stdout
    # ...the services are the lock's versions, in the venv.
    lock = dict(line.split("==") for line in node_lock(plan.release).splitlines()
                if "==" in line and not line.startswith("#"))
    r = run(f"{venv}/bin/pip", "list", "--format=freeze")
    installed = dict(line.split("==") for line in r.stdout.splitlines())
    for project in services.NODE_PYPI_PROJECTS[role]:
        assert project in installed, project
        assert installed[project] == lock.get(project, installed[project]), project
    assert {p: v for p, v in installed.items() if p in lock and lock[p] != v} == {}

    # Every config file is the plan's, root:<service> 0640, as in packages mode.
    for f in services.NODE_FILES[role]:
        assert (root / f.dest.lstrip("/")).read_text() == plan.files[f"{node}/config/{f.name}"], f.dest
        assert _owner(root, f.dest) == ("root", f.group, 0o640), f.dest
    assert "root_helper = sudo /opt/openstack/bin/neutron-rootwrap" in plan.files[f"{node}/config/neutron.conf"]

    # Users and folders as Debian's packages make them.
    users = [u.name for u in services.NODE_USERS[role]]
    for user in users:
        assert _owner(root, f"/var/lib/{user}") == (user, user, 0o755)
        assert _owner(root, f"/var/log/{user}") == (user, "adm", 0o750)
    for u in services.NODE_USERS[role]:  # nova-compute's instances_path, as the package makes it
        for folder in u.state_folders:
            assert _owner(root, f"/var/lib/{u.name}/{folder}") == (u.name, u.name, 0o755)
    if role == "compute":
        assert run("id", "-u", "nova").stdout.strip() == "64060"
        assert {"libvirt", "kvm"} <= set(run("id", "-nG", "nova").stdout.split())
        assert (root / "etc/nova/nova-compute.conf").read_text() == \
            plan.files[f"{node}/config/nova-compute-qemu.conf"]
        assert _owner(root, "/var/lib/nova/.ssh/id_ed25519") == ("nova", "nova", 0o600)
        r = run(f"{venv}/bin/python", "-c", "import libvirt, nova.virt.libvirt.driver")
        assert r.returncode == 0, r.stderr

    # Each service's unit is the plan's, valid for systemd, and its program starts.
    units = [s for s in services.NODE_SERVICES[role] if s in services.NODE_UNITS]
    for unit in units:
        path = f"/etc/systemd/system/{unit}.service"
        assert (root / path.lstrip("/")).read_text() == plan.files[f"{node}/systemd/{unit}.service"]
        r = run("systemd-analyze", "verify", path)
        assert r.returncode == 0 and unit not in r.stdout + r.stderr, r.stdout + r.stderr
        r = run(f"{venv}/bin/{unit}", "--help")
        assert r.returncode == 0 and "--config-file" in r.stdout, r.stdout + r.stderr

    # rootwrap: sudo lets each service run the venv's rootwrap (nova by name, as nova
    # calls it), which reads its config and filters and finds the venv's programs.
    r = run("runuser", "-u", "neutron", "--", "sudo", "-n", f"{venv}/bin/neutron-rootwrap",
            "/etc/neutron/rootwrap.conf", "ip", "link", "show", "lo")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"exec_dirs={venv}/bin," in (root / "etc/neutron/rootwrap.conf").read_text()
    if role == "compute":
        r = run("runuser", "-u", "nova", "--", "sudo", "-n", "nova-rootwrap", "/etc/nova/rootwrap.conf",
                "no-such-command")
        assert r.returncode == 99 and "Unauthorized command" in r.stderr, r.stdout + r.stderr
        assert (root / "etc/nova/rootwrap.d/compute.filters").exists()
    assert (root / "etc/neutron/rootwrap.d/rootwrap.filters").exists()
