"""Register the services in Keystone: users, roles, catalog entries, endpoints.

Runs after `keystone-manage bootstrap` (which made the admin, the roles admin,
member and reader, and the identity endpoints). Idempotent: it creates what is
missing and corrects what differs, so it can run on every deploy.

    service_accounts.py CATALOG.json

CATALOG.json: {"region": "RegionOne", "services": [{"name", "type", "public", "internal"}],
               "users": {"glance": ["service"], ...}, "managed_roles": ["admin", "service"]}
A user gets exactly its roles of the managed ones in project "service": one it has
and should not (e.g. "admin" from an older deployment) is revoked.
Env: OS_AUTH_URL, OS_PASSWORD (admin), and OSCEPTION_PASSWORD_<USER> per service user.
Used by the controller's Job (Kolla image) and by the devcloud (its own venv).
"""

import json
import os
import sys

import openstack

SERVICE_PROJECT = "service"


def ensure(finder, creator, name, **attrs):
    found = finder(name)
    return found if found is not None else creator(name=name, **attrs)


def can_login(conn, name: str, password: str) -> bool:
    try:
        openstack.connect(auth_url=conn.auth["auth_url"], username=name, password=password,
                          project_name=SERVICE_PROJECT, user_domain_id="default",
                          project_domain_id="default").authorize()
        return True
    except openstack.exceptions.SDKException:
        return False


def main(path: str) -> None:
    with open(path) as f:
        catalog = json.load(f)
    region = catalog["region"]
    conn = openstack.connect(
        auth_url=os.environ["OS_AUTH_URL"],
        username="admin",
        password=os.environ["OS_PASSWORD"],
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
        region_name=region,
        # It runs inside the cluster: the Kubernetes Services (the catalog's internal
        # interface), never Traefik's public names, which a pod neither resolves to the
        # controller nor verifies (the environment's CA is not in the image).
        interface="internal",
    )
    ident = conn.identity

    project = ensure(ident.find_project, ident.create_project, SERVICE_PROJECT,
                     domain_id="default", description="OpenStack service users")
    roles = {r: ensure(ident.find_role, ident.create_role, r) for r in catalog["managed_roles"]}

    for name, wanted in catalog["users"].items():
        password = os.environ[f"OSCEPTION_PASSWORD_{name.upper()}"]
        user = ident.find_user(name, domain_id="default")
        if user is None:
            user = ident.create_user(name=name, password=password, domain_id="default")
            print(f"created user {name}")
        elif not can_login(conn, name, password):
            # The environment's secret is the truth: a re-deploy converges to it.
            ident.update_user(user, password=password)
            print(f"reset the password of {name}")
        for role_name, role in roles.items():
            has = ident.validate_user_has_project_role(project, user, role)
            if role_name in wanted and not has:
                ident.assign_project_role_to_user(project, user, role)
                print(f"gave {name} the role {role_name}")
            elif role_name not in wanted and has:
                ident.unassign_project_role_from_user(project, user, role)
                print(f"took the role {role_name} from {name}")

    for svc in catalog["services"]:
        service = next(iter(ident.services(name=svc["name"], type=svc["type"])), None)
        if service is None:
            service = ident.create_service(name=svc["name"], type=svc["type"], is_enabled=True)
            print(f"created service {svc['name']} ({svc['type']})")
        wanted = {"public": svc["public"], "internal": svc["internal"], "admin": svc["internal"]}
        for interface, url in wanted.items():
            existing = list(ident.endpoints(service_id=service.id, interface=interface,
                                            region_id=region))
            if not existing:
                ident.create_endpoint(service_id=service.id, interface=interface, url=url,
                                      region_id=region)
                print(f"created {interface} endpoint {url}")
            elif existing[0].url != url:
                ident.update_endpoint(existing[0], url=url)
                print(f"updated {interface} endpoint {url}")
    print("service accounts and catalog ready")


if __name__ == "__main__":
    main(sys.argv[1])
