"""Nothing re-implements ``_checks``: the hand-written integer check lives there alone.

The pattern ``isinstance(x, bool) or not isinstance(x, int)`` (the check that a value is an
int and not a bool) is found with ``ast``: an ``or`` whose operands include
``isinstance(NAME, bool)`` and ``not isinstance(NAME, int)`` for the same expression. Every
module outside ``_checks.py`` calls ``check_int``, ``check_seed`` or ``check_index`` instead, so
one wording reaches the user everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fmclassify

SRC = Path(fmclassify.__file__).parent

# Modules that still hold the pattern, each with the check and why; the list should shrink to
# nothing and then go.
ALLOWED = {
    # Formula.count: tests/test_parameters.py pins a TypeError there, and check_int raises
    # ConfigError (a ValueError); whether a plugin's bad count is a TypeError is that test's call
    "_rules.py",
}


def _isinstance_of(node: ast.expr, type_name: str) -> str | None:
    """``ast.dump`` of X when ``node`` is ``isinstance(X, type_name)``, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance" and len(node.args) == 2
            and isinstance(node.args[1], ast.Name) and node.args[1].id == type_name):
        return ast.dump(node.args[0])
    return None


def hand_written_int_checks(tree: ast.AST) -> list[int]:
    """Line numbers of each ``isinstance(x, bool) or not isinstance(x, int)`` in ``tree``."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)):
            continue
        bools = {_isinstance_of(v, "bool") for v in node.values} - {None}
        not_ints = {_isinstance_of(v.operand, "int") for v in node.values
                    if isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.Not)} - {None}
        if bools & not_ints:
            lines.append(node.lineno)
    return lines


def test_the_detector_finds_the_pattern_and_nothing_else() -> None:
    found = hand_written_int_checks(ast.parse(
        "if isinstance(n, bool) or not isinstance(n, int) or n < 1: pass\n"
        "if isinstance(a, bool) or not isinstance(b, int): pass\n"  # different names
        "if isinstance(x, bool) or not isinstance(x, (int, float)): pass\n"  # a number check
        "if not isinstance(k, bool) and isinstance(k, int): pass\n"
    ))
    assert found == [1]


def test_no_module_re_implements_check_int() -> None:
    offenders = {
        path.relative_to(SRC).as_posix(): lines
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "_checks.py"
        and path.relative_to(SRC).as_posix() not in ALLOWED
        and (lines := hand_written_int_checks(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not offenders, (
        f"hand-written int checks (use fmclassify._checks.check_int / check_seed): {offenders}"
    )

