"""Every OpenStack config file osception generates, against the real option
definitions of each release in the table: oslo-config-validator --fatal-warnings,
then every value loaded through oslo.config, in that release's own services venv
(.venv-openstack-<release>, built once from its lock by scripts/test.sh and reused
while the lock is unchanged)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlparse

import yaml


from osception import config, endpoints, ini, releases, render, secrets, services, topology
from osception.render.conf import node_config, service_config
from tests import image_hosts
from tests.validators import oslo


def _files(release, state_home):
    """(path, validator kind) of every rendered INI file: controller and nodes."""
    cfg = config.Config(release=release)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    out = []
    # The control plane, whole (before the secret split), as its services read it.
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    for name, text in service_config(cfg, releases.get(cfg.release), sec, ep).items():
        out.append((name, text, name))
    # A compute and a network node, on each Open vSwitch datapath.
    plan = render.build(cfg, sec)
    addr = topology.placeholder_addresses(cfg)
    for datapath in ("system", "netdev"):
        node_cfg = cfg.model_copy(update={"ovs_datapath": datapath})
        for node in plan.nodes:
            if node.name in ("compute-0", "network-0"):
                files = node_config(node_cfg, plan.release, sec, node, addr[node.name], plan.node_endpoints())
                for dest, text in files.items():
                    base = dest.rsplit("/", 1)[1]
                    kind = "nova.conf" if base.startswith("nova") else base
                    out.append((f"{datapath}:{node.name}:{base}", text, kind))
    return out


def test_every_generated_ini_is_valid_for_the_release(release, release_venv, tmp_path, state_home):
    files = _files(release, state_home)
    kinds = {k for _, _, k in files}
    assert kinds >= set(services.CONTROLLER_INI) | set(services.NODE_INI)
    written = {}  # identical files (the node's nova.conf on either datapath) checked once
    for label, text, kind in files:
        if (text, kind) not in written:
            f = tmp_path / label.replace(":", "_")
            f.write_text(text)
            written[text, kind] = (f, kind)
    failures = oslo.problems(release_venv, list(written.values()))
    assert not failures, "\n\n".join(failures)


def test_validators_catch_a_bad_key_and_a_bad_value(release, release_venv, tmp_path, state_home):
    """The checks above can fail: a typo in a key, a wrong value, the other release's
    name of a renamed option (before 2026.1 unknown, from 2026.1 on deprecated)."""
    cfg = config.Config(release=release)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("x.sslip.io", "203.0.113.10")
    nova = service_config(cfg, releases.get(cfg.release), sec, ep)["nova.conf"]
    ml2 = service_config(cfg, releases.get(cfg.release), sec, ep)["ml2_conf.ini"]
    ours = releases.get(release).ml2_project_network_types_option
    other = ({"tenant_network_types", "project_network_types"} - {ours}).pop()
    cases = [
        ("nova.conf", ini.merge(nova, {"scheduler": {"discover_hosts_in_cell_interval": 60}})),
        ("nova.conf", ini.merge(nova, {"DEFAULT": {"debug": "maybe"}})),
        # a misspelt keystoneauth session option in a group nova lists as an OptGroup
        ("nova.conf", ini.merge(nova, {"glance": {"ca_file": "/etc/ca.crt"}})),
        ("ml2_conf.ini", ini.merge(ml2, {"ml2": {other: "vxlan"}})),
    ]
    written = []
    for n, (kind, text) in enumerate([*cases, ("nova.conf", nova)]):
        f = tmp_path / str(n) / kind
        f.parent.mkdir()
        f.write_text(text)
        written.append((f, kind))
    # One process checks every nova.conf above in turn: each bad one is named, and the
    # good one after them (the rendered file as it is) is not.
    failing = "\n".join(oslo.problems(release_venv, written))
    missed = [case for case, (f, _) in zip(cases, written) if f"{f} (" not in failing]
    assert missed == []
    assert f"{written[-1][0]} (" not in failing, failing


def test_user_overrides_are_validated_too(release, release_venv, tmp_path, state_home):
    p = tmp_path / "o.yaml"
    p.write_text(f"release: '{release}'\n" "overrides: {neutron.conf: {DEFAULT: {rpc_workers: 4}}, nova.conf: {quota: {instances: 40}}}\n")
    cfg = config.load(p)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    confs = service_config(cfg, releases.get(cfg.release), sec, endpoints.local())
    written = []
    for name in ("neutron.conf", "nova.conf"):
        f = tmp_path / name
        f.write_text(confs[name])
        written.append((f, None))
    assert oslo.problems(release_venv, written) == []
    # (rpc_workers: neutron 29, 2026.2, has no api_workers any more: the API is under uWSGI)
    assert "rpc_workers = 4" in confs["neutron.conf"]


# Glance's own validate_import_uri (what the image import API calls before a
# web-download), reading the rendered glance-api.conf through oslo.config.
GLANCE_FILTER = """
import sys
from oslo_config import cfg
import glance.async_.flows._internal_plugins  # registers [import_filtering_opts]
from glance.common import utils
validate = getattr(utils, "validate_import_uri", None) or utils.validate_uri  # glance 33: renamed
cfg.CONF([], project="glance", default_config_files=[sys.argv[1]])
for uri in sys.argv[2:]:
    print(uri, validate(uri))
"""


def _glance_filter(venv: Path, conf_text: str, tmp_path: Path, *uris: str) -> dict[str, bool]:
    conf = tmp_path / "glance-api.conf"
    conf.write_text(conf_text)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", GLANCE_FILTER, str(conf), *uris],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return {uri: ok == "True" for uri, ok in (line.rsplit(" ", 1) for line in out.splitlines())}


def test_glance_web_download_fetches_only_from_the_image_hosts(release, release_venv, tmp_path, state_home):
    # Image hosts as IP literals: Glance admits a host NAME only when it resolves in
    # DNS, which nothing does on this offline machine (on a cloud cloud.debian.org does).
    images = ["http://198.51.100.7/cirros.img", "https://[2001:db8::7]:8443/debian.qcow2"]
    cfg = config.Config.model_validate({"release": release, "overcloud": {"images": [
        {"name": f"i{n}", "url": url} for n, url in enumerate(images)]}})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    conf = service_config(cfg, releases.get(cfg.release), sec, ep)["glance-api.conf"]
    assert "allowed_hosts = [198.51.100.7,2001:db8::7]" in conf
    assert "allowed_ports = [80,443,8443]" in conf
    refused = ["http://169.254.169.254/openstack/latest/user_data",  # the outer metadata service
               "http://127.0.0.1/x", "http://10.0.0.5:3306/", "file:///etc/passwd",
               "http://198.51.100.7:8080/x", "http://198.51.100.8/cirros.img"]
    verdict = _glance_filter(release_venv, conf, tmp_path, *images, *refused)
    assert [u for u in images if not verdict[u]] == []
    assert [u for u in refused if verdict[u]] == []


def test_import_hosts_replace_the_image_hosts_and_no_host_turns_web_download_off(
        release, release_venv, tmp_path, state_home):
    cfg = config.Config.model_validate({"release": release, "overcloud": {"import_hosts": ["images.example.org"]}})
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")
    conf = service_config(cfg, releases.get(cfg.release), sec, ep)["glance-api.conf"]
    assert "allowed_hosts = [images.example.org]" in conf
    off = config.Config.model_validate({"release": release, "overcloud": {"images": []}})
    conf = service_config(off, releases.get(off.release), sec, ep)["glance-api.conf"]
    # An empty allowed_hosts would let Glance fetch from anywhere: the method is off.
    assert "enabled_import_methods = [glance-direct]\n" in conf
    # What an empty filter would admit, hence the method off: the metadata service up to
    # glance 32 (2026.1); glance 33 (2026.2) refuses link-local addresses by itself.
    admits = list(releases.RELEASES).index(release) < list(releases.RELEASES).index("2026.2")
    assert _glance_filter(release_venv, conf, tmp_path, "http://169.254.169.254/") == {
        "http://169.254.169.254/": admits}


# Glance's own web-download fetch, as its import task runs it: the API's check of the
# URL it is given, then glance.common.scripts.utils.get_image_data_iter, which follows
# redirects (and, from glance 30, checks each against the filter).
GLANCE_FETCH = """
import sys
from oslo_config import cfg
import glance.async_.flows._internal_plugins  # registers [import_filtering_opts]
from glance.common import utils
from glance.common.scripts import utils as script_utils
validate = getattr(utils, "validate_import_uri", None) or utils.validate_uri  # glance 33: renamed
cfg.CONF([], project="glance", default_config_files=[sys.argv[1]])
for uri in sys.argv[2:]:
    if not validate(uri):
        print(uri, "refused by the API")
        continue
    try:
        got = script_utils.get_image_data_iter(uri)
        data = got[0] if isinstance(got, tuple) else got  # glance 31+: (data, size)
        print(uri, sum(len(chunk) for chunk in iter(lambda: data.read(65536), b"")))
    except Exception as e:  # what fails the import task
        print(uri, "refused:", type(e).__name__, str(e).replace("\\n", " "))
"""


def _glance_fetch(venv: Path, conf_text: str, tmp_path: Path, *uris: str) -> dict[str, str]:
    conf = tmp_path / "glance-api.conf"
    conf.write_text(conf_text)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", GLANCE_FETCH, str(conf), *uris],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_glance_fetches_every_default_image_through_its_hosts_redirects(
        release, release_venv, tmp_path, state_home):
    """The default images' hosts played locally, redirects and all (tests/image_hosts.py):
    download.cirros-cloud.net -> github.com -> GitHub's asset host. Glance, with the
    import filter the defaults render (each real host replaced by its stand-in), fetches
    every default image. From glance 30 (2025.1) each redirect must pass the filter; the
    image hosts alone (the filter before redirect_hosts) make the CirrOS import fail."""
    defaults = config.Config(release=release)
    urls = [image.url for image in defaults.overcloud.images]
    local = [image_hosts.local_url(u) for u in urls]
    sec = secrets.ensure(state_home / defaults.name, defaults.name)
    ep = endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10")

    def conf(hosts) -> str:
        overcloud = {"images": [{"name": f"i{n}", "url": u} for n, u in enumerate(local)],
                     "import_hosts": [image_hosts.STAND_IN[h] for h in hosts]}
        cfg = config.Config.model_validate({"release": release, "overcloud": overcloud},
                                           context=config.LOCAL_IMAGE_HOSTS)
        return service_config(cfg, releases.get(cfg.release), sec, ep)["glance-api.conf"]

    with image_hosts.serve(urls) as seen:
        got = _glance_fetch(release_venv, conf(defaults.overcloud.web_download["hosts"]), tmp_path, *local)
        assert got == {u: str(image_hosts.SIZE) for u in local}
        cirros = local[urls.index(config.DEFAULT_IMAGES[0].url)]
        assert [a for a, _ in seen if a != image_hosts.STAND_IN["cloud.debian.org"]] == [
            image_hosts.STAND_IN[h] for h in ("download.cirros-cloud.net", "github.com",
                                              "release-assets.githubusercontent.com")]
        # The image hosts only: the first redirect leaves them.
        hosts_of_urls = sorted({urlparse(u).hostname for u in urls})
        got = _glance_fetch(release_venv, conf(hosts_of_urls), tmp_path, cirros)[cirros]
    if release == "2024.1":  # glance 28 follows any redirect unchecked (LP #2138602)
        assert got == str(image_hosts.SIZE)
    else:
        assert got.startswith("refused:") and "Redirect to disallowed URL" in got, got


def test_every_uwsgi_application_exists_in_the_release(release, release_venv, state_home):
    """What each API's uWSGI file loads is in that release's services: its `module`
    imports, or its `wsgi-file` (pbr's WSGI script, before 2025.1) is installed."""
    cfg = config.Config(release=release)
    plan = render.build(cfg, secrets.ensure(state_home / cfg.name, cfg.name))
    modules, scripts = [], []
    for path, text in plan.files.items():
        if path.startswith("k8s-0/manifests/"):
            for doc in yaml.safe_load_all(text):
                for key, value in ((doc or {}).get("data") or {}).items():
                    if key.endswith("-uwsgi.ini"):
                        ini = dict(line.split(" = ", 1) for line in value.splitlines() if " = " in line)
                        if "module" in ini:
                            modules.append(ini["module"].split(":")[0])
                        else:
                            scripts.append(ini["wsgi-file"].removeprefix("/var/lib/kolla/venv/"))
    assert len(modules) + len(scripts) >= 5
    assert [s for s in scripts if not (release_venv / s).is_file()] == []
    check = "import importlib.util, sys; print([m for m in sys.argv[1:] if not importlib.util.find_spec(m)])"
    out = subprocess.run([str(release_venv / "bin" / "python"), "-c", check, *modules],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
