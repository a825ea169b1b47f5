"""User data through the real cloud-init schema; every shell script through shellcheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from osception import render

# The top-level keys of cloud-config modules osception uses or may use. cloud-init's
# schema does not reject unknown top-level keys (`runcmds:`), so we do.
KNOWN_TOP_LEVEL = {
    "hostname", "fqdn", "prefer_fqdn_over_hostname", "manage_etc_hosts", "ssh_authorized_keys",
    "users", "package_update", "package_upgrade", "packages", "write_files", "runcmd", "bootcmd",
    "apt", "ntp", "timezone", "ssh_pwauth", "disable_root", "final_message", "output",
}


def cloud_init() -> str:
    exe = shutil.which("cloud-init")
    if exe is None:
        pytest.fail("cloud-init is not installed: run .ci/install (apt-get install cloud-init)")
    return exe


def user_data(plan):
    return {p: t for p, t in plan.files.items() if p.endswith("/user-data")}


def test_every_user_data_passes_the_cloud_init_schema(default_plan, tmp_path):
    docs = user_data(default_plan)
    assert "k8s-0/user-data" in docs
    for rel, text in docs.items():
        f = tmp_path / rel.replace("/", "_")
        f.write_text(text)
        # /usr/bin/cloud-init runs with the system Python, where its module lives.
        r = subprocess.run([cloud_init(), "schema", "--config-file", str(f)], capture_output=True, text=True)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "Valid" in out and "DEPRECATED" not in out, f"{rel}: {out}"


def test_user_data_top_level_keys_are_known(default_plan):
    for rel, text in user_data(default_plan).items():
        assert text.startswith("#cloud-config\n"), rel
        keys = set(yaml.safe_load(text))
        assert keys <= KNOWN_TOP_LEVEL, f"{rel}: unknown {keys - KNOWN_TOP_LEVEL}"


def test_user_data_fits_the_nova_limit(default_plan):
    import base64

    for rel, text in user_data(default_plan).items():
        # Nova accepts at most 65535 bytes of base64-encoded user data.
        assert len(base64.b64encode(text.encode())) <= 65535, rel


def test_the_controller_user_data_carries_every_manifest(default_plan):
    import base64
    import gzip

    doc = yaml.safe_load(default_plan.files["k8s-0/user-data"])
    written = {f["path"]: f for f in doc["write_files"]}
    for rel, text in default_plan.files.items():
        if rel.startswith("k8s-0/manifests/"):
            f = written["/etc/osception/manifests/" + rel.rsplit("/", 1)[1]]
            assert gzip.decompress(base64.b64decode(f["content"])).decode() == text
            assert f["permissions"] == ("0600" if "kind: Secret" in text else "0644")
    assert doc["runcmd"] == [["/usr/local/sbin/osception-setup"]]


def shell_scripts(plan) -> dict[str, str]:
    """Every shell script a node runs: files of the package and scripts inside the plan."""
    scripts = {"osception-step.sh": render.script("osception-step.sh"),
               "create_databases.sh": render.script("create_databases.sh")}
    for rel, text in user_data(plan).items():
        for f in yaml.safe_load(text)["write_files"]:
            content = f.get("content", "")
            if f.get("encoding") is None and content.startswith("#!/bin/"):
                scripts[f"{rel}:{f['path']}"] = content
    for rel, text in plan.files.items():
        if rel.startswith("k8s-0/manifests/"):
            for doc in yaml.safe_load_all(text):
                if doc["kind"] == "ConfigMap":
                    for key, value in doc["data"].items():
                        if value.startswith("#!/bin/"):
                            scripts[f"{rel}:{key}"] = value
    return scripts


def test_every_shell_script_passes_shellcheck(default_plan, tmp_path):
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed: run .ci/install")
    scripts = shell_scripts(default_plan)
    assert len(scripts) >= 5
    for name, text in scripts.items():
        f = tmp_path / "s.sh"
        f.write_text(text)
        r = subprocess.run([exe, "-S", "warning", "-s", "bash", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{name}:\n{r.stdout}"


def test_progress_lines_from_the_shell_side_parse(tmp_path):
    """Run the real step helper and read its output with the real parser."""
    from osception import progress

    script = tmp_path / "run.sh"
    script.write_text(
        f". {Path(render.__file__).parent / 'templates/scripts/osception-step.sh'}\n"
        "step first true\n"
        "step second bash -c 'echo oops >&2; exit 3'\n"
    )
    env = {"OSCEPTION_NODE": "compute-0", "OSCEPTION_LOG_DIR": str(tmp_path / "log"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert r.returncode == 3
    log = (tmp_path / "log" / "progress.log").read_text()
    prog = progress.parse(log)["compute-0"]
    assert [(s.name, s.state) for s in prog.steps] == [("first", "done"), ("second", "failed")]
    assert prog.steps[1].message == "exit 3: oops"
    assert prog.state == "failed" and "second" in prog.reason
