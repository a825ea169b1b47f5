"""skyline: the web console. nginx (skyline-console) serves the pages and proxies
/api/openstack/skyline to the API server (skyline-apiserver, on APISERVER_PORT) and
/api/openstack/<region>/<service> to each API of the catalog. Its config is YAML,
not INI, and holds passwords: it lives in a Secret.

Depends on: mariadb (its database skyline), keystone (its system user), and every
API of the catalog it proxies.

Lifecycle: 34, last; its API server waits for its db-sync Job and the service
accounts, its console for its API server.
"""

from ..record import Api, Service

# skyline-apiserver's port, inside the pod (nginx proxies it; no Service of its own).
APISERVER_PORT = 9998

SERVICE = Service(
    "skyline", 34, ("skyline-apiserver", "skyline-console"), image_uids={"skyline-apiserver": 42491},
    apis=(Api("skyline", 9999),),  # skyline-console (nginx), which proxies the apiserver
    databases=("skyline",),
    # Skyline's system user reads across projects for the console's admin pages.
    user_roles=("admin",),
    configs=("skyline.yaml",),
)
