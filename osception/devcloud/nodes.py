"""The plan's compute and network nodes on this machine, joined to the devcloud.

Each node is a system container: `systemd-nspawn --boot` of a Debian 13 root (one
cached base, a per-node overlay on it) in a network namespace of its own, wired the
way the outer cloud wires a real environment's servers:

    namespace osc-outer (the outer cloud's networks)
      br-outer     10.231.0.0/24  the nodes' network; the controller's address
                                  10.231.0.10 is the relay (relay.py) to the devcloud
                                  (its APIs through Traefik: ingress.py)
      br-provider  10.231.1.0/24  the provider (public) flat network, 10.231.1.1 the
                                  outer side that pings floating IPs
    namespace osc-<node>          eth0 on br-outer, eth1 (the provider port, its MAC
                                  the plan's) on br-provider

Each node gets EXACTLY the user data `osception plan` renders for it, with this
machine's addresses in place of the outer cloud's (render.build with addresses()),
through cloud-init's NoCloud datasource; the network config (static, as the outer
cloud's metadata would give it) is the datasource's part. It then sets itself up the
production way: cloud-init, the setup script, the Ansible passes, services started by
systemd; its progress lines are on its console (the container's pseudo-TTY, in its log).

What differs from a cloud VM is the cloud, not the node: no DHCP on the outer
network (static network config), no route out (packages through the relay's apt
proxy, apt-cacher-ng on this machine, a config option real environments have too),
and no /dev/kvm (QEMU). Needs root.

Lifecycle: up = host packages, base root, networks, apt proxy and relay, per node
(namespace, links, overlay, seed, boot); down = the reverse, every namespace, link,
mount and process it made.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from .. import day2, endpoints, progress, releases, render, services, topology
from ..config import LOCAL_IMAGE_HOSTS, Config
from ..secrets import Secrets
from ..state import write_private
from . import ingress
from .layout import HOST, PORTS, Layout
from .processes import DevcloudError, Processes, Spec, tail
from .venv import cache_home
from ..render.bake import bake_user_data
from ..render.layout import bake_id
from ..render.plan import domain_of

# -- defaults ------------------------------------------------------------------
SEED = "var/lib/cloud/seed/nocloud"  # cloud-init's NoCloud seed in a node's root
OUTER_NETNS = "osc-outer"
OUTER_BRIDGE = "br-outer"
PROVIDER_BRIDGE = "br-provider"
OUTER_NET = ipaddress.ip_network("10.231.0.0/24")
PROVIDER_NET = ipaddress.ip_network("10.231.1.0/24")
PROVIDER_GATEWAY = "10.231.1.1"  # the outer side of the provider network
# The outer network is where the cloud's users are (`osception devcloud tempest` runs
# there): the APIs by the names the nodes use, in the nodes' way (their /etc/hosts).
# `ip netns exec` mounts /etc/netns/<namespace>/hosts on /etc/hosts for what it runs
# (ip-netns(8)).
OUTER_HOSTS = Path("/etc/netns") / OUTER_NETNS / "hosts"
APT_PROXY_PORT = 3142  # apt-cacher-ng's own default
# node_source pypi: the nodes' pip through a caching PyPI proxy on this machine (proxpi,
# from PyPI, in its own venv in the machine cache), at the controller's address.
PIP_PROXY_PORT = 3141  # devpi's, the usual one of a site's PyPI mirror
PIP_PROXY_LOCAL = 23141
PIP_PROXY = "proxpi==1.3.1"
# Host packages: the container manager, the base's builder, the packages' cache.
HOST_PACKAGES = {
    "systemd-container": "/usr/bin/systemd-nspawn",
    "debootstrap": "/usr/sbin/debootstrap",
    "apt-cacher-ng": "/usr/sbin/apt-cacher-ng",
    "iputils-ping": "/usr/bin/ping",  # smoke's floating-IP ping, from the outer side
}
# smoke's ping from the outer cloud's side: the provider network's outer end.
PING = ("ip", "netns", "exec", OUTER_NETNS, "ping")
# What a Debian 13 cloud image has that a minimal root lacks: systemd, cloud-init and
# what it runs, SSH, the tools the setup script uses.
BASE_SUITE = releases.get(releases.DEFAULT_RELEASE).node_os.codename  # the default release's
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "cloud-init", "python3", "python3-apt",
                 "adduser", "iproute2", "ca-certificates", "curl", "openssh-server",
                 "ifupdown", "netbase", "sudo", "gpg", "kmod", "udev")
MIRROR = os.environ.get("OSCEPTION_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The builder node of the baked image (bake): not a plan node, its own address.
BAKE_DIR = "bake"
BAKE_PROCESS = "node-bake"
BAKE_NETNS = "osc-bake"
BAKE_ADDRESS = topology.Address(str(OUTER_NET.network_address + 5), "fa:16:3e:0b:a4:e0", None)
# Boot to "done": packages (hundreds, the first time through an empty apt cache), config,
# the controller, services.
NODES_TIMEOUT = 1800
# A reboot: the node's own shutdown (libvirt-guests gives each guest up to 300 s to shut
# down, Debian's default), then its boot until systemd's boot transaction is done, then
# its agents and compute service reporting to the controller again.
SHUTDOWN_TIMEOUT = 420
BOOT_TIMEOUT = 300
BACK_TIMEOUT = 300


def with_provider(cfg: Config) -> Config:
    """The config with this machine's provider network (br-provider) as the public one."""
    hosts = list(PROVIDER_NET.hosts())
    public = {"mode": "provider", "network": PROVIDER_BRIDGE, "cidr": str(PROVIDER_NET),
              "gateway": PROVIDER_GATEWAY, "pool_start": str(hosts[99]), "pool_end": str(hosts[199])}
    return Config.model_validate(cfg.model_dump() | {"public_network": public}, context=LOCAL_IMAGE_HOSTS)


def addresses(cfg: Config) -> dict[str, topology.Address]:
    """The plan's addresses on this machine's outer network: the placeholder hosts
    (k8s-0 .10, compute-N .20+N, network-N .40+N) and MACs, on OUTER_NET; the data
    plane's provider ports on br-provider."""
    prefix = str(OUTER_NET.network_address).rsplit(".", 1)[0]
    return {name: topology.Address(f"{prefix}.{a.ip.rsplit('.', 1)[1]}", a.mac, a.public_mac)
            for name, a in topology.placeholder_addresses(with_provider(cfg)).items()}


def controller_ip(cfg: Config) -> str:
    return addresses(cfg)["k8s-0"].ip


def apt_proxy(cfg: Config) -> str:
    return f"http://{controller_ip(cfg)}:{APT_PROXY_PORT}"


def pip_index_url(cfg: Config) -> str:
    return f"http://{controller_ip(cfg)}:{PIP_PROXY_PORT}/index/"


def packages_here(release: releases.Release) -> bool:
    """Whether the local nodes can fetch the release's node packages: they reach the
    Debian archive only (through the apt proxy; no route out). The backports come from
    elsewhere, found by extrepo in its online data (over HTTPS, not through apt): those
    of every release whose package source is extrepo cannot be fetched here."""
    return release.extrepo is None


def source_note(cfg: Config) -> str | None:
    """The one line the local nodes' `up` says when they take node_source pypi instead
    of the release's packages (node_config), else None."""
    release = releases.get(cfg.release)
    if cfg.node_source != "packages" or packages_here(release):
        return None
    return (f"release {release.name}'s node packages ({release.package_source}) cannot be fetched here "
            f"(the local nodes reach the Debian archive only): the local nodes use node_source: pypi")


def node_config(cfg: Config) -> Config:
    """The user's config as the local nodes need it: the release's packages where they
    can be fetched here, else node_source pypi (source_note says so); packages through
    the apt proxy (and with node_source pypi, pip through the PyPI proxy), the
    provider network this machine gives (br-provider) as the public network, Open
    vSwitch's userspace datapath (this kernel has no openvswitch module), and libvirt
    without cgroups (a container's cgroup controllers are read-only)."""
    source = "pypi" if source_note(cfg) else cfg.node_source
    pip = {"pip_index_url": pip_index_url(cfg)} if source == "pypi" else {}
    return with_provider(cfg).model_copy(update={"apt_proxy": apt_proxy(cfg), "ovs_datapath": "netdev",
                                                 "libvirt_cgroups": False, "node_source": source, **pip})


def plan(cfg: Config, secrets: Secrets) -> render.Plan:
    """What `osception plan` renders for this config, at this machine's addresses."""
    return render.build(node_config(cfg), secrets, addresses(cfg))


# A node's record of what it was built from (built_from): a later `up` with another
# release, node source or base rebuilds it (LocalNodes.rebuild).
BUILT_FROM = "built-from.json"


def built_from(cfg: Config, base: Path | str) -> dict:
    """What a local node of this config is built from: the release and node source its
    packages are (node_config's), and the root it stacks on (a base, a baked layer)."""
    local = node_config(cfg)
    return {"release": local.release, "node_source": local.node_source, "base": str(base)}


def forget_host(secrets: Secrets, host: str) -> None:
    """The devcloud's records of a compute host that is no more: its nova-compute service
    (Nova deletes its compute node and resource provider with it) and its Neutron
    agents. A rebuilt node registers again under the same name."""
    from . import cloud  # noqa: PLC0415 (openstacksdk: only when used)

    try:
        conn = cloud.connect(secrets)
        for svc in list(conn.compute.services(binary="nova-compute", host=host)):
            conn.compute.delete_service(svc, ignore_missing=True)
        for agent in list(conn.network.agents(host=host)):
            conn.network.delete_agent(agent, ignore_missing=True)
    except sdk_exc.SDKException:
        pass  # no devcloud answering: nothing registered to forget


def hosted_servers(secrets: Secrets, host: str) -> list[str]:
    """The names of the servers the devcloud's Nova has on a compute host ([] when no
    devcloud answers: nothing can be hosted)."""
    from . import cloud  # noqa: PLC0415 (openstacksdk: only when used)

    try:
        conn = cloud.connect(secrets)
        return sorted(s.name for s in conn.compute.servers(all_projects=True, compute_host=host))
    except sdk_exc.SDKException:
        return []


def _utc(stamp: str | None) -> datetime:
    """An API's time stamp (UTC, with or without the T, a zone or microseconds), naive."""
    return datetime.fromisoformat(stamp.replace(" ", "T")).replace(tzinfo=None) if stamp else datetime.min


def not_back(conn, hosts: dict[str, datetime]) -> list[str]:
    """What of these hosts has not reported to the controller since its time (UTC): an
    agent not alive or whose last heartbeat is older, a nova-compute service not up or
    not updated since; a host with no agent at all counts as not back."""
    late = []
    for host, since in hosts.items():
        after = since.replace(tzinfo=None)
        agents = list(conn.network.agents(host=host))
        if not agents:
            late.append(f"{host}: no agent")
        late += [f"{host}: {a.binary}" for a in agents
                 if not a.is_alive or _utc(a.last_heartbeat_at) <= after]
        late += [f"{host}: {s.binary}" for s in conn.compute.services(host=host, binary="nova-compute")
                 if s.state != "up" or _utc(s.updated_at) <= after]
    return late


def network_config(address: topology.Address) -> str:
    """The datasource's network config (what the outer cloud's metadata gives a server):
    the node's address, no gateway (nothing is reachable but the controller)."""
    # By name: cloud-init matches MACs of physical NICs only, and a veth is not one.
    return yaml.safe_dump({"version": 2, "ethernets": {"eth0": {
        "addresses": [f"{address.ip}/{OUTER_NET.prefixlen}"]}}}, sort_keys=False)


def _container_init(nspawn_pid: int) -> int:
    """The node's PID 1 (its systemd): the first process under systemd-nspawn that is in
    another PID namespace."""
    own = os.readlink(f"/proc/{nspawn_pid}/ns/pid")
    todo = [nspawn_pid]
    while todo:
        pid = todo.pop(0)
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != own:
                return pid
            todo += [int(c) for t in os.listdir(f"/proc/{pid}/task")
                     for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
        except OSError:
            continue  # gone meanwhile
    raise DevcloudError(f"no container under systemd-nspawn (pid {nspawn_pid})")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode:
        raise DevcloudError(f"`{' '.join(argv)}` failed: {(r.stderr or r.stdout).strip()[-400:]}")
    return r


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return _run("ip", *(["-n", netns] if netns else []), *args, check=check)


def _netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def _link_exists(name: str, netns: str) -> bool:
    return _ip("link", "show", name, netns=netns, check=False).returncode == 0


def _plug(netns: str, links: list[tuple[str, str, str, str | None]]) -> None:
    """A namespace of its own, wired as the outer cloud wires a server: for each link
    (inside, outside, bridge, mac) a veth pair, `inside` in the namespace with the
    port's MAC, `outside` on that bridge of osc-outer. A link already there stays (a
    running node keeps its wiring); one without a MAC (no such port) is not made."""
    if not _netns_exists(netns):
        _ip("netns", "add", netns)
    _ip("link", "set", "lo", "up", netns=netns)
    for inside, outside, bridge, mac in links:
        if mac is None or _link_exists(inside, netns):
            continue
        _ip("link", "del", outside, netns=OUTER_NETNS, check=False)  # a half-made pair's
        _ip("link", "add", outside, "netns", OUTER_NETNS, "type", "veth", "peer", "name", inside,
            "netns", netns, "address", mac)
        _ip("link", "set", outside, "master", bridge, "up", netns=OUTER_NETNS)


@dataclass(frozen=True)
class LocalNode:
    node: topology.Node
    address: topology.Address
    dir: Path  # <devcloud>/nodes/<name>: upper/ work/ root/

    @property
    def netns(self) -> str:
        return f"osc-{self.node.name}"

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def process(self) -> str:
        return f"node-{self.node.name}"


class LocalNodes:
    def __init__(self, layout: Layout, say=print):
        self.layout = layout
        self.say = say
        self.procs = Processes(layout)
        self.dir = layout.root / "nodes"

    # -- host packages and the base root ---------------------------------------
    def ensure_host(self) -> None:
        if os.geteuid() != 0:
            raise DevcloudError("local nodes need root (network namespaces, systemd-nspawn, mounts)")
        missing = [p for p, path in HOST_PACKAGES.items() if not Path(path).exists()]
        if missing:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update", "-qq"],
                         ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
                if subprocess.run(argv, capture_output=True, env=env).returncode:
                    raise DevcloudError(f"`{' '.join(argv)}` failed; install {' '.join(missing)}")
            # apt-cacher-ng's package starts the machine's own instance: not ours to run.
            _run("systemctl", "disable", "--now", "apt-cacher-ng", check=False)

    def base(self, suite: str = BASE_SUITE) -> Path:
        """The Debian root of that suite (the release's node OS) every node starts from,
        built once per machine."""
        base = cache_home() / "nodes" / f"base-{suite}"
        if (base / ".osception-complete").exists():
            return base
        build = base.with_name(base.name + ".build")
        shutil.rmtree(build, ignore_errors=True)
        self.say(f"building the nodes' Debian {suite} base in {base} (debootstrap, once)")
        build.parent.mkdir(parents=True, exist_ok=True)
        # debootstrap's own resolver misses virtual packages (cloud-init's cryptography
        # needs python3-cffi-backend-api-*): a minimal root first, then apt inside it.
        _run("debootstrap", "--variant=minbase", "--include=python3,python3-apt,adduser",
             suite, str(build), MIRROR)
        policy = build / "usr/sbin/policy-rc.d"  # no service starts while building
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        _run("mount", "-t", "proc", "proc", str(build / "proc"))
        try:
            env = ["env", "DEBIAN_FRONTEND=noninteractive"]
            _run("chroot", str(build), *env, "apt-get", "update", "-qq")
            _run("chroot", str(build), *env, "apt-get", "install", "-y", "-qq",
                 "--no-install-recommends", *BASE_PACKAGES)
            _run("chroot", str(build), "apt-get", "clean")
        finally:
            _run("umount", "-l", str(build / "proc"), check=False)
        policy.unlink()
        # As a cloud image: cloud-init runs on first boot; no machine-id baked in.
        (build / "etc/machine-id").write_text("")
        shutil.rmtree(base, ignore_errors=True)
        build.rename(base)
        (base / ".osception-complete").write_text(suite + "\n")
        return base

    # -- networks ----------------------------------------------------------------
    def ensure_outer(self, cfg: Config) -> None:
        if not _netns_exists(OUTER_NETNS):
            _ip("netns", "add", OUTER_NETNS)
        _ip("link", "set", "lo", "up", netns=OUTER_NETNS)
        for bridge, cidr in ((OUTER_BRIDGE, f"{controller_ip(cfg)}/{OUTER_NET.prefixlen}"),
                             (PROVIDER_BRIDGE, f"{PROVIDER_GATEWAY}/{PROVIDER_NET.prefixlen}")):
            if not _link_exists(bridge, OUTER_NETNS):
                _ip("link", "add", bridge, "type", "bridge", netns=OUTER_NETNS)
                _ip("addr", "add", cidr, "dev", bridge, netns=OUTER_NETNS)
            _ip("link", "set", bridge, "up", netns=OUTER_NETNS)
        ip = controller_ip(cfg)
        names = endpoints.nodes(domain_of(cfg, ip), ip).hosts
        OUTER_HOSTS.parent.mkdir(parents=True, exist_ok=True)
        OUTER_HOSTS.write_text("127.0.0.1 localhost\n" + "".join(
            f"{address} {' '.join(hosts)}\n" for address, hosts in names.items()))

    def wire(self, n: LocalNode) -> None:
        """The node's namespace, eth0 on br-outer and eth1 (provider) on br-provider."""
        index = n.node.name.rsplit("-", 1)[1]
        short = {"compute": "c", "network": "n"}[n.node.role] + index
        _plug(n.netns, [("eth0", f"o-{short}", OUTER_BRIDGE, n.address.mac),
                        ("eth1", f"p-{short}", PROVIDER_BRIDGE, n.address.public_mac)])

    # -- the controller's side ---------------------------------------------------
    def services(self, cfg: Config, p: render.Plan) -> list[Spec]:
        """apt-cacher-ng (its cache in the machine's cache), with node_source pypi the
        PyPI proxy, and the relay."""
        cache = cache_home() / "apt-cacher-ng"
        cache.mkdir(parents=True, exist_ok=True)
        logs = self.layout.root / "logs" / "apt-cacher-ng"
        logs.mkdir(parents=True, exist_ok=True)
        # Its own (empty) config folder: none of the package's mirror remapping, it
        # fetches what it is asked for, as this machine resolves it.
        conf = self.dir / "apt-cacher-ng"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "acng.conf").touch()
        acng = Spec("apt-cacher-ng", [HOST_PACKAGES["apt-cacher-ng"], "-c", str(conf),
                                      "ForeGround=1", f"BindAddress={HOST}", f"Port={APT_PROXY_PORT}",
                                      f"CacheDir={cache}", f"LogDir={logs}",
                                      f"PidFile={self.layout.root / 'run' / 'apt-cacher-ng.pid'}"],
                    port=APT_PROXY_PORT)
        relay_dir = self.dir / "relay"
        relay_dir.mkdir(parents=True, exist_ok=True)
        ip = p.controller_ip
        routes = [
            # servicelb's part: each port of Traefik's Service, to its entry point
            # (ingress.py); TLS, names and redirects are Traefik's.
            *({"listen": f"{ip}:{exposed}", "to": f"{HOST}:{local}"}
              for exposed, local in ingress.exposed_ports(ingress.chart_values(p.files)).items()),
            # RabbitMQ's own TLS listener (the controller's certificate)
            {"listen": f"{ip}:{services.RABBITMQ_TLS_PORT}", "to": f"{HOST}:{PORTS['rabbitmq-tls']}"},
            {"listen": f"{ip}:{APT_PROXY_PORT}", "to": f"{HOST}:{APT_PROXY_PORT}"},
            {"listen": f"{ip}:{services.APIS['metadata'].port}", "to": f"{HOST}:{PORTS['metadata']}"},
            {"listen": f"{ip}:{PIP_PROXY_PORT}", "to": f"{HOST}:{PIP_PROXY_LOCAL}"},
        ]
        spec_file = relay_dir / "routes.json"
        write_private(spec_file, json.dumps({"netns": OUTER_NETNS, "routes": routes}, indent=1))
        relay = Spec("relay", [sys.executable, "-m", "osception.devcloud.relay", str(spec_file)],
                     config=[spec_file],
                     ready=lambda: "relay ready" in self.layout.log("relay").read_text(errors="replace"))
        if p.cfg.node_source != "pypi":  # node_config's: pypi where packages cannot be fetched
            return [acng, relay]
        return [acng, self.pip_proxy(), relay]

    def pip_proxy(self) -> Spec:
        """proxpi, a caching PyPI proxy, on 127.0.0.1 (the relay's route to it)."""
        home = cache_home() / "proxpi"
        venv = home / "venv"
        if not (venv / "bin" / "flask").exists() or not (home / PIP_PROXY).exists():
            self.say(f"installing {PIP_PROXY} (the nodes' PyPI proxy) in {venv}")
            _run(sys.executable, "-m", "venv", str(venv))
            _run(str(venv / "bin" / "pip"), "install", "-q", PIP_PROXY)
            (home / PIP_PROXY).touch()
        # The nodes have no route out: proxpi must serve every file itself, never redirect
        # to the upstream (its default after 0.9 s of download).
        env = {"PROXPI_CACHE_DIR": str(home / "files"), "PROXPI_CACHE_SIZE": str(20 * 2**30),
               "PROXPI_DOWNLOAD_TIMEOUT": "900"}
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")  # this machine's trust, as its pip's
        if bundle.exists():
            env["REQUESTS_CA_BUNDLE"] = str(bundle)
        return Spec("pip-proxy", [str(venv / "bin" / "flask"), "--app", "proxpi.server", "run",
                                  "--host", HOST, "--port", str(PIP_PROXY_LOCAL), "--with-threads"],
                    env=env, port=PIP_PROXY_LOCAL)

    # -- the baked layer: `osception bake`'s node image, on this machine ------------
    def baked_layer(self, cfg: Config) -> Path:
        """Where the node image baked for this config lives: one per stamp and bake user
        data (a changed bake script makes a new one here; on a cloud, a new osception
        version does)."""
        stamp = bake_id("node", node_config(cfg))
        digest = hashlib.sha256(bake_user_data(node_config(cfg), "node").encode()).hexdigest()[:12]
        return cache_home() / "nodes" / f"baked-{stamp.replace(' ', '-')}-{digest}"

    def bake(self, cfg: Config) -> Path:
        """Make the node image as `osception bake` makes it on a cloud, here: a builder
        node booted from the base with the bake user data (render.bake.bake_user_data of the
        nodes' config: the apt proxy, the release, the node source), which installs,
        stamps, resets cloud-init and powers off. Its overlay's upper layer is the
        image: every node then stacks on it (lowerdir=layer:base). Once per stamp."""
        layer = self.baked_layer(cfg)
        if (layer / ".osception-complete").exists():
            return layer
        base = self.base(releases.get(cfg.release).node_os.codename)
        work = self.dir / BAKE_DIR
        self._forget_builder(work)
        for d in ("upper", "work", "root"):
            (work / d).mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={work / 'upper'},workdir={work / 'work'}", str(work / "root"))
        seed = work / "root" / SEED
        seed.mkdir(parents=True, exist_ok=True)
        write_private(seed / "user-data", bake_user_data(node_config(cfg), "node"))
        (seed / "meta-data").write_text(yaml.safe_dump({"instance-id": "osception-bake-node",
                                                        "local-hostname": "bake-node"}))
        (seed / "network-config").write_text(network_config(BAKE_ADDRESS))
        _plug(BAKE_NETNS, [("eth0", "o-bake", OUTER_BRIDGE, BAKE_ADDRESS.mac)])  # _forget_builder: a new one
        self.layout.log(BAKE_PROCESS).unlink(missing_ok=True)
        self.procs.start(Spec(BAKE_PROCESS, self._nspawn(work / "root", "osc-bake", BAKE_NETNS),
                              env={"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}, ready=lambda: True))
        self.say(f"baking the node image in a builder node (console: {self.layout.log(BAKE_PROCESS)})")
        started = time.monotonic()
        for _ in sdk_utils.iterate_timeout(NODES_TIMEOUT, "the builder node still running", wait=2):
            if not self.procs.running(BAKE_PROCESS):  # powered off: its script's last act
                break
            prog = progress.parse(self.layout.log(BAKE_PROCESS).read_text(errors="replace")).get("bake-node")
            if prog is not None and prog.state == "failed":
                self.procs.stop([BAKE_PROCESS])
                raise DevcloudError(f"baking the node image failed: {prog.reason}; its console: "
                                    f"{self.layout.log(BAKE_PROCESS)}")
        prog = progress.parse(self.layout.log(BAKE_PROCESS).read_text(errors="replace")).get("bake-node")
        if prog is None or prog.state != "done":
            raise DevcloudError(f"the builder node powered off without `done`; end of its console:\n"
                                f"{tail(self.layout.log(BAKE_PROCESS))}")
        _run("umount", str(work / "root"))
        build = layer.with_name(layer.name + ".build")
        shutil.rmtree(build, ignore_errors=True)
        (work / "upper").rename(build)
        (build / ".osception-complete").write_text(bake_id("node", node_config(cfg)) + "\n")
        build.rename(layer)
        self._forget_builder(work)
        self.say(f"node image baked in {time.monotonic() - started:.0f} s: {layer}")
        return layer

    def _forget_builder(self, work: Path) -> None:
        self.procs.stop([BAKE_PROCESS])
        if os.path.ismount(work / "root"):
            _run("umount", "--lazy", str(work / "root"), check=False)
        if _netns_exists(BAKE_NETNS):
            _ip("netns", "del", BAKE_NETNS, check=False)
        _ip("link", "del", "o-bake", netns=OUTER_NETNS, check=False)
        shutil.rmtree(work, ignore_errors=True)

    # -- the nodes ---------------------------------------------------------------
    def local_nodes(self, cfg: Config) -> list[LocalNode]:
        addr = addresses(cfg)
        return [LocalNode(n, addr[n.name], self.dir / n.name)
                for n in topology.nodes(cfg) if n.data_plane]

    def prepare(self, n: LocalNode, base: Path | str, p: render.Plan) -> None:
        """The node's overlay root on the base, and its NoCloud seed. A new node (no
        disk yet) starts a new console: an earlier node's lines are not its own."""
        if not (n.dir / "upper").exists():
            self.layout.log(n.process).unlink(missing_ok=True)
        for d in ("upper", "work", "root"):
            (n.dir / d).mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(n.root):
            _run("mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={base},upperdir={n.dir / 'upper'},workdir={n.dir / 'work'}", str(n.root))
        self.write_seed(n, p)

    def write_seed(self, n: LocalNode, p: render.Plan) -> None:
        """What cloud-init reads at first boot; on a running node, what it was brought to."""
        seed = n.root / SEED
        seed.mkdir(parents=True, exist_ok=True)
        write_private(seed / "user-data", p.files[f"{n.node.name}/user-data"])
        (seed / "meta-data").write_text(yaml.safe_dump(
            {"instance-id": f"osception-{n.node.name}", "local-hostname": n.node.name}))
        (seed / "network-config").write_text(network_config(n.address))

    def spec(self, n: LocalNode) -> Spec:
        # /proc/sys/net writable, as in a VM (IP forwarding for routers and floating IPs);
        # the rest of /proc/sys stays read-only.
        return Spec(n.process, self._nspawn(n.root, f"osc-{n.node.name}", n.netns),
                    env={"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}, ready=lambda: True)

    @staticmethod
    def _nspawn(root: Path, machine: str, netns: str) -> list[str]:
        return ["systemd-nspawn", "--boot", f"--directory={root}", f"--machine={machine}",
                f"--network-namespace-path=/run/netns/{netns}", "--register=no",
                "--keep-unit", "--capability=all",
                # its /dev/console a pseudo-TTY whose output is this process's (the log):
                # the node's serial console, progress lines and all
                "--console=read-only",
                # libvirt's QEMU needs tun; nothing else of the host's devices
                "--bind=/dev/net/tun"]

    def up(self, cfg: Config, secrets: Secrets, bake: bool = False) -> dict[str, LocalNode]:
        """`bake`: make the baked node image first if missing. The nodes boot on it when
        it exists and base_images is baked (as `up` boots a cloud's baked image)."""
        self.ensure_host()
        p = plan(cfg, secrets)
        base = self.base(p.release.node_os.codename)
        note = source_note(cfg)
        if note:
            self.say(note)
        self.ensure_outer(cfg)
        for spec in self.services(cfg, p):
            if not self.procs.current(spec):
                self.procs.stop([spec.name])
                self.procs.start(spec)
            self.procs.wait_ready([spec], 30)
        layer = self.bake(cfg) if bake else self.baked_layer(cfg)
        if cfg.base_images == "baked" and (layer / ".osception-complete").exists():
            self.say(f"the nodes boot the baked node image {layer.name}")
            base = f"{layer}:{base}"  # overlayfs: the upper layer of the builder over the base
        out, changed = {}, []
        wanted = built_from(cfg, base)
        stale = [n for n in self.local_nodes(cfg) if n.dir.exists() and self.built_record(n) != wanted]
        # A rebuild loses the node's disk: refused, before any node goes, while a user's
        # server is on it (and Nova would keep its compute service, refusing the new one).
        for n in stale:
            if n.node.role == "compute" and (hosted := hosted_servers(secrets, n.node.name)):
                raise DevcloudError(
                    f"{n.node.name} must be rebuilt from the base ({self.rebuild_reason(n, wanted)}), "
                    f"which would lose the {len(hosted)} server(s) on it ({', '.join(hosted[:3])}"
                    f"{', ...' if len(hosted) > 3 else ''}): delete or migrate them first, or start "
                    "over with `osception devcloud down --purge`")
        for n in self.local_nodes(cfg):
            self.wire(n)
            spec = self.spec(n)
            seed = n.root / SEED / "user-data"
            built = n.dir / BUILT_FROM
            if n in stale:
                self.rebuild(n, wanted, secrets)
            if self.procs.running(spec.name) and os.path.ismount(n.root) and seed.exists():
                if seed.read_text() != p.files[f"{n.node.name}/user-data"]:
                    changed.append(n)  # running, set up from older user data: day 2
            else:
                self.prepare(n, base, p)
                built.write_text(json.dumps(wanted) + "\n")
                self.procs.start(spec)
                self.say(f"{n.node.name}: booting ({n.address.ip}, console: {self.layout.log(n.process)})")
            out[n.node.name] = n
        if changed:  # in parallel, as `osception apply` does
            with ThreadPoolExecutor(max_workers=len(changed)) as pool:
                list(pool.map(lambda n: self.apply(n, p), changed))
        return out

    def reboot(self, n: LocalNode) -> datetime:
        """Reboot the node as `machinectl reboot` does, the way its own `reboot` would:
        SIGINT to its systemd (ctrl-alt-del: reboot.target, every unit stopped in order;
        libvirt-guests shuts the guests down), and systemd-nspawn exits once it is done.
        Then its network namespace is made anew, as a VM's reboot starts a new kernel:
        no interface, route, rule, router namespace or sysctl of the last boot survives,
        the outer cloud's ports come back with their MACs. The same root boots again: same
        instance id, so cloud-init's per-instance modules (the setup) do not run again;
        the services start from their enabled units. Returns when its boot is done: the
        moment (UTC) it started booting, after which its agents' reports are this boot's."""
        rec = self.procs.record(n.process)
        if rec is None or not self.procs.running(n.process):
            raise DevcloudError(f"{n.node.name} is not running: `osception devcloud up` boots it")
        started = time.monotonic()
        os.kill(_container_init(rec["pid"]), signal.SIGINT)
        try:
            for _ in sdk_utils.iterate_timeout(SHUTDOWN_TIMEOUT, "", wait=1):
                if not self.procs.running(n.process):
                    break
        except sdk_exc.ResourceTimeout:
            self.say(f"{n.node.name}: not shut down after {SHUTDOWN_TIMEOUT} s: powered off")
        self.procs.stop([n.process])  # its record; what outlived the timeout, SIGTERM then SIGKILL
        down = time.monotonic() - started
        _ip("netns", "del", n.netns, check=False)
        self.wire(n)
        booting = datetime.now(timezone.utc)
        self.procs.start(self.spec(n))
        self.wait_booted(n)
        self.say(f"{n.node.name}: shut down in {down:.0f} s, booted in {time.monotonic() - started - down:.0f} s")
        return booting

    def wait_booted(self, n: LocalNode) -> None:
        """Until the node's systemd has finished booting (`systemctl is-system-running
        --wait`); a failed unit is named, not an error: the cloud's view (not_back) decides."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            rec = self.procs.record(n.process)
            if rec is None or not self.procs.running(n.process):
                raise DevcloudError(f"{n.node.name}: its container stopped while booting; end of its "
                                    f"console:\n{tail(self.layout.log(n.process))}")
            try:
                enter = ["nsenter", f"--target={_container_init(rec['pid'])}", "--all"]
                r = subprocess.run([*enter, "systemctl", "is-system-running", "--wait"], capture_output=True,
                                   text=True, timeout=max(1.0, deadline - time.monotonic()))
            except DevcloudError:
                r = None  # its systemd not started yet
            except subprocess.TimeoutExpired:
                raise DevcloudError(f"{n.node.name}: not booted within {BOOT_TIMEOUT} s") from None
            state = r.stdout.strip() if r else ""
            if state == "degraded":
                failed = subprocess.run([*enter, "systemctl", "list-units", "--failed", "--plain",
                                         "--no-legend"], capture_output=True, text=True).stdout
                self.say(f"{n.node.name}: booted with failed units: "
                         + ", ".join(line.split()[0] for line in failed.splitlines() if line.strip()))
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise DevcloudError(f"{n.node.name}: not booted within {BOOT_TIMEOUT} s ({state or 'no systemd'})")
            time.sleep(1)

    def wait_back(self, secrets: Secrets, hosts: dict[str, datetime]) -> None:
        """Until every agent and compute service of these hosts reports again, each since
        its time (not_back)."""
        from . import cloud  # noqa: PLC0415 (openstacksdk: only when used)

        conn = cloud.connect(secrets)
        late = list(hosts)
        try:
            for _ in sdk_utils.iterate_timeout(BACK_TIMEOUT, "", wait=2):
                try:
                    late = not_back(conn, hosts)
                except sdk_exc.SDKException as e:  # the APIs still starting
                    late = [str(e).splitlines()[0]]
                if not late:
                    return
        except sdk_exc.ResourceTimeout:
            raise DevcloudError(f"not reporting again within {BACK_TIMEOUT} s: {', '.join(late)}") from None

    @staticmethod
    def built_record(n: LocalNode) -> dict | None:
        """What the node was built from (built_from's), None when it has no record."""
        built = n.dir / BUILT_FROM
        return json.loads(built.read_text()) if built.exists() else None

    @classmethod
    def rebuild_reason(cls, n: LocalNode, wanted: dict) -> str:
        was = cls.built_record(n)
        said = ("built by an older osception (no record)" if was is None else
                "built from " + ", ".join(f"{k} {was.get(k)}" for k in wanted if was.get(k) != wanted[k]))
        return said + "; the config asks " + ", ".join(
            f"{k} {v}" for k, v in wanted.items() if was is None or was.get(k) != v)

    def rebuild(self, n: LocalNode, wanted: dict, secrets: Secrets) -> None:
        """A node built from another release, node source or base than the config's: its
        packages are not this config's, and the day-2 pass (config and services) does
        not install any. So it goes, disk and all, with what the cloud holds of it (its
        compute service, its agents), and boots again from the base."""
        self.say(f"{n.node.name}: {self.rebuild_reason(n, wanted)}: rebuilt from the base "
                 "(the day-2 pass installs no packages)")
        self.procs.stop([n.process])
        if os.path.ismount(n.root):
            _run("umount", "--lazy", str(n.root), check=False)
        shutil.rmtree(n.dir, ignore_errors=True)
        self.layout.log(n.process).unlink(missing_ok=True)
        forget_host(secrets, n.node.name)
        # Its network namespace anew too, as a new VM's: the old one keeps what the last
        # root made there (the userspace datapath's br-phy holding the node's address,
        # its eth0 without one), and the new root could reach nothing.
        _ip("netns", "del", n.netns, check=False)
        self.wire(n)

    def apply(self, n: LocalNode, p: render.Plan) -> None:
        """A running node to its new user data the way `osception apply` does it (day2.py:
        its files in, `setup apply`), entered with nsenter instead of SSH."""
        self.say(f"{n.node.name}: its user data changed: day-2 pass (as `osception apply`)")
        pid = self.procs.record(n.process)["pid"]
        state = day2.run_on(n.node.name, ["nsenter", f"--target={_container_init(pid)}", "--all"],
                            p.files[f"{n.node.name}/user-data"], on_line=lambda line: self.say(f"  {line}"),
                            become=())
        if state.state != "done":  # its seed stays the older: the next `up` tries again
            raise DevcloudError(f"{n.node.name}: day-2 pass failed: {state.reason}")
        self.write_seed(n, p)

    def down(self) -> None:
        names = self.names()
        self._forget_builder(self.dir / BAKE_DIR)  # an interrupted bake's
        self.procs.stop([f"node-{name}" for name in names] + ["relay", "pip-proxy", "apt-cacher-ng"])
        for name in names:
            root = self.dir / name / "root"
            if os.path.ismount(root):
                _run("umount", "--lazy", str(root), check=False)
            if _netns_exists(f"osc-{name}"):
                _ip("netns", "del", f"osc-{name}", check=False)
        if _netns_exists(OUTER_NETNS):
            _ip("netns", "del", OUTER_NETNS, check=False)
        shutil.rmtree(OUTER_HOSTS.parent, ignore_errors=True)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.is_dir() and topology.is_node_name(p.name)) \
            if self.dir.exists() else []

    def console(self, name: str) -> str:
        """The node's console as far as written (every boot's), the local counterpart of
        the outer cloud's console-log API: osception-step.sh's progress lines are on it."""
        path = self.layout.log(f"node-{name}")
        return path.read_text(errors="replace") if path.exists() else ""

    def progress(self) -> dict[str, progress.NodeProgress]:
        """Each node's progress, read from its console (what `osception status` reads)."""
        return {name: progress.parse(self.console(name), name).get(name, progress.NodeProgress(name))
                for name in self.names()}

    def follow(self, timeout: float) -> dict[str, progress.NodeProgress]:
        """Print each node's progress lines as they come, until every node is done;
        a failed node (or the timeout) is an error naming it and its step."""
        names = self.names()
        seen: set[progress.Event] = set()
        state: dict[str, progress.NodeProgress] = {}
        try:
            for _ in sdk_utils.iterate_timeout(timeout, "local nodes", wait=2):
                for name in names:
                    text = self.console(name)
                    for line in text.splitlines():
                        ev = progress.parse_line(line)
                        if ev and ev not in seen:
                            seen.add(ev)
                            self.say(f"  {ev.ts:%Y-%m-%dT%H:%M:%SZ} {ev.node} {ev.step} {ev.state} {ev.message}".rstrip())
                    state[name] = progress.parse(text, name).get(name, progress.NodeProgress(name))
                    if not self.procs.running(f"node-{name}"):
                        raise DevcloudError(f"{name}: its container stopped; end of its console:\n"
                                            f"{tail(self.layout.log(f'node-{name}'))}")
                failed = [p for p in state.values() if p.state == "failed"]
                if failed:
                    raise DevcloudError("; ".join(f"{p.node} failed: {p.reason}" for p in failed))
                if all(p.state == "done" for p in state.values()):
                    return state
        except sdk_exc.ResourceTimeout:
            late = [f"{p.node} at {p.current.name if p.current else 'boot'}"
                    for p in state.values() if p.state != "done"]
            raise DevcloudError(f"local nodes not done within {timeout:.0f} s: {', '.join(late)}") from None
        return state


__all__ = ["LocalNodes", "addresses", "plan", "tail"]
