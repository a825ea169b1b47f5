"""`osception tempest`: its config from a target's facts, its reading of JUnit reports
and the comparison of two runs; and (slow) Tempest for real against the devcloud:
its generated config through oslo-config-validator with Tempest's own options, a smoke
run whose report files exist and parse, and --compare on them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from osception import releases, tempest, tempest_results

FACTS = {"image": "img-1", "image_alt": "img-1", "flavor": "fl-1", "flavor_alt": "fl-2",
         "public_network_id": None, "public_network_name": None,
         "network_extensions": ["agent", "external-net", "router"],
         "max_microversions": {"compute": "2.100", "placement": "1.39", "image": None},
         "computes": 1, "compute_hosts": ["compute-0"], "public_subnet_id": None}


def _target(tmp_path, data_plane: bool, cacert: str | None = None, **kwargs) -> tempest.Target:
    return tempest.Target("devcloud" if not data_plane else "lab", releases.get("2026.2"), tmp_path,
                          "http://127.0.0.1:25000/v3", "s3cret", interface="internal",
                          cacert=cacert, data_plane=data_plane, flavors=("small",), images=("cirros",),
                          **kwargs)


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_devcloud_config_switches_off_what_a_fake_hypervisor_cannot_do_and_says_why(tmp_path):
    text = tempest.configure(_target(tmp_path, data_plane=False, no_vnc_console="no proxy here"), FACTS)
    conf = _ini(text)
    assert conf["identity"]["uri_v3"] == "http://127.0.0.1:25000/v3"
    assert conf["identity"]["v3_endpoint_type"] == "internal"
    assert conf["auth"]["admin_password"] == "s3cret"
    assert conf["compute"]["image_ref"] == "img-1" and conf["compute"]["flavor_ref_alt"] == "fl-2"
    assert conf["compute"]["max_microversion"] == "2.100"
    # nova's section (services/nova/tempest.j2): all off, each with its reason
    features = {o: v for o, v in conf["compute-feature-enabled"].items() if o not in conf.defaults()}
    assert {"console_output", "live_migration", "resize", "snapshot", "vnc_console"} <= set(features)
    assert set(features.values()) == {"false"}
    assert text.count(f"# {tempest.FAKE_HYPERVISOR}\n") == len(features) - 3  # the 3 consoles: not deployed
    assert "# no proxy here\nvnc_console = false\n" in text  # the target's reason
    assert conf["validation"]["run_validation"] == "false"
    assert conf["network-feature-enabled"]["api_extensions"] == "agent,external-net,router"
    assert conf["network-feature-enabled"]["floating_ips"] == "false"  # no external network
    assert "public_network_id" not in conf["network"]
    assert [k for k, v in conf["service_available"].items() if v == "false"] == ["cinder", "swift", "horizon"]


def test_environment_config_keeps_the_data_plane_features_and_names_the_ca(tmp_path):
    facts = FACTS | {"public_network_id": "net-1", "public_network_name": "public"}
    conf = _ini(tempest.configure(_target(tmp_path, data_plane=True, cacert="/s/ca.pem"), facts))
    assert conf["identity"]["ca_certificates_file"] == "/s/ca.pem"
    assert conf["network"]["public_network_id"] == "net-1"
    assert conf["network-feature-enabled"]["floating_ips"] == "true"
    features = conf["compute-feature-enabled"]
    assert features["vnc_console"] == "true"  # nova-novncproxy behind the environment's ingress
    assert features["spice_console"] == features["serial_console"] == "false"  # not deployed
    # one compute: nothing moves; what libvirt does on one host, on
    assert conf["compute"]["min_compute_nodes"] == "1"
    assert "migration_source_host" not in conf["compute"]  # Tempest's own choice of hosts
    assert conf["network-feature-enabled"]["port_security"] == "false"  # no such extension
    assert [features[o] for o in ("live_migration", "cold_migration", "resize")] == ["false"] * 3
    assert [features[o] for o in ("console_output", "snapshot", "shelve", "config_drive")] == ["true"] * 4
    # Tempest logs into no guest unless the target says how (the devcloud with nodes does)
    assert conf["validation"]["run_validation"] == "false" and "image_ssh_user" not in conf["validation"]


def test_two_computes_and_a_login_turn_on_migrations_and_validation(tmp_path):
    """As the devcloud with nodes targets its local cloud: guests move between the two
    computes with their disks, and Tempest logs into them as the image's user."""
    facts = FACTS | {"public_network_id": "net-1", "public_network_name": "public", "computes": 2,
                     "compute_hosts": ["lab-compute-0", "lab-compute-1"], "public_subnet_id": "sub-1",
                     "network_extensions": ["external-net", "port-security", "router"]}
    conf = _ini(tempest.configure(_target(tmp_path, data_plane=True, login=("cirros", "gocubsgo")), facts))
    features = conf["compute-feature-enabled"]
    assert conf["compute"]["min_compute_nodes"] == "2"
    assert [features[o] for o in ("live_migration", "cold_migration", "resize",
                                  "block_migration_for_live_migration", "shelve_migrate")] == ["true"] * 5
    assert conf["network"]["subnet_id"] == "sub-1"  # the floating IPs' subnet, not DVR's agents' one
    assert (conf["compute"]["migration_source_host"], conf["compute"]["migration_dest_host"]) == \
        ("lab-compute-0", "lab-compute-1")
    assert conf["network-feature-enabled"]["port_security"] == "true"  # the cloud has the extension
    assert conf["placement"]["max_microversion"] == "1.39"
    v = conf["validation"]
    assert (v["run_validation"], v["connect_method"], v["image_ssh_user"], v["image_ssh_password"]) == \
        ("true", "floating", "cirros", "gocubsgo")


JUNIT = """<testsuite errors="0" failures="1" name="" tests="5" time="1.2">
<testcase classname="tempest.api.compute.servers.test_create_server.ServersTestJSON"
          name="test_list_servers[id-9a438d88,smoke]" time="0.5"/>
<testcase classname="tempest.api.network.test_networks.NetworksTest"
          name="test_create_update_delete_network_subnet[id-0e269138,smoke]" time="0.3">
  <failure type="testtools.testresult.real._StringException">Traceback...</failure></testcase>
<testcase classname="tempest.api.object_storage.test_container_quotas.ContainerQuotasTest"
          name="test_upload_valid_object[id-9a447cf6,smoke]" time="0.0">
  <skipped>Skipped because swift is not available</skipped></testcase>
<testcase classname="" name="setUpClass (tempest.api.volume.test_volumes_get.VolumesGetTest)" time="0.0">
  <skipped>Cinder is not available</skipped></testcase>
<testcase classname="tempest.api.identity.v3.test_tokens.TokensV3Test"
          name="test_create_token[id-6f8e4436,smoke]" time="0.1"/>
</testsuite>
"""


def test_outcomes_and_summary_from_a_junit_report(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    results = tempest_results.outcomes(path)
    assert results["tempest.api.compute.servers.test_create_server.ServersTestJSON.test_list_servers"] == "passed"
    assert results["tempest.api.network.test_networks.NetworksTest.test_create_update_delete_network_subnet"] == "failed"
    assert results["setUpClass (tempest.api.volume.test_volumes_get.VolumesGetTest)"] == "skipped"
    assert tempest_results.summarize(results).line() == "ran 5: 2 passed, 1 failed, 2 skipped"
    groups = {g: c.line() for g, c in tempest_results.by_group(results).items()}
    assert groups["tempest.api.volume"] == "ran 1: 0 passed, 0 failed, 1 skipped"  # its setUpClass
    assert list(groups) == ["tempest.api.compute", "tempest.api.identity", "tempest.api.network",
                            "tempest.api.object_storage", "tempest.api.volume"]
    assert tempest_results.group_of("tempest.scenario.test_minimum_basic.TestMinimumBasicScenario"
                                    ".test_minimum_basic_scenario") == "tempest.scenario"
    reasons = tempest_results.skip_reasons(path)
    assert reasons == {
        "Cinder is not available": ["setUpClass (tempest.api.volume.test_volumes_get.VolumesGetTest)"],
        "Skipped because swift is not available": [
            "tempest.api.object_storage.test_container_quotas.ContainerQuotasTest.test_upload_valid_object"]}


def _report_tools(bin_: Path, junit_script: str) -> None:
    """Stand-ins (mocks, named so) for the Tempest venv's subunit2junitxml and
    subunit2html: the real ones need the venv, which the slow test builds and runs."""
    bin_.mkdir()
    for name, body in (("subunit2junitxml", junit_script), ("subunit2html", 'echo "<html/>" > "$2"\n')):
        (bin_ / name).write_text("#!/bin/sh\n" + body)
        (bin_ / name).chmod(0o755)


def test_reports_keep_subunit2junitxml_noise_in_a_file_and_fail_only_without_the_xml(tmp_path, capfd):
    """2025.1's python-subunit writes the XML, then a traceback (its result has no
    wasSuccessful) and exit 1: the run is fine, the noise goes to a file of the run.
    No XML at all is one clear error naming that file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / tempest.SUBUNIT).write_bytes(b"subunit")
    _report_tools(tmp_path / "bin", 'while [ "$1" != -o ]; do shift; done\n'
                  f"printf '%s' '{JUNIT}' > \"$2\"\n"
                  "echo \"AttributeError: 'TestResult' object has no attribute 'wasSuccessful'\" >&2\nexit 1\n")
    tempest.reports(tmp_path / "bin", run_dir)
    assert "wasSuccessful" not in capfd.readouterr().err
    assert "wasSuccessful" in (run_dir / "subunit2junitxml.err").read_text()
    assert tempest_results.summarize(tempest_results.outcomes(run_dir / tempest.JUNIT)).line() == \
        "ran 5: 2 passed, 1 failed, 2 skipped"
    assert (run_dir / tempest.HTML).exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / tempest.SUBUNIT).write_bytes(b"subunit")
    _report_tools(tmp_path / "bin2", "echo 'Traceback: boom' >&2\nexit 1\n")
    with pytest.raises(tempest.TempestError, match="no JUnit report .*subunit2junitxml.err"):
        tempest.reports(tmp_path / "bin2", broken)


def test_compare_lists_changed_and_missing_tests_only():
    a = {"t.one": "passed", "t.two": "failed", "t.three": "skipped"}
    b = {"t.one": "passed", "t.two": "passed", "t.four": "failed"}
    assert tempest_results.compare(a, b) == [
        ("t.four", "absent", "failed"), ("t.three", "skipped", "absent"), ("t.two", "failed", "passed")]
    assert tempest_results.compare(a, a) == []


def test_a_broken_report_is_one_clear_error(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text("<testsuite")
    with pytest.raises(ValueError, match="not a JUnit XML report"):
        tempest_results.outcomes(path)


def test_find_run_by_name_or_path_and_a_clear_error_for_neither(tmp_path):
    run = tmp_path / tempest.RUNS / "20261201T120000Z"
    run.mkdir(parents=True)
    (run / tempest.JUNIT).write_text(JUNIT)
    assert tempest.find_run(tmp_path, "20261201T120000Z") == run / tempest.JUNIT
    assert tempest.find_run(tmp_path, str(run)) == run / tempest.JUNIT
    with pytest.raises(tempest.TempestError, match="runs: 20261201T120000Z"):
        tempest.find_run(tmp_path, "nope")


def test_devcloud_tempest_without_a_devcloud_says_so_in_one_line(tmp_path):
    """`osception devcloud tempest` ends as `osception tempest` does: one line, exit 2."""
    from tests.test_bad_inputs import refused

    refused(tmp_path, ["devcloud", "tempest", "--smoke", "--state-dir", str(tmp_path)],
            (f"no devcloud in {tmp_path / 'devcloud'}", "osception devcloud up"))


# --- for real, on the devcloud -------------------------------------------------------

@pytest.fixture(scope="module")
def tempest_run(devcloud, tmp_path_factory):
    """`osception devcloud tempest --smoke` on the test session's devcloud: (run folder,
    output). Its state home is the devcloud's."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    exe = Path(shutil.which("osception") or Path(os.sys.executable).parent / "osception")
    r = subprocess.run([str(exe), "devcloud", "tempest", "--smoke", "--concurrency", "2"],
                       capture_output=True, text=True, env=env, timeout=3600)
    print(r.stdout[-3000:], r.stderr[-2000:])
    assert "tempest " in r.stdout and "reports" in r.stdout, r.stdout + r.stderr
    runs = sorted((devcloud.layout.root / "tempest" / tempest.RUNS).iterdir())
    return runs[-1], r


def test_tempest_smoke_on_the_devcloud_writes_reports_that_parse(tempest_run):
    run_dir, r = tempest_run
    results = tempest_results.outcomes(run_dir / tempest.JUNIT)
    summary = tempest_results.summarize(results)
    assert summary.ran > 0 and summary.ran == summary.passed + summary.failed + summary.skipped
    assert summary.passed > 0
    assert f"tempest {run_dir.name}: {summary.line()}" in r.stdout
    assert r.returncode == (1 if summary.failed else 0)
    html = (run_dir / tempest.HTML).read_text()
    assert "<html" in html.lower() and "Unit Test Report" in html
    assert (run_dir / tempest.SUBUNIT).stat().st_size > 0
    assert oct((run_dir / tempest.CONF).stat().st_mode & 0o777) == "0o600"  # the admin password


def test_generated_config_passes_tempests_own_option_validator(tempest_run):
    """oslo-config-validator with Tempest's options (its `tempest.config` namespace):
    a misspelled option or section would otherwise be ignored silently."""
    run_dir, _ = tempest_run
    from osception.cache import cache_home

    release = releases.get(_devcloud_release())
    venv = cache_home() / "tempest" / release.tempest_version
    r = subprocess.run([str(venv / "bin" / "oslo-config-validator"), "--namespace", "tempest.config",
                        "--namespace", "oslo.concurrency", "--namespace", "oslo.log",
                        "--input-file", str(run_dir / tempest.CONF), "--fatal-warnings"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compare_of_a_run_with_itself_and_with_a_changed_copy(tempest_run, tmp_path):
    run_dir, _ = tempest_run
    junit = run_dir / tempest.JUNIT
    a = tempest_results.outcomes(junit)
    assert tempest_results.compare(a, a) == []
    first = next(iter(sorted(a)))
    changed = dict(a, **{first: "failed" if a[first] != "failed" else "passed"})
    assert tempest_results.compare(a, changed) == [(first, a[first], changed[first])]


def _devcloud_release() -> str:
    from tests.devcloud.conftest import RELEASE

    return RELEASE


class _Neutron:
    """What network_extensions asks of openstacksdk's network proxy (a stand-in)."""

    def __init__(self, default_pool: bool):
        self.default_pool = default_pool

    def extensions(self):
        return [SimpleNamespace(alias=a) for a in ("router", tempest.AUTO_ALLOCATION, "external-net")]

    def subnet_pools(self, is_default):
        return [SimpleNamespace()] if self.default_pool else []


def test_auto_allocation_is_expected_only_where_neutron_can_allocate():
    def extensions(network, pool):
        return tempest.network_extensions(SimpleNamespace(network=_Neutron(pool)),
                                          [SimpleNamespace(is_default=network)])
    assert extensions(True, True) == [tempest.AUTO_ALLOCATION, "external-net", "router"]
    for network, pool in ((False, True), (True, False), (False, False)):
        assert extensions(network, pool) == ["external-net", "router"]
