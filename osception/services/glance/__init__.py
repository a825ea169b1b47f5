"""glance: the Image service. Images stored as files on a volume of the controller;
web-download imports only from the image hosts the config names.

Depends on: mariadb (its database glance), keystone (its user validates tokens;
its endpoints are registered by keystone's service-accounts Job), memcached (the
auth middleware's cache).

Lifecycle: 30, the first service after keystone; its API waits for its db-sync Job
and for the service accounts.
"""

from ..record import Api, Service
from .devcloud import DEVCLOUD

SERVICE = Service(
    "glance", 30, ("glance-api",), image_uids={"glance-api": 42415},
    apis=(Api("glance", 9292, "image",
              wsgi_module="glance.wsgi.api:application", wsgi_script="glance-wsgi-api"),),
    databases=("glance",),
    # Only validates its users' tokens (Keystone: identity:validate_token).
    user_roles=("service",),
    configs=("glance-api.conf",),
    devcloud=DEVCLOUD,
    tempest_available="glance",
)
