"""The controller's manifests, checked by the real Kubernetes schemas and by the
cross-references that schemas miss (selectors, referenced objects, Kolla files)."""

from __future__ import annotations

import functools
import json
import re

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate_utils

from osception import config, releases, render, secrets, services
from osception.render.conf import secret_values
from osception.render.rollout import referenced_config
from tests.pods import containers, pod_specs


@pytest.fixture(scope="module", autouse=True)
def _schema_files_parsed_once():
    """kubernetes-validate reads and parses its schema files (the definitions: megabytes
    of JSON) again for every document it validates: the same files, parsed once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kubernetes_validate_utils, "schema_contents",
                   functools.cache(kubernetes_validate_utils.schema_contents))
        yield


@pytest.fixture(scope="module", params=["defaults", "patched"])
def docs(request, release_plan, state_home, tmp_path_factory):
    """Every manifest document of the defaults' plan, on each release of the table; and
    of a plan that patches every project (its `patch` init containers, ConfigMaps)."""
    plan = release_plan
    if request.param == "patched":
        from osception import patches as patches_mod
        from tests import gerrit

        folder = tmp_path_factory.mktemp("patches")
        patches = {}
        for project in services.PATCHABLE:
            (folder / "fix.patch").write_text(f"diff --git a/{project}/x.py b/{project}/x.py\n--- a/{project}/x.py\n"
                                              f"+++ b/{project}/x.py\n@@ -1 +1 @@\n-a\n+b\n")
            patches[project] = [config.Patch(file=folder / "fix.patch"), config.Patch(review="912345")]
        cfg = release_plan.cfg.model_copy(update={"patches": patches})
        with gerrit.serving({912345: {1: "diff --git a/nova/x.py b/nova/x.py\n"}}) as review_server, \
                pytest.MonkeyPatch.context() as mp:
            mp.setattr(patches_mod, "GERRIT", review_server.url)
            plan = render.build(cfg, secrets.ensure(state_home / cfg.name, cfg.name))
    out = []
    for path, text in sorted(plan.files.items()):
        if path.startswith("k8s-0/manifests/"):
            for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
                assert doc is not None, f"empty YAML document in {path}"
                out.append(doc)
    return out


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_document_passes_the_kubernetes_schema_strictly(docs):
    for doc in docs:
        # SchemaNotFoundError (unknown kind/apiVersion) is a failure too.
        kubernetes_validate.validate(doc, releases.KUBERNETES_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Job", "Service", "Ingress", "ConfigMap", "Secret"} <= kinds


def test_names_are_valid_dns_labels(docs):
    for doc in docs:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), doc["metadata"]


def test_selectors_match_their_template_labels(docs):
    for doc, _ in pod_specs(docs):
        if doc["kind"] == "Job":
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        for key, value in doc["spec"]["selector"]["matchLabels"].items():
            assert labels.get(key) == value, doc["metadata"]["name"]


def test_every_service_selects_pods(docs):
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d, _ in pod_specs(docs)]
    for name, svc in by_kind(docs, "Service").items():
        sel = svc["spec"]["selector"]
        assert any(all(l.get(k) == v for k, v in sel.items()) for l in pod_labels), name


def test_every_long_running_workload_has_a_readiness_probe(docs):
    for doc, spec in pod_specs(docs):
        if doc["kind"] == "Job":
            continue
        for c in spec["containers"]:
            assert "readinessProbe" in c, f"{doc['metadata']['name']}/{c['name']}"


def test_every_api_has_a_service_and_an_ingress_on_its_port(docs, release_plan):
    svcs, ingresses = by_kind(docs, "Service"), by_kind(docs, "Ingress")
    for name in ("keystone", "glance", "placement", "neutron", "nova", "novnc", "skyline"):
        port = services.APIS[name].port
        assert svcs[name]["spec"]["ports"][0]["port"] == port
        rule = ingresses[name]["spec"]["rules"][0]
        assert rule["host"] == f"{name}.{release_plan.domain}"
        assert rule["http"]["paths"][0]["backend"]["service"] == {"name": name, "port": {"number": port}}
        assert ingresses[name]["spec"]["ingressClassName"] == "traefik"


def test_nodes_reach_rabbitmq_tls_and_metadata_on_the_controller_ip(docs):
    svcs = by_kind(docs, "Service")
    for name in ("rabbitmq-tls", "metadata"):
        assert svcs[name]["spec"]["type"] == "LoadBalancer", name  # k3s servicelb: host ports
    # The APIs only through Traefik's HTTPS; the rest never outside the cluster.
    for name in ("rabbitmq", "memcached", "keystone", "glance", "placement", "neutron", "nova",
                 "novnc", "skyline", *[f"mariadb-{s}" for s in services.DATABASES]):
        assert svcs[name]["spec"]["type"] == "ClusterIP", name


def test_one_mariadb_per_service(docs):
    sts = by_kind(docs, "StatefulSet")
    assert {f"mariadb-{s}" for s in services.DATABASES} <= set(sts)


def _referenced(spec):
    """(kind, name) of every ConfigMap, Secret and PVC a pod spec uses: what render.rollout.day2
    checksums (render.rollout.referenced_config), and the volume claims."""
    return {*referenced_config(spec),
            *(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
              for v in spec.get("volumes", []) if "persistentVolumeClaim" in v)}


def test_every_referenced_object_is_in_the_rendered_set(docs):
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc, spec in pod_specs(docs):
        for ref in _referenced(spec):
            assert ref in present, f"{doc['metadata']['name']} uses missing {ref}"
        if spec.get("serviceAccountName"):
            assert ("ServiceAccount", spec["serviceAccountName"]) in present


def test_secret_keys_referenced_exist(docs):
    secrets = {n: d["stringData"] for n, d in by_kind(docs, "Secret").items()}
    for doc, spec in pod_specs(docs):
        for c in containers(spec):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (doc["metadata"]["name"], ref)


def test_waits_name_jobs_and_services_that_exist(docs):
    jobs, svcs = by_kind(docs, "Job"), by_kind(docs, "Service")
    for doc, spec in pod_specs(docs):
        for c in containers(spec, init=True):
            if c["name"] != "wait":
                continue
            for cond in c["command"][2:]:
                kind, _, target = cond.partition("/")
                if kind == "job":
                    assert target in jobs, cond
                else:
                    host, port = target.split("/")[0].split(":")
                    assert int(port) in [p["port"] for p in svcs[host]["spec"]["ports"]], cond


def test_no_nova_service_starts_before_the_schema_is_complete(docs):
    """The original's race: every nova pod waits for the one Job that migrates in order."""
    script = by_kind(docs, "ConfigMap")["nova-config"]["data"]["nova-db-sync.sh"]
    steps = [l.split("||")[-1].strip() for l in script.splitlines() if "nova-manage" in l and not l.startswith("#")]
    order = ["nova-manage api_db sync", "nova-manage cell_v2 map_cell0", "nova-manage cell_v2 create_cell",
             "nova-manage db sync", "nova-manage db online_data_migrations"]
    positions = [next(i for i, s in enumerate(steps) if s.startswith(o)) for o in order]
    assert positions == sorted(positions)
    for name, dep in by_kind(docs, "Deployment").items():
        if name.startswith("nova-"):
            wait = dep["spec"]["template"]["spec"]["initContainers"][0]
            assert any(a.startswith("job/nova-db-sync-") for a in wait["command"]), name


def _kolla_folder(doc, spec, container, docs):
    """Files a Kolla container finds in /var/lib/kolla/config_files."""
    mount = next(m for m in container.get("volumeMounts", []) if m["mountPath"] == "/var/lib/kolla/config_files")
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cms, secrets = by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    files = {}
    for src in vol["projected"]["sources"]:
        if "configMap" in src:
            data = cms[src["configMap"]["name"]]["data"]
            for item in src["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                files[item["path"]] = data[item["key"]]
        if "secret" in src:
            files.update(secrets[src["secret"]["name"]]["stringData"])
    return files


def test_every_kolla_container_has_a_config_json_whose_sources_are_mounted(docs):
    checked = 0
    for doc, spec in pod_specs(docs):
        for c in containers(spec):
            if not any(m["mountPath"] == "/var/lib/kolla/config_files" for m in c.get("volumeMounts", [])):
                continue
            assert "quay.io/openstack.kolla/" in c["image"]
            assert {"name": "KOLLA_CONFIG_STRATEGY", "value": "COPY_ALWAYS"} in c["env"]
            files = _kolla_folder(doc, spec, c, docs)
            cfg = json.loads(files["config.json"])
            assert cfg["command"]
            for f in cfg["config_files"]:
                name = f["source"].removeprefix("/var/lib/kolla/config_files/")
                assert name in files, f"{doc['metadata']['name']}/{c['name']}: {name} not mounted"
                assert f["owner"] and f["perm"] == "0600"
            checked += 1
    assert checked >= 20


def test_no_secret_value_in_any_configmap_or_non_secret_file(default_plan, default_secrets):
    values = [v for v in secret_values(default_secrets) if len(v) >= 16]
    for path, text in default_plan.files.items():
        if path in default_plan.private:
            continue
        for v in values:
            assert v not in text, f"a secret leaks into {path}"
    for path in default_plan.private:  # and nothing is private without a reason
        text = default_plan.files[path]
        if path.endswith("/user-data"):  # with its archive's contents (the manifests' Secrets)
            text += "".join(_archive_members(text).values())
        assert any(v in text for v in values), path


def _archive_members(user_data: str) -> dict[str, str]:
    import base64
    import io
    import tarfile

    out = {}
    for f in yaml.safe_load(user_data).get("write_files", []):
        if f.get("encoding") == "b64" and f["path"].endswith(".tar.xz"):
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(f["content"]))) as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        out[m.name] = tar.extractfile(m).read().decode()
    return out


def test_images_are_the_releases_kolla_images(docs, release_plan):
    tag = release_plan.release.kolla_tag
    for doc, spec in pod_specs(docs):
        for c in containers(spec):
            name = c["image"].rsplit("/", 1)[1].split(":")[0]
            assert name in services.KOLLA_IMAGES
            assert c["image"] == f"quay.io/openstack.kolla/{name}:{tag}"


def test_image_override(tmp_path):
    from osception import config, secrets

    p = tmp_path / "c.yaml"
    p.write_text("images: {nova-api: registry.example.com/kolla/nova-api:patched}\n")
    cfg = config.load(p)
    plan = render.build(cfg, secrets.ensure(tmp_path / "s", cfg.name))
    nova = plan.files["k8s-0/manifests/33-nova.yaml"]
    images = {c["name"]: c["image"] for _, spec in pod_specs(yaml.safe_load_all(nova))
              for c in containers(spec, init=False)}
    assert "registry.example.com/kolla/nova-api:patched" in images.values()
    assert any(i.startswith("quay.io/openstack.kolla/nova-conductor:") for i in images.values())


def test_no_pod_reaches_the_cloud_metadata_service(docs):
    """A NetworkPolicy selecting every pod allows egress everywhere but the link-local
    metadata address (k3s enforces it: embedded kube-router)."""
    policies = by_kind(docs, "NetworkPolicy")
    (policy,) = policies.values()
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Egress"]
    blocks = [to["ipBlock"] for rule in policy["spec"]["egress"] for to in rule["to"] if "ipBlock" in to]
    assert blocks == [{"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}]


def test_only_pods_that_wait_for_jobs_get_an_api_token(docs):
    accounts = by_kind(docs, "ServiceAccount")
    assert accounts["default"]["automountServiceAccountToken"] is False
    for doc, spec in pod_specs(docs):
        waits_for_jobs = any(a.startswith("job/") for c in containers(spec, init=True)
                             for a in c.get("command", []))
        assert (spec.get("serviceAccountName") == "osception-wait") == waits_for_jobs, doc["metadata"]["name"]


def test_every_statefulset_is_governed_by_a_headless_service(docs):
    """A StatefulSet's spec.serviceName must name a headless Service (clusterIP: None):
    it gives the pods their stable DNS names. Clients keep the ClusterIP Service."""
    svcs = by_kind(docs, "Service")
    statefulsets = by_kind(docs, "StatefulSet")
    assert statefulsets
    for name, sts in statefulsets.items():
        governing = svcs.get(sts["spec"]["serviceName"])
        assert governing is not None, f"{name}: serviceName {sts['spec']['serviceName']} is no Service"
        assert governing["spec"].get("clusterIP") == "None", f"{name}: {governing['metadata']['name']} not headless"
        assert governing["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_only_the_wait_container_mounts_an_api_token(docs):
    """No container but a `wait` init container that waits for a Job gets a Kubernetes
    API token: Kubernetes' automount is off on every pod (it would mount the token
    into each container), and the wait container mounts a projected one of its own,
    with what wait_for.py reads there (token, CA, namespace)."""
    from osception.render.env import script

    sa_dir = re.search(r'^SA = "(.+)"$', script("wait_for.py"), re.M).group(1)
    assert sa_dir == services.SERVICE_ACCOUNT_DIR
    accounts = by_kind(docs, "ServiceAccount")
    waiting = 0
    for doc, spec in pod_specs(docs):
        name = doc["metadata"]["name"]
        account = spec.get("serviceAccountName", "default")
        automount = spec.get("automountServiceAccountToken",
                             accounts.get(account, {}).get("automountServiceAccountToken", True))
        assert automount is False, f"{name}: Kubernetes mounts a token in every container"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        token_volumes = {n for n, v in volumes.items()
                         if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
        for c in containers(spec):
            mounted = {m["name"] for m in c.get("volumeMounts", [])} & token_volumes
            waits_for_jobs = c["name"] == "wait" and any(a.startswith("job/") for a in c["command"])
            assert bool(mounted) == waits_for_jobs, f"{name}/{c['name']}"
            if mounted:
                waiting += 1
                (vol,) = mounted
                mount = next(m for m in c["volumeMounts"] if m["name"] == vol)
                assert mount["mountPath"] == sa_dir and mount["readOnly"] is True
                sources = volumes[vol]["projected"]["sources"]
                paths = {s["serviceAccountToken"]["path"] for s in sources if "serviceAccountToken" in s}
                paths |= {i["path"] for s in sources if "configMap" in s for i in s["configMap"]["items"]}
                paths |= {i["path"] for s in sources if "downwardAPI" in s for i in s["downwardAPI"]["items"]}
                assert paths == {"token", "ca.crt", "namespace"}, name
                assert {"key": "ca.crt", "path": "ca.crt"} in next(
                    s["configMap"]["items"] for s in sources if "configMap" in s)
    assert waiting >= 5


def test_nova_services_register_under_one_stable_host(docs, release_plan):
    """Nova's `host` defaults to the machine's hostname, a pod's name, new with every
    rollout: every Nova pod reads nova.conf, whose [DEFAULT] host is the controller's
    name, and nothing else a Nova container reads sets another."""
    import configparser

    def host_of(text):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(text)
        return parser.defaults().get("host")

    nova_pods = [(d, s) for d, s in pod_specs(docs) if d["metadata"]["name"].startswith("nova-")]
    assert {"nova-conductor", "nova-scheduler", "nova-novncproxy"} <= {d["metadata"]["name"] for d, _ in nova_pods}
    expected = next(n.name for n in release_plan.nodes if n.role == "controller")
    for doc, spec in nova_pods:
        for c in spec["containers"]:
            files = _kolla_folder(doc, spec, c, docs)
            copied = {f["dest"]: files[f["source"].rsplit("/", 1)[1]]
                      for f in json.loads(files["config.json"])["config_files"]}
            assert host_of(copied["/etc/nova/nova.conf"]) == expected, doc["metadata"]["name"]
            for dest, text in copied.items():
                if dest.endswith(".conf") and dest != "/etc/nova/nova.conf":
                    assert host_of(text) in (None, expected), f"{doc['metadata']['name']}: {dest}"
