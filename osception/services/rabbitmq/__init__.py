"""rabbitmq: the message bus of nova and neutron, for their control services and for
the compute and network nodes' agents. Two listeners: plain TCP for the pods, inside
the cluster only, and TLS with the controller's certificate for the nodes, on the
controller's IP (shared.RABBITMQ_PORT, RABBITMQ_TLS_PORT).

Depends on: nothing but the cluster (namespace, secrets: 00, 01).

Lifecycle: 11, with the infrastructure; neutron's and nova's pods wait for its port.
"""

from ..record import Service

SERVICE = Service("rabbitmq", 11, ("rabbitmq",))
