"""`osception logs`: what each node can show, and the command that shows it.

The controller's services are the workloads of its manifests (read with `kubectl
logs`), plus k3s itself; a compute or network node's are its systemd units (read
with `journalctl`). Nothing here connects anywhere: the CLI runs the command over SSH.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from . import services
from .render.layout import NAMESPACE

KINDS = {"Deployment": "deploy", "StatefulSet": "sts", "Job": "job"}


def sources(role: str, manifests: Iterable[str] = ()) -> dict[str, str]:
    """Service name -> what holds its log: deploy/NAME, sts/NAME, job/NAME or unit/NAME."""
    if role != "controller":
        return {unit: f"unit/{unit}" for unit in services.NODE_SERVICES[role]}
    out = {}
    for text in manifests:
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") in KINDS:
                name = doc["metadata"]["name"]
                # A Job is named after its spec (render.rollout.day2: nova-db-sync-1a2b3c4d);
                # it is asked for by its pods' app label (nova-db-sync).
                service = doc["spec"]["template"].get("metadata", {}).get("labels", {}).get("app", name)
                out[service if doc["kind"] == "Job" else name] = f"{KINDS[doc['kind']]}/{name}"
    out["k3s"] = "unit/k3s"
    return dict(sorted(out.items()))


def command(source: str, lines: int) -> list[str]:
    """The command, run on the node, that prints the last `lines` lines of a source."""
    kind, name = source.split("/", 1)
    if kind == "unit":
        return ["sudo", "journalctl", "--no-pager", "-u", name, "-n", str(lines)]
    return ["sudo", "k3s", "kubectl", "-n", NAMESPACE, "logs", source,
            "--all-containers", "--prefix", "--tail", str(lines)]
