"""A value is never code (issue 24, 1): hostile values in every string of the config and
of resources.json that reaches a node, rendered past the config's own validation (the
rendering layer alone must hold), then given to what really consumes each file: Ansible
(vars.yml), cloud-init's parser (user data), oslo.config (INI), a YAML parser and
kubernetes-validate (manifests), bash and shellcheck (scripts). Each arrives as data."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from osception import config, render, secrets, topology
from osception.render.layout import NODE_ETC, NODE_PATCHES
from osception.render.node import load_ansible_vars
from osception.render.patches import patch_file_name

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
SERVICES_PYTHON = ROOT / ".venv-openstack-2026.2" / "bin" / "python"


def hostile(marker: Path, tag: str) -> str:
    """A Jinja expression that would make `marker` exist, command substitutions, quotes
    of every kind and an oslo.config substitution (of the option holding the RabbitMQ
    password): a value that must arrive exactly as it is, and run nothing."""
    return (f"{{{{ lookup('pipe', 'touch {marker}-{tag}') }}}}{{% set x = 1 %}}{{# c #}}"
            f"$(touch {marker}-{tag}-sh)`touch {marker}-{tag}-bt`'\";x=1 #$transport_url")


@pytest.fixture
def hostile_plan(tmp_path):
    """A plan of a pypi config whose pip_index_url, apt_proxy, domain, a patch file's
    name and compute-0's addresses (resources.json) are hostile."""
    marker = tmp_path / "ran"
    patch_dir = tmp_path / "patches"
    patch_dir.mkdir()
    # a patch file name with Jinja, a newline and the write_files entry it would add
    patch = patch_dir / ("fix{{ lookup('pipe','id') }}\n  - path: evil\n    content: x.patch")
    patch.write_text("diff --git a/nova/x.py b/nova/x.py\n--- a/nova/x.py\n+++ b/nova/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    cfg = config.Config(node_source="pypi")
    values = {
        "pip_index_url": "http://10.0.0.5:3141/simple/" + hostile(marker, "pip"),
        "apt_proxy": "http://10.0.0.5:3142/" + hostile(marker, "apt"),
        # short: the certificate's CN (*.domain) holds 64 characters
        "domain": "d{{7*7}}$(id)`id`'\";#.example.com",
    }
    # past the config's checks: a Patch built without them
    patches = {"nova": [config.Patch.model_construct(file=patch, review=None)]}
    cfg = cfg.model_copy(update={**values, "patches": patches})
    addresses = topology.placeholder_addresses(cfg)
    addresses["compute-0"] = dataclasses.replace(
        addresses["compute-0"], ip="10.0.0.7" + hostile(marker, "ip"), mac="fa:16:3e:00:00:01" + hostile(marker, "mac"),
        public_mac="fa:16:3e:00:00:02" + hostile(marker, "pmac"))
    plan = render.build(cfg, secrets.throwaway(cfg.name), addresses)
    return plan, values, addresses["compute-0"], marker, patch


def _write_files(user_data: str) -> dict[str, dict]:
    """The user data's write_files as Debian's cloud-init reads them (its own YAML loader)."""
    r = subprocess.run(["/usr/bin/python3", "-c", "import json, sys\nfrom cloudinit import util\n"
                        "print(json.dumps(util.load_yaml(sys.stdin.read())))"],
                       input=user_data, capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout)
    return doc, {f["path"]: f for f in doc["write_files"]}


def _ran(marker: Path) -> list[str]:
    return sorted(p.name for p in marker.parent.iterdir() if p.name.startswith(marker.name))


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: every variable, templated as a task's argument
      copy:
        content: "{{ {'pip_env': pip_env, 'patches': patches, 'node_ip': node_ip, 'node_mac': node_mac,
                      'public_mac': public_mac, 'controller_ip': controller_ip} | to_json }}"
        dest: "{{ out }}/vars.json"
    - name: a value through the template module
      template:
        src: "{{ out }}/value.j2"
        dest: "{{ out }}/value.txt"
    - debug:
        var: pip_env
"""


def _ansible(tmp_path: Path, vars_yml: str) -> subprocess.CompletedProcess:
    (tmp_path / "vars.yml").write_text(vars_yml)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "value.j2").write_text("{{ pip_env.PIP_INDEX_URL }}\n")
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": str(ROOT / ".venv" / "bin" / "python")}
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path}/vars.yml",
                           "-e", f"out={tmp_path}", str(tmp_path / "play.yml")],
                          env=env, capture_output=True, text=True, timeout=300)


def test_ansible_takes_every_node_variable_as_data(hostile_plan, tmp_path):
    """ansible-playbook with the node's vars.yml: every value, templated into a task and
    through the template module, arrives as it is; no lookup, no command ran. The
    control: the same variables dumped as plain YAML (what vars.yml was) run them."""
    plan, values, address, marker, _ = hostile_plan
    doc, files = _write_files(plan.files["compute-0/user-data"])
    vars_yml = files[f"{NODE_ETC}/vars.yml"]["content"]
    variables = load_ansible_vars(vars_yml)
    assert variables["pip_env"]["PIP_INDEX_URL"] == values["pip_index_url"]
    assert variables["node_ip"] == address.ip and variables["public_mac"] == address.public_mac

    r = _ansible(tmp_path, vars_yml)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _ran(marker) == []
    got = json.loads((tmp_path / "vars.json").read_text())
    assert got == {k: variables[k] for k in got}
    assert (tmp_path / "value.txt").read_text() == values["pip_index_url"] + "\n"

    control = tmp_path / "control"
    control.mkdir()
    _ansible(control, yaml.safe_dump(variables, sort_keys=False))
    assert "ran-pip" in _ran(marker)  # the exploit of the issue, when the values are not marked


def test_cloud_init_reads_the_values_and_the_files_as_rendered(hostile_plan):
    """Debian's cloud-init parses the node's user data and its schema accepts it: the
    hostile names are one value each (fqdn, apt proxy), and write_files holds exactly the
    files of a plain plan, the patch under its sanitized name (no `evil`)."""
    plan, values, address, _, patch = hostile_plan
    doc, files = _write_files(plan.files["compute-0/user-data"])
    link = files["/etc/systemd/network/10-osception-public.link"]["content"]
    assert f"MACAddress={address.public_mac}\n" in link
    assert doc["fqdn"] == f"compute-0.{values['domain']}"
    assert doc["apt"]["proxy"] == values["apt_proxy"]
    name = patch_file_name(1, patch.name)
    assert re.fullmatch(r"[-._a-zA-Z0-9]+", name)
    plain_cfg = config.Config(node_source="pypi")
    addresses = topology.placeholder_addresses(plain_cfg)
    addresses["compute-0"] = dataclasses.replace(addresses["compute-0"], public_mac="fa:16:3e:00:00:02")
    plain = render.build(plain_cfg, secrets.throwaway("osception"), addresses)
    _, plain_files = _write_files(plain.files["compute-0/user-data"])
    assert set(files) == set(plain_files) | {f"{NODE_PATCHES}/nova/{name}"}
    assert set(doc) == set(yaml.safe_load(plain.files["compute-0/user-data"])) | {"apt"}


def test_cloud_init_schema_accepts_the_hostile_user_data(hostile_plan, tmp_path):
    plan, *_ = hostile_plan
    path = tmp_path / "user-data"
    path.write_text(plan.files["compute-0/user-data"])
    rc, out = cloud_init_schema_of(path)
    assert rc == 0, out


def cloud_init_schema_of(path: Path):
    from tests.test_cloudinit_and_shell import cloud_init_schema
    return cloud_init_schema([path])[str(path)]


OSLO_PARSE = """
import json, sys
from oslo_config import cfg
sections = {}
cfg.ConfigParser(sys.argv[1], sections).parse()
print(json.dumps(sections))
"""


def _oslo(path: Path) -> dict:
    r = subprocess.run([str(SERVICES_PYTHON), "-c", OSLO_PARSE, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


OSLO_VALUES = """
import json, sys
from oslo_config import cfg
conf = cfg.ConfigOpts()
conf.register_opt(cfg.StrOpt("my_ip"))
conf.register_opt(cfg.StrOpt("transport_url", secret=True))
conf.register_opt(cfg.StrOpt("auth_url"), group="placement")
conf(args=[], default_config_files=[sys.argv[1]])
print(json.dumps([conf.my_ip, conf.placement.auth_url]))
"""


def test_oslo_config_gives_the_services_each_value_as_it_is(hostile_plan, tmp_path):
    """The options as a service reads them (ConfigOpts, its `$name` substitution): the
    hostile address and domain, `$(...)` and all, come back unchanged."""
    plan, values, address, _, _ = hostile_plan
    path = tmp_path / "nova.conf"
    path.write_text(plan.files["compute-0/config/nova.conf"])
    r = subprocess.run([str(SERVICES_PYTHON), "-c", OSLO_VALUES, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    my_ip, auth_url = json.loads(r.stdout)
    assert my_ip == address.ip and "$(" in my_ip and my_ip.endswith("$transport_url")
    assert auth_url.startswith(f"https://keystone.{values['domain']}")


def test_oslo_config_reads_each_value_as_one_option(hostile_plan, tmp_path):
    """oslo.config's own parser on the compute's nova.conf: the hostile address and
    domain are each the one value of their option; no option is added."""
    plan, values, address, _, _ = hostile_plan
    path = tmp_path / "nova.conf"
    path.write_text(plan.files["compute-0/config/nova.conf"])
    sections = _oslo(path)
    # the file's text: `$` doubled, oslo.config's escape (the services read it back as one)
    assert sections["DEFAULT"]["my_ip"] == [address.ip.replace("$", "$$")]
    assert sections["vnc"]["server_listen"] == [address.ip.replace("$", "$$")]
    assert sections["placement"]["auth_url"][0].startswith(f"https://keystone.{values['domain']}".replace("$", "$$"))


@pytest.mark.parametrize("field", ["ip", "public_mac"])  # mac: only in vars.yml, a quoted string
@pytest.mark.parametrize("brk", ["\n", "\r", "\x85", "\u2028"])
def test_a_line_break_in_an_address_is_refused_where_it_is_rendered(field, brk):
    """A resources.json address with a line break and an INI option or a YAML key after
    it (past resources.json's own validation): the render stops in one line naming the
    template, never writing the value. The control: the same address, one line, renders."""
    cfg = config.Config()
    addresses = topology.placeholder_addresses(cfg)
    value = (getattr(addresses["compute-0"], field) or "fa:16:3e:00:00:02") + brk + "debug = true"
    addresses["compute-0"] = dataclasses.replace(addresses["compute-0"], **{field: value})
    with pytest.raises(render.PlanError) as e:
        render.build(cfg, secrets.throwaway(cfg.name), addresses)
    message = str(e.value)
    assert len(message.splitlines()) == 1 and "line break" in message and "debug" not in message
    assert re.match(r"^[a-z0-9-]+/[-\w.]+\.j2: ", message), message


def test_a_line_break_in_the_index_url_is_refused():
    cfg = config.Config(node_source="pypi").model_copy(
        update={"pip_index_url": "http://10.0.0.5:3141/simple/\n    - path: /etc/cron.d/evil"})
    # vars.yml quotes it (one string); the setup script's pip environment line would not
    plan = render.build(cfg, secrets.throwaway(cfg.name))
    _, files = _write_files(plan.files["compute-0/user-data"])
    assert not any("cron" in p for p in files)
    assert load_ansible_vars(files[f"{NODE_ETC}/vars.yml"]["content"])["pip_env"][
        "PIP_INDEX_URL"] == cfg.pip_index_url


def test_manifests_take_the_domain_as_data(hostile_plan, tmp_path):
    """The Ingresses' hosts are the hostile domain's names, one string each (YAML); the
    documents pass kubernetes-validate's schema."""
    plan, values, *_ = hostile_plan
    hosts = []
    for rel, text in plan.files.items():
        if rel.startswith("k8s-0/manifests/"):
            for doc in yaml.safe_load_all(text):
                if doc and doc["kind"] == "Ingress":
                    hosts += [r["host"] for r in doc["spec"]["rules"]]
                    hosts += [h for t in doc["spec"]["tls"] for h in t["hosts"]]
    assert hosts and all(h.endswith("." + values["domain"]) for h in hosts)
    exe = ROOT / ".venv" / "bin" / "kubernetes-validate"
    ingress = tmp_path / "ingress.yaml"
    ingress.write_text(plan.files["k8s-0/manifests/20-keystone.yaml"])
    r = subprocess.run([str(exe), "--strict", str(ingress)], capture_output=True, text=True)
    # the schema checks types and keys (a host name's own pattern is the API server's)
    assert r.returncode == 0 and "passed for resource ingress/keystone" in r.stdout + r.stderr, r.stdout + r.stderr


def _setup(plan, node: str) -> str:
    doc, files = _write_files(plan.files[f"{node}/user-data"])
    return next(f["content"] for p, f in files.items() if p.endswith("/setup"))


def test_shell_takes_the_values_as_words(hostile_plan, tmp_path):
    """The node's and the controller's setup scripts with the hostile domain: bash -n and
    shellcheck pass; their functions that use it, run with curl and timeout stubbed, get
    each value as one argument, and nothing ran."""
    plan, values, _, marker, _ = hostile_plan
    controller = yaml.safe_load(plan.files["k8s-0/user-data"])
    controller_setup = next(f["content"] for f in controller["write_files"] if f["path"].endswith("-setup"))
    for name, script, function in [("node", _setup(plan, "compute-0"), "controller_up"),
                                   ("controller", controller_setup, "keystone_answers")]:
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", "-S", "warning", "-s", "bash", str(path)], capture_output=True, text=True)
            assert r.returncode == 0, r.stdout
        code = re.search(rf"^{function}\(\) \{{\n.*?^\}}\n", script, re.M | re.S).group(0)
        args = tmp_path / f"{name}.args"
        run = (f"{code}\ncurl() {{ printf '%s\\n' \"$@\" >>{args}; }}\n"
               f"timeout() {{ shift; printf '%s\\n' \"$@\" >>{args}; }}\n{function}\n")
        subprocess.run(["bash", "-c", run], capture_output=True, text=True, cwd=tmp_path)
        got = args.read_text().splitlines()
        assert any(a == f"https://keystone.{values['domain']}/v3" for a in got), got
    assert _ran(marker) == []


@pytest.mark.parametrize("where", ["value", "key", "section"])
def test_an_override_with_a_line_break_is_refused(where):
    """`overrides:` past the config's validation: a line break in a section, key or value
    would add an option to the merged INI file; the render stops in one line."""
    parts = {"section": "DEFAULT", "key": "debug", "value": "true"}
    parts[where] += "\nrootwrap_config = /tmp/evil.conf"
    overrides = {"nova.conf": {parts["section"]: {parts["key"]: parts["value"]}}}
    cfg = config.Config().model_copy(update={"overrides": overrides})
    with pytest.raises(render.PlanError) as e:
        render.build(cfg, secrets.throwaway(cfg.name))
    message = str(e.value)
    assert message.startswith("overrides.nova.conf.") and len(message.splitlines()) == 1, message


# Glance's own options (glance.async_.flows._internal_plugins: allowed_hosts is a bounded
# ListOpt of HostAddress items), read from the rendered file.
OSLO_LIST = """
import json, sys
from oslo_config import cfg
from glance.async_.flows import _internal_plugins
conf = cfg.ConfigOpts()
conf.register_opts(_internal_plugins.import_filtering_opts, group="import_filtering_opts")
conf(args=[], default_config_files=[sys.argv[1]])
print(json.dumps(conf.import_filtering_opts.allowed_hosts))
"""


@pytest.mark.parametrize("smuggled", ["images.example.com,169.254.169.254", "a.example.com]", "a.example.com 10.0.0.1",
                                      "'a.example.com'"])
def test_an_import_host_is_one_item_of_glances_list(smuggled, tmp_path):
    """overcloud.import_hosts past the config's checks: a host holding a comma would be two
    hosts of Glance's allowed_hosts (the metadata address among them); the render stops
    in one line. The control: plain hosts, read by oslo.config's ListOpt, are the list."""
    base = config.Config()
    overcloud = base.overcloud.model_copy(update={"import_hosts": ("images.example.com", smuggled)})
    with pytest.raises(render.PlanError) as e:
        render.build(base.model_copy(update={"overcloud": overcloud}), secrets.throwaway(base.name))
    assert str(e.value).startswith("glance/glance-api.conf.j2: a list item") and "169.254" not in str(e.value)

    overcloud = base.overcloud.model_copy(update={"import_hosts": ("images.example.com", "cdn.example.org")})
    plan = render.build(base.model_copy(update={"overcloud": overcloud}), secrets.throwaway(base.name))
    path = tmp_path / "glance-api.conf"
    path.write_text(plan.files["k8s-0/config/glance-api.conf"])
    r = subprocess.run([str(SERVICES_PYTHON), "-c", OSLO_LIST, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["cdn.example.org", "images.example.com"]
