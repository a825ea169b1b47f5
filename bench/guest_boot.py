"""The local cloud's guest: boot to SSH-ready under QEMU TCG, the median of N boots.

    python bench/guest_boot.py [--boots 5]

Each boot is the slow test's (tests/test_guest_image.py, Booted): the guest of the
machine cache (`osception devcloud guest`; built when missing) booted from its disk
(BIOS, syslinux), `-accel tcg -m 128`, a slirp NIC whose metadata responder hands out a
fresh RSA key as Nova's public_keys, a second virtio disk. The time from QEMU's start to
the first SSH login with that key that runs a command (OpenSSH's client, tried every
0.2 s: the key comes from the metadata, so this is ready for Tempest's validation). The
guest's own uptime at that login splits the time between QEMU's firmware and boot loader
and the guest. Side by side, after each: the same kernel and initramfs given to QEMU
(-kernel, -initrd), as Nova booted the guest's kernel and ramdisk images before it was
one disk; the ratio of the medians is the boot loader's cost. One boot at a time. Not a
test: timings vary with the machine and its load (printed); the goal is a median under
10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from osception.devcloud import guest  # noqa: E402
from tests.test_guest_image import Booted, _keypair  # noqa: E402


def boot(image: guest.Guest, work: Path, public: str, key: Path, kernel_boot: bool):
    """(seconds to the SSH login, the guest's uptime then, the load before)."""
    work.mkdir()
    (work / "vdb.img").write_bytes(b"\0" * (8 << 20))
    load = os.getloadavg()[0]
    vm = Booted(image, work, str(uuid.uuid4()), "bench", b"", public_key=public,
                disks=(work / "vdb.img",), kernel_boot=kernel_boot)
    try:
        ssh = vm.wait_for_ssh(key)
        uptime = float(vm.ssh(key, "cut -d' ' -f1 /proc/uptime").stdout)
    finally:
        vm.stop()
    return ssh, uptime, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=5)
    args = parser.parse_args()
    image = guest.build()
    rows: dict[str, list] = {"disk": [], "kernel": []}
    with tempfile.TemporaryDirectory(prefix="osception-bench-guest-") as tmp:
        key, public = _keypair(Path(tmp))
        for n in range(args.boots):
            for way in rows:
                ssh, uptime, load = boot(image, Path(tmp) / f"{way}-{n}", public, key, way == "kernel")
                rows[way].append((ssh, uptime))
                print(f"boot {n + 1} from its {way:6}: SSH login {ssh:5.1f} s "
                      f"(guest uptime then {uptime:4.1f} s), load {load:.1f}", flush=True)
    sizes = {p.name: p.stat().st_size for p in (image.kernel, image.initrd, image.disk)}
    print(f"guest {image.version}, {sizes}")
    median = {way: statistics.median(r[0] for r in got) for way, got in rows.items()}
    for way, got in rows.items():
        print(f"from its {way:6}: median of {len(got)}: SSH-ready {median[way]:.1f} s, guest uptime "
              f"then {statistics.median(r[1] for r in got):.1f} s (QEMU TCG -m 128, {os.cpu_count()} cores)")
    print(f"disk / kernel: {median['disk'] / median['kernel']:.2f}")


if __name__ == "__main__":
    main()
