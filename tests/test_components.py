"""The table of what a real environment runs (releases.components, `osception releases`):
complete for every release, each number with its source, printed whole. Its Kolla rows
are checked against Kolla's own sources in tests/kolla/test_components.py."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from osception import cli, releases, services

# What issue 23 asks the table to hold: the controller's components (k3s and its Traefik,
# the Kolla images' RabbitMQ, MariaDB, memcached and their base) and the nodes' OVS,
# libvirt and QEMU, and what node_source pypi installs instead.
EXPECTED = ("k3s", "Traefik chart", "Traefik", "Kolla base", "RabbitMQ", "MariaDB", "memcached",
            "Open vSwitch", "libvirt", "QEMU", "node_source pypi")


@pytest.mark.parametrize("name", list(releases.RELEASES))
def test_every_release_has_every_component_with_a_version_and_its_source(name):
    rel = releases.get(name)
    rows = releases.components(rel)
    assert tuple(c.name for c in rows) == EXPECTED
    for c in rows:
        assert c.version.strip() and c.source.strip(), c
        assert "None" not in c.version and not re.search(r"(^|\s)\.\*", c.version), c
    by_name = {c.name: c for c in rows}
    # The nodes' rows are the node OS's Debian suite, and name the osbpo repository
    # where the release takes its packages from one.
    for component in releases.NODE_SYSTEM_PACKAGES:
        assert rel.node_os.codename in by_name[component].source
        if rel.extrepo:
            assert rel.extrepo in by_name[component].source
    assert by_name["Kolla base"].version.startswith(" ".join(rel.kolla_base))
    assert all(f"{p} {v}" in by_name["node_source pypi"].version
               for p, v in releases.service_versions(name, ("nova", "neutron")).items())


def test_the_node_rows_are_packages_both_node_sources_install():
    """OVS, libvirt and QEMU come from the Debian packages the playbooks install, with
    node_source packages and with pypi alike."""
    for package in releases.NODE_SYSTEM_PACKAGES.values():
        assert package in services.NODE_PACKAGES["compute"]
        assert package in services.NODE_PYPI_PACKAGES["compute"]
    for suite in {r.node_os.codename for r in releases.RELEASES.values()}:
        assert set(releases.DEBIAN_PACKAGES[suite]) == set(releases.NODE_SYSTEM_PACKAGES.values())


def _blocks(output: str) -> dict[str, str]:
    """{release name: its block of `osception releases`}, split at the block titles."""
    titles = [(m.start(), m.group(1)) for m in re.finditer(
        r"^(\S+) \w+: what a real environment runs", output, re.M)]
    ends = [start for start, _ in titles[1:]] + [len(output)]
    return {name: output[start:end] for (start, name), end in zip(titles, ends)}


def test_osception_releases_prints_every_component_and_version_of_every_release():
    r = CliRunner().invoke(cli.app, ["releases"])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 100
    blocks = _blocks(r.output)
    assert list(blocks) == list(releases.RELEASES)
    for name, block in blocks.items():
        for c in releases.components(releases.get(name)):
            assert re.search(rf"│ {re.escape(c.name)} +│ {re.escape(c.version)} +│", block), \
                (name, c, block)
