"""Keep the module layering of DESIGN.md honest.

Each module imports only from below it (relative imports and lazy imports inside functions
count too), the import graph has no cycle, and no module reads another module's underscore
names (``from fmclassify.training import _x`` or ``training._x``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fmclassify

SRC = Path(fmclassify.__file__).parent
MODULES = sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__")

# Each module may import the fmclassify modules listed for it (lazily or not), nothing else.
ALLOWED = {
    "exceptions": set(),
    "_io": {"exceptions"},  # OutputError: a failed write is one library error
    "_checks": {"exceptions"},
    "_notebook": set(),
    "_progress": {"_notebook"},
    "_tables": set(),
    "_profile": {"exceptions"},
    "history": {"_io", "_tables", "plotting"},  # plotting lazily, from History.plot
    "_figures": {"_notebook"},
    "_frames": set(),
    "_inside_plots": {"_figures", "exceptions"},
    "plotting": {"_figures", "_inside_plots", "exceptions"},
    "callbacks": {"history"},
    "registry": {"exceptions"},  # the package imports models, which register themselves
    "models": {"exceptions", "registry"},
    "_formats": {"exceptions"},
    "_sources": {"exceptions", "_formats"},
    "_batching": {"exceptions"},
    "data": {"_batching", "exceptions", "_formats", "_sources"},
    "_rules": {"exceptions"},
    "parameters": {"exceptions", "_frames", "_rules", "_profile", "_tables"},
    "convergence": {"callbacks", "exceptions", "history"},
    "gradients": {"callbacks", "exceptions", "history", "plotting", "_flow"},
    "_flow": {"exceptions"},
    "activations": {"_tables", "callbacks", "exceptions", "history", "plotting"},
    "checkpoint": {"_io", "exceptions", "history"},
    "recipes": {"_checks", "data", "exceptions"},
    "_fused": {"exceptions", "models"},
    "_stacked": {"_checks", "exceptions"},
    "_graph": {"_batching", "exceptions", "recipes"},
    "_together": {"_batching", "_fused", "_stacked", "recipes"},
    "steps": {"_batching", "_fused", "_graph", "callbacks", "exceptions", "recipes"},
    "training": {"_batching", "_checks", "_progress", "_together", "callbacks", "checkpoint",
                 "data", "distributed", "exceptions", "history", "recipes", "steps"},
    "interpret": {"_checks", "_frames", "_tables", "data", "exceptions", "plotting"},
    "lr_find": {"_checks", "_frames", "_tables", "data", "exceptions", "recipes", "plotting"},
    "loggers": {"_checks", "_notebook", "_io", "callbacks", "exceptions", "history", "plotting"},
    "executors": {"_checks", "data", "exceptions"},
    "clusters": {"_checks", "exceptions"},
    "runspec": {"_checks", "_io", "exceptions", "history", "recipes", "registry", "steps"},
    "distributed": {"exceptions"},
    "__main__": {"cli"},
    "runs": {"_checks", "convergence", "exceptions", "executors", "gradients", "history",
             "registry", "runspec", "training"},
    "experiments": {"_checks", "_frames", "_io", "convergence", "data", "exceptions",
                    "executors", "gradients", "history", "runs", "_tables", "plotting"},
    "_budget": {"_checks", "exceptions"},
    "_course": set(),
    "_report_doc": {"_io", "_tables"},
    "_observations": {"history"},
    "_sections": {"_budget", "_course", "_observations", "_report_doc", "_tables"},
    "_sections_more": {"_budget", "_observations", "_report_doc", "_sections", "_tables",
                       "experiments", "plotting"},
    "report": {"_budget", "_io", "_sections", "_sections_more", "convergence", "data",
               "exceptions", "experiments", "gradients", "interpret", "parameters", "registry",
               "runs"},
    "cli": {"_checks", "_io", "callbacks", "clusters", "distributed", "exceptions",
            "executors", "experiments", "history", "data", "recipes", "registry", "parameters",
            "runs", "steps", "training", "report"},  # _io, runs: output folders, before a bar
}


def _resolve(node: ast.ImportFrom) -> str | None:
    """The absolute module of an ``from ... import``, relative imports included."""
    if node.level == 0:
        return node.module
    base = ["fmclassify"][: max(0, 2 - node.level)]  # modules sit directly in the package
    return ".".join([*base, node.module] if node.module else base) or None


def _typing_only(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for annotations, never executed."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports_of(path: Path) -> tuple[set[str], list[str]]:
    """The fmclassify modules ``path`` imports, and the underscore names it reads of them."""
    found: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}
    tree = ast.parse(path.read_text())
    skip = _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            module = _resolve(node)
            if module == "fmclassify":
                for a in node.names:
                    if a.name != "__version__":
                        found.add(a.name)
                        aliases[a.asname or a.name] = a.name
            elif module and module.startswith("fmclassify."):
                name = module.split(".")[1]
                found.add(name)
                private += [f"{name}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fmclassify."):
                    name = a.name.split(".")[1]
                    found.add(name)
                    aliases[a.asname or a.name] = name
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            private.append(f"{aliases[node.value.id]}.{node.attr}")
    return found, private


GRAPH = {m: imports_of(SRC / f"{m}.py")[0] - {m} for m in MODULES}


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_from_below(module):
    assert module in ALLOWED, f"new module {module}: add it to ALLOWED with its layer"
    extra = GRAPH[module] - ALLOWED[module]
    assert not extra, f"{module} imports {sorted(extra)}, which DESIGN.md puts above it"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_reads_another_modules_underscore_names(module):
    _, private = imports_of(SRC / f"{module}.py")
    assert not private, f"{module} reads {private}: make them public, or the split is wrong"


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH.get(m, ())):
            if state.get(n) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*path, m, n])}")
            if n in GRAPH and not state.get(n):
                visit(n, [*path, m])
        state[m] = 2

    for m in MODULES:
        if not state.get(m):
            visit(m, [])


def test_the_checker_sees_relative_imports_and_private_reads(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from .training import _FINITE\nfrom . import steps\n"
                      "import fmclassify.runs as r\nr._WORKER_DATA\n")
    found, private = imports_of(source)
    assert found == {"training", "steps", "runs"}
    assert sorted(private) == ["runs._WORKER_DATA", "training._FINITE"]


def test_public_names_are_exported_and_documented():
    for name in fmclassify.__all__:
        obj = getattr(fmclassify, name)
        if name != "__version__":
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
