"""`patches:` (osception.yaml) as the plan carries them: each review pinned when the
plan is made, each patch file read as `patches.read_file` checks it, and where both
land (the controller's ConfigMaps and its pods' `patch` init container, a node's
files and its playbooks' variables). The node fetches nothing."""

from __future__ import annotations

import re
from pathlib import Path

from .. import patches as patches_mod
from .. import services
from ..config import Config, ConfigError
from ..topology import Node
from .layout import NODE_PATCHES

# Where a pod's `patch` init container works (k8s/_kolla.j2): its patch files (the
# project's ConfigMap) and osception-patch.py, and an emptyDir holding the patched copy of the package (first
# on the containers' PYTHONPATH) and osception-patch.py's state.
PATCH_PATHS = {"files": "/var/lib/osception-patches", "script": "/var/lib/osception-patches/osception-patch.py",
               "root": "/var/lib/osception",
               "site": "/var/lib/osception/patched", "state": "/var/lib/osception/patch-state"}


def patch_file_name(i: int, name: str) -> str:
    """A `patches: file:`'s name where it lands (a ConfigMap key, a node's file): its
    place in the project's list, then its name with anything but [-._a-zA-Z0-9] made
    `-` (a line break, `/`, Jinja or shell in a name never reaches a node)."""
    return f"{i:02d}-" + re.sub(r"[^-._a-zA-Z0-9]", "-", name)


def patch_text(project: str, i: int, path: Path, state_home: Path | None = None) -> str:
    """patches.<project>.<i - 1>.file's text, read as patches.read_file checks it;
    ConfigError, one line naming the key."""
    try:
        return patches_mod.read_file(path, state_home)
    except patches_mod.PatchError as e:
        raise ConfigError(f"patches.{project}.{i - 1}.file: {e}") from None


def check_patch_files(cfg: Config, state_home: Path | None) -> None:
    """Every `patches: file:` of the config, as the plan will read it (the command's
    state home known: none may be inside it)."""
    for project, patches in sorted(cfg.patches.items()):
        for i, p in enumerate(patches, 1):
            if p.file is not None:
                patch_text(project, i, p.file, state_home)


def resolve_reviews(cfg: Config) -> dict[tuple[str, int], patches_mod.Review]:
    """Every `review:` patch of the config pinned: its patch set, content and sha256,
    fetched from Gerrit now (a config without reviews needs no network)."""
    out = {}
    for project, patches in sorted(cfg.patches.items()):
        for i, p in enumerate(patches, 1):
            if p.review is not None:
                try:
                    out[(project, i)] = patches_mod.resolve(p.review)
                except patches_mod.PatchError as e:
                    raise ConfigError(f"patches.{project}.{i - 1}: {e}") from None
    return out


def controller_patches(cfg: Config, reviews: dict[tuple[str, int], patches_mod.Review]) -> dict:
    """The templates' `patches` ({project: osception-patch.py's patch arguments, files
    of the ConfigMap; a review's pinned to its sha256}), `patch_files` ({project:
    {ConfigMap key: text}}, a review's content as the plan pinned it) and `patch_paths`."""
    args: dict[str, list[str]] = {}
    files: dict[str, dict[str, str]] = {}
    for project, patches in cfg.patches.items():
        files[project] = {}
        for i, p in enumerate(patches, 1):
            if p.file is None:
                review = reviews[(project, i)]
                key = f"{i:02d}-{review.file_name}"
                files[project][key] = review.text
                args.setdefault(project, []).append(patches_mod.pinned(f"{PATCH_PATHS['files']}/{key}", review))
                continue
            key = patch_file_name(i, p.file.name)
            files[project][key] = patch_text(project, i, p.file)
            args.setdefault(project, []).append(f"{PATCH_PATHS['files']}/{key}")
    return {"patches": args, "patch_files": files, "patch_paths": PATCH_PATHS}


def node_patches_of(cfg: Config, node: Node, reviews: dict[tuple[str, int], patches_mod.Review]
                    ) -> tuple[list[dict], dict[str, bytes]]:
    """The node's `patches` variable (each project it runs: its patch files in order, a
    review's pinned to its sha256, and its services) and the patch files its user data
    carries (a review's content as the plan pinned it: the node fetches nothing)."""
    out, files = [], {}
    for project, units in services.NODE_PATCHABLE[node.role].items():
        paths = []
        for i, p in enumerate(cfg.patches.get(project, []), 1):
            if p.file is not None:
                dest = f"{NODE_PATCHES}/{project}/{patch_file_name(i, p.file.name)}"
                files[dest] = patch_text(project, i, p.file).encode()
                paths.append(dest)
            else:
                review = reviews[(project, i)]
                dest = f"{NODE_PATCHES}/{project}/{i:02d}-{review.file_name}"
                files[dest] = review.text.encode()
                paths.append(patches_mod.pinned(dest, review))
        out.append({"project": project, "files": paths, "services": list(units)})
    return out, files
