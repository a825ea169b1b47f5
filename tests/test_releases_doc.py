"""The releases documentation's table against the release table (osception/releases.py)
and the locks: every release, in order, with its codename, the default, its Kolla image
tag, its nodes' OS and package source, the services' versions (and the lock's package
count where it is given) and its Tempest. The table is written by hand; this is what
keeps it from drifting."""

from __future__ import annotations

import re
from pathlib import Path

from osception import locks, releases

# Where the table is: one constant, for when the documentation moves.
RELEASES_DOC = Path(__file__).resolve().parent.parent / "docs" / "releases.md"
HEADER = "| release | control plane images | nodes |"
# The table names projects; the locks pin PyPI distributions.
DISTRIBUTION = {"placement": "openstack-placement", "skyline": "skyline-apiserver"}
SERVICES = ("keystone", "nova", "neutron", "glance", "placement", "skyline")


def table(text: str) -> list[list[str]]:
    """The rows (cells, stripped) of the table whose header starts with HEADER."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    rows = []
    for line in lines[start + 2:]:  # the header, then its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def mismatches(rows: list[list[str]]) -> list[str]:
    """What the rows say that the release table and the locks do not, one line each."""
    wrong = []
    if [row[0].split()[0] for row in rows] != list(releases.RELEASES):
        wrong.append(f"releases {[row[0] for row in rows]}, the table has {list(releases.RELEASES)}")
        return wrong
    for row, rel in zip(rows, releases.RELEASES.values()):
        name, images, nodes, services, tempest = row
        default = " (default)" if rel.name == releases.DEFAULT_RELEASE else ""
        if name != f"{rel.name} {rel.codename}{default}":
            wrong.append(f"{name}: not {rel.name} {rel.codename}{default}")
        if not images.endswith(f":{rel.kolla_tag}`"):
            wrong.append(f"{rel.name}: images {images}, the tag is {rel.kolla_tag}")
        own = f"{rel.node_os.image}'s own archive"
        source = own if rel.extrepo is None else f"{rel.node_os.image}, `extrepo enable {rel.extrepo}`"
        if nodes != source:
            wrong.append(f"{rel.name}: nodes {nodes!r}, not {source!r}")
        pins = locks.pins(rel.name)
        said = dict(re.findall(r"([a-z-]+) (\d[\w.]*)", services))
        if set(said) != set(SERVICES):
            wrong.append(f"{rel.name}: services {sorted(said)}, not {sorted(SERVICES)}")
        for project, version in said.items():
            if pins.get(DISTRIBUTION.get(project, project)) != version:
                wrong.append(f"{rel.name}: {project} {version}, the lock has "
                             f"{pins.get(DISTRIBUTION.get(project, project))}")
        count = re.search(r"\((\d+)(?: packages)?\)$", services)
        if count and int(count[1]) != len(pins):
            wrong.append(f"{rel.name}: {count[1]} packages, the lock has {len(pins)}")
        if tempest != rel.tempest_version:
            wrong.append(f"{rel.name}: Tempest {tempest}, not {rel.tempest_version}")
    if releases.KOLLA_REGISTRY not in rows[0][1]:
        wrong.append(f"the first row's images {rows[0][1]} name no {releases.KOLLA_REGISTRY}")
    return wrong


def test_the_releases_doc_table_is_the_release_table():
    assert mismatches(table(RELEASES_DOC.read_text())) == []


def test_a_drifted_row_is_named():
    """The check itself, on the table with one fact changed in each column: each is seen."""
    rows = table(RELEASES_DOC.read_text())
    rel = list(releases.RELEASES.values())[-1]
    nova = f"nova {locks.pins(rel.name)['nova']}"
    changes = {0: (rel.codename, rel.codename + "x"), 1: (rel.kolla_tag, rel.kolla_tag + "x"),
               2: (rel.node_os.image, "Debian 99"), 3: (nova, nova + ".1"),
               4: (rel.tempest_version, rel.tempest_version + ".1")}
    for column, (old, new) in changes.items():
        drifted = [list(row) for row in rows]
        last = drifted[-1]
        assert old in last[column]
        last[column] = last[column].replace(old, new)
        assert mismatches(drifted), (column, new)
    # a release missing from the doc
    assert mismatches(rows[:-1])
