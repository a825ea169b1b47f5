"""`osception devcloud`: a real OpenStack on this machine, for tests and template tuning.

Keystone, Glance, Placement, the Neutron server and Nova (api, conductor, scheduler,
compute with the fake hypervisor) from the release's PyPI services, running what the
controller's rendered manifests say (manifests.py: each Job's containers, each
service's config.json files), with local endpoints and a short list of devcloud-only
overrides (overrides.py). MariaDB, RabbitMQ and memcached are the distro's, each run
as the devcloud's own instance.

    from osception.devcloud import Devcloud, Layout
    Devcloud(Layout.default()).up()
"""

from .layout import Layout
from .processes import DevcloudError

__all__ = ["Devcloud", "DevcloudError", "Layout"]


def __getattr__(name: str):
    # Devcloud (lifecycle) imports openstacksdk, a good part of a second: only when
    # used, so that `osception` commands that never touch the devcloud start fast.
    if name == "Devcloud":
        from .lifecycle import Devcloud

        return Devcloud
    raise AttributeError(name)
