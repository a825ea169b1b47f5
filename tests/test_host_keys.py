"""Pinned SSH trust: osception makes every node's host key with the environment's
secrets, cloud-init installs it, and `ssh`, `logs`, `apply` and the computes'
migrations trust exactly those keys (never a key first seen, never the user's own
known_hosts). Checked with ssh's own config parser and a real sshd on loopback."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from osception import cli, config, render, secrets, state
from osception.render.env import source
from osception.render.layout import NODE_ETC

SSHD = "/usr/sbin/sshd"


def _public_of(private: str) -> str:
    key = serialization.load_ssh_private_key(private.encode(), None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def _env(tmp_path: Path, nodes: list[str]) -> tuple[Path, secrets.Secrets, render.Plan]:
    """An environment as `up` leaves it: secrets, and its nodes' addresses."""
    env_dir = tmp_path / "home" / "osception"
    sec = secrets.ensure(env_dir, "osception")
    (env_dir / "resources.json").write_text(json.dumps({"env": "osception", "nodes": {
        n: {"ip": "127.0.0.1", "mac": "02:00:00:00:00:01", "port": str(uuid.uuid4())} for n in nodes}}))
    cfg = config.Config(nodes={"compute": {"count": 3}, "network": {"count": 1}})
    return env_dir, sec, render.build(cfg, sec)


def _user_data(plan: render.Plan, node: str) -> dict:
    return yaml.safe_load(plan.files[f"{node}/user-data"])


NODES = ["k8s-0", "compute-0", "compute-1", "compute-2", "network-0"]


def test_each_node_gets_its_own_host_key_and_known_hosts_names_exactly_it(tmp_path):
    env_dir, sec, plan = _env(tmp_path, NODES)
    for node in NODES:
        cli._ssh_args(env_dir, node, "debian")
    known = {line.split()[0]: " ".join(line.split()[1:]) for line in
             state.Layout(env_dir).known_hosts.read_text().splitlines()}
    assert sorted(known) == sorted(NODES)
    seen = set()
    for node in NODES:
        keys = _user_data(plan, node)["ssh_keys"]
        assert set(keys) == {"ed25519_private"}  # cloud-init derives the public half (ssh-keygen -y)
        public = _public_of(keys["ed25519_private"])
        assert known[node] == public  # what ssh is told to expect is what the node serves
        seen.add(public)
    assert len(seen) == len(NODES)
    # The same keys on every plan (and so no user data changes from one plan to the next)
    again = render.build(plan.cfg, sec)
    assert all(again.files[f"{n}/user-data"] == plan.files[f"{n}/user-data"] for n in NODES)


def _ssh_config(args: list[str]) -> dict[str, str]:
    """What ssh itself makes of a command line (`ssh -G`), as key -> value."""
    out = subprocess.run([args[0], "-G", *args[1:]], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("batch", [False, True])  # ssh, logs / apply
def test_the_ssh_command_checks_host_keys_strictly_against_the_environment_known_hosts(tmp_path, batch):
    env_dir, _, _ = _env(tmp_path, NODES)
    got = _ssh_config(cli._ssh_args(env_dir, "compute-1", "debian", batch=batch))
    assert got["stricthostkeychecking"] == "true"
    assert got["userknownhostsfile"] == str(state.Layout(env_dir).known_hosts)
    assert got["globalknownhostsfile"] == "/dev/null"
    assert got["hostkeyalias"] == "compute-1"
    assert got["updatehostkeys"] == "false"
    assert got["batchmode"] == ("yes" if batch else "no")


def test_a_state_folder_with_spaces_is_one_known_hosts_file(tmp_path):
    env_dir, _, _ = _env(tmp_path / "Application Support", NODES)  # macOS's platformdirs
    got = _ssh_config(cli._ssh_args(env_dir, "k8s-0", "debian"))
    assert got["userknownhostsfile"] == str(state.Layout(env_dir).known_hosts)


def test_migrations_trust_exactly_the_other_computes(tmp_path):
    _, sec, plan = _env(tmp_path, NODES)
    computes = [n for n in NODES if n.startswith("compute-")]
    for node in computes:
        files = {f["path"]: f for f in _user_data(plan, node)["write_files"]}
        lines = files[f"{NODE_ETC}/files/nova-ssh/known_hosts"]["content"].splitlines()
        others = {_public_of(_user_data(plan, n)["ssh_keys"]["ed25519_private"]) for n in computes if n != node}
        assert {" ".join(line.split()[1:]) for line in lines} == others
        assert len(lines) == len(others)
    assert "nova_known_hosts" not in str(_user_data(plan, "network-0"))
    assert not any("nova-ssh" in f["path"] for f in _user_data(plan, "network-0")["write_files"])


# --- a real sshd on loopback, with the host key the user data carries ---------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """Start Debian's sshd on 127.0.0.1:<port> with a given host key; login with the
    environment's key (as this user)."""
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} missing: apt-get install openssh-server (scripts/test.sh installs it)")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
    procs = []

    def start(host_private: str, authorized: str) -> int:
        d = Path(tmp_path) / f"sshd-{len(procs)}"
        d.mkdir()
        (d / "host_key").write_text(host_private)
        (d / "host_key").chmod(0o600)
        (d / "authorized_keys").write_text(authorized + "\n")
        (d / "authorized_keys").chmod(0o600)
        d.chmod(0o700)
        port = _free_port()
        procs.append(proc := subprocess.Popen(
            [SSHD, "-D", "-e", "-f", "/dev/null", "-p", str(port), "-o", "ListenAddress=127.0.0.1",
             "-h", str(d / "host_key"), "-o", f"AuthorizedKeysFile={d / 'authorized_keys'}",
             "-o", "StrictModes=no", "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "PermitRootLogin=prohibit-password"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            if proc.poll() is not None:
                pytest.fail(f"sshd: {proc.stdout.read().decode()}")
            time.sleep(0.05)
        pytest.fail("sshd did not listen")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _ssh(args: list[str], port: int) -> subprocess.CompletedProcess:
    return subprocess.run([args[0], "-p", str(port), "-o", "ConnectTimeout=10", *args[1:], "echo", "in"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_osception_ssh_accepts_the_node_it_made_and_refuses_any_other_key(tmp_path, sshd):
    env_dir, sec, plan = _env(tmp_path, NODES)
    args = cli._ssh_args(env_dir, "compute-0", _me(), batch=True)
    node_key = _user_data(plan, "compute-0")["ssh_keys"]["ed25519_private"]
    ok = _ssh(args, sshd(node_key, sec.ssh["public"]))
    assert (ok.returncode, ok.stdout) == (0, "in\n"), ok.stderr
    # Another environment's node, or another node of this one, at that address: refused,
    # before any login (the user's key is never offered to it).
    for impostor in (secrets.host_key(secrets.throwaway("other"), "compute-0")["private"],
                     _user_data(plan, "compute-1")["ssh_keys"]["ed25519_private"]):
        bad = _ssh(args, sshd(impostor, sec.ssh["public"]))
        assert bad.returncode == 255 and "Host key verification failed" in bad.stderr, bad.stderr
        assert bad.stdout == ""
    assert "in" not in state.Layout(env_dir).known_hosts.read_text().split()  # nothing learnt


def test_a_compute_migrates_to_another_compute_and_to_nothing_else(tmp_path, sshd):
    """nova's SSH as compute.yml sets it up (its ssh config and known_hosts, the
    migration key), from compute-0 to sshds serving other nodes' host keys."""
    _, sec, plan = _env(tmp_path, NODES)
    tasks = yaml.safe_load(source("ansible/tasks/compute.yml"))
    nova_config = next(t["ansible.builtin.copy"]["content"] for t in tasks
                       if t.get("ansible.builtin.copy", {}).get("dest") == "/var/lib/nova/.ssh/config")
    files = {f["path"]: f["content"] for f in _user_data(plan, "compute-0")["write_files"]}
    nova = tmp_path / "nova"
    nova.mkdir(mode=0o700)
    (nova / "known_hosts").write_text(files[f"{NODE_ETC}/files/nova-ssh/known_hosts"])
    (nova / "id_ed25519").write_text(files[f"{NODE_ETC}/files/nova-ssh/id_ed25519"])
    (nova / "id_ed25519").chmod(0o600)
    (nova / "config").write_text(nova_config.replace("/var/lib/nova/.ssh/", f"{nova}/"))
    argv = ["ssh", "-F", str(nova / "config"), "-i", str(nova / "id_ed25519"), "-o", "BatchMode=yes",
            f"{_me()}@127.0.0.1"]
    for peer, trusted in (("compute-1", True), ("compute-2", True), ("compute-0", False),
                          ("network-0", False), ("k8s-0", False)):
        key = _user_data(plan, peer)["ssh_keys"]["ed25519_private"]
        got = _ssh(argv, sshd(key, sec.migration_ssh["public"]))
        if trusted:
            assert (got.returncode, got.stdout) == (0, "in\n"), (peer, got.stderr)
        else:
            assert got.returncode == 255 and "Host key verification failed" in got.stderr, (peer, got.stderr)


def test_libvirtd_logs_in_as_nova_with_novas_key_and_host_keys_only():
    """A live migration's connection is libvirtd's (root, peer to peer), to
    qemu+ssh://nova@<destination>/system: compute.yml's ssh_config drop-in gives
    root-as-nova nova's key and known_hosts (the other computes), strictly, and leaves
    root's other SSH as it was (what OpenSSH's own parser resolves, ssh -G; the login
    itself is the local cloud's live migration test)."""
    tasks = yaml.safe_load(source("ansible/tasks/compute.yml"))
    dropin = next(t["ansible.builtin.copy"]["content"] for t in tasks
                  if t.get("ansible.builtin.copy", {}).get("dest") == "/etc/ssh/ssh_config.d/osception-migration.conf")
    assert "live_migration_uri = qemu+ssh://nova@%s/system" in source("conf/nova-compute.conf.j2").splitlines()

    def resolved(user: str) -> dict[str, str]:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(dropin)
            f.flush()
            out = subprocess.run(["ssh", "-G", "-F", f.name, f"{user}@10.0.0.21"], capture_output=True,
                                 text=True, check=True).stdout
        return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines())}

    assert getpass.getuser() == "root"  # Match localuser root: this runs as libvirtd does
    nova = resolved("nova")
    assert (nova["identityfile"], nova["userknownhostsfile"], nova["globalknownhostsfile"],
            nova["stricthostkeychecking"], nova["identitiesonly"]) == \
        ("/var/lib/nova/.ssh/id_ed25519", "/var/lib/nova/.ssh/known_hosts", "/dev/null", "true", "yes")
    for other in (resolved("root"), resolved("admin")):
        assert "/var/lib/nova" not in " ".join(other.values())
        assert other["stricthostkeychecking"] != "true"


def test_the_host_key_file_is_what_ssh_keygen_reads(tmp_path):
    """The private key osception writes (its own serializer: stable text) is a valid
    OpenSSH key whose public half ssh-keygen derives as the one in known_hosts."""
    sec = secrets.throwaway("osception")
    key = secrets.host_key(sec, "network-0")
    path = tmp_path / "key"
    path.write_text(key["private"])
    path.chmod(0o600)
    out = subprocess.run([shutil.which("ssh-keygen") or "ssh-keygen", "-y", "-f", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == key["public"].split()[:2]
    assert secrets.known_hosts_line(sec, "network-0") == f"network-0 {' '.join(out.split()[:2])}"
