"""Q1.1-Q1.3: accuracy per learning rate, epochs to convergence, what the two say."""

from __future__ import annotations

from collections.abc import Mapping

from fmclassify._tables import NA, Table, format_cell, percent
from fmclassify.convergence import ConvergenceDetector
from fmclassify.course.answers import Answers
from fmclassify.course.assignment.observations import lr_observations
from fmclassify.course.assignment.published import PUBLISHED
from fmclassify.course.budget import BUDGETS
from fmclassify.course.document import Document
from fmclassify.course.pieces import (
    compare,
    comparisons,
    outcome,
    seed_grid,
    seed_values,
    why_no_number,
)
from fmclassify.course.questions import Experiment, Plan, Question, SummaryRow
from fmclassify.experiments import convergence_study_specs, lr_sweep_specs

__all__ = ["Convergence", "LearningRateLessons", "LearningRates", "join"]


def join(items: list[str]) -> str:
    """Summary cells: items joined by semicolons, or n/a for none."""
    return "; ".join(items) if items else NA


class LearningRates(Question):
    """Q1.1: the course's model at each learning rate for a fixed number of epochs."""

    key, title = "q1_1", "Q1.1 Learning rates"

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """The first model at every learning rate, ``budget.epochs`` epochs, every seed."""
        return {"": Experiment("lr_sweep", "lr", lr_sweep_specs(
            plan.models[0], plan.lrs, plan.budget.epochs, plan.seeds))}

    def write(self, doc: Document, m: Answers) -> None:
        """Accuracy per learning rate beside the course's, a figure per run, the comparisons."""
        result, epochs = m[self], m.budget.epochs
        doc.heading(self.title)
        header = ["Learning rate", f"Final ({epochs} epochs)", "Avg over epochs", "Best",
                  "Course: final (10 epochs)", "Course: avg", "Final − course (points)",
                  "Course in our range", "Outcome"]
        rows = []
        for row in result.rows():
            lr = row.lr
            course = m.published.sweep.get(lr) if m.published else None
            diff, within = compare(seed_values(result, lr, lambda h: h.final_accuracy),
                                   course.final_accuracy if course else None)
            rows.append([f"{lr:g}",
                         percent(row.final_accuracy, row.final_accuracy_std),
                         percent(row.mean_accuracy, row.mean_accuracy_std),
                         percent(row.best_accuracy, row.best_accuracy_std),
                         percent(course.final_accuracy, digits=1) if course else NA,
                         percent(course.mean_accuracy, digits=2) if course else NA,
                         diff, within, outcome(row, result.kind, m.budget)])
        notes = [m.budget_note()]
        if epochs != PUBLISHED.epochs:
            notes.append(f"Our runs train {epochs} epochs, the course's 10: the budget, not "
                         "the learning rate, accounts for part of any difference.")
        doc.table(Table(header, rows, right=frozenset(range(1, 7)), notes=tuple(notes)))
        seed_grid(doc, m, result, self.key)
        comparisons(doc, result, self.key)

    def summary(self, m: Answers) -> SummaryRow:
        """Each rate's final accuracy (or why it has none), and the course's."""
        out = []
        for r in m[self].rows():
            why = why_no_number(r, "lr_sweep")
            cell = why.split(":")[0] if why else percent(r.final_accuracy,
                                                         r.final_accuracy_std)
            flag = f" (unstable in {r.unstable} of {r.seeds})" if r.unstable else ""
            out.append(f"lr {r.lr:g}: {cell}{flag}")
        c = m.published
        return SummaryRow(
            "Q1.1 accuracy per learning rate", join(out) + f", after {m.budget.epochs} epochs",
            join([f"lr {lr:g}: {percent(v.final_accuracy)}" for lr, v in c.sweep.items()])
            if c else NA)


class Convergence(Question):
    """Q1.2: how many epochs each learning rate needs to converge, under a stated rule."""

    key, title = "q1_2", "Q1.2 Epochs to convergence"

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """The first model at every rate, stopped by the budget's convergence rule."""
        detector = ConvergenceDetector(**plan.budget.detector_config())
        return {"": Experiment("convergence_study", "lr", convergence_study_specs(
            plan.models[0], plan.lrs, plan.budget.max_epochs, detector, plan.seeds))}

    def write(self, doc: Document, m: Answers) -> None:
        """Epochs to convergence under the stated rule, beside the course's."""
        result, plan = m[self], m.budget
        doc.heading(self.title)
        doc.para(f"The rule: a run has {plan.rule()} (at most {plan.max_epochs} epochs).")
        header = ["Learning rate", "Converged at epoch", "Accuracy there", "Course: epochs",
                  "Course: accuracy", "Accuracy − course (points)", "Course in our range",
                  "Outcome"]
        rows = []
        for row in result.rows():
            lr = row.lr
            course = m.published.convergence.get(lr) if m.published else None
            diff, within = compare(seed_values(result, lr, lambda h: h.final_accuracy),
                                   course.accuracy if course else None)
            rows.append([f"{lr:g}",
                         format_cell("converged_epoch", row.converged_epoch,
                                     row.converged_epoch_std),
                         percent(row.final_accuracy, row.final_accuracy_std),
                         str(course.epochs) if course else NA,
                         percent(course.accuracy, digits=2) if course else NA, diff, within,
                         outcome(row, result.kind, m.budget)])
        doc.table(Table(header, rows, right=frozenset(range(1, 7)), notes=tuple(_notes(m))))
        comparisons(doc, result, self.key)

    def summary(self, m: Answers) -> SummaryRow:
        """Each rate's epoch of convergence (or why it has none), and the course's."""
        out = []
        for r in m[self].rows():
            why = why_no_number(r, "convergence_study", max_epochs=m.budget.max_epochs)
            epoch = format_cell("converged_epoch", r.converged_epoch,
                                r.converged_epoch_std)
            out.append(f"lr {r.lr:g}: {why.split(':')[0] if why else epoch}")
        c = m.published
        return SummaryRow("Q1.2 epochs to convergence", join(out), join(
            [f"lr {lr:g}: {v.epochs}" for lr, v in c.convergence.items()]) if c else NA)


def _notes(m: Answers) -> list[str]:
    notes = [m.budget_note()]
    full = BUDGETS["full"]
    if m.budget.detector_config() != full.detector_config():
        notes.append(f"This budget's rule is looser than --full's ({full.rule()}), so that "
                     "a subset converges within minutes; its epochs are not the course's.")
    if m.published:
        notes.append(f"The course's columns: {m.published.convergence_rule}.")
    return notes


class LearningRateLessons(Question):
    """Q1.3: what Q1.1 and Q1.2 say about the learning rate, in sentences from their numbers.

    Parameters
    ----------
    sweep, convergence : Question
        The questions whose runs it reads (Q1.1's and Q1.2's).
    """

    key, title = "q1_3", "Q1.3 Learning rate: what the measurements show"

    def __init__(self, sweep: Question, convergence: Question) -> None:
        self.sweep, self.convergence = sweep, convergence

    def write(self, doc: Document, m: Answers) -> None:
        """The sentences, as a list."""
        doc.heading(self.title)
        doc.bullets(lr_observations(m[self.sweep], m[self.convergence]))

    def summary(self, m: Answers) -> SummaryRow:
        """The sentence on the best learning rate."""
        return SummaryRow("Q1.3 the learning rate", first(
            lr_observations(m[self.sweep], m[self.convergence]), "After"), "")


def first(sentences: list[str], start: str) -> str:
    """The first sentence that begins with ``start``, else the first, else n/a."""
    return next((s for s in sentences if s.startswith(start)),
                sentences[0] if sentences else NA)
