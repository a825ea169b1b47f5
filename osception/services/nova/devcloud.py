"""nova in the devcloud: its API under gunicorn, the conductor and the scheduler (not
the noVNC proxy: no consoles here), and with local nodes the metadata API their
metadata agents ask. Without local nodes the devcloud's own nova-compute runs a
compute node's nova.conf (nova-compute.conf: templates/conf/nova-compute.conf.j2) on
Nova's fake driver; with them, nova-compute runs on the nodes."""

from ..record import Devcloud, Process


def overrides(layout, host, release, nodes):
    return {
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
                # osception_fake_snapshots (a test aid the devcloud installs, beside
                # the ML2 one): its snapshots become active images (`osception bake`).
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


DEVCLOUD = Devcloud(
    {
        # Two workers: Nova and Neutron call each other while booting servers.
        "nova": Process("nova-api", 28774, workers=2),
        "nova-conductor": Process("nova-conductor"),
        "nova-scheduler": Process("nova-scheduler"),
        # The metadata API, for the local nodes' metadata agents.
        "metadata": Process("nova-metadata", 28775, for_nodes=True),
    },
    image_files=("nova/api-paste.ini",), overrides=overrides)
