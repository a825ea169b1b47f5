"""Rollout hashing: what makes `kubectl apply` of a new plan on a running controller
roll exactly the workloads whose settings changed, and run again exactly the Jobs
that changed (a checksum on each pod template, a hash in each Job's name)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

import yaml

from .. import services
from .checks import SafeLoader

CHECKSUM_ANNOTATION = "osception/config-checksum"
JOB_LABEL = "osception/job"


def referenced_config(pod: dict) -> list[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret of the plan a pod spec reads (not
    Kubernetes' own kube-root-ca.crt, which the plan does not make)."""
    refs = set()
    for v in pod.get("volumes", []):
        if "configMap" in v:
            refs.add(("ConfigMap", v["configMap"]["name"]))
        if "secret" in v:
            refs.add(("Secret", v["secret"]["secretName"]))
        for src in v.get("projected", {}).get("sources", []):
            if "configMap" in src and src["configMap"]["name"] != services.KUBE_ROOT_CA:
                refs.add(("ConfigMap", src["configMap"]["name"]))
            if "secret" in src:
                refs.add(("Secret", src["secret"]["name"]))
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                refs.add(("Secret", ref["secretKeyRef"]["name"]))
            if "configMapKeyRef" in ref:
                refs.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                refs.add(("Secret", e["secretRef"]["name"]))
            if "configMapRef" in e:
                refs.add(("ConfigMap", e["configMapRef"]["name"]))
    return sorted(refs)


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


def day2(manifests: dict[str, str]) -> dict[str, str]:
    """Make `kubectl apply` of a new plan on a running controller do the right thing:

    - every pod template carries the checksum of the ConfigMaps and Secrets it reads
      (annotation osception/config-checksum), so a changed setting rolls exactly the
      workloads that read it, and nothing else;
    - every Job is named after a hash of its spec and of what it reads
      (keystone-bootstrap-1a2b3c4d): Jobs are immutable, so a changed Job is a new Job
      that runs again, and the waits that name it follow; `kubectl apply --prune -l
      osception/job` (controller-setup) removes the Jobs of older plans.
    An unchanged plan gives the same text, so re-applying it changes nothing."""
    import hashlib

    # Each manifest as its text documents (split on the `---` lines the templates write)
    # and each document parsed once: the checksums go back into the text as written.
    parts = {name: re.split(r"(?m)^---\n", text) for name, text in manifests.items()}
    loaded = {name: [yaml.load(part, Loader=SafeLoader) for part in ps] for name, ps in parts.items()}
    objects = {(d["kind"], d["metadata"]["name"]): d for ds in loaded.values() for d in ds
               if d and d["kind"] in ("ConfigMap", "Secret")}

    def digest(value) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    jobs = {}
    for name, ds in loaded.items():
        for k, d in enumerate(ds):
            if d and d["kind"] in WORKLOADS:
                pod = d["spec"]["template"]
                read = [objects[r] for r in referenced_config(pod["spec"])]
                checksum = digest([[o["kind"], o["metadata"]["name"], o.get("data"), o.get("stringData")]
                                   for o in read])[:16]
                pod.setdefault("metadata", {}).setdefault("annotations", {})[CHECKSUM_ANNOTATION] = checksum
                parts[name][k] = _annotate(parts[name][k], checksum)
                if d["kind"] == "Job":
                    jobs[d["metadata"]["name"]] = f"{d['metadata']['name']}-{digest(d['spec'])[:8]}"
    out = {}
    for name, ps in parts.items():
        text = "---\n".join(ps)
        for job, new in jobs.items():
            text = re.sub(rf"(\bjob/|^  name: ){re.escape(job)}\b(?=[\"\n])", rf"\g<1>{new}", text, flags=re.M)
            text = text.replace(f"kind: Job\nmetadata:\n  name: {new}\n",
                                f"kind: Job\nmetadata:\n  name: {new}\n  labels:\n    {JOB_LABEL}: \"true\"\n")
        out[name] = text
    return out


def _annotate(document: str, checksum: str) -> str:
    """Add the checksum annotation to a workload document's pod template, as text (the
    manifests stay as written, comments included)."""
    line = f'        {CHECKSUM_ANNOTATION}: "{checksum}"\n'
    if re.search(r"(?m)^    metadata:\n(      labels:\n(        .*\n)+)?      annotations:\n", document):
        return re.sub(r"(?m)^(      annotations:\n)", lambda m: m.group(1) + line, document, count=1)
    return re.sub(r"(?m)^(  template:\n    metadata:\n)", lambda m: m.group(1) + "      annotations:\n" + line,
                  document, count=1)
