"""The package layers hold: each utils/ package imports only packages below it, in the order the README's
Layout section states (function-level imports count: a lazy import up the layers is still a circle)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from tests.repo import ROOT

UTILS = ROOT / "utils"


def stated_layers() -> list[list[str]]:
    """The README's `Layers, lowest first:` line: groups of packages separated by '<'."""
    match = re.search(r"^Layers, lowest first: (.+)$", (ROOT / "README.md").read_text(), re.M)
    assert match, "README.md: the Layout section must state the layers ('Layers, lowest first: a < b < ...')"
    return [re.findall(r"`(\w+)`", group) for group in match.group(1).split("<")]


def package_of(path: Path) -> str:
    relative = path.relative_to(UTILS)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def utils_imports(path: Path) -> list[tuple[str, int]]:
    """(utils package, line) for every import of another utils package in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "utils"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "utils" and len(parts) > 1:
                found.append((parts[1], node.lineno))
    return found


def climbs(layers: list[list[str]]) -> list[str]:
    rank = {name: i for i, group in enumerate(layers) for name in group}
    problems = []
    for path in sorted(UTILS.rglob("*.py")):
        if path == UTILS / "__init__.py":
            continue
        own = package_of(path)
        if own not in rank:
            problems.append(f"{path.relative_to(ROOT)}: package '{own}' is not in the README's layers")
            continue
        for other, line in utils_imports(path):
            if other != own and rank.get(other, len(layers)) >= rank[own]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {other}, which is not below it")
    return problems


def test_every_package_imports_only_packages_below_it():
    assert climbs(stated_layers()) == []


def test_the_stated_layers_name_every_package_once():
    stated = [name for group in stated_layers() for name in group]
    actual = {package_of(p) for p in UTILS.rglob("*.py") if p != UTILS / "__init__.py"}
    assert sorted(stated) == sorted(set(stated)), "a package is named twice in the README's layers"
    assert set(stated) == actual


def test_a_climb_is_caught(tmp_path, monkeypatch):
    """The check has teeth: a function-level import of a higher package is reported."""
    fake = tmp_path / "utils"
    (fake / "low").mkdir(parents=True)
    (fake / "high").mkdir()
    (fake / "low" / "_a.py").write_text("def f():\n    from utils.high import g\n    return g\n")
    (fake / "high" / "_b.py").write_text("from utils.low import f\n")
    monkeypatch.setattr(sys.modules[__name__], "UTILS", fake)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert climbs([["low"], ["high"]]) == ["utils/low/_a.py:2: low imports high, which is not below it"]


def face_names(package: Path) -> list[str]:
    tree = ast.parse((package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    return []


def test_faces_list_only_what_callers_outside_use():
    """A package's __all__ is its public face: each function and constant there is used by a caller outside the
    package (another package, a script, a benchmark or a test); what only the package itself uses stays private.
    Types (CamelCase) may be listed unused: they name what the public functions return."""
    callers = [p for d in ("utils", "scripts", "bench", "tests") for p in (ROOT / d).rglob("*.py")]
    texts = {p: p.read_text() for p in callers}
    unused = []
    for package in sorted(p.parent for p in UTILS.glob("*/__init__.py")):
        outside = [t for p, t in texts.items() if package not in p.parents and f"utils.{package.name}" in t]
        unused += [f"utils.{package.name}.{n}" for n in face_names(package)
                   if not re.match(r"[A-Z][a-z]", n) and not any(re.search(rf"\b{n}\b", t) for t in outside)]
    assert unused == []
