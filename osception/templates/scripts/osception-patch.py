#!/usr/bin/env python3
"""Apply a project's patches to its installed Python package, the one way osception
patches code everywhere it runs (a Kolla image's venv, a node's dist-packages, the
devcloud's services venv):

    osception-patch.py --site DIR --state DIR [--shadow PACKAGE] [PATCH ...]

DIR is where the package is installed (site-packages or dist-packages). Each PATCH is a
`git format-patch` or unified diff of the project's repository (paths `a/nova/...`),
optionally as PATH#sha256:HEX: then its content must have that sha256 (an upstream
review, pinned when the plan was made; nothing is fetched here).
Only the files under the packages installed in DIR are applied (a change's tests and
release notes are not installed); a patch that touches none of them is an error.

--shadow PACKAGE: DIR is a folder put first on the import path (PYTHONPATH) of the
services, not their site-packages: the package is first copied into it from where
this interpreter imports it (a Kolla image's venv is never written to; nothing is
rebuilt). Run it with the services' own interpreter.

The patches are applied by this script, not by GNU patch (Kolla's 2024.1 images do not
ship it), with `git apply`'s rules: every context line must match exactly, a hunk may
have moved (it is looked for nearest its line number first), no fuzz. So a patch gives
the same code in a container, on a node and on the devcloud.

Idempotent: the state DIR keeps a pristine copy of every package a patch touched and
the checksum of the patch set applied. The same set again changes nothing; another
set (or none) restores the pristine copies first, so removing a patch restores the
code. A patch that does not apply names itself, the file and the hunk, and leaves the
pristine code. Prints one line of what it did; exit 0, or 1 on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

STAMP = "applied.sha256"
PRISTINE = "pristine"
SHA256_SUFFIX = "#sha256:"  # PATH#sha256:HEX, a patch pinned by its content
DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    pass


# -- reading a patch --------------------------------------------------------------------
class FilePatch:
    """One file's section of a patch: its path, whether it is created or deleted, and its
    hunks as (header, old line number, old lines, new lines)."""

    def __init__(self, path: str):
        self.path, self.created, self.deleted = path, False, False
        # (header, old line number, old lines, new lines, context lines at its end)
        self.hunks: list[tuple[str, int, list[str], list[str], int]] = []


def lines_of(text: str) -> list[str]:
    """Lines with their ends, split on \n only (str.splitlines also splits on \f, \x1c...)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def split(text: str) -> list[FilePatch]:
    """The file sections of a patch (git's `diff --git` ones; format-patch's mail headers
    and signature dropped), each hunk read to the line counts of its header."""
    lines = lines_of(text)
    out: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\n")
        i += 1
        if line == "-- " and out:  # format-patch's signature: the end of the diff
            break
        if m := DIFF_HEADER.match(line):
            out.append(FilePatch(m.group(2)))
        elif not out:
            continue  # the mail headers and message of a format-patch
        elif line.startswith("--- "):
            out[-1].created = line == "--- /dev/null"
        elif line.startswith("+++ "):
            out[-1].deleted = line == "+++ /dev/null"
        elif line.startswith(("GIT binary patch", "Binary files ", "rename from ", "copy from ")):
            raise PatchError(f"{out[-1].path}: a binary, renamed or copied file (only text "
                             "changes of files can be applied)")
        elif h := HUNK_HEADER.match(line):
            old_count = int(h.group(2)) if h.group(2) is not None else 1
            new_count = int(h.group(4)) if h.group(4) is not None else 1
            old: list[str] = []
            new: list[str] = []
            kind, trailing = "", 0
            while i < len(lines) and (len(old) < old_count or len(new) < new_count
                                      or lines[i].startswith("\\")):
                body = lines[i]
                i += 1
                if body.startswith("\\"):  # "\ No newline at end of file": the line before
                    for side, applies in ((old, kind in " -"), (new, kind in " +")):
                        if applies and side:
                            side[-1] = side[-1].rstrip("\n")
                    continue
                kind, rest = (" ", body) if body == "\n" else (body[:1], body[1:])  # a blank
                if kind not in " -+":  # context line whose space an editor stripped, or junk
                    raise PatchError(f"{out[-1].path}: hunk {line!r} ends early (line {i} of the patch)")
                if kind in " -":
                    old.append(rest)
                if kind in " +":
                    new.append(rest)
                trailing = trailing + 1 if kind == " " else 0
            out[-1].hunks.append((line, int(h.group(1)), old, new, trailing))
    return out


# -- applying ------------------------------------------------------------------------------
def _find(text: list[str], old: list[str], start: int, floor: int,
          at_start: bool, at_end: bool) -> int | None:
    """Where `old` occurs in `text` at or after `floor`, the nearest to `start` first; as
    git apply, a hunk of the file's first line must match there and one without context
    after it must match at the file's end."""
    last = len(text) - len(old)
    if at_start or at_end:
        at = 0 if at_start else last
        ok = at >= floor and at <= last and text[at:at + len(old)] == old \
            and (not at_end or at == last) and (not at_start or at == 0)
        return at if ok else None
    for delta in range(len(text) + 1):
        ahead, behind = start + delta, start - delta
        if ahead > last and behind < floor:
            return None
        for at in (ahead, behind):
            if floor <= at <= last and text[at:at + len(old)] == old:
                return at
    return None


def patched_text(fp: FilePatch, text: list[str] | None) -> list[str] | None:
    """The file's new lines (None: deleted), or PatchError naming the hunk."""
    if fp.created and text is not None:
        raise PatchError(f"{fp.path}: already exists, and the patch creates it")
    lines = list(text or [])
    floor, shift = 0, 0
    for n, (header, old_start, old, new, trailing) in enumerate(fp.hunks, 1):
        expected = max(old_start - 1, 0) + shift if old else old_start + shift
        at = _find(lines, old, expected, floor, at_start=old_start <= 1, at_end=not trailing)
        if at is None:
            raise PatchError(f"{fp.path}: Hunk #{n} FAILED at {old_start} ({header.strip()}: "
                             "its lines are not in the file)")
        lines[at:at + len(old)] = new
        floor, shift = at + len(new), shift + len(new) - len(old)
    if fp.deleted:
        if lines:
            raise PatchError(f"{fp.path}: deleted by the patch, but not all of its lines are removed")
        return None
    return lines


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


def apply_one(site: Path, name: str, text: str) -> None:
    """Every installed file of one patch, or none (each file's result is made first)."""
    results = {}
    for fp in split(text):
        if not installed(site, fp.path):
            continue
        target = site / fp.path
        current = lines_of(target.read_bytes().decode()) if target.exists() else None
        if current is None and not fp.created:
            raise PatchError(f"{fp.path}: no such file in {site}")
        try:
            results[target] = patched_text(fp, current)
        except PatchError as e:
            raise PatchError(f"{name}: does not apply ({e}); pristine code kept") from None
    if not results:
        raise PatchError(f"{name}: touches no file of the installed packages in {site}")
    for target, lines in results.items():
        if lines is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes("".join(lines).encode())


def apply(site: Path, state: Path, patches: list[Path]) -> str:
    texts = [(p, p.read_bytes().decode()) for p in patches]
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
        for package in sorted({top(fp.path) for fp in split(text) if installed(site, fp.path)}):
            copy = state / PRISTINE / package
            if not copy.exists():
                shutil.copytree(site / package, copy, symlinks=True)
        try:
            apply_one(site, str(patch), text)
        except PatchError:
            restore(site, state)
            raise
    stamp.write_text(digest + "\n")
    return f"applied: {', '.join(p.name for p in patches)}"


# -- where the patches and the package come from -------------------------------------------
def pinned_file(arg: str) -> Path:
    """A patch argument's file; with #sha256:HEX, only if its content has that sha256."""
    path, _, expected = arg.partition(SHA256_SUFFIX)
    if expected:
        actual = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if actual != expected.lower():
            raise PatchError(f"{path}: its sha256 is {actual}, the plan pinned {expected}: "
                             "not the content the plan was made with")
    return Path(path)


def shadow(package: str, site: Path) -> str:
    """Copy the package this interpreter imports into `site` (once); where it came from."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PatchError(f"{package}: not a package this Python ({sys.executable}) imports")
    source = Path(list(spec.submodule_search_locations)[0])
    if source.resolve() != (site / package).resolve() and not (site / package).exists():
        site.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, site / package, symlinks=True)
    return str(source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, required=True, help="where the packages are installed")
    parser.add_argument("--state", type=Path, required=True, help="pristine copies and the applied set")
    parser.add_argument("--shadow", metavar="PACKAGE",
                        help="copy PACKAGE from this interpreter's import path into --site first")
    parser.add_argument("patches", nargs="*", help="patch files, each PATH or PATH#sha256:HEX")
    args = parser.parse_args(argv)
    try:
        if args.shadow:
            shadow(args.shadow, args.site)
        files = [pinned_file(p) for p in args.patches]
        print(apply(args.site, args.state, files))
    except (PatchError, OSError) as e:
        print(f"patch failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
