"""The report's sections: every table beside the course's value, and every figure (private).

What :func:`fmclassify.report.run_assignment` measured (:class:`Measured`) becomes sections
of a :class:`~fmclassify._report_doc.Document`: Q1.1-Q1.4 here, Q1.5-Q1.7, the modern recipe
and the summary in :mod:`fmclassify._sections_more`, which also assembles the report.
Figures are the experiments' own (:meth:`fmclassify.ExperimentResult.plot`); the course's
numbers come from :mod:`fmclassify._course`; the sentences from :mod:`fmclassify._observations`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmclassify._budget import BUDGETS, Budget
from fmclassify._course import COURSE, Course
from fmclassify._observations import instability_rule, lr_observations, why_no_number
from fmclassify._report_doc import Document, Picture
from fmclassify._tables import NA, Table, format_cell, percent

if TYPE_CHECKING:
    from fmclassify.data import ImageDataset
    from fmclassify.experiments import ExperimentResult
    from fmclassify.history import History
    from fmclassify.interpret import Interpretation
    from fmclassify.parameters import ParameterReport
    from fmclassify.runs import RunResult

__all__ = [
    "BestModel",
    "Measured",
    "compare",
    "comparisons",
    "intro",
    "outcome",
    "pictures",
    "q1_1",
    "q1_2",
    "q1_3",
    "q1_4",
    "seed_grid",
    "seed_values",
]


@dataclass
class BestModel:
    """Q1.4's most accurate model, rebuilt from one of its runs, and its interpretation."""

    run: RunResult
    interpretation: Interpretation
    restored: bool  # from the run's last checkpoint (True) or trained again (False)


@dataclass
class Measured:
    """Everything the report shows, as measured by :func:`fmclassify.report.run_assignment`."""

    budget: Budget
    seeds: int
    train: ImageDataset
    test: ImageDataset
    results: dict[str, ExperimentResult]
    params: dict[str, ParameterReport]
    best: BestModel | None

    @property
    def course(self) -> Course | None:
        """The course's numbers, when the runs are on its data set."""
        return COURSE if self.train.name == COURSE.dataset else None

    def budget_note(self) -> str:
        """How our runs differ from the course's one run each, in one line."""
        images = (f"the first {len(self.train):,} training images" if self.budget.train_size
                  else f"all {len(self.train):,} training images")
        return (f"Ours: mean ± standard deviation over {self.seeds} seed"
                f"{'s' if self.seeds > 1 else ''} on {images}; the course: one run on all "
                "60,000. A seed that diverged gives no number to a mean.")


def intro(doc: Document, m: Measured) -> None:
    """The data, the budget and the conventions every table follows."""
    trained = [r for res in m.results.values() for r in res.runs
               if r.history.status != "failed"]  # a failed run has no optimizer or device
    first = trained[0].history.metadata if trained else {}
    doc.para(f"Data: {m.train.name}, {len(m.train):,} training and {len(m.test):,} test images "
             f"(checksum {m.train.checksum[:12] or 'n/a'}). {m.budget.describe()}; "
             f"{m.seeds} seed{'s' if m.seeds > 1 else ''} per configuration. Batch size "
             f"{first.get('batch_size')}, optimizer {first.get('optimizer')}, device "
             f"{first.get('device')}, torch {first.get('versions', {}).get('torch')}.")
    doc.para("Accuracies are on the test set. 'Final' is after the last epoch, 'best' the "
             "highest over the epochs, 'avg' the mean over the epochs (the course's 'Avg "
             "Accuracy'). A run whose loss became non-finite is reported as diverged; "
             f"{instability_rule()}. 'Course in our range' says whether the course's number "
             "lies between our lowest and highest seed.")


# -- shared pieces ------------------------------------------------------------------------------


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


def outcome(row: dict[str, Any], kind: str, budget: Budget) -> str:
    """The row's reason for having no number, else what happened to its seeds."""
    reason = why_no_number(row, kind, max_epochs=budget.max_epochs, threshold=budget.threshold)
    return reason or row["outcome"]


def pictures(doc: Document, result: ExperimentResult, prefix: str, kind: str,
             caption: Callable[[RunResult], str]) -> list[Picture]:
    """The figures of ``result.plot(kinds=(kind,))``, one per run, in the runs' order."""
    figures = result.plot(kinds=(kind,))
    out = []
    for run in result.runs:
        name = f"{kind}-{run.spec.key}"
        if name in figures:
            out.append(doc.picture(figures[name], f"{prefix}-{name}", caption(run)))
    return out


def comparisons(doc: Document, result: ExperimentResult, prefix: str,
                metrics: Sequence[str] = ("test_accuracy", "train_loss")) -> None:
    """The experiment's comparison figures (every run on one axes), side by side."""
    figures = result.plot(kinds=("comparison",))
    what = {"test_accuracy": "test accuracy", "train_loss": "training loss"}
    doc.grid([doc.picture(figures[f"comparison-{k}"], f"{prefix}-comparison-{k}",
                          f"Overall comparison: {what[k]}, every run")
              for k in metrics if f"comparison-{k}" in figures], columns=2)


def seed_grid(doc: Document, m: Measured, result: ExperimentResult, prefix: str) -> None:
    """One loss/accuracy figure per run: a row per configuration, a column per seed."""
    shown = pictures(doc, result, prefix, "run",
                     lambda r: f"{r.spec.label}, seed {r.spec.seed}: loss and accuracy")
    columns = m.seeds if m.seeds <= 4 else 3  # a row per configuration, up to four seeds
    doc.grid(shown, columns=columns,
             header=[f"seed {s}" for s in range(m.seeds)] if 1 < m.seeds <= 4 else ())


# -- Q1.1 to Q1.4 -------------------------------------------------------------------------------


def q1_1(doc: Document, m: Measured) -> None:
    """Accuracy per learning rate beside the course's, a figure per run, the comparisons."""
    result, epochs = m.results["q1_1"], m.budget.epochs
    doc.heading("Q1.1 Learning rates")
    header = ["Learning rate", f"Final ({epochs} epochs)", "Avg over epochs", "Best",
              "Course: final (10 epochs)", "Course: avg", "Final − course (points)",
              "Course in our range", "Outcome"]
    rows = []
    for row in result.table():
        lr = row["lr"]
        course = m.course.sweep.get(lr) if m.course else None
        diff, within = compare(seed_values(result, lr, lambda h: h.final_accuracy),
                               course.final_accuracy if course else None)
        rows.append([f"{lr:g}", percent(row["final_accuracy"], row.get("final_accuracy_std")),
                     percent(row["mean_accuracy"], row.get("mean_accuracy_std")),
                     percent(row["best_accuracy"], row.get("best_accuracy_std")),
                     percent(course.final_accuracy, digits=1) if course else NA,
                     percent(course.mean_accuracy, digits=2) if course else NA,
                     diff, within, outcome(row, result.kind, m.budget)])
    notes = [m.budget_note()]
    if epochs != COURSE.epochs:
        notes.append(f"Our runs train {epochs} epochs, the course's 10: the budget, not the "
                     "learning rate, accounts for part of any difference.")
    doc.table(Table(header, rows, right=frozenset(range(1, 7)), notes=tuple(notes)))
    seed_grid(doc, m, result, "q1_1")
    comparisons(doc, result, "q1_1")


def q1_2(doc: Document, m: Measured) -> None:
    """Epochs to convergence under the stated rule, beside the course's."""
    result, plan = m.results["q1_2"], m.budget
    doc.heading("Q1.2 Epochs to convergence")
    doc.para(f"The rule: a run has {plan.rule()} (at most {plan.max_epochs} epochs).")
    header = ["Learning rate", "Converged at epoch", "Accuracy there", "Course: epochs",
              "Course: accuracy", "Accuracy − course (points)", "Course in our range",
              "Outcome"]
    rows = []
    for row in result.table():
        lr = row["lr"]
        course = m.course.convergence.get(lr) if m.course else None
        diff, within = compare(seed_values(result, lr, lambda h: h.final_accuracy),
                               course.accuracy if course else None)
        rows.append([f"{lr:g}",
                     format_cell("converged_epoch", row.get("converged_epoch"),
                                 row.get("converged_epoch_std")),
                     percent(row["final_accuracy"], row.get("final_accuracy_std")),
                     str(course.epochs) if course else NA,
                     percent(course.accuracy, digits=2) if course else NA, diff, within,
                     outcome(row, result.kind, m.budget)])
    doc.table(Table(header, rows, right=frozenset(range(1, 7)), notes=tuple(_q1_2_notes(m))))
    comparisons(doc, result, "q1_2")


def _q1_2_notes(m: Measured) -> list[str]:
    notes = [m.budget_note()]
    full = BUDGETS["full"]
    if m.budget.detector_config() != full.detector_config():
        notes.append(f"This budget's rule is looser than --full's ({full.rule()}), so that "
                     "a subset converges within minutes; its epochs are not the course's.")
    if m.course:
        notes.append(f"The course's columns: {m.course.convergence_rule}.")
    return notes


def q1_3(doc: Document, m: Measured) -> None:
    """What Q1.1 and Q1.2 say about the learning rate, in sentences from their numbers."""
    doc.heading("Q1.3 Learning rate: what the measurements show")
    doc.bullets(lr_observations(m.results["q1_1"], m.results["q1_2"]))


def q1_4(doc: Document, m: Measured) -> None:
    """Accuracy and parameters per model beside the course's; the best model up close."""
    result = m.results["q1_4"]
    doc.heading("Q1.4 Deeper and wider networks")
    header = ["Model", "Trainable parameters", "Course: parameters",
              f"Avg over {m.budget.epochs} epochs", "Course: avg (10 epochs)",
              "Avg − course (points)", "Course in our range", "Final", "s/epoch", "Outcome"]
    rows = []
    for row in result.table():
        name = row["model"]
        course = m.course.models.get(name) if m.course else None
        diff, within = compare(seed_values(result, name, lambda h: h.mean_accuracy),
                               course.mean_accuracy if course else None)
        rows.append([name, format_cell("parameters", row["parameters"]),
                     f"{course.parameters:,}" if course else NA,
                     percent(row["mean_accuracy"], row.get("mean_accuracy_std")),
                     percent(course.mean_accuracy, digits=2) if course else NA, diff, within,
                     percent(row["final_accuracy"], row.get("final_accuracy_std")),
                     format_cell("seconds_per_epoch", row["seconds_per_epoch"]),
                     outcome(row, result.kind, m.budget)])
    notes = [m.budget_note(), "All at lr 0.1, as the course."]
    if m.course:
        notes.append(f"Note: {m.course.models_column}.")
    doc.table(Table(header, rows, right=frozenset(range(1, 9)), notes=tuple(notes)))
    seed_grid(doc, m, result, "q1_4")
    comparisons(doc, result, "q1_4")
    _confusion(doc, m)


def _confusion(doc: Document, m: Measured) -> None:
    best = m.best
    if best is None:
        doc.para("No model finished an epoch, so there is no model to interpret.")
        return
    interp, spec = best.interpretation, best.run.spec
    how = ("restored from the run's last checkpoint" if best.restored else
           "trained again (no checkpoint of it was kept, as for a run read from the first "
           "epochs of its Q1.2 run), so within float rounding of it")
    doc.heading(f"The most accurate model, {spec.model}, up close", 3)
    doc.para(f"Seed {spec.seed}'s run of {spec.model}, {how}: "
             f"{percent(interp.accuracy)} of the test set right (the run recorded "
             f"{percent(best.run.history.final_accuracy)}).")
    rows = [[t, p, f"{n:,}"] for t, p, n in interp.most_confused(5)] or [["(none)", "", "0"]]
    doc.table(Table(["True class", "Predicted as", "Images"], rows, right=frozenset({2}),
                    title="The most confused pairs"))
    doc.grid([doc.picture(interp.plot_confusion_matrix(), f"q1_4-confusion-{spec.key}",
                          f"Confusion matrix of {spec.model}, seed {spec.seed}")], columns=2)
