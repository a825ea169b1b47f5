"""Service users hold the least roles they need: each call a service makes with its
own user is put to the release's real policy engines (tests/policy/enforce.py) with
the roles services.SERVICE_USER_ROLES gives it, and again without each of them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from osception import services

REPO = Path(__file__).resolve().parent.parent
ENFORCE = REPO / "tests" / "policy" / "enforce.py"

# A project's port, subnet and server, as another project's.
PORT = {"project_id": "p", "tenant_id": "p", "network:tenant_id": "p", "network:project_id": "p"}
TOKEN = {"token": {"user_id": "a-user"}}

# What each service does with its own Keystone user (not with its users' tokens),
# as [project, policy rule, target]; skyline's system user is not in the table (its
# admin role is for the console's cross-project admin pages, not one API call).
NEEDS: dict[str, list[tuple[str, str, dict]]] = {
    # keystonemiddleware validating the tokens of the service's users.
    "glance": [("keystone", "identity:validate_token", TOKEN)],
    "placement": [("keystone", "identity:validate_token", TOKEN)],
    "neutron": [
        ("keystone", "identity:validate_token", TOKEN),
        # neutron/notifiers/nova.py: network-vif-plugged and friends.
        ("nova", "os_compute_api:os-server-external-events:create", {"project_id": "p"}),
    ],
    "nova": [
        ("keystone", "identity:validate_token", TOKEN),
        # nova/network/neutron.py, the admin client: bind a server's ports ...
        ("neutron", "update_port:binding:host_id", PORT),
        ("neutron", "update_port:binding:profile", PORT),
        ("neutron", "create_port:binding:profile", PORT),
        ("neutron", "get_port:binding:vif_details", PORT),
        # ... read their QoS resource request (create_resource_requests) ...
        ("neutron", "get_port:resource_request", PORT),
        # ... and a server's network info (_build_network_info_model).
        ("neutron", "get_subnet", PORT | {"shared": False}),
        # nova/scheduler/client/report.py: resource providers and allocations.
        ("placement", "placement:resource_providers:create", {"project_id": "p"}),
        ("placement", "placement:allocations:update", {"project_id": "p"}),
        ("placement", "placement:allocation_candidates:list", {"project_id": "p"}),
    ],
}


@pytest.fixture(scope="module")
def enforce(services_venv):
    def run(requests: list) -> list[bool]:
        out = subprocess.run([str(services_venv / "bin" / "python"), str(ENFORCE)], input=json.dumps(requests),
                             capture_output=True, text=True, check=True, timeout=300).stdout
        return [json.loads(line)[3] for line in out.splitlines()]
    return run


def test_every_service_user_may_make_its_calls_with_its_roles(enforce):
    requests = [[p, rule, target, list(services.SERVICE_USER_ROLES[user])]
                for user, needs in NEEDS.items() for p, rule, target in needs]
    denied = [r[:2] + [r[3]] for r, ok in zip(requests, enforce(requests)) if not ok]
    assert denied == []


def test_each_role_of_a_service_user_is_needed(enforce):
    """Without any one of its roles, some call of the service's is refused."""
    cases, requests = [], []
    for user, needs in NEEDS.items():
        roles = services.SERVICE_USER_ROLES[user]
        for dropped in roles:
            cases.append((user, dropped, len(needs)))
            requests += [[p, rule, target, [r for r in roles if r != dropped]] for p, rule, target in needs]
    allowed = iter(enforce(requests))
    unneeded = [(user, dropped) for user, dropped, n in cases if all([next(allowed) for _ in range(n)])]
    assert unneeded == []


def test_no_service_user_but_nova_and_skyline_is_admin():
    admins = {u for u, roles in services.SERVICE_USER_ROLES.items() if "admin" in roles}
    assert admins == {"nova", "skyline"}
    assert all("service" in roles for u, roles in services.SERVICE_USER_ROLES.items() if u != "skyline")
