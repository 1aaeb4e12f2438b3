"""Keep the module layering of DESIGN.md honest: each module imports only from below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fmclassify

SRC = Path(fmclassify.__file__).parent

# Each module may import the fmclassify modules listed for it (lazily or not), nothing else.
ALLOWED = {
    "exceptions": set(),
    "history": {"plotting"},  # History.plot() imports plotting lazily
    "callbacks": {"history"},
    "registry": {"exceptions", "models"},  # models are registered on first lookup
    "models": {"exceptions", "registry"},
    "_formats": {"exceptions"},
    "_sources": {"exceptions", "_formats"},
    "_batching": {"exceptions"},
    "data": {"_batching", "exceptions", "_formats", "_sources"},
    "_rules": {"exceptions"},
    "parameters": {"exceptions", "_rules"},
    "convergence": {"callbacks", "exceptions", "history"},
    "gradients": {"callbacks", "exceptions", "history", "plotting"},
    "plotting": {"history", "exceptions"},
    "checkpoint": {"exceptions", "history"},
    "training": {"callbacks", "checkpoint", "data", "exceptions", "history", "_fused"},
    "_tables": set(),
    "_fused": {"exceptions", "models"},
    "_observations": {"experiments"},
    "_together": {"_fused", "callbacks", "data", "history", "training"},
    "experiments": {"_together", "convergence", "data", "exceptions", "gradients", "history",
                    "registry", "training", "_tables", "plotting"},
    "report": {"_observations", "_tables", "data", "exceptions", "experiments", "history",
               "parameters", "registry", "plotting"},
    "cli": {"callbacks", "exceptions", "history", "data", "registry", "parameters", "training",
            "report"},
}


def imported_fmclassify_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "fmclassify":
                found |= {a.name for a in node.names if a.name != "__version__"}
            elif node.module.startswith("fmclassify."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("fmclassify.")}
    return found


@pytest.mark.parametrize("module", sorted(p.stem for p in SRC.glob("*.py")
                                          if p.stem != "__init__"))
def test_module_imports_only_from_below(module):
    assert module in ALLOWED, f"new module {module}: add it to ALLOWED with its layer"
    extra = imported_fmclassify_modules(SRC / f"{module}.py") - ALLOWED[module] - {module}
    assert not extra, f"{module} imports {sorted(extra)}, which DESIGN.md puts above it"


def test_public_names_are_exported_and_documented():
    for name in fmclassify.__all__:
        obj = getattr(fmclassify, name)
        if name != "__version__":
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
