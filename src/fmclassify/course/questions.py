"""A question of a course: the runs it needs, its section of the report, its summary row.

A :class:`Question` is everything about one question in one place. The report asks each
question, in the course's order, for the runs it needs (:meth:`Question.plan`, a few named
:class:`Experiment` objects built from the public ``*_specs`` functions), trains the runs of
every question together, lets each question measure what it needs beyond its runs
(:meth:`Question.measure`), then has each write its section (:meth:`Question.write`) and its
one line of the summary table (:meth:`Question.summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmclassify._checks import check_choice

if TYPE_CHECKING:
    from fmclassify.course.answers import Answers
    from fmclassify.course.budget import Budget
    from fmclassify.course.document import Document
    from fmclassify.runs import RunSpec

__all__ = ["Experiment", "Plan", "Question", "SummaryRow"]

KINDS = ("lr_sweep", "convergence_study", "compare_models", "gradient_study")


@dataclass(frozen=True)
class Experiment:
    """Runs that one table of a question summarises.

    Parameters
    ----------
    kind : {"lr_sweep", "convergence_study", "compare_models", "gradient_study"}
        How the runs are tabled (:class:`~fmclassify.ExperimentResult`).
    group_by : {"lr", "model"}
        The column the runs are grouped by: one row per learning rate or per model.
    specs : sequence of RunSpec
        The runs, e.g. from :func:`~fmclassify.lr_sweep_specs`. A run that another question
        plans too (the same :class:`~fmclassify.RunSpec`) trains once.
    keep_weights : bool, default False
        Keep the last checkpoint of the most accurate group's first seed, so that
        :meth:`Answers.trained_model` gives its trained network back without training it
        again; the checkpoints of every other run are deleted.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> sweep = Experiment("lr_sweep", "lr", fmc.lr_sweep_specs("base", (0.1, 0.01), 2))
    >>> len(sweep.specs)
    2
    """

    kind: str
    group_by: str
    specs: Sequence[RunSpec]
    keep_weights: bool = False

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        check_choice("group_by", self.group_by, ("lr", "model"))
        object.__setattr__(self, "specs", tuple(self.specs))


@dataclass(frozen=True)
class Plan:
    """What a course's questions plan their runs for: one budget, seeds, models, rates.

    Parameters
    ----------
    budget : Budget
        How much training each question may spend.
    seeds : tuple of int
        The seeds every configuration is trained with (``0 .. N-1``).
    models : tuple of str
        The course's models (registered names), in the order the report lists them.
    lrs : tuple of float
        The course's learning rates.
    train_size : int
        Training images the runs see, after the budget's selection.
    """

    budget: Budget
    seeds: tuple[int, ...]
    models: tuple[str, ...]
    lrs: tuple[float, ...]
    train_size: int


@dataclass(frozen=True)
class SummaryRow:
    """A question's line in the report's summary table.

    Parameters
    ----------
    question : str
        The question, in a few words (the first column).
    measured : str
        Our answer, in one line.
    published : str, default ""
        The course's own answer, when it published one.
    """

    question: str
    measured: str
    published: str = ""


class Question:
    """One question of a course; subclass it and override what the question needs.

    Attributes
    ----------
    key : str
        A short identifier, unique in its course: it names the question's tables in
        ``results.json`` (``KEY`` for its main experiment, ``KEY_PART`` for the others) and
        prefixes its figures' files.
    title : str
        The heading of its section.

    Examples
    --------
    A question that trains one model at two learning rates and shows their table:

    >>> import fmclassify as fmc
    >>> from fmclassify.course import Experiment, Question, SummaryRow
    >>> class Rates(Question):
    ...     key, title = "rates", "Which learning rate?"
    ...     def plan(self, plan):
    ...         return {"": Experiment("lr_sweep", "lr", fmc.lr_sweep_specs(
    ...             plan.models[0], plan.lrs, plan.budget.epochs, plan.seeds))}
    ...     def write(self, doc, answers):
    ...         doc.heading(self.title)
    ...         doc.table(answers[self].to_table())
    ...     def summary(self, answers):
    ...         best = max(answers[self].rows(), key=lambda r: r.final_accuracy or 0)
    ...         return SummaryRow(self.title, f"lr {best.lr:g}")
    """

    key: str = ""
    title: str = ""

    def plan(self, plan: Plan) -> Mapping[str, Experiment]:
        """The runs this question needs, by part name (``""`` for its main experiment).

        The default plans none: a question that discusses other questions' runs reads them
        through :class:`Answers` (``answers[other_question]``).
        """
        return {}

    def measure(self, answers: Answers) -> None:
        """Measure what the runs alone do not hold, once every run has trained.

        Called in the course's order before any section is written; keep what it finds
        with :meth:`Answers.keep`. The default measures nothing.
        """

    def write(self, doc: Document, answers: Answers) -> None:
        """Write this question's section of the report into ``doc``."""
        raise NotImplementedError(f"{type(self).__name__} must define write(doc, answers)")

    def summary(self, answers: Answers) -> SummaryRow | None:
        """The question's line of the summary table; None for no line (the default)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}: {self.title}>"
