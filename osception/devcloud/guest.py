"""A guest image made on this machine from Debian packages only, for the local cloud
(where no CirrOS download is possible): Debian 12's cloud kernel, unpacked from its
package (not installed), and a tiny initramfs of busybox-static, the kernel's virtio
network modules and a hand-written /init (guest/init.sh).

The guest takes an address by DHCP, reads the OpenStack metadata when it answers
(prints the instance id, keeps the user data in /run/user_data), serves one page on
port 80 (busybox httpd), prints `osception-guest ready <ip>` on ttyS0, runs the user
data when it is a script (`#!`, as CirrOS does; its output on ttyS0) and gives a login
prompt there: user USER, no password (root is locked; there is no network login).

For Nova it is three Glance images (IMAGES): the kernel (aki), the ramdisk (ari) and a
tiny root disk (ami) whose kernel_id and ramdisk_id name them. The libvirt driver boots
such an instance with <kernel>/<initrd> and the image's os_command_line
(nova/virt/libvirt/driver.py, _set_guest_for_inst_kernel): no boot loader, so no
partitioned disk image to build (that would need a loop device or syslinux and mtools).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .processes import DevcloudError
from .venv import cache_home

TEMPLATES = Path(str(resources.files(__package__) / "guest"))
# The kernel: the package Debian 12's cloud kernel meta-package depends on today.
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
# What the guest needs loaded for its NIC, by kernel config symbol: a module (=m) comes
# with what its modinfo says it depends on; a built-in one (=y) needs nothing.
DRIVERS = {"virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_net": "CONFIG_VIRTIO_NET"}
# The console login (Glance's os_admin_user); no password, root locked.
USER = "osception"
# Nova boots a kernel_id image with this command line (else root=/dev/vda on tty0, ttyS0
# and hvc0: the last one would be /dev/console).
COMMAND_LINE = "console=ttyS0"
READY = "osception-guest ready"


@dataclass(frozen=True)
class Guest:
    """The built image: its kernel, initramfs and root disk, in the machine cache."""

    version: str  # the kernel's, e.g. 6.1.0-56-cloud-amd64
    kernel: Path
    initrd: Path
    root: Path  # ROOT_DISK


# The Glance images of a guest, made in this order: (name, file of Guest, disk and
# container format). Nova boots the last; its kernel_id and ramdisk_id name the others.
IMAGES = (
    ("osception-guest-kernel", "kernel", "aki"),
    ("osception-guest-ramdisk", "initrd", "ari"),
    ("osception-guest", "root", "ami"),
)
NAME = IMAGES[-1][0]
PROPERTIES = {"os_distro": "osception-guest", "os_admin_user": USER,
              "os_command_line": COMMAND_LINE, "hw_vif_model": "virtio", "hw_disk_bus": "virtio"}
# The root disk Nova gives the instance: the guest never reads it (it runs from RAM).
ROOT_DISK = b"\0" * 512


def cache_dir() -> Path:
    return cache_home() / "guest"


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DevcloudError(f"{argv[0]} not found: the guest image is made with Debian's "
                            "apt-get and dpkg-deb") from None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DevcloudError(f"{' '.join(argv)} failed: {last}")
    return done.stdout


def kernel_package() -> str:
    """The versioned kernel package the meta-package depends on (apt-get update first
    when apt does not know it yet)."""
    for attempt in (1, 2):
        try:
            out = _run(["apt-cache", "depends", KERNEL_META])
        except DevcloudError:
            out = ""
        found = re.findall(r"Depends: (linux-image-\S+-cloud-amd64)", out)
        if found:
            return found[0]
        if attempt == 1:
            _run(["apt-get", "update", "-qq"])
    raise DevcloudError(f"apt knows no {KERNEL_META}: is Debian's main archive in "
                        "/etc/apt/sources.list?")


def download(package: str, debs: Path) -> Path:
    """The package's .deb in the cache (apt-get download, once)."""
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{package}_*.deb"))
    if not have:
        _run(["apt-get", "download", "-q", package], cwd=debs)
        have = sorted(debs.glob(f"{package}_*.deb"))
    if not have:
        raise DevcloudError(f"apt-get download {package} left no .deb in {debs}")
    return have[-1]


def extract(deb: Path, into: Path) -> Path:
    _run(["dpkg-deb", "-x", str(deb), str(into)])
    return into


def kernel_config(root: Path, version: str) -> dict[str, str]:
    text = (root / "boot" / f"config-{version}").read_text()
    return dict(re.findall(r"^(CONFIG_\w+)=(.*)$", text, re.M))


def _depends(ko: Path) -> list[str]:
    """The module's dependencies, from its .modinfo section (what depmod reads; the
    package has no modules.dep: depmod makes it when the package is installed)."""
    found = re.search(rb"\0depends=([^\0]*)\0", ko.read_bytes())
    return [d for d in found.group(1).decode().split(",") if d] if found else []


def modules(root: Path, version: str) -> list[Path]:
    """The .ko files DRIVERS need, dependencies first."""
    config = kernel_config(root, version)
    base = root / "lib" / "modules" / version
    by_name = {p.stem.replace("-", "_"): p for p in (base / "kernel").rglob("*.ko")}
    builtin = {Path(line).stem.replace("-", "_")
               for line in (base / "modules.builtin").read_text().split()}
    order: list[Path] = []

    def add(name: str) -> None:
        name = name.replace("-", "_")
        if name in builtin or by_name.get(name) in order:
            return
        if name not in by_name:
            raise DevcloudError(f"kernel {version} has no module {name}")
        for dep in _depends(by_name[name]):
            add(dep)
        order.append(by_name[name])

    for name, symbol in DRIVERS.items():
        state = config.get(symbol)
        if state == "m":
            add(name)
        elif state != "y":
            raise DevcloudError(f"kernel {version} has {symbol} unset: no {name} for the guest")
    return order


def _cpio(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio archive, newc format (what the kernel unpacks): (name, mode, data, rdev)
    each, owned by root, mtime 0."""
    out = io.BytesIO()

    def entry(ino: int, name: str, mode: int, data: bytes, rdev: int = 0) -> None:
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF,
                  len(name) + 1, 0)
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries, 1):
        entry(ino, name, mode, data, rdev)
    entry(0, "TRAILER!!!", 0, b"")
    return out.getvalue()


DIR, FILE, EXEC, LINK, CHAR = 0o040755, 0o100644, 0o100755, 0o120777, 0o020600


def initramfs(busybox: bytes, applets: list[str], kos: list[Path], user: str = USER) -> bytes:
    """The gzip'd cpio: busybox and a link per applet in /bin (made here: `busybox
    --install` at boot costs most of a second under TCG), the modules, /init and its
    files."""
    entries = [(d, DIR, b"", 0) for d in ("bin", "dev", "etc", "lib", "lib/modules", "proc",
                                           "sys", "run", "root", "home", f"home/{user}")]
    entries += [("tmp", 0o041777, b"", 0),
                ("dev/console", CHAR, b"", 5 << 8 | 1),  # before devtmpfs: init's stdio
                ("bin/busybox", EXEC, busybox, 0),
                ("init", EXEC, (TEMPLATES / "init.sh").read_bytes(), 0),
                ("etc/udhcpc.script", EXEC, (TEMPLATES / "udhcpc.script").read_bytes(), 0),
                ("etc/inittab", FILE, (TEMPLATES / "inittab").read_bytes(), 0),
                ("etc/modules", FILE, "".join(f"{ko.stem}\n" for ko in kos).encode(), 0),
                ("etc/passwd", FILE, f"root:x:0:0:root:/root:/bin/sh\n"
                                     f"{user}:x:1000:1000:{user}:/home/{user}:/bin/sh\n".encode(), 0),
                ("etc/group", FILE, f"root:x:0:\n{user}:x:1000:\n".encode(), 0),
                # An empty password field: busybox login lets the user in without one.
                ("etc/shadow", 0o100600, f"root:*:1::::::\n{user}::1::::::\n".encode(), 0),
                ("etc/issue", FILE, b"osception guest (Debian kernel, busybox) \\l\n\n", 0)]
    entries += [(f"bin/{name}", LINK, b"busybox", 0) for name in applets if name != "busybox"]
    entries += [(f"lib/modules/{ko.stem}.ko", FILE, ko.read_bytes(), 0) for ko in kos]
    return gzip.compress(_cpio(entries), compresslevel=9, mtime=0)


def build(dest: Path | None = None, user: str = USER) -> Guest:
    """Make (or refresh) the guest in DEST (default: the machine cache). The packages
    are downloaded once; the initramfs is remade from them (well under a second)."""
    dest = dest or cache_dir()
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    kernel = dest / f"vmlinuz-{version}"
    initrd = dest / f"initrd-{version}.gz"
    with tempfile.TemporaryDirectory(prefix="osception-guest-") as tmp:
        root = extract(download(package, dest / "debs"), Path(tmp) / "kernel")
        bb = extract(download(BUSYBOX, dest / "debs"), Path(tmp) / "busybox") / "bin" / "busybox"
        applets = _run([str(bb), "--list"]).split()  # a static amd64 binary, as this machine
        data = initramfs(bb.read_bytes(), applets, modules(root, version), user)
        _install(root / "boot" / f"vmlinuz-{version}", kernel)
    if not initrd.exists() or initrd.read_bytes() != data:
        initrd.write_bytes(data)
    root = dest / "root.img"
    if not root.exists() or root.read_bytes() != ROOT_DISK:
        root.write_bytes(ROOT_DISK)
    return Guest(version, kernel, initrd, root)


def _install(src: Path, dst: Path) -> None:
    if not dst.exists() or _sha(dst) != _sha(src):
        shutil.copyfile(src, dst)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload(conn, g: Guest) -> list[str]:
    """The guest's Glance images (IMAGES, public), uploaded from this machine: for a
    cloud on this machine, where Glance has nothing to fetch from. Idempotent: an image
    is kept while its data is the same (openstacksdk's sha256 property); a changed
    kernel or ramdisk brings a new root image pointing at it. Returns the names made."""
    made: list[str] = []
    ids: dict[str, str] = {}
    for name, attr, fmt in IMAGES:
        path = getattr(g, attr)
        props = {} if attr != "root" else {**PROPERTIES, "kernel_id": ids["kernel"],
                                           "ramdisk_id": ids["initrd"]}
        image = conn.image.find_image(name, ignore_missing=True)
        if image is not None and (image.status != "active" or _stale(image, path, props)):
            conn.image.delete_image(image)
            image = None
        if image is None:
            image = conn.image.create_image(name, filename=str(path), disk_format=fmt,
                                            container_format=fmt, visibility="public",
                                            sha256=_sha(path), wait=True, **props)
            made.append(name)
        ids[attr] = image.id
    return made


def _stale(image, path: Path, props: dict[str, str]) -> bool:
    have = image.properties or {}
    return (have.get("owner_specified.openstack.sha256") != _sha(path)
            or any(str(have.get(k, getattr(image, k, None))) != v for k, v in props.items()))
