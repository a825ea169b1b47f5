"""osception-patch.py, the one way osception patches an installed project (Kolla
venvs, nodes' dist-packages, the devcloud): real `git format-patch` files applied to
real installed files (openstacksdk's, from this venv) with the same result as
`git apply`, idempotent, revertable, and a patch that does not apply named with its
file and hunk."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osception import patches
from osception.render.layout import NODE_PATCHES
from osception.render.node import load_ansible_vars
from osception.render.patches import PATCH_PATHS
from osception.render.plan import REVIEWS_FILE
from tests import pods

SCRIPT = patches.SCRIPT
SDK = Path(importlib.util.find_spec("openstack").origin).parent  # the installed package
FILE = "openstack/version.py"
patcher = patches.script


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def site(tmp_path) -> Path:
    """A site-packages holding the real openstack/__init__.py and version.py."""
    site = tmp_path / "site"
    (site / "openstack").mkdir(parents=True)
    for name in ("__init__.py", "version.py"):
        shutil.copy(SDK / name, site / "openstack" / name)
    return site


def _format_patch(tmp_path: Path, name: str, change, notes: bool = True) -> Path:
    """A change to the project's repository as upstream makes one: the code, a release
    note (not installed), `git format-patch`."""
    repo = tmp_path / f"repo-{name}"
    (repo / "openstack").mkdir(parents=True)
    shutil.copy(SDK / "version.py", repo / FILE)
    (repo / "releasenotes/notes").mkdir(parents=True)
    (repo / "releasenotes/notes/base.yaml").write_text("---\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    path = repo / FILE
    path.write_text(change(path.read_text()))
    if notes:
        (repo / "releasenotes/notes" / f"{name}.yaml").write_text("---\nfixes:\n  - a fix\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"Change {name}")
    out = _git(repo, "format-patch", "-1", "-o", str(tmp_path / "patches"))
    return Path(out.strip())


def _add_line(line: str):
    return lambda text: text + f"{line}\n"


def test_apply_is_idempotent_and_removing_the_patch_restores_the_code(tmp_path, site):
    pristine = (site / FILE).read_bytes()
    patch = _format_patch(tmp_path, "a", _add_line("PATCHED = 'a'"))
    state = tmp_path / "state"
    assert patcher.apply(site, state, [patch]) == f"applied: {patch.name}"
    assert (site / FILE).read_text().endswith("PATCHED = 'a'\n")
    assert not (site / "releasenotes").exists()  # not installed: left out
    after = (site / FILE).read_bytes()
    assert patcher.apply(site, state, [patch]).startswith("unchanged")
    assert (site / FILE).read_bytes() == after
    assert patcher.apply(site, state, []) == "pristine: openstack"
    assert (site / FILE).read_bytes() == pristine
    assert not (state / patcher.PRISTINE).exists()


def test_another_set_starts_from_the_pristine_code(tmp_path, site):
    a = _format_patch(tmp_path, "a", _add_line("PATCHED = 'a'"))
    b = _format_patch(tmp_path, "b", _add_line("PATCHED = 'b'"))
    state = tmp_path / "state"
    patcher.apply(site, state, [a])
    patcher.apply(site, state, [b])
    text = (site / FILE).read_text()
    assert "PATCHED = 'b'" in text and "PATCHED = 'a'" not in text


def test_a_patch_that_does_not_apply_names_file_and_hunk_and_keeps_the_pristine_code(tmp_path, site):
    pristine = (site / FILE).read_bytes()
    good = _format_patch(tmp_path, "good", _add_line("PATCHED = 'good'"))
    bad = _format_patch(tmp_path, "bad", lambda t: t.replace("import warnings", "import warnings  # x"))
    (site / FILE).write_text((site / FILE).read_text().replace("import warnings", "import logging"))
    drifted = (site / FILE).read_bytes()
    r = subprocess.run([sys.executable, str(SCRIPT), "--site", str(site), "--state", str(tmp_path / "state"),
                        str(good), str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}: does not apply (openstack/version.py: Hunk #1 FAILED" in r.stderr, r.stderr
    assert (site / FILE).read_bytes() == drifted  # as it was before: the good patch undone too
    assert pristine != drifted


def test_a_patch_of_no_installed_file_is_an_error(tmp_path, site):
    repo_only = _format_patch(tmp_path, "docs", lambda t: t, notes=True)  # a release note only
    with pytest.raises(patcher.PatchError, match="touches no file of the installed packages"):
        patcher.apply(site, tmp_path / "state", [repo_only])


def test_the_command_line_prints_one_line_and_exits_0(tmp_path, site):
    patch = _format_patch(tmp_path, "a", _add_line("PATCHED = 'a'"))
    argv = [sys.executable, str(SCRIPT), "--site", str(site), "--state", str(tmp_path / "state"), str(patch)]
    first = subprocess.run(argv, capture_output=True, text=True)
    second = subprocess.run(argv, capture_output=True, text=True)
    assert (first.returncode, first.stdout) == (0, f"applied: {patch.name}\n")
    assert (second.returncode, second.stdout) == (0, "unchanged: 1 patch(es) already applied\n")


# --- the applier gives what `git apply` gives ------------------------------------------

def _commits(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A repository of openstacksdk's real files and upstream-shaped changes, each one
    `git format-patch`: several hunks in one file and in two files, a new file, a removed
    file, a file without its last newline, a file with CRLF lines."""
    repo = tmp_path / "repo"
    shutil.copytree(SDK, repo / "openstack", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (repo / "openstack" / "crlf.py").write_bytes(b"A = 1\r\nB = 2\r\nC = 3\r\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")

    def edit(rel, change):
        path = repo / rel
        path.write_bytes(change(path.read_bytes().decode()).encode())

    def hunks(text):  # three hunks: near the top, the middle, the end
        lines = text.split("\n")
        for at in (len(lines) - 2, len(lines) // 2, 3):
            lines.insert(at, f"# osception test line {at}")
        return "\n".join(lines)

    changes = [
        ("several hunks", lambda: edit("openstack/connection.py", hunks)),
        ("two files", lambda: (edit("openstack/resource.py", hunks),
                               edit("openstack/utils.py", lambda t: t.replace("import", "import  ", 1)))),
        ("a new file", lambda: (repo / "openstack/osception_new.py").write_text("NEW = True\n")),
        ("a removed file", lambda: (repo / "openstack/version.py").unlink()),
        ("no last newline", lambda: edit("openstack/osception_new.py", lambda t: t + "LAST = 1")),
        ("after no last newline", lambda: edit("openstack/osception_new.py", lambda t: t + "\nMORE = 2\n")),
        ("CRLF", lambda: edit("openstack/crlf.py", lambda t: t.replace("B = 2", "B = 22"))),
    ]
    for subject, change in changes:
        change()
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", subject)
    out = _git(repo, "format-patch", f"-{len(changes)}", "-o", str(tmp_path / "patches"))
    _git(repo, "checkout", "-q", "HEAD~" + str(len(changes)))
    return repo, [Path(p) for p in out.split()]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts}


def _drift(path: Path) -> None:
    lines = path.read_text().split("\n")
    lines[len(lines) // 4:len(lines) // 4] = ["# one", "# two", "# three"]
    path.write_text("\n".join(lines))


def test_the_applier_gives_what_git_apply_gives(tmp_path):
    repo, patches = _commits(tmp_path)
    site = tmp_path / "site"
    shutil.copytree(repo / "openstack", site / "openstack")
    for root in (repo, site):  # both with lines added between two hunks (a drifted branch)
        _drift(root / "openstack" / "connection.py")
    for patch in patches:  # one at a time, as `git am` would
        _git(repo, "apply", str(patch))
    assert patcher.apply(site, tmp_path / "state", patches) == f"applied: {', '.join(p.name for p in patches)}"
    assert _tree(site / "openstack") == _tree(repo / "openstack")
    assert not (site / "openstack/version.py").exists()
    assert (site / "openstack/crlf.py").read_bytes() == b"A = 1\r\nB = 22\r\nC = 3\r\n"
    patcher.apply(site, tmp_path / "state", [])  # and every change undone
    _git(repo, "checkout", "-q", ".")
    _git(repo, "clean", "-qfd")
    _drift(repo / "openstack" / "connection.py")
    assert _tree(site / "openstack") == _tree(repo / "openstack")


def _changed_context(text: str) -> str:
    lines = text.split("\n")
    lines[len(lines) // 2] += "  # drifted"  # a context line of the second hunk
    return "\n".join(lines)


@pytest.mark.parametrize("drift, hunk", [
    (_changed_context, 2),
    (lambda text: "# a line before the first\n" + text, 1),  # a hunk of line 1 stays there
])
def test_what_git_apply_refuses_is_refused_naming_the_hunk(tmp_path, drift, hunk):
    repo, patches = _commits(tmp_path)
    site = tmp_path / "site"
    shutil.copytree(repo / "openstack", site / "openstack")
    for root in (repo, site):
        path = root / "openstack" / "connection.py"
        path.write_text(drift(path.read_text()))
    git = subprocess.run(["git", "-C", str(repo), "apply", "--check", str(patches[0])],
                         capture_output=True, text=True)
    assert git.returncode != 0 and "patch does not apply" in git.stderr
    with pytest.raises(patcher.PatchError, match=rf"openstack/connection.py: Hunk #{hunk} FAILED at \d+ \(@@ -"):
        patcher.apply(site, tmp_path / "state", [patches[0]])


def test_shadow_copies_the_package_this_python_imports_and_patches_only_the_copy(tmp_path):
    patch = _format_patch(tmp_path, "a", _add_line("PATCHED = 'a'"))
    shadow = tmp_path / "patched"
    argv = [sys.executable, str(SCRIPT), "--shadow", "openstack", "--site", str(shadow),
            "--state", str(tmp_path / "state"), str(patch)]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, f"applied: {patch.name}\n"), r.stderr
    assert (shadow / FILE).read_text().endswith("PATCHED = 'a'\n")
    assert not (SDK / "version.py").read_text().endswith("PATCHED = 'a'\n")  # the venv's untouched
    check = subprocess.run([sys.executable, "-c", "import openstack.version as v; print(v.PATCHED)"],
                           env={**os.environ, "PYTHONPATH": str(shadow)}, capture_output=True, text=True)
    assert check.stdout == "a\n", check.stderr


# --- patches: in osception.yaml ---------------------------------------------------------

def _load(tmp_path, text: str):
    from osception import config

    path = tmp_path / "osception.yaml"
    path.write_text(text)
    return config.load(path)


def test_patches_config_takes_files_relative_to_it_and_reviews(tmp_path):
    (tmp_path / "fix.patch").write_text("diff --git a/nova/x.py b/nova/x.py\n")
    cfg = _load(tmp_path, "patches:\n  nova:\n    - file: fix.patch\n    - review: \"912345/3\"\n"
                          "  neutron:\n    - review: \"933333\"\n")
    assert cfg.patches["nova"][0].file == tmp_path / "fix.patch"
    assert [p.review for p in cfg.patches["nova"] + cfg.patches["neutron"]] == [None, "912345/3", "933333"]


@pytest.mark.parametrize("text, message", [
    ("patches:\n  cinder:\n    - review: \"1\"\n", "cinder: not a project osception runs"),
    ("patches:\n  nova:\n    - file: missing.patch\n", "missing.patch: no such file"),
    ("patches:\n  nova:\n    - {file: a.patch, review: \"1\"}\n", "give either file: PATH or review"),
    ("patches:\n  nova:\n    - review: \"12a/3\"\n", "patches.nova.0.review"),
])
def test_bad_patches_config_is_one_clear_line(tmp_path, text, message):
    from osception import config

    (tmp_path / "a.patch").write_text("")
    with pytest.raises(config.ConfigError, match=message):
        _load(tmp_path, text)


# --- review: patches are pinned when the plan is made --------------------------------------

def _review_plan(tmp_path, monkeypatch, gerrit_url: str, review: str = "912345"):
    from osception import render, secrets

    monkeypatch.setattr(patches, "GERRIT", gerrit_url)
    monkeypatch.setattr(patches, "_resolved", {})
    cfg = _load(tmp_path, f"patches:\n  nova:\n    - review: \"{review}\"\n")
    return render.build(cfg, secrets.ensure(tmp_path / "state", cfg.name))


def test_a_review_is_pinned_when_the_plan_is_made_and_nothing_fetches_it_later(tmp_path, monkeypatch):
    """The plan resolves `review: CHANGE` once (against a local HTTP server serving
    Gerrit's REST answers, tests/gerrit.py): the current patch set and its sha256 are in
    the plan, the content itself in the controller's ConfigMap and in each node's user
    data, every `patch` argument pinned to that sha256; no file of the plan names a
    review to fetch."""
    import yaml

    from tests import gerrit

    old, current = _add_line("PATCHED = 'ps1'"), _add_line("PATCHED = 'ps2'")
    texts = {n: _format_patch(tmp_path, f"ps{n}", change).read_text() for n, change in ((1, old), (2, current))}
    with gerrit.serving({912345: texts}) as server:
        plan = _review_plan(tmp_path, monkeypatch, server.url)
        requests = list(server.requests)
    sha = hashlib.sha256(texts[2].encode()).hexdigest()
    assert yaml.safe_load(plan.files[REVIEWS_FILE]) == [{
        "project": "nova", "patch": 1, "review": "912345", "change": 912345, "patchset": 2, "sha256": sha,
        "url": f"{server.url}/c/912345/2"}]
    assert len(requests) == 2  # the change's current patch set, its patch: once for the whole plan
    docs = [d for rel, text in plan.files.items() if rel.startswith("k8s-0/manifests/")
            for d in yaml.safe_load_all(text) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nova-patches"]
    assert cm["data"] == {"01-review-912345-2.patch": texts[2]}
    args = [a for _, spec in pods.pod_specs(docs)
            for c in pods.containers(spec, init=True) if c["name"] == "patch"
            for a in c["command"]]
    assert f"{PATCH_PATHS['files']}/01-review-912345-2.patch#sha256:{sha}" in args
    assert not [a for a in args if a.startswith("review:")]
    node = yaml.safe_load(plan.files["compute-0/user-data"])
    dest = f"{NODE_PATCHES}/nova/01-review-912345-2.patch"
    (carried,) = [f for f in node["write_files"] if f["path"] == dest]
    assert base64.b64decode(carried["content"]).decode() == texts[2]
    node_vars = load_ansible_vars(next(f["content"] for f in node["write_files"] if f["path"].endswith("/vars.yml")))
    (nova,) = [p for p in node_vars["patches"] if p["project"] == "nova"]
    assert nova["files"] == [f"{dest}#sha256:{sha}"]
    for rel, text in plan.files.items():  # nothing left that fetches
        assert "/changes/912345" not in text and "review:912345" not in text, rel


def test_the_applier_applies_only_the_pinned_content(tmp_path, site):
    patch = _format_patch(tmp_path, "a", _add_line("PATCHED = 'a'"))
    sha = hashlib.sha256(patch.read_bytes()).hexdigest()
    argv = [sys.executable, str(SCRIPT), "--site", str(site), "--state", str(tmp_path / "state")]
    wrong = subprocess.run(argv + [f"{patch}#sha256:{'0' * 64}"], capture_output=True, text=True)
    assert wrong.returncode == 1
    assert wrong.stderr == f"patch failed: {patch}: its sha256 is {sha}, the plan pinned {'0' * 64}: " \
                           "not the content the plan was made with\n"
    assert "PATCHED" not in (site / FILE).read_text()
    right = subprocess.run(argv + [f"{patch}#sha256:{sha}"], capture_output=True, text=True)
    assert (right.returncode, right.stdout) == (0, f"applied: {patch.name}\n"), right.stderr


def test_a_plan_whose_review_server_cannot_answer_says_so_in_one_line(tmp_path, monkeypatch):
    import socket

    from typer.testing import CliRunner

    from osception.cli import app

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(patches, "GERRIT", url)
    monkeypatch.setattr(patches, "_resolved", {})
    monkeypatch.setenv("OSCEPTION_HOME", str(tmp_path / "home"))
    (tmp_path / "osception.yaml").write_text("patches:\n  nova:\n    - review: \"912345/3\"\n")
    result = CliRunner().invoke(app, ["plan", "-c", str(tmp_path / "osception.yaml"), "--out", str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: patches.nova.0: review 912345/3: cannot fetch it from {url} (")
    assert "give the patch as file:" in lines[0]
