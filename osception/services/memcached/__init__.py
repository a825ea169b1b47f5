"""memcached: the token and API caches of Keystone and of every service's auth
middleware (keystonemiddleware's memcached_servers), on shared.MEMCACHED_PORT.

Depends on: nothing but the cluster (namespace: 00).

Lifecycle: 12, last of the infrastructure, before keystone (20).
"""

from ..record import Service

SERVICE = Service("memcached", 12, ("memcached",))
