"""Run a course: plan every question's runs, train them together, write the report.

:func:`run_course` trains the runs each question plans (three seeds each by default), then
writes into ``out``:

* ``report.md`` and ``report.html`` (one self-contained file: figures embedded): a summary
  table of every answer, a table of contents, and one section per question, in the course's
  order, with the course's published value beside ours where it has one;
* ``figures/*.png``;
* ``runs/*.json``, every run's History (and gradient trace), keyed by its full configuration,
  and ``runs/*.final.pt``, the last checkpoint of a run a question reads the weights of;
* ``results.json``, every table.

Finished runs are never trained twice and an unfinished one resumes from its last finished
epoch, so after an interrupt the same call continues and yields the same report. The runs of
all questions go out together, to processes on this machine (one per core) or to any
:class:`concurrent.futures.Executor`, the most expensive first, so no core waits for the
last long run alone; a run two questions plan trains once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fmclassify._checks import check_int, check_lrs
from fmclassify._io import atomic_write_bytes, make_folder
from fmclassify._tables import Table
from fmclassify.course.answers import Answers, result_name
from fmclassify.course.budget import Budget
from fmclassify.course.catalog import Course, get_course
from fmclassify.course.document import Document
from fmclassify.course.pieces import intro
from fmclassify.course.questions import Experiment, Plan
from fmclassify.course.store import WeightsStore
from fmclassify.data import ImageDataset, load_dataset
from fmclassify.exceptions import ConfigError, RunFailedError
from fmclassify.experiments import ExperimentResult, RunOptions
from fmclassify.parameters import ParameterReport, count_parameters
from fmclassify.registry import build_model, get_model_spec
from fmclassify.runs import RunResult, RunSpec, trainer_for

__all__ = ["CONVERGENCE_GUESS", "CourseReport", "check_course", "claim_output_folder",
           "count_runs", "plan_course", "run_course"]


@dataclass
class CourseReport:
    """What :func:`run_course` measured and wrote.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    budget : Budget
        The budget used.
    results : dict of str to ExperimentResult
        Every question's experiments, by name (``KEY`` or ``KEY_PART``, as in
        ``results.json``).
    markdown : str
        The text of ``report.md``.
    course : Course, optional
        The course that was run.
    """

    out: Path
    budget: Budget
    results: dict[str, ExperimentResult]
    markdown: str
    course: Course | None = None

    @property
    def markdown_path(self) -> Path:
        """``OUT/report.md``."""
        return self.out / "report.md"

    @property
    def html_path(self) -> Path:
        """``OUT/report.html``."""
        return self.out / "report.html"


def run_course(
    course: Course | str,
    out: str | os.PathLike[str],
    *,
    budget: str | Budget = "auto",
    seeds: int = 3,
    models: Sequence[str] | None = None,
    lrs: Sequence[float] | None = None,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    progress: bool = True,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
) -> CourseReport:
    """Answer every question of ``course`` and write its report into ``out``.

    Parameters
    ----------
    course : Course or str
        The course, or the name it is registered under (:func:`get_course`).
    out : path-like
        Output folder (created). Runs already finished there are reused.
    budget : str or Budget, default "auto"
        A name of ``course.budgets`` (``"quick"``, ``"full"``, ...) or a Budget; ``"auto"``
        is ``full`` when ``device`` is a GPU, else ``quick``.
    seeds : int, default 3
        Runs per configuration (seeds 0..N-1); tables show mean ± standard deviation.
    models, lrs : sequences, optional
        Replace the course's models and learning rates.
    data : (ImageDataset, ImageDataset), optional
        Use these instead of loading ``course.dataset``.
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
    CourseReport

    Raises
    ------
    ConfigError, UnknownModelError
        For an unknown course, budget or model, seeds < 1, empty models or lrs, workers < 1
        or an executor that is not one, before ``out`` is created.
    OutputError
        When ``out`` cannot be written, before any run trains or, for a full disk, as soon
        as a write fails: the finished runs are kept in ``out/runs`` and the same call
        continues once space is freed.
    RunFailedError
        When every run failed: no report is written from them.
    """
    course = get_course(course) if isinstance(course, str) else course
    plan_budget = check_course(course, budget, seeds, models, lrs, device=device)
    models = tuple(course.models if models is None else models)
    lrs = tuple(course.lrs if lrs is None else lrs)
    options = RunOptions(progress=progress, device=device, on_run=on_run, executor=executor,
                         workers=workers)  # checked before the folder is claimed
    out_dir = claim_output_folder(out)
    train, test = data if data is not None else load_dataset(course.dataset)
    train = plan_budget.select(train)
    plan = Plan(plan_budget, tuple(range(seeds)), models, lrs, len(train))
    store = WeightsStore(out_dir / "runs")
    options = replace(options, data=(train, test), store=store)
    planned = {name: replace(e, specs=tuple(options.planned(e.specs)))  # with the data's id
               for name, e in plan_course(course, plan).items()}
    params = {m: _count(m, train) for m in models}
    cost = {**{m: float(p.total_mult_adds or p.trainable) for m, p in params.items()},
            **{s.model: _cost(s.model, train) for e in planned.values() for s in e.specs
               if s.model not in params}}
    for e in planned.values():
        if e.keep_weights:
            store.keep_final(e.kind, e.group_by, e.specs)
    unique = list({s.key: s for e in planned.values() for s in e.specs}.values())
    _check_some_trained(options.run(_longest_first(unique, cost)))
    quiet = replace(options, on_run=None)  # every run is in the store now: nothing trains below
    results = {name: ExperimentResult(e.kind, runs=quiet.run(e.specs), group_by=e.group_by)
               for name, e in planned.items()}
    used: set[Path] = set()
    answers = Answers(plan_budget, seeds, train, test, results, params,
                      published=(course.published if train.name == course.dataset else None),
                      device=device, _rebuild=_rebuilder(store, (train, test), device, used),
                      _has_weights=lambda run: store.final_path(run.spec).exists())
    for question in course.questions:
        question.measure(answers)
    for path in (out_dir / "runs").glob("*.final.pt"):  # only weights a question read are
        if path not in used:                            # worth their megabytes
            path.unlink()
    markdown, page = _write(out_dir, course, answers)
    atomic_write_bytes(out_dir / "report.md", markdown.encode())
    atomic_write_bytes(out_dir / "report.html", page.encode())
    tables = {k: r.table() for k, r in results.items()}
    atomic_write_bytes(out_dir / "results.json", json.dumps(
        {"budget": asdict(plan_budget), "seeds": seeds, "dataset": train.name, "tables": tables,
         "parameters": {m: p.to_dict() for m, p in params.items()}},
        indent=1, default=str).encode())
    return CourseReport(out_dir, plan_budget, results, markdown, course)


def plan_course(course: Course, plan: Plan) -> dict[str, Experiment]:
    """Every question's experiments, by result name, in the course's order.

    Raises
    ------
    ConfigError
        When a question's ``plan`` returns something other than Experiments, or two
        experiments would take one name.
    """
    planned: dict[str, Experiment] = {}
    for question in course.questions:
        for part, experiment in dict(question.plan(plan)).items():
            if not isinstance(experiment, Experiment):
                raise ConfigError(f"{question!r}.plan must return Experiments by part name, "
                                  f"got {type(experiment).__name__} for part {part!r}")
            name = result_name(question, part)
            if name in planned:
                raise ConfigError(f"{question!r} plans {name!r}, which another question "
                                  "already plans; give the part another name")
            planned[name] = experiment
    return planned


def count_runs(course: Course | str, budget: str | Budget = "auto", seeds: int = 3,
               models: Sequence[str] | None = None, lrs: Sequence[float] | None = None, *,
               device: str = "auto") -> int:
    """How many runs :func:`run_course` trains or reads: the unique runs its questions plan.

    For an overall progress bar, before any data is loaded (the count does not depend on
    the data).
    """
    course = get_course(course) if isinstance(course, str) else course
    chosen = course.budget(budget, device)
    plan = Plan(chosen, tuple(range(seeds)), tuple(course.models if models is None else models),
                tuple(course.lrs if lrs is None else lrs), chosen.train_size or 60_000)
    return len({s.key for e in plan_course(course, plan).values() for s in e.specs})


def check_course(course: Course, budget: str | Budget, seeds: int,
                 models: Sequence[str] | None, lrs: Sequence[float] | None, *,
                 device: str = "auto") -> Budget:
    """Check :func:`run_course`'s arguments (before any data is loaded); return the budget.

    Every model a question plans a run of must be registered, so a typo fails here.

    Raises
    ------
    ConfigError, UnknownModelError
        For an unknown budget or model, seeds < 1, or empty or non-positive lrs.
    """
    chosen = course.budget(budget, device)  # "auto": full on a GPU, quick on the CPU
    check_int("seeds", seeds)
    models = tuple(course.models if models is None else models)
    lrs = tuple(course.lrs if lrs is None else lrs)
    if not models:
        raise ConfigError("models must name at least one registered model, e.g. base")
    for name in models:
        get_model_spec(name)  # a typo fails here, before any run trains
    check_lrs("lrs", list(lrs))
    plan = Plan(chosen, tuple(range(seeds)), models, lrs, chosen.train_size or 60_000)
    for name in {s.model for e in plan_course(course, plan).values() for s in e.specs}:
        get_model_spec(name)
    return chosen


def _write(out: Path, course: Course, m: Answers) -> tuple[str, str]:
    """The report's Markdown and its self-contained HTML; figures are written under ``out``."""
    from fmclassify.plotting import unshown  # lazy: matplotlib only when drawing

    doc = Document(out, course.title)
    (course.intro or intro)(doc, m)
    doc.heading("Summary")
    rows = [r for r in (q.summary(m) for q in course.questions) if r is not None]
    if any(r.published for r in rows):
        doc.table(Table(["Question", "What we measured", "The course"],
                        [[r.question, r.measured, r.published] for r in rows],
                        notes=(m.budget_note(),)))
    else:  # a course that published nothing gets no empty column
        doc.table(Table(["Question", "What we measured"], [[r.question, r.measured]
                                                          for r in rows],
                        notes=(m.budget_note(),)))
    doc.contents()
    with unshown():  # the report's figures go to its files, never into a notebook's cell
        for question in course.questions:
            question.write(doc, m)
    return doc.markdown(), doc.html()


def _count(model: str, train: ImageDataset) -> ParameterReport:
    shape = (1, *train.image_shape)
    return count_parameters(build_model(model, num_classes=train.num_classes,
                                        in_channels=shape[1], image_size=shape[2]),
                            input_size=shape)


def _cost(model: str, train: ImageDataset) -> float:
    p = _count(model, train)
    return float(p.total_mult_adds or p.trainable)


def _rebuilder(store: WeightsStore, data: tuple[ImageDataset, ImageDataset], device: str,
               used: set[Path]) -> Callable[[RunResult], tuple[object, bool]]:
    def rebuild(run: RunResult) -> tuple[object, bool]:
        path = store.final_path(run.spec)
        restored = path.exists()
        trainer, _ = trainer_for(run.spec, data, checkpoint=path if restored else None,
                                 device=device)
        trainer.fit(*data, resume=restored)
        used.add(path)
        return trainer.model, restored
    return rebuild  # type: ignore[return-value]


#: The epochs a convergence run is expected to train, for the order runs go out in (its
#: budget, ``max_epochs``, is a cap it rarely nears). Measured on the full budget: 7 to 43
#: epochs on one machine, 110 at lr 0.1 on another (``benchmarks/README.md``).
CONVERGENCE_GUESS = 50


def _longest_first(specs: list[RunSpec], per_image: dict[str, float]) -> list[RunSpec]:
    """The runs in the order they go out: the most multiply-adds first.

    A run's cost is its epochs times its model's multiply-adds per image; a convergence run
    counts :data:`CONVERGENCE_GUESS` epochs (or its cap, if smaller), since its true length
    is only known once it has run, and among them the smallest learning rate goes first
    (a guess too). Sending the longest runs first keeps every core busy to the end: no core
    waits alone for one long run that started last. Counting a convergence run at its cap
    (600 epochs on the full budget) sent all of them ahead of Q1.4's CNN, whose 10 epochs
    then ran alone at the end.
    """
    def cost(spec: RunSpec) -> tuple[float, float]:
        epochs = spec.epochs if spec.detector is None else min(spec.epochs, CONVERGENCE_GUESS)
        return (epochs * per_image[spec.model],
                -spec.lr if spec.detector is not None else 0.0)
    return sorted(specs, key=cost, reverse=True)


def _check_some_trained(runs: list[RunResult]) -> None:
    """Refuse to write a report when every run failed: it would hold no number at all."""
    failed = [r for r in runs if r.history.status == "failed"]
    if runs and len(failed) == len(runs):
        first = failed[0]
        raise RunFailedError(
            f"all {len(runs)} runs failed, so no report was written; the first, "
            f"{first.spec.label} seed {first.spec.seed}: {first.history.reason}. Fix the cause "
            "and run again")


_MARKER = ".fmclassify-report"


def claim_output_folder(out: str | os.PathLike[str]) -> Path:
    """Check that ``out`` can hold a report, create it, and mark it as one; return it.

    :func:`run_course` calls it first; call it yourself to learn of a bad folder before
    anything else starts (the command line does, before its progress bar). A folder marked
    by an earlier report is reused: its finished runs are not trained again.

    Raises
    ------
    ConfigError
        ``out`` is a file, or a folder holding files fmclassify did not write.
    OutputError
        ``out`` cannot be created or written: a parent is a file, no permission, no space.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {str(out)!r} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise ConfigError(
            f"output folder {str(out)!r} already holds files that fmclassify did not write; "
            "choose a new or empty folder so none of them is overwritten"
        )
    make_folder(out)
    atomic_write_bytes(out / _MARKER, b"")  # fails here, not after training, when it cannot
    return out
