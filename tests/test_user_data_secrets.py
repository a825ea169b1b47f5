"""docs/state-and-secrets.md's table of which secrets travel in which node's user data, checked
against the rendered plan: every secret of `secrets.yaml` has a row, and a cell is
"-" exactly when none of the row's values is in that node's user data (the
controller's manifests archive unpacked)."""

from __future__ import annotations

import base64
import io
import re
import tarfile
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parent.parent / "docs" / "state-and-secrets.md"
COLUMNS = ("k8s-0", "compute-0", "network-0")  # one node of each role


def _values(tree, prefix="") -> dict[str, str]:
    """secrets.yaml flattened: {"database.nova": "...", "keystone_fernet_keys": [..]...}"""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _values(value, f"{name}.")
        else:
            out[name] = value
    return out


def _readable(plan, node: str) -> str:
    """Everything the node's user data carries, the controller's archive unpacked."""
    user_data = plan.files[f"{node}/user-data"]
    parts = [user_data]
    for f in yaml.safe_load(user_data)["write_files"]:
        if f.get("encoding") == "b64":
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(f["content"]))) as tar:
                for member in (m for m in tar.getmembers() if m.isfile()):
                    text = tar.extractfile(member).read().decode()
                    parts.append(text)
                    if member.name.endswith(".yaml"):  # a Secret's PEM values, unindented
                        parts += [v for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Secret"
                                  for v in doc.get("stringData", {}).values()]
        else:
            parts.append(f["content"])  # unindented: multi-line keys read whole
    return "\n".join(parts)


def _table() -> dict[str, tuple[bool, ...]]:
    text = DOC.read_text()
    section = text.split("### Which secrets travel in which user data", 1)[1].split("\n\n", 3)[2]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for key in re.findall(r"`([a-z_.*]+)`", cells[0]):
            rows[key] = tuple(c != "-" for c in cells[1:])
    return rows


def test_readme_says_which_secrets_each_node_receives(default_plan, state_home):
    values = _values(yaml.safe_load((state_home / "osception" / "secrets.yaml").read_text()))
    table = _table()
    expanded = {}
    for key, cells in table.items():
        matched = [k for k in values if k == key or (key.endswith(".*") and k.startswith(key[:-1]))]
        assert matched, f"docs row {key!r} names no secret"
        expanded |= {k: cells for k in matched}
    assert sorted(expanded) == sorted(values), "every secret has its row"
    readable = {node: _readable(default_plan, node) for node in COLUMNS}
    for key, cells in expanded.items():
        pieces = values[key] if isinstance(values[key], list) else [values[key]]
        for node, documented in zip(COLUMNS, cells):
            found = [p.strip() in readable[node] for p in pieces]
            assert all(found) if documented else not any(found), f"{key} in {node}'s user data: {found}"
