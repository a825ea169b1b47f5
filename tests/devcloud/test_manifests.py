"""The devcloud runs what the rendered manifests say: each Job's containers (commands,
environment, the scripts of its ConfigMaps) and each service with the files its
config.json gives it, mapped onto this machine by manifests.py alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from osception import config, releases, secrets
from osception.devcloud import bootstrap, configs
from osception.devcloud.bootstrap import Bootstrap
from osception.devcloud.layout import DEPLOYMENTS, Layout
from osception.devcloud.lifecycle import Devcloud
from osception.devcloud import manifests
from osception.devcloud.manifests import Manifests
from osception.devcloud.processes import DevcloudError
from osception.render import conf, controller

CONTAINER_PATHS = ("/var/lib/kolla", "/etc/", "/scripts", "/catalog")


@pytest.fixture
def layout(tmp_path) -> Layout:
    lay = Layout(tmp_path / "devcloud")
    lay.make_dirs()
    return lay


def _edit_config_map(files: dict[str, str], name: str, key: str, edit) -> None:
    """Change one item of a ConfigMap in a rendered plan, as a template change would."""
    for path, text in files.items():
        if not path.startswith("k8s-0/manifests/"):
            continue
        docs = list(yaml.safe_load_all(text))
        for doc in docs:
            if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == name:
                doc["data"][key] = edit(doc["data"][key])
                files[path] = yaml.safe_dump_all(docs, sort_keys=False)
                return
    raise AssertionError(f"no ConfigMap {name} with {key}")


def _after_first_line(line: str):
    return lambda script: script.replace("\n", f"\n{line}\n", 1)


def test_a_changed_job_script_is_what_the_devcloud_runs(layout, tmp_path):
    """A line added to a Job's script in the rendered plan runs, without devcloud code
    knowing that Job's commands; changing it again runs the Job again."""
    sec = secrets.ensure(layout.root, "devcloud")
    plan = configs.plan(config.Config(), sec, layout)
    # The init container's script, so that no MariaDB is needed: it echoes its env.
    _edit_config_map(plan.files, "osception-scripts", "create_databases.sh",
                     lambda _: 'echo "databases $DB_NAMES for $DB_USER'
                               ' on $DB_HOST:$MYSQL_TCP_PORT"\n')
    _edit_config_map(plan.files, "nova-config", "nova-db-sync.sh", _after_first_line(
        "grep -q '^connection = ' ~/.nova/nova.conf.d/secrets.conf && echo marker one; exit 0"))
    venv = tmp_path / "venv"  # nothing of it runs: the script exits before nova-manage
    (venv / "bin").mkdir(parents=True)
    boot = Bootstrap(layout, sec, venv, Manifests(plan.files))

    assert boot.migrate("nova")
    log = layout.log("job-nova-db-sync").read_text()
    assert "databases nova_api nova nova_cell0 for nova on 127.0.0.1:23306" in log
    # The script read the drop-in that its config.json put in place, as production does.
    assert "marker one" in log
    assert not boot.migrate("nova")  # done, nothing changed

    _edit_config_map(plan.files, "nova-config", "nova-db-sync.sh",
                     _after_first_line('echo "marker two"; exit 0'))
    boot = Bootstrap(layout, sec, venv, Manifests(plan.files))
    assert boot.migrate("nova")
    assert "marker two" in layout.log("job-nova-db-sync").read_text()


def test_every_job_and_service_runs_with_local_paths_and_hosts_only(layout, services_venv):
    """What the devcloud runs for each container of the manifests: nothing of it points
    into a container or at a Kubernetes host name."""
    sec = secrets.ensure(layout.root, "devcloud")
    man = configs.write(config.Config(), sec, layout, services_venv)
    boot = Bootstrap(layout, sec, services_venv, man)
    ran = []
    boot.run = lambda log, argv, env=None: ran.append((log, argv, env))
    for service in ("keystone", "glance", "placement", "neutron", "nova"):
        assert boot.migrate(service)
    boot.after_api("keystone")
    jobs = {log.removeprefix("job-") for log, _, _ in ran}
    assert jobs == {p.app for p in man.pods.values()
                    if p.kind == "Job" and p.service != "skyline"}
    specs = Devcloud(layout).specs(services_venv, sec, man, releases.get(releases.DEFAULT_RELEASE))
    runs = [(argv, env) for _, argv, env in ran] + [(specs[n].argv, specs[n].env)
                                                    for n in DEPLOYMENTS]
    for argv, env in runs:
        for word in [*argv, *env.values()]:
            assert not word.startswith(CONTAINER_PATHS), (argv, word)
            assert not manifests.DB_HOST.fullmatch(word), (argv, word)  # a Kubernetes host
        assert Path(argv[0]).is_absolute() and Path(argv[0]).exists(), argv
        for program in ("DB_CLIENT", "DB_ADMIN"):  # a program, not a host, though mariadb-*
            if program in env:
                assert shutil.which(env[program], path=env["PATH"]), env[program]
    # The Jobs' main commands are their config.json's (or the container's command).
    by_job = {}
    for log, argv, _ in ran:
        by_job.setdefault(log.removeprefix("job-"), []).append(argv)
    for app, argvs in by_job.items():
        pod = next(p for p in man.pods.values() if p.app == app)
        c = pod.containers[0]
        words = c.command or json.loads(pod.volumes[c.mounts["/var/lib/kolla/config_files"]]
                                        ["config.json"])["command"].split()
        assert Path(argvs[-1][0]).name == Path(words[0]).name


def test_services_start_with_exactly_the_files_of_their_config_json(layout, services_venv):
    """Each config_files entry of a Deployment the devcloud runs is at its dest under
    etc/<project>/ with its source's text and perm, the ConfigMap file and the secrets
    drop-in apart; and oslo.config's own discovery finds them through HOME."""
    sec = secrets.ensure(layout.root, "devcloud")
    man = configs.write(config.Config(), sec, layout, services_venv)
    for deployment in DEPLOYMENTS.values():
        pod = man.pod(deployment)
        c = pod.containers[0]
        files = pod.volumes[c.mounts["/var/lib/kolla/config_files"]]
        for entry in pod.config_json(c)["config_files"]:
            source = entry["source"].removeprefix("/var/lib/kolla/config_files/")
            dest = layout.root / entry["dest"].removeprefix("/")
            assert dest.read_text() == files[source], entry
            assert oct(dest.stat().st_mode & 0o777) == oct(int(entry["perm"], 8))
    nova = layout.etc("nova")
    assert "\nconnection = " not in (nova / "nova.conf").read_text()
    assert "\nconnection = " in (nova / "nova.conf.d" / "secrets.conf").read_text()
    env = Devcloud(layout).specs(services_venv, sec, man, releases.get(releases.DEFAULT_RELEASE))["nova-conductor"].env
    found = subprocess.run(
        [str(services_venv / "bin" / "python"), "-c",
         "from oslo_config import cfg; print(cfg.find_config_files('nova', 'nova-conductor'),"
         " cfg.find_config_dirs('nova', 'nova-conductor'))"],
        env=env, capture_output=True, text=True, check=True).stdout
    home = layout.root / "home" / ".nova"
    assert found.split() == [f"['{home}/nova.conf']", f"['{home}/nova.conf.d']"]
    assert home.resolve() == nova.resolve()


def test_a_job_that_never_ends_fails_by_name(layout, tmp_path, monkeypatch):
    """A script looping forever (e.g. waiting for a server it cannot reach) fails with
    its log, its whole process group gone."""
    monkeypatch.setattr(bootstrap, "CONTAINER_TIMEOUT", 1)
    boot = Bootstrap(layout, secrets.ensure(layout.root, "devcloud"), tmp_path, Manifests({}))
    start = time.monotonic()
    with pytest.raises(DevcloudError, match=r"job-x: `bash .*` did not end within 1 s"):
        boot.run("job-x", ["bash", "-c", "echo waiting; sleep 30 & wait"])
    assert time.monotonic() - start < 10
    assert "waiting" in layout.log("job-x").read_text()


FAKE_NOVA_MANAGE = """#!/bin/bash
# nova-manage on a database where cell1 exists: list_cells prints it first, then more.
case "$*" in
  "cell_v2 list_cells")
    echo "| cell1 | 40cb87a8 |"; sleep 0.3
    for i in $(seq 2000); do echo "| more | row $i |"; done ;;
  "cell_v2 create_cell --name cell1")
    echo "already exists for another cell"; exit 1 ;;
  *) echo "nova-manage $*" ;;
esac
"""


def test_nova_db_sync_runs_again_on_a_database_with_cell1(layout, tmp_path):
    """The Job runs again whenever its spec changes: create_cell must be skipped when
    cell1 exists, even if `grep -q` leaves list_cells writing into a closed pipe."""
    sec = secrets.ensure(layout.root, "devcloud")
    plan = configs.plan(config.Config(), sec, layout)
    _edit_config_map(plan.files, "osception-scripts", "create_databases.sh",
                     lambda _: "true\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "nova-manage").write_text(FAKE_NOVA_MANAGE)
    (venv / "bin" / "nova-manage").chmod(0o755)
    Bootstrap(layout, sec, venv, Manifests(plan.files)).migrate("nova")
    assert "nova-manage db online_data_migrations" in layout.log("job-nova-db-sync").read_text()


def test_write_renders_the_service_config_once(layout, tmp_path, monkeypatch):
    """configs.write() renders every service config once (in the plan it runs), and
    nova-compute reads exactly the nova.conf that rendered() gives (and validates)."""
    venv = tmp_path / "venv"  # the files the images ship, as the venv holds them
    for rel in configs.IMAGE_FILES:
        path = venv / "etc" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if rel.endswith("metadefs") else path.write_text("[DEFAULT]\n")
    calls = []
    service_config = conf.service_config

    def counted(*args, **kwargs):
        calls.append(1)
        return service_config(*args, **kwargs)

    # where its callers look it up: the plan's controller, and configs' rendered()
    monkeypatch.setattr(controller, "service_config", counted)
    monkeypatch.setattr(configs, "service_config", counted)
    sec = secrets.ensure(layout.root, "devcloud")
    configs.write(config.Config(), sec, layout, venv)
    assert len(calls) == 1
    assert (layout.etc("") / configs.COMPUTE_CONF).read_text() == \
        configs.rendered(config.Config(), sec, layout)["nova-compute.conf"]
