"""The pods of rendered manifests, walked the product's one way (render.rollout: every
workload's pod template and its containers) for the tests that read them
(test_manifests, the Kolla contract, test_patches, test_state, test_day2)."""

from osception.render.rollout import WORKLOADS, containers, pod_specs

__all__ = ["WORKLOADS", "containers", "pod_specs"]
