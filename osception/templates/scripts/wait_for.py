"""Block until real conditions hold; used by init containers so the whole
control plane can be applied at once and converge by itself.

    wait_for.py job/NAME ...        the Job completed (Kubernetes API, in-cluster)
    wait_for.py tcp/HOST:PORT ...   the port accepts connections
    wait_for.py http/HOST:PORT/PATH the URL answers with a status below 500

Exits 0 once every condition holds; retries forever otherwise (the pod's own
restart policy and the caller's timeout bound it). Standard library only: it
runs with the Python of the Kolla image it is mounted into.
"""

import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def job_complete(name: str) -> bool:
    with open(f"{SA}/token") as f:
        token = f.read().strip()
    with open(f"{SA}/namespace") as f:
        namespace = f.read().strip()
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ["KUBERNETES_SERVICE_PORT"]
    url = f"https://{host}:{port}/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    ctx = ssl.create_default_context(cafile=f"{SA}/ca.crt")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        status = json.load(resp).get("status", {})
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in status.get("conditions", []))


def tcp_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):
        return True


def http_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}", timeout=10) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500


CHECKS = {"job": job_complete, "tcp": tcp_open, "http": http_answers}


def main(conditions: list[str]) -> None:
    for condition in conditions:
        kind, _, target = condition.partition("/")
        check = CHECKS[kind]
        while True:
            try:
                if check(target):
                    break
                why = "not yet"
            except Exception as e:  # not there yet: keep waiting
                why = f"{type(e).__name__}: {e}"
            print(f"waiting for {condition}: {why}", flush=True)
            time.sleep(3)
        print(f"ready: {condition}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
