"""Courses as data: questions, budgets, and a resumable, parallel report for any course.

A :class:`Course` is a data set, models, learning rates, budgets and an ordered list of
:class:`Question` objects. Each question plans the runs it needs as :class:`Experiment`
objects (built from the public ``*_specs`` functions), and writes its section and its
summary line from the :class:`Answers` the runs gave. :func:`run_course` plans every
question's runs, trains them together (processes on this machine or any executor, the
longest first, each run once, resumable after an interrupt) and writes ``report.md``, a
self-contained ``report.html``, ``figures/`` and ``results.json``.

The Fashion-MNIST assignment is the first course (:data:`fmclassify.course.assignment.ASSIGNMENT`,
``fmclassify course assignment``); other packages add theirs through the entry-point group
``fmclassify.courses`` (:func:`register_course`).

Examples
--------
>>> from fmclassify.course import get_course, list_courses
>>> [q.key for q in get_course("assignment").questions]
['q1_1', 'q1_2', 'q1_3', 'q1_4', 'q1_5', 'q1_6', 'q1_7', 'recipe']
>>> "assignment" in [c.name for c in list_courses()]
True
"""

from __future__ import annotations

from fmclassify._tables import NA, Table, format_cell, percent
from fmclassify.course.answers import Answers
from fmclassify.course.assignment import ASSIGNMENT
from fmclassify.course.budget import BUDGETS, Budget
from fmclassify.course.catalog import (
    COURSE_ENTRY_POINT_GROUP,
    Course,
    get_course,
    list_courses,
    register_course,
)
from fmclassify.course.document import Document, Picture
from fmclassify.course.pieces import (
    compare,
    comparisons,
    outcome,
    pictures,
    seed_grid,
    seed_values,
    why_no_number,
)
from fmclassify.course.questions import Experiment, Plan, Question, SummaryRow
from fmclassify.course.runner import (
    CourseReport,
    check_course,
    claim_output_folder,
    count_runs,
    plan_course,
    run_course,
)

__all__ = [
    "BUDGETS",
    "COURSE_ENTRY_POINT_GROUP",
    "NA",
    "Answers",
    "Budget",
    "Course",
    "CourseReport",
    "Document",
    "Experiment",
    "Picture",
    "Plan",
    "Question",
    "SummaryRow",
    "Table",
    "check_course",
    "claim_output_folder",
    "compare",
    "comparisons",
    "count_runs",
    "format_cell",
    "get_course",
    "list_courses",
    "outcome",
    "percent",
    "pictures",
    "plan_course",
    "register_course",
    "run_course",
    "seed_grid",
    "seed_values",
    "why_no_number",
]

register_course(ASSIGNMENT, replace=True)
