"""nova: the Compute service. On the controller its control services: the API, the
metadata API (for the nodes' neutron metadata agents, on the controller's IP), the
conductor, the scheduler and the noVNC proxy. nova-compute (libvirt/QEMU) runs on
the compute nodes (shared.NODE_FILES, NODE_PACKAGES, NODE_UNITS). Its db-sync Job
runs the whole schema sequence in one pod, in order (api_db sync, map_cell0,
create_cell cell1, db sync), and every nova service waits for it: none starts
against a half-migrated database.

Depends on: mariadb (nova_api, nova, nova_cell0), rabbitmq, keystone, placement,
neutron, glance, memcached.

Lifecycle: 33, after every service it calls; before skyline (34).
"""

from ..record import Api, Service
from .devcloud import DEVCLOUD

SERVICE = Service(
    "nova", 33, ("nova-api", "nova-conductor", "nova-scheduler", "nova-novncproxy"),
    image_uids={"nova-conductor": 42436, "nova-scheduler": 42436, "nova-novncproxy": 42436},
    apis=(
        Api("nova", 8774, "compute", "/v2.1",
            wsgi_module="nova.wsgi.osapi_compute:application", wsgi_script="nova-api-wsgi"),
        # nova metadata API, for the neutron metadata agents
        Api("metadata", 8775,
            wsgi_module="nova.wsgi.metadata:application", wsgi_script="nova-metadata-wsgi"),
        Api("novnc", 6080),  # nova-novncproxy, opened from browsers
    ),
    databases=("nova_api", "nova", "nova_cell0"),
    # Sends service tokens ([service_user]); Neutron's [nova] section logs in with it to
    # post port events (os-server-external-events, admin only before 2025.2).
    user_roles=("admin", "service"),
    configs=("nova.conf",),
    devcloud=DEVCLOUD,
    tempest_available="nova",
)
