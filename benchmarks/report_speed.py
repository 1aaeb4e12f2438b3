"""The assignment report of this tree against another tree's (e.g. main before a change).

Each report runs as its own ``fmclassify assignment`` process with a fresh output folder, the
trees one after the other (``--order`` picks which first), on the real Fashion-MNIST. Prints
each report's wall time, the ratio, and every number the two reports' tables share
(``results.json``), side by side, so that a number that moved is seen::

    python report_speed.py --other /tmp/main-before --budget full
    python report_speed.py --other /tmp/main-before --budget before-quick
    python report_speed.py --other /tmp/main-before --budget same-full --train-size 3000 \
        --test-size 2000 --repeats 2

``--budget full`` is the course's protocol (``--full``) with one seed in both trees (the other
tree's default); this tree skips its modern-recipe section (a budget of ``recipe_epochs=0``),
which is not the course's protocol and which the other tree does not have (``--with-recipe``
keeps it), but keeps its per-layer gradient flow. ``before-quick`` trains this tree on the
quick budget main had before the report issue (20,000 images, 3 epochs, convergence within 15
epochs at 0.1 points, raw accuracy, 3 epochs of patience) against the other tree's
``--quick``, so the same runs are compared. ``same-full`` runs one and the same command in both
trees, ``fmclassify assignment --full`` with ``--seeds``, ``--train-size`` and ``--test-size``,
for two trees that both have the course's full protocol and its flags (e.g. before and after
a refactoring that must not change what runs): every planned run of the protocol, with its
epochs and convergence rule, on a subset, so the wall time of the whole command (planning,
training, the document) is compared in minutes rather than hours. ``--repeats N`` runs the
pair N times, alternating which tree goes first, and reports each tree's best time.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent.parent

BEFORE_QUICK = ("Budget('before-quick', train_size=20_000, epochs=3, max_epochs=15, "
                "threshold=0.001, patience=3, window=1, recipe_epochs=3)")


def command(tree: Path, budget: str, out: Path, this: bool, recipe: bool,
            args: argparse.Namespace) -> list[str]:
    """The Python command that writes one report of ``tree`` into ``out``."""
    path = f"import sys; sys.path.insert(0, {str(tree / 'src')!r}); "
    if budget == "same-full":
        flags = ["assignment", "--full", "--seeds", str(args.seeds), "--out", str(out),
                 "--no-progress"]
        for flag, value in (("--train-size", args.train_size), ("--test-size", args.test_size)):
            if value is not None:
                flags += [flag, str(value)]
        return [sys.executable, "-c", path + f"from fmclassify.cli import main; main({flags!r})"]
    plan = {"before-quick": BEFORE_QUICK,
            "full": "BUDGETS['full']" if recipe else
                    "dataclasses.replace(BUDGETS['full'], recipe_epochs=0)"}[budget]
    if this:
        body = ("import dataclasses; from fmclassify.report import BUDGETS, Budget, "
                f"run_assignment; run_assignment({str(out)!r}, budget={plan}, seeds=1, "
                "progress=False)")
    else:
        flag = "--full" if budget == "full" else "--quick"
        body = ("from fmclassify.cli import main; "
                f"main(['assignment', {flag!r}, '--seeds', '1', '--out', {str(out)!r}, "
                "'--no-progress'])")
    return [sys.executable, "-c", path + body]


def numbers(out: Path) -> dict[tuple[str, str, str], float]:
    """Every finite number of the report's tables, keyed by (table, row, column)."""
    tables = json.loads((out / "results.json").read_text())["tables"]
    found = {}
    for name, rows in tables.items():
        for row in rows:
            label = str(row.get("lr", row.get("model")))
            for column, value in row.items():
                if (isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and "seconds" not in column):
                    found[(name, label, column)] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--budget", choices=("full", "before-quick", "same-full"),
                        default="full")
    parser.add_argument("--seeds", type=int, default=1, help="same-full: seeds per run")
    parser.add_argument("--train-size", type=int, help="same-full: training images")
    parser.add_argument("--test-size", type=int, help="same-full: test images")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the pair this many times, alternating the order")
    parser.add_argument("--order", choices=("other-first", "this-first"), default="other-first")
    parser.add_argument("--with-recipe", action="store_true",
                        help="this tree's full report with its modern-recipe section")
    args = parser.parse_args()
    print(machine())
    trees = {"other": args.other.resolve(), "this": HERE}
    order = ("other", "this") if args.order == "other-first" else ("this", "other")
    seconds: dict[str, float] = {}
    outs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name in order if repeat % 2 == 0 else order[::-1]:
                outs[name] = Path(tmp, f"{name}-{repeat}")
                started = time.perf_counter()
                subprocess.run(command(trees[name], args.budget, outs[name], name == "this",
                                       args.with_recipe, args),
                               check=True, stdout=subprocess.DEVNULL)
                took = time.perf_counter() - started
                seconds[name] = min(seconds.get(name, math.inf), took)
                print(f"{name} ({trees[name]}), repeat {repeat + 1}: {took:.1f} s", flush=True)
        ours, theirs = numbers(outs["this"]), numbers(outs["other"])
    print("\n| table | row | column | other | this |\n|---|---|---|---|---|")
    for key in sorted(set(ours) & set(theirs)):
        a, b = theirs[key], ours[key]
        mark = "" if a == b else " (moved)"
        print(f"| {' | '.join(key)} | {a:.6g} | {b:.6g}{mark} |")
    best = " (best of each)" if args.repeats > 1 else ""
    print(f"\nreport, budget {args.budget}{best}: other {seconds['other']:.1f} s, this "
          f"{seconds['this']:.1f} s: this is {seconds['other'] / seconds['this']:.2f}x as fast")


if __name__ == "__main__":
    main()
