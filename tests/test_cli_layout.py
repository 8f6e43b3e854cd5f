"""The package's layers, checked on the source: every import counts, function-level ones included.

errors <- core <- analysis <- formats <- studies <- cli: a module imports only modules of its
own layer or lower ones, and no chain of imports leads back to where it started. The package
itself (``ecosystem/__init__.py``, the Python API re-exporting core and formats names) sits
between formats and studies. ``viz`` (the browser page) may import anything in ``ecosystem``;
``ecosystem`` imports ``viz`` only inside a function of ``ecosystem/cli/viz.py``. Only
``ecosystem/cli/`` builds subcommands (``add_parser``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ecosystem", "viz")
LAYERS = ("ecosystem.errors", "ecosystem.core", "ecosystem.analysis", "ecosystem.formats", "ecosystem.studies",
          "ecosystem.cli")
"""Lowest first."""
RANKS = {layer: float(i) for i, layer in enumerate(LAYERS)} | {"ecosystem": 3.5, "ecosystem.__main__": 6.0,
                                                                "ecosystem.learned": 2.0}
"""``ecosystem.learned`` stands beside ``ecosystem.analysis`` (neither imports the other)."""
VIZ_ENTRY = "ecosystem.cli.viz"
"""The one module of ``ecosystem`` that imports ``viz`` (lazily, inside its handler)."""


class Module:
    """A module's source, parsed: its name, whether it is a package ``__init__``, and its tree."""

    def __init__(self, name: str, source: str, package: bool, path: str) -> None:
        self.name, self.package, self.path = name, package, path
        self.tree = ast.parse(source, filename=path)


def modules(overrides: dict[str, str] | None = None) -> dict[str, Module]:
    """Every module of ``ecosystem`` and ``viz`` by dotted name; ``overrides`` replaces sources (for tests)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            source = (overrides or {}).get(name, path.read_text())
            out[name] = Module(name, source, is_package, str(path.relative_to(ROOT)))
    return out


def _known(name: str, known: dict[str, Module]) -> str:
    """The longest prefix of ``name`` that is a module of the project (``name`` itself if none is)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


class _Imports(ast.NodeVisitor):
    def __init__(self, module: Module, known: dict[str, Module]) -> None:
        self.module, self.known = module, known
        self.depth = 0
        self.found: list[tuple[str, int, bool]] = []  # (imported module, line, inside a function)

    def _scope(self, node) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def _add(self, name: str, node: ast.AST) -> None:
        self.found.append((_known(name, self.known), node.lineno, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.module.name.split(".")
            if not self.module.package:
                here = here[:-1]
            here = here[:len(here) - node.level + 1]
            base = ".".join(here + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in self.known else base, node)


def imports(module: Module, known: dict[str, Module]) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function?) of every import statement of ``module``."""
    visitor = _Imports(module, known)
    visitor.visit(module.tree)
    return visitor.found


def rank(name: str) -> float | None:
    """The layer of an ``ecosystem`` module (higher may import lower), None outside ``ecosystem``."""
    if name in RANKS:
        return RANKS[name]
    for layer in LAYERS:
        if name.startswith(layer + "."):
            return RANKS[layer]
    return None


def violations(known: dict[str, Module]) -> list[str]:
    """Every import against the layers or the ``viz`` rule, and every import cycle, as text."""
    problems = []
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, module in known.items():
        for target, line, lazy in imports(module, known):
            if target in known and target != name:
                graph[name].add(target)
            where = f"{module.path}:{line}: {name} imports {target}"
            mine, theirs = rank(name), rank(target)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{where} (a higher layer)")
            if mine is not None and (target == "viz" or target.startswith("viz.")) and (
                    name != VIZ_ENTRY or not lazy):
                problems.append(f"{where} (only {VIZ_ENTRY} imports viz, inside its handler)")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(set(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of ``component`` (breadth first)."""
    start = min(component)
    previous = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return sorted(component)


def test_no_module_imports_a_higher_layer_or_forms_a_cycle():
    assert violations(modules()) == []


def test_the_check_sees_function_level_and_relative_imports():
    path = ROOT / "ecosystem" / "formats" / "study.py"
    for statement in ("from ecosystem.cli import main", "from ..cli import main", "import ecosystem.cli.sweep"):
        source = path.read_text() + f"\n\ndef _sneaky():\n    {statement}\n    return main\n"
        found = violations(modules({"ecosystem.formats.study": source}))
        assert any("ecosystem.formats.study imports ecosystem.cli" in p and "higher layer" in p for p in found), \
            statement
        assert any(p.startswith("import cycle:") and "ecosystem.formats.study" in p for p in found), statement


@pytest.mark.parametrize("source, message", [
    ("from ecosystem.studies import sweep\n", "higher layer"),            # core -> studies
    ("def f():\n    from viz import server\n", "only ecosystem.cli.viz imports viz"),
    ("import ecosystem\n", "higher layer"),                               # the package imports formats
])
def test_the_check_sees_other_violations(source, message):
    path = ROOT / "ecosystem" / "core" / "metrics.py"
    found = violations(modules({"ecosystem.core.metrics": path.read_text() + "\n" + source}))
    assert any(message in p for p in found)


def test_only_the_cli_builds_subcommands():
    found = []
    for name, module in modules().items():
        if name == "ecosystem.cli" or name.startswith("ecosystem.cli."):
            continue
        for node in ast.walk(module.tree):
            called = node.func.attr if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else (
                node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None)
            defined = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None
            if {called, defined} & {"add_parser", "add_subparsers"}:
                found.append(f"{module.path}:{node.lineno}")
    assert found == []


def test_every_subcommand_has_its_module():
    from ecosystem import cli

    names = [m.__name__.rpartition(".")[2] for m in cli.COMMANDS]
    assert names == ["run", "validate", "analyze", "optimize", "reproduce", "sweep", "report", "plot", "viz"]
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == names
    for module in cli.COMMANDS:
        assert module.__file__.endswith(f"ecosystem/cli/{module.__name__.rpartition('.')[2]}.py")


def test_sweep_takes_a_shipped_study_name(tmp_path, monkeypatch, capsys):
    from ecosystem import cli
    from ecosystem.formats import names

    shipped = tmp_path / "scenarios"
    (shipped / "studies").mkdir(parents=True)
    (shipped / "studies" / "tiny.toml").write_text(
        f'scenario = "{ROOT / "scenarios" / "ring.toml"}"\nseeds = [0]\n[set]\nsteps = 2\n"topology.n" = 3\n')
    monkeypatch.setattr(names, "SHIPPED", shipped)
    db = tmp_path / "tiny.sqlite"
    assert cli.main(["sweep", "tiny", "--db", str(db), "--quiet"]) == 0
    assert db.is_file()
    assert cli.main(["sweep", "no_such_study", "--db", str(tmp_path / "x.sqlite")]) == 2
    assert capsys.readouterr().err.startswith("error: no shipped study 'no_such_study' (shipped: tiny)")
    assert not (tmp_path / "x.sqlite").exists()
