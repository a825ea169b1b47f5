"""The pods of rendered manifests: every workload's pod template and its containers,
walked one way for the tests that read them (test_manifests, the Kolla contract,
test_patches, test_state, test_day2)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# The kinds whose spec holds a pod template (the plan makes no DaemonSet or CronJob).
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def pod_specs(docs: Iterable[dict]) -> Iterator[tuple[dict, dict]]:
    """(document, its pod template's spec) of every workload among the documents."""
    for d in docs:
        if d and d["kind"] in WORKLOADS:
            yield d, d["spec"]["template"]["spec"]


def containers(spec: dict, init: bool | None = None) -> list[dict]:
    """A pod spec's init containers, then its containers; init=True the init ones
    only, init=False the others only."""
    return ([] if init is False else spec.get("initContainers") or []) + \
        ([] if init is True else spec.get("containers") or [])
