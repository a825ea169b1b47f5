"""Service users hold the least roles they need: each call a service makes with its
own user is put to the release's real policy engines (tests/policy/enforce.py) with
the roles services.SERVICE_USER_ROLES gives it, and again without each of them."""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

import pytest

from osception import config, endpoints, releases, secrets, services
from osception.render.conf import service_config

REPO = Path(__file__).resolve().parent.parent
ENFORCE = REPO / "tests" / "policy" / "enforce.py"

# A project's port, subnet and server, as another project's.
PORT = {"project_id": "p", "tenant_id": "p", "network:tenant_id": "p", "network:project_id": "p"}
TOKEN = {"token": {"user_id": "a-user"}}

# What each service does with a Keystone user of its own config (not with its users'
# tokens), by the config file and section that names the user: [project, rule, target].
# The user is read from the rendered file itself, so the table follows the templates
# (kolla-ansible's and DevStack's way: nova's [neutron] logs in as neutron, etc.).
NEEDS: dict[tuple[str, str], list[tuple[str, str, dict]]] = {
    # keystonemiddleware validating the tokens of the service's users.
    **{(f, "keystone_authtoken"): [("keystone", "identity:validate_token", TOKEN)]
       for f in ("glance-api.conf", "placement.conf", "neutron.conf", "nova.conf")},
    # nova/network/neutron.py, the admin client: bind a server's ports ...
    ("nova.conf", "neutron"): [
        ("neutron", "update_port:binding:host_id", PORT),
        ("neutron", "update_port:binding:profile", PORT),
        ("neutron", "create_port:binding:profile", PORT),
        ("neutron", "get_port:binding:vif_details", PORT),
        # ... read their QoS resource request (create_resource_requests: without it such
        # ports would be scheduled as if they asked for nothing) ...
        ("neutron", "get_port:resource_request", PORT),
        # ... and a server's network info (_build_network_info_model).
        ("neutron", "get_subnet", PORT | {"shared": False}),
    ],
    # nova/scheduler/client/report.py: resource providers and allocations.
    ("nova.conf", "placement"): [
        ("placement", "placement:resource_providers:create", {"project_id": "p"}),
        ("placement", "placement:allocations:update", {"project_id": "p"}),
        ("placement", "placement:allocation_candidates:list", {"project_id": "p"}),
    ],
    # neutron/notifiers/nova.py: network-vif-plugged and friends.
    ("neutron.conf", "nova"): [
        ("nova", "os_compute_api:os-server-external-events:create", {"project_id": "p"}),
    ],
}


@pytest.fixture(scope="module")
def calls_by_user(release, state_home) -> dict[str, list[tuple[str, str, dict]]]:
    """{service user: the calls made with it}, the user read from the rendered files."""
    cfg = config.Config(release=release)
    sec = secrets.ensure(state_home / cfg.name, cfg.name)
    conf = service_config(cfg, releases.get(cfg.release), sec, endpoints.controller("203.0.113.10.sslip.io", "203.0.113.10"))
    out: dict[str, list] = {}
    for (name, section), calls in NEEDS.items():
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(conf[name])
        out.setdefault(parser.get(section, "username"), []).extend(calls)
    return out


def _enforce(venv: Path, requests: list) -> list[bool]:
    out = subprocess.run([str(venv / "bin" / "python"), str(ENFORCE)], input=json.dumps(requests),
                         capture_output=True, text=True, check=True, timeout=300).stdout
    return [json.loads(line)[3] for line in out.splitlines()]


def test_every_service_user_may_make_its_calls_with_its_roles(release_venv, calls_by_user):
    requests = [[p, rule, target, list(services.SERVICE_USER_ROLES[user])]
                for user, needs in calls_by_user.items() for p, rule, target in needs]
    denied = [r[:2] + [r[3]] for r, ok in zip(requests, _enforce(release_venv, requests)) if not ok]
    assert denied == []


# Roles a release's policies need and another's do not: (user, role) -> the releases that
# need it. The role stays for all: one set of users for every release of the table.
NEEDED_IN_SOME_RELEASES = {
    # Nova's external events admit the service role from 2025.2 on.
    ("nova", "admin"): ("2024.1", "2025.1"),
}
# Roles needed by a check that is not a policy rule.
NEEDED_OUTSIDE_POLICY = {
    # The service tokens Nova sends ([service_user]): keystonemiddleware accepts them
    # only with a role of its service_token_roles (default: service), as the rendered
    # service_token_roles_required = true asks.
    ("nova", "service"),
}


def test_each_role_of_a_service_user_is_needed(release, release_venv, calls_by_user):
    """Without any one of its roles, some call the service makes with it is refused."""
    cases, requests = [], []
    for user, needs in calls_by_user.items():
        roles = services.SERVICE_USER_ROLES[user]
        for dropped in roles:
            if ((user, dropped) in NEEDED_OUTSIDE_POLICY
                    or release not in NEEDED_IN_SOME_RELEASES.get((user, dropped), (release,))):
                continue
            cases.append((user, dropped, len(needs)))
            requests += [[p, rule, target, [r for r in roles if r != dropped]] for p, rule, target in needs]
    allowed = iter(_enforce(release_venv, requests))
    unneeded = [(user, dropped) for user, dropped, n in cases if all([next(allowed) for _ in range(n)])]
    assert unneeded == []


def test_no_service_user_but_nova_neutron_and_skyline_is_admin():
    admins = {u for u, roles in services.SERVICE_USER_ROLES.items() if "admin" in roles}
    assert admins == {"nova", "neutron", "skyline"}
    assert all("service" in roles for u, roles in services.SERVICE_USER_ROLES.items() if u != "skyline")
