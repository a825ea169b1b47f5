"""TEST AID for `osception devcloud` only: binds every port, on any host, at once.

Nova's fake hypervisor plugs nothing, and no Neutron agent runs in the devcloud,
so no real mechanism driver would bind its ports (the ones in Neutron's own test
tree bind only magic host names or need agent rows). This one accepts the first
segment it is offered and reports the port ACTIVE. Never load it in a real cloud:
its ports carry no traffic.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class FakeHypervisorMechanismDriver(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True},
                                status=constants.PORT_STATUS_ACTIVE)
            return
