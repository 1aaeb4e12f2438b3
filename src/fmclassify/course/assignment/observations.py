"""The assignment's sentences, written from measured numbers only.

Each sentence states what the tables above it support; a sentence whose premise the data does
not meet is left out rather than written with a hedge. A row without a number gets a reason a
student can act on (:func:`fmclassify.course.pieces.why_no_number`), never a bare "n/a".
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmclassify.experiments import ExperimentResult

__all__ = [
    "gradient_observation",
    "lr_observations",
    "model_observations",
    "recipe_observation",
    "trend",
]

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _thrashes(row: Mapping[str, Any]) -> bool:
    """Whether most of a row's trained seeds are unstable (one jumpy seed is not a verdict)."""
    trained = row["seeds"] - row.get("diverged", 0) - row.get("failed", 0)
    return trained > 0 and 2 * row["unstable"] > trained


def lr_observations(sweep: ExperimentResult, conv: ExperimentResult) -> list[str]:
    """Sentences on the learning rate from the Q1.1 sweep and the Q1.2 convergence study."""
    rows = sweep.table()
    notes: list[str] = []
    for r in rows:
        n = r["seeds"]
        if r["diverged"]:
            notes.append(f"lr {r['lr']:g} diverged in {r['diverged']} of {n} seeds: its loss "
                         "became non-finite, so those seeds give no accuracy.")
        if _thrashes(r) and r["final_accuracy"] is not None:
            notes.append(f"lr {r['lr']:g} trained but thrashed (unstable in {r['unstable']} of "
                         f"{n} seeds): best accuracy {_pct(r['best_accuracy'])}, final "
                         f"{_pct(r['final_accuracy'])}, final training loss "
                         f"{r['final_train_loss']:.3f}; its steps overshoot the minimum.")
    stable = [r for r in rows if r["final_accuracy"] is not None and not _thrashes(r)]
    if stable:
        best = max(stable, key=lambda r: r["final_accuracy"])
        epochs = sweep.runs[0].spec.epochs
        notes.append(f"After {epochs} epochs the best learning rate is {best['lr']:g}, with "
                     f"{_pct(best['final_accuracy'])} final test accuracy.")
        for r in sorted(stable, key=lambda r: -r["lr"]):
            if r is best or r["lr"] > best["lr"]:
                continue
            gap = 100 * (best["final_accuracy"] - r["final_accuracy"])
            notes.append(f"lr {r['lr']:g} ends {gap:.1f} points lower "
                         f"({_pct(r['final_accuracy'])}): smaller steps make less progress in "
                         "the same number of epochs.")
    return notes + _convergence_notes(conv, {r["lr"]: r for r in rows})


def _convergence_notes(conv: ExperimentResult, sweep_rows: dict[Any, dict[str, Any]]) -> list[str]:
    notes: list[str] = []
    converged: list[tuple[float, float]] = []
    for r in conv.table():
        lr, epoch = r["lr"], r.get("converged_epoch")
        if epoch is None:
            continue
        if _thrashes(r):
            notes.append(f"lr {lr:g} met the convergence rule at epoch {epoch:.0f}, but at "
                         f"{_pct(r['final_accuracy'])} accuracy: its accuracy stopped changing "
                         "because the network stopped learning, not because it reached a good "
                         "minimum (flagged unstable).")
            continue
        converged.append((lr, epoch))
        line = (f"lr {lr:g} met the convergence rule at epoch {epoch:.0f} with "
                f"{_pct(r['final_accuracy'])} accuracy")
        if r["unstable"]:
            line += f" (unstable in {r['unstable']} of {r['seeds']} seeds)"
        base = sweep_rows.get(lr)
        if base and base["final_accuracy"] is not None and r["final_accuracy"] is not None:
            diff = 100 * (r["final_accuracy"] - base["final_accuracy"])
            line += f" ({diff:+.1f} points against its Q1.1 runs)"
        notes.append(line + ".")
    if len(converged) >= 2:
        by_lr = sorted(converged, key=lambda t: -t[0])
        epochs = [e for _, e in by_lr]
        order = ", ".join(f"lr {lr:g}: {e:.0f}" for lr, e in by_lr)
        if all(a <= b for a, b in itertools.pairwise(epochs)):
            notes.append(f"Smaller learning rates needed more epochs to converge ({order}).")
        else:
            notes.append(f"The epochs to convergence do not simply grow as the learning rate "
                         f"shrinks ({order}): a rule on the change per epoch also stops a run "
                         "that learns slowly but steadily.")
    return notes


def model_observations(models: ExperimentResult) -> list[str]:
    """Sentences on depth and width from the Q1.4 comparison."""
    rows = [r for r in models.table() if r["final_accuracy"] is not None]
    if not rows:
        return ["No model finished a training epoch, so no comparison can be made."]
    ref = rows[0]
    notes: list[str] = []
    for r in rows[1:]:
        ratio = r["parameters"] / ref["parameters"]
        gain = 100 * (r["final_accuracy"] - ref["final_accuracy"])
        line = (f"{r['model']} has {r['parameters']:,} trainable parameters, {ratio:.2f}x "
                f"{ref['model']}'s {ref['parameters']:,}, and ends {gain:+.1f} points from it "
                f"({_pct(r['final_accuracy'])} against {_pct(ref['final_accuracy'])})")
        if r.get("seconds_per_epoch") and ref.get("seconds_per_epoch"):
            line += (f"; an epoch takes {r['seconds_per_epoch'] / ref['seconds_per_epoch']:.1f}x"
                     " as long")
        notes.append(line + ".")
    best = max(rows, key=lambda r: r["final_accuracy"])
    notes.append(f"The most accurate model here is {best['model']} "
                 f"({_pct(best['final_accuracy'])}).")
    fewest = min(rows, key=lambda r: r["parameters"])
    if best is not fewest:
        per_m = 100 * (best["final_accuracy"] - fewest["final_accuracy"]) / (
            (best["parameters"] - fewest["parameters"]) / 1e6)
        notes.append(f"Against the smallest model ({fewest['model']}), {best['model']} buys "
                     f"{per_m:.2f} accuracy points per million extra parameters.")
    return notes


def trend(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The mean ``|value|`` over the first and the last tenth of a trace (None if not finite)."""
    if not values or any(v is None for v in values):
        return None
    k = max(1, len(values) // 10)
    sizes = [abs(float(v)) for v in values if v is not None]
    return statistics.fmean(sizes[:k]), statistics.fmean(sizes[-k:])


def _change(early: float, late: float) -> str:
    if late < early:
        return f"down {100 * (1 - late / early):.0f}%"
    return f"up {late / early:.3g}x" if early else "up from 0"


def gradient_observation(lr: float, signed: tuple[float, float], size: tuple[float, float],
                         hint: str, steps: int) -> str:
    """What the course's hint predicts against what the two traces of one lr measured."""
    k = max(1, steps // 10)
    first, last = f"steps 1-{k}", f"steps {steps - k + 1}-{steps}"
    fell = [signed[1] < signed[0], size[1] < size[0]]
    verdict = ("it holds for both" if all(fell) else "it holds for neither" if not any(fell)
               else "it holds for the signed mean only" if fell[0]
               else "it holds for the size only")
    return (f"The course's hint says {hint}; at lr {lr:g} the size of the signed mean gradient "
            f"went from {signed[0]:.2e} ({first}) to {signed[1]:.2e} ({last}), "
            f"{_change(*signed)}, and the mean absolute gradient from {size[0]:.2e} to "
            f"{size[1]:.2e}, {_change(*size)}: {verdict}.")


def recipe_observation(plain: Mapping[str, Any] | None, recipe: Mapping[str, Any],
                       recipe_epochs: int, plain_epochs: int | None,
                       course: float | None) -> str:
    """How far the modern recipe takes the course's CNN, against its plain SGD runs."""
    line = (f"With the modern recipe the course's CNN reaches {_pct(recipe['final_accuracy'])} "
            f"after {recipe_epochs} epochs")
    if plain is not None and plain.get("final_accuracy") is not None:
        gain = 100 * (recipe["final_accuracy"] - plain["final_accuracy"])
        line += (f", {gain:+.1f} points from the course's setup ({_pct(plain['final_accuracy'])}"
                 f" after {plain_epochs} epochs, same data)")
    if course is not None:
        line += (f"; the course reported {_pct(course)} (its mean over 10 epochs) for the "
                 "same network")
    return line + ": the difference is the training setup, not the network."
