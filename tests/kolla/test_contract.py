"""The Kolla contract, for every release in the table: what the controller's
containers assume of the Kolla images is checked against that release's own
kolla and kolla-ansible sources (pinned in osception/releases.py)."""

from __future__ import annotations

import os

import pytest

from osception import config, releases, render, secrets

from . import contract, sources

RELEASES = list(releases.RELEASES)


@pytest.fixture(scope="module", params=RELEASES)
def release(request) -> releases.Release:
    return releases.get(request.param)


@pytest.fixture(scope="module")
def src(release) -> sources.KollaSources:
    return sources.get(release)


@pytest.fixture(scope="module")
def plan(release, state_home) -> render.Plan:
    cfg = config.load(None).model_copy(update={"release": release.name})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    return render.build(cfg, sec)


@pytest.fixture(scope="module")
def kolla_containers(plan):
    return [c for c in contract.containers(plan) if contract.CONFIG_DIR in c.mounts]


def test_every_image_is_an_image_of_that_kolla_release(plan, src):
    for c in contract.containers(plan):
        assert contract.image_dir(src, c.kolla_image), f"{c.label}: no image {c.kolla_image} in {src.kolla.name}"
        assert c.image.endswith(":" + plan.release.kolla_tag), c.image


@pytest.mark.skipif(os.geteuid() != 0, reason="set_configs.py chowns to Kolla's uids: needs root")
def test_kolla_set_configs_accepts_every_config_json(kolla_containers, src, tmp_path):
    users = contract.kolla_users(src)
    assert kolla_containers
    for i, c in enumerate(kolla_containers):
        root = tmp_path / f"c{i}"
        done = contract.run_set_configs(src, c, root)
        assert done.returncode == 0, f"{c.label}: set_configs.py failed:\n{done.stderr[-2000:]}"
        config = c.config_json
        assert (root / "run_command").read_text() == config["command"], c.label
        for entry in config.get("config_files", []):
            dest = root / entry["dest"].lstrip("/")
            st = dest.stat()
            assert oct(st.st_mode & 0o777) == oct(int(entry["perm"], 8)), f"{c.label}: {entry['dest']}"
            assert st.st_uid == users[entry["owner"]][0], f"{c.label}: {entry['dest']} owner"
        # and its own consistency check (`kolla_set_configs --check`) passes afterwards
        check = contract.run_set_configs(src, c, root, check=True)
        assert check.returncode == 0, f"{c.label}: set_configs.py --check:\n{check.stderr[-2000:]}"


def test_every_evidence_entry_holds_in_that_release(src):
    for e in contract.EVIDENCE:
        if contract.image_dir(src, e.folder):
            assert contract.evidence_holds(src, e), f"{e.executable}: {e.file} no longer matches {e.pattern!r}"


def test_every_executable_is_one_the_image_ships_or_kolla_calls(plan, src):
    problems = []
    checked = 0
    for c in contract.containers(plan):
        allowed = contract.allowed_executables(src, c.kolla_image)
        for call in contract.calls(c):
            checked += 1
            if not contract.is_allowed(call.executable, allowed):
                problems.append(f"{call.where}: {call.executable!r} is not shown in {c.kolla_image}'s "
                                f"Kolla files ({src.kolla.name}, {src.ansible.name})")
    assert not problems, "\n".join(problems)
    assert checked > 50
