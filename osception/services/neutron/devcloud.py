"""neutron in the devcloud: its API (from 2025.2 under gunicorn; before, the eventlet
neutron-server, which serves RPC itself), and with local nodes the RPC server their
agents talk to. Without local nodes no agent runs: a test ML2 driver binds every port."""

from ..record import Devcloud, Process

PORT = 29696
# The entry point name of osception/devcloud/fake_hypervisor_ml2 (a test aid the
# devcloud installs into its services venv).
FAKE_ML2_DRIVER = "osception_fake_hypervisor"


def overrides(layout, host, release, nodes):
    """`nodes`: the local nodes run the real agents: the plan's own ML2 then."""
    # The eventlet neutron-server of 2024.1 and 2025.1 listens where the devcloud says,
    # with one API and one RPC worker like every process here (newer Neutron runs its
    # API under uWSGI and has none of these options).
    server = {} if release.neutron_split else {
        "bind_host": host, "bind_port": PORT, "api_workers": 1, "rpc_workers": 1}
    return {
        "neutron.conf": {
            "DEFAULT": {"state_path": layout.data("neutron"), **server},
            "oslo_concurrency": {"lock_path": layout.lock("neutron")},
            # Nothing listens to notifications here.
            "oslo_messaging_notifications": {"driver": "noop"},
        },
        "ml2_conf.ini": {} if nodes else {
            "ml2": {
                # No Open vSwitch agent runs: the test driver binds every port instead.
                "mechanism_drivers": FAKE_ML2_DRIVER,
                # Any kind of network a test or a user may ask for.
                "type_drivers": "flat,vlan,vxlan,local",
            },
            # Flat networks on any physical network name, e.g. a test's "public".
            "ml2_type_flat": {"flat_networks": "*"},
        },
    }


DEVCLOUD = Devcloud(
    {
        # Two workers: Nova and Neutron call each other while booting servers.
        "neutron": Process("neutron-server", PORT, workers=2),
        # From 2025.2 on the agents' RPC server is a Deployment of its own (before,
        # neutron-server serves RPC itself).
        "neutron-rpc-server": Process("neutron-rpc-server", for_nodes=True,
                                      release_has="neutron_split"),
    },
    image_files=("neutron/api-paste.ini",), overrides=overrides)
