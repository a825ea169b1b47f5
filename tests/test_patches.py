"""osception-patch.py, the one way osception patches an installed project (Kolla
venvs, nodes' dist-packages, the devcloud): real `git format-patch` files applied by
GNU patch to real installed files (openstacksdk's, from this venv), idempotent,
revertable, and a patch that does not apply named with its file and hunk."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osception import render

SCRIPT = Path(render.__file__).parent / "templates" / "scripts" / "osception-patch.py"
SDK = Path(importlib.util.find_spec("openstack").origin).parent  # the installed package
FILE = "openstack/version.py"


def _load():
    spec = importlib.util.spec_from_file_location("osception_patch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


patcher = _load()


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
