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
    state.write_private(env_dir / secrets.FILE, yaml.safe_dump(data))
    return first


def test_an_older_file_gets_the_added_later_keys_and_keeps_every_other_value(tmp_path):
    env = tmp_path / "e"
    first = _older_file(env, "tls")
    assert "tls" in secrets.ADDED_LATER
    said = []
    again = secrets.ensure(env, "e", say=said.append).data
    assert said == [f"{env / secrets.FILE}: added tls (new in this version of osception)"]
    assert again["tls"] != first["tls"]  # made anew...
    assert {k: v for k, v in again.items() if k != "tls"} == {k: v for k, v in first.items() if k != "tls"}
    assert yaml.safe_load((env / secrets.FILE).read_text()) == again  # ...and saved


def test_a_nested_key_added_later_is_filled_inside_its_mapping(tmp_path, monkeypatch):
    env = tmp_path / "e"
    first = _older_file(env, "database.nova")
    monkeypatch.setattr(secrets, "ADDED_LATER", secrets.ADDED_LATER | {"database.nova"})
    again = secrets.ensure(env, "e").data
    assert secrets.PASSWORD_RE.fullmatch(again["database"]["nova"])
    assert again["database"]["nova"] != first["database"]["nova"]
    assert {k: v for k, v in again["database"].items() if k != "nova"} == \
        {k: v for k, v in first["database"].items() if k != "nova"}


@pytest.mark.parametrize("drop", ["admin_password", "database.nova", "keystone_fernet_keys"])
def test_a_key_that_is_not_added_later_is_never_filled(tmp_path, drop):
    env = tmp_path / "e"
    _older_file(env, drop)
    before = (env / secrets.FILE).read_bytes()
    with pytest.raises(state.StateError, match=rf"{secrets.FILE}: {drop}: missing;"):
        secrets.ensure(env, "e")
    assert (env / secrets.FILE).read_bytes() == before
