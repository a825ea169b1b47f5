"""placement in the devcloud: its API under gunicorn, its config as the controller's."""

from ..record import Devcloud, Process

DEVCLOUD = Devcloud({"placement": Process("placement-api", 28778)},
                    overrides=lambda layout, host, release, nodes: {"placement.conf": {}})
