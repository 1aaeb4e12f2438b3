"""The first course: the Fashion-MNIST assignment, Q1.1 to Q1.7 and a modern recipe.

:data:`ASSIGNMENT` is a :class:`~fmclassify.course.Course` like any other: its questions are
objects in one ordered list, its budgets are :data:`~fmclassify.report.BUDGETS`, and the
course's published numbers (:data:`PUBLISHED`) are set beside ours. ``fmclassify assignment``
and ``fmclassify course assignment`` run it.
"""

from __future__ import annotations

from fmclassify.course.answers import Answers
from fmclassify.course.assignment.gradient import Gradients
from fmclassify.course.assignment.learning_rates import (
    Convergence,
    LearningRateLessons,
    LearningRates,
)
from fmclassify.course.assignment.networks import BestModel, Networks, Parameters, Structure
from fmclassify.course.assignment.published import PUBLISHED, Published
from fmclassify.course.assignment.recipe import RECIPE_MODEL, RECIPE_SEEDS, ModernRecipe
from fmclassify.course.budget import BUDGETS
from fmclassify.course.catalog import Course
from fmclassify.course.document import Document
from fmclassify.course.pieces import intro

__all__ = ["ASSIGNMENT", "PUBLISHED", "QUESTIONS", "RECIPE_MODEL", "RECIPE_SEEDS", "BestModel",
           "Convergence", "Gradients", "LearningRateLessons", "LearningRates", "ModernRecipe",
           "Networks", "Parameters", "Published", "Structure"]


def _intro(doc: Document, m: Answers) -> None:
    intro(doc, m, m.budget.describe())  # the budget in the assignment's words (per question)


_sweep, _convergence, _networks = LearningRates(), Convergence(), Networks()

#: The assignment's questions, in the report's order.
QUESTIONS = (_sweep, _convergence, LearningRateLessons(_sweep, _convergence), _networks,
             Parameters(), Structure(_networks), Gradients(), ModernRecipe(_networks))

#: The Fashion-MNIST assignment as a course.
ASSIGNMENT = Course(
    name="assignment",
    title="fmclassify assignment report",
    questions=QUESTIONS,
    dataset="fashion-mnist",
    models=("base", "deeper", "wider"),
    lrs=(1.0, 0.1, 0.01, 0.001),
    budgets=BUDGETS,
    description="the Fashion-MNIST assignment: Q1.1-Q1.7 beside the course's numbers, and a "
                "modern recipe for its CNN",
    published=PUBLISHED,
    intro=_intro,
)
