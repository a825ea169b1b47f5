"""The local cloud's guest image (osception/devcloud/guest.py): its initramfs as the
kernel reads it, its shell through shellcheck, and (slow) the real thing booted with
QEMU (TCG) on a user-mode NIC: DHCP from slirp, the metadata read, the ready line and
the login prompt on the serial console, the page through a forwarded port.

Rerun the boot alone: scripts/test.sh tests/test_guest_image.py -s (prints the figures).
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from osception.devcloud import guest
from osception.devcloud.processes import DevcloudError

NIC = "10.0.2.15"  # what QEMU's slirp DHCP gives the first guest
METADATA = "10.0.2.100"  # a slirp guestfwd address: the test's own metadata responder


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes, int]]:
    """name -> (mode, data, rdev) of a newc cpio archive, in order."""
    out, i = {}, 0
    while True:
        assert data[i:i + 6] == b"070701"
        f = [int(data[i + 6 + 8 * n:i + 14 + 8 * n], 16) for n in range(13)]
        name = data[i + 110:i + 110 + f[11] - 1].decode()
        i += 110 + f[11]
        i += -i % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (f[1], data[i:i + f[6]], f[9] << 8 | f[10])
        i += f[6]
        i += -i % 4


def fake_kernel(root: Path, version: str, config: dict[str, str], kos: dict[str, list[str]],
                builtin: list[str] = ()) -> Path:
    """A kernel package's tree: boot/config-<v>, lib/modules/<v>/kernel/**.ko whose
    .modinfo names their dependencies, modules.builtin."""
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"config-{version}").write_text(
        "".join(f"{k}={v}\n" for k, v in config.items()) + "# CONFIG_FOO is not set\n")
    base = root / "lib" / "modules" / version
    base.mkdir(parents=True)
    for name, deps in kos.items():
        ko = base / "kernel" / "drivers" / f"{name}.ko"
        ko.parent.mkdir(parents=True, exist_ok=True)
        ko.write_bytes(b"\x7fELF\0license=GPL\0depends=" + ",".join(deps).encode()
                       + b"\0intree=Y\0")
    (base / "modules.builtin").write_text("".join(f"kernel/{b}.ko\n" for b in builtin))
    return root


def test_modules_come_with_their_dependencies_first(tmp_path):
    root = fake_kernel(tmp_path, "9.9-cloud", {"CONFIG_VIRTIO_PCI": "m", "CONFIG_VIRTIO_NET": "m"}, {
        "virtio_ring": [], "virtio": [], "virtio_pci_modern_dev": [],
        "virtio_pci": ["virtio_pci_modern_dev", "virtio_ring", "virtio"],
        "failover": [], "net_failover": ["failover"],
        "virtio_net": ["net_failover", "virtio_ring", "virtio"], "unused": []})
    names = [ko.stem for ko in guest.modules(root, "9.9-cloud")]
    assert sorted(names) == sorted(["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci",
                                    "failover", "net_failover", "virtio_net"])
    for module, deps in (("virtio_pci", ["virtio_ring", "virtio"]),
                         ("virtio_net", ["net_failover", "virtio"]), ("net_failover", ["failover"])):
        assert all(names.index(d) < names.index(module) for d in deps)


def test_built_in_drivers_and_dependencies_are_not_loaded(tmp_path):
    root = fake_kernel(tmp_path, "9.9", {"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_NET": "m"},
                       {"virtio_net": ["virtio", "net_failover"], "net_failover": []},
                       builtin=["drivers/virtio/virtio"])
    assert [ko.stem for ko in guest.modules(root, "9.9")] == ["net_failover", "virtio_net"]


def test_a_kernel_without_the_driver_is_one_clear_error(tmp_path):
    root = fake_kernel(tmp_path, "9.9", {"CONFIG_VIRTIO_PCI": "y"}, {})
    with pytest.raises(DevcloudError, match="CONFIG_VIRTIO_NET unset"):
        guest.modules(root, "9.9")


def test_initramfs_is_what_the_kernel_unpacks(tmp_path):
    kos = []
    for name in ("virtio", "virtio_net"):
        kos.append(tmp_path / f"{name}.ko")
        kos[-1].write_bytes(name.encode() * 3)
    data = guest.initramfs(b"BUSYBOX", ["sh", "init", "udhcpc", "busybox"], kos, user="alice")
    files = read_cpio(gzip.decompress(data))
    assert files["init"][1] == (guest.TEMPLATES / "init.sh").read_bytes()
    assert files["init"][0] == 0o100755 and files["bin/busybox"] == (0o100755, b"BUSYBOX", 0)
    for applet in ("sh", "init", "udhcpc"):
        assert files[f"bin/{applet}"] == (0o120777, b"busybox", 0)  # a symlink
    assert files["dev/console"] == (0o020600, b"", 5 << 8 | 1)  # /init's stdio, before devtmpfs
    assert files["etc/modules"][1] == b"virtio\nvirtio_net\n"  # the load order
    assert files["lib/modules/virtio_net.ko"][1] == b"virtio_net" * 3
    assert files["tmp"][0] == 0o041777
    # The console user logs in without a password; root cannot.
    assert "alice::" in files["etc/shadow"][1].decode() and "root:*:" in files["etc/shadow"][1].decode()
    assert "alice:x:1000:1000:alice:/home/alice:/bin/sh" in files["etc/passwd"][1].decode()
    # Reproducible: the same inputs give the same bytes (mtime 0 in cpio and gzip).
    assert guest.initramfs(b"BUSYBOX", ["sh", "init", "udhcpc", "busybox"], kos, user="alice") == data


def test_guest_shell_passes_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run scripts/test.sh")
    for name in ("init.sh", "udhcpc.script"):
        r = subprocess.run([exe, "-S", "warning", "-s", "sh", str(guest.TEMPLATES / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{name}:\n{r.stdout}"


# --- the real guest, booted ---------------------------------------------------------

@pytest.fixture(scope="module")
def guest_image() -> guest.Guest:
    """The guest in the machine cache, built from Debian's packages (slow: SLOW_FIXTURES,
    which has scripts/test.sh install QEMU for the boot test)."""
    return guest.build()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The metadata responder: QEMU runs it for each connection to METADATA:80 (guestfwd),
# the connection on its stdin and stdout.
RESPONDER = '''import sys
request = sys.stdin.buffer.readline().split()
while sys.stdin.buffer.readline().strip():
    pass
body = {{b"/openstack/latest/meta_data.json": {meta!r}, b"/openstack/latest/user_data": {user!r}}}.get(request[1])
head = b"HTTP/1.0 200 OK" if body is not None else b"HTTP/1.0 404 Not Found"
body = body or b""
sys.stdout.buffer.write(head + b"\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
'''


class Booted:
    def __init__(self, image: guest.Guest, workdir: Path, instance: str, hostname: str,
                 user_data: bytes):
        responder = workdir / "metadata.py"
        meta = f'{{"uuid": "{instance}", "hostname": "{hostname}.novalocal", "name": "{hostname}"}}'
        responder.write_text(RESPONDER.format(meta=meta.encode(), user=user_data))
        self.port = _free_port()
        self.log = workdir / "serial.log"
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nographic", "-no-reboot",
                "-monitor", "none", "-serial", "stdio",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd),
                "-append", f"{guest.COMMAND_LINE} quiet osception.metadata=http://{METADATA}",
                # restrict=on: the guest reaches nothing outside slirp but the forwards.
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:80,"
                           f"guestfwd=tcp:{METADATA}:80-cmd:python3 {responder}",
                "-device", "virtio-net-pci,netdev=n0"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)

    def console(self) -> str:
        return self.log.read_bytes().decode(errors="replace")

    def wait_for(self, text: str, after: int = 0, timeout: float = 120) -> int:
        """Seconds since QEMU started when TEXT shows on the console (after offset AFTER)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console()[after:]:
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no {text!r} on the console; it says:\n{self.console()[-3000:]}")

    def type(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_guest_boots_takes_dhcp_reads_metadata_and_serves(guest_image, tmp_path):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run scripts/test.sh")
    times = []
    for run in range(3):
        instance, hostname = str(uuid.uuid4()), f"guest-{run}"
        user_data = f"#!/bin/sh\necho run {run}\n".encode()
        workdir = tmp_path / str(run)
        workdir.mkdir()
        vm = Booted(guest_image, workdir, instance, hostname, user_data)
        try:
            times.append(vm.wait_for(f"{guest.READY} "))
            console = vm.console()
            assert f"{guest.READY} {NIC}\n" in console.replace("\r", "")
            assert f"osception-guest: instance-id {instance}" in console
            vm.wait_for("osception-guest: user data exited 0")  # a script: run, as CirrOS does
            assert f"\nrun {run}\n" in vm.console().replace("\r", "")
            vm.wait_for(f"{hostname} login:")
            with urllib.request.urlopen(f"http://127.0.0.1:{vm.port}/", timeout=30) as page:
                assert page.read().decode().split() == ["osception-guest", hostname, instance]
            if run == 0:  # the console login: the image's user, no password
                seen = len(vm.console())
                vm.type(guest.USER)
                vm.wait_for("$ ", after=seen, timeout=60)
                seen = len(vm.console())
                vm.type("id -un; cat /run/user_data")
                vm.wait_for(f"echo run {run}", after=seen, timeout=60)
                assert f"\n{guest.USER}" in vm.console()[seen:].replace("\r", "")
        finally:
            vm.stop()
    sizes = {p.name: p.stat().st_size for p in (guest_image.kernel, guest_image.initrd)}
    print(f"\nguest {guest_image.version}: boot to ready {[round(t, 1) for t in times]} s, "
          f"median {statistics.median(times):.1f} s (QEMU TCG, -m 128); sizes {sizes}")


class FakeImages:
    """What guest.upload asks of openstacksdk's image proxy, kept in a dict."""

    def __init__(self):
        self.images: dict[str, SimpleNamespace] = {}
        self.created: list[str] = []

    def find_image(self, name, ignore_missing=True):
        return self.images.get(name)

    def delete_image(self, image):
        del self.images[image.name]

    def create_image(self, name, *, filename, disk_format, container_format, visibility, sha256,
                     wait, **props):
        assert Path(filename).exists() and wait and visibility == "public"
        known = {k: props.pop(k) for k in ("kernel_id", "ramdisk_id", "os_admin_user",
                                           "os_command_line") if k in props}
        self.images[name] = SimpleNamespace(
            name=name, id=str(uuid.uuid4()), status="active", disk_format=disk_format,
            container_format=container_format, data=Path(filename).read_bytes(),
            properties={"owner_specified.openstack.sha256": sha256, **props}, **known)
        self.created.append(name)
        return self.images[name]


def test_upload_makes_a_kernel_ramdisk_and_root_image_once(tmp_path):
    files = {}
    for attr, data in (("kernel", b"KERNEL"), ("initrd", b"INITRD"), ("root", guest.ROOT_DISK)):
        files[attr] = tmp_path / attr
        files[attr].write_bytes(data)
    g = guest.Guest("9.9", **files)
    conn = SimpleNamespace(image=FakeImages())
    assert guest.upload(conn, g) == [name for name, _, _ in guest.IMAGES]
    images = conn.image.images
    kernel, ramdisk = images["osception-guest-kernel"], images["osception-guest-ramdisk"]
    root = images[guest.NAME]
    assert (kernel.disk_format, kernel.container_format, kernel.data) == ("aki", "aki", b"KERNEL")
    assert (ramdisk.disk_format, ramdisk.container_format, ramdisk.data) == ("ari", "ari", b"INITRD")
    assert (root.disk_format, root.container_format) == ("ami", "ami")
    assert (root.kernel_id, root.ramdisk_id) == (kernel.id, ramdisk.id)
    assert root.os_admin_user == guest.USER and root.os_command_line == "console=ttyS0"
    assert root.properties["hw_vif_model"] == "virtio"

    assert guest.upload(conn, g) == []  # the same data: nothing made
    files["initrd"].write_bytes(b"INITRD 2")
    assert guest.upload(conn, g) == ["osception-guest-ramdisk", guest.NAME]
    assert images[guest.NAME].ramdisk_id == images["osception-guest-ramdisk"].id
    assert images[guest.NAME].kernel_id == kernel.id


GLANCE_CONF = """[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
enabled_backends = fs:file
[database]
connection = sqlite:///{root}/glance.db
[paste_deploy]
# No Keystone: every request is let in (this Glance lives for one test on 127.0.0.1).
flavor =
config_file = {venv}/etc/glance/glance-api-paste.ini
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {root}/images
[os_glance_staging_store]
filesystem_store_datadir = {root}/staging
[os_glance_tasks_store]
filesystem_store_datadir = {root}/tasks
[oslo_concurrency]
lock_path = {root}
[oslo_policy]
enforce_new_defaults = False
enforce_scope = False
policy_file = {root}/policy.yaml
"""


# gunicorn's entry point: Glance's WSGI module parses sys.argv at import (as the
# devcloud's, osception/devcloud/configs.py APP_MODULE).
GLANCE_APP = """import sys

sys.argv = sys.argv[:1]
from glance.wsgi.api import application  # noqa: E402,F401
"""


@pytest.fixture
def glance(services_venv, tmp_path):
    """A lone Glance API of the release's services under gunicorn, without Keystone,
    on 127.0.0.1."""
    import openstack

    port = _free_port()
    (tmp_path / "glance-api.conf").write_text(GLANCE_CONF.format(port=port, root=tmp_path,
                                                                 venv=services_venv))
    (tmp_path / "policy.yaml").write_text('"publicize_image": ""\n')  # no admin without Keystone
    (tmp_path / "glance_app.py").write_text(GLANCE_APP)
    subprocess.run([str(services_venv / "bin" / "glance-manage"), "--config-file",
                    str(tmp_path / "glance-api.conf"), "db_sync"], check=True, capture_output=True)
    log = tmp_path / "glance-api.log"
    proc = subprocess.Popen([str(services_venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--chdir", str(tmp_path), "glance_app:application"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OS_GLANCE_CONFIG_DIR": str(tmp_path)})
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            except urllib.error.HTTPError:  # 300 Multiple Choices: its versions
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
        yield openstack.connect(auth_type="none", image_endpoint_override=f"http://127.0.0.1:{port}/",
                                image_api_version="2")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def test_upload_to_a_real_glance(guest_image, glance):
    """What populate --local-guest does, against the release's Glance: the formats and
    properties are accepted, the data is what was built, a second upload makes nothing."""
    assert guest.upload(glance, guest_image) == [name for name, _, _ in guest.IMAGES]
    images = {i.name: i for i in glance.image.images()}
    root = images[guest.NAME]
    assert (root.kernel_id, root.ramdisk_id) == (images["osception-guest-kernel"].id,
                                                 images["osception-guest-ramdisk"].id)
    assert [(images[name].disk_format, images[name].container_format, images[name].status)
            for name, _, _ in guest.IMAGES] == [("aki", "aki", "active"), ("ari", "ari", "active"),
                                                ("ami", "ami", "active")]
    assert (root.os_admin_user, root.os_command_line) == (guest.USER, guest.COMMAND_LINE)
    ramdisk = glance.image.download_image(images["osception-guest-ramdisk"]).content
    assert ramdisk == guest_image.initrd.read_bytes()
    assert guest.upload(glance, guest_image) == []
