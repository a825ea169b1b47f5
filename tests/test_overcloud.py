"""Populate and smoke-test a new cloud: the devcloud, started from osception's own
rendered service configuration, stands in for the controller."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest
import yaml

from osception import config, overcloud
from osception.devcloud import Devcloud
from osception.devcloud.lifecycle import Settings
from tests import image_hosts


@pytest.fixture(scope="module")
def image_url(tmp_path_factory):
    """A tiny raw image on a local HTTP server: Glance's web-download fetches it for
    real. Port 80: Glance's import filter admits only 80 and 443 by default."""
    root = tmp_path_factory.mktemp("images")
    (root / "tiny.raw").write_bytes(b"\0" * 2**20)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 80), handler)
    except OSError as e:
        pytest.fail(f"the test image server needs 127.0.0.1:80 ({e})")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1/tiny.raw"
    server.shutdown()


@pytest.fixture(scope="module")
def access(devcloud) -> overcloud.Access:
    return overcloud.Access(auth_url=devcloud.admin["auth_url"], admin_password=devcloud.admin["password"],
                            demo_password=devcloud.member["password"])


def smoke_cfg(image_url: str) -> config.Config:
    return config.Config.model_validate({
        "name": "smoke",
        "nodes": {"compute": {"count": 1}, "network": {"count": 0}},
        "public_network": {"mode": "provider", "network": "outer-provider", "cidr": "203.0.113.0/24",
                           "gateway": "203.0.113.1", "pool_start": "203.0.113.100",
                           "pool_end": "203.0.113.200"},
        "overcloud": {
            "demo_project": "smoke",
            "images": [
                {"name": "cirros-test", "url": image_url, "disk_format": "raw",
                 "properties": {"os_distro": "cirros", "os_admin_user": "cirros", "hw_disk_bus": "virtio"}},
                {"name": "debian-test", "url": image_url, "disk_format": "raw",
                 "properties": {"os_distro": "debian", "os_admin_user": "debian"}},
            ],
        },
    }, context=config.LOCAL_IMAGE_HOSTS)  # the images are served by this machine


def test_populate_twice_then_smoke(devcloud, access, image_url, tmp_path):
    cfg = smoke_cfg(image_url)
    t0 = time.monotonic()
    first = overcloud.populate(access, cfg, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOQ2Aq3GdF4RDRMtzGxbYbybIU7N"
                               "3yPOZAA7BjhX0kmv test", tmp_path)
    populate_s = time.monotonic() - t0
    # Everything exists now (a cloud populated by an earlier run may have had some).
    admin = devcloud.connect("admin")
    assert {f.name for f in admin.compute.flavors()} >= {"small", "medium", "large"}
    assert admin.compute.find_flavor("medium").vcpus == 2
    for name in ("public", "demo-net"):
        assert admin.network.find_network(name) is not None, name
    for name in ("public-subnet", "public-fip-agent-gateway", "demo-subnet"):
        assert admin.network.find_subnet(name) is not None, name
    project = admin.identity.find_project("smoke")
    demo = admin.identity.find_user("demo")
    assert admin.identity.validate_user_has_project_role(project, demo, admin.identity.find_role("member"))

    second = overcloud.populate(access, cfg, "unused", tmp_path)
    assert second.made == []

    cirros = admin.image.find_image("cirros-test")
    assert cirros.status == "active" and cirros.size == 2**20
    assert cirros.os_admin_user == "cirros"  # a Glance property openstacksdk knows by name
    fip_gw = admin.network.find_subnet("public-fip-agent-gateway")
    assert fip_gw.service_types == ["network:floatingip_agent_gateway"]
    router = admin.network.find_router("demo-router")
    assert router.external_gateway_info["network_id"] == admin.network.find_network("public").id
    for user in ("admin", "demo"):
        rc = (tmp_path / f"openrc-{user}").read_text()
        assert f"OS_AUTH_URL={access.auth_url}" in rc and (tmp_path / f"openrc-{user}").stat().st_mode & 0o077 == 0
    assert "smoke-demo" in (tmp_path / "clouds.yaml").read_text()

    t0 = time.monotonic()
    checks = overcloud.smoke(access, cfg, expected_computes=1, expected_network_nodes=0)
    smoke_s = time.monotonic() - t0
    report = "\n".join(f"{c.status} {c.name} {c.seconds:.1f}s {c.detail}" for c in checks)
    print(f"\npopulate {populate_s:.1f}s, smoke {smoke_s:.1f}s\n{report}")
    status = {c.name: c.status for c in checks}
    assert status == {
        "token": "pass", "catalog": "pass", "apis": "pass", "hypervisors": "pass",
        "network agents": "skip", "boot server": "pass", "console login": "skip",
        "floating IP ping": "skip",
    }, report
    assert all(c.detail for c in checks if c.status == "skip")
    # The smoke server is gone again.
    left = [x for x in admin.compute.servers(all_projects=True, name="osception-smoke") if x.status != "DELETED"]
    assert left == []


def test_smoke_names_the_first_broken_link(access, image_url):
    bad = overcloud.Access(access.auth_url, "wrong-password", access.demo_password)
    checks = overcloud.smoke(bad, smoke_cfg(image_url), expected_computes=1, expected_network_nodes=0)
    assert [(c.name, c.status) for c in checks] == [("token", "fail")]
    # openstacksdk's authorize() wraps keystoneauth's 401 (Keystone's own message)
    assert checks[0].detail.startswith(
        "SDKException: The request you have made requires authentication. (HTTP 401)"), checks[0].detail


def test_a_members_web_download_from_another_host_is_refused(devcloud, image_url):
    """Glance's import filter, as rendered: the devcloud admits its own image server
    (127.0.0.1) and nothing else. 127.0.0.2 stands for the outer cloud's metadata
    service (169.254.169.254): the same kind of address a pod could otherwise reach."""
    member = devcloud.connect("member")
    image = member.image.create_image(name="osception-import-refused", disk_format="raw",
                                      container_format="bare", allow_duplicates=True)
    try:
        refused = image_url.replace("127.0.0.1", "127.0.0.2")
        with pytest.raises(RuntimeError, match=r"Glance refused to fetch http://127\.0\.0\.2/.*filtering"):
            overcloud.import_from_url(member, image, refused)
        assert member.image.get_image(image).status == "queued"  # nothing was fetched
        # The allowed host still works for the same member.
        overcloud.import_from_url(member, image, image_url)
        member.image.wait_for_status(image, "active", failures=["killed"], wait=120)
    finally:
        member.image.delete_image(image, ignore_missing=True)


def test_populate_imports_the_default_images_through_their_hosts_redirects(devcloud, access, tmp_path):
    """The default images, each from a local stand-in of its host that answers as the
    real one does (tests/image_hosts.py: download.cirros-cloud.net -> github.com ->
    GitHub's asset host, each on an address of its own). The devcloud's Glance runs
    with the import filter the defaults render, each real host replaced by its
    stand-in: `populate` imports every image through the redirects (Glance 30+ checks
    each one against the filter), and says at once why when an import fails."""
    defaults = config.Config()
    urls = [image.url for image in defaults.overcloud.images]
    filter_hosts = [image_hosts.STAND_IN[h] for h in defaults.overcloud.web_download["hosts"]]
    images = tuple(config.Image.model_validate(
        {"name": f"{image.name}-chain", "url": image_hosts.local_url(image.url), "disk_format": "raw",
         "properties": image.properties}, context=config.LOCAL_IMAGE_HOSTS) for image in defaults.overcloud.images)
    (tmp_path / "osception.yaml").write_text(yaml.safe_dump(
        {"overcloud": {"import_hosts": filter_hosts}}))
    base = smoke_cfg("http://127.0.0.1/unused.raw")
    cfg = base.model_copy(update={"overcloud": base.overcloud.model_copy(update={"images": images})})
    layout = devcloud.layout
    before = Settings.load(layout).config
    dc = Devcloud(layout, say=print)
    admin = devcloud.connect("admin")
    try:
        dc.up(config_path=tmp_path / "osception.yaml")  # Glance restarts with that filter
        # An allowed host that redirects elsewhere (here to the metadata service's stand-in).
        github = image_hosts.STAND_IN["github.com"]
        moved = {github: {"/moved.img": ("redirect", "http://127.0.0.2/latest/meta-data")}}
        with image_hosts.serve(urls, extra=moved) as seen:
            overcloud.populate(access, cfg, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOQ2Aq3GdF4RDRMtzGxbYbybIU7N"
                               "3yPOZAA7BjhX0kmv test", tmp_path, wait_images=120)
            for image in images:
                got = admin.image.find_image(image.name)
                assert (got.status, got.size) == ("active", image_hosts.SIZE), image.name
            hops = [image_hosts.STAND_IN[h] for h in ("download.cirros-cloud.net", "github.com",
                                                      "release-assets.githubusercontent.com")]
            assert [a for a, _ in seen if a in hops] == hops

            bad = config.Image.model_validate({"name": "moved-chain", "url": f"http://{github}/moved.img",
                                               "disk_format": "raw"}, context=config.LOCAL_IMAGE_HOSTS)
            images += (bad,)
            t0 = time.monotonic()
            # Glance's task says only "Task failed due to Internal Error" (its log names the URL)
            with pytest.raises(RuntimeError, match=r"image moved-chain: import failed \(.+\); .*redirect_hosts"):
                overcloud.populate(access, cfg.model_copy(update={"overcloud": cfg.overcloud.model_copy(
                    update={"images": (bad,)})}), "unused", tmp_path, wait_images=120)
            assert time.monotonic() - t0 < 60  # at once, not after the timeout
    finally:
        for image in images:
            found = admin.image.find_image(image.name, ignore_missing=True)
            if found is not None:
                admin.image.delete_image(found)
        settings = Settings.load(layout)
        settings.config = before
        settings.save(layout)
        dc.up()
