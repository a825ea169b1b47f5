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


def _older_file(env_dir, *drops: str):
    """An existing secrets.yaml from a version that did not have `drops` yet (dotted
    paths); returns the secrets before, and the file's as written."""
    first = secrets.ensure(env_dir, "e").data
    data = yaml.safe_load(yaml.safe_dump(first))
    for drop in drops:
        *parents, last = drop.split(".")
        holder = data
        for p in parents:
            holder = holder[p]
        del holder[last]
    state.write_private(state.Layout(env_dir).secrets, yaml.safe_dump(data))
    return first, data


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


def test_a_service_new_to_an_environment_gets_its_secrets_and_nothing_else_changes(tmp_path):
    """A newer osception that deploys a new service must not stop every existing
    environment with "missing": the new service's secrets are made, once, and said."""
    env = tmp_path / "e"
    # From a version of osception without placement: nothing of it in any block.
    assert "placement" in services.DATABASES and "placement" in services.SERVICE_USERS
    _, older = _older_file(env, *(f"{block}.placement" for block in secrets.PER_SERVICE))
    planned = secrets.peek(env, "e")  # in memory only
    assert yaml.safe_load(state.Layout(env).secrets.read_text()) == older
    said = []
    sec = secrets.ensure(env, "e", say=said.append, fresh=planned)
    assert said == [f"{state.Layout(env).secrets}: made the secrets of placement, new to this environment "
                    "(every other secret is as it was)"]
    # peek's, which the rest of the input was checked with
    for block in secrets.PER_SERVICE:
        assert sec.data[block]["placement"] == planned.data[block]["placement"]
        assert secrets.PASSWORD_RE.fullmatch(sec.data[block]["placement"])
        assert {k: v for k, v in sec.data[block].items() if k != "placement"} == older[block]
    assert {k: v for k, v in sec.data.items() if k not in secrets.PER_SERVICE} == \
        {k: v for k, v in older.items() if k not in secrets.PER_SERVICE}
    written = state.Layout(env).secrets
    assert yaml.safe_load(written.read_text()) == sec.data and written.stat().st_mode & 0o777 == 0o600
    # Made once: read back as they are from then on, nothing more said.
    again = []
    assert secrets.ensure(env, "e", say=again.append).data == sec.data and again == []


def test_a_service_with_only_some_of_its_secrets_is_damage(tmp_path):
    env = tmp_path / "e"
    _older_file(env, "service_users.placement")  # its database passwords are still there
    before = state.Layout(env).secrets.read_bytes()
    with pytest.raises(state.StateError, match=r"service_users\.placement: missing; .*--regenerate-secrets"):
        secrets.ensure(env, "e")
    assert state.Layout(env).secrets.read_bytes() == before


def test_peek_writes_nothing_and_ensure_writes_what_peek_made(tmp_path):
    env = tmp_path / "home" / "e"
    planned = secrets.peek(env, "e")
    assert not (tmp_path / "home").exists()
    assert secrets.ensure(env, "e", fresh=planned).data == planned.data
    assert secrets.peek(env, "e").data == planned.data  # now read back
    assert (env / "ssh" / "id_ed25519").read_text() == planned.ssh["private"]
