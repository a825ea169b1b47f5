"""Where every service is reached from, for one place the config runs in.

The service config templates take every address from an `Endpoints`, never from
literals, so the very same templates render for the controller's pods, for the
compute/network nodes, and for the local devcloud.

The catalog's internal interface is where the control plane's own services reach
each other: the Kubernetes Services, in plain HTTP inside the cluster. The control
plane's services look that interface up themselves (keystonemiddleware's
`[keystone_authtoken] interface`, nova's `valid_interfaces`, neutron's
`[nova] endpoint_type`, skyline's `interface_type`), so it must be one they can
reach without the environment's CA. The compute and network nodes are outside the
cluster: they use the public interface, the very names users use, over HTTPS,
resolved to the controller's address in their own /etc/hosts (never public DNS),
trusting the environment's CA; RabbitMQ they reach on its TLS listener.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import services

# The environment's CA on every compute and network node: update-ca-certificates adds
# it to the system's store (curl, apt). It verifies RabbitMQ's TLS listener always,
# and the APIs unless `tls:` in osception.yaml brings another certificate; every
# service option that takes a CA file names the one that applies, so by default only
# this CA vouches for the controller.
NODE_CA = "/usr/local/share/ca-certificates/osception.crt"
# `tls.ca` of the user's own certificate, when given.
NODE_INGRESS_CA = "/usr/local/share/ca-certificates/osception-ingress.crt"
# Debian's bundle of the system's CAs (update-ca-certificates): a user's certificate
# from a public CA without `tls.ca`.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Endpoints:
    bind_host: str  # address the services listen on
    database: dict[str, str]  # service -> host:port of its MariaDB
    rabbitmq: str  # host:port
    memcached: str  # host:port
    internal: dict[str, str]  # API -> URL for service-to-service calls
    public: dict[str, str]  # API -> URL for users; the catalog's public interface
    interface: str = "internal"  # the catalog interface this place's services look up
    cafile: str | None = None  # the CA file verifying the controller's HTTPS APIs
    rabbitmq_cafile: str | None = None  # the CA file verifying RabbitMQ's TLS listener
    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # /etc/hosts: address -> names
    controller: str = ""  # the controller's address: the nodes' nova metadata host

    def db_url(self, user: str, password: str, database: str) -> str:
        host = self.database[user]
        return f"mysql+pymysql://{user}:{password}@{host}/{database}"

    def transport_url(self, password: str) -> str:
        return f"rabbit://{services.RABBITMQ_USER}:{password}@{self.rabbitmq}//"


def _urls(host_of, scheme: str = "http") -> dict[str, str]:
    return {name: f"{scheme}://{host_of(api)}" for name, api in services.APIS.items()}


def public_urls(domain: str) -> dict[str, str]:
    """API -> https://<api>.<domain>: through Traefik, the catalog's public interface."""
    return _urls(lambda a: f"{a.name}.{domain}", "https")


def auth_url(domain: str) -> str:
    """Keystone's public URL, what users and clients authenticate against."""
    return public_urls(domain)["keystone"] + services.APIS["keystone"].path


def controller(domain: str, controller_ip: str) -> Endpoints:
    """Inside the controller's k3s: Kubernetes Service names in namespace openstack."""
    return Endpoints(
        bind_host="0.0.0.0",
        database={svc: f"mariadb-{svc}:{services.MARIADB_PORT}" for svc in services.DATABASES},
        rabbitmq=f"rabbitmq:{services.RABBITMQ_PORT}",
        memcached=f"memcached:{services.MEMCACHED_PORT}",
        internal=_urls(lambda a: f"{a.name}:{a.port}"),
        public=public_urls(domain),
        controller=controller_ip,
    )


def nodes(domain: str, controller_ip: str, api_cafile: str = NODE_CA) -> Endpoints:
    """On the compute and network nodes: the APIs through the controller's HTTPS
    ingress by their public names (verified with `api_cafile`), RabbitMQ on its TLS
    listener (the controller's certificate from the environment's CA, which names its
    address too), the nova metadata API on its own port."""
    public = public_urls(domain)
    return Endpoints(
        bind_host="0.0.0.0",
        database={},  # nodes never talk to a database
        rabbitmq=f"{controller_ip}:{services.RABBITMQ_TLS_PORT}",
        memcached="",  # nor to memcached (in-cluster only)
        internal=public,
        public=public,
        interface="public",
        cafile=api_cafile,
        rabbitmq_cafile=NODE_CA,
        hosts={controller_ip: tuple(f"{a.name}.{domain}" for a in services.APIS.values()
                                    if a.catalog_type)},
        controller=controller_ip,
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
        controller=host,
    )
