"""Seeds and spread: when the assignment's sentences may call one mean higher than another.

Every comparison of two learning rates or two networks reads rows of
:meth:`fmclassify.ExperimentResult.table`: the mean over seeds and, for several seeds, their
standard deviation (``<column>_std``). Two means differ *beyond the spread* when they are
further apart than the sum of their standard deviations, that is when their mean ± one standard
deviation ranges do not overlap; otherwise a sentence says "within the spread" and ranks
nothing. With one seed no spread is measured: the sentences say so once (:func:`one_seed`),
rather than rank as if the difference were settled.

Examples
--------
>>> a = {"final_accuracy": 0.85, "final_accuracy_std": 0.004}
>>> b = {"final_accuracy": 0.84, "final_accuracy_std": 0.003}
>>> apart(a, b, "final_accuracy")   # 1.0 point apart, spreads 0.4 + 0.3 points
True
>>> apart(a, {**b, "final_accuracy_std": 0.008}, "final_accuracy")
False
>>> apart({"final_accuracy": 0.85}, b, "final_accuracy") is None   # one seed: no spread
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ONE_SEED", "apart", "one_seed", "order", "pct", "thrashes", "trained"]

#: The caveat under comparisons where a row rests on one seed (``{what}``: "learning rate").
ONE_SEED = ("Where a {what} has one trained seed, no seed-to-seed spread was measured: its "
            "differences from the others are not tested against the noise of the seeds, which "
            "only more seeds that train can measure.")

Row = Mapping[str, Any]


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; ``"n/a"`` for None."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def trained(row: Row) -> int:
    """How many of a row's seeds trained: neither diverged nor failed (their numbers count)."""
    return int(row["seeds"] - row.get("diverged", 0) - row.get("failed", 0))


def thrashes(row: Row) -> bool:
    """Whether most of a row's trained seeds are unstable (one jumpy seed is not a verdict)."""
    return trained(row) > 0 and 2 * row["unstable"] > trained(row)


def apart(a: Row, b: Row, key: str) -> bool | None:
    """Whether two rows' means of ``key`` differ beyond the spread; None: no spread measured.

    Beyond the spread: further apart than the sum of the two seed standard deviations.
    """
    sa, sb = a.get(f"{key}_std"), b.get(f"{key}_std")
    if sa is None or sb is None or a.get(key) is None or b.get(key) is None:
        return None
    return bool(abs(a[key] - b[key]) > sa + sb)


def one_seed(rows: Sequence[Row], what: str) -> list[str]:
    """:data:`ONE_SEED` when some of several rows has one trained seed; else nothing."""
    return [ONE_SEED.format(what=what)] if len(rows) > 1 and any(
        trained(r) == 1 for r in rows) else []


def order(rows: Sequence[Row], key: str, name: Callable[[Row], str]) -> tuple[list[str], str]:
    """The rows' names from the highest ``key`` down, and that order in words.

    Neighbours within the spread are joined by "≈" instead of ">"; rows without a value of
    ``key`` are left out.
    """
    ranked = sorted((r for r in rows if r.get(key) is not None), key=lambda r: -r[key])
    words = name(ranked[0]) if ranked else ""
    for a, b in itertools.pairwise(ranked):
        words += (" ≈ " if apart(a, b, key) is False else " > ") + name(b)
    return [name(r) for r in ranked], words
