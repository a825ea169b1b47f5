"""placement: what each compute offers (resource providers and their inventories)
and what is used of it; nova's scheduler asks it for candidates.

Depends on: mariadb (its database placement), keystone (its user; the service
accounts), memcached (the auth middleware's cache).

Lifecycle: 31, after keystone, before nova (33), whose computes report to it.
"""

from ..record import Api, Service
from .devcloud import DEVCLOUD

SERVICE = Service(
    "placement", 31, ("placement-api",),
    apis=(Api("placement", 8778, "placement",
              wsgi_module="placement.wsgi.api:application", wsgi_script="placement-api"),),
    databases=("placement",),
    # Validates tokens; it is also the user Nova's [placement] reports resources with.
    user_roles=("service",),
    configs=("placement.conf",),
    devcloud=DEVCLOUD,
)
