"""Where every service is reached from, for one place the config runs in.

The service config templates take every address from an `Endpoints`, never from
literals, so the very same templates render for the controller's pods, for the
compute/network nodes, and for the local devcloud.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import services


@dataclass(frozen=True)
class Endpoints:
    bind_host: str  # address the services listen on
    database: dict[str, str]  # service -> host:port of its MariaDB
    rabbitmq: str  # host:port
    memcached: str  # host:port
    internal: dict[str, str]  # API -> URL for service-to-service calls
    public: dict[str, str]  # API -> URL for users; the catalog's public interface
    catalog_internal: dict[str, str]  # API -> the catalog's internal interface (nodes use it)

    def db_url(self, user: str, password: str, database: str) -> str:
        host = self.database[user]
        return f"mysql+pymysql://{user}:{password}@{host}/{database}"

    def transport_url(self, password: str) -> str:
        return f"rabbit://openstack:{password}@{self.rabbitmq}//"


def _urls(host_of, scheme: str = "http") -> dict[str, str]:
    return {name: f"{scheme}://{host_of(api)}" for name, api in services.APIS.items()}


def controller(domain: str, controller_ip: str) -> Endpoints:
    """Inside the controller's k3s: Kubernetes Service names in namespace openstack."""
    return Endpoints(
        bind_host="0.0.0.0",
        database={svc: f"mariadb-{svc}:{services.MARIADB_PORT}" for svc in services.DATABASES},
        rabbitmq=f"rabbitmq:{services.RABBITMQ_PORT}",
        memcached=f"memcached:{services.MEMCACHED_PORT}",
        internal=_urls(lambda a: f"{a.name}:{a.port}"),
        public=_urls(lambda a: f"{a.name}.{domain}", "https"),
        catalog_internal=_urls(lambda a: f"{controller_ip}:{a.port}"),
    )


def nodes(domain: str, controller_ip: str) -> Endpoints:
    """On the compute and network nodes: everything on the controller's IP."""
    at_ip = _urls(lambda a: f"{controller_ip}:{a.port}")
    return Endpoints(
        bind_host="0.0.0.0",
        database={},  # nodes never talk to a database
        rabbitmq=f"{controller_ip}:{services.RABBITMQ_PORT}",
        memcached=f"{controller_ip}:{services.MEMCACHED_PORT}",
        internal=at_ip,
        public=_urls(lambda a: f"{a.name}.{domain}", "https"),
        catalog_internal=at_ip,
    )


def local(host: str = "127.0.0.1", database_port: int = services.MARIADB_PORT,
          rabbitmq_port: int = services.RABBITMQ_PORT,
          memcached_port: int = services.MEMCACHED_PORT,
          api_ports: dict[str, int] | None = None) -> Endpoints:
    """Everything on one machine (the devcloud): one MariaDB for all databases."""
    ports = {name: api.port for name, api in services.APIS.items()} | (api_ports or {})
    at_host = {name: f"http://{host}:{ports[name]}" for name in services.APIS}
    return Endpoints(
        bind_host=host,
        database={svc: f"{host}:{database_port}" for svc in services.DATABASES},
        rabbitmq=f"{host}:{rabbitmq_port}",
        memcached=f"{host}:{memcached_port}",
        internal=at_host,
        public=at_host,
        catalog_internal=at_host,
    )
