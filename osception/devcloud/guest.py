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

For Nova it is one whole-disk image, as CirrOS is (NAME, qcow2): an MBR partition
table with syslinux's boot code, one bootable FAT partition holding the kernel, the
initramfs and syslinux (its syslinux.cfg gives the kernel COMMAND_LINE), made in files
with Debian's dosfstools, mtools and syslinux and converted by qemu-img, those tools
unpacked from their packages as the guest's programs are (no loop device, no mount, no
root). Not a kernel (aki) and ramdisk (ari) image pair: Nova's pre_live_migration
fetches those through its deep format inspection, where oslo.utils takes a bzImage's
legacy boot sector (0xAA55 at 510) for an MBR whose partition entries are that sector's
text, and refuses it (ImageUnacceptable: "Image does not pass safety check"), so such a
guest never live-migrates with block migration (tests/test_guest_image.py shows both).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import struct
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
# none), ping (busybox 1.35 has no unprivileged ICMP sockets) and findfs (guest/bin/blkid:
# Tempest's `blkid -L config-2` runs as the user, and block devices are root's alone),
# from busybox-static, installed setuid root (its other applets would drop the privilege).
SETUID_BUSYBOX = "busybox-static"
SETUID_APPLETS = ("su", "ping", "ping6", "findfs")
# Glance's properties of CirrOS (config.DEFAULT_IMAGES): its user, disk and NIC models.
CIRROS = next(image for image in DEFAULT_IMAGES if image.properties.get("os_distro") == "cirros")
# The login, on the console and over SSH: CirrOS's user and its published password (a
# test image's password, as CirrOS's is). Root has no login.
USER = CIRROS.properties["os_admin_user"]
PASSWORD = "gocubsgo"
# The kernel's command line (syslinux.cfg): the console on the first serial port, where
# Nova's console log and the test read it.
COMMAND_LINE = "console=ttyS0"
READY = "osception-guest ready"
# What makes the disk, run from its Debian package unpacked with what it depends on (the
# packages of this machine's apt sources, so of its own Debian release): by package, the
# program's path in it. syslinux's installer writes its loader into the FAT through
# mtools' mcopy and mattrib, which it runs by PATH.
TOOLS = {"dosfstools": "sbin/mkfs.fat", "mtools": "usr/bin/mcopy",
         "syslinux": "usr/bin/syslinux", "qemu-utils": "usr/bin/qemu-img"}
# syslinux's MBR boot code (the disk's first 440 bytes): it boots the active partition.
MBR_CODE = ("syslinux-common", "usr/lib/syslinux/mbr/mbr.bin")
# The FAT's label, by which /init finds the guest's own disk (vda, or vdb when rescued)
# and keeps /tmp on it (guest/init.sh), and the room left there for it: the guest runs
# from RAM, but what a test writes to /tmp survives a reboot, a snapshot and a shelve, as
# on CirrOS, whose root is its disk. (Empty room costs nothing in the qcow2.)
DISK_LABEL = "OSCEPTION"
TMP_MIB = 32
SECTOR = 512
PARTITION_START = 2048  # sectors: 1 MiB, where fdisk and sfdisk start the first one
FAT16_LBA = 0x0E  # the partition's type
# The FAT's own fixed values (mkfs.fat --invariant) and its files' times: the same inputs
# make the same disk, so an unchanged guest is not uploaded again.
SOURCE_DATE_EPOCH = "946684800"  # 2000-01-01, FAT's dates start in 1980


@dataclass(frozen=True)
class Guest:
    """The built guest in the machine cache: its kernel and initramfs, and the disk
    image that boots them (what Glance gets)."""

    version: str  # the kernel's, e.g. 6.1.0-56-cloud-amd64
    kernel: Path
    initrd: Path
    disk: Path  # qcow2


# The Glance image: CirrOS's formats and properties. The guest runs from RAM: the disk
# is read only by the boot loader.
NAME = "osception-guest"
DISK_FORMAT, CONTAINER_FORMAT = "qcow2", "bare"
PROPERTIES = dict(CIRROS.properties)


def cache_dir() -> Path:
    return cache_home() / "guest"


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
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
    # (/mnt: where Tempest mounts the config drive and the volumes it attaches, as on CirrOS.)
    entries = [(d, DIR, b"", 0) for d in ("bin", "dev", "etc", "lib", "lib/modules", "proc",
                                           "sys", "run", "root", "home", f"home/{user}", "var",
                                           "mnt", "media")]
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


def syslinux_cfg(command_line: str = COMMAND_LINE) -> str:
    """The boot loader's configuration: the kernel and initramfs of its partition, at
    once. SERIAL: its own lines on ttyS0 too, so a console log shows the loader ran."""
    return ("SERIAL 0 115200\nDEFAULT guest\nLABEL guest\n  LINUX /vmlinuz\n"
            f"  INITRD /initrd.gz\n  APPEND {command_line}\n")


def _chs(lba: int) -> bytes:
    """LBA as an MBR's cylinder-head-sector bytes, as fdisk writes them (255 heads, 63
    sectors a track; past cylinder 1023, the largest value: LBA is what counts)."""
    cylinder, rest = divmod(lba, 255 * 63)
    if cylinder > 1023:
        return bytes((254, 0xFF, 0xFF))
    head, sector = divmod(rest, 63)
    return bytes((head, sector + 1 | (cylinder >> 2) & 0xC0, cylinder & 0xFF))


def mbr(code: bytes, start: int, sectors: int) -> bytes:
    """The disk's first sector: the boot CODE (440 bytes), no disk signature, one
    partition (active, FAT16_LBA) of SECTORS from sector START, the 0xAA55 signature."""
    if len(code) > 440:
        raise DevcloudError(f"the MBR boot code is {len(code)} bytes, more than 440")
    entry = (b"\x80" + _chs(start) + bytes((FAT16_LBA,)) + _chs(start + sectors - 1)
             + struct.pack("<II", start, sectors))
    return code.ljust(446, b"\0") + entry + b"\0" * 48 + b"\x55\xaa"


def disk_image(kernel: Path, initrd: Path, tools: Path, mbr_code: bytes, work: Path) -> Path:
    """The guest's whole disk, as qcow2 in WORK: a FAT partition with KERNEL, INITRD,
    syslinux.cfg and syslinux, after an MBR with MBR_CODE; made by TOOLS' programs (a tree
    made by unpack) in files, the partition made apart, then placed after the MBR."""
    run = loader(tools)
    env = {**os.environ, "PATH": f"{tools / 'usr' / 'bin'}:{os.environ.get('PATH', '')}",
           "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "MTOOLS_SKIP_CHECK": "1"}
    files = {"vmlinuz": kernel, "initrd.gz": initrd, "syslinux.cfg": work / "syslinux.cfg"}
    files["syslinux.cfg"].write_text(syslinux_cfg())
    # The files, syslinux's loader (under 200 KiB) and the FAT's own tables, and /tmp.
    size = sum(f.stat().st_size for f in files.values())
    mib = ((size + size // 16) >> 20) + 2 + TMP_MIB
    part = work / "partition.img"
    # -h: the sectors before the partition, which the FAT's boot sector adds to find its
    # own; -g: the MBR's geometry (_chs).
    _run([*run, str(tools / TOOLS["dosfstools"]), "-C", "-F", "16", "-h", str(PARTITION_START),
          "-g", "255/63", "--invariant", "-n", DISK_LABEL, str(part), str(mib << 10)], env=env)
    for name, path in files.items():
        _run([*run, str(tools / TOOLS["mtools"]), "-i", str(part), str(path), f"::/{name}"], env=env)
    _run([*run, str(tools / TOOLS["syslinux"]), "--install", str(part)], env=env)
    raw = work / "disk.raw"
    with raw.open("wb") as out:
        out.write(mbr(mbr_code, PARTITION_START, part.stat().st_size // SECTOR).ljust(
            PARTITION_START * SECTOR, b"\0"))
        with part.open("rb") as src:
            shutil.copyfileobj(src, out)
    qcow2 = work / "disk.qcow2"
    _run([*run, str(tools / TOOLS["qemu-utils"]), "convert", "-f", "raw", "-O", "qcow2",
          str(raw), str(qcow2)], env=env)
    return qcow2


def build(dest: Path | None = None, user: str = USER) -> Guest:
    """Make (or refresh) the guest in DEST (default: the machine cache). The packages
    are downloaded once; the initramfs and the disk are remade from them (seconds) and
    replace the cached ones when their bytes differ, so a changed /init or script
    reaches the next upload (whose sha256 then differs)."""
    dest = dest or cache_dir()
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    kernel = dest / f"vmlinuz-{version}"
    initrd = dest / f"initrd-{version}.gz"
    disk = dest / f"disk-{version}.qcow2"
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
        tools = unpack([*TOOLS, MBR_CODE[0]], debs, Path(tmp) / "tools")
        made = disk_image(kernel, initrd, tools, (tools / MBR_CODE[1]).read_bytes(), Path(tmp))
        _install(made, disk)
    return Guest(version, kernel, initrd, disk)


def _write(path: Path, data: bytes) -> None:
    """Replace PATH at once (another build may be reading it: the cache is the machine's)."""
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_bytes(data)
    os.replace(part, path)


def _install(src: Path, dst: Path) -> None:
    if not dst.exists() or _sha(dst) != _sha(src):
        _write(dst, src.read_bytes())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload(conn, g: Guest) -> list[str]:
    """The guest's Glance image (NAME, public), uploaded from this machine: for a cloud
    on this machine, where Glance has nothing to fetch from. Idempotent: the image is
    kept while its data and properties are the same (openstacksdk's sha256 property).
    Returns the names made."""
    image = conn.image.find_image(NAME, ignore_missing=True)
    if image is not None and image.status == "active" and not _stale(image, g.disk):
        return []
    if image is not None:
        conn.image.delete_image(image)
    conn.image.create_image(NAME, filename=str(g.disk), disk_format=DISK_FORMAT,
                            container_format=CONTAINER_FORMAT, visibility="public",
                            sha256=_sha(g.disk), wait=True, **PROPERTIES)
    return [NAME]


def _stale(image, path: Path) -> bool:
    have = image.properties or {}
    return ((image.disk_format, image.container_format) != (DISK_FORMAT, CONTAINER_FORMAT)
            or have.get("owner_specified.openstack.sha256") != _sha(path)
            or any(str(have.get(k, getattr(image, k, None))) != v for k, v in PROPERTIES.items()))
