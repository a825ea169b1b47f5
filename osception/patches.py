"""`patches:` of osception.yaml: one script applies them wherever a project runs,
templates/scripts/osception-patch.py (a Kolla pod's `patch` init container, a node's
Ansible pass, the devcloud running that same init container); it is shipped as a file
to each of those places, and osception imports it from here (the tests' apply).

A `review:` patch is resolved once, when the plan is made (resolve): its patch set
number, its content and that content's sha256 go into the plan; every pod and node
applies exactly that content (osception-patch.py checks the sha256), and nothing
fetches at a pod's start or on a node.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import state

SCRIPT = Path(__file__).parent / "templates" / "scripts" / "osception-patch.py"
# Upstream's Gerrit (its REST API: https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html)
GERRIT = "https://review.opendev.org"
# Gerrit prefixes every JSON answer with this line (against cross-site script inclusion).
GERRIT_JSON_PREFIX = ")]}'"


def _load():
    spec = importlib.util.spec_from_file_location("osception_patch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load()
PatchError = script.PatchError
SHA256_SUFFIX = script.SHA256_SUFFIX


@dataclass(frozen=True)
class Review:
    """A `review:` patch as the plan pins it."""
    review: str  # as osception.yaml gives it: CHANGE or CHANGE/PATCHSET
    change: int
    patchset: int
    text: str  # the patch (git format-patch), decoded from Gerrit's base64

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return f"review-{self.change}-{self.patchset}.patch"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


# A `patches: file:` is a source patch: a large one is a mistake (or another file).
MAX_PATCH_FILE = 1 << 20


def read_file(path: Path, state_home: Path | None = None) -> str:
    """A `patches: file:`'s text as the plan carries it to pods and nodes. Its content
    lands in a ConfigMap and in user data, so it is read only when it is a patch the user
    meant: a regular file of theirs that others cannot write (state.read_input, as the
    config), at most MAX_PATCH_FILE, UTF-8, a `git diff` / `git format-patch` the
    patch script can apply, and never a file of an environment's state folder (its
    secrets, its SSH key), symbolic links resolved first. `state_home`: the command's
    (--state-dir), besides $OSCEPTION_HOME's or the default. PatchError, one line."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise PatchError(f"{path}: no such file ({getattr(e, 'strerror', None) or 'a symbolic link loop'})") from None
    for home in {state.home(), *([state_home] if state_home is not None else [])}:
        try:
            root = home.resolve()
        except (OSError, RuntimeError):
            continue
        if real == root or root in real.parents:
            raise PatchError(f"{path}: inside osception's state folder {root} (an environment's secrets "
                             "and keys); a patch is a file of your own project")
    try:
        text = state.read_input(real, MAX_PATCH_FILE).decode()
    except state.StateError as e:
        raise PatchError(str(e).replace(str(real), str(path), 1)) from None
    except UnicodeDecodeError:
        raise PatchError(f"{path}: not UTF-8 text") from None
    try:
        sections = script.split(text)
    except PatchError as e:
        raise PatchError(f"{path}: not a patch the nodes can apply ({e})") from None
    if not sections or not all(fp.hunks or fp.created or fp.deleted for fp in sections):
        raise PatchError(f"{path}: not a unified diff of the project (`git diff` or `git format-patch`: "
                         "a `diff --git` section with its hunks)")
    return text


_resolved: dict[tuple[str, str], Review] = {}  # one fetch per review and process


def resolve(review: str, gerrit: str | None = None) -> Review:
    """The review's patch set (the current one when none is given) and its patch,
    from Gerrit's REST API. PatchError, one line, when Gerrit cannot answer."""
    gerrit = (gerrit or GERRIT).rstrip("/")
    if (gerrit, review) in _resolved:
        return _resolved[(gerrit, review)]
    change, _, patchset = review.partition("/")
    try:
        if not patchset:
            answer = _get(f"{gerrit}/changes/{change}?o=CURRENT_REVISION").decode()
            info = json.loads(answer.removeprefix(GERRIT_JSON_PREFIX))
            patchset = str(info["revisions"][info["current_revision"]]["_number"])
        text = base64.b64decode(_get(f"{gerrit}/changes/{change}/revisions/{patchset}/patch")).decode()
    except urllib.error.HTTPError as e:
        raise PatchError(f"review {review}: {gerrit} answers {e.code} {e.reason} (no such change "
                         "or patch set?)") from None
    except (OSError, ValueError, KeyError) as e:
        raise PatchError(f"review {review}: cannot fetch it from {gerrit} ({e}); a plan pins each "
                         "review: patch when it is made, which needs Gerrit: retry when it answers, "
                         "or give the patch as file:") from None
    found = _resolved[(gerrit, review)] = Review(review, int(change), int(patchset), text)
    return found


def pinned(path: str, review: Review) -> str:
    """osception-patch.py's argument: the patch file, and the sha256 it must have."""
    return f"{path}{SHA256_SUFFIX}{review.sha256}"
