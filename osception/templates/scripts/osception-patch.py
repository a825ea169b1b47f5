#!/usr/bin/env python3
"""Apply a project's patches to its installed Python package, the one way osception
patches code everywhere it runs (a Kolla image's venv, a node's dist-packages, the
devcloud's services venv):

    osception-patch.py --site DIR --state DIR [PATCH ...]

DIR is where the package is installed (site-packages or dist-packages). Each PATCH is a
`git format-patch` or unified diff of the project's repository (paths `a/nova/...`):
only the files under the packages installed in DIR are applied (a change's tests and
release notes are not installed); a patch that touches none of them is an error.

Idempotent: the state DIR keeps a pristine copy of every package a patch touched and
the checksum of the patch set applied. The same set again changes nothing; another
set (or none) restores the pristine copies first, so removing a patch restores the
code. A patch that does not apply names itself, the file and the hunk, and leaves the
pristine code. Needs GNU patch. Prints one line of what it did; exit 0, or 1 on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

STAMP = "applied.sha256"
PRISTINE = "pristine"
DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$")


def split(text: str) -> list[tuple[str, str]]:
    """(path, text) per file of a patch (git's `diff --git` sections; the mail headers
    and the trailer of format-patch dropped)."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines(keepends=True):
        m = DIFF_HEADER.match(line.rstrip("\n"))
        if m:
            out.append((m.group(2), [line]))
        elif out and line.rstrip("\n") != "-- ":
            out[-1][1].append(line)
        elif out:  # format-patch's signature: the end of the diff
            break
    return [(path, "".join(lines)) for path, lines in out]


def top(path: str) -> str:
    return path.split("/", 1)[0]


def installed(site: Path, path: str) -> bool:
    """Under a package installed in site (nova/..., not releasenotes/ or doc/)."""
    return (site / top(path) / "__init__.py").exists()


def restore(site: Path, state: Path) -> list[str]:
    """The pristine copies back in place; the packages restored."""
    pristine = state / PRISTINE
    restored = []
    for copy in sorted(pristine.iterdir()) if pristine.exists() else []:
        shutil.rmtree(site / copy.name, ignore_errors=True)
        shutil.copytree(copy, site / copy.name, symlinks=True)
        restored.append(copy.name)
    (state / STAMP).unlink(missing_ok=True)
    return restored


def apply(site: Path, state: Path, patches: list[Path]) -> str:
    texts = [(p, p.read_text()) for p in patches]
    digest = hashlib.sha256("".join(f"{p.name}\0{t}\0" for p, t in texts).encode()).hexdigest()
    stamp = state / STAMP
    if patches and stamp.exists() and stamp.read_text().strip() == digest:
        return f"unchanged: {len(patches)} patch(es) already applied"
    state.mkdir(parents=True, exist_ok=True)
    restored = restore(site, state)
    if not patches:
        shutil.rmtree(state / PRISTINE, ignore_errors=True)
        return f"pristine: {', '.join(restored) or 'nothing was patched'}"
    for patch, text in texts:
        files = [(path, body) for path, body in split(text) if installed(site, path)]
        if not files:
            restore(site, state)
            raise PatchError(f"{patch}: touches no file of the installed packages in {site}")
        for package in sorted({top(path) for path, _ in files}):
            copy = state / PRISTINE / package
            if not copy.exists():
                shutil.copytree(site / package, copy, symlinks=True)
        body = "".join(b for _, b in files)
        r = subprocess.run(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
                            "-r", "-", "-d", str(site)], input=body, capture_output=True, text=True)
        if r.returncode:
            restore(site, state)
            failed = [line for line in r.stdout.splitlines() if "FAILED" in line or "can't find" in line]
            where = next((line for line in r.stdout.splitlines() if line.startswith("patching file")), "")
            raise PatchError(f"{patch}: does not apply ({where.removeprefix('patching file ')}: "
                             f"{'; '.join(failed) or r.stdout.strip().splitlines()[-1:]}); pristine code kept")
    stamp.write_text(digest + "\n")
    return f"applied: {', '.join(p.name for p in patches)}"


class PatchError(RuntimeError):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, required=True, help="where the packages are installed")
    parser.add_argument("--state", type=Path, required=True, help="pristine copies and the applied set")
    parser.add_argument("patches", type=Path, nargs="*")
    args = parser.parse_args(argv)
    try:
        print(apply(args.site, args.state, args.patches))
    except (PatchError, OSError) as e:
        print(f"patch failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
