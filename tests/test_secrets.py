"""secrets.py on its own: what a new environment gets, and how an older file is filled."""

from __future__ import annotations

import base64

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from osception import secrets, services, state


def test_a_new_environment_gets_one_distinct_password_per_database_and_service_user(tmp_path):
    sec = secrets.ensure(tmp_path / "e", "e")
    assert set(sec.database) == set(sec.database_root) == set(services.DATABASES)
    assert set(sec.service_users) == set(services.SERVICE_USERS)
    passwords = [sec.admin_password, sec.demo_password, sec.rabbitmq_password, sec.metadata_secret,
                 sec.skyline_secret_key, *sec.database.values(), *sec.database_root.values(),
                 *sec.service_users.values()]
    assert all(secrets.PASSWORD_RE.fullmatch(p) for p in passwords)
    assert len(set(passwords)) == len(passwords)


def test_fernet_keys_and_ssh_keys_are_what_keystone_and_openssh_read(tmp_path):
    sec = secrets.ensure(tmp_path / "e", "e")
    for keys in (sec.keystone_fernet_keys, sec.keystone_credential_keys):
        assert len(keys) == secrets.FERNET_KEYS == len(set(keys))
        assert all(len(base64.urlsafe_b64decode(k)) == 32 for k in keys)
    for pair, comment in ((sec.ssh, "osception-e"), (sec.migration_ssh, "osception-e-nova-migration")):
        key = serialization.load_ssh_private_key(pair["private"].encode(), None)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        assert pair["public"] == f"{public} {comment}"
    assert sec.ssh["private"] != sec.migration_ssh["private"]
    assert (tmp_path / "e" / "ssh" / "id_ed25519").read_text() == sec.ssh["private"]


def _older_file(env_dir, drop: str):
    """An existing secrets.yaml from a version that did not have `drop` yet."""
    first = secrets.ensure(env_dir, "e").data
    data = yaml.safe_load(yaml.safe_dump(first))
    *parents, last = drop.split(".")
    holder = data
    for p in parents:
        holder = holder[p]
    del holder[last]
    state.write_private(state.Layout(env_dir).secrets, yaml.safe_dump(data))
    return first


@pytest.mark.parametrize("drop", ["tls", "admin_password", "database.nova", "keystone_fernet_keys"])
def test_a_missing_block_is_damage_never_filled(tmp_path, drop):
    """Before: a file without `tls:` got a new CA (exit 0), which nothing running trusted."""
    env = tmp_path / "e"
    _older_file(env, drop)
    before = state.Layout(env).secrets.read_bytes()
    with pytest.raises(state.StateError, match=rf"{state.Layout.SECRETS}: {drop}: missing; .*--regenerate-secrets"):
        secrets.ensure(env, "e")
    with pytest.raises(state.StateError, match=rf"{drop}: missing"):
        secrets.peek(env, "e")
    assert state.Layout(env).secrets.read_bytes() == before


def test_peek_writes_nothing_and_ensure_writes_what_peek_made(tmp_path):
    env = tmp_path / "home" / "e"
    planned = secrets.peek(env, "e")
    assert not (tmp_path / "home").exists()
    assert secrets.ensure(env, "e", fresh=planned).data == planned.data
    assert secrets.peek(env, "e").data == planned.data  # now read back
    assert (env / "ssh" / "id_ed25519").read_text() == planned.ssh["private"]
