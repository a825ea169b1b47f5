"""The devcloud-only INI overrides: everything in which the devcloud's service config
differs from the controller's, on top of the very same rendered templates.

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
the other Nova processes the controller's.

They are merged last (after the user's own `overrides:` of osception.yaml).
`osception devcloud up` prints where the merged files are.
"""

from __future__ import annotations

from .. import releases
from .layout import HOST, PORTS, Layout

# Entry point name of osception/devcloud/fake_hypervisor_ml2 (a test aid).
FAKE_ML2_DRIVER = "osception_fake_hypervisor"


def overrides(layout: Layout, release: releases.Release,
              nodes: bool = False) -> dict[str, dict[str, dict[str, object]]]:
    """`nodes`: local compute and network nodes (nodes.py) run the real agents and
    nova-compute: the plan's own ML2 then, no test driver."""
    glance = layout.data("glance")
    # The eventlet neutron-server of 2024.1 and 2025.1 listens where the devcloud says,
    # with one API and one RPC worker like every process here (newer Neutron runs its
    # API under uWSGI and has none of these options).
    neutron_server = {} if release.neutron_split else {
        "bind_host": HOST, "bind_port": PORTS["neutron"], "api_workers": 1, "rpc_workers": 1}
    out = {
        "keystone.conf": {
            # The controller mounts the secrets' keys at /etc/keystone/*-keys.
            "fernet_tokens": {"key_repository": layout.etc("keystone") / "fernet-keys"},
            "fernet_receipts": {"key_repository": layout.etc("keystone") / "fernet-keys"},
            "credential": {"key_repository": layout.etc("keystone") / "credential-keys"},
        },
        "glance-api.conf": {
            "fs": {"filesystem_store_datadir": glance / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": glance / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": glance / "tasks_work_dir"},
            "oslo_concurrency": {"lock_path": layout.lock("glance")},
        },
        "placement.conf": {},
        "neutron.conf": {
            "DEFAULT": {"state_path": layout.data("neutron"), **neutron_server},
            "oslo_concurrency": {"lock_path": layout.lock("neutron")},
            # Nothing listens to notifications here.
            "oslo_messaging_notifications": {"driver": "noop"},
        },
        "ml2_conf.ini": {
            "ml2": {
                # No Open vSwitch agent runs: the test driver binds every port instead.
                "mechanism_drivers": FAKE_ML2_DRIVER,
                # Any kind of network a test or a user may ask for.
                "type_drivers": "flat,vlan,vxlan,local",
            },
            # Flat networks on any physical network name, e.g. a test's "public".
            "ml2_type_flat": {"flat_networks": "*"},
        },
        "nova.conf": {  # nova-api, nova-conductor, nova-scheduler
            "DEFAULT": {
                "state_path": layout.data("nova"),
                # A throw-away cloud: `down` should not wait a minute per daemon.
                "graceful_shutdown_timeout": 5,
                # Periodic tasks start after a random delay of up to 60 s by default
                # (against stampedes of many nodes): the host discovery below included.
                "periodic_fuzzy_delay": 0,
            },
            # One worker each (the default is one per CPU): memory, on a laptop or CI.
            "conductor": {"workers": 1},
            # The controller maps late computes every minute; here the one compute
            # should be schedulable seconds after it starts.
            "scheduler": {"discover_hosts_in_cells_interval": 2, "workers": 1},
            # No noVNC proxy runs.
            "vnc": {"enabled": False},
            # Nothing listens to notifications here.
            "oslo_messaging_notifications": {"driver": "noop"},
            "oslo_concurrency": {"lock_path": layout.lock("nova")},
        },
        "nova-compute.conf": {  # a compute node's nova.conf, for the fake hypervisor
            "DEFAULT": {
                # Instead of libvirt. FakeDriver (with fake nodes) cannot restart:
                # "No local node identity found".
                # osception_fake_snapshots (a test aid beside the ML2 one): its
                # snapshots become active images (`osception bake`).
                "compute_driver": "osception_fake_snapshots.FakeDriverWithSnapshots",
                # The fake driver plugs nothing and no agent sends vif-plugged events.
                "vif_plugging_is_fatal": False,
                "vif_plugging_timeout": 0,
                "state_path": layout.data("nova-compute"),
                "graceful_shutdown_timeout": 5,
            },
            # The fake driver has no consoles (and no noVNC proxy runs).
            "vnc": {"enabled": False},
            "oslo_messaging_notifications": {"driver": "noop"},
            "oslo_concurrency": {"lock_path": layout.lock("nova-compute")},
        },
    }
    if nodes:
        out["ml2_conf.ini"] = {}
    return out
