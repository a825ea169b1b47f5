"""Say why the control plane is not ready yet: one line per workload.

    kube_diagnose.py NAMESPACE [KUBECTL...]    (default KUBECTL: k3s kubectl)

Reads `kubectl -n NAMESPACE get pods,jobs -o json` and prints, for each workload
that is not ready, its reason, worst first (nothing when every pod is ready):

    job/nova-db-sync: CrashLoopBackOff (exit 1, 6 restarts): <its last log line>
    deploy/nova-api: init wait: waiting for job/nova-db-sync: not yet

Standard library only: it runs with the controller's python3; the tests import it.
"""

import json
import subprocess
import sys

LIMIT = 12  # lines per report: the serial console is not a log store
WIDTH = 160
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
# Worst first: a failed Job, a crashing container, an image that cannot be pulled, a pod
# that cannot start, a pod waiting on something else, a pod that is not ready yet.
FAILED, CRASHING, IMAGE, BLOCKED, WAITING, NOT_READY = range(6)
KINDS = {"ReplicaSet": "deploy", "StatefulSet": "sts", "Job": "job", "DaemonSet": "ds"}


def workload(pod):
    """deploy/NAME, sts/NAME, job/NAME: what owns the pod."""
    meta = pod["metadata"]
    for ref in meta.get("ownerReferences", []):
        name = ref["name"]
        if ref["kind"] == "ReplicaSet":  # NAME-<pod-template-hash>
            name = name.rsplit("-", 1)[0]
        return f"{KINDS.get(ref['kind'], ref['kind'].lower())}/{name}"
    return f"pod/{meta['name']}"


def _container(status, label, init):
    """(rank, text, log request) of a container that is not done, else None."""
    name, state = status["name"], status.get("state", {})
    restarts = status.get("restartCount", 0)
    if "waiting" in state:
        reason = state["waiting"].get("reason") or "Waiting"
        message = state["waiting"].get("message", "")
        if reason in IMAGE_ERRORS:
            return IMAGE, f"{label}{reason} {status.get('image', '')}", None
        if reason == "CrashLoopBackOff":
            last = status.get("lastState", {}).get("terminated", {})
            return (CRASHING, f"{label}CrashLoopBackOff (exit {last.get('exitCode', '?')}, "
                    f"{restarts} restarts)", (name, True, last.get("message", "")))
        if reason in ("ContainerCreating", "PodInitializing"):
            return NOT_READY, f"{label}{reason}", None
        return BLOCKED, f"{label}{reason}: {message}".rstrip(": "), None
    if "running" in state and not status.get("ready"):
        if init:  # an init container waits for something: its log says what
            return WAITING, label.rstrip(": "), (name, False, "")
        return NOT_READY, f"{label}running, not ready ({restarts} restarts)", (name, False, "")
    done = state.get("terminated", {})
    if done.get("exitCode"):
        return (CRASHING, f"{label}{done.get('reason', 'Error')} (exit {done['exitCode']})",
                (name, False, done.get("message", "")))
    return None


def pod_problem(pod):
    """(rank, text, log request) of a pod that should run and is not ready, else None."""
    status = pod.get("status", {})
    if status.get("phase") in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
        return None
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Ready", {}).get("status") == "True":
        return None
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return BLOCKED, f"{scheduled.get('reason') or 'Pending'}: {scheduled.get('message', '')}", None
    for c in status.get("initContainerStatuses", []):
        problem = _container(c, f"init {c['name']}: ", init=True)
        if problem:
            return problem
    mains = status.get("containerStatuses", [])
    for c in sorted(mains, key=lambda c: c["name"]):
        problem = _container(c, f"{c['name']}: " if len(mains) > 1 else "", init=False)
        if problem:
            return problem
    return NOT_READY, status.get("reason") or status.get("phase") or "Pending", None


def failed_pod(pod):
    """'Error (exit 2)' and the log request of a Job's failed pod."""
    status = pod.get("status", {})
    for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        done = c.get("state", {}).get("terminated", {})
        if done.get("exitCode"):
            return f"{done.get('reason', 'Error')} (exit {done['exitCode']})", (c["name"], False,
                                                                            done.get("message", ""))
    return status.get("reason") or "failed", None


def job_problem(job, pods):
    """(rank, text, log request, pod) of a Job that failed or whose pods failed, else None."""
    status = job.get("status", {})
    true = {c["type"]: c for c in status.get("conditions", []) if c.get("status") == "True"}
    if "Complete" in true:
        return None
    failed = sorted((p for p in pods if p.get("status", {}).get("phase") == "Failed"),
                    key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
    why, log = failed_pod(failed[-1]) if failed else ("", None)
    if "Failed" in true:
        c = true["Failed"]
        text = f"failed, {c.get('reason', '')}: {c.get('message', '')}".rstrip(": ")
        return FAILED, f"{text}; last pod: {why}" if why else text, log, failed[-1] if failed else None
    if failed:
        return FAILED, f"{len(failed)} pods failed, retrying; last: {why}", log, failed[-1]
    return None


def diagnose(doc, logs, limit=LIMIT):
    """The report's lines for `kubectl get pods,jobs -o json` output. logs(pod,
    container, previous) gives a container's last log line ('' if none)."""
    items = doc.get("items", [])
    pods = [i for i in items if i.get("kind") == "Pod"]
    by_workload = {}
    for pod in pods:
        by_workload.setdefault(workload(pod), []).append(pod)
    problems = {}  # workload -> (rank, text, log request, pod)
    for job in (i for i in items if i.get("kind") == "Job"):
        name = f"job/{job['metadata']['name']}"
        found = job_problem(job, by_workload.get(name, []))
        if found:
            problems[name] = found
    for name, members in by_workload.items():
        if name in problems:
            continue
        found = sorted((p + (pod,) for pod in members for p in [pod_problem(pod)] if p),
                       key=lambda p: (p[0], p[3]["metadata"]["name"]))
        if found:
            problems[name] = found[0]
    ordered = sorted(problems.items(), key=lambda kv: (kv[1][0], kv[0]))
    lines = []
    for name, (_, text, log, pod) in ordered[:limit]:
        if log:
            container, previous, fallback = log
            last = logs(pod["metadata"]["name"], container, previous) or fallback.strip()
            text = f"{text}: {last}" if last else text
        line = f"{name}: {text}".replace("\n", " ")
        lines.append(line if len(line) <= WIDTH else line[:WIDTH - 3] + "...")
    if len(ordered) > limit:
        lines.append(f"... and {len(ordered) - limit} more not ready")
    return lines


def kubectl_logs(namespace, kubectl):
    def last_line(pod, container, previous):
        cmd = [*kubectl, "-n", namespace, "logs", pod, "-c", container, "--tail=1"]
        try:
            out = subprocess.run(cmd + (["--previous"] if previous else []),
                                 capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.strip().splitlines()[-1].strip() if out.strip() else ""
    return last_line


def main(argv):
    namespace, kubectl = argv[0], argv[1:] or ["k3s", "kubectl"]
    try:
        got = subprocess.run([*kubectl, "-n", namespace, "get", "pods,jobs", "-o", "json"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"kubectl get pods,jobs: {e}")
        return 1
    if got.returncode != 0:
        print(f"kubectl get pods,jobs: {(got.stderr.strip().splitlines() or ['failed'])[-1][:WIDTH]}")
        return 1
    for line in diagnose(json.loads(got.stdout), kubectl_logs(namespace, kubectl)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
