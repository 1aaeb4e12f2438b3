"""Observations for Q1.3 and Q1.6, written from measured numbers only (private).

Each sentence states a comparison that the tables above it support; a sentence whose premise
the data does not meet is left out rather than written with a hedge.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmclassify.experiments import ExperimentResult

__all__ = ["lr_observations", "model_observations"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def lr_observations(sweep: ExperimentResult, conv: ExperimentResult) -> list[str]:
    """Sentences on the learning rate from the Q1.1 sweep and the Q1.2 convergence study."""
    rows = sweep.table()
    notes: list[str] = []
    healthy = [r for r in rows if not r["diverged"] and r["final_accuracy"] is not None]
    for r in rows:
        if r["diverged"]:
            notes.append(f"lr {r['lr']:g} diverged ({r['status']}): its loss became non-finite, "
                         "so no accuracy is reported for it.")
        elif r["unstable"]:
            notes.append(f"lr {r['lr']:g} trained but thrashed: best accuracy "
                         f"{_pct(r['best_accuracy'])}, final {_pct(r['final_accuracy'])}, "
                         f"final training loss {r['final_train_loss']:.3f}; it is flagged "
                         "unstable, its steps overshoot the minimum.")
    stable = [r for r in healthy if not r["unstable"]]
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
    notes += _convergence_notes(conv, {r["lr"]: r for r in rows})
    return notes


def _convergence_notes(conv: ExperimentResult, sweep_rows: dict[Any, dict[str, Any]]) -> list[str]:
    notes: list[str] = []
    converged: list[tuple[float, float]] = []
    for r in conv.table():
        lr = r["lr"]
        if r["diverged"]:
            continue
        if r.get("converged_epoch") is not None and r["unstable"]:
            notes.append(f"lr {lr:g} met the convergence rule at epoch "
                         f"{r['converged_epoch']:.0f}, but at {_pct(r['final_accuracy'])} "
                         "accuracy: its accuracy stopped changing because the network stopped "
                         "learning, not because it reached a good minimum (flagged unstable).")
        elif r.get("converged_epoch") is not None:
            converged.append((lr, r["converged_epoch"]))
            line = (f"lr {lr:g} met the convergence rule at epoch {r['converged_epoch']:.0f} "
                    f"with {_pct(r['final_accuracy'])} accuracy")
            base = sweep_rows.get(lr)
            if base and base["final_accuracy"] is not None and r["final_accuracy"] is not None:
                diff = 100 * (r["final_accuracy"] - base["final_accuracy"])
                line += f" ({diff:+.1f} points against its Q1.1 run)"
            notes.append(line + ".")
        else:
            notes.append(f"lr {lr:g}: {r['status']}; its accuracy was still changing by more "
                         "than the threshold when the budget ran out.")
    if len(converged) >= 2:
        by_lr = sorted(converged, key=lambda t: -t[0])
        epochs = [e for _, e in by_lr]
        if all(a <= b for a, b in itertools.pairwise(epochs)):
            order = ", ".join(f"lr {lr:g}: {e:.0f}" for lr, e in by_lr)
            notes.append(f"Smaller learning rates needed more epochs to converge ({order}).")
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
