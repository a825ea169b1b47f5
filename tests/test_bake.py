"""`osception bake`: its user data and scripts through the real cloud-init schema,
shellcheck and bash; the whole flow (builder -> snapshot -> image -> `up` boots it ->
`down` keeps it -> `bake --delete`) against the devcloud as the outer cloud."""

from __future__ import annotations

import base64
import gzip
import re
import shutil
import subprocess
import threading

import pytest
import yaml
from openstack import utils as sdk_utils

from osception import bake, config, deploy, releases, render, secrets
from osception import undercloud as uc
from osception.render.bake import bake_user_data
from osception.render.checks import NOVA_USER_DATA_LIMIT, user_data_size
from osception.render.layout import BAKED_STAMP, K3S_EXEC, NODE_CONSTRAINTS, NODE_ETC, bake_id
from osception.render.node import load_ansible_vars, node_lock
from tests import steps
from tests.test_cloudinit_and_shell import KNOWN_TOP_LEVEL, cloud_init_schema

CONFIGS = {"packages": config.Config(), "pypi": config.Config(node_source="pypi", release="2025.1")}


def _bake_files(cfg) -> dict[str, str]:
    """{kind: builder user data}."""
    return {kind: bake_user_data(cfg, kind) for kind in bake.KINDS}


def _written(user_data: str, path: str) -> str:
    return next(f["content"] for f in yaml.safe_load(user_data)["write_files"] if f["path"] == path)


@pytest.mark.parametrize("source", CONFIGS)
def test_bake_user_data_passes_the_cloud_init_schema_and_its_scripts_shellcheck(source, tmp_path):
    docs = _bake_files(CONFIGS[source])
    files = {kind: tmp_path / f"{kind}.yaml" for kind in docs}
    for kind, f in files.items():
        f.write_text(docs[kind])
        assert docs[kind].startswith("#cloud-config\n") and set(yaml.safe_load(docs[kind])) <= KNOWN_TOP_LEVEL
        assert user_data_size(docs[kind]) < NOVA_USER_DATA_LIMIT
        # write_files cannot make a file where another entry needs a folder (the
        # schema cannot see it; cloud-init fails the module at boot)
        paths = [f["path"] for f in yaml.safe_load(docs[kind])["write_files"]]
        assert not [(a, b) for a in paths for b in paths if b.startswith(a + "/")], kind
    for kind, (rc, out) in cloud_init_schema(list(files.values())).items():
        assert rc == 0 and "Valid" in out and "DEPRECATED" not in out, f"{kind}: {out}"
    scripts = {}
    for kind, text in docs.items():
        scripts[tmp_path / f"bake-{kind}.sh"] = _written(text, f"{NODE_ETC}/bake")
    for f, text in scripts.items():
        f.write_text(text)
    r = subprocess.run([shutil.which("shellcheck"), "-S", "warning", "-s", "bash", "-f", "gcc", *map(str, scripts)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_node_image_installs_both_roles_packages_and_disables_their_services():
    cfg = CONFIGS["pypi"]
    doc = bake_user_data(cfg, "node")
    script = _written(doc, f"{NODE_ETC}/bake")
    for role in ("compute", "network"):
        node_vars = load_ansible_vars(_written(doc, f"{NODE_ETC}/bake-vars/{role}.yml"))
        assert node_vars["node_role"] == role and node_vars["patches"] == []
        assert node_vars["release"] == cfg.release and node_vars["node_source"] == "pypi"
        # the playbooks the nodes run, as they run them (the packages pass)
        assert _written(doc, f"{NODE_ETC}/ansible/{role}.yml") == render.env.source(f"ansible/{role}.yml")
    assert "--tags packages" in script
    for unit in ("nova-compute", "neutron-dhcp-agent", "neutron-openvswitch-agent", "libvirtd"):
        assert unit in re.search(r"for unit in (.*); do", script).group(1)
    # node_source pypi: the lock and the units the packages pass installs
    assert _written(doc, NODE_CONSTRAINTS) == node_lock(releases.get(cfg.release))
    assert f"{NODE_ETC}/files/etc/systemd/system/neutron-dhcp-agent.service" in doc


def test_the_controller_image_pulls_every_image_the_manifests_name():
    cfg = config.Config(images={"keystone": "registry.example.com/kolla/keystone:2026.2-patched"})
    script = _written(bake_user_data(cfg, "controller"), f"{NODE_ETC}/bake")
    pulled = re.search(r"for image in (.*); do", script).group(1).split()
    plan = render.build(cfg, secrets.throwaway("t"))
    images = {line.split("image:", 1)[1].strip().strip('"') for rel, text in plan.files.items()
              if rel.startswith("k8s-0/manifests/") for line in text.splitlines()
              if re.match(r"\s+(- )?image: \S+/", line)}  # a reference (not skyline.yaml's `image: glance`)
    assert set(pulled) == images and len(pulled) == len(images) >= 14
    assert "registry.example.com/kolla/keystone:2026.2-patched" in pulled
    # k3s as the setup would install it: same version and flags
    assert f"INSTALL_K3S_VERSION='{releases.K3S_VERSION}'" in script
    assert f"INSTALL_K3S_EXEC='{K3S_EXEC}'" in script
    assert f"releases/download/{releases.K3S_VERSION.replace('+', '%2B')}\n" in script


def _function(script: str, name: str) -> str:
    one_line = re.search(rf"^{name}\(\) \{{[^\n]*\}}\n", script, re.M)
    return (one_line or re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", script, re.M | re.S)).group(0)


def _harness(tmp_path, body: str, node: str) -> tuple[int, list]:
    from osception import progress

    r, lines = steps.run(tmp_path, node, body)
    prog = progress.parse("\n".join(lines))[node]
    return r.returncode, [(s.name, s.state, s.message) for s in prog.steps]


def test_a_node_from_the_baked_image_skips_what_the_bake_installed(default_plan, default_secrets, tmp_path):
    """The handshake in real bash: the bake script's `stamp` writes what the node's
    setup `baked` checks; with it the three install steps report skipped, without it
    (a stock image, or another release's bake) they run. Only the commands are stubs."""
    cfg = default_plan.cfg
    stamp_file = tmp_path / "baked"
    bake_sh = _written(bake_user_data(cfg, "node"), f"{NODE_ETC}/bake")
    setup = _written(default_plan.files["compute-0/user-data"], f"{NODE_ETC}/setup")
    block = re.search(r"^if baked; then\n.*?^fi\n", setup, re.M | re.S).group(0)
    baked_line = re.search(r"^baked\(\) .*\n", setup, re.M).group(0)
    image_line = re.search(r"^BAKED_IMAGE=.*\n", setup, re.M).group(0)
    stubs = "package_source() { :; }\ninstall_ansible() { :; }\nplaybook() { echo \"$1\"; }\n"
    node = f"{baked_line}{image_line}{stubs}{block}".replace(BAKED_STAMP, str(stamp_file))

    rc, steps = _harness(tmp_path, node, "compute-0")  # a stock image: no stamp
    assert rc == 0 and steps == [("package-source", "done", ""), ("install-ansible", "done", ""),
                                 ("install-packages", "done", "")]

    stamp = _function(bake_sh, "stamp_image").replace(BAKED_STAMP, str(stamp_file))
    assert _harness(tmp_path, f"{stamp}step stamp-image stamp_image\n", "bake-node")[0] == 0
    assert stamp_file.read_text() == bake_id("node", cfg) + "\n"
    rc, steps = _harness(tmp_path, node, "compute-0")
    why = f"skipped: baked image ({bake_id('node', cfg)}): already installed"
    assert rc == 0 and steps == [("package-source", "done", why), ("install-ansible", "done", why),
                                 ("install-packages", "done", why)]

    stamp_file.write_text(bake_id("node", cfg.model_copy(update={"release": "2025.1"})) + "\n")
    rc, steps = _harness(tmp_path, node, "compute-0")  # another release's image installs again
    assert [s[2] for s in steps] == ["", "", ""]


def test_the_controller_from_the_baked_image_starts_the_baked_k3s(default_plan, tmp_path):
    setup = _written(default_plan.files["k8s-0/user-data"], "/usr/local/sbin/osception-setup")
    block = re.search(r"^if baked; then\n.*?^fi\n", setup, re.M | re.S).group(0)
    assert "systemctl enable --now k3s" in block and "step install-k3s install_k3s" in block
    baked_line = re.search(r"^baked\(\) .*\n", setup, re.M).group(0)
    stamp_file = tmp_path / "baked"
    stamp_file.write_text(bake_id("controller", default_plan.cfg) + "\n")
    body = (baked_line + "systemctl() { echo \"$*\"; }\ninstall_k3s() { :; }\n" + block).replace(
        BAKED_STAMP, str(stamp_file))
    rc, steps = _harness(tmp_path, body, "k8s-0")
    assert rc == 0 and [(n, s) for n, s, _ in steps] == [("install-k3s", "done"), ("start-k3s", "done")]
    assert steps[0][2].startswith("skipped: baked image (controller ")


def test_bake_refuses_what_up_refuses_in_its_words():
    """bake's preflight is up's lookups (uc.look_up) for the builders' roles: the same
    lines for their flavors, images and the network, before anything is created; a
    network node's flavor is none of its business (no builder boots it)."""
    from tests.test_preflight import CFG, QuotaCloud

    cloud = QuotaCloud()
    cloud.flavors_[:] = [f for f in cloud.flavors_ if f.name != "big"]  # the controller's
    cloud.images_.clear()
    cloud.networks_.clear()
    with pytest.raises(uc.PreflightError) as up:
        uc.preflight(cloud, CFG, uc.Names(CFG.name))
    with pytest.raises(uc.PreflightError) as baking:
        bake.bake(cloud, CFG)
    assert baking.value.problems == [line for line in up.value.problems if not line.startswith("nodes.network.")]
    assert len(baking.value.problems) == 4 and cloud.servers_ == []


# --- against the devcloud ------------------------------------------------------------

def _builders(conn) -> dict[str, object]:
    return {s.name: s for s in conn.compute.servers() if bake.BAKED_TAG in (s.tags or [])}


def test_bake_flow_on_the_devcloud(devcloud, tmp_path):
    """server -> snapshot -> image -> `up` boots it; idempotent; `down` keeps it;
    `bake --delete` removes it. The builders are the one mock: this fake hypervisor
    runs no user data, so the test powers them off, as their script does at its end."""
    from tests.test_undercloud import make_cfg
    from osception.devcloud import cloud

    admin, conn = devcloud.connect("admin"), devcloud.connect("member")
    cloud.dress_as_outer_cloud(admin, conn)
    cfg = make_cfg("t-bake", compute=1, network=1)
    bake.delete(conn, cfg)  # an interrupted earlier run's
    uc.destroy(conn, uc.Names(cfg.name))
    # its keypair too: `down` keeps a keypair it cannot prove its own (no local state),
    # and this test's environment gets a new key each run
    conn.compute.delete_keypair(uc.Names(cfg.name).keypair, ignore_missing=True)

    made, said = {}, []
    worker = threading.Thread(target=lambda: made.update(bake.bake(conn, cfg, say=said.append, timeout=300)))
    worker.start()
    wanted = {bake.Bake(cfg, k).builder_name: k for k in bake.KINDS}
    for _ in sdk_utils.iterate_timeout(120, "the builders never went ACTIVE"):
        builders = _builders(conn)
        if set(builders) == set(wanted) and all(s.status == "ACTIVE" for s in builders.values()):
            break
    for name, server in builders.items():
        kind = wanted[name]
        user_data = gzip.decompress(base64.b64decode(admin.compute.get_server(server.id).user_data)).decode()
        assert user_data == bake_user_data(cfg, kind)
        group = getattr(cfg.nodes, bake.BUILDER_ROLE[kind])
        assert server.image["id"] == conn.image.find_image(group.image).id
        assert not made  # still waiting for it to power off
        conn.compute.stop_server(server)  # the mock: the builder's script ends so
    worker.join(300)
    assert not worker.is_alive() and set(made) == set(bake.KINDS), said

    for kind, image in made.items():
        b = bake.Bake(cfg, kind)
        image = conn.image.get_image(image.id)
        assert image.status == "active" and image.name == b.image_name
        assert set(b.tags) <= set(image.tags) and image.properties[bake.STAMP_PROPERTY] == b.stamp
    assert _builders(conn) == {}

    # Again: nothing new, the same images.
    said.clear()
    again = bake.bake(conn, cfg, say=said.append, timeout=30)
    assert {k: i.id for k, i in again.items()} == {k: i.id for k, i in made.items()}
    assert _builders(conn) == {} and all("baked already" in line for line in said), said

    # `up` boots them (base_images: baked, the default), `down` leaves them.
    env_dir = tmp_path / "env"
    sec = secrets.ensure(env_dir, cfg.name)
    said.clear()
    result = deploy.provision(conn, cfg, sec, env_dir, say=said.append)
    for node, server in result.servers.items():
        kind = "controller" if node == "k8s-0" else "node"
        assert server.image["id"] == made[kind].id, node
    assert any("boot the baked image" in line for line in said)
    uc.destroy(conn, uc.Names(cfg.name), sec.ssh["public"])
    assert {i.id for i in conn.image.images(tag=bake.BAKED_TAG)} >= {i.id for i in made.values()}

    # stock: the user's image even though baked ones exist
    stock = cfg.model_copy(update={"base_images": "stock"})
    result = deploy.provision(conn, stock, sec, env_dir)
    assert {s.image["id"] for s in result.servers.values()} == {conn.image.find_image("Debian 13").id}
    uc.destroy(conn, uc.Names(cfg.name), sec.ssh["public"])

    assert bake.delete(conn, cfg) == 2
    assert [i for i in conn.image.images(tag=bake.BAKED_TAG) if i.id in {m.id for m in made.values()}] == []


def test_the_controller_bake_checks_k3s_against_the_release_checksums(tmp_path):
    """fetch_k3s, run by bash with curl against a local HTTP server standing for the k3s
    release (the URL swapped, nothing else): the binary and the airgap images are
    installed only when both match the release's sha256sum-amd64.txt."""
    import hashlib
    import http.server
    import functools

    script = _written(bake_user_data(config.Config(), "controller"), f"{NODE_ETC}/bake")
    release = tmp_path / "release"
    release.mkdir()
    files = {"k3s": b"#!/bin/sh\necho k3s\n", "k3s-airgap-images-amd64.tar.zst": b"images"}
    for name, data in files.items():
        (release / name).write_bytes(data)
    (release / "install.sh").write_text("#!/bin/sh\n")

    def sums(tamper: bool = False) -> None:
        lines = [f"{hashlib.sha256(data).hexdigest()}  {name}" for name, data in files.items()]
        lines.append(f"{'0' * 64}  k3s-airgap-images-amd64.tar")  # others the release lists
        if tamper:
            lines[0] = f"{'1' * 64}  k3s"
        (release / "sha256sum-amd64.txt").write_text("\n".join(lines) + "\n")

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(release))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        fetch = _function(script, "fetch_k3s")
        header = re.search(r"^K3S_RELEASE=.*\nAIRGAP=.*\nIMAGES_DIR=.*\n", script, re.M).group(0)
        root = tmp_path / "root"
        for tamper in (True, False):
            shutil.rmtree(root, ignore_errors=True)
            body = (header + fetch + "step fetch-k3s fetch_k3s\n")
            body = re.sub(r"^K3S_RELEASE=.*$", f"K3S_RELEASE={url}", body, flags=re.M)
            body = body.replace("https://get.k3s.io", f"{url}/install.sh")
            body = body.replace("/var/lib/rancher", f"{root}/var/lib/rancher").replace(
                "/usr/local/bin/k3s", f"{root}/k3s")
            body = f"ETC={root}/etc\n" + body
            sums(tamper)
            rc, steps = _harness(tmp_path, body, "bake-controller")
            installed = (root / "k3s").exists()
            if tamper:
                assert rc != 0 and steps[0][1] == "failed" and not installed
            else:
                assert rc == 0 and steps == [("fetch-k3s", "done", "")] and installed
                assert (root / "var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst").read_bytes() \
                    == b"images"
    finally:
        server.shutdown()
