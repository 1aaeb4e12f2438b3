"""Pieces every course's sections are built from.

The course's value beside ours, a row's outcome in words, the figures of an experiment in a
grid.

A question's :meth:`~fmclassify.course.Question.write` composes these with the
:class:`~fmclassify.course.Document` it is given; the assignment's questions use nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fmclassify._tables import NA
from fmclassify.history import UNSTABLE_DROP, UNSTABLE_LOSS_MARGIN

if TYPE_CHECKING:
    from fmclassify.course.answers import Answers
    from fmclassify.course.budget import Budget
    from fmclassify.course.document import Document, Picture
    from fmclassify.experiments import ExperimentResult, GroupRow
    from fmclassify.history import History
    from fmclassify.runs import RunResult

__all__ = ["compare", "comparisons", "instability_rule", "intro", "outcome", "pictures",
           "seed_grid", "seed_values", "why_no_number"]


def intro(doc: Document, m: Answers, budget_words: str | None = None) -> None:
    """The data, the budget and the conventions every table follows (a course's default).

    ``budget_words`` describes the budget (default: its images and epochs per run).
    """
    if budget_words is None:
        images = ("all training images" if m.budget.train_size is None else
                  f"the first {m.budget.train_size:,} training images")
        budget_words = f"budget '{m.budget.name}': {images}, {m.budget.epochs} epochs per run"
    trained = [r for res in m.results.values() for r in res.runs
               if r.history.status != "failed"]  # a failed run has no optimizer or device
    first = trained[0].history.metadata if trained else {}

    def setting(key: str, name: str) -> str:
        values = list(dict.fromkeys(str(r.history.metadata.get(key)) for r in trained))
        return (f"{name} {values[0] if values else None}" if len(values) <= 1 else
                f"{name}s {', '.join(values[:-1])} and {values[-1]} (per run, see its table)")

    doc.para(f"Data: {m.train.name}, {len(m.train):,} training and {len(m.test):,} test images "
             f"(checksum {m.train.checksum[:12] or 'n/a'}). {budget_words}; "
             f"{m.seeds} seed{'s' if m.seeds > 1 else ''} per configuration. "
             f"{setting('batch_size', 'Batch size').capitalize()}, "
             f"{setting('optimizer', 'optimizer')}, device "
             f"{first.get('device')}, torch {first.get('versions', {}).get('torch')}.")
    ours = m.published is not None
    doc.para("Accuracies are on the test set. 'Final' is after the last epoch, 'best' the "
             "highest over the epochs, 'avg' the mean over the epochs"
             + (" (the course's 'Avg Accuracy')" if ours else "")
             + f". A run whose loss became non-finite is reported as diverged; "
             f"{instability_rule()}." + (" 'Course in our range' says whether the course's "
                                         "number lies between our lowest and highest seed."
                                         if ours else ""))


def instability_rule() -> str:
    """The rule :attr:`fmclassify.History.unstable` applies, in one sentence."""
    return (f"a run that did not diverge is flagged unstable when an epoch's training loss "
            f"is more than {100 * UNSTABLE_LOSS_MARGIN:.0f}% above both the untrained "
            f"network's and that of guessing, ln(classes), or its test accuracy fell by more than "
            f"{100 * UNSTABLE_DROP:.0f} points between two epochs")


def why_no_number(row: GroupRow, kind: str, *, max_epochs: int | None = None,
                  threshold: float | None = None) -> str | None:
    """Why a row has no headline number (None when it has one), in words to act on."""
    n, diverged, failed = row.seeds, row.diverged, row.failed
    of = f" of {n} seed{'s' if n > 1 else ''}"
    if kind == "gradient_study" and row.gradient_steps is not None:  # a trace is its own
        if row.gradient_mean is not None:                             # measurement
            return None
        nonfinite = n if row.gradient_nonfinite is None else row.gradient_nonfinite
        return (f"the gradient became non-finite at step {row.gradient_nonfinite_step} "
                f"in {nonfinite}{of}: the steps are too large, and no "
                "statistic is taken over a trace that is not finite")
    if failed == n:
        return (f"failed in {n}{of}: an error ended every run (see runs/*.json); the same "
                "command trains them again")
    if diverged + failed == n:
        return (f"diverged in {diverged}{of}: the steps are too large for this model (its "
                "loss became infinite); a smaller learning rate trains")
    if kind == "convergence_study" and not row.converged:
        moved = "" if threshold is None else f" by {100 * threshold:g} points or more"
        return (f"not converged within {max_epochs} epochs in {n - diverged - failed}{of}: "
                f"the accuracy still moved{moved} per epoch; --full allows up to 600 epochs")
    return None


def outcome(row: GroupRow, kind: str, budget: Budget) -> str:
    """The row's reason for having no number, else what happened to its seeds."""
    reason = why_no_number(row, kind, max_epochs=budget.max_epochs, threshold=budget.threshold)
    return reason or row.outcome


def seed_values(result: ExperimentResult, key: Any,
                get: Callable[[History], float | None]) -> list[float]:
    """One value per seed of group ``key`` that neither diverged nor failed."""
    runs = result.groups().get(key, [])
    values = [get(r.history) for r in runs if r.history.status not in ("diverged", "failed")]
    return [float(v) for v in values if v is not None]


def compare(values: Sequence[float], course: float | None, *,
            scale: float = 100.0) -> tuple[str, str]:
    """(ours minus the course, whether the course lies within our seeds' range)."""
    if course is None or not values:
        return NA, NA
    mean = sum(values) / len(values)
    diff = f"{scale * (mean - course):+.1f}"
    if len(values) < 2:
        return diff, "n/a (1 seed)"
    low, high = min(values), max(values)
    return diff, "yes" if low <= course <= high else "no"


def pictures(doc: Document, result: ExperimentResult, prefix: str, kind: str,
             caption: Callable[[RunResult], str]) -> list[Picture]:
    """The figures of ``result.plot(kinds=(kind,))``, one per run, in the runs' order."""
    figures = result.plot(kinds=(kind,))
    out = []
    for name, run in zip(result.run_names(), result.runs, strict=True):
        if f"{kind}-{name}" in figures:  # a run with no epoch recorded has no figure
            out.append(doc.picture(figures[f"{kind}-{name}"],
                                   f"{prefix}-{kind}-{run.spec.key}",  # the report's file names
                                   caption(run)))
    return out


def comparisons(doc: Document, result: ExperimentResult, prefix: str,
                metrics: Sequence[str] = ("test_accuracy", "train_loss")) -> None:
    """The experiment's comparison figures (every run on one axes), side by side."""
    figures = result.plot(kinds=("comparison",))
    what = {"test_accuracy": "test accuracy", "train_loss": "training loss"}
    doc.grid([doc.picture(figures[f"comparison-{k}"], f"{prefix}-comparison-{k}",
                          f"Overall comparison: {what.get(k, k.replace('_', ' '))}, every run")
              for k in metrics if f"comparison-{k}" in figures], columns=2)


def seed_grid(doc: Document, m: Answers, result: ExperimentResult, prefix: str) -> None:
    """One loss/accuracy figure per run: a row per configuration, a column per seed."""
    shown = pictures(doc, result, prefix, "run",
                     lambda r: f"{r.spec.label}, seed {r.spec.seed}: loss and accuracy")
    columns = m.seeds if m.seeds <= 4 else 3  # a row per configuration, up to four seeds
    doc.grid(shown, columns=columns,
             header=[f"seed {s}" for s in range(m.seeds)] if 1 < m.seeds <= 4 else ())
