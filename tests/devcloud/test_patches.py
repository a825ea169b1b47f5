"""`patches:` on the devcloud, for real: a `git format-patch` of Placement (a response
header on its root document) given in osception.yaml changes what the running API
answers after `up` (the controller's own `patch` init container, run by the devcloud
from the rendered manifests), only Placement restarts, and removing it restores the answer; a
patch that does not apply fails `up` with the patch, file and hunk named, the running
Placement untouched."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from osception.devcloud import Devcloud
from osception.devcloud.layout import PORTS
from osception.devcloud.lifecycle import Settings
from osception.devcloud.processes import DevcloudError
from osception.devcloud.venv import site_packages

ROOT = "placement/handlers/root.py"
HEADER = "X-Osception-Patch"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                           *args], check=True, capture_output=True, text=True).stdout


def _format_patch(tmp_path: Path, source: Path, change, subject: str) -> Path:
    """Upstream's way: the project's file in a repository, changed, `git format-patch`."""
    repo = tmp_path / f"repo-{len(list(tmp_path.glob('repo-*')))}"
    (repo / ROOT).parent.mkdir(parents=True)
    shutil.copy(source, repo / ROOT)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    (repo / ROOT).write_text(change((repo / ROOT).read_text()))
    _git(repo, "commit", "-qam", subject)
    return Path(_git(repo, "format-patch", "-1", "-o", str(tmp_path / "patches")).strip())


def _root_headers() -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['placement']}/", timeout=10) as r:
        return dict(r.headers)


def _pids(layout) -> dict[str, int]:
    return {p.stem: int(p.read_text().split('"pid": ')[1].split(",")[0])
            for p in (layout.root / "run").glob("*.json")}


def test_a_patch_changes_the_running_api_and_removing_it_restores_it(devcloud, tmp_path):
    layout = devcloud.layout
    settings = Settings.load(layout)
    before = settings.config
    source = site_packages(Path(settings.venv)) / ROOT
    patch = _format_patch(tmp_path, source, lambda t: t.replace(
        "    req.response.content_type = 'application/json'\n",
        "    req.response.content_type = 'application/json'\n"
        f"    req.response.headers['{HEADER}'] = 'placement-root'\n", 1), "Say the root was patched")
    broken = _format_patch(tmp_path, source, lambda t: t.replace("'status': 'CURRENT'", "'status': 'X'"),
                           "Change the status")
    (tmp_path / "osception.yaml").write_text(f"patches:\n  placement:\n    - file: {patch}\n")
    (tmp_path / "pristine.yaml").write_text("patches: {}\n")
    # drift the copy the broken patch is made from, so that its hunk no longer applies
    text = broken.read_text().replace("'status': 'CURRENT'", "'status': 'CURRENTLY'")
    broken.write_text(text)
    (tmp_path / "broken.yaml").write_text(f"patches:\n  placement:\n    - file: {broken}\n")
    dc = Devcloud(layout, say=print)
    assert HEADER not in _root_headers()
    try:
        pids = _pids(layout)
        started = time.monotonic()
        dc.up(config_path=tmp_path / "osception.yaml")
        print(f"\npatch applied to the running devcloud in {time.monotonic() - started:.1f} s")
        assert _root_headers()[HEADER] == "placement-root"
        # the manifests' `patch` init container made the copy the API imports first
        copy, = (layout.root / "pods" / "placement-api").glob(f"patched-*/patched/{ROOT}")
        assert HEADER in copy.read_text()
        assert HEADER not in (site_packages(Path(settings.venv)) / ROOT).read_text()
        after = _pids(layout)
        assert [n for n in pids if pids[n] != after.get(n)] == ["placement"]  # only it restarted
        dc.up(config_path=tmp_path / "osception.yaml")  # the same set again: nothing restarts
        assert _pids(layout) == after

        with pytest.raises(DevcloudError, match=rf"{broken.name}: does not apply \({ROOT}: Hunk #1 FAILED"):
            dc.up(config_path=tmp_path / "broken.yaml")
        assert _root_headers()[HEADER] == "placement-root"  # the running one is untouched

        dc.up(config_path=tmp_path / "pristine.yaml")
        assert HEADER not in _root_headers()
        assert not list((layout.root / "pods" / "placement-api").glob("patched-*"))  # its copy gone
    finally:
        settings = Settings.load(layout)
        settings.config = before
        settings.save(layout)
        dc.up()
