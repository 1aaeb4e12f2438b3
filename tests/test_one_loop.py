"""One loop, strategies behind it (STYLE.md habit 13; issue 21, item 5), checked with ``ast``.

Only the step strategies take a training step themselves: ``loss.backward()``,
``optimizer.zero_grad()`` and ``optimizer.step()`` are called in :mod:`fmclassify.steps` and
:mod:`fmclassify._graph` (the vmapped step of ``_stacked`` computes its gradients with
``torch.func.grad``, not ``.backward()``), never in the Trainer's loop or in ``lr_find``, which
call a step object. bf16 autocast is written once, in :func:`fmclassify.recipes.autocast`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import fmclassify

SRC = Path(fmclassify.__file__).parent
MODULES = sorted(p.stem for p in SRC.glob("*.py"))

#: The modules whose functions may take a training step themselves: the step strategies.
STEP_MODULES = {"steps", "_graph"}
#: Where ``torch.autocast`` may be written: recipes.autocast alone.
AUTOCAST_AT = {("recipes", "autocast")}

_OPTIMIZER = re.compile(r"(^|\.)_?opt(imizer)?$")  # optimizer, self._opt, self.optimizer
_AUTOCAST = re.compile(r"^torch\.(?:(?:cuda|cpu)\.)?(?:amp\.)?autocast$")


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """Every call in ``tree`` with the qualified name of the function or class around it."""
    found: list[tuple[str, ast.Call]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{where}.{child.name}" if where else child.name)
                continue
            if isinstance(child, ast.Call):
                found.append((where or "<module>", child))
            visit(child, where)

    visit(tree, "")
    return found


def steps_taken(source: str) -> list[str]:
    """``function: call`` for each backward pass or optimizer update written in ``source``."""
    out = []
    for where, call in _calls(ast.parse(source)):
        func = call.func
        if not isinstance(func, ast.Attribute):
            continue
        receiver = ast.unparse(func.value)
        if func.attr == "backward" or (func.attr in ("step", "zero_grad")
                                       and _OPTIMIZER.search(receiver)):
            out.append(f"{where}: {receiver}.{func.attr}()")
    return out


def autocasts(source: str) -> list[str]:
    """The functions of ``source`` that write ``torch.autocast`` (or an ``amp`` variant)."""
    return [where for where, call in _calls(ast.parse(source))
            if _AUTOCAST.match(ast.unparse(call.func))]


def _source(module: str) -> str:
    return (SRC / f"{module}.py").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_only_the_step_strategies_take_a_training_step(module):
    if module in STEP_MODULES:
        return
    found = steps_taken(_source(module))
    assert not found, (f"{module} takes a training step itself ({found}); call a step from "
                       "fmclassify.steps (make_step) instead, so it gets clipping, precision "
                       "and every step strategy")


def test_the_step_strategies_are_where_the_steps_are():
    """The check above sees real steps: the strategies' own calls are found."""
    assert any("AutogradStep.__call__: loss.backward()" in s
               for s in steps_taken(_source("steps")))
    assert any(".backward()" in s for s in steps_taken(_source("_graph")))


def test_lr_find_and_the_trainer_call_the_step_strategy():
    for module in ("lr_find", "training"):
        source = _source(module)
        assert steps_taken(source) == [], module
        assert "make_step(" in source, f"{module} does not build its step with make_step"


def test_bf16_autocast_is_written_once():
    def allowed(module: str, where: str) -> bool:  # inside the function, or one nested in it
        return any(module == m and (where == f or where.startswith(f"{f}."))
                   for m, f in AUTOCAST_AT)

    found = [(module, where) for module in MODULES for where in autocasts(_source(module))]
    assert any(module == "recipes" for module, _ in found)
    outside = [f"{module}.{where}" for module, where in found if not allowed(module, where)]
    assert not outside, f"torch.autocast outside recipes.autocast: {outside}"


def test_the_checker_sees_steps_and_autocasts():
    source = ("import torch\n"
              "def run(model, optimizer, x):\n"
              "    with torch.autocast('cpu', dtype=torch.bfloat16):\n"
              "        loss = model(x).sum()\n"
              "    optimizer.zero_grad()\n"
              "    loss.backward()\n"
              "    optimizer.step()\n"
              "class Loop:\n"
              "    def go(self):\n"
              "        self._opt.step()\n"
              "        self.schedule.step()  # a scheduler's step is not a training step\n"
              "        with torch.cuda.amp.autocast():\n"
              "            pass\n")
    assert steps_taken(source) == ["run: optimizer.zero_grad()", "run: loss.backward()",
                                   "run: optimizer.step()", "Loop.go: self._opt.step()"]
    assert autocasts(source) == ["run", "Loop.go"]
