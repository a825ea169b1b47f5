"""The Jinja environment every template renders in, and its rule that a value is
never structure: `finalize` refuses a line break where one line goes (and escapes
oslo.config's `$` in INI templates), unless a filter made the value a Block for its
place (indent, tojson, yaml, sh). The filters the templates use live here too."""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path

import jinja2
import yaml

from .. import services
from ..state import Layout
from .checks import PlanError

# osception/templates/: the folder the loader below reads (tests run its scripts).
TEMPLATES = Path(__file__).parents[1] / "templates"

# What ends a line for one of the rendered formats' parsers: YAML (PyYAML's and
# cloud-init's: also NEL, LS, PS), INI (oslo.config reads Python's lines), shell.
LINE_BREAK = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


class Block(str):
    """Text a filter made to span lines where it goes: indented into a YAML block
    scalar (indent), or serialized for its place (tojson, yaml, sh)."""


@jinja2.pass_context
def _finalize(context, value):
    """A value is never structure: every `{{ ... }}` of every template is one line,
    unless a filter made it a Block for its place. A line break in a value would start
    a new YAML key, INI option or shell command (a node's user data, its nova.conf)."""
    if isinstance(value, str) and not isinstance(value, Block) and LINE_BREAK.search(value):
        raise PlanError(f"{context.name}: a value holding a line break where one line goes "
                        f"(a value in osception.yaml, {Layout.SECRETS} or {Layout.RESOURCES})")
    if isinstance(value, str) and not isinstance(value, Block) and _is_ini(context.name):
        # oslo.config substitutes `$name` / `${group.name}` with another option's value
        # (a `$` alone fails the service); `$$` is its literal dollar.
        return value.replace("$", "$$")
    return value


def _is_ini(template: str | None) -> bool:
    """A template of an oslo.config INI file: a service's <file>.conf.j2 or .ini.j2 (not
    Skyline's YAML), or templates/conf/'s (their macros)."""
    if not template:
        return False
    folder = template.split("/", 1)[0]
    if folder in _SERVICE_FOLDERS:
        return template.endswith((".conf.j2", ".ini.j2"))
    return folder == "conf" and not template.endswith(".yaml.j2")


class _Context(jinja2.runtime.Context):
    """A macro's output is a Block: a template's own lines, each of its values passed
    through _finalize where the macro wrote it."""

    def call(__self, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
        rv = super().call(__obj, *args, **kwargs)
        return Block(rv) if isinstance(__obj, jinja2.runtime.Macro) and isinstance(rv, str) else rv


# A service's templates are in its folder (osception/services/<name>/), named
# <name>/<file> (keystone/manifest.yaml.j2, in an error message too); the shared ones
# (the Kolla macros, the nodes', cloud-init's) in templates/, by their path there.
_SERVICE_FOLDERS = {s.name: jinja2.FileSystemLoader(services.FOLDER / s.name) for s in services.SERVICES}


class _FolderLoader(jinja2.PrefixLoader):
    """Jinja's PrefixLoader, but a template keeps its whole name, <service>/<file>:
    PrefixLoader names it by its file alone, which _is_ini (the `$` of oslo.config)
    and an error message could not tell from another service's."""

    load = jinja2.BaseLoader.load  # get_source (the prefix's folder), then the whole name


_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader([jinja2.PackageLoader("osception", "templates"),
                                _FolderLoader(_SERVICE_FOLDERS)]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    finalize=_finalize,
)
_env.context_class = _Context


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tojson(v, indent=None, sort_keys=True) -> Block:
    """JSON is YAML: a string in double quotes, every control character escaped."""
    return Block(json.dumps(v, indent=indent, sort_keys=sort_keys))


def _sh(v) -> str:
    """One shell word (POSIX quoting), whatever the value holds (a line break: refused
    by _finalize, as in any value: the script is itself indented into user data)."""
    return shlex.quote(str(v))


@jinja2.pass_context
def _ini_list(context, items) -> str:
    """An oslo.config list option's value: the items joined by commas, none holding a
    comma (oslo.config splits on it: one host would become two), a bracket, a quote or
    a space."""
    items = [str(i) for i in items]
    if any(not i or re.search(r"[,\[\]\"'\s]", i) for i in items):
        raise PlanError(f"{context.name}: a list item empty or holding a comma, bracket, quote or space "
                        "(a value in osception.yaml)")
    return ",".join(items)


_env.filters["b64"] = _b64
_env.filters["ini_list"] = _ini_list
_env.filters["tojson"] = tojson
_env.filters["sh"] = _sh
_env.filters["indent"] = lambda *a, **k: Block(jinja2.filters.do_indent(*a, **k))
# {"a": 1} | merge({"b": 2}) -> {"a": 1, "b": 2}: Jinja has no ** in dict literals.
_env.filters["merge"] = lambda a, *more: {k: v for d in (a, *more) for k, v in d.items()}
_env.filters["yaml"] = lambda v: Block(yaml.safe_dump(v, sort_keys=False, default_flow_style=False).rstrip())


def render_template(name: str, **context) -> str:
    return _env.get_template(name).render(**context)


def source(path: str) -> str:
    """A file under templates/, as is (not rendered)."""
    return _env.loader.get_source(_env, path)[0]


def script(name: str) -> str:
    return source(f"scripts/{name}")


def templates(folder: str) -> list[str]:
    """The templates under `folder` (k8s: the control plane's manifests), sorted."""
    return sorted(_env.list_templates(filter_func=lambda t: t.startswith(f"{folder}/")))
