"""The assignment report: every question of Q1.1-Q1.7 answered, beside the course's own numbers.

:func:`run_assignment` runs the first course, :data:`fmclassify.course.assignment.ASSIGNMENT`,
through :func:`fmclassify.course.run_course` (three seeds each by default), and writes into
``out``:

* ``report.md`` and ``report.html`` (one self-contained file: figures embedded): a summary
  table of every answer, a table of contents, sections Q1.1 to Q1.7 with the course's published
  value beside each of ours, and a last section on what a modern training recipe gets out of
  the course's CNN;
* ``figures/*.png``;
* ``runs/*.json``, every run's History (and gradient trace), keyed by its full configuration,
  and ``runs/*.final.pt``, the last checkpoint of the Q1.4 run the report interprets (while
  the runs train, one such checkpoint per Q1.4 model, so the folder never holds much more
  than its final size);
* ``results.json``, every table.

Finished runs are never trained twice and an unfinished one resumes from its last finished
epoch, so after an interrupt the same call continues and yields the same report. Every number
in the text is computed from the runs of this report; the observations are sentences built
from those numbers, not canned prose.

The runs of all questions go out together, to processes on this machine (one per core) or to
any :class:`concurrent.futures.Executor`, the most expensive first, so no core waits for the
last long run alone. Q1.1's runs are the first epochs of Q1.2's convergence runs (the detector
only watches): each is read from its Q1.2 run once that has finished, and trained only where
it has not (or converged before Q1.1's epochs).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Literal

from fmclassify.course.assignment import ASSIGNMENT, RECIPE_SEEDS
from fmclassify.course.budget import BUDGETS, RECIPE, RECIPE_LR, Budget
from fmclassify.course.catalog import Course
from fmclassify.course.runner import (
    CONVERGENCE_GUESS,
    CourseReport,
    check_course,
    claim_output_folder,
    count_runs,
    run_course,
)
from fmclassify.data import ImageDataset
from fmclassify.runs import RunResult

__all__ = ["BUDGETS", "CONVERGENCE_GUESS", "RECIPE", "RECIPE_LR", "AssignmentReport", "Budget",
           "check_assignment", "claim_output_folder", "run_assignment", "total_runs"]

DEFAULT_LRS = tuple(ASSIGNMENT.lrs)
DEFAULT_MODELS = tuple(ASSIGNMENT.models)
DEFAULT_SEEDS = 3

#: What :func:`run_assignment` measured and wrote: a :class:`fmclassify.course.CourseReport`
#: (``out``, ``budget``, ``results`` by question key, ``markdown``, ``markdown_path``,
#: ``html_path``).
AssignmentReport = CourseReport


def run_assignment(
    out: str | os.PathLike[str],
    *,
    budget: Literal["auto", "quick", "full"] | Budget = "auto",
    seeds: int = DEFAULT_SEEDS,
    dataset: str = "fashion-mnist",
    models: Sequence[str] = DEFAULT_MODELS,
    lrs: Sequence[float] = DEFAULT_LRS,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    progress: bool = True,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
) -> CourseReport:
    """Run every experiment of the assignment and write the report into ``out``.

    The same as ``run_course("assignment", out, ...)`` (:func:`fmclassify.course.run_course`),
    on ``dataset``.

    Parameters
    ----------
    out : path-like
        Output folder (created). Runs already finished there are reused.
    budget : {"auto", "quick", "full"} or Budget, default "auto"
        ``quick`` answers every question in minutes on a subset (:data:`BUDGETS`); ``full``
        uses the course's settings; ``auto`` is ``full`` when ``device`` is a GPU (where runs
        of one model train together, :func:`~fmclassify.fit_together`), else ``quick``.
    seeds : int, default 3
        Runs per configuration (seeds 0..N-1); tables show mean ± standard deviation.
    dataset : str, default "fashion-mnist"
        Any name :func:`~fmclassify.load_dataset` knows.
    models : sequence of str
        Models compared in Q1.4 (and tabled in Q1.5); the first is used for Q1.1, Q1.2, Q1.7.
    lrs : sequence of float
        Learning rates of Q1.1, Q1.2 and Q1.7.
    data : (ImageDataset, ImageDataset), optional
        Use these instead of loading ``dataset``.
    progress : bool, default True
        Show each run's epoch bar.
    device : str, default "auto"
        Training device.
    on_run : callable, optional
        Called after each run (the command line's overall progress bar).
    executor : concurrent.futures.Executor, optional
        Where the runs train (e.g. Dask's ``client.get_executor()``); default: processes on
        this machine, one per core.
    workers : int, optional
        Processes of the default pool; ``1`` trains every run one by one in this process.

    Returns
    -------
    AssignmentReport

    Raises
    ------
    ConfigError
        For an unknown budget, seeds < 1, empty models or lrs, workers < 1 or an executor
        that is not one (:class:`~fmclassify.RunOptions`), before ``out`` is created.
    OutputError
        When ``out`` cannot be written (a parent is a file, no permission, no space left),
        before any run trains or, for a full disk, as soon as a write fails: the finished runs
        are kept in ``out/runs`` and the same call continues once space is freed.
    RunFailedError
        When every run failed: no report is written from them.
    """
    course = ASSIGNMENT if dataset == ASSIGNMENT.dataset else _on(dataset)
    return run_course(course, out, budget=budget, seeds=seeds, models=models, lrs=lrs,
                      data=data, progress=progress, device=device, on_run=on_run,
                      executor=executor, workers=workers)


def _on(dataset: str) -> Course:
    """The assignment's questions on another data set (no published numbers beside them)."""
    return replace(ASSIGNMENT, dataset=dataset)


def total_runs(seeds: int, models: Sequence[str], lrs: Sequence[float], *,
               recipe: bool = True) -> int:
    """How many runs :func:`run_assignment` trains (for an overall progress bar).

    .. deprecated:: 0.1.0
       Use :func:`fmclassify.course.count_runs`, which counts the runs the questions plan
       for the budget in use (this one assumes the quick budget, or no recipe epochs with
       ``recipe=False``).
    """
    warnings.warn("total_runs is deprecated; use fmclassify.course.count_runs(course, budget, "
                  "seeds, models, lrs), which counts what the questions plan",
                  DeprecationWarning, stacklevel=2)
    budget = BUDGETS["quick"]
    if not recipe:
        budget = replace(budget, name="no-recipe", recipe_epochs=0)
    return count_runs(ASSIGNMENT, budget, seeds, models, lrs)


def check_assignment(budget: str | Budget, seeds: int, models: Sequence[str],
                     lrs: Sequence[float], *, device: str = "auto") -> Budget:
    """Check :func:`run_assignment`'s arguments (before any data is loaded); return the budget.

    Raises
    ------
    ConfigError, UnknownModelError
        For an unknown budget or model, seeds < 1, or empty or non-positive lrs.
    """
    return check_course(ASSIGNMENT, budget, seeds, models, lrs, device=device)


_ = RECIPE_SEEDS  # re-exported for readers of the old module
