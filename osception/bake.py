"""`osception bake`: the release's node and controller images, made on the outer cloud.

    for each kind (node, controller), both at once:
      image already there (its name and stamp)  -> nothing to do
      builder server from the stock image, its bake user data (render.bake.bake_user_data)
        -> it installs, stamps its disk, resets cloud-init, powers off (SHUTOFF)
      -> snapshot -> image active -> tagged -> builder deleted

A node image holds what every compute and network node of the release (and node
source) installs first; a controller image k3s and the control plane's images. `up`
boots them when they exist (`base_images: baked`, the default) and the setup steps
they make redundant report "skipped". Every step finds before it creates, so a bake
interrupted anywhere resumes. `down` never touches them; `osception bake --delete` does.

Names and tags, per kind, release and osception version (the scripts and k3s version a
baked image holds are osception's):

    osception-node-2026.2-packages-v0.1.0    tags osception, osception-baked,
    osception-controller-2026.2-v0.1.0            osception-bake:<kind>, osception-release:<r>
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from . import __version__, progress
from . import undercloud as uc
from .config import Config
from .errors import OsceptionError
from .render.bake import bake_user_data
from .render.checks import wire_user_data
from .render.layout import bake_id

KINDS = ("node", "controller")
# Whose flavor and stock image (nodes.<role>) a builder boots: a node image serves both
# compute and network nodes, and a compute's flavor is the one with room for both.
BUILDER_ROLE = {"node": "compute", "controller": "controller"}
BAKED_TAG = "osception-baked"
# The image property that says what it holds (render.layout.bake_id): `up` trusts nothing else.
STAMP_PROPERTY = "osception_bake"
# Installing hundreds of packages, or pulling every Kolla image, on a slow cloud.
BUILD_TIMEOUT = 3600
SNAPSHOT_TIMEOUT = 1800


class BakeError(OsceptionError):
    """One line: what failed, and where to look."""


@dataclass(frozen=True)
class Bake:
    cfg: Config
    kind: str

    @property
    def stamp(self) -> str:
        return bake_id(self.kind, self.cfg)

    @property
    def image_name(self) -> str:
        source = f"-{self.cfg.node_source}" if self.kind == "node" else ""
        return f"osception-{self.kind}-{self.cfg.release}{source}-v{__version__}"

    @property
    def builder_name(self) -> str:
        return f"osception-bake-{self.image_name.removeprefix('osception-')}"

    @property
    def tags(self) -> list[str]:
        return [uc.TAG, BAKED_TAG, f"osception-bake:{self.kind}", f"osception-release:{self.cfg.release}"]

    @property
    def role(self) -> str:
        return BUILDER_ROLE[self.kind]


def bakes(cfg: Config) -> list[Bake]:
    return [Bake(cfg, kind) for kind in KINDS]


# --- finding -----------------------------------------------------------------------

def _ours(image, b: Bake) -> bool:
    props = getattr(image, "properties", None) or {}
    return image.name == b.image_name and props.get(STAMP_PROPERTY) == b.stamp


def find_image(conn, b: Bake, active_only: bool = True):
    """The baked image of `b`: its exact name and stamp property (newest if several)."""
    found = [i for i in conn.image.images(name=b.image_name) if _ours(i, b)]
    if active_only:
        found = [i for i in found if i.status == "active"]
    return max(found, key=lambda i: i.created_at or "", default=None)


def baked_images(conn, cfg: Config) -> dict[str, object]:
    """{role: image} for the roles whose baked image exists (base_images: baked)."""
    out = {}
    for b in bakes(cfg):
        image = find_image(conn, b)
        if image is not None:
            for role in ("compute", "network") if b.kind == "node" else ("controller",):
                out[role] = image
    return out


def _builder(conn, b: Bake):
    found = [s for s in conn.compute.servers(name=f"^{b.builder_name}$")
             if s.name == b.builder_name and BAKED_TAG in (s.tags or []) and s.status != "DELETED"]
    return found[0] if found else None


# --- baking ------------------------------------------------------------------------

def bake(conn, cfg: Config, say=lambda msg: None, kinds=KINDS, timeout: float = BUILD_TIMEOUT) -> dict:
    """Every kind's image, made where missing, both at once. {kind: image}."""
    wanted = [b for b in bakes(cfg) if b.kind in kinds]
    # up's preflight lookups (credentials, each builder's flavor and image, the network),
    # in its words; the builders are created from what they found
    found, problems = uc.look_up(conn, cfg, {b.role for b in wanted})
    if problems:
        raise uc.PreflightError(problems)
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        made = list(pool.map(lambda b: _bake_one(conn, b, found, say, timeout), wanted))
    return {b.kind: image for b, image in zip(wanted, made)}


def _bake_one(conn, b: Bake, found: uc.Found, say, timeout: float):
    image = find_image(conn, b, active_only=False)
    if image is not None and image.status == "active":
        say(f"{b.kind}: {b.image_name} ({image.id}) is baked already")
        _finish(conn, b, image)
        return image
    if image is None or image.status in ("killed", "deleted"):
        builder = _ensure_builder(conn, b, found, say)
        _wait_powered_off(conn, b, builder, timeout)
        say(f"{b.kind}: builder done, snapshot {b.image_name}")
        image = conn.compute.create_server_image(
            builder, b.image_name, metadata={STAMP_PROPERTY: b.stamp, "osception_release": b.cfg.release,
                                             "osception_version": __version__})
    # else: a snapshot an interrupted bake asked for, still uploading
    image = conn.image.wait_for_status(image, "active", failures=["killed", "deleted"], interval=5,
                                       wait=SNAPSHOT_TIMEOUT)
    _finish(conn, b, image)
    say(f"{b.kind}: {b.image_name} ({image.id}) active")
    return image


def _finish(conn, b: Bake, image) -> None:
    """Tag the image and remove its builder (both again after an interruption)."""
    for tag in set(b.tags) - set(image.tags or []):
        conn.image.add_tag(image, tag)
    builder = _builder(conn, b)
    if builder is not None:
        uc.delete_servers(conn, [builder])


def _ensure_builder(conn, b: Bake, found: uc.Found, say):
    builder = _builder(conn, b)
    if builder is not None and builder.status == "ERROR":
        uc.delete_servers(conn, [builder])
        builder = None
    if builder is not None:
        say(f"{b.kind}: builder {b.builder_name} exists ({builder.status}), waiting for it")
        return builder
    user_data = bake_user_data(b.cfg, b.kind)
    builder = conn.compute.create_server(
        name=b.builder_name,
        flavor_id=found.flavors[b.role].id,
        image_id=found.images[b.role].id,
        networks=[{"uuid": found.network.id}],
        user_data=base64.b64encode(wire_user_data(user_data)).decode(),
        tags=[uc.TAG, BAKED_TAG],
        metadata={"osception-bake": b.stamp},
    )
    say(f"{b.kind}: builder {b.builder_name} created from {b.cfg.node_image(b.role)!r}")
    return builder


def _wait_powered_off(conn, b: Bake, builder, timeout: float) -> None:
    """Until the builder powers off (its script's last act, only after success); a
    `failed` line on its console stops the wait with the builder's own reason."""
    for _ in sdk_utils.iterate_timeout(timeout, f"{b.kind}: builder {b.builder_name} still running "
                                                f"after {timeout:.0f} s", wait=10):
        server = conn.compute.get_server(builder.id)
        if server.status == "ERROR":
            raise BakeError(f"{b.kind}: builder {b.builder_name} went to ERROR: "
                            f"{(server.fault or {}).get('message', 'no fault given')}")
        if server.status == "SHUTOFF":
            return
        try:
            console = conn.compute.get_server_console_output(server)["output"] or ""
        except sdk_exc.SDKException:
            continue  # a cloud without console logs: the power state alone says it
        prog = next(iter(progress.parse(console).values()), None)
        if prog is not None and prog.state == "failed":
            raise BakeError(f"{b.kind}: builder {b.builder_name} failed: {prog.reason}; its console: "
                            f"`openstack console log show {server.id}`; `osception bake --delete` removes it")


# --- deleting ----------------------------------------------------------------------

def delete(conn, cfg: Config, say=lambda msg: None, every_release: bool = False) -> int:
    """The baked images of the release (every osception version), or of every release,
    and leftover builders. Only images carrying the bake tag and a bake's name."""
    count = 0
    for image in list(conn.image.images(tag=BAKED_TAG)):
        if BAKED_TAG not in (image.tags or []) or not image.name.startswith(("osception-node-",
                                                                              "osception-controller-")):
            continue
        if not every_release and f"osception-release:{cfg.release}" not in (image.tags or []):
            continue
        conn.image.delete_image(image, ignore_missing=True)
        say(f"deleted image {image.name} ({image.id})")
        count += 1
    for b in bakes(cfg):
        builder = _builder(conn, b)
        if builder is not None:
            uc.delete_servers(conn, [builder])
            say(f"deleted builder {b.builder_name}")
    return count
