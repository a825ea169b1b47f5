"""The parse-back checks: every rendered document read back by the parser its node
uses (cloud-init's YAML, oslo.config's INI, a PEM bundle), and each node's user data
within Nova's limit, before anything is written or sent. A value of the user's that
could inject structure ends here as one line (PlanError) naming the file, never its
content (it may hold secrets).

The lowest module of the package: the Jinja environment raises PlanError too."""

from __future__ import annotations

import base64
import configparser
import email
import gzip
from typing import TYPE_CHECKING

import yaml

from ..errors import OsceptionError
from ..state import Layout

if TYPE_CHECKING:
    from .plan import Plan

# PyYAML's libyaml parser where it is built in (the same documents, several times faster
# than the pure-Python one: a plan parses its manifests twice).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PlanError(OsceptionError, ValueError):
    """A rendered file that does not parse back: one line naming it, never its content."""


# Nova's API schema (nova/api/openstack/compute/schemas/servers.py, server create and
# rebuild, every microversion) takes `user_data` as a base64 string of at most 65535
# characters: Nova counts the base64 text of what the server is given (wire_user_data:
# the gzip of the cloud-config), at most 49149 bytes of it.
NOVA_USER_DATA_LIMIT = 65535


class UserDataTooLarge(OsceptionError, ValueError):
    """A node's user data over Nova's limit: the server could never be created."""


def wire_user_data(text: str) -> bytes:
    """What a server is given: its cloud-config gzip-compressed. cloud-init decompresses
    gzip user data itself (user_data.convert_string); the plan keeps the readable text.
    mtime=0: the same text always gives the same bytes."""
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def user_data_size(text: str) -> int:
    """The user data as Nova counts it: the base64 of what the server is given."""
    return len(base64.b64encode(wire_user_data(text)))


def check_user_data(plan: Plan, names: list[str] | None = None) -> None:
    """Each node's user data (of `names`: only theirs) within Nova's limit."""
    for node in names if names is not None else [n.name for n in plan.nodes]:
        size = user_data_size(plan.files[f"{node}/user-data"])
        if size > NOVA_USER_DATA_LIMIT:
            raise UserDataTooLarge(
                f"{node}: user data is {size} bytes of base64 as Nova counts it, over Nova's "
                f"limit of {NOVA_USER_DATA_LIMIT}")


class _YAMLLoader(SafeLoader):
    """Safe YAML that also refuses a key given twice (an injected key would override)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, "a key given twice", key_node.start_mark)
            seen.add(key if isinstance(key, (str, int, float, bool)) else id(key))
        return super().construct_mapping(node, deep)


def _check_yaml(text: str, cloud_config: bool = False) -> None:
    docs = [d for d in yaml.load_all(text, Loader=_YAMLLoader) if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ValueError("not a mapping")
    if cloud_config and (len(docs) != 1 or not text.startswith("#cloud-config\n")):
        raise ValueError("not one #cloud-config document")


def _check_ini(text: str) -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # option names are case-sensitive, as in oslo.config
    parser.read_string(text)


def _check_user_data(text: str) -> None:
    if text.startswith("#cloud-config"):
        return _check_yaml(text, cloud_config=True)
    message = email.message_from_string(text)  # MIME multi-part user data
    parts = [p for p in message.walk() if p.get_content_type() == "text/cloud-config"]
    if not message.is_multipart() or not parts:
        raise ValueError("neither #cloud-config nor MIME multi-part user data with a cloud-config part")
    for part in parts:
        _check_yaml(part.get_payload(decode=True).decode(), cloud_config=True)


def _problem(e: Exception) -> str:
    """What is wrong, with a line number, and no text of the file (it may hold secrets)."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        return f"line {mark.line + 1}: {e.problem or e.context}" if mark else str(e.problem)
    if isinstance(e, configparser.DuplicateSectionError):
        return f"line {e.lineno}: a section given twice"
    if isinstance(e, configparser.DuplicateOptionError):
        return f"line {e.lineno}: an option given twice in [{e.section}]"
    if isinstance(e, configparser.MissingSectionHeaderError):
        return f"line {e.lineno}: an option before any [section]"
    if isinstance(e, configparser.ParsingError):
        return f"line {e.errors[0][0]}: not an INI line"
    return str(e) if isinstance(e, ValueError) and not isinstance(e, UnicodeError) else type(e).__name__


def check_file(rel: str, text: str) -> bool:
    """Parse back one rendered document by its name (cloud-config, YAML, INI); False when
    it is none of those (a script). Raises PlanError, one line naming the file."""
    name = rel.rsplit("/", 1)[-1]
    try:
        if name == "user-data":
            _check_user_data(text)
        elif name.endswith(".yaml"):
            _check_yaml(text)
        elif name.endswith((".conf", ".ini")):
            _check_ini(text)
        elif name.endswith(".pem"):
            from cryptography import x509
            x509.load_pem_x509_certificates(text.encode())
        else:
            return False
    except (yaml.YAMLError, configparser.Error, ValueError, RecursionError) as e:
        raise PlanError(f"{rel}: the rendered file does not parse ({_problem(e)}); "
                        f"a value in osception.yaml or {Layout.SECRETS} broke it") from None
    return True


def check(plan: Plan) -> None:
    """Parse back every rendered document: what a value of the user's could inject ends
    here as one line, before anything is written or sent."""
    for rel, text in sorted(plan.files.items()):
        check_file(rel, text)
