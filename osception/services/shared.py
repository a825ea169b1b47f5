"""The facts that are no one service's: the region, the physical network, the ports of
the infrastructure every service reaches (RabbitMQ, MariaDB, memcached), what every
Kolla container keeps, the controller's public ports, and the compute and network
nodes' packages, units and users, which are the nodes' by role (one node runs the
agents of several services). osception/services/__init__.py re-exports them, so
`services.REGION` reads as it always did."""

from __future__ import annotations

from dataclasses import dataclass

from .. import releases
from .record import NodeFile

# The physical network of the public (flat) network: ML2's flat network, mapped to
# br-ex on every compute and network node.
PHYSNET = "provider"

# The Keystone region of every endpoint, client file and service option.
REGION = "RegionOne"
# The RabbitMQ user of every service (its password: secrets rabbitmq_password).
RABBITMQ_USER = "openstack"

RABBITMQ_PORT = 5672  # plain, inside the cluster
RABBITMQ_TLS_PORT = 5671  # TLS, for the nodes (kolla-ansible's port with rabbitmq_enable_tls)
MARIADB_PORT = 3306
MEMCACHED_PORT = 11211
# Where a pod finds its Kubernetes API token, CA and namespace (the path of Kubernetes'
# own automount; templates/scripts/wait_for.py reads it), and the ConfigMap of the
# cluster's CA that kube-controller-manager publishes in every namespace: not one of
# the plan's objects.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBE_ROOT_CA = "kube-root-ca.crt"

# The capabilities a container started through Kolla's kolla_start keeps (all others
# dropped): its start.sh runs `sudo kolla_set_configs` (and kolla_copy_cacerts) as the
# image's user. sudo needs SETUID and SETGID; set_configs.py chowns (CHOWN) and chmods
# (FOWNER) the files it installs and walks the service's own trees; the images'
# extend_start.sh, as root, writes into folders it just gave the service user
# (keystone's log: DAC_OVERRIDE). AUDIT_WRITE is not needed: sudo only warns that it
# cannot log. tests/kolla/test_contract.py runs Kolla's start.sh under Debian's sudo
# with exactly these, and with each one left out.
KOLLA_START_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")
# The Kolla images no one service owns: kolla-toolbox runs the Jobs of several (database
# creation, service accounts), with its uid (see Service.image_uids).
SHARED_IMAGES = ("kolla-toolbox",)
SHARED_IMAGE_UIDS = {"kolla-toolbox": 42401}

# Ports on the controller's IP (k3s servicelb binds them on the node): Traefik's 80
# and 443, RabbitMQ's TLS listener and the nova metadata API (LoadBalancer Services,
# `node_facing` in the manifests). The outer security group lets only the
# environment's own nodes in, except for the ports in PUBLIC_PORTS.
PUBLIC_PORTS = (22, 80, 443)

# The roles service_accounts.py manages: one a user has but should not is revoked.
MANAGED_SERVICE_ROLES = ("admin", "service")


def image(name: str, release: releases.Release, overrides: dict[str, str]) -> str:
    if name in overrides:
        return overrides[name]
    return f"{releases.KOLLA_REGISTRY}/{name}:{release.kolla_tag}"


# The config files of a compute and of a network node.
_NEUTRON_AGENTS = (
    NodeFile("/etc/neutron/neutron.conf", "neutron-agent.conf", "neutron"),
    NodeFile("/etc/neutron/plugins/ml2/openvswitch_agent.ini", "openvswitch_agent.ini", "neutron"),
    NodeFile("/etc/neutron/l3_agent.ini", "l3_agent.ini", "neutron"),
    NodeFile("/etc/neutron/metadata_agent.ini", "metadata_agent.ini", "neutron"),
)
NODE_FILES: dict[str, tuple[NodeFile, ...]] = {
    "compute": (NodeFile("/etc/nova/nova.conf", "nova-compute.conf", "nova"), *_NEUTRON_AGENTS),
    "network": (*_NEUTRON_AGENTS, NodeFile("/etc/neutron/dhcp_agent.ini", "dhcp_agent.ini", "neutron")),
}
# The nodes' INI files besides nova.conf and neutron.conf (whose overrides apply on the
# controller and on the nodes); `overrides:` in osception.yaml is keyed by these too.
NODE_INI = (
    "openvswitch_agent.ini",
    "l3_agent.ini",
    "dhcp_agent.ini",
    "metadata_agent.ini",
)

# libvirtd lets its group (nova is in it) manage QEMU through polkit (Debian's
# 60-libvirt.rules): polkitd is only a Recommends, and without it every connection
# waits for D-Bus to activate it and fails ("Failed to activate service
# org.freedesktop.PolicyKit1"), found by the first local node that booted.
_LIBVIRT_AUTH = ("polkitd",)

# Debian packages per node role (Debian 13, or the release's backports).
NODE_PACKAGES: dict[str, tuple[str, ...]] = {
    "compute": (
        "nova-compute", "nova-compute-kvm", "libvirt-daemon-system", "qemu-system-x86",
        "openvswitch-switch", "neutron-openvswitch-agent", "neutron-l3-agent",
        "neutron-metadata-agent", *_LIBVIRT_AUTH,
    ),
    "network": (
        "openvswitch-switch", "neutron-openvswitch-agent", "neutron-l3-agent",
        "neutron-dhcp-agent", "neutron-metadata-agent", "keepalived", "haproxy",
    ),
}
# The services the playbook enables and restarts on config change.
NODE_SERVICES: dict[str, tuple[str, ...]] = {
    "compute": ("libvirtd", "nova-compute", "neutron-openvswitch-agent", "neutron-l3-agent",
                "neutron-metadata-agent"),
    "network": ("neutron-openvswitch-agent", "neutron-l3-agent", "neutron-dhcp-agent",
                "neutron-metadata-agent"),
}

# --- node_source: pypi ---------------------------------------------------------------
# The services from PyPI into one venv, constrained by the release's lock (the devcloud's,
# osception/locks/openstack-<release>.txt); everything else from Debian.
NODE_VENV = "/opt/openstack"
# The node's top-level projects. pyroute2: a neutron requirement that neutron 29.0.0's
# wheel metadata leaves out (the lock's header). libvirt-python: nova's libvirt driver
# (Debian's python3-libvirt); not in the locks, so unpinned, built against libvirt-dev.
NODE_PYPI_PROJECTS: dict[str, tuple[str, ...]] = {
    "compute": ("nova", "neutron", "pyroute2", "libvirt-python"),
    "network": ("neutron", "pyroute2"),
}
# Debian packages of a pypi node: the non-Python Depends of the Debian packages that
# packages mode installs (2025.1, trixie: nova-compute, python3-nova, nova-compute-kvm,
# neutron-*-agent, python3-neutron), the runtime lines of nova's and neutron's bindep.txt
# (lsscsi; haproxy, keepalived), and what building the sdists needs (libvirt-python,
# ovs; bindep: libffi-dev, python3-dev, pkg-config).
_PYPI_BUILD = ("python3-venv", "python3-dev", "gcc", "libc6-dev", "pkg-config", "libffi-dev")
_PYPI_NEUTRON = (
    "openvswitch-switch", "iproute2", "ipset", "conntrack", "iptables", "sudo",  # python3-neutron, agents
    "haproxy", "keepalived", "iputils-arping", "radvd",  # neutron-l3-agent, neutron-metadata-agent
)
NODE_PYPI_PACKAGES: dict[str, tuple[str, ...]] = {
    "compute": (
        *_PYPI_BUILD, "libvirt-dev",
        # nova-compute-kvm
        "libvirt-daemon-system", "qemu-system-x86", "qemu-block-extra", "swtpm", "swtpm-tools",
        *_LIBVIRT_AUTH,
        # nova-compute
        "cgroup-tools", "curl", "dosfstools", "ebtables", "fdisk", "gawk", "kpartx", "mdevctl",
        "open-iscsi", "ovmf", "parted", "qemu-utils", "rsync", "vlan",
        # python3-nova; bindep.txt (os-brick)
        "e2fsprogs", "genisoimage", "openssh-client", "openssl", "lsscsi",
        *_PYPI_NEUTRON,
    ),
    "network": (*_PYPI_BUILD, *_PYPI_NEUTRON, "dnsmasq-base", "dnsmasq-utils"),  # neutron-dhcp-agent
}


@dataclass(frozen=True)
class ServiceUser:
    """A system user of a pypi node, made as Debian's packages make it (openstack-pkg-tools'
    pkgos_var_user_group): group and user of the same name, home /var/lib/<name>, which
    holds the service's state; logs in /var/log/<name> (<name>:adm 0750)."""

    name: str
    shell: str  # nova: /bin/sh, for migrations over SSH
    uid: int | None = None  # Debian's reserved ids (bugs.debian.org/884178)
    groups: tuple[str, ...] = ()
    # What it may run as root (sudoers), as Debian's sudoers of the same package, the
    # programs being the venv's: <program> <arguments>.
    sudo: tuple[str, ...] = ()
    # Folders under its home the package makes and the service expects (nova-compute:
    # instances_path, $state_path/instances, statvfs'd before any instance exists).
    state_folders: tuple[str, ...] = ()


_NEUTRON_USER = ServiceUser("neutron", "/usr/sbin/nologin", sudo=(
    "neutron-rootwrap /etc/neutron/rootwrap.conf *", "neutron-rootwrap-daemon /etc/neutron/rootwrap.conf"))
NODE_USERS: dict[str, tuple[ServiceUser, ...]] = {
    "compute": (ServiceUser("nova", "/bin/sh", 64060, ("libvirt", "kvm"),
                            sudo=("nova-rootwrap /etc/nova/rootwrap.conf *", "privsep-helper *"),
                            state_folders=("instances",)),
                _NEUTRON_USER),
    "network": (_NEUTRON_USER,),
}


@dataclass(frozen=True)
class NodeUnit:
    """A systemd unit of a pypi node: what Debian's unit and init script of the same name
    run (its `show-args`: --config-file=<project>.conf first unless the script names
    another, then the agent's own, then --log-file), from the venv."""

    name: str  # the service, and its program in the venv
    description: str
    config_files: tuple[str, ...]
    after: tuple[str, ...] = ()  # beyond network-online.target
    notify: bool = False  # Type=notify (oslo.service tells systemd when it is up)
    kill_process: bool = False  # KillMode=process: keepalived and haproxy outlive a restart

    @property
    def user(self) -> str:
        return self.name.split("-", 1)[0]


NODE_UNITS: dict[str, NodeUnit] = {
    u.name: u
    for u in (
        # Type=simple, not Debian's notify: only oslo.service's eventlet backend says
        # READY=1, and nova-compute runs on its threading backend from 2026.2 on (systemd
        # then killed it after 90 s of "activating", found by a local 2026.2 node).
        NodeUnit("nova-compute", "OpenStack Nova Compute",
                 ("/etc/nova/nova.conf", "/etc/nova/nova-compute.conf"),
                 after=("libvirtd.service",)),
        NodeUnit("neutron-openvswitch-agent", "OpenStack Neutron Open vSwitch agent",
                 ("/etc/neutron/plugins/ml2/openvswitch_agent.ini", "/etc/neutron/neutron.conf"),
                 after=("openvswitch-switch.service",)),
        NodeUnit("neutron-l3-agent", "OpenStack Neutron L3 agent",
                 ("/etc/neutron/neutron.conf", "/etc/neutron/l3_agent.ini"),
                 after=("openvswitch-switch.service",), kill_process=True),
        NodeUnit("neutron-metadata-agent", "OpenStack Neutron metadata agent",
                 ("/etc/neutron/neutron.conf", "/etc/neutron/metadata_agent.ini"),
                 after=("openvswitch-switch.service",)),
        NodeUnit("neutron-dhcp-agent", "OpenStack Neutron DHCP agent",
                 ("/etc/neutron/neutron.conf", "/etc/neutron/dhcp_agent.ini")),
    )
}
