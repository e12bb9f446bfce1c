"""The import graph of `src/docmill`: declared layers, no upward import, no circle.

Every module is parsed with `ast` (nothing is imported). An import counts wherever it is
written: at module level, inside a function (a deferred import is still a dependency), under
`if TYPE_CHECKING:`, and `importlib.import_module("docmill....")` with a constant (or an
f-string's constant head) naming a module or a package.

Layers, lowest first (docs/architecture.md draws the same picture). A module may import its
own layer and the layers below it, never one above:

    base             docmill, errors, settings, documents (the document model)
    security         security/ (the SSRF guard, keys)
    extraction       extraction/ (offline extraction and identification, on the document model)
    engine interface engines/base.py, engines/supervisor.py (what every engine builds on)
    engines          engines/<family>/... (pdf, office, html, ocr, extract, and the rest)
    engine registry  engines/registry.py (the catalogue: lists every family)
    core             core/, dispatch/ (jobs, files, auth, webhooks; dispatchers and the runner,
                     which need each other: the core notifies the dispatcher, the runner moves
                     job state through the core)
    migrations       migrations/ (Alembic, on core/models.py)
    faces            faces/ (HTTP translation)
    bootstrap        bootstrap.py (the list of the faces' webhook builders a process loads)
    console          console/ (pages over the native face)
    app              app.py (the FastAPI factory)
    cli              cli.py

Some downward imports skip what should stand between (`NOT_REACHED`): the core reaches
engines only through their interface and the registry; faces reach operations, engines and
extraction only through the core; the console reaches data only through the native API.

Circles: none at module level (an import-time cycle), and none even through deferred
imports, except the few in `DEFERRED`, each a deliberate late binding inside the core.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "docmill"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # name, what belongs to it: "a.b" is that module, "a.b.*" the package a.b and all below
    ("base", ("docmill", "docmill.errors", "docmill.settings", "docmill.documents")),
    ("security", ("docmill.security.*",)),
    ("extraction", ("docmill.extraction.*",)),
    ("engine interface", ("docmill.engines", "docmill.engines.base",
                          "docmill.engines.supervisor")),
    ("engines", ("docmill.engines.*",)),
    ("engine registry", ("docmill.engines.registry",)),
    ("core", ("docmill.core.*", "docmill.dispatch.*")),
    ("migrations", ("docmill.migrations.*",)),
    ("faces", ("docmill.faces.*",)),
    ("bootstrap", ("docmill.bootstrap",)),
    ("console", ("docmill.console.*",)),
    ("app", ("docmill.app",)),
    ("cli", ("docmill.cli",)),
]

NOT_REACHED: dict[str, tuple[set[str], str]] = {
    "core": ({"engines"}, "the core reaches engines only through engines/base.py and the "
             "registry"),
    "faces": ({"engine interface", "engines", "engine registry", "extraction"},
              "faces reach operations, engines and extraction only through the core"),
    "console": ({"core", "migrations", "engine interface", "engines", "engine registry",
                 "extraction"}, "the console's only way to data is the native API"),
}

# Upward imports allowed, each with its reason: the processes' entry points that live in
# the dispatch package (a pool host started afresh, a Celery worker) load the faces'
# webhook builders through the bootstrap, as the app does: (importer, imported).
ENTRY_POINTS: dict[tuple[str, str], str] = {
    ("docmill.dispatch.pool_host", "docmill.bootstrap"):
        "a replacement pool host is a fresh interpreter: it loads the builders itself",
    ("docmill.dispatch.celery_app", "docmill.bootstrap"):
        "a Celery worker ends jobs, and so writes their webhooks",
}

# Deferred imports that close a circle on purpose (the only circles allowed, and only
# because the import runs late, inside a function).
DEFERRED: dict[tuple[str, str], str] = {
    ("docmill.core.jobs", "docmill.core.runs"):
        "a step job's end advances its pipeline run; runs.py moves jobs through jobs.py",
    ("docmill.core.pipelines", "docmill.core.service"):
        "a step's params are checked as a job's are; service.py starts pipeline runs",
    ("docmill.dispatch", "docmill.core.runs"):
        "the local dispatcher is built with the runs' change callback; runs notify the "
        "dispatcher",
}


@dataclass(frozen=True)
class Edge:
    importer: str
    target: str
    line: int
    deferred: bool  # inside a function: runs when called, not at import
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs

    def __str__(self) -> str:
        how = " (deferred)" if self.deferred else " (TYPE_CHECKING)" if self.typing_only else ""
        return f"{self.importer}:{self.line} -> {self.target}{how}"


def module_files() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def _known(name: str) -> str | None:
    """The module `name` names, or the innermost docmill module or package holding it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node: ast.AST, is_package: bool) -> list[str]:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + is_package]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix
                 for alias in node.names]
    elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names = [arg.value]
        elif isinstance(arg, ast.JoinedStr) and arg.values \
                and isinstance(arg.values[0], ast.Constant):
            names = [str(arg.values[0].value).rstrip(".")]
    found: list[str] = []
    for name in names:
        if name == "docmill" or name.startswith("docmill."):
            target = _known(name)
            if target and target != module and target not in found:
                found.append(target)
    return found


def _is_import_module(func: ast.AST) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module"
            and isinstance(func.value, ast.Name) and func.value.id == "importlib") \
        or (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def edges_of(module: str, source: str, is_package: bool = False) -> list[Edge]:
    tree = ast.parse(source)
    out: list[Edge] = []

    def visit(node: ast.AST, deferred: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_deferred = deferred or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for target in _targets(module, child, is_package):
                out.append(Edge(module, target, getattr(child, "lineno", 0), deferred,
                                typing_only))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for inner in child.body:
                    for target in _targets(module, inner, is_package):
                        out.append(Edge(module, target, inner.lineno, deferred, True))
                    visit(inner, deferred, True)
                for inner in child.orelse:
                    for target in _targets(module, inner, is_package):
                        out.append(Edge(module, target, inner.lineno, deferred, typing_only))
                    visit(inner, deferred, typing_only)
                continue
            visit(child, child_deferred, typing_only)

    visit(tree, False, False)
    return out


EDGES = [edge for module, path in MODULES.items()
         for edge in edges_of(module, path.read_text(encoding="utf-8"),
                              path.name == "__init__.py")]


def layer_of(module: str) -> str | None:
    """The layer of `module`: an exact entry first, else the longest package entry."""
    best: tuple[int, str] | None = None
    for name, members in LAYERS:
        for member in members:
            if member == module:
                return name
            if member.endswith(".*"):
                package = member[:-2]
                if (module == package or module.startswith(package + ".")) \
                        and (best is None or len(package) > best[0]):
                    best = (len(package), name)
    return best[1] if best else None


RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def _within(module: str, entry: str) -> bool:
    return module == entry or module.startswith(entry + ".")


def _entry_point(edge: Edge) -> bool:
    return any(_within(edge.importer, importer) and _within(edge.target, target)
               for importer, target in ENTRY_POINTS)


def layering_problems() -> list[tuple[Edge, str]]:
    problems = []
    for edge in EDGES:
        mine, theirs = layer_of(edge.importer), layer_of(edge.target)
        assert mine is not None and theirs is not None
        if RANK[theirs] > RANK[mine]:
            problems.append((edge, f"{mine} imports {theirs}, a layer above it"))
        elif mine in NOT_REACHED and theirs in NOT_REACHED[mine][0]:
            problems.append((edge, f"{mine} imports {theirs}: {NOT_REACHED[mine][1]}"))
    return problems


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        graph[edge.importer].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(MODULES):
        if node not in index:
            connect(node)
    return found


def _describe(component: list[str], edges: list[Edge]) -> str:
    inside = set(component)
    lines = [f"  {edge}" for edge in edges if edge.importer in inside and edge.target in inside]
    return "circle among " + ", ".join(component) + ":\n" + "\n".join(lines)


# --- the tests -----------------------------------------------------------------------------


def test_the_graph_is_read():
    """The parser sees what it must (so the checks below cannot pass on an empty graph)."""
    assert len(MODULES) > 100
    seen = {(e.importer, e.target, e.deferred) for e in EDGES}
    assert ("docmill.dispatch.runner", "docmill.core.jobs", False) in seen
    assert ("docmill.engines.registry", "docmill.engines.base", False) in seen
    assert any(e.importer == "docmill.engines.registry" and e.deferred for e in EDGES)
    source = """
import docmill.errors
from docmill import settings
from docmill.core import files as f, nothing_such
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from docmill.core.models import Job
def later(name):
    import importlib
    from docmill.security.ssrf import open_url
    importlib.import_module(f"docmill.faces.{name}.webhook")
"""
    found = {(e.target, e.deferred, e.typing_only)
             for e in edges_of("docmill.engines.example", source)}
    assert found == {("docmill.errors", False, False), ("docmill.settings", False, False),
                     ("docmill.core.files", False, False), ("docmill.core", False, False),
                     ("docmill.core.models", False, True),
                     ("docmill.security.ssrf", True, False), ("docmill.faces", True, False)}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_no_upward_import():
    problems = [f"{edge}: {why}" for edge, why in layering_problems() if not _entry_point(edge)]
    assert problems == [], "imports against the layers:\n" + "\n".join(problems)


def _used(exception: tuple[str, str]) -> bool:
    importer, target = exception
    return any(_within(edge.importer, importer) and _within(edge.target, target)
               for edge, _ in layering_problems())


def test_entry_points_are_still_needed():
    """An allowance nothing uses any more must go."""
    unused = [f"{pair}: {why}" for pair, why in ENTRY_POINTS.items() if not _used(pair)]
    assert unused == [], "delete these from ENTRY_POINTS:\n" + "\n".join(unused)


def test_no_import_cycle_at_module_level():
    """Nothing imports, while being imported, a module that imports it back."""
    runtime = [e for e in EDGES if not e.deferred and not e.typing_only]
    found = cycles(runtime)
    assert found == [], "\n".join(_describe(c, runtime) for c in found)


def test_no_import_cycle_even_through_deferred_imports():
    """A deferred import still ties two modules together; only `DEFERRED`'s may close a
    circle."""
    kept = [e for e in EDGES if not e.typing_only and (e.importer, e.target) not in DEFERRED]
    found = cycles(kept)
    assert found == [], "\n".join(_describe(c, kept) for c in found)
    for importer, target in DEFERRED:  # each still exists, and still is deferred
        matching = [e for e in EDGES if e.importer == importer and e.target == target]
        assert matching and all(e.deferred for e in matching), (importer, target)
