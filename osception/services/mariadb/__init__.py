"""mariadb: the databases. One small MariaDB server per service that has databases
(services.DATABASES), each with its own volume and root password, so that one
service's database can be inspected, restored or upgraded on its own.

Depends on: nothing but the cluster (namespace, secrets: 00, 01).

Lifecycle: 10, first of the infrastructure; each service's own Jobs create its
databases and users in its server (create_databases in templates/k8s/_kolla.j2).
"""

from ..record import Service

SERVICE = Service("mariadb", 10, ("mariadb-server",), image_uids={"mariadb-server": 42434})
