"""The Kolla contract, for every release in the table: what the controller's
containers assume of the Kolla images is checked against that release's own
kolla and kolla-ansible sources (pinned in osception/releases.py)."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from osception import config, releases, render, secrets, services

from . import contract, sources
from osception.render.patches import PATCH_PATHS

RELEASES = list(releases.RELEASES)

# What the contract finds in a release the control plane is not yet made to fit:
# {(release, test): finding}. Each is a strict xfail, so the fix shows as a failure here.
KNOWN_GAPS = {
    (rel.name, name): rel.kolla_gaps
    for rel in releases.RELEASES.values() if rel.kolla_gaps
    for name in ("test_every_evidence_entry_holds_in_that_release",
                 "test_every_executable_is_one_the_image_ships_or_kolla_calls",
                 "test_containers_agree_with_kolla_ansibles_config_json")
}


@pytest.fixture(autouse=True)
def _known_gap(request):
    callspec = getattr(request.node, "callspec", None)
    gap = callspec and KNOWN_GAPS.get((callspec.params.get("release"), request.node.originalname))
    if gap:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=gap))


@pytest.fixture(scope="module", params=RELEASES)
def release(request) -> releases.Release:
    return releases.get(request.param)


@pytest.fixture(scope="module")
def kolla_sources(release) -> sources.KollaSources:
    return sources.get(release)


@pytest.fixture(scope="module")
def plan(release, state_home) -> render.Plan:
    cfg = config.load(None).model_copy(update={"release": release.name})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    return render.build(cfg, sec)


@pytest.fixture(scope="module")
def kolla_containers(plan):
    return [c for c in contract.containers(plan) if contract.CONFIG_DIR in c.mounts]


def test_every_image_is_an_image_of_that_kolla_release(plan, kolla_sources):
    for c in contract.containers(plan):
        assert contract.image_dir(kolla_sources, c.kolla_image), f"{c.label}: no image {c.kolla_image} in {kolla_sources.kolla.name}"
        assert c.image.endswith(":" + plan.release.kolla_tag), c.image


@pytest.mark.skipif(os.geteuid() != 0, reason="set_configs.py chowns to Kolla's uids: needs root")
def test_kolla_set_configs_accepts_every_config_json(kolla_containers, kolla_sources, tmp_path):
    users = contract.kolla_users(kolla_sources)
    assert kolla_containers
    for i, c in enumerate(kolla_containers):
        root = tmp_path / f"c{i}"
        done = contract.run_set_configs(kolla_sources, c, root)
        assert done.returncode == 0, f"{c.label}: set_configs.py failed:\n{done.stderr[-2000:]}"
        config = c.config_json
        assert (root / "run_command").read_text() == config["command"], c.label
        for entry in config.get("config_files", []):
            dest = root / entry["dest"].lstrip("/")
            st = dest.stat()
            assert oct(st.st_mode & 0o777) == oct(int(entry["perm"], 8)), f"{c.label}: {entry['dest']}"
            assert st.st_uid == users[entry["owner"]][0], f"{c.label}: {entry['dest']} owner"
        # and its own consistency check (`kolla_set_configs --check`) passes afterwards
        check = contract.run_set_configs(kolla_sources, c, root, check=True)
        assert check.returncode == 0, f"{c.label}: set_configs.py --check:\n{check.stderr[-2000:]}"


def test_every_evidence_entry_holds_in_that_release(kolla_sources):
    for e in contract.EVIDENCE:
        if contract.image_dir(kolla_sources, e.folder):
            assert contract.evidence_holds(kolla_sources, e), f"{e.executable}: {e.file} no longer matches {e.pattern!r}"


def test_every_executable_is_one_the_image_ships_or_kolla_calls(plan, kolla_sources):
    problems = []
    checked = 0
    for c in contract.containers(plan):
        allowed = contract.allowed_executables(kolla_sources, c.kolla_image)
        for call in contract.calls(c):
            checked += 1
            if not contract.is_allowed(call.executable, allowed):
                problems.append(f"{call.where}: {call.executable!r} is not shown in {c.kolla_image}'s "
                                f"Kolla files ({kolla_sources.kolla.name}, {kolla_sources.ansible.name})")
    assert not problems, "\n".join(problems)
    assert checked > 50


@pytest.fixture(scope="module")
def all_kolla_sources() -> list[sources.KollaSources]:
    return [sources.get(r) for r in releases.RELEASES.values()]


def test_uwsgi_settings_agree_with_kolla_ansible(plan, kolla_sources, all_kolla_sources):
    """Each API's uWSGI file has every setting kolla-ansible's service-uwsgi-config
    gives that service, with the same value, apart from the documented deviations.
    Where this release's kolla-ansible runs the service another way (e.g. glance under
    eventlet in 2025.1), the newest pinned kolla-ansible that runs it under uWSGI is
    the reference; settings we add must be ones some pinned kolla-ansible sets."""
    ours_by_file = {}
    for path, text in plan.files.items():
        if path.startswith("k8s-0/manifests/"):
            for doc in contract.yaml.safe_load_all(text):
                if doc and doc["kind"] == "ConfigMap":
                    for key, value in doc.get("data", {}).items():
                        if key in contract.UWSGI_FILES:
                            ours_by_file[key] = value
    newest_first = sorted(all_kolla_sources, key=lambda s: s.release.name, reverse=True)
    known_keys = set()
    for s in newest_first:  # kolla-ansible before 19 (2024.1) has no uWSGI role: Apache mod_wsgi
        template = s.roles / "service-uwsgi-config" / "templates" / "uwsgi.ini.j2"
        if template.exists():
            known_keys |= set(contract.ini_pairs(template.read_text()))
    compared = 0
    for name, (role, service_name) in contract.UWSGI_FILES.items():
        if name not in ours_by_file:
            continue  # this release does not run that API under uWSGI (neutron in 2025.1)
        ours = contract.ini_pairs(ours_by_file[name])
        reference = next(filter(None, (contract.kolla_ansible_uwsgi(s, role, service_name, ours)
                                       for s in [kolla_sources] + newest_first)), None)
        assert reference, f"{name}: no pinned kolla-ansible runs {service_name} under uWSGI"
        theirs = contract.ini_pairs(reference)
        if not plan.release.wsgi_modules:  # the project's WSGI script, as kolla-ansible's
            # template writes it (service_uwsgi_config_wsgi_file), for the newer reference's module
            assert ours["wsgi-file"].startswith("/var/lib/kolla/venv/bin/"), name
            theirs["wsgi-file"] = ours["wsgi-file"]
            del theirs["module"]
        differing = {k for k in theirs if ours.get(k) != theirs[k]}
        assert differing == set(contract.UWSGI_DEVIATIONS) & set(theirs), (
            name, {k: (ours.get(k), theirs[k]) for k in differing})
        extra = set(ours) - set(theirs)
        assert extra <= known_keys, f"{name}: settings no kolla-ansible uses: {extra - known_keys}"
        compared += 1
    assert compared >= 5


def test_every_kolla_bootstrap_step_runs_in_our_job(plan, kolla_sources):
    """What Kolla's own bootstrap of an image does (its extend_start.sh KOLLA_BOOTSTRAP
    block) our Job with that image does too: this is what catches a missing
    `glance-manage db_load_metadefs` or placement's online data migrations."""
    jobs = [c for c in contract.containers(plan)
            if c.workload.startswith("Job/") and not c.init and c.config_json is not None]
    assert len(jobs) >= 6
    for c in jobs:
        config = c.config_json
        command = config["command"]
        ours = {contract.action(command)}
        args = command.split()
        if args[0] == "bash":  # every command of the script, both sides of an `||` too
            script = c.mounts[contract.CONFIG_DIR][args[1].rsplit("/", 1)[1]]
            ours |= {contract.action(part) for line in script.splitlines()
                     if line.strip() and not line.lstrip().startswith(("#", "set "))
                     for part in line.split("||")}
        for step in contract.bootstrap_commands(kolla_sources, c.kolla_image):
            assert step in ours or step in contract.BOOTSTRAP_DEVIATIONS, (
                f"{c.workload}: Kolla's {c.kolla_image} bootstrap runs `{step}`; our Job does not")


def test_containers_agree_with_kolla_ansibles_config_json(plan, kolla_sources):
    """Command, files, owners and modes of every long-running container agree with
    kolla-ansible's config.json for the same container, or differ by a documented
    reason (contract.CONFIG_DEVIATIONS, EXTRA_FILES)."""
    compared, unexplained = 0, []
    for c in contract.containers(plan):
        if c.init or c.workload.startswith("Job/") or c.config_json is None:
            continue
        found = contract.config_differences(kolla_sources, c)
        if found is None:
            continue
        compared += 1
        diffs, extra = found
        unexplained += [f"{c.name}: {what}" for name, what in sorted(diffs)
                        if (name, what) not in contract.CONFIG_DEVIATIONS]
        unexplained += [f"{c.name}: extra file {d}" for d in sorted(extra)
                        if not any(contract.re.search(p, d) for p in contract.EXTRA_FILES)]
    assert not unexplained, "\n".join(unexplained)
    assert compared >= 13


def test_every_documented_deviation_still_exists_in_some_release(all_kolla_sources):
    """A deviation that no pinned release shows any more is stale: remove it."""
    seen = set()
    for s in all_kolla_sources:
        cfg = config.load(None).model_copy(update={"release": s.release.name})
        import tempfile
        from pathlib import Path
        p = render.build(cfg, secrets.ensure(Path(tempfile.mkdtemp()) / "x", "x"))
        for c in contract.containers(p):
            if not c.init and not c.workload.startswith("Job/") and c.config_json is not None:
                found = contract.config_differences(s, c)
                if found:
                    seen |= found[0]
    assert set(contract.CONFIG_DEVIATIONS) <= seen, set(contract.CONFIG_DEVIATIONS) - seen


def test_images_run_as_kolla_expects(plan, kolla_sources):
    """No pod overrides the user its image runs as (a runAsUser is that user's own
    uid: runAsNonRoot needs it by number), and every image that runs as root and
    serves uWSGI drops to its service user (uid in the uWSGI file)."""
    users = contract.kolla_users(kolla_sources)
    for c in contract.containers(plan):
        image_user = contract.image_user(kolla_sources, c.kolla_image)
        for ctx in (c.pod.get("securityContext", {}), c.spec.get("securityContext", {})):
            assert "runAsGroup" not in ctx, c.label
            if "runAsUser" in ctx:
                assert image_user != "root" and ctx["runAsUser"] == users[image_user][0], (c.label, image_user)
        config = c.config_json
        if config and config["command"].startswith("uwsgi ") and contract.image_user(kolla_sources, c.kolla_image) == "root":
            ini = c.mounts[contract.CONFIG_DIR][config["command"].split()[1].rsplit("/", 1)[1]]
            owner = {e["owner"] for e in config["config_files"]}
            assert contract.ini_pairs(ini).get("uid") in owner, f"{c.label}: uWSGI as root"


# --- securityContext: what each container keeps -------------------------------------------

@pytest.fixture(scope="module")
def file_patched_plan(release, state_home, tmp_path_factory) -> render.Plan:
    """Every patchable project with a patch file (its pods get the `patch` init container)."""
    folder = tmp_path_factory.mktemp("file-patches")
    patches = {}
    for project in services.PATCHABLE:
        (folder / f"{project}.patch").write_text(_diff(project))  # a patch with a hunk, as plan reads one
        patches[project] = [config.Patch(file=folder / f"{project}.patch")]
    cfg = config.load(None).model_copy(update={"release": release.name, "patches": patches})
    return render.build(cfg, secrets.ensure(state_home / cfg.name, cfg.name))


def test_every_container_keeps_only_what_its_command_needs(plan, file_patched_plan, kolla_sources):
    """Every pod runs under the runtime's default seccomp filter. A container may
    escalate privileges only if it goes through this release's kolla_start and that
    runs sudo (setuid root); it keeps no capability but KOLLA_START_CAPABILITIES, and
    those only through kolla_start; every other container keeps none and runs as
    non-root where its image's user is not root."""
    sudo = contract.kolla_start_runs_sudo(kolla_sources)
    checked = set()
    for c in contract.containers(plan) + contract.containers(file_patched_plan):
        assert c.pod.get("securityContext", {}).get("seccompProfile") == {"type": "RuntimeDefault"}, c.workload
        ctx = c.spec.get("securityContext", {})
        through = contract.goes_through_kolla_start(c)
        assert ctx.get("allowPrivilegeEscalation") is (through and sudo), f"{c.label}: {ctx}"
        assert not ctx.get("privileged"), c.label
        caps = ctx.get("capabilities", {})
        assert caps.get("drop") == ["ALL"], f"{c.label}: {caps}"
        allowed = set(services.KOLLA_START_CAPABILITIES) if through else set()
        assert set(caps.get("add", [])) <= allowed, f"{c.label} keeps {set(caps.get('add', [])) - allowed}"
        # not through kolla_start: non-root wherever the image's user is not root
        user = contract.image_user(kolla_sources, c.kolla_image)
        assert ctx.get("runAsNonRoot", False) is (not through and user != "root"), f"{c.label} ({user}): {ctx}"
        checked.add((c.name, through))
    # both kinds are there: the Kolla services and the init containers of ours
    assert {through for _, through in checked} == {True, False}
    assert {"wait", "patch", "create-databases", "log", "register", "bootstrap"} <= {n for n, _ in checked}


def _debian_root_with_sudo():
    """The devcloud nodes' Debian root (built once per machine), when it is there: it
    has Debian's sudo, as the Kolla images have their distribution's."""
    from osception.devcloud import nodes
    root = nodes.cache_home() / "nodes" / f"base-{nodes.BASE_SUITE}"
    if not (root / ".osception-complete").exists() or not (root / "usr/bin/sudo").exists():
        pytest.skip(f"no Debian root with sudo at {root} (`osception devcloud up` builds it)")
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts an overlay and runs chroot: needs root")
def test_kolla_start_needs_exactly_its_capabilities(plan, kolla_sources, tmp_path):
    """The release's kolla_start, with its sudoers, set_configs.py and the images'
    extend_start.sh, under Debian's sudo: a root image (keystone: its extend_start.sh
    gives the log folder to keystone, then writes in it) and a service user's (nova):
    it succeeds with exactly services.KOLLA_START_CAPABILITIES, each one left out
    breaks it, and it cannot run with no_new_privs (allowPrivilegeEscalation: false)."""
    debian = _debian_root_with_sudo()
    assert contract.kolla_start_runs_sudo(kolla_sources)
    by_label = {c.label: c for c in contract.containers(plan)}
    picks = [by_label["Deployment/keystone/keystone"], by_label["Deployment/nova-conductor/nova-conductor"]]
    assert [contract.image_user(kolla_sources, c.kolla_image) for c in picks] == ["root", "nova"]
    runs = iter(range(1000))

    def passes(c, caps, **kw):
        return contract.run_kolla_start(kolla_sources, c, debian, tmp_path / str(next(runs)), caps, **kw)

    caps = set(services.KOLLA_START_CAPABILITIES)
    for c in picks:
        ok, log = passes(c, caps)
        assert ok, f"{c.label} with {sorted(caps)}:\n{log[-3000:]}"
    for cap in sorted(caps):
        assert not all(passes(c, caps - {cap})[0] for c in picks), f"{cap} is not needed"
    ok, log = passes(picks[1], caps, no_new_privs=True)
    assert not ok and "no new privileges" in log, log[-2000:]


# --- patches: the `patch` init container (k8s/_kolla.j2) --------------------------------

def _diff(project: str) -> str:
    return (f"diff --git a/{project}/x.py b/{project}/x.py\n--- a/{project}/x.py\n"
            f"+++ b/{project}/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n")


@pytest.fixture(scope="module")
def patched_plan(release, state_home, tmp_path_factory) -> render.Plan:
    """Every patchable project with a patch file and an upstream review (resolved when
    the plan is made, from a local server answering as Gerrit's REST API does:
    tests/gerrit.py; this machine cannot reach review.opendev.org)."""
    from osception import patches as patches_mod
    from tests import gerrit

    folder = tmp_path_factory.mktemp("patches")
    patches = {}
    for project in services.PATCHABLE:
        (folder / f"{project}.patch").write_text(_diff(project))
        patches[project] = [config.Patch(file=folder / f"{project}.patch"), config.Patch(review="912345/3")]
    cfg = config.load(None).model_copy(update={"release": release.name, "patches": patches})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    with gerrit.serving({912345: {3: _diff("nova")}}) as review_server, \
            pytest.MonkeyPatch.context() as mp:
        mp.setattr(patches_mod, "GERRIT", review_server.url)
        return render.build(cfg, sec)


def test_every_pod_of_a_patched_project_imports_its_patched_copy(patched_plan, kolla_sources):
    """In every pod that runs a patched project's image: a `patch` init container with
    that image copies the project's package from where the image's python3 imports it
    (Kolla puts its venv first on PATH) and the pod's containers import the copy first;
    the init container calls only what the image ships (python3), with the script and
    patch files from the project's ConfigMaps."""
    base = contract.image_dir(kolla_sources, "openstack-base") / "Dockerfile.j2"
    assert re.search(r"^ENV PATH /var/lib/kolla/venv/bin:\$PATH$", base.read_text(), re.M)
    paths = PATCH_PATHS
    by_pod: dict[str, list[contract.Container]] = {}
    for c in contract.containers(patched_plan):
        by_pod.setdefault(c.workload, []).append(c)
    patched = 0
    for workload, cs in by_pod.items():
        chain = {f.name for c in cs for f in contract.image_chain(kolla_sources, c.kolla_image)}
        project = next((p for p in services.PATCHABLE if f"{p}-base" in chain), None)
        patch = [c for c in cs if c.init and c.name == "patch"]
        if project is None:
            assert not patch, workload
            continue
        patched += 1
        assert len(patch) == 1, f"{workload}: runs {project}'s image without its patch init container"
        init = patch[0]
        assert init.image == next(c.image for c in cs if not c.init), workload
        allowed = contract.allowed_executables(kolla_sources, init.kolla_image)
        assert all(contract.is_allowed(call.executable, allowed) for call in contract.calls(init))
        argv = init.spec["command"]
        assert argv[:5] == ["python3", paths["script"], "--shadow", project, "--site"], argv
        files = init.mounts[paths["files"]]
        # the review as the plan pinned it: its content in the ConfigMap, its sha256 checked
        review = f"{paths['files']}/02-review-912345-3.patch"
        assert "osception-patch.py" in files and argv[-1].startswith(review + "#sha256:"), argv
        assert files["02-review-912345-3.patch"] == _diff("nova")
        assert argv[-1].split("#sha256:")[1] == hashlib.sha256(_diff("nova").encode()).hexdigest()
        assert [a for a in argv if a.startswith(paths["files"] + "/")][:2] == [paths["script"], f"{paths['files']}/01-{project}.patch"]
        assert f"01-{project}.patch" in files
        for c in (c for c in cs if not c.init):
            assert c.env.get("PYTHONPATH") == paths["site"], c.label
            mount = next(m for m in c.spec["volumeMounts"] if m["mountPath"] == paths["root"])
            assert mount.get("readOnly") is True, c.label
    assert patched >= len(services.PATCHABLE) * 2  # each project's Job(s) and Deployment(s)


def test_a_plan_without_patches_has_no_patch_container_nor_script(plan):
    assert not [c for c in contract.containers(plan) if c.name == "patch"]
    assert "osception-patch.py" not in plan.files["k8s-0/manifests/00-namespace.yaml"]
