"""The user's osception.yaml as pydantic models: defaults, and one-line errors.

Every field has a default, so no file at all is a valid configuration.
`osception init` writes the commented file from `DEFAULT_YAML` below, and a test
checks that it parses to exactly the defaults of these models.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse, urlsplit

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from . import ini, releases, services, state
from .errors import OsceptionError

MAX_SIZE = 1 << 20  # bytes: an osception.yaml is a few KiB; /dev/zero must not fill the memory


class ConfigError(OsceptionError, ValueError):
    """A configuration problem, told in one line that says what to fix."""


def _ipv4_network(v: str | None) -> str | None:
    """The outer cloud gives the nodes IPv4 addresses, and `populate` makes IPv4 subnets.
    A network, not an address in one: 10.0.0.5/24 is a typo for something (Neutron
    refuses it as a subnet, a security group rule would silently widen it)."""
    try:
        ok = v is None or isinstance(ipaddress.ip_network(v, strict=False), ipaddress.IPv4Network)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an IPv4 network such as 203.0.113.0/24 (osception's networks are IPv4)")
    if v is not None and str(net := ipaddress.ip_network(v, strict=False)) != v:
        if "/" in v and ipaddress.ip_address(v.split("/")[0]) != net.network_address:
            raise ValueError(f"has host bits set: the network is {net}")
        raise ValueError(f"must be written as a network with its prefix, e.g. {net}")
    return v


# RFC 1123 host names: labels of letters, digits and inner '-', at most 63 characters
# each and 253 in all; the last label starts with a letter (top-level domains do, and a
# name like 0xa9fea9fe is not read as an address by the resolver: inet_aton would).
_LABEL_RE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME_RE = rf"(?=.{{1,253}}$)(?:{_LABEL_RE}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
# The controller's certificate names *.<domain> as its common name, which X.509 limits
# to 64 characters (RFC 5280 ub-common-name): the domain may have 62.
MAX_DOMAIN = 64 - len("*.")


def _http_url(v: str | None, example: str, path: bool) -> str | None:
    """An http(s) URL of a host (a DNS name or an IPv4 address), with a port in range,
    no user or password, no query; with `path`, a path of RFC 3986 characters."""
    if v is None:
        return v
    hint = f"must be an http:// or https:// URL of a host{' and a path' if path else ' (and port)'}, e.g. {example}"
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError:
        raise ValueError(f"{hint} (its port must be 1 to 65535)") from None
    host = u.hostname or ""
    if u.scheme not in ("http", "https") or not (re.fullmatch(DNS_NAME_RE, host) or _is_ipv4(host)) \
            or port == 0 or u.netloc.endswith(":") or "@" in u.netloc or "?" in v or "#" in v:
        raise ValueError(hint)
    if not re.fullmatch(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]*|/%[0-9A-Fa-f]{2})*" if path else "/?", u.path):
        raise ValueError(f"{hint} (the path: letters, digits and -._~/ and the like)" if path else hint)
    return v


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


def _printable(v: str) -> str:
    """A name shown on the terminal and sent to the cloud: one line, no control characters."""
    if not v.isprintable():
        raise ValueError("must be one line of printable characters")
    return v


Text = Annotated[str, Field(min_length=1), AfterValidator(_printable)]


def _ipv4_address(v: str | None) -> str | None:
    try:
        ok = v is None or isinstance(ipaddress.ip_address(v), ipaddress.IPv4Address)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an IPv4 address such as 203.0.113.1")
    return v


# A container image reference as registries understand it (the grammar of
# distribution/reference), with a tag or a digest: nothing implicit like `latest`.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
IMAGE_RE = re.compile(
    rf"(?:{_HOST}(?:\.{_HOST})*(?::[0-9]{{1,5}})?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?P<digest>@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NAME_RE = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"


class NodeGroup(_Strict):
    count: Annotated[StrictInt, Field(ge=0, le=50)]  # "3" or true is a mistake, not 3 or 1
    flavor: Text
    # null: the controller OS's image, and for the compute and network nodes the image of
    # the release's node OS (Config.node_image).
    image: Text | None = None


def _debian_of(image: str) -> str | None:
    """The Debian major version an image's name says ("Debian 12", "debian-13-genericcloud",
    "bookworm"), or None when it names none."""
    m = re.search(r"(?i)\bdebian[\s_-]*(\d+)", image)
    if m:
        return m[1]
    return next((o.version for o in releases.NODE_OSES if re.search(rf"(?i)\b{o.codename}\b", image)), None)


NODE_DEFAULTS = {
    "controller": {"count": 1, "flavor": "b3-16"},
    "compute": {"count": 2, "flavor": "b3-8"},
    "network": {"count": 2, "flavor": "b3-8"},
}


class Nodes(_Strict):
    controller: NodeGroup = NodeGroup(**NODE_DEFAULTS["controller"])
    compute: NodeGroup = NodeGroup(**NODE_DEFAULTS["compute"])
    network: NodeGroup = NodeGroup(**NODE_DEFAULTS["network"])

    @model_validator(mode="before")
    @classmethod
    def _role_defaults(cls, data: Any) -> Any:
        """`compute: {count: 3}` keeps the compute defaults for what it does not set."""
        if isinstance(data, dict):
            data = {
                role: NODE_DEFAULTS[role] | group
                if role in NODE_DEFAULTS and isinstance(group, dict) else group
                for role, group in data.items()
            }
        return data

    @field_validator("controller")
    @classmethod
    def _one_controller(cls, v: NodeGroup) -> NodeGroup:
        if v.count != 1:
            raise ValueError("must be 1: the control plane runs on one k3s node")
        return v


class PublicNetwork(_Strict):
    """The overcloud's external (flat `provider`) network.

    mode none: no external network; instances get floating IPs nowhere.
    mode provider: the compute and network nodes get an extra port on `network` of the
    outer cloud (bridged by their br-ex; the controller gets none) and the
    overcloud's public network uses `cidr`/`gateway`, allocating from `pool`.
    """

    mode: Literal["none", "provider"] = "none"
    network: str | None = None
    cidr: str | None = None
    gateway: str | None = None
    pool_start: str | None = None
    pool_end: str | None = None

    @model_validator(mode="after")
    def _provider_fields(self) -> "PublicNetwork":
        keys = ("network", "cidr", "gateway", "pool_start", "pool_end")
        if self.mode == "none":
            given = [k for k in keys if getattr(self, k) is not None]
            if given:  # set but unused: the user meant mode provider
                raise ValueError(f"{given[0]}: only with mode provider (mode is none)")
            return self
        missing = [k for k in ("network", "cidr", "gateway") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"mode provider needs {', '.join(missing)}")
        if (self.pool_start is None) != (self.pool_end is None):
            raise ValueError("pool_start and pool_end: give both (or neither: the whole cidr)")
        net = ipaddress.ip_network(self.cidr)  # IPv4 and a network: the field validators said so
        if net.num_addresses < 4:
            raise ValueError(f"cidr {self.cidr}: no room for a gateway and floating IPs (at most /30)")
        for key in ("gateway", "pool_start", "pool_end"):
            value = getattr(self, key)
            if value is None:
                continue
            ip = ipaddress.ip_address(value)
            if ip not in net:
                raise ValueError(f"{key} {value} is not inside cidr {self.cidr}")
            if ip in (net.network_address, net.broadcast_address):
                raise ValueError(f"{key} {value} is the network's own or broadcast address, not a host's")
        if self.pool_start is not None:
            start, end = ipaddress.ip_address(self.pool_start), ipaddress.ip_address(self.pool_end)
            if start > end:
                raise ValueError(f"pool_end {self.pool_end} comes before pool_start {self.pool_start}")
            if start <= ipaddress.ip_address(self.gateway) <= end:
                raise ValueError(f"gateway {self.gateway} is inside the pool {self.pool_start}-{self.pool_end}")
        return self

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        return _ipv4_network(v)

    @field_validator("gateway", "pool_start", "pool_end")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        return _ipv4_address(v)


class Flavor(_Strict):
    name: Text
    vcpus: Annotated[StrictInt, Field(ge=1)]
    ram: Annotated[StrictInt, Field(ge=64)]  # MiB
    disk: Annotated[StrictInt, Field(ge=0)]  # GiB


# A DNS name or an IPv4/IPv6 literal: what Glance's import filter compares (as a list).
HOST_RE = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"

# What Glance's web-download must never fetch from, in a filter or an image URL: the
# controller itself, the outer cloud's metadata service (169.254.169.254, on IPv6
# fe80::a9fe:a9fe) and the networks behind it. Documentation ranges (192.0.2.0/24,
# 2001:db8::/32, ...) stay allowed: nothing routes them.
METADATA_ADDRESSES = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fe80::a9fe:a9fe"))
NOT_PUBLIC = {why: tuple(map(ipaddress.ip_network, nets)) for why, nets in {
    "this host": ("0.0.0.0/8", "::/128"),
    "loopback": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fec0::/10"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
    "reserved": ("240.0.0.0/4",),
}.items()}
# IPv6 addresses that carry an IPv4 one, which is where the packets go: mapped and
# compatible forms (the kernel's dual stack), SIIT, NAT64 (well-known and local-use
# prefixes), 6to4.
_V4_IN_V6 = tuple(map(ipaddress.ip_network, ("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96",
                                              "64:ff9b:1::/48")))
# The devcloud serves its test images from this machine: its config is validated with
# this context, which admits local image hosts (and nothing else).
LOCAL_IMAGE_HOSTS = {"local_image_hosts": True}


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why Glance must not fetch from `ip` ("loopback", "the metadata address", ...), or None."""
    if ip in METADATA_ADDRESSES:
        return "the metadata address"
    return next((why for why, nets in NOT_PUBLIC.items() if any(ip in net for net in nets)), None)


def _destination(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Where packets to `ip` go: the IPv4 address an IPv6 one carries (::ffff:a.b.c.d), else `ip`."""
    if ip.version == 4 or _not_public(ip):  # ::1 and :: are themselves, not 0.0.0.1
        return ip
    return ip.sixtofour or next((ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in _V4_IN_V6 if ip in net), ip)


def _import_host(host: str, info: ValidationInfo) -> str:
    """A host Glance's web-download may fetch from, as its import filter compares it (the
    text of the URL's host): a DNS name, or a public IP address in its plain form. The
    fetch resolves every other spelling (0xa9fea9fe, 2852039166, 127.1, ::ffff:a.b.c.d)
    to an address: those are refused, saying which address they are."""
    local = (info.context or {}).get("local_image_hosts", False)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:  # the resolver's legacy IPv4 forms (glibc's inet_aton: what getaddrinfo takes)
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            ip = None
    if ip is None:
        if not re.fullmatch(DNS_NAME_RE, host):
            raise ValueError(f"{host!r} is neither a host name (its last label begins with a letter) "
                             "nor an IP address")
        if host.lower() in ("localhost",) or host.lower().endswith(".localhost"):  # RFC 6761
            if not local:
                raise ValueError(f"{host} is this machine (loopback): Glance must never fetch from it")
        elif host != host.lower():  # a URL's host reaches Glance's filter in lower case
            raise ValueError(f"write {host} as {host.lower()} (Glance compares the text)")
        return host
    why = _not_public(dest := _destination(ip))
    if why and not local:
        shown = f"{host} is {dest}," if str(dest) != host else f"{host} is"
        raise ValueError(f"{shown} {why}: Glance must never fetch from it")
    if str(ip) != host:
        raise ValueError(f"{host} is {ip}: write it so (Glance's import filter compares the text)")
    return host


ImportHost = Annotated[str, Field(pattern=HOST_RE), AfterValidator(_import_host)]


class Image(_Strict):
    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        # urlsplit drops tabs and newlines anywhere (WHATWG), and readers differ on a
        # backslash: the URL Glance is given must be the one checked here.
        if re.search(r"[^\x21-\x7e]|\\", v):
            raise ValueError("must be one URL: no spaces, newlines, backslashes or other characters "
                             "outside printable ASCII (percent-encode them)")
        try:
            parsed = urlsplit(v)
            parsed.port  # noqa: B018 -- raises on a bad port
        except ValueError as e:
            raise ValueError(f"not a usable URL ({e})") from None
        if "@" in parsed.netloc:
            raise ValueError("must not hold a user or password (the import filter admits hosts, not accounts)")
        if not parsed.hostname or not re.match(HOST_RE, parsed.hostname):
            raise ValueError("needs a host name or IP address, e.g. https://cloud.debian.org/...")
        return _import_host(parsed.hostname, info) and v
    # The hosts `url` redirects through, up to the one that serves the file. Glance 30
    # and later (2025.1+) check every redirect against [import_filtering_opts] as they
    # follow it (glance/common/scripts/utils.py SafeRedirectHandler, LP #2138602), so
    # each must be an allowed host; the image's own host alone is refused at the first
    # redirect. A host name, never a pattern: the filter stays a list of exact hosts.
    redirect_hosts: tuple[ImportHost, ...] = ()
    disk_format: Literal["qcow2", "raw", "vmdk", "vdi", "iso"] = "qcow2"
    # Glance image properties, e.g. os_distro, os_admin_user, hw_disk_bus.
    properties: dict[str, str] = {}


DEFAULT_FLAVORS = (
    Flavor(name="small", vcpus=1, ram=1024, disk=10),
    Flavor(name="medium", vcpus=2, ram=2048, disk=20),
    Flavor(name="large", vcpus=4, ram=4096, disk=40),
)
# download.cirros-cloud.net answers every image file with a 302 to the release on
# GitHub (its .htaccess RewriteRule, cirros-dev/cirros#5), and github.com answers a
# release download with a 302 to a signed URL on its asset host, since 2025
# release-assets.githubusercontent.com (before: objects.githubusercontent.com).
# cloud.debian.org serves its images itself.
CIRROS_REDIRECT_HOSTS = ("github.com", "release-assets.githubusercontent.com")
DEFAULT_IMAGES = (
    Image(name="cirros", url="https://download.cirros-cloud.net/0.6.3/cirros-0.6.3-x86_64-disk.img",
          redirect_hosts=CIRROS_REDIRECT_HOSTS,
          properties={"os_distro": "cirros", "os_admin_user": "cirros",
                      "hw_disk_bus": "virtio", "hw_vif_model": "virtio"}),
    Image(name="debian-13",
          url="https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2",
          properties={"os_distro": "debian", "os_version": "13", "os_admin_user": "debian",
                      "hw_disk_bus": "scsi", "hw_scsi_model": "virtio-scsi",
                      "hw_qemu_guest_agent": "yes"}),
)


class Overcloud(_Strict):
    """What `populate` creates in the new cloud."""

    flavors: tuple[Flavor, ...] = DEFAULT_FLAVORS
    images: tuple[Image, ...] = DEFAULT_IMAGES
    demo_project: str = Field(default="demo", pattern=NAME_RE)
    demo_cidr: str = "10.0.0.0/24"
    # DVR's floating IP gateways take addresses from this private subnet of the
    # public network instead of public IPs.
    fip_agent_gateway_cidr: str = "100.64.0.0/22"
    # Glance's web-download may fetch only from these hosts; null: the hosts of
    # `images` and those they redirect through. Without a filter a project member could
    # make Glance fetch from any address the controller reaches, the outer cloud's
    # metadata service included.
    import_hosts: tuple[ImportHost, ...] | None = None

    @property
    def web_download(self) -> dict[str, list]:
        """Glance's [import_filtering_opts]: the hosts web-download may fetch from (each
        image's host and its redirect_hosts), and the ports (Glance's default 80 and
        443, and those of the image URLs)."""
        urls = [urlparse(i.url) for i in self.images]
        hosts = self.import_hosts if self.import_hosts is not None else [
            *(u.hostname for u in urls), *(h for i in self.images for h in i.redirect_hosts)]
        ports = {80, 443} | {u.port for u in urls if u.port}
        return {"hosts": sorted(set(hosts)), "ports": sorted(ports)}

    @field_validator("demo_cidr", "fip_agent_gateway_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        return _ipv4_network(v)


def _relative_to_the_config(v: Path | None, info: ValidationInfo) -> Path | None:
    """A path of the config (tls:, patches:) relative to the config file (load()'s base)."""
    base = (info.context or {}).get("base")
    return v if v is None or base is None else base / v


class Tls(_Strict):
    """The user's own certificate for the endpoints (e.g. from a public CA), served by
    Traefik instead of the one the environment's CA issues. Paths are relative to the
    config file; tls.py reads and checks the files when a plan is made."""

    certificate: Path  # PEM: the certificate, then its intermediates
    key: Path  # PEM, unencrypted
    ca: Path | None = None  # what clients verify it with; None: the system's CAs

    _relative = field_validator("certificate", "key", "ca")(_relative_to_the_config)


class Patch(_Strict):
    """One patch of a project: a local file (`git format-patch` or a unified diff of the
    project's repository, relative to the config file) or an upstream review,
    `<change>[/<patchset>]`, fetched from the upstream Gerrit by what applies it."""

    file: Path | None = None
    review: str | None = Field(default=None, pattern=r"^[0-9]{1,8}(/[0-9]{1,4})?$")

    _relative = field_validator("file")(_relative_to_the_config)

    @model_validator(mode="after")
    def _one_source(self) -> "Patch":
        if (self.file is None) == (self.review is None):
            raise ValueError("give either file: PATH or review: CHANGE[/PATCHSET]")
        if self.file is not None and not self.file.is_file():
            raise ValueError(f"{self.file}: no such file")
        return self


IniOverrides = dict[str, dict[str, dict[str, str | int | float | bool]]]


class Config(_Strict):
    name: str = Field(default="osception", pattern=NAME_RE)
    release: str = releases.DEFAULT_RELEASE
    # Where the compute and network nodes get OpenStack from: the release's Debian
    # packages, or PyPI into a venv with the release's lock (the system pieces from Debian).
    node_source: Literal["packages", "pypi"] = "packages"
    cloud: Text | None = None
    network: Text = "Ext-Net"
    mtu: Annotated[StrictInt, Field(ge=1280, le=9000)] | None = None
    access_cidr: str = "0.0.0.0/0"
    domain: str | None = None
    tls: Tls | None = None
    nodes: Nodes = Nodes()
    public_network: PublicNetwork = PublicNetwork()
    images: dict[str, str] = {}
    # What the servers boot: "baked", the release's images from `osception bake` when
    # they exist (else the stock nodes.*.image, said so), or always "stock".
    base_images: Literal["baked", "stock"] = "baked"
    overrides: IniOverrides = {}
    # Patches per OpenStack project ({nova: [{file: fix.patch}, {review: "912345/3"}]}),
    # applied wherever the project runs (osception-patch.py).
    patches: dict[str, list[Patch]] = {}
    # Knobs of the control plane's templates: {service: {knob: value}}. Each k8s template
    # opens with the knobs it has and their defaults (`knobs(...)`); unknown ones fail.
    tuning: dict[str, dict[str, Any]] = {}  # typed by each knob's default (render.controller.knob_reader)
    overcloud: Overcloud = Overcloud()
    # An HTTP proxy the compute and network nodes fetch their packages through (apt),
    # e.g. a site's apt-cacher-ng; the devcloud's local nodes use one on this machine.
    apt_proxy: str | None = None
    # The Python package index the nodes' pip installs from with node_source pypi
    # (PyPI's simple API), e.g. a site's mirror or caching proxy; the devcloud's local
    # nodes use one on this machine. None: pypi.org.
    pip_index_url: str | None = None
    # Open vSwitch's datapath on the compute and network nodes: "system" (the kernel's
    # openvswitch module, every cloud VM) or "netdev" (userspace: where the kernel has no
    # such module, e.g. the devcloud's local nodes). netdev also gives the L3 and DHCP
    # agents veth pairs (ovs_use_veth) and OVS userspace TSO (checksums of TCP to guests).
    ovs_datapath: Literal["system", "netdev"] = "system"
    # libvirt puts each guest in cgroups (CPU and memory accounting); false where the
    # compute node cannot make cgroups (the devcloud's local nodes: system containers
    # whose cgroup controllers are read-only).
    libvirt_cgroups: StrictBool = True

    @field_validator("apt_proxy")
    @classmethod
    def _apt_proxy(cls, v: str | None) -> str | None:
        return _http_url(v, "http://10.0.0.5:3142", path=False)

    @field_validator("pip_index_url")
    @classmethod
    def _pip_index_url(cls, v: str | None) -> str | None:
        return _http_url(v, "http://10.0.0.5:3141/simple/", path=True)

    @field_validator("release")
    @classmethod
    def _release(cls, v: str) -> str:
        if v not in releases.RELEASES:
            raise ValueError(f"must be one of {', '.join(releases.RELEASES)}")
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes_run_the_release_os(cls, v: Nodes, info: ValidationInfo) -> Nodes:
        """A compute or network image of another Debian than the release's node OS cannot
        install the release: its packages are that OS's suite's (extrepo's data is per
        suite: caracal is bookworm's only), and pypi's venv is made with that OS's Python."""
        if info.data.get("release") not in releases.RELEASES:
            return v  # release's own error says why
        release = releases.get(info.data["release"])
        node_os = release.node_os
        for role in ("compute", "network"):
            image = getattr(v, role).image
            debian = None if image is None else _debian_of(image)
            if debian is None or debian == node_os.version:
                continue
            if info.data.get("node_source") == "pypi":
                why = f"its venv is made with {node_os.image}'s {node_os.python}"
            elif release.extrepo:
                why = f"its packages are {node_os.codename}'s (extrepo {release.extrepo})"
            else:
                why = f"its packages are {node_os.image}'s own"
            raise ValueError(f"{role}.image {image!r} is Debian {debian}, but OpenStack {release.name} "
                             f"nodes run {node_os.image} ({why}): set image: {node_os.image} or leave it unset")
        return v

    def node_image(self, role: str) -> str:
        """The image the role's servers boot: nodes.<role>.image, else the controller's
        the controller OS's and the compute and network nodes' release node OS's."""
        image = getattr(self.nodes, role).image
        if image is not None:
            return image
        node_os = releases.CONTROLLER_OS if role == "controller" else releases.get(self.release).node_os
        return node_os.image

    @field_validator("access_cidr")
    @classmethod
    def _access_cidr(cls, v: str) -> str:
        return _ipv4_network(v)

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not (re.fullmatch(DNS_NAME_RE, v) and re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,63}", v)):
            raise ValueError("must be a DNS name such as cloud.example.com (lowercase labels of letters, "
                             "digits and inner '-', at most 63 characters each)")
        if v is not None and len(v) > MAX_DOMAIN:
            raise ValueError(f"at most {MAX_DOMAIN} characters: the controller's certificate names "
                             f"*.<domain>, and X.509 allows 64 in a common name")
        return v

    @field_validator("tls")
    @classmethod
    def _tls(cls, v: Tls | None, info: ValidationInfo) -> Tls | None:
        if v is not None and info.data.get("domain") is None:
            raise ValueError("needs domain: a certificate of your own names <service>.<domain>, "
                             "not the controller's <IP>.sslip.io")
        return v

    @field_validator("images")
    @classmethod
    def _images(cls, v: dict[str, str]) -> dict[str, str]:
        from .services import KOLLA_IMAGES

        for key, ref in v.items():
            if key not in KOLLA_IMAGES:
                raise ValueError(f"unknown image {key!r}; allowed: {', '.join(sorted(KOLLA_IMAGES))}")
            m = IMAGE_RE.fullmatch(ref)
            if not m or not (m["tag"] or m["digest"]) or len(ref) > 512:
                raise ValueError(f"{key}: must be an image reference with a tag or a digest, "
                                 "such as registry.example.com/kolla/nova-api:2026.1 or ...@sha256:<hex>")
        return v

    @field_validator("patches")
    @classmethod
    def _patches(cls, v: dict[str, list[Patch]]) -> dict[str, list[Patch]]:
        unknown = sorted(set(v) - set(services.PATCHABLE))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a project osception runs "
                             f"({', '.join(services.PATCHABLE)})")
        return v

    @field_validator("tuning")
    @classmethod
    def _tuning(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for service, knobs in v.items():
            for knob, value in knobs.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]*", knob):
                    raise ValueError(f"{_shown(service)}.{_shown(knob)}: knob names are lower_case words")
                # a whole number or a size: what each knob takes exactly, render.controller.knob_reader checks
                if not (type(value) is int and value >= 0 or
                        isinstance(value, str) and re.fullmatch(r"[0-9]+[A-Za-z]{0,2}", value)):
                    raise ValueError(f"{_shown(service)}.{_shown(knob)}: a number or a size such as 2Gi or 64M")
        return v

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, v: IniOverrides) -> IniOverrides:
        from .services import INI_FILES

        for key, sections in v.items():
            if key not in INI_FILES:
                raise ValueError(f"unknown file {key!r}; allowed: {', '.join(INI_FILES)}")
            for section, options in sections.items():
                if not re.fullmatch(ini.SECTION, section):
                    raise ValueError(f"{key}: section {_shown(section)}: must be letters, digits and _.:-")
                for option, value in options.items():
                    where = f"{key}: [{section}] {_shown(option)}"
                    if not re.fullmatch(ini.KEY, option):
                        raise ValueError(f"{where}: an option name must be letters, digits and _.-")
                    if isinstance(value, str) and not value.isprintable():
                        raise ValueError(f"{where}: the value must be one line of printable characters")
        return v


def _shown(key: object) -> str:
    """A key of the user's as it can be shown in a one-line message."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_.:\-]{1,64}", text) else repr(text[:40])


def _loc(err: dict[str, Any]) -> str:
    return ".".join(_shown(p) for p in err["loc"] if not str(p).startswith("function-"))


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "int_type":  # strict: "3", 3.0 and true are not taken for 3 and 1
        return "must be a whole number (not quoted, not true or false)"
    if err["type"] == "bool_type":
        return "must be true or false (not quoted)"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def load(path: Path | None, context: dict | None = None) -> Config:
    """Read and validate a config file; None gives the defaults. `context`: e.g.
    LOCAL_IMAGE_HOSTS for the devcloud."""
    data: Any = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            raw = state.read_input(path, MAX_SIZE)
        except state.StateError as e:
            raise ConfigError(f"{e}{'; not an osception.yaml' if 'larger than' in str(e) else ''}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{where}: not UTF-8 text (byte {e.start})") from None
        try:
            data = state.load_yaml(text) or {}
        except state.DuplicateKey as e:
            raise ConfigError(f"{where}: line {e.line}: {_shown(e.key)}: duplicate key "
                              "(give each setting once)") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{where}:{line} is not valid YAML") from None
        except RecursionError:
            raise ConfigError(f"{where}: is not valid YAML (nested too deeply)") from None
        except ValueError:  # e.g. an integer of thousands of digits
            raise ConfigError(f"{where}: is not valid YAML (a value out of range)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping of settings")
    try:
        base = path.parent if path is not None else None  # tls: paths relative to the file
        return Config.model_validate(data, context={"base": base, **(context or {})})
    except ValidationError as e:
        # An unknown key usually explains the other errors: name it first.
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = _loc(err) or "(top)"
        raise ConfigError(f"{where}: {loc}: {_message(err)}") from None


DEFAULT_YAML = string.Template("""\
# osception.yaml: every setting with its default. Delete what you do not change.

# Environment name: prefixes and tags every resource on the outer cloud,
# so several environments can live in one project.
name: osception

# OpenStack release of the new cloud: $releases.
release: "$default"

# Where the compute and network nodes get OpenStack's services from:
#   packages  the release's Debian packages ($own_archive, else the
#             Debian OpenStack backports, enabled with extrepo)
#   pypi      upstream's releases from PyPI in a venv (/opt/openstack), constrained by
#             the release's lock (the devcloud's); Open vSwitch, libvirt, QEMU and the
#             agents' tools from the Debian archive, systemd units written by osception
node_source: packages

# The outer cloud: a clouds.yaml entry. null: OS_CLOUD or the OS_* variables.
cloud: null

# The outer network the nodes boot on (their first port, the controller's IP).
network: Ext-Net

# MTU of that network. null: read from the outer cloud at `up` (plan assumes 1500).
# The overcloud's tenant networks get this minus the VXLAN overhead (50).
mtu: null

# Who may reach SSH, HTTP(S) and noVNC on the nodes. Everything else
# (RabbitMQ, databases, metadata) is reachable only between the nodes.
access_cidr: 0.0.0.0/0

# DNS name of the new cloud's endpoints (keystone.<domain>, nova.<domain>...).
# null: <controller IP>.sslip.io, a wildcard name that resolves to that IP.
domain: null

# Your own certificate for those endpoints (e.g. from a public CA) instead of the one
# the environment's own CA issues. Needs `domain:`; it must name every
# <service>.<domain> (a wildcard *.<domain> does). Paths are relative to this file;
# plan and up check the files. The key is read from there at each plan, never copied
# into the state folder.
#   tls:
#     certificate: fullchain.pem   # PEM: the certificate, then its intermediates
#     key: privkey.pem             # PEM, unencrypted
#     ca: null                     # what clients verify it with; null: the system's CAs
tls: null

# image: the outer cloud's image the servers boot; null: $controller_image for the controller,
# the release's node OS for the others ($node_images, whose suite has
# its packages). An image of another Debian than the release's is refused.
nodes:
  controller:          # k3s and the whole control plane; exactly one
    count: 1
    flavor: b3-16
    image: null
  compute:             # nova-compute, libvirt, OVS agent, L3 agent (dvr)
    count: 2
    flavor: b3-8
    image: null
  network:             # OVS agent, L3 agent (dvr_snat, HA), DHCP and metadata agents
    count: 2
    flavor: b3-8
    image: null

# The new cloud's external network.
#   mode: none       no external network.
#   mode: provider   every compute and network node gets a port on `network` (an
#                    outer provider network; the controller needs none),
#                    and the new cloud's flat `public` network uses cidr/gateway,
#                    allocating floating IPs from pool_start..pool_end.
public_network:
  mode: none
  network: null
  cidr: null
  gateway: null
  pool_start: null
  pool_end: null

# Container image overrides per control-plane service, e.g.
#   nova-api: registry.example.com/kolla/nova-api:2026.1-patched
images: {}

# What the servers boot from: baked (the images `osception bake` made for this release
# and osception version, when they exist; else nodes.*.image) or stock (nodes.*.image).
base_images: baked

# Settings merged into the generated INI files, per file, section and key, e.g.
#   nova.conf:
#     DEFAULT:
#       debug: true
overrides: {}

# Patches per OpenStack project (keystone, glance, placement, neutron, nova), applied
# wherever it runs; a file (relative to this one) or an upstream review, e.g.
#   nova:
#     - file: patches/0001-fix-the-bug.patch
#     - review: "912345/3"
patches: {}

# An HTTP proxy the compute and network nodes fetch their packages through, e.g.
#   apt_proxy: http://10.0.0.5:3142
apt_proxy: null
# The package index the nodes' pip uses with node_source pypi (null: pypi.org), e.g.
#   pip_index_url: http://10.0.0.5:3141/simple/
pip_index_url: null

# Open vSwitch datapath on the compute and network nodes: system (kernel) or netdev.
ovs_datapath: system
# libvirt's guests in cgroups (false only where compute nodes cannot make cgroups).
libvirt_cgroups: true

# What `osception populate` creates in the new cloud (also run by `up`).
overcloud:
  flavors:
    - {name: small, vcpus: 1, ram: 1024, disk: 10}
    - {name: medium, vcpus: 2, ram: 2048, disk: 20}
    - {name: large, vcpus: 4, ram: 4096, disk: 40}
  # Glance fetches these itself (image import, web-download): nothing is uploaded
  # from your machine.
  images:
    - name: cirros
      url: https://download.cirros-cloud.net/0.6.3/cirros-0.6.3-x86_64-disk.img
      # where the URL redirects to: Glance fetches from these too (each is checked)
      redirect_hosts: [github.com, release-assets.githubusercontent.com]
      disk_format: qcow2
      properties: {os_distro: cirros, os_admin_user: cirros, hw_disk_bus: virtio, hw_vif_model: virtio}
    - name: debian-13
      url: https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2
      disk_format: qcow2
      properties: {os_distro: debian, os_version: "13", os_admin_user: debian, hw_disk_bus: scsi,
                   hw_scsi_model: virtio-scsi, hw_qemu_guest_agent: "yes"}
  demo_project: demo
  demo_cidr: 10.0.0.0/24
  # DVR floating-IP gateways get addresses from this private subnet, not public IPs.
  fip_agent_gateway_cidr: 100.64.0.0/22
""").substitute(
    # The release facts in it come from the release table.
    releases=" or ".join((", ".join(list(releases.RELEASES)[:-1]), list(releases.RELEASES)[-1])),
    default=releases.DEFAULT_RELEASE,
    own_archive=" and ".join(f"{r.node_os.image}'s own for {r.name}"
                             for r in releases.RELEASES.values() if r.extrepo is None),
    controller_image=releases.CONTROLLER_OS.image,
    node_images="; ".join([releases.get(releases.DEFAULT_RELEASE).node_os.image] + [
        f"{r.name}: {r.node_os.image}" for r in releases.RELEASES.values()
        if r.node_os != releases.get(releases.DEFAULT_RELEASE).node_os]),
)
