"""A guest image made on this machine from Debian packages only, for the local cloud
(where no CirrOS download is possible), that behaves as CirrOS does for Tempest: Debian
12's cloud kernel, unpacked from its package (not installed), and a small initramfs:
Debian's busybox, dropbear and netcat-traditional with the shared libraries they load,
busybox-static (setuid, for su and ping), the kernel's virtio (NIC, disk) and config
drive modules, a hand-written /init (guest/init.sh) and the commands Tempest's
RemoteClient runs that busybox lacks (guest/bin/).

The guest takes an address by DHCP, reads the OpenStack metadata when it answers
(prints the instance id, takes its hostname, installs its public keys for USER, keeps
the user data in /run/user_data), serves SSH (dropbear, host keys made at boot) and one
page on port 80 (busybox httpd), prints `osception-guest ready <ip>` on ttyS0, runs the
user data when it is a script (`#!`, as CirrOS does; its output on ttyS0) and gives a
login prompt there. USER logs in with CirrOS's password, on the console and over SSH,
or with a key of the metadata over SSH, and is root through `sudo` without a password.

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
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..config import DEFAULT_IMAGES
from .processes import DevcloudError
from .venv import cache_home

TEMPLATES = Path(str(resources.files(__package__) / "guest"))
# The kernel: the package Debian 12's cloud kernel meta-package depends on today.
KERNEL_META = "linux-image-cloud-amd64"
# The programs taken from Debian packages, by package: (path in the package, and in the
# guest). Each comes with the shared libraries it loads, from its package's Depends
# (recursively), as those packages' own loader resolves them. Debian's dynamic busybox
# is the userland: its shell runs commands by PATH, so guest/bin's nc is found before
# the applet (busybox-static's shell runs its own applets first, whatever PATH says).
BUSYBOX = "bin/busybox"
PROGRAMS = {"busybox": (BUSYBOX,),
            "dropbear-bin": ("usr/sbin/dropbear", "usr/bin/dropbearkey"),
            # nc with UDP and -e, which Tempest's checks use (guest/bin/nc)
            "netcat-traditional": ("bin/nc.traditional",)}
# What the guest needs loaded, by kernel config symbol: a module (=m) comes with what
# its modinfo says it depends on; a built-in one (=y) needs nothing. The NIC; the
# disks (vda, and vdb when Nova attaches a second); the config drive, an IDE CD-ROM
# (libvirt's on the pc machine type) with an ISO 9660 or VFAT file system; VFAT for
# the file system Tempest makes on a volume (mkfs -t vfat), with its code pages. The
# ACPI power button and its input events, for busybox's acpid (ACPI_POWER_BUTTON).
DRIVERS = {"virtio_pci": "CONFIG_VIRTIO_PCI", "virtio_net": "CONFIG_VIRTIO_NET",
           "virtio_blk": "CONFIG_VIRTIO_BLK", "ata_piix": "CONFIG_ATA_PIIX",
           "sr_mod": "CONFIG_BLK_DEV_SR", "isofs": "CONFIG_ISO9660_FS",
           "vfat": "CONFIG_VFAT_FS", "nls_cp437": "CONFIG_NLS_CODEPAGE_437",
           "nls_ascii": "CONFIG_NLS_ASCII", "button": "CONFIG_ACPI_BUTTON",
           "evdev": "CONFIG_INPUT_EVDEV"}
# What busybox's acpid runs when the ACPI power button is pressed: the guest powers off,
# as CirrOS does. Nova's stop and libvirt-guests at a compute's shutdown press it, and
# wait (Nova's shutdown_timeout, 60 s; libvirt-guests' SHUTDOWN_TIMEOUT, 300 s each,
# Debian's default) for a guest that ignores it.
ACPI_POWER_BUTTON = "etc/acpi/PWRF/00000080"
# The applets that need root from any user: `su` (guest/bin/sudo; the dynamic busybox has
# none) and ping (busybox 1.35 has no unprivileged ICMP sockets), from busybox-static,
# installed setuid root (its other applets would drop the privilege).
SETUID_BUSYBOX = "busybox-static"
SETUID_APPLETS = ("su", "ping", "ping6")
# Glance's properties of CirrOS (config.DEFAULT_IMAGES): its user, disk and NIC models.
CIRROS = next(image for image in DEFAULT_IMAGES if image.properties.get("os_distro") == "cirros")
# The login, on the console and over SSH: CirrOS's user and its published password (a
# test image's password, as CirrOS's is). Root has no login.
USER = CIRROS.properties["os_admin_user"]
PASSWORD = "gocubsgo"
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
PROPERTIES = {**CIRROS.properties, "os_command_line": COMMAND_LINE}
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


def modules(root: Path, version: str, drivers: dict[str, str] = DRIVERS) -> list[Path]:
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

    for name, symbol in drivers.items():
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
SETUID = 0o4000
SCRIPTS = TEMPLATES / "bin"  # the commands busybox lacks, into /bin


def initramfs(files: dict[str, tuple[int, bytes]], applets: list[str], kos: list[Path],
              password_hash: str, user: str = USER) -> bytes:
    """The gzip'd cpio: FILES (path -> mode, data: busybox and the other programs of
    PROGRAMS with their libraries, the setuid busybox), a link per applet in /bin (made
    here: `busybox --install` at boot costs most of a second under TCG), guest/bin's
    commands, the modules, /init and its files. USER's password is PASSWORD_HASH;
    root's is empty, for `su`, but root logs in nowhere (no tty in /etc/securetty;
    dropbear -w)."""
    scripts = sorted(p for p in SCRIPTS.iterdir() if p.is_file())
    entries = [(d, DIR, b"", 0) for d in ("bin", "dev", "etc", "lib", "lib/modules", "proc",
                                           "sys", "run", "root", "home", f"home/{user}", "var")]
    entries += [("tmp", 0o041777, b"", 0),
                ("dev/console", CHAR, b"", 5 << 8 | 1),  # before devtmpfs: init's stdio
                ("var/run", LINK, b"../run", 0),
                ("sbin", LINK, b"bin", 0),  # Tempest's /sbin/... and PATH=$PATH:/sbin
                ("init", EXEC, (TEMPLATES / "init.sh").read_bytes(), 0),
                ("etc/udhcpc.script", EXEC, (TEMPLATES / "udhcpc.script").read_bytes(), 0),
                ("etc/inittab", FILE, (TEMPLATES / "inittab").read_bytes(), 0),
                ("etc/modules", FILE, "".join(f"{ko.stem}\n" for ko in kos).encode(), 0),
                ("etc/passwd", FILE, f"root:x:0:0:root:/root:/bin/sh\n"
                                     f"{user}:x:1000:1000:{user}:/home/{user}:/bin/sh\n".encode(), 0),
                ("etc/group", FILE, f"root:x:0:\n{user}:x:1000:\n".encode(), 0),
                ("etc/shadow", 0o100600, f"root::1::::::\n{user}:{password_hash}:1::::::\n".encode(), 0),
                ("etc/securetty", FILE, b"", 0),  # root logs in on no console
                ("etc/shells", FILE, b"/bin/sh\n", 0),  # dropbear and su check the shell
                ("etc/issue", FILE, b"osception guest (Debian kernel, busybox, dropbear) \\l\n\n", 0),
                ("etc/acpi", DIR, b"", 0), ("etc/acpi/PWRF", DIR, b"", 0),
                (ACPI_POWER_BUTTON, EXEC, b"#!/bin/sh\npoweroff\n", 0)]
    have = {name for name, *_ in entries}
    for path, (mode, data) in sorted(files.items()):
        parents = [str(p) for p in reversed(Path(path).parents) if str(p) != "."]
        entries += [(d, DIR, b"", 0) for d in parents if d not in have]
        have.update(parents)
        entries.append((path, mode, data, 0))
    scripted = {p.name for p in scripts}
    entries += [(f"bin/{name}", LINK, SETUID_BUSYBOX.encode() if name in SETUID_APPLETS else b"busybox", 0)
                for name in sorted(set(applets) | set(SETUID_APPLETS))
                if name != "busybox" and name not in scripted]
    entries += [(f"bin/{p.name}", EXEC, p.read_bytes(), 0) for p in scripts]
    entries += [(f"lib/modules/{ko.stem}.ko", FILE, ko.read_bytes(), 0) for ko in kos]
    return gzip.compress(_cpio(entries), compresslevel=9, mtime=0)


def _package_depends(deb: Path) -> list[str]:
    """The packages DEB depends on (Depends and Pre-Depends; the first of alternatives)."""
    fields = _run(["dpkg-deb", "-f", str(deb), "Pre-Depends", "Depends"])
    names = []
    for line in fields.splitlines():
        for dep in line.partition(":")[2].split(","):
            name = dep.split("|")[0].split("(")[0].strip().split(":")[0]
            if name:
                names.append(name)
    return names


def unpack(packages, debs: Path, tree: Path) -> Path:
    """PACKAGES and every package they depend on, recursively, extracted into TREE."""
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        deb = download(package, debs)
        extract(deb, tree)
        todo += _package_depends(deb)
    return tree


def loader(tree: Path) -> list[str]:
    """The command prefix that runs a program of TREE (made by unpack) with TREE's own
    loader and libraries (libc6's, and what the program's packages depend on)."""
    libdirs = ":".join(str(tree / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))
    return [str(tree / "lib64" / "ld-linux-x86-64.so.2"), "--library-path", libdirs]


def programs(debs: Path, tmp: Path) -> tuple[dict[str, tuple[int, bytes]], list[str]]:
    """PROGRAMS and the shared libraries each loads: path in the guest -> (mode, data).
    Their packages and what those depend on are extracted into one tree; the libraries
    are what that tree's own loader (libc6's) lists for each program, all from the tree.
    Also busybox's applets, as it lists them (run by that loader)."""
    tree = unpack(PROGRAMS, debs, tmp / "programs")
    run = loader(tree)
    out: dict[str, tuple[int, bytes]] = {}
    for paths in PROGRAMS.values():
        for path in paths:
            out[path] = (EXEC, (tree / path).read_bytes())
            listed = _run([*run, "--list", str(tree / path)])
            for lib in re.findall(r"(\S+) \(0x", listed):
                if lib.startswith("linux-vdso"):
                    continue  # the kernel's
                lib = Path(lib)
                if tree not in lib.parents:
                    raise DevcloudError(f"{path} loads {lib}, which no package it depends on "
                                        "ships")
                out[str(lib.relative_to(tree))] = (EXEC, lib.read_bytes())
    applets = _run([*run, str(tree / BUSYBOX), "--list"]).split()
    return out, applets


def password_hash(busybox: Path, password: str = PASSWORD) -> str:
    """PASSWORD as /etc/shadow has it (SHA-512 crypt), by BUSYBOX's mkpasswd (busybox-static:
    an amd64 binary that runs here as is). A fixed salt keeps the initramfs reproducible;
    the password is a published one anyway."""
    return _run([str(busybox), "mkpasswd", "-m", "sha512", password, "osception"]).strip()


def build(dest: Path | None = None, user: str = USER) -> Guest:
    """Make (or refresh) the guest in DEST (default: the machine cache). The packages
    are downloaded once; the initramfs is remade from them (a second or two) and
    replaces the cached one when its bytes differ, so a changed /init or script reaches
    the next upload (whose sha256 then differs)."""
    dest = dest or cache_dir()
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    kernel = dest / f"vmlinuz-{version}"
    initrd = dest / f"initrd-{version}.gz"
    debs = dest / "debs"
    with tempfile.TemporaryDirectory(prefix="osception-guest-") as tmp:
        root = extract(download(package, debs), Path(tmp) / "kernel")
        static = extract(download(SETUID_BUSYBOX, debs), Path(tmp) / "static") / "bin" / "busybox"
        files, applets = programs(debs, Path(tmp))
        files[f"bin/{SETUID_BUSYBOX}"] = (EXEC | SETUID, static.read_bytes())
        data = initramfs(files, applets, modules(root, version), password_hash(static), user)
        _install(root / "boot" / f"vmlinuz-{version}", kernel)
    if not initrd.exists() or initrd.read_bytes() != data:
        _write(initrd, data)
    root = dest / "root.img"
    if not root.exists() or root.read_bytes() != ROOT_DISK:
        _write(root, ROOT_DISK)
    return Guest(version, kernel, initrd, root)


def _write(path: Path, data: bytes) -> None:
    """Replace PATH at once (another build may be reading it: the cache is the machine's)."""
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_bytes(data)
    os.replace(part, path)


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
