"""Supported OpenStack releases: the one table every other module reads.

A release maps to the Kolla image tag of the control plane (controller, k3s) and
to the package source of the compute and network nodes (Debian 13 "trixie").
Debian 13 carries 2025.1 itself; newer releases come from the Debian OpenStack
backports (osbpo), enabled on the node with `extrepo enable <name>`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kubernetes on the controller. The manifests are validated against this
# Kubernetes version (tests/test_manifests.py), so keep the two together.
K3S_VERSION = "v1.34.9+k3s1"
KUBERNETES_VERSION = "1.34.0"

KOLLA_REGISTRY = "quay.io/openstack.kolla"

# The node OS. Debian 13 is the only one the node playbooks target.
NODE_OS = "debian-13"


@dataclass(frozen=True)
class Release:
    name: str  # "2026.1"
    codename: str  # "Gazpacho"
    kolla_tag: str  # tag of every quay.io/openstack.kolla image
    # None: Debian 13's own archive carries this release.
    # Otherwise the extrepo repository name of the Debian OpenStack backports.
    extrepo: str | None
    # The Kolla and kolla-ansible source releases of this series (PyPI sdists) that the
    # control plane is checked against (tests/kolla: set_configs.py, Dockerfiles, roles).
    kolla_version: str
    kolla_ansible_version: str
    # ML2 renamed tenant_network_types; each release is validated with its own name.
    ml2_project_network_types_option: str = "tenant_network_types"
    # The MariaDB client programs of the release's mariadb-server image, as Kolla's own
    # extend_start.sh calls them (Kolla 21 moved from mysql/mysqladmin to these).
    mariadb_client: str = "mariadb"
    mariadb_admin: str = "mariadb-admin"
    # Neutron server split as kolla-ansible runs it from 2025.2 on: the API under uWSGI,
    # neutron-rpc-server and neutron-periodic-workers. False: one `neutron-server`.
    neutron_split: bool = True

    @property
    def package_source(self) -> str:
        return "debian" if self.extrepo is None else f"extrepo:{self.extrepo}"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("2025.1", "Epoxy", "2025.1-ubuntu-noble", None,
                kolla_version="20.6.0", kolla_ansible_version="20.6.0",
                mariadb_client="mysql", mariadb_admin="mysqladmin", neutron_split=False),
        Release("2025.2", "Flamingo", "2025.2-ubuntu-noble", "openstack_flamingo",
                kolla_version="21.3.0", kolla_ansible_version="21.3.0"),
        Release("2026.1", "Gazpacho", "2026.1-ubuntu-noble", "openstack_gazpacho",
                kolla_version="22.2.0", kolla_ansible_version="22.2.0",
                ml2_project_network_types_option="project_network_types"),
    )
}

DEFAULT_RELEASE = "2026.1"


def get(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(
            f"unknown release {name!r}; supported: {', '.join(RELEASES)}"
        ) from None
