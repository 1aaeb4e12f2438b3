"""Beyond the course: the course's CNN trained with a modern recipe, beside plain SGD."""

from __future__ import annotations

from collections.abc import Mapping

from fmclassify._tables import NA, Table, format_cell, percent
from fmclassify.course.answers import Answers
from fmclassify.course.assignment.observations import recipe_observation
from fmclassify.course.budget import BUDGETS, RECIPE, RECIPE_LR
from fmclassify.course.document import Document
from fmclassify.course.pieces import comparisons, outcome, why_no_number
from fmclassify.course.questions import Experiment, Plan, Question, SummaryRow
from fmclassify.experiments import ExperimentResult, GroupRow, compare_models_specs

__all__ = ["RECIPE_MODEL", "RECIPE_SEEDS", "ModernRecipe"]

RECIPE_MODEL = "deeper"  # the course's CNN
RECIPE_SEEDS = 2  # the recipe's runs: one per core of a laptop, a spread from two seeds


def _words() -> str:
    r = RECIPE  # Trainer keyword arguments
    return (f"SGD with momentum {r['momentum']} (Nesterov), weight decay "
            f"{r['weight_decay']:g}, a {r['schedule']} schedule peaking at lr {RECIPE_LR:g}, "
            f"label smoothing {r['label_smoothing']:g}, {' and '.join(r['augment'])} "
            f"augmentation, batch {r['batch_size']}")


class ModernRecipe(Question):
    """The course's CNN with :data:`~fmclassify.report.RECIPE`, beside its Q1.4 runs.

    Parameters
    ----------
    networks : Question
        The question whose plain-SGD runs of the CNN it compares with (Q1.4's).
    """

    key, title = "recipe", "Beyond the course: the same CNN, a modern training recipe"

    def __init__(self, networks: Question) -> None:
        self.networks = networks

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """Two seeds of the CNN with the recipe, ``budget.recipe_epochs`` epochs (or none)."""
        if not plan.budget.recipe_epochs:
            return {}
        return {"": Experiment("compare_models", "model", compare_models_specs(
            (RECIPE_MODEL,), RECIPE_LR, plan.budget.recipe_epochs, plan.seeds[:RECIPE_SEEDS],
            **RECIPE))}

    def write(self, doc: Document, m: Answers) -> None:
        """The two setups' accuracies, the sentence, the comparison figure."""
        doc.heading(self.title)
        if not m.has(self):
            doc.para(f"Not run: budget '{m.budget.name}' trains no epoch of the recipe "
                     f"({_words()}); the quick and full budgets do.")
            return
        res, plan = m[self], m.budget
        doc.para(f"The course's CNN (deeper) again, trained with {_words()}: what is the "
                 "training setup, not the network, worth?")
        plain = next((r for r in m[self.networks].rows() if r.model == "deeper"), None)
        ours = res.rows()[0]
        rows = [_row("modern recipe", ours, plan.recipe_epochs, m)]
        if plain is not None:
            rows.insert(0, _row("course's setup (Q1.4: SGD lr 0.1, batch 64)", plain,
                                plan.epochs, m))
        course = m.published.models["deeper"].mean_accuracy if m.published else None
        if course is not None:
            rows.append(["the course (one run)", "10", NA, NA, percent(course, digits=2), NA,
                         ""])
        notes = [m.budget_note()]
        if plan.recipe_epochs < BUDGETS["full"].recipe_epochs:
            notes.append(f"This budget trains the recipe {plan.recipe_epochs} epochs; --full "
                         f"trains it {BUDGETS['full'].recipe_epochs}.")
        doc.table(Table(["Setup", "Epochs", "Final accuracy", "Best accuracy", "Avg accuracy",
                         "s/epoch", "Outcome"], rows, right=frozenset(range(1, 6)),
                        notes=tuple(notes)))
        if ours.final_accuracy is not None:
            doc.para(recipe_observation(plain and plain.to_dict(), ours.to_dict(),
                                        plan.recipe_epochs, plan.epochs, course))
        both = [r for r in m[self.networks].runs if r.spec.model == "deeper"][:1] + res.runs[:1]
        # test accuracy only: label smoothing raises the recipe's training loss by design
        comparisons(doc, ExperimentResult("compare_models", both, group_by="lr"), self.key,
                    metrics=("test_accuracy",))

    def summary(self, m: Answers) -> SummaryRow:
        """The recipe's final accuracy, and the course's mean for the CNN."""
        c = m.published
        theirs = (f"deeper: {percent(c.models['deeper'].mean_accuracy, digits=2)} (avg, 10 "
                  "epochs)" if c else NA)
        if not m.has(self):
            return SummaryRow("Beyond: a modern recipe for the CNN",
                              f"not run on budget '{m.budget.name}'", theirs)
        row = m[self].rows()[0]
        why = why_no_number(row, "compare_models")
        accuracy = percent(row.final_accuracy, row.final_accuracy_std)
        return SummaryRow("Beyond: a modern recipe for the CNN", why or (
            f"deeper with the recipe: {accuracy} after {m.budget.recipe_epochs} epochs"),
            theirs)


def _row(label: str, row: GroupRow, epochs: int, m: Answers) -> list[str]:
    return [label, str(epochs), percent(row.final_accuracy, row.final_accuracy_std),
            percent(row.best_accuracy, row.best_accuracy_std),
            percent(row.mean_accuracy, row.mean_accuracy_std),
            format_cell("seconds_per_epoch", row.seconds_per_epoch),
            outcome(row, "compare_models", m.budget)]
