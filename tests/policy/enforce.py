"""Run OpenStack's own policy engines (oslo.policy with each project's registered
defaults, Neutron's owner/field checks included) on requests read as JSON from
stdin: [[project, rule, target, roles], ...]. Prints one JSON line per request:
[project, rule, roles, allowed]. Runs in a services venv (.venv-openstack-<release>)."""

import json, sys
from oslo_config import cfg
from oslo_policy import policy

def enforcer(project):
    conf = cfg.ConfigOpts()
    conf([], project=project)
    e = policy.Enforcer(conf)
    if project == "keystone":
        from keystone.common import policies
    elif project == "nova":
        from nova import policies
    elif project == "placement":
        from placement import policies
    elif project == "neutron":
        import neutron.policy  # noqa: the project's own checks (owner, field)
        from neutron.conf import policies
    e.register_defaults(policies.list_rules())
    return e

for project, rule, target, roles in json.load(sys.stdin):
    e = enforcer(project)
    if rule not in e.registered_rules:  # else oslo.policy would fall back to its default rule
        sys.exit(f"{project} has no policy rule {rule!r}")
    creds = {"roles": roles, "project_id": "service-project", "user_id": "service-user"}
    print(json.dumps([project, rule, roles, e.enforce(rule, target, creds)]))
