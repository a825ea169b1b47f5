"""keystone: the Identity service. Tokens (fernet), the projects, users and roles,
and the service catalog every client and service looks endpoints up in.

Depends on: mariadb (its database keystone), memcached (its token cache). Its
bootstrap Job makes the schema, the admin and its own catalog entry; its
service-accounts Job (templates/scripts/service_accounts.py, on kolla-toolbox)
registers every other service's user, roles and endpoints once it answers.

Lifecycle: 20, after the infrastructure (10 mariadb, 11 rabbitmq, 12 memcached),
before every other service: they all validate their users' tokens with it.
"""

from ..record import Api, Service
from .devcloud import DEVCLOUD

SERVICE = Service(
    "keystone", 20, ("keystone",),
    apis=(Api("keystone", 5000, "identity", "/v3",
              wsgi_module="keystone.wsgi.api:application", wsgi_script="keystone-wsgi-public"),),
    databases=("keystone",),
    configs=("keystone.conf",),
    devcloud=DEVCLOUD,
)
