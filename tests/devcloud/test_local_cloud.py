"""The whole cloud on this machine, for real: a devcloud with local compute and network
nodes (osception/devcloud/nodes.py), each booted from the user data `osception plan`
renders for it, and what a user of that cloud sees: `osception devcloud smoke` passing
every check with no skip, metadata served to a guest, a guest on one compute reaching a
guest on the other across VXLAN, and `down` leaving no namespace, mount or process.

Slow (minutes) and on a devcloud of its own: scripts/test.sh runs this module after the
main run, on a fresh state home, with OSCEPTION_LOCAL_NODES=<computes>,<network nodes>.
Without that variable it is skipped, saying so (the main run's devcloud holds the ports).
The release is the one whose node packages Debian 13 carries (no extrepo)."""

from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import openstack
import pytest
from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from osception import releases
from osception import secrets as secrets_mod
from osception.devcloud import Devcloud, Layout, cloud, guest, nodes
from osception.devcloud.lifecycle import Settings
from osception.render.layout import BAKED_STAMP, NODE_ETC, bake_id

COUNTS = os.environ.get("OSCEPTION_LOCAL_NODES", "")
RELEASE = next(r.name for r in releases.RELEASES.values() if r.extrepo is None)
GUEST_TIMEOUT = 300


@pytest.fixture(scope="module")
def local_cloud():
    """The devcloud with its local nodes, up from the state home ($OSCEPTION_HOME)."""
    if not COUNTS:
        pytest.skip("runs on a devcloud of its own after the main run (scripts/test.sh sets "
                    "OSCEPTION_LOCAL_NODES=<computes>,<network nodes>)")
    computes, networks = (int(n) for n in COUNTS.split(","))
    layout = Layout.default()
    dc = Devcloud(layout, say=lambda m: print(f"devcloud: {m}", flush=True))
    # On the baked node image (nodes.LocalNodes.bake, as `osception bake`): the bake's
    # script runs on a real node, and the nodes' setup skips what it installed.
    try:
        dc.up(release=RELEASE, nodes={"compute": computes, "network": networks}, bake=True)
        yield layout, computes, networks
    finally:  # also when `up` failed: its processes hold the devcloud's ports
        dc.down()


def _osception(layout: Layout, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OSCEPTION_HOME"] = str(layout.root.parent)
    exe = Path(sys.executable).parent / "osception"  # the console script of this venv
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env)


def test_smoke_passes_every_check_with_no_skip(local_cloud):
    layout, computes, networks = local_cloud
    r = _osception(layout, "devcloud", "smoke")
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if line[:4] in ("pass", "fail", "skip")]
    assert [line.split()[0] for line in lines] == ["pass"] * 8, r.stdout
    assert f"{computes} up" in r.stdout  # real libvirt/QEMU hypervisors, not the fake driver
    assert "answers" in lines[-1]  # the floating IP, from the outer network's side


def test_the_nodes_booted_the_baked_image_and_skipped_its_steps(local_cloud):
    """The baked layer was made by the bake user data on a real builder node (its
    console's steps all done), and each node's own setup skipped the install steps
    (the stamp matched) and still reached `done` (smoke passes above). The step times
    printed here are docs/performance.md's baked column."""
    from osception import config as config_mod
    from osception import progress

    layout, computes, networks = local_cloud
    local = nodes.LocalNodes(layout)
    cfg = nodes.node_config(config_mod.Config(release=RELEASE))
    layer = local.baked_layer(cfg)
    assert (layer / ".osception-complete").read_text().strip() == bake_id("node", cfg)
    assert (layer / BAKED_STAMP.lstrip("/")).read_text().strip() == bake_id("node", cfg)
    assert not (layer / NODE_ETC.lstrip("/")).exists()  # the builder's files, gone
    # kept off through the first boot's presets (its machine-id reset): started by the
    # nodes' own services pass only
    assert (layer / "etc/machine-id").read_text() == ""  # not a first boot: presets stay as baked
    assert "disable nova-compute.service" in (layer / "etc/systemd/system-preset/10-osception-bake.preset").read_text()
    for name, prog in local.progress().items():
        steps = {s.name: s for s in prog.steps}
        assert prog.state == "done", name
        for step in ("package-source", "install-ansible", "install-packages"):
            assert steps[step].message.startswith("skipped: baked image (node "), (name, step)
        print(f"{name} baked: " + ", ".join(f"{k} {v:.0f} s" for k, v in progress.timings(prog).items()))


def _console_until(conn, server, text: str) -> str:
    out = ""
    try:
        for _ in sdk_utils.iterate_timeout(GUEST_TIMEOUT, "", wait=3):
            out = conn.compute.get_server_console_output(server)["output"] or ""
            if text in out:
                return out
    except sdk_exc.ResourceTimeout:
        # What the guest said is what tells a slow path from a broken one.
        tail = "\n".join(out.splitlines()[-25:])
        raise AssertionError(f"{server.name}: no {text!r} on its console within "
                             f"{GUEST_TIMEOUT} s; its last lines:\n{tail}") from None


@pytest.fixture(scope="class")  # deleted before the module's last test stops the cloud
def guests(local_cloud):
    """Guest B on compute-0, then guest A on the last compute whose user data (a script,
    run by the guest's /init) fetches B's page: (conn, A, B)."""
    layout, computes, _ = local_cloud
    conn = openstack.connect(**cloud.connect_kwargs(secrets_mod.ensure(layout.root, "devcloud"),
                                                    cloud.ADMIN_CLOUD))
    net = conn.network.find_network("demo-net", ignore_missing=False)
    image = conn.image.find_image(guest.NAME, ignore_missing=False)
    flavor = conn.compute.find_flavor("small", ignore_missing=False)
    made = []

    def boot(name, host, **kwargs):
        server = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                            networks=[{"uuid": net.id}],
                                            availability_zone=f"nova:{host}", **kwargs)
        made.append(server)
        return conn.compute.wait_for_server(server, failures=["ERROR"], interval=2,
                                            wait=GUEST_TIMEOUT)

    try:
        b = boot("osception-b", "compute-0")
        b_ip = next(a["addr"] for a in b.addresses["demo-net"])
        _console_until(conn, b, guest.READY)
        script = ("#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do\n"
                  f"  wget -q -O - http://{b_ip}/ && exit 0\n  sleep 3\ndone\nexit 1\n")
        a = boot("osception-a", f"compute-{computes - 1}",
                 user_data=base64.b64encode(script.encode()).decode())
        yield conn, a, b
    finally:
        for server in made:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in made:
            conn.compute.wait_for_delete(server, wait=120)


class TestGuests:
    def test_metadata_is_served_to_a_guest(self, guests):
        """The guest reads its instance id and its user data through the metadata path
        (guest -> router or DHCP namespace -> metadata agent -> relay -> nova metadata API)."""
        conn, a, _ = guests
        out = _console_until(conn, a, "user data in /run/user_data")
        assert f"osception-guest: instance-id {a.id}" in out

    def test_a_guest_reaches_a_guest_on_another_compute_across_vxlan(self, guests, local_cloud):
        conn, a, b = guests
        _, computes, _ = local_cloud
        hosts = {s.name: conn.compute.get_server(s).hypervisor_hostname for s in (a, b)}
        if computes > 1:
            assert hosts["osception-a"] != hosts["osception-b"], hosts
        out = _console_until(conn, a, "user data exited")
        assert f"osception-guest osception-b {b.id}" in out  # B's page, over TCP
        assert "user data exited 0" in out


def _answers_ping(ip: str, within: float) -> float:
    """Seconds until IP answers a ping from the outer network's side."""
    start = time.monotonic()
    try:
        for _ in sdk_utils.iterate_timeout(within, "", wait=0.5):
            if subprocess.run([*nodes.PING, "-c", "1", "-W", "1", ip], capture_output=True).returncode == 0:
                return time.monotonic() - start
    except sdk_exc.ResourceTimeout:
        raise AssertionError(f"{ip} does not answer ping within {within} s") from None


def _last_action_errors(conn, server) -> str:
    """What Nova recorded of the server's last action's failed events (admin's view:
    their hosts and tracebacks), for an assertion's message."""
    action = max(conn.compute.server_actions(server), key=lambda a: a.start_time)
    action = conn.compute.get_server_action(action.request_id, server)
    return "\n".join(f"{e.event} on {e.host}: {e.result}\n{(e.traceback or '')[-1500:]}"
                     for e in action.events or () if e.result != "Success")


def test_migrations_between_the_computes(local_cloud):
    """As the computes are configured (migrations over SSH as nova, with the environment's
    own key; no shared storage): the demo member's guest, reached through a floating IP
    from the outer network, is live-migrated with its disk (block migration) to the other
    compute and back, then cold-migrated there and confirmed. After each move it is ACTIVE
    on the other compute and its floating IP answers; then again after a soft reboot and
    after a suspend and resume. The times printed are docs' figures."""
    layout, computes, _ = local_cloud
    if computes < 2:
        pytest.skip(f"one compute ({COUNTS}): nowhere to migrate to")
    sec = secrets_mod.ensure(layout.root, "devcloud")
    # The guest is the demo member's (its project's default group lets ping and SSH in,
    # as populate set it); moving it is the admin's.
    conn = openstack.connect(**cloud.connect_kwargs(sec, cloud.ADMIN_CLOUD))
    demo = openstack.connect(**cloud.connect_kwargs(sec, cloud.MEMBER_CLOUD))
    image = demo.image.find_image(guest.NAME, ignore_missing=False)
    flavor = demo.compute.find_flavor("small", ignore_missing=False)
    net = demo.network.find_network("demo-net", ignore_missing=False)
    public = demo.network.find_network("public", ignore_missing=False)
    server = demo.compute.create_server(name="osception-migrating", image_id=image.id,
                                        flavor_id=flavor.id, networks=[{"uuid": net.id}])
    fip = None
    try:
        demo.compute.wait_for_server(server, failures=["ERROR"], interval=2, wait=GUEST_TIMEOUT)
        server = conn.compute.get_server(server)  # the admin's view names its host
        port = next(demo.network.ports(device_id=server.id))
        fip = demo.network.create_ip(floating_network_id=public.id, port_id=port.id)
        ip = fip.floating_ip_address
        _answers_ping(ip, GUEST_TIMEOUT)

        # (kind, destination, the migration record's status once the guest is back to ACTIVE)
        here = server.compute_host
        there = next(f"compute-{i}" for i in range(computes) if f"compute-{i}" != here)
        for kind, to, done in (("live", there, "completed"), ("live", here, "completed"),
                               ("cold", there, "confirmed")):
            before = {m.id for m in conn.compute.migrations(server_id=server.id)}
            start = time.monotonic()
            if kind == "live":
                conn.compute.live_migrate_server(server, host=to, block_migration=True)
            else:
                conn.compute.migrate_server(server, host=to)
            # Until its migration record ends: "finished" is a cold migration's
            # VERIFY_RESIZE, to confirm; a failed one leaves the guest where it was.
            for _ in sdk_utils.iterate_timeout(GUEST_TIMEOUT, f"{kind} migration to {to}", wait=1):
                new = [m for m in conn.compute.migrations(server_id=server.id) if m.id not in before]
                if new and new[0].status in ("completed", "finished", "failed", "error", "cancelled"):
                    break
            took = time.monotonic() - start
            if new[0].status == "finished":
                conn.compute.wait_for_server(server, status="VERIFY_RESIZE", failures=["ERROR"], interval=1, wait=120)
                conn.compute.confirm_server_resize(server)
            for _ in sdk_utils.iterate_timeout(120, f"{server.id} ACTIVE after its {kind} migration", wait=1):
                now = conn.compute.get_server(server)
                if now.status in ("ACTIVE", "ERROR") and now.task_state is None:
                    break
            migration = next(m for m in conn.compute.migrations(server_id=server.id) if m.id == new[0].id)
            assert (now.status, now.compute_host, migration.status) == ("ACTIVE", to, done), \
                f"{kind} migration to {to}: {migration.status}\n{_last_action_errors(conn, server)}"
            print(f"\n{kind} migration to {to}: {took:.1f} s (ACTIVE after {time.monotonic() - start:.1f} s), "
                  f"floating IP answers {_answers_ping(ip, 60):.1f} s later")

        # Restarted in place, as Tempest's scenarios do: a soft reboot (the guest powers
        # off on the ACPI button, Nova starts the same domain) and a suspend and resume
        # (libvirt's managed save). Nova plugs no VIF again there: libvirt makes the tap
        # anew, which the userspace datapath's replugger (tasks/compute.yml) plugs again.
        steps = (("soft reboot", lambda: conn.compute.reboot_server(server, "SOFT"), None),
                 ("suspend", lambda: conn.compute.suspend_server(server), "SUSPENDED"),
                 ("resume", lambda: conn.compute.resume_server(server), None))
        for what, action, stop in steps:
            start = time.monotonic()
            action()
            if stop:
                conn.compute.wait_for_server(server, status=stop, failures=["ERROR"], interval=1, wait=120)
                continue
            for _ in sdk_utils.iterate_timeout(120, f"{server.id} ACTIVE after its {what}", wait=1):
                now = conn.compute.get_server(server)
                if now.status in ("ACTIVE", "ERROR") and now.task_state is None:
                    break
            assert now.status == "ACTIVE", f"{what}: {now.status}\n{_last_action_errors(conn, server)}"
            print(f"{what}: ACTIVE after {time.monotonic() - start:.1f} s, "
                  f"floating IP answers {_answers_ping(ip, 60):.1f} s later")
    finally:
        if fip is not None:
            conn.network.delete_ip(fip, ignore_missing=True)
        demo.compute.delete_server(server, ignore_missing=True)
        demo.compute.wait_for_delete(server, wait=120)


def _in_node(layout: Layout, node: str, *argv: str) -> str:
    pid = json.loads(layout.record(f"node-{node}").read_text())["pid"]
    return subprocess.run(["nsenter", f"--target={nodes._container_init(pid)}", "--all", *argv],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_a_changed_config_reaches_the_running_nodes_as_osception_apply_does(local_cloud, tmp_path):
    """`devcloud up -c` with a Nova patch and a nova.conf override on the running cloud:
    each compute gets the day-2 pass of `osception apply` (day2.run_on; nsenter where a
    real environment uses SSH): the patch in its installed nova, the override in its
    nova.conf, nova-compute restarted; the network nodes are not touched. Back to the
    first config: the pristine code again."""
    layout, computes, networks = local_cloud
    dc = Devcloud(layout, say=lambda m: print(f"devcloud: {m}", flush=True))
    compute_names = [f"compute-{i}" for i in range(computes)]
    network_names = [f"network-{i}" for i in range(networks)]
    version = "usr/lib/python3/dist-packages/nova/version.py"
    pristine = (layout.root / "nodes" / compute_names[0] / "root" / version).read_text()
    repo = tmp_path / "nova"
    (repo / "nova").mkdir(parents=True)
    (repo / "nova" / "version.py").write_text(pristine)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    (repo / "nova" / "version.py").write_text(pristine + "OSCEPTION_DAY2 = True\n")
    subprocess.run(git + ["commit", "-qam", "Mark nova patched"], check=True)
    patch = subprocess.run(git + ["format-patch", "-1", "-o", str(tmp_path)], check=True,
                           capture_output=True, text=True).stdout.strip()
    (tmp_path / "day2.yaml").write_text(  # the cloud's release (a config's default is another)
        f"release: \"{RELEASE}\"\npatches:\n  nova:\n    - file: {patch}\n"
        "overrides:\n  nova.conf:\n    DEFAULT:\n      osapi_compute_unique_server_name_scope: project\n")
    (tmp_path / "first.yaml").write_text(f"release: \"{RELEASE}\"\n")
    settings = dc.up()  # as it is
    before = settings.config
    pids = {n: _in_node(layout, n, "systemctl", "show", "-p", "MainPID", "--value", "nova-compute")
            for n in compute_names}
    agents = {n: _in_node(layout, n, "systemctl", "show", "-p", "MainPID", "--value",
                          "neutron-openvswitch-agent") for n in network_names}
    try:
        started = time.monotonic()
        dc.up(config_path=tmp_path / "day2.yaml")
        print(f"\nday-2 pass of {computes} computes (and the controller's restarts): "
              f"{time.monotonic() - started:.1f} s")
        for n in compute_names:
            root = layout.root / "nodes" / n / "root"
            assert (root / version).read_text().endswith("OSCEPTION_DAY2 = True\n"), n
            assert "osapi_compute_unique_server_name_scope = project" in (root / "etc/nova/nova.conf").read_text()
            assert _in_node(layout, n, "systemctl", "is-active", "nova-compute") == "active"
            assert _in_node(layout, n, "systemctl", "show", "-p", "MainPID", "--value",
                            "nova-compute") != pids[n], f"{n}: nova-compute did not restart"
        for n in network_names:  # nothing of theirs changed
            assert _in_node(layout, n, "systemctl", "show", "-p", "MainPID", "--value",
                            "neutron-openvswitch-agent") == agents[n], n
        dc.up(config_path=tmp_path / "first.yaml")
        for n in compute_names:
            assert (layout.root / "nodes" / n / "root" / version).read_text() == pristine, n
    finally:
        settings = Settings.load(layout)
        settings.config = before
        settings.save(layout)


def _running_again(conn, server, within: float):
    """The server ACTIVE, no task, its guest running (power state 1), within that time."""
    now = None
    try:
        for _ in sdk_utils.iterate_timeout(within, "", wait=2):
            now = conn.compute.get_server(server)
            if (now.status, now.task_state, now.power_state) == ("ACTIVE", None, 1):
                return now
    except sdk_exc.ResourceTimeout:
        raise AssertionError(f"{server.name} not running again within {within} s: status "
                             f"{now.status}, task {now.task_state}, power state {now.power_state}") from None


@pytest.fixture(scope="module")
def populated(local_cloud):
    """The cloud populated as `devcloud smoke` does it (the guest image, flavors, demo-net,
    public) also when the smoke test did not run before (a test selected alone)."""
    layout, _, _ = local_cloud
    conn = openstack.connect(**cloud.connect_kwargs(secrets_mod.ensure(layout.root, "devcloud"),
                                                    cloud.ADMIN_CLOUD))
    if conn.image.find_image(guest.NAME) is None:
        r = _osception(layout, "devcloud", "smoke")
        assert r.returncode == 0, r.stdout + r.stderr
    return local_cloud


def test_the_cloud_comes_back_after_a_reboot_of_each_node(populated):
    """With a user's guest running behind a floating IP, `osception devcloud restart`
    reboots its compute, then a network node, then the whole devcloud (the controller's
    processes, then every node), in turn, as VMs are rebooted: a real boot of each
    container, its services from their enabled units. After each: every agent and compute
    service of every node alive, the guest running again (resume_guests_state_on_host_boot)
    and its floating IP answering, and a new server booting and reading its metadata
    (DHCP, the router, the metadata path). The times printed are docs' figures."""
    layout, computes, networks = populated
    hosts = {f"compute-{i}" for i in range(computes)} | {f"network-{i}" for i in range(networks)}

    def connect(name: str):  # anew after each restart: the APIs' connections may have gone
        return openstack.connect(**cloud.connect_kwargs(secrets_mod.ensure(layout.root, "devcloud"), name))

    # The guests are the demo project's, as a user's (its security group lets pings in);
    # the admin sees hosts, agents and services.
    conn, user = connect(cloud.ADMIN_CLOUD), connect(cloud.MEMBER_CLOUD)
    image = user.image.find_image(guest.NAME, ignore_missing=False)
    flavor = user.compute.find_flavor("small", ignore_missing=False)
    net = user.network.find_network("demo-net", ignore_missing=False)
    public = user.network.find_network("public", ignore_missing=False)
    server = user.compute.create_server(name="osception-rebooted", image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": net.id}])
    fip = None
    try:
        server = user.compute.wait_for_server(server, failures=["ERROR"], interval=2, wait=GUEST_TIMEOUT)
        fixed = next(a["addr"] for a in server.addresses["demo-net"])
        # booted, its address by DHCP (as smoke waits for its login prompt)
        assert f"{guest.READY} {fixed}" in _console_until(conn, server, guest.READY)
        port = next(user.network.ports(device_id=server.id))
        fip = user.network.create_ip(floating_network_id=public.id, port_id=port.id)
        ip = fip.floating_ip_address
        _answers_ping(ip, GUEST_TIMEOUT)
        for node in (conn.compute.get_server(server).compute_host, f"network-{networks - 1}", None):
            start = time.monotonic()
            r = _osception(layout, "devcloud", "restart", *([node] if node else []))
            print(r.stdout)
            assert r.returncode == 0, r.stdout + r.stderr
            back = time.monotonic() - start
            conn, user = connect(cloud.ADMIN_CLOUD), connect(cloud.MEMBER_CLOUD)
            agents = list(conn.network.agents())
            assert {a.host for a in agents} == hosts, node
            assert [f"{a.host} {a.binary}" for a in agents if not a.is_alive] == [], node
            assert sorted(s.host for s in conn.compute.services(binary="nova-compute")
                          if s.host in hosts and s.state == "up") == sorted(h for h in hosts if h.startswith("compute-")), node
            if node and node.startswith("network-"):
                # Its routers' keepalived and friends were ended at its shutdown while its
                # network was up (osception-l3-leftovers, tasks/common.yml): SIGTERM, and
                # SIGKILL 10 s later to what hangs (neutron 26's state-change process can).
                said = _in_node(layout, node, "journalctl", "-b", "-1", "-o", "cat", "--no-pager",
                                "-u", "osception-l3-leftovers")
                print(said)
                assert "Stopped osception-l3-leftovers.service" in said, said
                assert "keepalived" not in said.partition("killed:")[2], said  # it ends on SIGTERM
            _running_again(conn, server, GUEST_TIMEOUT)
            running = time.monotonic() - start
            try:
                answers = _answers_ping(ip, GUEST_TIMEOUT) + running
            except AssertionError as e:  # its console tells an address never taken from the rest
                out = conn.compute.get_server_console_output(server)["output"] or ""
                raise AssertionError(f"after restarting {node or 'the whole devcloud'}: {e}; the guest's "
                                     "console:\n" + "\n".join(out.splitlines()[-15:])) from None
            new = user.compute.create_server(name="osception-after-reboot", image_id=image.id,
                                             flavor_id=flavor.id, networks=[{"uuid": net.id}])
            try:
                new = user.compute.wait_for_server(new, failures=["ERROR"], interval=2, wait=GUEST_TIMEOUT)
                active = time.monotonic() - start
                _console_until(user, new, f"osception-guest: instance-id {new.id}")
                print(f"\nrestart {node or 'of the whole devcloud'}: agents and computes report after "
                      f"{back:.0f} s, the guest runs after {running:.0f} s, its floating IP answers after "
                      f"{answers:.0f} s; a new server ACTIVE after {active:.0f} s, "
                      f"read its metadata after {time.monotonic() - start:.0f} s")
            finally:
                user.compute.delete_server(new, ignore_missing=True)
                user.compute.wait_for_delete(new, wait=120)
    finally:
        if fip is not None:
            user.network.delete_ip(fip, ignore_missing=True)
        user.compute.delete_server(server, ignore_missing=True)
        user.compute.wait_for_delete(server, wait=120)


def test_down_leaves_no_namespace_mount_or_process(local_cloud):
    layout, _, _ = local_cloud
    records = {p.stem: json.loads(p.read_text())["pid"] for p in (layout.root / "run").glob("*.json")}
    Devcloud(layout).down()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in netns.splitlines() if line.startswith("osc-")], netns
    mounts = Path("/proc/mounts").read_text()
    assert str(layout.root / "nodes") not in mounts
    alive = [name for name, pid in records.items() if _running(pid)]
    assert not alive, alive
    nspawn = glob.glob("/proc/[0-9]*/cmdline")
    left = [p for p in nspawn if b"--machine=osc-" in _read(p)]
    assert not left
    assert nodes.OUTER_NETNS not in netns


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def _running(pid: int) -> bool:
    """A live process (not a zombie its reaper has yet to collect)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
