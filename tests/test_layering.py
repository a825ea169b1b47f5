"""The product never imports the devcloud: the devcloud is a user of the product (a
local cloud started from its templates and locks), not a part of it. Every module of
osception/ outside osception/devcloud/ is read (its syntax tree, so an import inside a
function counts as much as one at the top); an import of osception.devcloud, absolute
or relative, fails the test with the module and line, unless it is listed below with
its reason."""

from __future__ import annotations

import ast
from pathlib import Path

import osception

PACKAGE = Path(osception.__file__).parent
DEVCLOUD = "osception.devcloud"

# (importing module, or a package and every module in it; imported module): why.
ALLOWED = {
    ("osception.cli", "osception.devcloud.cli"):
        "the command line mounts `osception devcloud` as its sub-app; the same module gives "
        "`populate/smoke --local-guest` the guest image the devcloud makes",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool):
    """(line, absolute name) of everything each import statement of the tree brings in:
    `from P import x` gives P.x (x a module or a name in P), so `from . import devcloud`
    is the devcloud as much as `from .devcloud import cli` is."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def allowed(module: str, target: str) -> bool:
    return any((module == m or module.startswith(m + ".")) and
               (target == t or target.startswith(t + ".")) for m, t in ALLOWED)


def devcloud_imports(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "devcloud"):
            continue
        module = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        for line, target in imported(tree, module, path.name == "__init__.py"):
            if (target == DEVCLOUD or target.startswith(DEVCLOUD + ".")) and not allowed(module, target):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    return sorted(set(found))


def test_no_product_module_imports_the_devcloud():
    assert devcloud_imports() == []


def test_each_allowed_import_is_still_there_and_says_why():
    """An exception nobody needs any more is taken out, not kept as a door."""
    used = set()
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "devcloud"):
            continue
        module = module_name(path)
        for _, target in imported(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            used |= {(m, t) for m, t in ALLOWED if (module == m or module.startswith(m + "."))
                     and (target == t or target.startswith(t + "."))}
    assert used == set(ALLOWED)
    assert all(len(why.split()) >= 5 for why in ALLOWED.values())


def test_every_form_of_import_is_seen(tmp_path):
    """The walker on a module of each form: top-level, in a function, relative from a
    module and from a package, absolute, `from . import devcloud`."""
    forms = {
        "a.py": "import osception.devcloud.venv\n",
        "b.py": "def f():\n    from .devcloud import guest\n",
        "c.py": "from . import devcloud\n",
        "sub/__init__.py": "from ..devcloud.venv import lock_file\n",
        "sub/d.py": "from ..devcloud import cloud\n",
        "e.py": "from osception.devcloud.cli import app\n",
        "ok.py": "from . import releases\nfrom .render import x\nimport osception.devcloudish\n",
    }
    root = tmp_path / "osception"
    for name, text in forms.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    seen = set()
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__")
        for line, target in imported(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            if target == DEVCLOUD or target.startswith(DEVCLOUD + "."):
                seen.add((str(path.relative_to(root)), line))
    assert seen == {("a.py", 1), ("b.py", 2), ("c.py", 1), ("sub/__init__.py", 1),
                    ("sub/d.py", 1), ("e.py", 1)}
