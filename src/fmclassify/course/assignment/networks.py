"""Q1.4-Q1.6: deeper and wider networks, their parameters layer by layer, what depth buys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fmclassify._tables import NA, Table, format_cell, percent
from fmclassify.course.answers import Answers
from fmclassify.course.assignment.learning_rates import first, join
from fmclassify.course.assignment.observations import model_observations
from fmclassify.course.document import Document
from fmclassify.course.pieces import compare, comparisons, outcome, seed_grid, seed_values
from fmclassify.course.questions import Experiment, Plan, Question, SummaryRow
from fmclassify.course.store import best_group
from fmclassify.experiments import compare_models_specs
from fmclassify.interpret import Interpretation, interpret
from fmclassify.runs import RunResult

__all__ = ["BestModel", "Networks", "Parameters", "Structure"]


@dataclass
class BestModel:
    """Q1.4's most accurate model, rebuilt from one of its runs, and its interpretation."""

    run: RunResult
    interpretation: Interpretation
    restored: bool  # from the run's last checkpoint (True) or trained again (False)


class Networks(Question):
    """Q1.4: every model at the course's learning rate; the most accurate one up close."""

    key, title = "q1_4", "Q1.4 Deeper and wider networks"
    lr = 0.1  # the course's

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """Every model at lr 0.1, ``budget.epochs`` epochs; the best one's weights kept."""
        return {"": Experiment("compare_models", "model", compare_models_specs(
            plan.models, self.lr, plan.budget.epochs, plan.seeds), keep_weights=True)}

    def measure(self, m: Answers) -> None:
        """Rebuild the most accurate model from a trained seed and interpret it.

        The first seed whose last checkpoint was kept: the checkpoint gives back its weights
        (no epoch trains). When no seed has one (runs finished elsewhere, by an older
        version, or read from the first epochs of a Q1.2 run), the first trained seed is
        trained again, in this process; the report then says so.
        """
        models = m[self]
        name = best_group(models)
        if name is None:
            return
        trained = [r for r in models.runs if r.spec.model == name
                   and r.history.status not in ("diverged", "failed")]
        restorable = [r for r in trained if m.weights_kept(r)]
        run = (restorable or trained)[0]
        model, restored = m.trained_model(run)
        m.keep(self, BestModel(run, interpret(model, m.test, device=m.device), restored))

    def write(self, doc: Document, m: Answers) -> None:
        """Accuracy and parameters per model beside the course's; the best model up close."""
        result = m[self]
        doc.heading(self.title)
        header = ["Model", "Trainable parameters", "Course: parameters",
                  f"Avg over {m.budget.epochs} epochs", "Course: avg (10 epochs)",
                  "Avg − course (points)", "Course in our range", "Final", "s/epoch",
                  "Outcome"]
        rows = []
        for row in result.rows():
            name = row.model
            course = m.published.models.get(name) if m.published else None
            diff, within = compare(seed_values(result, name, lambda h: h.mean_accuracy),
                                   course.mean_accuracy if course else None)
            rows.append([name, format_cell("parameters", row.parameters),
                         f"{course.parameters:,}" if course else NA,
                         percent(row.mean_accuracy, row.mean_accuracy_std),
                         percent(course.mean_accuracy, digits=2) if course else NA, diff,
                         within, percent(row.final_accuracy, row.final_accuracy_std),
                         format_cell("seconds_per_epoch", row.seconds_per_epoch),
                         outcome(row, result.kind, m.budget)])
        notes = [m.budget_note(), "All at lr 0.1, as the course."]
        if m.published:
            notes.append(f"Note: {m.published.models_column}.")
        doc.table(Table(header, rows, right=frozenset(range(1, 9)), notes=tuple(notes)))
        seed_grid(doc, m, result, self.key)
        comparisons(doc, result, self.key)
        self._confusion(doc, m)

    def _confusion(self, doc: Document, m: Answers) -> None:
        best: BestModel | None = m.kept(self)
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
        rows = [[t, p, f"{n:,}"] for t, p, n in interp.most_confused(5)] or [
            ["(none)", "", "0"]]
        doc.table(Table(["True class", "Predicted as", "Images"], rows, right=frozenset({2}),
                        title="The most confused pairs"))
        doc.grid([doc.picture(interp.plot_confusion_matrix(), f"q1_4-confusion-{spec.key}",
                              f"Confusion matrix of {spec.model}, seed {spec.seed}")],
                 columns=2)

    def summary(self, m: Answers) -> SummaryRow:
        """Each model's mean accuracy over the epochs, and the course's."""
        c = m.published
        return SummaryRow("Q1.4 deeper and wider (avg accuracy)", join(
            [f"{r.model}: {percent(r.mean_accuracy, r.mean_accuracy_std)}"
             for r in m[self].rows()]),
            join([f"{k}: {percent(v.mean_accuracy, digits=2)}" for k, v in c.models.items()])
            if c else NA)


class Parameters(Question):
    """Q1.5: trainable parameters by formula, checked against numel, beside the course's."""

    key, title = "q1_5", "Q1.5 Trainable parameters, layer by layer"

    def write(self, doc: Document, m: Answers) -> None:
        """A count per model, then each model's layer-by-layer table."""
        doc.heading(self.title)
        rows = []
        for name, report in m.params.items():
            course = m.published.models.get(name) if m.published else None
            same = (NA if course is None else
                    "yes" if course.parameters == report.trainable else "no")
            rows.append([name, f"{report.trainable:,}",
                         f"{course.parameters:,}" if course else NA, same])
        doc.table(Table(["Model", "Trainable parameters (by formula)", "Course", "Same"], rows,
                        right=frozenset({1, 2}), notes=(
                            "Every layer's formula is checked against the parameter tensors' "
                            "numel; the tables below show each formula and, for one input "
                            "image, each layer's output shape and multiply-adds.",)))
        for name, report in m.params.items():
            doc.heading(f"{name}: {report.trainable:,} trainable parameters", 3)
            doc.code(str(report).rstrip())

    def summary(self, m: Answers) -> SummaryRow:
        """Each model's count, and the course's."""
        c = m.published
        return SummaryRow("Q1.5 trainable parameters",
                          join([f"{k}: {p.trainable:,}" for k, p in m.params.items()]),
                          join([f"{k}: {v.parameters:,}" for k, v in c.models.items()])
                          if c else NA)


class Structure(Question):
    """Q1.6: conclusions on depth and width, from the Q1.4 comparison.

    Parameters
    ----------
    networks : Question
        The question whose runs it reads (Q1.4's).
    """

    key, title = "q1_6", "Q1.6 Structure: what the measurements show"

    def __init__(self, networks: Question) -> None:
        self.networks = networks

    def write(self, doc: Document, m: Answers) -> None:
        """The sentences, as a list."""
        doc.heading(self.title)
        doc.bullets(model_observations(m[self.networks]))

    def summary(self, m: Answers) -> SummaryRow:
        """The sentence on the most accurate model."""
        return SummaryRow("Q1.6 structure",
                          first(model_observations(m[self.networks]), "The most"), "")
