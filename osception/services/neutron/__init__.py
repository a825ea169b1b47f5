"""neutron: the Network service. ML2 + Open vSwitch, VXLAN project networks, a flat
provider network (shared.PHYSNET), distributed (DVR) and highly available (L3 HA)
routers. On the controller, split the way Neutron runs under WSGI from 2025.2 on
(Release.neutron_split): the API (uWSGI), the RPC server the agents talk to and the
periodic workers; before, one eventlet neutron-server does all three. Its agents
(Open vSwitch, L3, DHCP, metadata) run on the compute and network nodes
(shared.NODE_FILES, NODE_PACKAGES, NODE_UNITS).

Depends on: mariadb (its database neutron), rabbitmq (its agents' RPC), keystone (its
user, which nova's [neutron] also logs in with), memcached, nova (port events:
Neutron's [nova] logs in as nova's user).

Lifecycle: 32, after keystone and placement, before nova (33).
"""

from ..record import Api, Service
from .devcloud import DEVCLOUD

SERVICE = Service(
    "neutron", 32, ("neutron-server",), image_uids={"neutron-server": 42435},
    # Under uWSGI only from 2025.2 (Release.neutron_split), when the module exists.
    apis=(Api("neutron", 9696, "network", wsgi_module="neutron.wsgi.api:application"),),
    databases=("neutron",),
    # Validates tokens; it is also the user Nova's [neutron] section logs in with (as in
    # kolla-ansible and DevStack): binding ports needs "service" (Neutron's
    # *_port:binding:profile admit only it) and reading their resource_request "admin"
    # (without it, QoS ports would be scheduled as if they asked for nothing).
    user_roles=("admin", "service"),
    configs=("neutron.conf", "ml2_conf.ini"),
    devcloud=DEVCLOUD,
    tempest_available="neutron",
)
