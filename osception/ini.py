"""Small, comment-preserving edits of rendered INI text.

Used for the user's `overrides:` (merged into a generated file) and to split
secret values out of a rendered file into a drop-in that goes to a Kubernetes
Secret. A full INI parser would drop the templates' comments and order.
"""

from __future__ import annotations

import re

# What a section name and an option name may be in `overrides:` (config.py checks them).
SECTION = r"[A-Za-z0-9_.:\-]{1,64}"
KEY = r"[A-Za-z0-9_.\-]{1,128}"
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_OPTION = re.compile(rf"^(?P<key>{KEY})\s*=\s*(?P<value>.*)$")


def ini_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def merge(text: str, overrides: dict[str, dict[str, object]]) -> str:
    """Set each [section] key = value, replacing an existing line or adding one."""
    lines = text.splitlines()
    for section, options in overrides.items():
        for key, value in options.items():
            lines = _set(lines, section, key, ini_value(value))
    return "\n".join(lines) + "\n"


def _set(lines: list[str], section: str, key: str, value: str) -> list[str]:
    current = None
    end_of_section = None  # index after the last non-blank line of `section`
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            current = m["name"]
            if current == section:
                end_of_section = i + 1
            continue
        if current != section:
            continue
        opt = _OPTION.match(line)
        if opt and opt["key"] == key:
            return [*lines[:i], f"{key} = {value}", *lines[i + 1 :]]
        if line.strip():
            end_of_section = i + 1
    if end_of_section is None:
        tail = [""] if lines and lines[-1].strip() else []
        return [*lines, *tail, f"[{section}]", f"{key} = {value}"]
    return [*lines[:end_of_section], f"{key} = {value}", *lines[end_of_section:]]


def split_secrets(text: str, secret_values: list[str]) -> tuple[str, str]:
    """Move every option whose value holds a secret into a second INI text.

    Returns (public, secret): `public` keeps the layout and comments, with each moved
    line replaced by a comment pointing at the drop-in; `secret` has the same
    sections holding only the moved options.
    """
    public: list[str] = []
    secret: dict[str, list[str]] = {}
    section = "DEFAULT"
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            section = m["name"]
        opt = _OPTION.match(line)
        if opt and any(s and s in opt["value"] for s in secret_values):
            secret.setdefault(section, []).append(line)
            public.append(f"# {opt['key']} = (in the Secret drop-in)")
            continue
        public.append(line)
    secret_text = "\n\n".join(f"[{s}]\n" + "\n".join(opts) for s, opts in secret.items())
    return "\n".join(public) + "\n", (secret_text + "\n" if secret_text else "")
