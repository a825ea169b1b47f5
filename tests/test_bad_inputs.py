"""A corpus of bad configs, state files and folders.

Each must end the command with exit code 2 and exactly one line that names the key
or the file, with no traceback, no secret shown, and nothing written anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from osception import secrets
from osception.cli import app
from osception.render.conf import secret_values
from tests import pki

OTHER_UID = 4242  # the tests run as root here or not: chown to it only where allowed


def snapshot(root: Path) -> dict:
    """Everything under `root` as (type, mode, size, mtime, inode): any write shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_size,
                                             st.st_mtime_ns, st.st_ino)
    return out


def refused(tmp_path: Path, args: list[str], expected: str, hidden: list[str] = ()) -> None:
    before = snapshot(tmp_path)
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    # `expected`: what the line names, or a tuple of what it names (the key, then the file and what is wrong)
    assert lines[0].startswith("error: ") and all(
        part in lines[0] for part in ((expected,) if isinstance(expected, str) else expected)), lines[0]
    for value in hidden:
        assert value not in result.output
    # no terminal control character of the user's (or of a file's) reaches the terminal raw
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", result.output), repr(result.output)
    assert snapshot(tmp_path) == before, "something was written"


# --- configs: (id, content of osception.yaml, what the one line must name) -------------------

# Hosts Glance's web-download must never fetch from, in the spellings a fetch resolves
# (the resolver's inet_aton takes hex, octal, decimal and short forms; IPv6 carries IPv4).
GLANCE_HOSTS = {
    "metadata": ["169.254.169.254", "0xa9fea9fe", "2852039166", "025177524776", "0251.0376.0251.0376",
                 "169.16689662", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe",
                 "2002:a9fe:a9fe::1", "::169.254.169.254", "fe80::a9fe:a9fe"],
    "loopback": ["127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "::1", "::ffff:127.0.0.1",
                 "localhost", "images.localhost"],
    "private": ["10.0.0.5", "10.5", "172.16.0.1", "192.168.1.1", "0xc0a80101", "100.64.0.1", "fd00::1",
                "::ffff:10.0.0.5"],
    "this-host": ["0.0.0.0", "0", "::"],
    "public-in-another-spelling": ["8.8.8.010", "0x08080808", "134744072"],
}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


BAD_CONFIGS = [
    ("image-yaml-injection", "images: {nova-api: \"x:1\\n          securityContext: {privileged: true}\"}",
     "images: nova-api: must be an image reference"),
    ("image-no-tag", "images: {nova-api: quay.io/openstack.kolla/nova-api}", "images: nova-api:"),
    ("image-uppercase-path", "images: {nova-api: quay.io/Kolla/nova-api:1}", "images: nova-api:"),
    ("image-space", "images: {nova-api: 'quay.io/kolla/nova-api:2026.1 --privileged'}", "images: nova-api:"),
    ("image-short-digest", "images: {nova-api: 'quay.io/kolla/nova-api@sha256:abc'}", "images: nova-api:"),
    ("image-empty", "images: {keystone: ''}", "images: keystone:"),
    ("image-not-a-string", "images: {keystone: [a, b]}", "images.keystone:"),
    ("image-bad-tag", "images: {keystone: 'r.example.com/k:-x'}", "images: keystone:"),
    ("image-quote", "images: {keystone: 'r.example.com/k:1\"'}", "images: keystone:"),
    ("image-unknown", "images: {nova: x:1}", "images: unknown image 'nova'"),
    ("ini-section-newline", "overrides: {nova.conf: {\"DEFAULT\\n[database]\": {debug: true}}}",
     "overrides: nova.conf: section"),
    ("ini-section-bracket", "overrides: {nova.conf: {'database]': {x: 1}}}", "overrides: nova.conf: section"),
    ("ini-section-empty", "overrides: {nova.conf: {'': {x: 1}}}", "overrides: nova.conf: section"),
    ("ini-key-equals", "overrides: {nova.conf: {DEFAULT: {'a=b': 1}}}", "[DEFAULT]"),
    ("ini-key-newline", "overrides: {nova.conf: {DEFAULT: {\"debug\\n[x]\": 1}}}", "[DEFAULT]"),
    ("ini-key-bracket", "overrides: {nova.conf: {DEFAULT: {'[x]': 1}}}", "[DEFAULT]"),
    ("ini-value-newline-section",
     "overrides: {nova.conf: {DEFAULT: {debug: \"true\\n[database]\\nconnection = sqlite://\"}}}",
     "[DEFAULT] debug: the value must be one line"),
    ("ini-value-cr", "overrides: {neutron.conf: {DEFAULT: {debug: \"true\\rx = 1\"}}}", "[DEFAULT] debug"),
    ("ini-value-escape", "overrides: {neutron.conf: {DEFAULT: {debug: \"\\e[31m\"}}}", "[DEFAULT] debug"),
    ("ini-value-nul", "overrides: {keystone.conf: {DEFAULT: {debug: \"a\\0b\"}}}", "[DEFAULT] debug"),
    ("ini-value-line-separator", "overrides: {keystone.conf: {DEFAULT: {debug: \"a\\u2028[x]\"}}}",
     "[DEFAULT] debug"),
    ("ini-value-list", "overrides: {nova.conf: {DEFAULT: {debug: [1, 2]}}}", "overrides.nova.conf.DEFAULT.debug"),
    ("ini-value-tab", "overrides: {nova.conf: {DEFAULT: {x: \"a\\tb\"}}}", "[DEFAULT] x"),
    ("ini-unknown-file", "overrides: {nova.ini: {DEFAULT: {debug: true}}}", "overrides: unknown file 'nova.ini'"),
    ("access-cidr-ipv6", "access_cidr: '2001:db8::/32'", "access_cidr: must be an IPv4 network"),
    ("access-cidr-garbage", "access_cidr: everyone", "access_cidr: must be an IPv4 network"),
    ("access-cidr-bad-prefix", "access_cidr: 10.0.0.0/33", "access_cidr:"),
    ("public-cidr-ipv6",
     "public_network: {mode: provider, network: p, cidr: '2001:db8::/64', gateway: 203.0.113.1}",
     "public_network.cidr: must be an IPv4 network"),
    ("public-gateway-ipv6",
     "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, gateway: '2001:db8::1'}",
     "public_network.gateway: must be an IPv4 address"),
    ("demo-cidr-ipv6", "overcloud: {demo_cidr: 'fd00::/64'}", "overcloud.demo_cidr: must be an IPv4 network"),
    ("fip-cidr-ipv6", "overcloud: {fip_agent_gateway_cidr: 'fd00::/64'}", "overcloud.fip_agent_gateway_cidr"),
    ("nested-too-deeply", "a: " + "[" * 50000, "nested too deeply"),
    ("huge-integer", "mtu: " + "9" * 5000, "not valid YAML"),
    ("python-tag", "name: !!python/object/apply:os.system [id]", "is not valid YAML"),
    ("tab-indent", "nodes:\n\tcompute: {count: 1}", "is not valid YAML"),
    ("top-level-list", "- a list", "must be a mapping of settings"),
    ("top-level-scalar", "just words", "must be a mapping of settings"),
    ("name-markup", "name: '[red]x'", "name: String should match pattern"),
    ("unknown-key-markup", "'[/bold]': 1", "unknown key"),
    ("unknown-key-newline", "\"a\\nb\": 1", "unknown key"),
    ("domain-newline", "domain: \"cloud.example.com\\nx\"", "domain: must be a DNS name"),
    ("domain-too-long", "domain: " + "a" * 300 + ".com", "domain: must be a DNS name"),
    ("count-word", "nodes: {compute: {count: many}}", "nodes.compute.count"),
    ("flavor-empty", "nodes: {compute: {flavor: ''}}", "nodes.compute.flavor"),
    ("release-float", "release: 2026.1", "release:"),
    ("mtu-small", "mtu: 576", "mtu:"),
    ("image-url-file", "overcloud: {images: [{name: x, url: 'file:///etc/passwd'}]}", "overcloud.images.0.url"),
    ("image-url-no-host", "overcloud: {images: [{name: x, url: 'http:///x.img'}]}", "overcloud.images.0.url"),
    ("image-url-comma-host", "overcloud: {images: [{name: x, url: 'http://a,169.254.169.254/x'}]}",
     "overcloud.images.0.url"),
    ("image-url-bad-port", "overcloud: {images: [{name: x, url: 'http://a.example:99999/x'}]}",
     "overcloud.images.0.url"),
    ("import-host-list-injection", "overcloud: {import_hosts: ['a.example,169.254.169.254']}",
     "overcloud.import_hosts.0"),
    ("import-host-bracket", "overcloud: {import_hosts: ['a]']}", "overcloud.import_hosts.0"),
    ("redirect-host-list-injection", "overcloud: {images: [{name: x, url: 'https://a.example/x', "
     "redirect_hosts: ['b.example,169.254.169.254']}]}", "overcloud.images.0.redirect_hosts.0"),
    # Glance's import filter compares text; the fetch resolves any spelling (inet_aton's
    # legacy forms, IPv4 inside IPv6): an address that is not public, written any way, is
    # refused in the filter and in an image URL, and a public one only in its plain form.
    *[(f"import-host-{why}-{n}", f"overcloud: {{import_hosts: ['{host}']}}",
       f"overcloud.import_hosts.0: {host} is ")
      for why, hosts in GLANCE_HOSTS.items() for n, host in enumerate(hosts)],
    *[(f"redirect-host-{why}-{n}", "overcloud: {images: [{name: x, url: 'https://a.example/x', "
       f"redirect_hosts: ['{host}']}}]}}", f"overcloud.images.0.redirect_hosts.0: {host} is ")
      for why, hosts in GLANCE_HOSTS.items() for n, host in enumerate(hosts[:2])],
    *[(f"image-url-{why}-{n}", f"overcloud: {{images: [{{name: x, url: 'http://{_bracketed(host)}/x.img'}}]}}",
       f"overcloud.images.0.url: {host} is ")
      for why, hosts in GLANCE_HOSTS.items() for n, host in enumerate(hosts)],
    ("import-host-uppercase", "overcloud: {import_hosts: [Images.Example.org]}",
     "overcloud.import_hosts.0: write Images.Example.org as images.example.org"),
    ("import-host-ipv6-long-form", "overcloud: {import_hosts: ['2001:DB8:0:0::7']}",
     "overcloud.import_hosts.0: 2001:DB8:0:0::7 is 2001:db8::7: write it so"),
    ("import-host-numeric-name", "overcloud: {import_hosts: ['1.2.3.4.5']}", "overcloud.import_hosts.0: "),
    ("image-url-user", "overcloud: {images: [{name: x, url: 'https://token@images.example.org/x'}]}",
     "overcloud.images.0.url: must not hold a user or password"),
    ("image-url-password", "overcloud: {images: [{name: x, url: 'https://u:p@images.example.org/x'}]}",
     "overcloud.images.0.url: must not hold a user or password"),
    ("image-url-backslash-at", "overcloud: {images: [{name: x, url: 'https://a.example\\\\@169.254.169.254/x'}]}",
     "overcloud.images.0.url: "),
    ("image-url-newline", "overcloud: {images: [{name: x, url: \"https://a.example/x\\nhttp://169.254.169.254/\"}]}",
     "overcloud.images.0.url: must be one URL"),
    ("image-url-tab-in-host", "overcloud: {images: [{name: x, url: \"https://a.exa\\tmple/x\"}]}",
     "overcloud.images.0.url: must be one URL"),
    ("image-url-space", "overcloud: {images: [{name: x, url: 'https://a.example/x y.img'}]}",
     "overcloud.images.0.url: must be one URL"),
    ("image-url-trailing-dot-address", "overcloud: {images: [{name: x, url: 'http://169.254.169.254./x'}]}",
     "overcloud.images.0.url: "),
    ("alias-loop", "nodez: &a [*a]", "nodez: unknown key"),
    # 2024.1's nodes run Debian 12 (releases.py): caracal is bookworm's only
    ("node-image-other-debian", "release: '2024.1'\nnodes: {compute: {image: Debian 13}}",
     "nodes: compute.image 'Debian 13' is Debian 13, but OpenStack 2024.1 nodes run Debian 12 "
     "(its packages are bookworm's (extrepo openstack_caracal)): set image: Debian 12 or leave it unset"),
    ("node-image-other-debian-pypi",
     "release: '2024.1'\nnode_source: pypi\nnodes: {network: {image: debian-13-genericcloud-amd64}}",
     "nodes: network.image 'debian-13-genericcloud-amd64' is Debian 13, but OpenStack 2024.1 nodes run "
     "Debian 12 (its venv is made with Debian 12's python3.11)"),
    ("node-image-codename", "nodes: {compute: {image: bookworm-cloud}}",
     "nodes: compute.image 'bookworm-cloud' is Debian 12, but OpenStack 2026.2 nodes run Debian 13"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config(tmp_path, text, expected):
    cfg = tmp_path / "osception.yaml"
    cfg.write_text(text)
    refused(tmp_path, ["plan", "-c", str(cfg), "--out", str(tmp_path / "out"),
                       "--state-dir", str(tmp_path / "home")], expected)


def _special_config(tmp_path: Path, kind: str) -> tuple[str, str]:
    if kind == "dev-zero":
        return "/dev/zero", "/dev/zero: not a regular file"
    if kind == "too-large":
        (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20) + "\n")
        return str(tmp_path / "big.yaml"), "big.yaml: larger than"
    if kind == "not-utf8":
        (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
        return str(tmp_path / "latin1.yaml"), "latin1.yaml: not UTF-8 text (byte 9)"
    if kind == "utf16":
        (tmp_path / "u16.yaml").write_bytes("name: x\n".encode("utf-16"))
        return str(tmp_path / "u16.yaml"), "u16.yaml: not UTF-8"
    if kind == "a-folder":
        (tmp_path / "dir.yaml").mkdir()
        return str(tmp_path / "dir.yaml"), "dir.yaml: not a regular file"
    if kind == "missing":
        return str(tmp_path / "nope.yaml"), "nope.yaml: cannot read: No such file"
    raise AssertionError(kind)


UNREADABLE = ["dev-zero", "too-large", "not-utf8", "utf16", "a-folder", "missing"]
BAD_ENVS = ["Bad_Name", "[red]x", "a\nb", "x" * 40, "-a"]


@pytest.mark.parametrize("kind", UNREADABLE)
def test_unreadable_config(tmp_path, kind):
    path, expected = _special_config(tmp_path, kind)
    refused(tmp_path, ["plan", "-c", path, "--out", str(tmp_path / "out"),
                       "--state-dir", str(tmp_path / "home")], expected)


@pytest.mark.parametrize("env", BAD_ENVS)
def test_bad_env_name(tmp_path, env):
    refused(tmp_path, ["plan", "--env", env, "--out", str(tmp_path / "out"),
                       "--state-dir", str(tmp_path / "home")], "--env: must be")


# --- state files: a valid state folder, damaged one way each --------------------------------

@pytest.fixture(scope="module")
def good_state(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("good")
    secrets.ensure(home / "osception", "osception")
    return home / "osception"


def _data(env: Path) -> dict:
    return yaml.safe_load((env / "secrets.yaml").read_text())


def _put(env: Path, data) -> None:
    path = env / "secrets.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    path.chmod(0o600)


def _change(**top):
    def apply(env):
        data = _data(env)
        for key, value in top.items():
            if value is _DROP:
                data.pop(key)
            else:
                data[key] = value
        _put(env, data)
    return apply


def _nested(key, sub, value):
    def apply(env):
        data = _data(env)
        if value is _DROP:
            data[key].pop(sub)
        else:
            data[key][sub] = value
        _put(env, data)
    return apply


_DROP = object()
_OTHER_KEY = secrets._ssh_keypair("someone-else")


def _raw(content: bytes):
    def apply(env):
        (env / "secrets.yaml").write_bytes(content)
    return apply


def _truncate(fraction):
    def apply(env):
        text = (env / "secrets.yaml").read_text()
        (env / "secrets.yaml").write_text(text[: int(len(text) * fraction)])
    return apply


def _replace_path(rel, how):
    def apply(env):
        path = env / rel
        if how == "dir":
            path.unlink()
            path.mkdir()
        elif how == "symlink":
            shutil.move(path, env / "elsewhere")
            path.symlink_to(env / "elsewhere")
        elif how == "fifo":
            path.unlink()
            os.mkfifo(path)
        elif how == "other-owner":
            os.chown(path, OTHER_UID, -1)
        elif how.startswith("mode"):
            path.chmod(int(how[4:], 8))
        elif how == "gone":
            path.unlink()
        elif how == "other-key":
            path.write_text(_OTHER_KEY["private"] if rel.endswith("id_ed25519") else _OTHER_KEY["public"] + "\n")
    return apply


def _resources(text):
    def apply(env):
        (env / "resources.json").write_text(text)
        (env / "resources.json").chmod(0o600)
    return apply


BAD_STATE = [
    ("empty", _raw(b""), "secrets.yaml: must be a mapping of secrets"),
    ("truncated-half", _truncate(0.5), "secrets.yaml:"),
    ("truncated-in-key", _truncate(0.8), "secrets.yaml:"),
    ("truncated-to-one-line", _truncate(0.02), "secrets.yaml:"),
    ("not-yaml", _raw(b"admin_password: \"s3cr3t-fragment-that-must-not-show\n: : ["), "not valid YAML"),
    ("a-list", _raw(b"- admin_password\n"), "must be a mapping of secrets"),
    ("a-scalar", _raw(b"hello\n"), "must be a mapping of secrets"),
    ("nested-too-deeply", _raw(b"a: " + b"[" * 50000), "nested too deeply"),
    ("not-utf8", _raw(b"admin_password: \xff\xfe\n"), "secrets.yaml: not UTF-8 text"),
    ("too-large", _raw(b"# " + b"x" * (2 << 20)), "secrets.yaml: larger than 1024 KiB"),
    ("missing-admin", _change(admin_password=_DROP), "admin_password: missing"),
    ("missing-ssh", _change(ssh=_DROP), "ssh: missing"),
    ("missing-fernet", _change(keystone_fernet_keys=_DROP), "keystone_fernet_keys: missing"),
    ("missing-db-user", _nested("database", "nova", _DROP), "database.nova: missing"),
    ("missing-service-user", _nested("service_users", "glance", _DROP), "service_users.glance: missing"),
    ("admin-int", _change(admin_password=12345678901234567890), "admin_password: must be 16 to 128"),
    ("admin-empty", _change(admin_password=""), "admin_password: must be 16 to 128"),
    ("admin-short", _change(admin_password="changeme"), "admin_password: must be 16 to 128"),
    ("admin-newline", _change(admin_password="aaaaaaaaaaaaaaaaaaaa\n[DEFAULT]\ndebug = true"),
     "admin_password: must be"),
    ("admin-quote", _change(admin_password='aaaaaaaaaaaaaaaaaaaa"\n  x: y'), "admin_password: must be"),
    ("admin-null", _change(admin_password=None), "admin_password: must be"),
    ("cookie-short", _change(rabbitmq_erlang_cookie="abc"), "rabbitmq_erlang_cookie: must be"),
    ("database-a-list", _change(database=["a"]), "database: must be a mapping"),
    ("unknown-key", _change(extra="x"), "extra: unknown key"),
    ("unknown-nested-key", _nested("service_users", "intruder", "a" * 32), "service_users.intruder: unknown key"),
    ("fernet-one-key", _change(keystone_fernet_keys=["A" * 43 + "="]), "keystone_fernet_keys: must be a list of 2"),
    ("fernet-not-base64", _change(keystone_fernet_keys=["not base64!", "x"]), "keystone_fernet_keys: every key"),
    ("fernet-16-bytes", _change(keystone_credential_keys=["A" * 22 + "==", "A" * 22 + "=="]),
     "keystone_credential_keys: every key"),
    ("ssh-private-garbage", _nested("ssh", "private", "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"),
     "ssh.private: not an unencrypted OpenSSH ed25519"),
    ("ssh-public-other", _nested("ssh", "public", _OTHER_KEY["public"]), "ssh.public: not the public half"),
    ("ssh-public-injection", _nested("migration_ssh", "public", "ssh-ed25519 AAAA x: y"),
     "migration_ssh.public: not the public half"),
    ("ssh-missing-public", _nested("migration_ssh", "public", _DROP), "migration_ssh: must be a mapping"),
    ("secrets-a-folder", _replace_path("secrets.yaml", "dir"), "secrets.yaml: not a regular file"),
    ("secrets-a-symlink", _replace_path("secrets.yaml", "symlink"), "secrets.yaml: is a symbolic link"),
    ("secrets-a-fifo", _replace_path("secrets.yaml", "fifo"), "secrets.yaml: not a regular file"),
    ("secrets-world-readable", _replace_path("secrets.yaml", "mode0644"),
     "secrets.yaml: readable or writable by others"),
    ("secrets-other-owner", _replace_path("secrets.yaml", "other-owner"), "secrets.yaml: owned by uid 4242"),
    ("ssh-key-replaced", _replace_path("ssh/id_ed25519", "other-key"), "id_ed25519: is not the key in secrets.yaml"),
    ("ssh-pub-replaced", _replace_path("ssh/id_ed25519.pub", "other-key"), "id_ed25519.pub: is not the key"),
    ("ssh-key-symlink", _replace_path("ssh/id_ed25519", "symlink"), "id_ed25519: is a symbolic link"),
    ("ssh-key-world-readable", _replace_path("ssh/id_ed25519", "mode0644"), "id_ed25519: readable or writable"),
    ("secrets-lost-key-kept", _replace_path("secrets.yaml", "gone"), "secrets.yaml: missing, but"),
    ("env-folder-world-writable", _replace_path(".", "mode0777"), "writable by other users"),
    ("env-folder-other-owner", _replace_path(".", "other-owner"), "owned by uid 4242"),
    ("resources-lost-secrets", lambda env: (_resources("{}")(env), (env / "secrets.yaml").unlink(),
                                            shutil.rmtree(env / "ssh")), "secrets.yaml: missing, but"),
]


@pytest.mark.parametrize("name,damage,expected", BAD_STATE, ids=[c[0] for c in BAD_STATE])
def test_bad_state(tmp_path, good_state, name, damage, expected):
    if "other-owner" in name and os.getuid() != 0:
        pytest.skip("chown needs root")
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception", symlinks=True)
    damage(home / "osception")
    refused(tmp_path, ["plan", "--out", str(tmp_path / "out"), "--state-dir", str(home)], expected,
            hidden=_values(good_state) + ["s3cr3t-fragment"])


def _values(env: Path) -> list[str]:

    return secret_values(secrets.Secrets(_data(env)))


@pytest.mark.parametrize("command", ["plan", "up", "populate", "smoke"])
def test_damaged_secrets_stop_every_command(tmp_path, good_state, command):
    """Before the fix: plan/up made new passwords and overwrote the SSH key, exit 0."""
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    _truncate(0.5)(home / "osception")
    refused(tmp_path, [command, "--state-dir", str(home)], "secrets.yaml:")


BAD_RESOURCES = [
    ("resources-not-json", "{\"nodes\": ", "resources.json: not valid JSON"),
    ("resources-a-list", "[1, 2]", "resources.json: not the resources osception wrote"),
    ("resources-nodes-a-list", "{\"nodes\": [1]}", "resources.json: not the resources"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in BAD_RESOURCES], ids=[c[0] for c in BAD_RESOURCES])
def test_bad_resources_file(tmp_path, good_state, text, expected):
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    _resources(text)(home / "osception")
    refused(tmp_path, ["ssh", "k8s-0", "--state-dir", str(home)], expected)


# --- plan --out into folders others control ----------------------------------------------

def _out_world_writable(out: Path) -> None:
    out.mkdir()
    out.chmod(0o777)


def _out_sub_other_owner(out: Path) -> None:
    (out / "k8s-0").mkdir(parents=True)
    os.chown(out / "k8s-0", OTHER_UID, -1)


def _out_is_a_file(out: Path) -> None:
    out.write_text("x")


def _out_sub_dangling_symlink(out: Path) -> None:
    out.mkdir()
    (out / "compute-0").symlink_to(out.parent / "nowhere")


BAD_OUT = [
    ("out-world-writable", _out_world_writable, "out: writable by other users"),
    ("out-subfolder-other-owner", _out_sub_other_owner, "k8s-0: owned by uid 4242"),
    ("out-is-a-file", _out_is_a_file, "out: not a folder"),
    ("out-dangling-symlink", _out_sub_dangling_symlink, "compute-0: a symbolic link to nothing"),
]


@pytest.mark.parametrize("name,prepare,expected", BAD_OUT, ids=[c[0] for c in BAD_OUT])
def test_bad_out_folder(tmp_path, good_state, name, prepare, expected):
    if "other-owner" in name and os.getuid() != 0:
        pytest.skip("chown needs root")
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    prepare(tmp_path / "out")
    refused(tmp_path, ["plan", "--out", str(tmp_path / "out"), "--state-dir", str(home)], expected)


# --- tls: a certificate of the user's own (tests/pki.py makes a throw-away PKI) ------------

_PKI = pki.make()
_OTHER_PKI = pki.make()
_TLS = f"domain: {pki.DOMAIN}\ntls: {{certificate: fullchain.pem, key: key.pem, ca: ca.pem}}\n"


def _tls(**change):
    """The good files (tests/pki.py), then `change`: {file name: text, bytes, 'dir' or 'fifo'}."""
    def apply(folder: Path) -> str:
        _PKI.write(folder)
        for name, content in change.items():
            path = folder / name
            path.unlink(missing_ok=True)
            if content == "dir":
                path.mkdir()
            elif content == "fifo":
                os.mkfifo(path)
            elif content is not None:
                (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return _TLS
    return apply


def _encrypted(key) -> str:
    from cryptography.hazmat.primitives import serialization as s
    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                             s.BestAvailableEncryption(b"password")).decode()


def _x25519() -> str:
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import x25519
    return x25519.X25519PrivateKey.generate().private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                                           s.NoEncryption()).decode()


def _leaf(names, days=(-1, 90)) -> str:
    return pki.pem(_PKI.leaf_for(names, days), _PKI.intermediate)


# (id, prepare(folder) -> osception.yaml text, what the one line must name). Each is
# refused before anything is written, even on a new environment (no secrets made).
BAD_TLS = [
    ("tls-no-domain", lambda f: "tls: {certificate: fullchain.pem, key: key.pem}", "tls: needs domain:"),
    ("tls-unknown-key", lambda f: f"domain: {pki.DOMAIN}\ntls: {{certificate: a, key: b, chain: c}}",
     "tls.chain: unknown key"),
    ("tls-no-key", lambda f: f"domain: {pki.DOMAIN}\ntls: {{certificate: a}}", "tls.key: Field required"),
    ("tls-certificate-missing", _tls(**{"fullchain.pem": None}),
     "tls.certificate: {dir}/fullchain.pem: cannot read: No such file"),
    ("tls-certificate-a-folder", _tls(**{"fullchain.pem": "dir"}), "fullchain.pem: not a regular file"),
    ("tls-key-a-fifo", _tls(**{"key.pem": "fifo"}), "tls.key: {dir}/key.pem: not a regular file"),
    ("tls-certificate-dev-zero",
     lambda f: f"domain: {pki.DOMAIN}\ntls: {{certificate: /dev/zero, key: key.pem}}",
     "tls.certificate: /dev/zero: not a regular file"),
    ("tls-certificate-too-large", _tls(**{"fullchain.pem": "x" * (2 << 20)}), "fullchain.pem: larger than"),
    ("tls-certificate-is-a-key", _tls(**{"fullchain.pem": pki.key_pem(_PKI.key)}),
     "tls.certificate: {dir}/fullchain.pem: not PEM certificates"),
    ("tls-certificate-bad-base64",
     _tls(**{"fullchain.pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"}),
     "fullchain.pem: not PEM certificates"),
    ("tls-certificate-binary", _tls(**{"fullchain.pem": b"\x30\x82\xff\xfe"}), "fullchain.pem: not PEM"),
    ("tls-key-not-pem", _tls(**{"key.pem": "hello"}), "tls.key: {dir}/key.pem: not an unencrypted PEM"),
    ("tls-key-encrypted", _tls(**{"key.pem": _encrypted(_PKI.key)}), "tls.key: {dir}/key.pem: not an unencrypted"),
    ("tls-key-x25519", _tls(**{"key.pem": _x25519()}), "tls.key: {dir}/key.pem: not an RSA, ECDSA or Ed25519"),
    ("tls-key-of-another-certificate", _tls(**{"key.pem": pki.key_pem(_OTHER_PKI.key)}),
     "tls.key: {dir}/key.pem: does not match the first certificate of {dir}/fullchain.pem"),
    ("tls-chain-reversed", _tls(**{"fullchain.pem": pki.pem(_PKI.intermediate, _PKI.leaf)}),
     "tls.key: {dir}/key.pem: does not match"),
    ("tls-chain-skips-intermediate", _tls(**{"fullchain.pem": pki.pem(_PKI.leaf, _PKI.root)}),
     "certificate 2 did not issue certificate 1"),
    ("tls-expired", _tls(**{"fullchain.pem": _leaf([f"*.{pki.DOMAIN}"], (-90, -1))}),
     "tls.certificate: {dir}/fullchain.pem: certificate 1 expired on"),
    ("tls-not-yet-valid", _tls(**{"fullchain.pem": _leaf([f"*.{pki.DOMAIN}"], (2, 90))}),
     "certificate 1 is not valid before"),
    ("tls-ca-of-another", _tls(**{"ca.pem": pki.pem(_OTHER_PKI.root)}),
     "tls.ca: {dir}/ca.pem: did not issue {dir}/fullchain.pem"),
    ("tls-ca-not-pem", _tls(**{"ca.pem": "ca"}), "tls.ca: {dir}/ca.pem: not PEM certificates"),
    ("tls-ca-missing", _tls(**{"ca.pem": None}), "tls.ca: {dir}/ca.pem: cannot read"),
]


def _refused_tls(tmp_path, command, prepare, expected):
    folder = tmp_path / "conf"
    folder.mkdir()
    cfg = folder / "osception.yaml"
    cfg.write_text(prepare(folder))
    args = [command, "-c", str(cfg), "--state-dir", str(tmp_path / "home")]
    refused(tmp_path, args + (["--out", str(tmp_path / "out")] if command == "plan" else []),
            expected.format(dir=folder), hidden=["PRIVATE KEY", str(_PKI.key.private_numbers().private_value)])


@pytest.mark.parametrize("prepare,expected", [c[1:] for c in BAD_TLS], ids=[c[0] for c in BAD_TLS])
def test_bad_own_certificate(tmp_path, prepare, expected):
    _refused_tls(tmp_path, "plan", prepare, expected)


def test_up_stops_at_a_bad_certificate_before_it_looks_for_a_cloud(tmp_path):
    (_, prepare, expected), = [c for c in BAD_TLS if c[0] == "tls-expired"]
    _refused_tls(tmp_path, "up", prepare, expected)


# Names are checked against the hosts of the rendered Ingresses: after the secrets are
# made, so these run on an existing environment (nothing written, the plan neither).
BAD_TLS_NAMES = [
    ("tls-other-domain", ["*.other.example.com"], "does not name keystone.cloud.example.com (it names *.other"),
    ("tls-wildcard-one-level-up", ["*.example.com"], "does not name keystone.cloud.example.com"),
    ("tls-bare-domain-only", [pki.DOMAIN], "does not name keystone.cloud.example.com"),
    ("tls-no-novnc", [f"{n}.{pki.DOMAIN}" for n in ("keystone", "glance", "placement", "neutron", "nova",
                                                    "skyline")], "does not name novnc.cloud.example.com"),
]


@pytest.mark.parametrize("names,expected", [c[1:] for c in BAD_TLS_NAMES], ids=[c[0] for c in BAD_TLS_NAMES])
def test_own_certificate_without_the_endpoints_names(tmp_path, good_state, names, expected):
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    folder = tmp_path / "conf"
    folder.mkdir()
    cfg = folder / "osception.yaml"
    cfg.write_text(_tls(**{"fullchain.pem": _leaf(names)})(folder))
    refused(tmp_path, ["plan", "-c", str(cfg), "--out", str(tmp_path / "out"), "--state-dir", str(home)],
            f"tls.certificate: {folder}/fullchain.pem: {expected}")


# --- strict input (issue 24): duplicates, no coercion, names, networks, URLs, knobs ---------

STRICT_CONFIGS = [
    # a key given twice: YAML would keep the last, silently
    ("dup-top-key", "access_cidr: 198.51.100.0/24\naccess_cidr: 0.0.0.0/0", "line 2: access_cidr: duplicate key"),
    ("dup-nested-key", "nodes:\n  compute: {count: 1, count: 3}", "line 2: count: duplicate key"),
    ("dup-quoted-key", "name: a1\n'name': b2", "line 2: name: duplicate key"),
    ("dup-in-overrides", "overrides: {nova.conf: {DEFAULT: {debug: true, debug: false}}}", "debug: duplicate key"),
    ("dup-in-list-item", "overcloud: {flavors: [{name: a, name: b, vcpus: 1, ram: 64, disk: 1}]}",
     "name: duplicate key"),
    ("dup-key-markup", "'[red]x': 1\n'[red]x': 2", "'[red]x': duplicate key"),
    # no coercion: "3", 3.0 and true are not 3 and 1
    ("count-string", "nodes: {compute: {count: '3'}}", "nodes.compute.count: must be a whole number"),
    ("count-true", "nodes: {compute: {count: true}}", "nodes.compute.count: must be a whole number"),
    ("count-float", "nodes: {network: {count: 2.0}}", "nodes.network.count: must be a whole number"),
    ("controller-count-string", "nodes: {controller: {count: '1'}}", "nodes.controller.count: must be a whole"),
    ("mtu-string", "mtu: '1500'", "mtu: must be a whole number"),
    ("mtu-true", "mtu: true", "mtu: must be a whole number"),
    ("flavor-vcpus-string", "overcloud: {flavors: [{name: s, vcpus: '1', ram: 1024, disk: 10}]}",
     "overcloud.flavors.0.vcpus: must be a whole number"),
    ("flavor-ram-true", "overcloud: {flavors: [{name: s, vcpus: 1, ram: true, disk: 10}]}",
     "overcloud.flavors.0.ram: must be a whole number"),
    ("flavor-disk-float", "overcloud: {flavors: [{name: s, vcpus: 1, ram: 1024, disk: 1.5}]}",
     "overcloud.flavors.0.disk: must be a whole number"),
    ("cgroups-string", "libvirt_cgroups: 'yes'", "libvirt_cgroups: must be true or false"),
    ("cgroups-int", "libvirt_cgroups: 1", "libvirt_cgroups: must be true or false"),
    # RFC 1123 names, and the certificate's common name (*.<domain>: 64 characters)
    ("domain-leading-hyphen", "domain: '-.com'", "domain: must be a DNS name"),
    ("domain-label-leading-hyphen", "domain: -cloud.example.com", "domain: must be a DNS name"),
    ("domain-label-trailing-hyphen", "domain: cloud-.example.com", "domain: must be a DNS name"),
    ("domain-label-64", "domain: " + "a" * 64 + ".com", "domain: must be a DNS name"),
    ("domain-empty-label", "domain: cloud..example.com", "domain: must be a DNS name"),
    ("domain-trailing-dot", "domain: cloud.example.com.", "domain: must be a DNS name"),
    ("domain-underscore", "domain: my_cloud.example.com", "domain: must be a DNS name"),
    ("domain-uppercase", "domain: Cloud.Example.com", "domain: must be a DNS name"),
    ("domain-numeric-tld", "domain: cloud.123", "domain: must be a DNS name"),
    ("domain-one-label", "domain: localhost", "domain: must be a DNS name"),
    ("domain-63-characters", "domain: " + "a" * 59 + ".com", "domain: at most 62 characters"),
    ("domain-200-characters", "domain: " + ".".join(["a" * 49] * 4) + ".com", "domain: at most 62 characters"),
    # networks, not addresses in them
    ("access-cidr-host-bits", "access_cidr: 198.51.100.7/24", "access_cidr: has host bits set: the network is 198"),
    ("access-cidr-no-prefix", "access_cidr: 198.51.100.7", "access_cidr: must be written as a network"),
    ("access-cidr-leading-zero", "access_cidr: 010.0.0.0/8", "access_cidr: must be an IPv4 network"),
    ("demo-cidr-host-bits", "overcloud: {demo_cidr: 10.0.0.1/24}", "overcloud.demo_cidr: has host bits set"),
    ("fip-cidr-host-bits", "overcloud: {fip_agent_gateway_cidr: 100.64.1.0/22}",
     "overcloud.fip_agent_gateway_cidr: has host bits set"),
    ("public-cidr-host-bits",
     "public_network: {mode: provider, network: p, cidr: 203.0.113.1/24, gateway: 203.0.113.1}",
     "public_network.cidr: has host bits set"),
    # the provider network's pool and gateway
    ("pool-start-only", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, "
     "gateway: 203.0.113.1, pool_start: 203.0.113.100}", "public_network: pool_start and pool_end: give both"),
    ("pool-end-only", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, "
     "gateway: 203.0.113.1, pool_end: 203.0.113.100}", "public_network: pool_start and pool_end"),
    ("pool-reversed", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, gateway: 203.0.113.1, "
     "pool_start: 203.0.113.200, pool_end: 203.0.113.100}", "public_network: pool_end 203.0.113.100 comes before"),
    ("pool-holds-gateway", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, gateway: "
     "203.0.113.150, pool_start: 203.0.113.100, pool_end: 203.0.113.200}", "gateway 203.0.113.150 is inside the pool"),
    ("pool-end-outside", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, gateway: "
     "203.0.113.1, pool_start: 203.0.113.100, pool_end: 203.0.114.10}", "pool_end 203.0.114.10 is not inside cidr"),
    ("pool-broadcast", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, gateway: "
     "203.0.113.1, pool_start: 203.0.113.100, pool_end: 203.0.113.255}", "pool_end 203.0.113.255 is the network's"),
    ("gateway-network-address", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/24, "
     "gateway: 203.0.113.0}", "gateway 203.0.113.0 is the network's own or broadcast address"),
    ("public-cidr-31", "public_network: {mode: provider, network: p, cidr: 203.0.113.0/31, gateway: 203.0.113.1}",
     "cidr 203.0.113.0/31: no room"),
    ("provider-fields-mode-none", "public_network: {network: p, cidr: 203.0.113.0/24}",
     "public_network: network: only with mode provider"),
    # proxy and index URLs, parsed
    ("apt-proxy-port-too-big", "apt_proxy: http://10.0.0.5:99999", "apt_proxy: must be an http:// or https:// URL"),
    ("apt-proxy-port-zero", "apt_proxy: http://10.0.0.5:0", "apt_proxy: must be an http"),
    ("apt-proxy-port-empty", "apt_proxy: 'http://10.0.0.5:'", "apt_proxy: must be an http"),
    ("apt-proxy-credentials", "apt_proxy: http://me:secret@10.0.0.5:3142", "apt_proxy: must be an http"),
    ("apt-proxy-path", "apt_proxy: http://10.0.0.5:3142/x", "apt_proxy: must be an http"),
    ("apt-proxy-ftp", "apt_proxy: ftp://10.0.0.5/", "apt_proxy: must be an http"),
    ("apt-proxy-label-64", "apt_proxy: http://" + "a" * 64 + ".example.com:3142", "apt_proxy: must be an http"),
    ("apt-proxy-hex-host", "apt_proxy: http://0xa9fea9fe:3142", "apt_proxy: must be an http"),
    ("apt-proxy-ipv6", "apt_proxy: 'http://[::1]:3142'", "apt_proxy: must be an http"),
    ("apt-proxy-newline", "apt_proxy: \"http://10.0.0.5:3142\\nAcquire::x y;\"", "apt_proxy: must be an http"),
    ("pip-jinja", "pip_index_url: \"http://10.0.0.5/{{ lookup('pipe', 'id') }}/\"", "pip_index_url: must be an http"),
    ("pip-jinja-statement", "pip_index_url: 'http://10.0.0.5/{% raw %}/simple/'", "pip_index_url: must be an http"),
    # without spaces, what the pattern before took: Ansible ran it when it templated vars.yml
    ("pip-jinja-no-space", "pip_index_url: \"http://10.0.0.5/{{lookup('pipe','id')}}/\"",
     "pip_index_url: must be an http"),
    ("pip-jinja-statement-no-space", "pip_index_url: 'http://10.0.0.5/{%raw%}/simple/'",
     "pip_index_url: must be an http"),
    ("pip-query", "pip_index_url: http://10.0.0.5/simple/?x=1", "pip_index_url: must be an http"),
    ("pip-fragment", "pip_index_url: 'http://10.0.0.5/simple/#x'", "pip_index_url: must be an http"),
    ("pip-port-too-big", "pip_index_url: http://10.0.0.5:70000/simple/", "pip_index_url: must be an http"),
    ("pip-credentials", "pip_index_url: http://u:p@10.0.0.5/simple/", "pip_index_url: must be an http"),
    ("pip-space", "pip_index_url: 'http://10.0.0.5/sim ple/'", "pip_index_url: must be an http"),
    ("pip-quote", "pip_index_url: 'http://10.0.0.5/simple/\"x'", "pip_index_url: must be an http"),
    ("pip-backslash", "pip_index_url: 'http://10.0.0.5/simple\\x'", "pip_index_url: must be an http"),
    ("pip-newline", "pip_index_url: \"http://10.0.0.5/simple/\\nextra: 1\"", "pip_index_url: must be an http"),
    ("pip-no-host", "pip_index_url: http:///simple/", "pip_index_url: must be an http"),
    ("pip-file", "pip_index_url: file:///etc/", "pip_index_url: must be an http"),
    # tuning values typed
    ("tuning-bool", "tuning: {glance: {processes: true}}", "tuning: glance.processes: a number or a size"),
    ("tuning-float", "tuning: {glance: {processes: 2.5}}", "tuning: glance.processes: a number or a size"),
    ("tuning-list", "tuning: {glance: {processes: [2]}}", "tuning: glance.processes: a number or a size"),
    ("tuning-negative", "tuning: {glance: {processes: -1}}", "tuning: glance.processes: a number or a size"),
    ("tuning-size-with-space", "tuning: {glance: {storage: '20 Gi'}}", "tuning: glance.storage: a number or a size"),
    ("tuning-service-escape", "tuning: {\"\\e[31mx\": {processes: 1}}", "tuning.?[31mx: no template has knobs"),
    ("tuning-count-as-size", "tuning: {glance: {processes: 2Gi}}",
     "tuning.glance.processes: must be a whole number of at least 1"),
    ("tuning-zero-replicas", "tuning: {keystone: {replicas: 0}}", "tuning.keystone.replicas: must be a whole number"),
    ("tuning-size-as-count", "tuning: {glance: {storage: 30}}", "tuning.glance.storage: must be a size like"),
    ("tuning-size-wrong-unit", "tuning: {mariadb: {innodb_buffer_pool_size: 128Mi}}",
     "tuning.mariadb.innodb_buffer_pool_size: must be a size like its default 64M"),
    ("tuning-size-k8s-unit", "tuning: {rabbitmq: {storage: 2G}}", "tuning.rabbitmq.storage: must be a size"),
    ("tuning-size-zero", "tuning: {glance: {storage: 0Gi}}", "tuning.glance.storage: must be a size"),
    # names shown on the terminal: printable, one line
    ("flavor-escape", "nodes: {compute: {flavor: \"\\e]0;owned\\a\"}}", "nodes.compute.flavor: must be one line"),
    ("flavor-newline", "nodes: {network: {flavor: \"b3-8\\nx\"}}", "nodes.network.flavor: must be one line"),
    ("network-escape", "network: \"\\e[2J\"", "network: must be one line"),
    ("cloud-escape", "cloud: \"\\e[31mprod\"", "cloud: must be one line"),
    ("cloud-empty", "cloud: ''", "cloud: String should have at least 1 character"),
    ("overcloud-flavor-escape", "overcloud: {flavors: [{name: \"\\e[1m\", vcpus: 1, ram: 64, disk: 1}]}",
     "overcloud.flavors.0.name: must be one line"),
    ("overcloud-flavor-c1", "overcloud: {flavors: [{name: \"a\\x9bb\", vcpus: 1, ram: 64, disk: 1}]}",
     "overcloud.flavors.0.name: must be one line"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in STRICT_CONFIGS], ids=[c[0] for c in STRICT_CONFIGS])
def test_strict_config(tmp_path, text, expected):
    """Each refused on a new environment: no state folder, no secrets, no key, no plan."""
    test_bad_config(tmp_path, text, expected)


# --- the config file itself: read as OpenSSH reads its own -------------------------------

def _unsafe_config(tmp_path: Path, kind: str) -> tuple[str, str]:
    good = tmp_path / "osception.yaml"
    good.write_text("name: fine\n")
    if kind == "fifo":  # hung the command before
        os.mkfifo(tmp_path / "fifo.yaml")
        return str(tmp_path / "fifo.yaml"), "fifo.yaml: not a regular file"
    if kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link.yaml").symlink_to(tmp_path / "fifo")
        return str(tmp_path / "link.yaml"), "link.yaml: not a regular file"
    if kind == "dev-null":  # read as an empty file, the defaults, before
        return "/dev/null", "/dev/null: not a regular file"
    if kind == "dev-stdin-pipe":
        os.mkfifo(tmp_path / "p")
        return f"/proc/self/fd/{os.open(tmp_path / 'p', os.O_RDONLY | os.O_NONBLOCK)}", "not a regular file"
    if kind.startswith("mode"):
        good.chmod(int(kind[4:], 8))
        return str(good), f"osception.yaml: writable by other users (mode {kind[4:]})"
    if kind == "other-owner":
        os.chown(good, OTHER_UID, -1)
        return str(good), "osception.yaml: owned by uid 4242, not by you"
    raise AssertionError(kind)


UNSAFE_CONFIG = ["fifo", "symlink-to-fifo", "dev-null", "dev-stdin-pipe", "mode0664", "mode0646", "mode0666",
                 "mode0620", "other-owner"]


@pytest.mark.parametrize("kind", UNSAFE_CONFIG)
def test_unsafe_config_file(tmp_path, kind):
    if kind == "other-owner" and os.getuid() != 0:
        pytest.skip("chown needs root")
    path, expected = _unsafe_config(tmp_path, kind)
    refused(tmp_path, ["plan", "-c", path, "--out", str(tmp_path / "out"),
                       "--state-dir", str(tmp_path / "home")], expected)


def test_the_default_config_of_another_user_is_refused(tmp_path, monkeypatch):
    """./osception.yaml is read only when it is the user's: before, whoever owned it."""
    if os.getuid() != 0:
        pytest.skip("chown needs root")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "osception.yaml").write_text("name: planted\n")
    os.chown(tmp_path / "osception.yaml", OTHER_UID, -1)
    refused(tmp_path, ["plan", "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "home")],
            "osception.yaml: owned by uid 4242")


# --- nothing is made before all input is checked (a new environment each) ----------------

GOOD_PATCH = "diff --git a/nova/x.py b/nova/x.py\n--- a/nova/x.py\n+++ b/nova/x.py\n@@ -1 +1 @@\n-a\n+b\n"


def _fresh_patch(name: str, make) -> callable:
    def prepare(folder: Path) -> str:
        make(folder / name)
        return f"patches: {{nova: [{{file: {name}}}]}}\n"
    return prepare


# (id, command, prepare(folder) -> osception.yaml text, what the one line names). Before,
# each left a state folder with secrets.yaml and the SSH key behind (plan, up, apply).
CHECKED_FIRST = [
    ("plan-unknown-knob", "plan", lambda f: "tuning: {glance: {nope: 1}}", "tuning.glance.nope: unknown knob"),
    ("plan-knob-of-no-service", "plan", lambda f: "tuning: {nosuch: {a: 1}}", "tuning.nosuch: no template has knobs"),
    ("plan-knob-typed", "plan", lambda f: "tuning: {nova: {api_processes: 2Gi}}", "tuning.nova.api_processes"),
    ("up-unknown-knob", "up", lambda f: "tuning: {keystone: {workers: 4}}", "tuning.keystone.workers: unknown knob"),
    ("up-knob-typed", "up", lambda f: "tuning: {memcached: {memory_mb: 1Gi}}", "tuning.memcached.memory_mb"),
    ("apply-knob-typed", "apply", lambda f: "tuning: {skyline: {workers: 0}}", "no environment that `osception up`"),
    ("apply-new-environment", "apply", lambda f: "name: never-up", "never-up: no environment that `osception up`"),
    ("plan-patch-missing", "plan", lambda f: "patches: {nova: [{file: nope.patch}]}", "nope.patch: no such file"),
    ("plan-patch-a-folder", "plan", _fresh_patch("p.patch", Path.mkdir), "p.patch: no such file"),
    ("plan-patch-dangling-symlink", "plan", _fresh_patch("s.patch", lambda p: p.symlink_to(p.parent / "gone")),
     "s.patch: no such file"),
    # patches: file: (issue 24, 4): what lands in a ConfigMap and in user data is a patch
    # of the user's own, read as the config is; before, any readable file went.
    *[(f"{command}-patch-{name}", command, _fresh_patch("x.patch", make), expected)
      for command in ("plan", "up") for name, make, expected in [
          ("too-large", lambda p: p.write_text(GOOD_PATCH + "+" * (1 << 20)),
           ("patches.nova.0.file: ", "/x.patch: larger than 1024 KiB")),
          ("writable-by-others", lambda p: (p.write_text(GOOD_PATCH), p.chmod(0o666)),
           ("patches.nova.0.file: ", "/x.patch: writable by other users (mode 0666)")),
          ("group-writable", lambda p: (p.write_text(GOOD_PATCH), p.chmod(0o664)),
           ("patches.nova.0.file: ", "/x.patch: writable by other users (mode 0664)")),
          ("not-a-diff", lambda p: p.write_text("just some notes\n"),
           ("patches.nova.0.file: ", "/x.patch: not a unified diff")),
          ("empty", lambda p: p.write_text(""), ("patches.nova.0.file: ", "/x.patch: not a unified diff")),
          ("no-git-header", lambda p: p.write_text(GOOD_PATCH.split("\n", 1)[1]),
           ("patches.nova.0.file: ", "/x.patch: not a unified diff")),
          ("header-without-hunk", lambda p: p.write_text("diff --git a/nova/x.py b/nova/x.py\n"),
           ("patches.nova.0.file: ", "/x.patch: not a unified diff")),
          ("binary", lambda p: p.write_text("diff --git a/nova/x.png b/nova/x.png\nGIT binary patch\n"),
           ("patches.nova.0.file: ", "/x.patch: not a patch the nodes can apply")),
          ("hunk-ends-early", lambda p: p.write_text(GOOD_PATCH.replace("+b\n", "junk\n")),
           ("patches.nova.0.file: ", "/x.patch: not a patch the nodes can apply")),
          ("not-utf8", lambda p: p.write_bytes(GOOD_PATCH.encode() + b"+\xff\xfe\n"),
           ("patches.nova.0.file: ", "/x.patch: not UTF-8 text")),
          *([("other-owner", lambda p: (p.write_text(GOOD_PATCH), os.chown(p, OTHER_UID, -1)),
              ("patches.nova.0.file: ", "/x.patch: owned by uid 4242, not by you"))] if os.getuid() == 0 else []),
          ("an-ssh-key", lambda p: p.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n"),
           ("patches.nova.0.file: ", "/x.patch: not a unified diff")),
      ]],
]


@pytest.mark.parametrize("command,prepare,expected", [c[1:] for c in CHECKED_FIRST], ids=[c[0] for c in CHECKED_FIRST])
def test_nothing_is_made_before_the_input_is_checked(tmp_path, command, prepare, expected):
    folder = tmp_path / "conf"
    folder.mkdir()
    cfg = folder / "osception.yaml"
    cfg.write_text(prepare(folder))
    args = [command, "-c", str(cfg), "--state-dir", str(tmp_path / "home")]
    refused(tmp_path, args + (["--out", str(tmp_path / "out")] if command == "plan" else []), expected)
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("names,expected", [c[1:] for c in BAD_TLS_NAMES], ids=[c[0] for c in BAD_TLS_NAMES])
def test_certificate_names_are_checked_before_a_new_environment_is_made(tmp_path, names, expected):
    """Before: the names were checked after the secrets and the SSH key were made."""
    folder = tmp_path / "conf"
    folder.mkdir()
    cfg = folder / "osception.yaml"
    cfg.write_text(_tls(**{"fullchain.pem": _leaf(names)})(folder))
    refused(tmp_path, ["plan", "-c", str(cfg), "--out", str(tmp_path / "out"), "--state-dir",
                       str(tmp_path / "home")], f"tls.certificate: {folder}/fullchain.pem: {expected}")


@pytest.mark.parametrize("name,prepare,expected", BAD_OUT, ids=[c[0] for c in BAD_OUT])
def test_bad_out_is_checked_before_a_new_environment_is_made(tmp_path, name, prepare, expected):
    if "other-owner" in name and os.getuid() != 0:
        pytest.skip("chown needs root")
    prepare(tmp_path / "out")
    refused(tmp_path, ["plan", "--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "home")], expected)


def test_regenerate_with_a_bad_config_keeps_the_old_secrets(tmp_path, good_state):
    """Before: --regenerate-secrets moved the old secrets aside and made new ones, then
    the unknown knob stopped the plan (exit 2): the environment had lost its secrets."""
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    cfg = tmp_path / "osception.yaml"
    cfg.write_text("tuning: {glance: {nope: 1}}")
    refused(tmp_path, ["plan", "-c", str(cfg), secrets.REGENERATE, "--out", str(tmp_path / "out"),
                       "--state-dir", str(home)], "tuning.glance.nope: unknown knob")


# --- secrets.yaml: damaged blocks, duplicate keys, a weak or expired CA -------------------

def _ca(key_size=2048, days=(-1, 3650), is_ca=True, server_key=None) -> dict:
    """An environment `tls:` entry as tls.make writes it, made weaker one way."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "osception osception CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = lambda k: k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode()  # noqa: E731
    return {"ca_cert": cert.public_bytes(s.Encoding.PEM).decode(), "ca_key": pem(key),
            "key": pem(server_key or ec.generate_private_key(ec.SECP256R1()))}


def _sha1_ca(env: Path) -> None:
    """A CA signed with SHA-1 (cryptography signs none: openssl does)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    tmp = env / "tmp-ca"
    tmp.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-sha1", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp / "k",
                    "-out", tmp / "c", "-days", "30", "-subj", "/CN=x", "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True)
    tls = dict(_data(env)["tls"], ca_cert=(tmp / "c").read_text(), ca_key=(tmp / "k").read_text())
    shutil.rmtree(tmp)
    _change(tls=tls)(env)


def _dup_key(key: str):
    def apply(env):
        text = (env / "secrets.yaml").read_text()
        _put(env, text + f"{key}: {_data(env)[key] if isinstance(_data(env)[key], str) else 'x' * 20}\n")
    return apply


def _weak_server_key(env):
    from cryptography.hazmat.primitives.asymmetric import rsa
    _change(tls=_ca(server_key=rsa.generate_private_key(public_exponent=65537, key_size=1024)))(env)


REGENERATE_HINT = "restore it from a backup, or start over with `osception plan --regenerate-secrets`"
STRICT_STATE = [
    ("missing-tls", _change(tls=_DROP), f"secrets.yaml: tls: missing; {REGENERATE_HINT}"),
    ("missing-migration-ssh", _change(migration_ssh=_DROP), "migration_ssh: missing"),
    ("missing-database-root", _change(database_root=_DROP), "database_root: missing"),
    ("missing-credential-keys", _change(keystone_credential_keys=_DROP), "keystone_credential_keys: missing"),
    ("missing-skyline-key", _change(skyline_secret_key=_DROP), "skyline_secret_key: missing"),
    ("tls-without-ca-key", _nested("tls", "ca_key", _DROP), "tls: must be a mapping of ca_cert, ca_key and key"),
    ("tls-a-string", _change(tls="x"), "tls: must be a mapping"),
    ("dup-admin-password", _dup_key("admin_password"), "admin_password: given twice"),
    ("dup-tls", _dup_key("tls"), "tls: given twice"),
    ("ca-expired", _change(tls=_ca(days=(-400, -1))), "tls: ca_cert expired on"),
    ("ca-not-yet-valid", _change(tls=_ca(days=(2, 400))), "tls: ca_cert is not valid before"),
    ("ca-rsa-1024", _change(tls=_ca(key_size=1024)), "tls: ca_key is weak: an RSA key of 1024 bits"),
    ("ca-not-a-ca", _change(tls=_ca(is_ca=False)), "tls: ca_cert is not a CA certificate"),
    ("ca-sha1", _sha1_ca, "tls: ca_cert is signed with sha1"),
    ("server-key-rsa-1024", _weak_server_key, "tls: key is weak: an RSA key of 1024 bits"),
    ("ca-key-of-another-ca", _nested("tls", "ca_key", _ca()["ca_key"]), "tls: ca_key does not match ca_cert"),
]


@pytest.mark.parametrize("name,damage,expected", STRICT_STATE, ids=[c[0] for c in STRICT_STATE])
def test_strict_state(tmp_path, good_state, name, damage, expected):
    test_bad_state(tmp_path, good_state, name, damage, expected)


# --- resources.json, field by field --------------------------------------------------------

_PORT, _SERVER = str(uuid.uuid4()), str(uuid.uuid4())


def _node(**change) -> str:
    node = {"ip": "192.0.2.10", "mac": "fa:16:3e:00:00:01", "public_mac": None, "port": _PORT,
            "public_port": None, "server": _SERVER}
    for key, value in change.items():
        if value is _DROP:
            node.pop(key)
        else:
            node[key] = value
    return json.dumps({"env": "osception", "mtu": 1500, "nodes": {"k8s-0": node}})


STRICT_RESOURCES = [
    ("ip-newline-ini", _node(ip="192.0.2.10\nmy_ip = 6.6.6.6"), "resources.json: nodes.k8s-0.ip: must be an IPv4"),
    ("ip-ssh-option", _node(ip="-oProxyCommand=id"), "nodes.k8s-0.ip: must be an IPv4 address"),
    ("ip-leading-zero", _node(ip="192.0.2.010"), "nodes.k8s-0.ip: must be an IPv4 address"),
    ("ip-v6", _node(ip="2001:db8::1"), "nodes.k8s-0.ip: must be an IPv4 address"),
    ("ip-a-number", _node(ip=3221225994), "nodes.k8s-0.ip: must be an IPv4 address"),
    ("ip-with-user", _node(ip="root@192.0.2.10"), "nodes.k8s-0.ip: must be an IPv4 address"),
    ("ip-missing", _node(ip=_DROP), "nodes.k8s-0.ip: missing"),
    ("mac-garbage", _node(mac="not-a-mac"), "nodes.k8s-0.mac: must be a MAC address"),
    ("mac-yaml", _node(mac="fa:16:3e:00:00:01\n  - path: /etc/cron.d/x"), "nodes.k8s-0.mac: must be a MAC"),
    ("mac-null", _node(mac=None), "nodes.k8s-0.mac: must be a MAC address"),
    ("public-mac-garbage", _node(public_mac="$(id)"), "nodes.k8s-0.public_mac: must be a MAC address or null"),
    ("port-not-uuid", _node(port="p"), "nodes.k8s-0.port: must be a port ID"),
    ("port-jinja", _node(port="{{ lookup('pipe', 'id') }}"), "nodes.k8s-0.port: must be a port ID"),
    ("public-port-not-uuid", _node(public_port=7), "nodes.k8s-0.public_port: must be a port ID"),
    ("server-not-uuid", _node(server="$(reboot)"), "nodes.k8s-0.server: must be a server ID"),
    ("node-unknown-key", _node(user="root"), "nodes.k8s-0.user: unknown key"),
    ("node-a-list", json.dumps({"nodes": {"k8s-0": [1]}}), "nodes.k8s-0: must be a mapping"),
    ("node-name-not-a-node", json.dumps({"nodes": {"k8s-0 -oProxyCommand=x": {}}}),
     "nodes.(a key that is not a name): not a node name"),
    ("node-name-unknown", json.dumps({"nodes": {"storage-0": {}}}), "nodes.storage-0: not a node name"),
    ("top-unknown-key", json.dumps({"nodes": {}, "extra": 1}), "resources.json: extra: unknown key"),
    ("env-not-a-name", json.dumps({"env": "a b", "nodes": {}}), "resources.json: env: must be an environment name"),
    ("mtu-string", json.dumps({"mtu": "1500", "nodes": {}}), "resources.json: mtu: must be a number"),
    ("mtu-true", json.dumps({"mtu": True, "nodes": {}}), "resources.json: mtu: must be a number"),
    ("mtu-huge", json.dumps({"mtu": 10 ** 6, "nodes": {}}), "resources.json: mtu: must be a number"),
    ("dup-node", '{"nodes": {"k8s-0": {}, "k8s-0": {}}}', "resources.json: k8s-0: given twice"),
    ("dup-ip", '{"nodes": {"k8s-0": {"ip": "192.0.2.10", "ip": "192.0.2.66"}}}', "resources.json: ip: given twice"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in STRICT_RESOURCES], ids=[c[0] for c in STRICT_RESOURCES])
def test_strict_resources_file(tmp_path, good_state, text, expected):
    test_bad_resources_file(tmp_path, good_state, text, expected)


def test_a_hostile_address_never_reaches_apply(tmp_path, good_state):
    """Before: apply rendered the IP into the node's nova.conf (my_ip) and user data."""
    home = tmp_path / "home"
    shutil.copytree(good_state, home / "osception")
    _resources(_node(ip="192.0.2.10\n[DEFAULT]\ndebug = true"))(home / "osception")
    refused(tmp_path, ["apply", "--state-dir", str(home)], "nodes.k8s-0.ip: must be an IPv4 address")


# patches: file: inside an environment's state folder (its secrets, its SSH key, its plan),
# each file a good patch, so that only where it is refuses it. (id, how the config names
# it: {home}/{conf}-relative text, --state-dir, $OSCEPTION_HOME). Before: read and sent.
PATCH_IN_STATE = [
    ("secrets", "{home}/other/secrets.yaml", "home", None),
    ("ssh-key", "{home}/other/ssh/id_ed25519", "home", None),
    ("symlink-to-it", "link.patch", "home", None),
    ("dot-dot", "../home/other/plan/x.patch", "home", None),
    ("the-default-home", "{home2}/other/secrets.yaml", "home", "home2"),
    ("a-symlinked-state-dir", "{home}/other/secrets.yaml", "homelink", None),
]


@pytest.mark.parametrize("where,state_dir,env_home", [c[1:] for c in PATCH_IN_STATE],
                         ids=[c[0] for c in PATCH_IN_STATE])
def test_a_patch_inside_a_state_folder_is_refused(tmp_path, monkeypatch, where, state_dir, env_home):
    for home in ("home", "home2"):
        for rel in ("other/secrets.yaml", "other/ssh/id_ed25519", "other/plan/x.patch"):
            (tmp_path / home / rel).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            (tmp_path / home / rel).write_text(GOOD_PATCH)
            (tmp_path / home / rel).chmod(0o600)
    (tmp_path / "homelink").symlink_to(tmp_path / "home")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "link.patch").symlink_to(tmp_path / "home" / "other" / "ssh" / "id_ed25519")
    if env_home:
        monkeypatch.setenv("OSCEPTION_HOME", str(tmp_path / env_home))
    file = where.format(home=tmp_path / "home", home2=tmp_path / "home2")
    (conf / "osception.yaml").write_text(f"name: mine\npatches: {{nova: [{{file: '{file}'}}]}}\n")
    refused(tmp_path, ["plan", "-c", str(conf / "osception.yaml"), "--state-dir", str(tmp_path / state_dir),
                       "--out", str(tmp_path / "out")], ("patches.nova.0.file: ", "inside osception's state folder"))
    assert not (tmp_path / "home" / "mine").exists()


CORPUS = [BAD_CONFIGS, UNREADABLE, BAD_ENVS, BAD_STATE, BAD_RESOURCES, BAD_OUT, BAD_TLS, BAD_TLS_NAMES,
          STRICT_CONFIGS, UNSAFE_CONFIG, CHECKED_FIRST, BAD_TLS_NAMES, BAD_OUT, STRICT_STATE, STRICT_RESOURCES,
          PATCH_IN_STATE]


def test_the_corpus_is_large_enough():
    total = sum(map(len, CORPUS)) + 5  # + the default config, regenerate, apply and init cases
    assert total >= 250, total


# --- init: the file it writes is one plan reads ---------------------------------------------

def test_init_writes_a_config_plan_accepts_whatever_the_umask(tmp_path):
    """Before: with umask 002 init wrote a group-writable file, which plan now refuses."""
    old = os.umask(0o002)
    try:
        path = tmp_path / "osception.yaml"
        result = CliRunner().invoke(app, ["init", str(path)])
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        result = CliRunner().invoke(app, ["plan", "-c", str(path), "--out", str(tmp_path / "out"),
                                          "--state-dir", str(tmp_path / "home")])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_init_never_writes_through_a_symbolic_link(tmp_path, force):
    """Before: `init --force` wrote the defaults into whatever the link pointed at."""
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (tmp_path / "osception.yaml").symlink_to(target)
    refused(tmp_path, ["init", str(tmp_path / "osception.yaml"), *force], "osception.yaml")
    assert target.read_text() == "precious\n"
