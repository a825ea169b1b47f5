"""The devcloud-only INI overrides: everything in which the devcloud's service config
differs from the controller's, on top of the very same rendered templates. Each
service's are in its folder (services/<name>/devcloud.py: Devcloud.overrides); here
they are gathered.

Four kinds, and nothing else:
- paths: the controller's containers use /etc and /var/lib; here all of it lives
  under the state folder;
- no hypervisor and no agents: Nova's fake driver, a test ML2 driver that binds
  every port, no VIF plug events, no VNC console, no notifications;
- ports: an API that runs its own server (before 2025.2, the eventlet neutron-server)
  listens on the devcloud's own port (layout.PORTS), on 127.0.0.1; the others run
  under gunicorn, which binds them itself;
- a laptop, not a data centre: one conductor and one scheduler worker, a compute
  host mapped into its cell within seconds, a quick stop.

nova-compute reads a compute node's nova.conf (templates/conf/nova-compute.conf.j2),
its overrides are nova-compute.conf's; the other processes read the controller's.

They are merged last (after the user's own `overrides:` of osception.yaml).
`osception devcloud up` prints where the merged files are.
"""

from __future__ import annotations

from .. import releases, services
from .layout import HOST, Layout


def overrides(layout: Layout, release: releases.Release,
              nodes: bool = False) -> dict[str, dict[str, dict[str, object]]]:
    """{config file: {section: {option: value}}} of every service the devcloud runs.
    `nodes`: local compute and network nodes (nodes.py) run the real agents and
    nova-compute."""
    return {name: sections for s in services.SERVICES if s.devcloud
            for name, sections in s.devcloud.overrides(layout, HOST, release, nodes).items()}
