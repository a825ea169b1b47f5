"""The devcloud serves what osception asks of an OpenStack cloud, through openstacksdk:
the calls undercloud.py makes to provision nodes, and those overcloud.py makes to
populate a new cloud. Real services, fake hypervisor."""

from __future__ import annotations

import base64
import configparser
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from openstack.exceptions import NotFoundException

from osception import ini, releases, services
from osception import secrets as secrets_mod
from osception.devcloud import configs
from osception.devcloud.lifecycle import Settings
from osception.devcloud.overrides import overrides

PREFIX = "devcloud-test-"
USER_DATA = "#cloud-config\nhostname: devcloud-test\n"


def test_admin_and_member_get_tokens(devcloud):
    for who in ("admin", "member"):
        assert devcloud.connect(who).authorize()


def test_catalog_has_every_service(devcloud):
    types = {s["type"] for s in devcloud.connect("member").service_catalog}
    assert {"identity", "image", "placement", "network", "compute"} <= types


def _ini(*texts: str) -> dict:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for text in texts:
        parser.read_string(text)
    return {section: dict(parser[section]) for section in parser}


def test_service_users_hold_exactly_their_roles(devcloud):
    """service_accounts.py gives each service user its roles of services.SERVICE_USER_ROLES
    in project "service" (and takes back a managed role it should not have); the
    server tests below then run with glance, placement and neutron holding only
    "service"."""
    ident = devcloud.connect("admin").identity
    project = ident.find_project("service", ignore_missing=False)
    held = {}
    for user in services.SERVICE_USER_ROLES:
        uid = ident.find_user(user, domain_id="default", ignore_missing=False).id
        held[user] = tuple(sorted(ident.get_role(a.role["id"]).name for a in ident.role_assignments(
            user_id=uid, scope_project_id=project.id)))
    assert held == {u: tuple(sorted(r)) for u, r in services.SERVICE_USER_ROLES.items()}


def test_services_run_osceptions_own_config(devcloud):
    """What the services read is render.conf.service_config() (and, for nova-compute, a
    compute node's nova.conf) plus the devcloud overrides, nothing else, split as in
    production: the ConfigMap's file where config.json puts it, the lines holding a
    secret in the <project>.conf.d/secrets.conf drop-in."""
    sec = secrets_mod.ensure(devcloud.layout.root, "devcloud")
    cfg = Settings.load(devcloud.layout).run_config()
    rendered = configs.rendered(cfg, sec, devcloud.layout)
    extra = overrides(devcloud.layout, releases.get(cfg.release))
    etc = devcloud.layout.root / "etc"
    where = {"ml2_conf.ini": "neutron/plugins/ml2/ml2_conf.ini",
             "glance-api.conf": "glance/glance-api.conf"}
    for name in services.CONTROLLER_INI:
        rel = where.get(name) or f"{name.removesuffix('.conf')}/{name}"
        project = rel.split("/")[0]
        drop_in = etc / project / f"{project}.conf.d" / "secrets.conf"
        texts = [(etc / rel).read_text()] + ([drop_in.read_text()] if name.endswith(".conf") else [])
        assert _ini(*texts) == _ini(rendered[name]), name
        # Every override is in the file (merging it again changes nothing).
        assert ini.merge(rendered[name], extra[name]) == rendered[name]
    assert (etc / configs.COMPUTE_CONF).read_text() == rendered["nova-compute.conf"]
    assert "compute_driver = osception_fake_snapshots.FakeDriverWithSnapshots" in rendered["nova-compute.conf"]
    assert "[api_database]" not in rendered["nova-compute.conf"]  # a compute has no DB access


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="module")
def booted(devcloud):
    """A member's keypair, soft-anti-affinity server group, network, subnet and port
    (made before the server, as osception does), and a server with user data on it."""
    conn = devcloud.connect("member")
    r = {"conn": conn}
    r["keypair"] = conn.compute.create_keypair(name=f"{PREFIX}key", public_key=_public_key())
    r["group"] = conn.compute.create_server_group(name=f"{PREFIX}group",
                                                  policy="soft-anti-affinity")
    r["network"] = conn.network.create_network(name=f"{PREFIX}net")
    r["subnet"] = conn.network.create_subnet(name=f"{PREFIX}subnet", network_id=r["network"].id,
                                             ip_version=4, cidr="10.20.0.0/24")
    r["port"] = conn.network.create_port(name=f"{PREFIX}port", network_id=r["network"].id)
    server = conn.compute.create_server(
        name=f"{PREFIX}server",
        flavor_id=conn.compute.find_flavor(devcloud.flavor, ignore_missing=False).id,
        image_id=conn.image.find_image(devcloud.image, ignore_missing=False).id,
        networks=[{"port": r["port"].id}],
        key_name=r["keypair"].name,
        user_data=base64.b64encode(USER_DATA.encode()).decode(),
        scheduler_hints={"group": r["group"].id},
    )
    r["server"] = conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
    yield r
    _delete_all(r)  # idempotent: test_delete_all normally did it already


def _delete_all(r) -> None:
    conn = r["conn"]
    if r.get("server") is not None:
        conn.compute.delete_server(r["server"], ignore_missing=True)
        conn.compute.wait_for_delete(r["server"], wait=120)
    for port in conn.network.ports(network_id=r["network"].id):
        if not port.device_owner.startswith("network:"):  # Neutron's own go with the network
            conn.network.delete_port(port)
    conn.network.delete_subnet(r["subnet"], ignore_missing=True)
    conn.network.delete_network(r["network"], ignore_missing=True)
    conn.compute.delete_server_group(r["group"], ignore_missing=True)
    conn.compute.delete_keypair(r["keypair"], ignore_missing=True)


def test_server_is_active_on_its_port_with_its_user_data(booted, devcloud):
    server = booted["server"]
    assert server.status == "ACTIVE"
    admin = devcloud.connect("admin")  # bindings and user data are shown to admins only
    port = admin.network.get_port(booted["port"].id)
    assert port.device_id == server.id and port.status == "ACTIVE"
    assert port.binding_vif_type == "ovs"  # bound by the devcloud's test ML2 driver
    assert server.key_name == booted["keypair"].name
    assert base64.b64decode(admin.compute.get_server(server.id).user_data).decode() == USER_DATA
    assert server.id in booted["conn"].compute.get_server_group(booted["group"]).member_ids


def test_console_output(booted):
    out = booted["conn"].compute.get_server_console_output(booted["server"])
    assert out["output"]  # the fake hypervisor's fixed text


def test_interface_attach(booted):
    conn = booted["conn"]
    extra = conn.network.create_port(name=f"{PREFIX}extra-port", network_id=booted["network"].id)
    conn.compute.create_server_interface(booted["server"], port_id=extra.id)
    attached = {i.port_id for i in conn.compute.server_interfaces(booted["server"])}
    assert {booted["port"].id, extra.id} <= attached
    assert conn.network.get_port(extra.id).device_id == booted["server"].id


def test_tags(booted):
    conn = booted["conn"]
    conn.compute.add_tag_to_server(booted["server"], "osception")
    assert "osception" in conn.compute.get_server(booted["server"].id).tags
    conn.network.set_tags(booted["network"], ["osception", "env-test"])
    assert set(conn.network.get_network(booted["network"].id).tags) == {"osception", "env-test"}


def test_delete_all(booted):
    conn = booted["conn"]
    _delete_all(booted)
    gone = [(conn.compute.get_server, booted["server"]), (conn.network.get_port, booted["port"]),
            (conn.network.get_subnet, booted["subnet"]),
            (conn.network.get_network, booted["network"]),
            (conn.compute.get_server_group, booted["group"]),
            (conn.compute.get_keypair, booted["keypair"])]
    for get, resource in gone:
        with pytest.raises(NotFoundException):
            get(resource)


def test_routers_and_floating_ips_at_the_api_level(devcloud):
    """What overcloud.py sets up: a public flat network (admin), a router with a
    gateway and a private subnet, a floating IP (member). No agent runs, so no
    traffic: only the API objects."""
    admin, member = devcloud.connect("admin"), devcloud.connect("member")
    # One flat network per physical network: a name of its own (flat_networks = *).
    public = admin.network.create_network(name=f"{PREFIX}public", is_router_external=True,
                                          provider_network_type="flat",
                                          provider_physical_network=f"test-{uuid.uuid4().hex[:8]}")
    try:
        admin.network.create_subnet(network_id=public.id, ip_version=4, cidr="198.51.100.0/24",
                                    enable_dhcp=False)
        net = member.network.create_network(name=f"{PREFIX}private")
        subnet = member.network.create_subnet(network_id=net.id, ip_version=4,
                                              cidr="10.30.0.0/24")
        router = member.network.create_router(name=f"{PREFIX}router",
                                              external_gateway_info={"network_id": public.id})
        member.network.add_interface_to_router(router, subnet=subnet.id)
        fip = member.network.create_ip(floating_network_id=public.id)
        assert fip.floating_ip_address.startswith("198.51.100.")
        member.network.delete_ip(fip)
        member.network.remove_interface_from_router(router, subnet=subnet.id)
        member.network.delete_router(router)
        member.network.delete_network(net)
    finally:
        admin.network.delete_network(public)


def test_image_upload(devcloud):
    conn = devcloud.connect("admin")
    image = conn.image.create_image(name=f"{PREFIX}image", data=b"\0" * 4096,
                                    disk_format="raw", container_format="bare")
    try:
        assert conn.image.get_image(image.id).status == "active"
    finally:
        conn.image.delete_image(image)
