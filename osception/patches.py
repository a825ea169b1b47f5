"""`patches:` of osception.yaml, where the code runs: one script applies them everywhere
(templates/scripts/osception-patch.py); this module gets the patch files and applies
them to the devcloud.

The devcloud's services venv is the machine's (shared by every devcloud and the tests):
it is never patched. A patched project gets its own copy of its package in the
devcloud's state folder (patched/<project>/), patched there, and its processes run with
that folder first on PYTHONPATH, the way the controller mounts a patched copy over the
Kolla image's package. The applied set's checksum is in each of those processes'
config: a new set restarts exactly that project's processes; removing every patch of a
project removes its copy (the venv's pristine code again).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from . import services
from .config import Config

SCRIPT = Path(__file__).parent / "templates" / "scripts" / "osception-patch.py"
GERRIT = "https://review.opendev.org"
STAMP = "applied.sha256"  # osception-patch.py's


class PatchError(RuntimeError):
    """One line: which patch, which file and hunk, or which review could not be fetched."""


def review_url(review: str) -> str:
    """Gerrit's REST API for a change's patch (base64): a patchset, else the current one."""
    change, _, patchset = review.partition("/")
    return f"{GERRIT}/changes/{change}/revisions/{patchset or 'current'}/patch?download"


def fetch_review(review: str, dest: Path) -> Path:
    path = dest / f"review-{review.replace('/', '-')}.patch"
    if not path.exists():
        try:
            with urllib.request.urlopen(review_url(review), timeout=30) as r:
                data = base64.b64decode(r.read())
        except OSError as e:
            raise PatchError(f"review {review}: cannot fetch {review_url(review)}: {e}") from None
        dest.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def files(cfg: Config, project: str, reviews: Path) -> list[Path]:
    """The project's patch files, in the config's order (reviews fetched into `reviews`)."""
    return [p.file if p.file is not None else fetch_review(p.review, reviews)
            for p in cfg.patches.get(project, [])]


# -- the devcloud ---------------------------------------------------------------------
def site(root: Path, project: str) -> Path:
    """The folder that shadows the venv's package of a patched project."""
    return root / "patched" / project


def stamp(root: Path, project: str) -> Path:
    return root / "patch-state" / project / STAMP


def apply_devcloud(cfg: Config, root: Path, venv_site: Path, say=print) -> None:
    """Every project's patches onto its copy; a project without patches has none."""
    for project in services.PATCHABLE:
        wanted = files(cfg, project, root / "patch-state" / "reviews")
        copy, state = site(root, project), root / "patch-state" / project
        if not wanted:
            if copy.exists():
                shutil.rmtree(copy)
                shutil.rmtree(state, ignore_errors=True)
                say(f"patches: {project} pristine again (no patch in the config)")
            continue
        if not (copy / project).exists():
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copytree(venv_site / project, copy / project, symlinks=True)
        r = subprocess.run([sys.executable, str(SCRIPT), "--site", str(copy), "--state", str(state),
                            *map(str, wanted)], capture_output=True, text=True)
        if r.returncode:
            raise PatchError(f"patches: {project}: {r.stderr.strip().removeprefix('patch failed: ')}")
        say(f"patches: {project} {r.stdout.strip()}")


def env(root: Path, project: str) -> dict[str, str]:
    """The environment of a project's processes: its patched copy first, if any."""
    return {"PYTHONPATH": str(site(root, project))} if site(root, project).exists() else {}


def config(root: Path, project: str) -> list[Path]:
    """What restarts a project's processes when it changes: the applied set."""
    return [stamp(root, project)] if site(root, project).exists() else []
