"""Re-applying a plan on a running controller (render.rollout.day2): a changed setting rolls
exactly the workloads that read it, a changed Job is a new Job, and an unchanged
plan changes nothing."""

from __future__ import annotations

import yaml

from osception import config, render, secrets
from osception.render.rollout import JOB_LABEL, referenced_config
from tests import pods


def _objects(plan: render.Plan) -> dict[tuple[str, str], dict]:
    out = {}
    for path, text in plan.files.items():
        if path.startswith("k8s-0/manifests/"):
            for d in yaml.load_all(text, Loader=yaml.CSafeLoader):
                if d:
                    out[(d["kind"], d["metadata"]["name"])] = d
    return out


def _plan(state_home, **changes) -> render.Plan:
    cfg = config.load(None).model_copy(update=changes)
    return render.build(cfg, secrets.ensure(state_home / "osception", "osception"))


def test_one_override_changes_only_what_reads_it(state_home, default_plan):
    before = _objects(default_plan)
    after = _objects(_plan(state_home, overrides={"nova.conf": {"DEFAULT": {"debug": True}}}))
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    gone, new = set(before) - set(after), set(after) - set(before)
    # nova.conf lives in nova-config; every nova workload reads it and rolls
    assert ("ConfigMap", "nova-config") in changed
    assert {n for k, n in changed if k == "Deployment"} == {
        "nova-api", "nova-metadata", "nova-conductor", "nova-scheduler", "nova-novncproxy"}
    # the nova Job is immutable: it is replaced by a new one under a new name
    assert [n for k, n in gone] == [n for k, n in gone if n.startswith("nova-db-sync-")] and gone
    assert [n for k, n in new if k == "Job"] and all(n.startswith("nova-db-sync-") for k, n in new)
    # nothing else: no other service restarts
    assert not {n for k, n in changed if k in ("StatefulSet", "Job")}
    assert all(n.startswith("nova") for k, n in changed)


def test_waits_name_the_current_jobs_and_jobs_carry_the_prune_label(default_plan):
    objects = _objects(default_plan)
    jobs = {n for k, n in objects if k == "Job"}
    for (kind, name), d in objects.items():
        if kind == "Job":
            assert d["metadata"]["labels"][JOB_LABEL] == "true"
    for d, spec in pods.pod_specs(objects.values()):
        for c in pods.containers(spec, init=True):
            for arg in c.get("command", []):
                if arg.startswith("job/"):
                    assert arg.removeprefix("job/") in jobs, (d["metadata"]["name"], arg)


def test_an_unchanged_plan_renders_the_same_objects(state_home, default_plan):
    """Rendered again, the defaults' plan (default_plan: the same config and secrets)."""
    assert _objects(_plan(state_home)) == _objects(default_plan)


def test_a_secret_change_rolls_its_readers(default_plan):
    objects = _objects(default_plan)
    readers = {n for (k, n), d in objects.items() if k == "Deployment"
               and ("Secret", "keystone-secrets") in referenced_config(d["spec"]["template"]["spec"])}
    assert "keystone" in readers
