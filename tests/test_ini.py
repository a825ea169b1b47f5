"""ini.py: the user's overrides merged into rendered INI text, and secret values split
out to a drop-in, keeping the templates' comments and order."""

from __future__ import annotations

import configparser

from osception import ini

TEMPLATE = """\
# nova.conf, rendered
[DEFAULT]
debug = false
# the bus
transport_url = rabbit://nova:s3cr3t-rabbit@rabbitmq:5672/

[database]
connection = mysql+pymysql://nova:s3cr3t-db@mariadb/nova
max_retries = -1

[glance]
debug = false
"""


def _values(*texts: str) -> dict[str, dict[str, str]]:
    """What oslo.config would read from these files together (later files win)."""
    cp = configparser.ConfigParser(interpolation=None, default_section="\0none")
    for text in texts:
        cp.read_string(text)
    return {s: dict(cp[s]) for s in cp.sections()}


def test_merge_replaces_the_key_of_its_own_section_only_and_keeps_the_rest():
    out = ini.merge(TEMPLATE, {"glance": {"debug": True}, "database": {"max_retries": 10}})
    assert out == (TEMPLATE.replace("[glance]\ndebug = false", "[glance]\ndebug = true")
                   .replace("max_retries = -1", "max_retries = 10"))


def test_merge_adds_a_key_at_the_end_of_its_section_and_a_section_at_the_end():
    out = ini.merge(TEMPLATE, {"database": {"pool_timeout": 30}, "oslo_limit": {"endpoint_id": "x"}})
    assert "max_retries = -1\npool_timeout = 30\n\n[glance]" in out  # before the blank line
    assert out.endswith("[glance]\ndebug = false\n\n[oslo_limit]\nendpoint_id = x\n")
    assert out.startswith("# nova.conf, rendered\n[DEFAULT]\ndebug = false\n# the bus\n")


def test_merge_matches_whole_keys_only():
    out = ini.merge("[DEFAULT]\ndebug_mode = x\n", {"DEFAULT": {"debug": False}})
    assert out == "[DEFAULT]\ndebug_mode = x\ndebug = false\n"


def test_merged_values_are_what_a_parser_reads():
    overrides = {"DEFAULT": {"debug": True, "my_ip": "192.0.2.7"}, "new": {"n": 3}}
    assert _values(ini.merge(TEMPLATE, overrides)) == {
        **_values(TEMPLATE),
        "DEFAULT": {**_values(TEMPLATE)["DEFAULT"], "debug": "true", "my_ip": "192.0.2.7"},
        "new": {"n": "3"},
    }


def test_split_moves_each_line_holding_a_secret_to_its_section_in_the_drop_in():
    public, secret = ini.split_secrets(TEMPLATE, ["s3cr3t-rabbit", "s3cr3t-db"])
    assert "s3cr3t" not in public
    assert "# transport_url = (in the Secret drop-in)" in public
    assert "# connection = (in the Secret drop-in)" in public
    assert secret == ("[DEFAULT]\ntransport_url = rabbit://nova:s3cr3t-rabbit@rabbitmq:5672/\n\n"
                      "[database]\nconnection = mysql+pymysql://nova:s3cr3t-db@mariadb/nova\n")
    # Read together, as the service reads the file and its drop-in: the same values.
    assert _values(public, secret) == _values(TEMPLATE)
    assert len(public.splitlines()) == len(TEMPLATE.splitlines())  # layout kept line for line


def test_split_without_secrets_in_the_text_has_an_empty_drop_in():
    public, secret = ini.split_secrets(TEMPLATE, ["not-there", ""])  # "" matches no line
    assert (public, secret) == (TEMPLATE, "")
