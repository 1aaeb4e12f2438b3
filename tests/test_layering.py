"""Keep the module layering of DESIGN.md honest.

Each module imports only from below it (relative imports, lazy imports inside functions and
type-only imports under ``if TYPE_CHECKING:`` count too), the import graph has no cycle even
counting those, ``__version__`` comes from a module that imports nothing, every module may use
``_checks``, and no module reads another module's underscore names (``from fmclassify.training
import _x`` or ``training._x``; importing a public name of a private module is fine).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fmclassify

PACKAGE = "__init__"  # the package itself: ``import fmclassify``, ``from fmclassify import Name``
SRC = Path(fmclassify.__file__).parent


def module_name(path: Path) -> str:
    """A module's dotted name inside the package: ``runs``, ``course``, ``course.answers``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]  # a subpackage is its __init__
    return ".".join(parts)


PATHS = {module_name(p): p for p in SRC.rglob("*.py")}
MODULES = sorted(PATHS)


# Each module may import the fmclassify modules listed for it (at the top, lazily or only for
# annotations), nothing else; besides, every module may use _checks (EVERYWHERE, below).
ALLOWED = {
    PACKAGE: {m for m in MODULES if "." not in m} - {
        PACKAGE, "__main__", "cli", "_cli_course", "_cli_shared", "_cli_train", "course"},
    "_version": set(),  # the version string: imports nothing, so anyone may import it
    "exceptions": set(),
    "_io": {"exceptions"},  # OutputError: a failed write is one library error
    "_checks": {"exceptions"},
    "_notebook": set(),
    "_progress": {"_notebook"},
    "_tables": set(),
    "_profile": {"exceptions"},
    "history": {"_io", "_tables", "plotting"},  # plotting lazily, from History.plot
    "_figures": {"_io", "_notebook", "exceptions"},
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
    "_parameter_walk": {"exceptions", "_rules"},
    "parameters": {"exceptions", "_frames", "_parameter_walk", "_rules", "_profile", "_tables",
                   "registry"},  # registry: compare_parameters builds models by name
    "convergence": {"callbacks", "exceptions", "history"},
    "gradients": {"callbacks", "exceptions", "history", "plotting", "_flow", "_gradient_trace"},
    "_gradient_trace": {"exceptions"},
    "_flow": {"exceptions"},
    "activations": {"_tables", "callbacks", "exceptions", "history", "plotting"},
    "checkpoint": {"_io", "exceptions", "history"},
    "recipes": {"_checks", "data", "exceptions"},
    "_fused": {"exceptions", "models"},
    "_stacked": {"_checks", "exceptions", "recipes"},
    "_graph": {"_batching", "exceptions", "recipes"},
    "_together": {"_batching", "_fused", "_stacked", "recipes"},
    "steps": {"_batching", "_fused", "_graph", "callbacks", "exceptions", "recipes"},
    "_run_end": {"history"},
    "_drivers": {"_batching", "_run_end", "_together", "history", "steps"},
    "_run_metadata": {"data", "recipes"},  # data, recipes: annotations only
    "_fit_checks": {"_run_metadata", "callbacks", "data", "exceptions"},
    "_evaluation": {"data", "distributed", "history", "recipes"},
    "_trainer_state": {"callbacks", "checkpoint"},
    "_run_data": {"data", "distributed", "recipes"},
    "_step_choice": {"callbacks", "steps"},
    "training": {"_batching", "_checks", "_drivers", "_evaluation", "_fit_checks", "_progress",
                 "_run_data", "_run_end", "_run_metadata", "_step_choice", "_together",
                 "_trainer_state", "callbacks", "data", "distributed", "exceptions", "history",
                 "recipes", "steps"},
    "interpret": {"_checks", "_frames", "_tables", "data", "exceptions", "plotting"},
    "lr_find": {"_batching", "_checks", "_frames", "_tables", "data", "exceptions", "recipes",
                "plotting", "steps"},
    "loggers": {"_checks", "_notebook", "_io", "callbacks", "exceptions", "history", "plotting"},
    "executors": {"_checks", "data", "exceptions"},
    "clusters": {"_checks", "exceptions"},
    "runspec": {"_checks", "_io", "exceptions", "history", "recipes", "registry", "steps"},
    "distributed": {"exceptions"},
    "__main__": {"cli"},
    "runs": {"_checks", "convergence", "exceptions", "executors", "gradients", "history",
             "registry", "runspec", "training"},
    "_summaries": {"history", "runspec"},
    "results": {"_checks", "_frames", "_io", "_summaries", "_tables", "exceptions", "history",
                "plotting", "runspec"},
    "experiments": {"_checks", "convergence", "data", "exceptions", "executors", "gradients",
                    "results", "runs"},
    # the course package: a course's parts first, then the runner, then the first course
    "course.budget": {"_checks", "data", "exceptions"},  # data: annotations only
    "course.document": {"_io", "_tables"},
    "course.questions": {"_checks", "course.answers", "course.budget", "course.document",
                         "runs"},  # all but _checks: annotations only
    "course.answers": {"course.budget", "data", "exceptions",
                       "experiments", "parameters", "runs"},  # annotations, but exceptions
    "course.pieces": {"_tables", "course.answers", "course.budget", "course.document",
                      "experiments", "history", "runs"},  # history's constants; the rest types
    "course.catalog": {"_checks", "course.answers", "course.budget", "course.document",
                       "course.questions", "exceptions"},
    "course.store": {"_io", "experiments", "runs"},
    "course.runner": {"_checks", "_io", "_tables", "course.answers", "course.budget",
                      "course.catalog", "course.document", "course.pieces",
                      "course.questions", "course.store", "data", "exceptions", "experiments",
                      "parameters", "plotting", "registry", "runs"},
    "course.assignment.published": set(),
    "course.assignment.spread": set(),
    "course.assignment.sentences": set(),
    "course.assignment.network_observations": {  # experiments: annotations only
        "course.assignment.sentences", "course.assignment.spread", "experiments"},
    "course.assignment.observations": {  # experiments: annotations only
        "course.assignment.network_observations", "course.assignment.sentences",
        "course.assignment.spread", "experiments"},
    "course.assignment.learning_rates": {
        "_tables", "convergence", "course.answers", "course.assignment.observations",
        "course.assignment.published", "course.budget", "course.document", "course.pieces",
        "course.questions", "experiments"},
    "course.assignment.networks": {
        "_tables", "course.answers", "course.assignment.learning_rates",
        "course.assignment.observations", "course.document", "course.pieces",
        "course.questions", "course.store", "experiments", "interpret", "runs"},
    "course.assignment.gradient": {
        "_tables", "course.answers", "course.assignment.learning_rates",
        "course.assignment.observations", "course.document", "course.pieces",
        "course.questions", "experiments", "gradients", "runs"},
    "course.assignment.recipe": {
        "_tables", "course.answers", "course.assignment.observations", "course.budget",
        "course.document", "course.pieces", "course.questions", "experiments"},
    "course.assignment": {
        "course.answers", "course.assignment.gradient", "course.assignment.learning_rates",
        "course.assignment.networks", "course.assignment.published",
        "course.assignment.recipe", "course.budget", "course.catalog", "course.document",
        "course.pieces"},
    "course": {"_tables", "course.answers", "course.assignment", "course.budget",
               "course.catalog", "course.document", "course.pieces", "course.questions",
               "course.runner"},
    "report": {"course.assignment", "course.budget", "course.catalog", "course.runner",
               "data", "runs"},
    "_cli_shared": {"_checks", "clusters", "data", "exceptions", "executors"},
    "_cli_train": {"_checks", "_cli_shared", "_io", "callbacks", "distributed", "exceptions",
                   "experiments", "history", "parameters", "recipes", "registry", "runs",
                   "steps", "training"},
    "_cli_course": {"_cli_shared", "_cli_train", "course", "exceptions"},
    "cli": {"_cli_course", "_cli_shared", "_cli_train", "data", "exceptions"},
}


# Any module may import these two, which stand on nothing above them: _checks (one validation
# helper per kind of argument, DESIGN.md: a module that checks input uses it, never a copy) and
# _version (the version string; it imports nothing).
EVERYWHERE = {m: {"_checks", "_version"} for m in MODULES}
EVERYWHERE["exceptions"] = {"_version"}  # _checks raises the errors exceptions defines


def _resolve(node: ast.ImportFrom, here: str = "") -> str | None:
    """The absolute module of an ``from ... import``, relative imports included.

    ``here`` is the importing module's dotted name inside the package (``course.answers``).
    """
    if node.level == 0:
        return node.module
    package = ["fmclassify", *here.split(".")] if here and here in PATHS and PATHS[
        here].name == "__init__.py" else ["fmclassify", *here.split(".")[:-1]]
    if here == PACKAGE:
        package = ["fmclassify"]
    base = package[: max(1, len(package) - (node.level - 1))]
    return ".".join([*base, node.module] if node.module else base) or None


def _known(dotted: str) -> str | None:
    """The longest fmclassify module ``fmclassify.a.b.c`` names (its dotted name), else None."""
    parts = dotted.split(".")[1:]
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in PATHS:
            return name
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imports_of(path: Path) -> tuple[set[str], list[str]]:
    """The fmclassify modules ``path`` imports, and the underscore names it reads of them.

    Every import counts: at the top, inside functions (lazy), and under ``if TYPE_CHECKING:``
    (annotations only, but a cycle through them is still a knot a reader has to untie).
    ``from fmclassify import name`` is the module ``name`` when there is one, else the package
    (``__init__``, which imports every public module). A private module (``fmclassify._checks``)
    may be imported; a private name of another module may not be read.
    """
    found: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> module it stands for
    here = module_name(path) if SRC in path.parents else path.stem
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(node, here)
            if module == "fmclassify" or (module and module.startswith("fmclassify.")):
                owner = PACKAGE if module == "fmclassify" else _known(module)
                if owner is None:
                    continue
                prefix = "" if owner == PACKAGE else owner + "."
                for a in node.names:
                    name = f"{prefix}{a.name}" if f"{prefix}{a.name}" in PATHS else owner
                    found.add(name)
                    aliases[a.asname or a.name] = name
                    if name == owner and _private(a.name):
                        private.append(f"{'fmclassify' if owner == PACKAGE else owner}."
                                       f"{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "fmclassify" or a.name.startswith("fmclassify."):
                    name = _known(a.name) or PACKAGE
                    found.add(name)
                    if a.asname:  # ``import fmclassify.runs as r``: r is runs
                        aliases[a.asname] = name
                    else:  # ``import fmclassify.runs`` binds fmclassify; see below
                        aliases["fmclassify"] = PACKAGE
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        owner = ast.unparse(node.value)  # ``r`` or ``fmclassify.runs``
        if owner in aliases:
            module = aliases[owner]
        elif owner.startswith("fmclassify.") and _known(owner):
            module = _known(owner) or PACKAGE
        else:
            continue
        private.append(f"{'fmclassify' if module == PACKAGE else module}.{node.attr}")
    return found, [p for p in private if p.rsplit(".", 1)[0] != here]


def private_names_defined(tree: ast.AST) -> set[str]:
    """The underscore names a module defines: functions, classes, variables, attributes it sets."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            out.add(n.attr)  # self._x = ..., and Together's optimizer._opt_called = True
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
    return {name for name in out if _private(name)}


DEFINED = {m: private_names_defined(ast.parse(PATHS[m].read_text())) for m in MODULES}


def foreign_private_attributes(path: Path, defined: dict[str, set[str]]) -> list[str]:
    """``obj._x`` reads of an underscore name that only other fmclassify modules define.

    Static analysis cannot tell whose object ``obj`` is, so a name this module defines itself
    (``t._shard`` in training, where Trainer sets it) passes, and so does one no fmclassify
    module defines (torch's ``torch._foreach_add``, ``module._forward_hooks``).
    """
    tree = ast.parse(path.read_text())
    own = private_names_defined(tree)
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and _private(n.attr) and n.attr not in own:
            here = module_name(path) if SRC in path.parents else path.stem
            owners = sorted(m for m, names in defined.items()
                            if n.attr in names and m != here)
            if owners:
                found.append(f"{ast.unparse(n)} (defined in {', '.join(owners)})")
    return found


# Every module's imports, lazy and type-only ones included; ``__init__`` is the package.
GRAPH = {m: imports_of(PATHS[m])[0] - {m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge a depth-first walk meets (none: the graph is a layering)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                found.append([*path[path.index(n):], m, n] if n in path else [m, n])
            elif n in graph and not state.get(n):
                visit(n, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [])
    return found


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_from_below(module):
    assert module in ALLOWED, f"new module {module}: add it to ALLOWED with its layer"
    extra = GRAPH[module] - ALLOWED[module] - EVERYWHERE.get(module, set())
    assert not extra, f"{module} imports {sorted(extra)}, which DESIGN.md puts above it"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_reads_another_modules_underscore_names(module):
    _, private = imports_of(PATHS[module])
    private += foreign_private_attributes(PATHS[module], DEFINED)
    assert not private, f"{module} reads {private}: make them public, or the split is wrong"


def test_the_import_graph_has_no_cycle():
    found = [" -> ".join(c) for c in cycles(GRAPH)]
    assert not found, "import cycles (lazy and type-only imports count):\n" + "\n".join(found)


def test_version_comes_from_a_module_that_imports_nothing():
    tree = ast.parse(PATHS["_version"].read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]


def test_version_matches_the_project_metadata():
    tomllib = pytest.importorskip("tomllib")
    from fmclassify._version import __version__

    project = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]
    assert fmclassify.__version__ == __version__ == project["version"]


def test_the_checker_sees_relative_imports_and_private_reads(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from .training import _FINITE\nfrom . import steps\n"
                      "import fmclassify.runs as r\nr._WORKER_DATA\n")
    found, private = imports_of(source)
    assert found == {"training", "steps", "runs"}
    assert sorted(private) == ["runs._WORKER_DATA", "training._FINITE"]


def test_the_checker_sees_lazy_and_type_only_imports(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fmclassify.history import History\n"
        "def f():\n    from fmclassify import __version__, plotting\n"
        "    import fmclassify.runs\n    return plotting._METRIC_LABELS, fmclassify.runs._x\n"
        "def g():\n    from fmclassify._checks import check_int\n    from fmclassify import _io\n"
    )
    found, private = imports_of(source)
    assert found == {"history", PACKAGE, "plotting", "runs", "_checks", "_io"}
    assert sorted(private) == ["plotting._METRIC_LABELS", "runs._x"]  # private modules are fine


def test_the_checker_sees_another_modules_private_attributes(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f(trainer, opt, model):\n    trainer._shard.world\n"
                      "    opt._opt_called = True\n    model._forward_hooks\n")
    found = foreign_private_attributes(source, DEFINED)
    assert found == ["trainer._shard (defined in training)"]  # opt's is its own, hooks torch's


def test_the_cycle_finder_names_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_public_names_are_exported_and_documented():
    for name in fmclassify.__all__:
        obj = getattr(fmclassify, name)
        if name != "__version__":
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"


def test_the_architecture_page_names_every_module_and_no_other():
    """docs/architecture.rst is the map of the layers: every module on it, none that is gone."""
    import re

    page = (SRC.parents[1] / "docs" / "architecture.rst").read_text()
    named = set(re.findall(r"``([\w.]+)(?:\.\*)?``", page))
    for module in MODULES:
        shown = module if not module.startswith("course.assignment.") else "course.assignment"
        assert shown in named, f"docs/architecture.rst does not place {module} in a layer"
    stale = {n for n in named if (n.startswith("_") or n.startswith("course."))
             and n not in MODULES and n not in ("__all__",)}
    assert not stale, f"docs/architecture.rst names modules that do not exist: {sorted(stale)}"


def _code_lines(node: ast.AST, lines: int, docstrings: list[ast.Expr]) -> int:
    """Lines of ``node`` (``lines`` of them) less the docstrings inside it."""
    lo, hi = getattr(node, "lineno", 1), getattr(node, "end_lineno", lines)
    return hi - lo + 1 - sum(d.end_lineno - d.lineno + 1 for d in docstrings  # type: ignore
                             if d.lineno >= lo and d.end_lineno <= hi)


@pytest.mark.parametrize("module", MODULES)
def test_modules_and_classes_stay_small(module):
    """DESIGN.md: no module over 400 lines, no class over 250, docstrings aside."""
    text = PATHS[module].read_text()
    tree = ast.parse(text)
    docstrings = [n.body[0] for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                    ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)
                  and isinstance(n.body[0].value.value, str)]
    lines = len(text.splitlines())
    assert _code_lines(tree, lines, docstrings) <= 400, f"{module} is over 400 lines"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            size = _code_lines(node, lines, docstrings)
            assert size <= 250, f"class {node.name} of {module} is {size} lines"
