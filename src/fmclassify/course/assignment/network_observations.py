"""The assignment's sentences on networks (Q1.4, Q1.6), from measured numbers only.

The report's Q1.6 and the gallery's Q1.4 and Q1.6 pages write these sentences; networks are
ranked by their final test accuracy, mean over seeds, and only beyond the spread of their seeds
(:mod:`fmclassify.course.assignment.spread`). :mod:`fmclassify.course.assignment.observations`
re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fmclassify.course.assignment.sentences import Sentences
from fmclassify.course.assignment.spread import apart, one_seed, pct, trained

if TYPE_CHECKING:
    from fmclassify.experiments import ExperimentResult

__all__ = ["model_observations", "structure_observations"]


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def model_observations(models: ExperimentResult) -> Sentences:
    """Q1.4's sentences: each network against the first, and which is most accurate.

    Returns
    -------
    Sentences
        One sentence per network after the first; then one that starts with "The most
        accurate model here" (a model only when it is ahead of every other beyond the spread,
        or there is one seed); then, when that lead is real, its price in parameters.
    """
    table = models.table()
    notes = [f"{r['model']} diverged in {r['diverged']} of {r['seeds']} seeds (its loss became "
             "non-finite)" + (f": its numbers are those of the {_seeds(trained(r))} that trained."
                              if trained(r) else ".") for r in table if r["diverged"]]
    rows = [r for r in table if r["final_accuracy"] is not None]
    if not rows:
        return Sentences([*notes, "No model finished a training epoch, so no comparison can be "
                                  "made."])
    ref = rows[0]
    for r in rows[1:]:
        ratio = r["parameters"] / ref["parameters"]
        gain = 100 * (r["final_accuracy"] - ref["final_accuracy"])
        line = (f"{r['model']} has {r['parameters']:,} trainable parameters, {ratio:.2f}x "
                f"{ref['model']}'s {ref['parameters']:,}, and ends {gain:+.1f} points from it "
                f"({pct(r['final_accuracy'])} against {pct(ref['final_accuracy'])}")
        line += ", within the spread of their seeds)" if apart(
            r, ref, "final_accuracy") is False else ")"
        if r.get("seconds_per_epoch") and ref.get("seconds_per_epoch"):
            line += (f"; an epoch takes {r['seconds_per_epoch'] / ref['seconds_per_epoch']:.1f}x"
                     " as long")
        notes.append(line + ".")
    best = max(rows, key=lambda r: r["final_accuracy"])
    close = [r for r in rows if r is not best and apart(best, r, "final_accuracy") is False]
    if close:
        notes.append(f"The most accurate model here is not settled by these runs: {best['model']} "
                     f"({pct(best['final_accuracy'])}) is within the spread of its seeds of "
                     + ", ".join(f"{r['model']} ({pct(r['final_accuracy'])})" for r in close)
                     + ".")
    else:
        notes.append(f"The most accurate model here is {best['model']} "
                     f"({pct(best['final_accuracy'])}).")
    fewest = min(rows, key=lambda r: r["parameters"])
    if best is not fewest and fewest not in close:
        per_m = 100 * (best["final_accuracy"] - fewest["final_accuracy"]) / (
            (best["parameters"] - fewest["parameters"]) / 1e6)
        notes.append(f"Against the smallest model ({fewest['model']}), {best['model']} buys "
                     f"{per_m:.2f} accuracy points per million extra parameters.")
    return Sentences(notes + one_seed(rows, "network"))


def structure_observations(models: ExperimentResult,
                           reports: Mapping[str, Any]) -> Sentences:
    """Q1.6's sentences: a convolutional network against the best MLP, where parameters sit, cost.

    Parameters
    ----------
    models : ExperimentResult
        Q1.4's :func:`~fmclassify.compare_models`.
    reports : mapping of str to ParameterReport
        Each model's :func:`~fmclassify.count_parameters` (its ``rows`` and ``trainable``).

    Returns
    -------
    Sentences
    """
    rows = {r["model"]: r for r in models.table() if r["final_accuracy"] is not None}
    convs = [m for m in rows if m in reports and any(
        row.layer_type.startswith("Conv") for row in reports[m].rows)]
    mlps = [m for m in rows if m in reports and m not in convs]
    notes: list[str] = []
    if convs and mlps:
        cnn = max(convs, key=lambda m: rows[m]["final_accuracy"])
        mlp = max(mlps, key=lambda m: rows[m]["final_accuracy"])
        a, b = rows[cnn], rows[mlp]
        lead = 100 * (a["final_accuracy"] - b["final_accuracy"])
        differ = apart(a, b, "final_accuracy")
        sizes = f"{a['parameters'] / b['parameters']:.2f} times its parameters"
        if differ is None and trained(a) + trained(b) > 2:
            notes.append(f"The CNN, {cnn} ({pct(a['final_accuracy'])}), and the best MLP, {mlp} "
                         f"({pct(b['final_accuracy'])}), differ by {abs(lead):.1f} points, but "
                         "one of them has a single trained seed: no spread tells whether that "
                         "is more than seed noise.")
        elif differ is False:
            notes.append(f"The CNN, {cnn} ({pct(a['final_accuracy'])}), and the best MLP, {mlp} "
                         f"({pct(b['final_accuracy'])}), are within the spread of their seeds, "
                         f"the CNN with {sizes}: at this budget the runs do not tell structure "
                         "apart from seed noise.")
        else:
            side = "ahead of" if lead >= 0 else "behind"
            line = (f"The CNN, {cnn}, ends {abs(lead):.1f} points {side} the best MLP, {mlp}, "
                    f"with {sizes}")
            bigger = [m for m in mlps if rows[m]["parameters"] > a["parameters"]]
            if lead > 0 and bigger:
                line += (f"; it beats {', '.join(bigger)} with fewer parameters: how the "
                         "parameters are arranged mattered more than how many there are")
            elif lead > 0:
                line += ("; it is also the larger, so this comparison alone does not separate "
                         "structure from size")
            else:
                line += ("; within this budget its structure did not pay off (batch norm and "
                         "dropout change how fast it learns)")
            notes.append(line + ".")
    for m in convs:
        report = reports[m]
        share = {kind: sum(r.numel for r in report.rows if r.layer_type.startswith(kind))
                 / report.trainable for kind in ("Conv", "BatchNorm", "Linear")}
        notes.append(f"Of {m}'s {report.trainable:,} parameters, {share['Conv']:.1%} are in its "
                     f"convolutions, {share['BatchNorm']:.2%} in batch norm and "
                     f"{share['Linear']:.1%} in its linear layers: a filter is shared by every "
                     "position of the image, so its count does not grow with the image.")
    if mlps:
        notes.append("In the MLPs the first layer, which gives every pixel its own weight per "
                     "unit, holds " + " and ".join(
                         f"{reports[m].rows[0].numel / reports[m].trainable:.0%} ({m})"
                         for m in mlps) + " of the parameters.")
    timed = [m for m in rows if rows[m].get("seconds_per_epoch")]
    if convs and len(timed) > 1 and convs[0] in timed:
        ref, cnn = timed[0], convs[0]
        if cnn != ref:
            t = rows[cnn]["seconds_per_epoch"] / rows[ref]["seconds_per_epoch"]
            p = rows[cnn]["parameters"] / rows[ref]["parameters"]
            notes.append(f"Per epoch {cnn} took {t:.1f}x the time of {ref} on this machine"
                         + (f", with only {p:.1f}x its parameters: a convolution's arithmetic "
                            "grows with the image, not with its parameter count."
                            if t > 1.5 * p else "."))
    return Sentences(notes + one_seed(list(rows.values()), "network"))
