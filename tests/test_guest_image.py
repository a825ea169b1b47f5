"""The local cloud's guest image (osception/devcloud/guest.py): its initramfs as the
kernel reads it, its MBR, its shell through shellcheck, and (slow) the real thing: its
disk through Nova's own format inspection, booted with QEMU (TCG) from that disk on a
user-mode NIC: DHCP from slirp, the metadata read, the ready line and the login prompt
on the serial console, the page through a forwarded port.

Rerun the boot alone: scripts/test.sh tests/test_guest_image.py -s (prints the figures).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from osception import config
from osception.devcloud import guest
from osception.devcloud.processes import DevcloudError

# QEMU's slirp network, on the link-local range: its guestfwd (only to an address of its
# network) puts the test's own metadata responder where the guest looks, Neutron's
# 169.254.169.254. Its gateway (.2) and first DHCP address (.15) are slirp's.
SLIRP_NET = "169.254.169.0/24"
GATEWAY = "169.254.169.2"
NIC = "169.254.169.15"
METADATA = "169.254.169.254"


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


NIC_DRIVERS = {"virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_net": "CONFIG_VIRTIO_NET"}  # of guest.DRIVERS


def test_modules_come_with_their_dependencies_first(tmp_path):
    root = fake_kernel(tmp_path, "9.9-cloud", {"CONFIG_VIRTIO_PCI": "m", "CONFIG_VIRTIO_NET": "m"}, {
        "virtio_ring": [], "virtio": [], "virtio_pci_modern_dev": [],
        "virtio_pci": ["virtio_pci_modern_dev", "virtio_ring", "virtio"],
        "failover": [], "net_failover": ["failover"],
        "virtio_net": ["net_failover", "virtio_ring", "virtio"], "unused": []})
    names = [ko.stem for ko in guest.modules(root, "9.9-cloud", NIC_DRIVERS)]
    assert sorted(names) == sorted(["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci",
                                    "failover", "net_failover", "virtio_net"])
    for module, deps in (("virtio_pci", ["virtio_ring", "virtio"]),
                         ("virtio_net", ["net_failover", "virtio"]), ("net_failover", ["failover"])):
        assert all(names.index(d) < names.index(module) for d in deps)


def test_built_in_drivers_and_dependencies_are_not_loaded(tmp_path):
    root = fake_kernel(tmp_path, "9.9", {"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_NET": "m"},
                       {"virtio_net": ["virtio", "net_failover"], "net_failover": []},
                       builtin=["drivers/virtio/virtio"])
    assert [ko.stem for ko in guest.modules(root, "9.9", NIC_DRIVERS)] == ["net_failover", "virtio_net"]


def test_a_kernel_without_the_driver_is_one_clear_error(tmp_path):
    root = fake_kernel(tmp_path, "9.9", {"CONFIG_VIRTIO_PCI": "y"}, {})
    with pytest.raises(DevcloudError, match="CONFIG_VIRTIO_NET unset"):
        guest.modules(root, "9.9", NIC_DRIVERS)


def test_initramfs_is_what_the_kernel_unpacks(tmp_path):
    kos = []
    for name in ("virtio", "virtio_net"):
        kos.append(tmp_path / f"{name}.ko")
        kos[-1].write_bytes(name.encode() * 3)
    files = {"bin/busybox": (guest.EXEC, b"BUSYBOX"),
             f"bin/{guest.SETUID_BUSYBOX}": (guest.EXEC | guest.SETUID, b"STATIC"),
             "usr/lib/x86_64-linux-gnu/libz.so.1": (guest.EXEC, b"LIBZ")}
    applets = ["sh", "init", "udhcpc", "nc", "busybox"]
    data = guest.initramfs(files, applets, kos, "$6$salt$hash", user="alice")
    cpio = read_cpio(gzip.decompress(data))
    assert cpio["init"][1] == (guest.TEMPLATES / "init.sh").read_bytes()
    assert cpio["init"][0] == 0o100755 and cpio["bin/busybox"] == (0o100755, b"BUSYBOX", 0)
    for applet in ("sh", "init", "udhcpc"):
        assert cpio[f"bin/{applet}"] == (0o120777, b"busybox", 0)  # a symlink
    # Root from any user: su and ping run the setuid busybox.
    assert cpio[f"bin/{guest.SETUID_BUSYBOX}"][0] == 0o104755
    for applet in guest.SETUID_APPLETS:
        assert cpio[f"bin/{applet}"] == (0o120777, guest.SETUID_BUSYBOX.encode(), 0)
    # guest/bin's commands, nc in place of the applet; each in /bin, executable.
    for script in ("sudo", "lsblk", "blkid", "mkfs", "curl", "nc"):
        assert cpio[f"bin/{script}"] == (0o100755, (guest.SCRIPTS / script).read_bytes(), 0)
    # A program's library, its folders made before it (the kernel makes none).
    names = list(cpio)
    lib = names.index("usr/lib/x86_64-linux-gnu/libz.so.1")
    assert all(names.index(d) < lib and cpio[d][0] == 0o040755
               for d in ("usr", "usr/lib", "usr/lib/x86_64-linux-gnu"))
    assert cpio["dev/console"] == (0o020600, b"", 5 << 8 | 1)  # /init's stdio, before devtmpfs
    assert cpio["etc/modules"][1] == b"virtio\nvirtio_net\n"  # the load order
    assert cpio["lib/modules/virtio_net.ko"][1] == b"virtio_net" * 3
    assert cpio["tmp"][0] == 0o041777 and cpio["var/run"] == (0o120777, b"../run", 0)
    # The user logs in with the password; root has an empty one (for su) but no tty.
    shadow = cpio["etc/shadow"][1].decode().splitlines()
    assert shadow == ["root::1::::::", "alice:$6$salt$hash:1::::::"] and cpio["etc/securetty"][1] == b""
    assert "alice:x:1000:1000:alice:/home/alice:/bin/sh" in cpio["etc/passwd"][1].decode()
    # Reproducible: the same inputs give the same bytes (mtime 0 in cpio and gzip).
    assert guest.initramfs(files, applets, kos, "$6$salt$hash", user="alice") == data


def test_guest_shell_passes_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run scripts/test.sh")
    for path in [guest.TEMPLATES / "init.sh", guest.TEMPLATES / "udhcpc.script",
                 *sorted(guest.SCRIPTS.iterdir())]:
        r = subprocess.run([exe, "-S", "warning", "-s", "sh", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{path.name}:\n{r.stdout}"


# --- the real guest, booted ---------------------------------------------------------

@pytest.fixture(scope="module")
def guest_image() -> guest.Guest:
    """The guest in the machine cache, built from Debian's packages (slow: SLOW_FIXTURES,
    which has scripts/test.sh install QEMU for the boot test)."""
    return guest.build()


@pytest.fixture(scope="module")
def disk_made(guest_image, tmp_path_factory) -> Path:
    """The guest's disk made again from its kernel and initramfs, in a folder of its own
    where the raw disk (disk.raw) stays beside the qcow2 (disk.qcow2)."""
    work = tmp_path_factory.mktemp("disk")
    debs = guest.cache_dir() / "debs"
    tools = guest.unpack([*guest.TOOLS, guest.MBR_CODE[0]], debs, work / "tools")
    guest.disk_image(guest_image.kernel, guest_image.initrd, tools,
                     (tools / guest.MBR_CODE[1]).read_bytes(), work)
    return work


# Nova's own check of an image it fetches through fetch_to_raw (nova/virt/images.py:
# do_image_deep_inspection), run by each release's Nova; first, the format inspector it
# uses (oslo.utils' since 2025.1, Nova's own copy before).
NOVA_INSPECTION = """import sys
from nova import exception
from nova.virt import images

print(images.format_inspector.__name__)
for arg in sys.argv[1:]:
    disk_format, path = arg.split("=", 1)
    try:
        print(images.do_image_deep_inspection({"disk_format": disk_format}, "guest", path))
    except exception.ImageUnacceptable as e:
        print(f"refused: {e}")
"""


def test_nova_takes_the_disk_and_refuses_the_kernel_image(guest_image, disk_made, release_venv):
    """The disk, as qcow2 and raw, passes Nova's deep format inspection, which a live
    migration's pre_live_migration applies on the destination to every image it fetches
    (_create_images_and_backing -> libvirt_utils.fetch_image -> images.fetch_to_raw).
    Why the guest is not a kernel (aki) and ramdisk image pair any more: with oslo.utils'
    inspector the kernel fails it (its legacy boot sector has 0xAA55 at 510 and text
    where an MBR has partitions)."""
    # The same inputs make the same disk: the one the test boots and Glance gets.
    assert (disk_made / "disk.qcow2").read_bytes() == guest_image.disk.read_bytes()
    run = subprocess.run([str(release_venv / "bin" / "python"), "-c", NOVA_INSPECTION,
                          f"qcow2={guest_image.disk}", f"raw={disk_made / 'disk.raw'}",
                          f"aki={guest_image.kernel}"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    inspector, *found = run.stdout.splitlines()
    assert found[:2] == ["qcow2", "raw"]
    if inspector == "oslo_utils.imageutils.format_inspector":  # its GPT inspector reads MBRs
        assert found[2] == "refused: Image guest is unacceptable: Image does not pass safety check"
        assert "MBR PTE 0 has invalid boot flag" in run.stderr  # Nova's log: why
    else:  # Nova's own inspector (2024.1) knows no MBR: the kernel is raw to it
        assert (inspector, found[2]) == ("nova.image.format_inspector", "raw")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The metadata responder: QEMU runs it for each connection to METADATA:80 (guestfwd),
# the connection on its stdin and stdout.
RESPONDER = """import sys
request = sys.stdin.buffer.readline().split()
while sys.stdin.buffer.readline().strip():
    pass
body = {{b"/openstack/latest/meta_data.json": {meta!r}, b"/openstack/latest/user_data": {user!r}}}.get(request[1])
head = b"HTTP/1.0 200 OK" if body is not None else b"HTTP/1.0 404 Not Found"
body = body or b""
sys.stdout.buffer.write(head + b"\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
"""


class Booted:
    """The guest under QEMU (TCG) booted from its disk (vda; with KERNEL_BOOT from its
    kernel and initramfs, no vda) on a slirp NIC: its metadata from RESPONDER (with
    PUBLIC_KEY in public_keys, as Nova's, newline and all), ports 80 and 22 forwarded to
    127.0.0.1, each of DISKS a virtio disk (vdb, ...), CONFIG_DRIVE an IDE CD-ROM as
    libvirt gives Nova's on the pc machine type. ROOT: a copy of the image's disk booted
    and written to (default: the image's, written nowhere)."""

    def __init__(self, image: guest.Guest, workdir: Path, instance: str, hostname: str,
                 user_data: bytes, public_key: str = "", disks: tuple[Path, ...] = (),
                 kernel_boot: bool = False, config_drive: Path | None = None,
                 root: Path | None = None):
        responder = workdir / "metadata.py"
        meta = json.dumps({"uuid": instance, "hostname": f"{hostname}.novalocal", "name": hostname,
                           "public_keys": {"test": public_key} if public_key else {}})
        responder.write_text(RESPONDER.format(meta=meta.encode(), user=user_data))
        self.port, self.ssh_port = _free_port(), _free_port()
        self.log = workdir / "serial.log"
        self.monitor = workdir / "monitor"  # QEMU's human monitor: the ACPI power button
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nographic", "-no-reboot",
                "-monitor", f"unix:{self.monitor},server,nowait", "-serial", "stdio",
                # Booted from its disk, as Nova boots it (vda; snapshot: written nowhere);
                # KERNEL_BOOT: its kernel and initramfs given to QEMU, as Nova booted the
                # kernel and ramdisk images of the guest before (bench/guest_boot.py).
                *(["-kernel", str(image.kernel), "-initrd", str(image.initrd),
                   "-append", guest.COMMAND_LINE] if kernel_boot else
                  ["-drive", f"file={root},format=qcow2,if=virtio" if root else
                   f"file={image.disk},format=qcow2,if=virtio,snapshot=on"]),
                # restrict=on: the guest reaches nothing outside slirp but the forwards.
                "-netdev", f"user,id=n0,restrict=on,net={SLIRP_NET},"
                           f"hostfwd=tcp:127.0.0.1:{self.port}-:80,"
                           f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                           f"guestfwd=tcp:{METADATA}:80-cmd:python3 {responder}",
                "-device", "virtio-net-pci,netdev=n0"]
        for disk in disks:
            argv += ["-drive", f"file={disk},format=raw,if=virtio"]
        if config_drive:
            argv += ["-drive", f"file={config_drive},format=raw,if=ide,media=cdrom,readonly=on"]
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

    def ssh(self, key: Path | None, command: str, password: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """COMMAND over SSH as the image's user, with OpenSSH's client: by KEY, or by
        PASSWORD (given by an askpass program: no key offered)."""
        argv = ["ssh", "-F", "none", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-p", str(self.ssh_port)]
        env = dict(os.environ)
        if key is not None:
            argv += ["-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-i", str(key)]
        else:
            askpass = self.log.parent / "askpass"
            askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
            askpass.chmod(0o700)
            argv += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"]
            env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
        return subprocess.run(argv + [f"{guest.USER}@127.0.0.1", command], capture_output=True,
                              text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)

    def ssh_banner(self, timeout: float = 1) -> bool:
        """Whether the guest's SSH server sends its banner now. slirp accepts a forwarded
        connection before the guest listens: a client started then waits for a banner
        until its own timeout, long after the server is up."""
        try:
            with socket.create_connection(("127.0.0.1", self.ssh_port), timeout=timeout) as conn:
                return conn.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def wait_for_ssh(self, key: Path, timeout: float = 120) -> float:
        """Seconds since QEMU started when a login with KEY runs a command."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ssh_banner() and self.ssh(key, "true", timeout=10).returncode == 0:
                    return time.monotonic() - self.started
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"no SSH login with the key; the console says:\n{self.console()[-3000:]}")

    def type(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def press_power_button(self) -> None:
        with socket.socket(socket.AF_UNIX) as mon:
            mon.settimeout(30)
            mon.connect(str(self.monitor))
            mon.sendall(b"system_powerdown\n")
            # Its banner ends with a prompt; the next prompt comes once the command ran.
            # (Closed before, the monitor may drop the command: the button never pressed.)
            seen = b""
            while seen.count(b"(qemu) ") < 2:
                chunk = mon.recv(4096)
                if not chunk:
                    break
                seen += chunk

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _keypair(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "id_rsa"  # RSA: Tempest's validation.ssh_key_type default
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "Generated-by-Nova",
                    "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text()  # as Nova's: a newline at the end


def test_guest_boots_takes_dhcp_reads_metadata_and_serves(guest_image, tmp_path):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run scripts/test.sh")
    key, public = _keypair(tmp_path)
    times = []
    for run in range(3):
        instance, hostname = str(uuid.uuid4()), f"guest-{run}"
        user_data = f"#!/bin/sh\necho run {run}\n".encode()
        workdir = tmp_path / str(run)
        workdir.mkdir()
        vm = Booted(guest_image, workdir, instance, hostname, user_data, public_key=public)
        try:
            times.append(vm.wait_for(f"{guest.READY} "))
            console = vm.console()
            assert f"{guest.READY} {NIC}\n" in console.replace("\r", "")
            assert f"osception-guest: instance-id {instance}" in console
            assert f"osception-guest: 1 public key(s) for {guest.USER}" in console
            vm.wait_for("osception-guest: user data exited 0")  # a script: run, as CirrOS does
            assert f"\nrun {run}\n" in vm.console().replace("\r", "")
            vm.wait_for(f"{hostname} login:")
            with urllib.request.urlopen(f"http://127.0.0.1:{vm.port}/", timeout=30) as page:
                assert page.read().decode().split() == ["osception-guest", hostname, instance]
            if run == 0:  # the console login: CirrOS's user and password
                seen = len(vm.console())
                vm.type(guest.USER)
                vm.wait_for("Password: ", after=seen, timeout=60)
                vm.type(guest.PASSWORD)
                vm.wait_for("$ ", after=seen, timeout=60)
                seen = len(vm.console())
                vm.type("id -un; cat /run/user_data")
                vm.wait_for(f"echo run {run}", after=seen, timeout=60)
                assert f"\n{guest.USER}" in vm.console()[seen:].replace("\r", "")
            vm.wait_for_ssh(key)
            by_key = vm.ssh(key, "id -un; hostname; cat ~/.ssh/authorized_keys")
            assert by_key.returncode == 0, by_key.stderr
            assert by_key.stdout.split("\n")[:3] == [guest.USER, hostname, public.strip()]
        finally:
            vm.stop()
    sizes = {p.name: p.stat().st_size for p in (guest_image.kernel, guest_image.initrd)}
    print(f"\nguest {guest_image.version}: boot to ready {[round(t, 1) for t in times]} s, "
          f"median {statistics.median(times):.1f} s (QEMU TCG, -m 128); sizes {sizes}")


def test_the_power_button_powers_the_guest_off(guest_image, tmp_path):
    """As CirrOS: the ACPI power button powers the guest off at once. Nova's stop and
    libvirt-guests at a compute's shutdown press it, and would wait their timeouts (60 s,
    300 s) for a guest that ignores it."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run scripts/test.sh")
    vm = Booted(guest_image, tmp_path, str(uuid.uuid4()), "guest", b"")
    try:
        vm.wait_for(f"{guest.READY} ")
        vm.press_power_button()
        try:
            vm.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after the power button; its console:\n{vm.console()[-2000:]}")
    finally:
        vm.stop()


def test_tmp_is_on_the_disk(guest_image, tmp_path):
    """What is written to /tmp survives a power off, on the disk (as on CirrOS, whose
    root is its disk): Tempest's snapshot and shelve scenarios write a timestamp to
    scenario.target_dir (/tmp) and read it back from the server made of the snapshot."""
    key, public = _keypair(tmp_path)
    root = tmp_path / "root.qcow2"
    shutil.copyfile(guest_image.disk, root)  # what Nova's snapshot carries: the disk
    stamp = str(uuid.uuid4())
    # As the user, a script made executable (Tempest's metadata meter), then as root.
    for run, command in enumerate((f"printf '#!/bin/sh\\necho ran\\n' >/tmp/s.sh; chmod +x /tmp/s.sh; /tmp/s.sh; "
                                   f'sudo sh -c "echo {stamp} > /tmp/timestamp; sync"',
                                   "cat /tmp/timestamp; grep ' /tmp ' /proc/mounts")):
        workdir = tmp_path / str(run)
        workdir.mkdir()
        vm = Booted(guest_image, workdir, str(uuid.uuid4()), "stamp", b"", public_key=public, root=root)
        try:
            vm.wait_for_ssh(key)
            done = vm.ssh(key, command)
            assert done.returncode == 0, done.stderr
            if run == 0:
                assert done.stdout == "ran\n"
            # Pressed again every 20 s, as Nova's clean shutdown repeats it (a press can be
            # missed on a loaded machine); busybox init unmounts at shutdown (inittab).
            for _ in range(3):
                vm.press_power_button()
                try:
                    vm.proc.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    pass
            assert vm.proc.poll() is not None, vm.console()[-2000:]
        finally:
            vm.stop()
    stamped, mount = done.stdout.splitlines()
    assert stamped == stamp
    assert mount.split()[:3] == ["/dev/vda1", "/tmp", "vfat"]


def test_logins_are_cirros_ones(guest_image, tmp_path):
    """Over SSH: the password, the key of the metadata, a wrong password refused, root
    refused; sudo without a password, as on CirrOS."""
    key, public = _keypair(tmp_path)
    vm = Booted(guest_image, tmp_path, str(uuid.uuid4()), "logins", b"", public_key=public)
    try:
        vm.wait_for_ssh(key)
        by_password = vm.ssh(None, "id -un; sudo id -u", password=guest.PASSWORD)
        assert (by_password.returncode, by_password.stdout.split()) == (0, [guest.USER, "0"]), by_password.stderr
        assert vm.ssh(None, "true", password="wrong").returncode != 0
        root = subprocess.run(["ssh", "-F", "none", "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                               "-i", str(key), "-p", str(vm.ssh_port), "root@127.0.0.1", "true"],
                              capture_output=True, text=True, timeout=60)
        assert root.returncode != 0
    finally:
        vm.stop()


# Tempest's own RemoteClient (tempest/common/utils/linux/remote_client.py, of the default
# release's Tempest) against the guest: each of its methods that runs a command in the
# guest, and the commands its tests run themselves (scenario/manager.py's timestamp,
# api/compute's curl of the metadata, hostname, grep -c ^processor /proc/cpuinfo).
# With a config drive made by Nova's own ConfigDriveBuilder (mount_config_drive, as
# test_server_basic_ops calls it). Not run: renew_lease with dhclient or dhcpcd (the
# guest's DHCP client is udhcpc, as CirrOS's and Tempest's scenario.dhcp_client default)
# and the NetworkManager call (nmcli; not CirrOS's).
TEMPEST_DRIVER = """import json, sys
from tempest.common.utils.linux.remote_client import RemoteClient
from tempest.lib.common.utils import test_utils
from tempest.lib.common.utils.linux import remote_client as lib
from tempest.lib.exceptions import SSHExecCommandFailed

host, port, user, key_file, password, gateway, nic, metadata = sys.argv[1:]
PROLOGUE = "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin;"  # Tempest's ssh_shell_prologue default


def client(**auth):
    c = RemoteClient.__new__(RemoteClient)  # its __init__ reads tempest.conf; lib's takes the values
    lib.RemoteClient.__init__(c, host, user, ssh_timeout=60, connect_timeout=30,
                              ssh_shell_prologue=PROLOGUE, **auth)
    c.ssh_client.port = int(port)
    return c


by_key = client(pkey=open(key_file).read())
by_password = client(password=password)
by_password.validate_authentication()
by_key.validate_authentication()
c = by_key
out = {}
out["ping_host"] = c.ping_host(gateway)
out["get_disks"] = c.get_disks()
out["list_disks"] = c.list_disks()
out["boot_time"] = list(c.get_boot_time())[:6]
out["write_to_console"] = c.write_to_console("tempest was here")
out["mac"] = c.get_mac_address()
out["nic_by_mac"] = c.get_nic_name_by_mac(out["mac"])
out["nic_by_ip"] = c.get_nic_name_by_ip(nic)
out["ips"] = c.get_nic_ip_addresses("eth0", ip_version=4)
out["dns"] = c.get_dns_servers()
c.renew_lease(fixed_ip=nic, dhcp_client="udhcpc")
c.mount_config_drive()  # as the user: `blkid -L config-2 -o device`, then sudo mount on /mnt
out["config_drive"] = c.exec_command("cat /mnt/openstack/latest/meta_data.json")
c.unmount_config_drive()
c.mkdir("/mnt/stamp")
c.make_fs("vdb", fs="vfat")
c.mount("vdb", "/mnt/stamp")
c.exec_command('sudo sh -c "date > /mnt/stamp/timestamp; sync"')
out["timestamp"] = c.exec_command("sudo cat /mnt/stamp/timestamp")
c.umount("/mnt/stamp")


def until(check):
    # As scenario/manager.py's check_remote_connectivity: the listener starts in the
    # background, so the check is tried each second (up to validation.ping_timeout).
    answers = []

    def connect():
        try:
            answers.append(check())
            return True
        except SSHExecCommandFailed:
            return False

    assert test_utils.call_until_true(connect, 120, 1), check
    return answers[-1]


c.nc_listen_host(port=4444, protocol="udp")
out["udp"] = [until(lambda: c.udp_check("127.0.0.1", port=4444)).strip() for _ in range(2)]
c.nc_listen_host(port=4445, protocol="tcp")
out["tcp"] = until(lambda: c.nc_host("127.0.0.1", port=4445))
out["hostname"] = c.exec_command("hostname")
out["cpus"] = c.exec_command("grep -c ^processor /proc/cpuinfo")
out["ip_address"] = c.exec_command("ip address")
out["curl_version"] = c.exec_command("curl -V")
out["curl"] = c.exec_command(f"curl http://{metadata}/openstack/latest/meta_data.json")
out["sync"] = c.exec_command("sync")
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tempest_venv() -> Path:
    """The default release's Tempest, as `osception tempest` makes it (once per version,
    in the machine cache)."""
    from osception import releases, tempest
    from osception.devcloud.venv import cache_home

    return tempest.venv(releases.get(releases.DEFAULT_RELEASE), cache_home())


# Nova's config drive (nova/virt/configdrive.py) with Nova's defaults: ISO 9660 by
# genisoimage, labelled config-2; one file in it (argv: the drive, the file's text).
NOVA_CONFIG_DRIVE = """import sys
import nova.conf
nova.conf.CONF([], project="nova")
from nova.virt.configdrive import ConfigDriveBuilder
builder = ConfigDriveBuilder()
builder.mdfiles.append(("openstack/latest/meta_data.json", sys.argv[2]))
builder.make_drive(sys.argv[1])
"""


def test_tempests_remote_client_runs_its_commands_in_the_guest(guest_image, tempest_venv,
                                                               services_venv, tmp_path):
    key, public = _keypair(tmp_path)
    second = tmp_path / "vdb.img"
    second.write_bytes(b"\0" * (32 << 20))
    instance = str(uuid.uuid4())
    drive = tmp_path / "disk.config"
    subprocess.run([str(services_venv / "bin" / "python"), "-c", NOVA_CONFIG_DRIVE, str(drive),
                    json.dumps({"uuid": instance})], check=True, timeout=120)
    vm = Booted(guest_image, tmp_path, instance, "tempest", b"", public_key=public,
                disks=(second,), config_drive=drive)
    try:
        vm.wait_for_ssh(key)
        driver = tmp_path / "driver.py"
        driver.write_text(TEMPEST_DRIVER)
        run = subprocess.run([str(tempest_venv / "bin" / "python"), str(driver), "127.0.0.1",
                              str(vm.ssh_port), guest.USER, str(key), guest.PASSWORD, GATEWAY, NIC, METADATA],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.splitlines()[-1])
    finally:
        vm.stop()
    assert "1 packets received" in out["ping_host"]
    assert out["list_disks"] == ["vda", "vdb"]  # the second disk is vdb
    assert out["get_disks"].splitlines()[0].split()[:6] == ["NAME", "MAJ:MIN", "RM", "SIZE", "RO", "TYPE"]
    assert "tempest was here" in vm.console()
    assert out["mac"] == "52:54:00:12:34:56" and out["nic_by_mac"] == out["nic_by_ip"] == "eth0"
    assert out["ips"] == [f"{NIC}/24"]  # (and get_dns_servers ran: slirp with restrict=on offers none)
    assert out["timestamp"].strip() and out["udp"] == ["foolish", "foolish"]
    assert out["tcp"].strip() == "foolish"
    assert (out["hostname"].strip(), out["cpus"].strip()) == ("tempest", "1")
    assert f"inet {NIC}/24" in out["ip_address"] and out["curl_version"].startswith("curl")
    assert json.loads(out["curl"])["uuid"] == instance
    assert json.loads(out["config_drive"]) == {"uuid": instance}


class FakeImages:
    """What guest.upload asks of openstacksdk's image proxy, kept in a dict."""

    def __init__(self):
        self.images: dict[str, SimpleNamespace] = {}

    def find_image(self, name, ignore_missing=True):
        return self.images.get(name)

    def delete_image(self, image):
        del self.images[image.name]

    def create_image(self, name, *, filename, disk_format, container_format, visibility, sha256,
                     wait, **props):
        assert Path(filename).exists() and wait and visibility == "public"
        # openstacksdk's Image has this one as an attribute, the others in properties
        known = {k: props.pop(k) for k in ("os_admin_user",) if k in props}
        self.images[name] = SimpleNamespace(
            name=name, id=str(uuid.uuid4()), status="active", disk_format=disk_format,
            container_format=container_format, data=Path(filename).read_bytes(),
            properties={"owner_specified.openstack.sha256": sha256, **props}, **known)
        return self.images[name]


def test_upload_makes_one_cirros_like_disk_image_once(tmp_path):
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"QCOW2")
    g = guest.Guest("9.9", tmp_path / "vmlinuz", tmp_path / "initrd.gz", disk)
    conn = SimpleNamespace(image=FakeImages())
    assert guest.upload(conn, g) == [guest.NAME]
    (image,) = conn.image.images.values()
    assert (image.disk_format, image.container_format, image.data) == ("qcow2", "bare", b"QCOW2")
    # CirrOS's properties (the image it stands for); no kernel or ramdisk image
    cirros = next(i for i in config.DEFAULT_IMAGES if i.name == "cirros").properties
    assert {**image.properties, "os_admin_user": image.os_admin_user} == {
        **cirros, "owner_specified.openstack.sha256": hashlib.sha256(b"QCOW2").hexdigest()}

    assert guest.upload(conn, g) == []  # the same data: nothing made
    disk.write_bytes(b"QCOW2 2")
    assert guest.upload(conn, g) == [guest.NAME]
    assert list(conn.image.images) == [guest.NAME] and conn.image.images[guest.NAME].data == b"QCOW2 2"
    # An earlier guest's image of that name (the root disk of a kernel and ramdisk pair) is replaced.
    conn.image.images[guest.NAME].disk_format = conn.image.images[guest.NAME].container_format = "ami"
    assert guest.upload(conn, g) == [guest.NAME]
    assert conn.image.images[guest.NAME].disk_format == "qcow2"


def test_the_mbr_boots_one_active_fat_partition():
    code = bytes(range(256)) + bytes(184)  # 440 bytes, as syslinux's mbr.bin
    sector = guest.mbr(code, 2048, 49152)
    assert len(sector) == 512 and sector[:440] == code and sector[510:] == b"\x55\xaa"
    entries = [struct.unpack("<B3sB3sII", sector[446 + 16 * i:462 + 16 * i]) for i in range(4)]
    # Active, FAT16 (LBA), from sector 2048 (CHS 0/32/33 as fdisk writes it) for 49152 sectors.
    assert entries[0] == (0x80, bytes((32, 33, 0)), 0x0E, guest._chs(2048 + 49152 - 1), 2048, 49152)
    assert guest._chs(2048 + 49152 - 1) == bytes((47, 44, 3))  # cylinder 3, head 47, sector 44
    assert entries[1:] == [(0, bytes(3), 0, bytes(3), 0, 0)] * 3
    assert guest._chs(1024 * 255 * 63) == bytes((254, 0xFF, 0xFF))  # past cylinder 1023: the maximum
    with pytest.raises(DevcloudError, match="more than 440"):
        guest.mbr(bytes(441), 2048, 1)


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
    """What populate --local-guest does, against the release's Glance (which inspects
    what it is given): the format and properties are accepted, the data is what was built,
    a second upload makes nothing."""
    assert guest.upload(glance, guest_image) == [guest.NAME]
    (image,) = glance.image.images()
    assert (image.name, image.disk_format, image.container_format, image.status) == (
        guest.NAME, "qcow2", "bare", "active")
    assert (image.os_admin_user, image.kernel_id, image.ramdisk_id) == (guest.USER, None, None)
    assert glance.image.download_image(image).content == guest_image.disk.read_bytes()
    assert guest.upload(glance, guest_image) == []
