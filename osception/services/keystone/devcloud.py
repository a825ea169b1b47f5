"""keystone in the devcloud: its API under gunicorn; its keys where the controller
mounts the secrets' (/etc/keystone/*-keys), under the devcloud's etc/keystone."""

from ..record import Devcloud, Process


def overrides(layout, host, release, nodes):
    keys = layout.etc("keystone")
    return {"keystone.conf": {
        "fernet_tokens": {"key_repository": keys / "fernet-keys"},
        "fernet_receipts": {"key_repository": keys / "fernet-keys"},
        "credential": {"key_repository": keys / "credential-keys"},
    }}


# Two workers: Keystone checks every other API's tokens.
DEVCLOUD = Devcloud({"keystone": Process("keystone", 25000, workers=2, ready="/v3")},
                    overrides=overrides)
