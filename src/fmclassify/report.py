"""The assignment report: every question of Q1.1-Q1.7 answered, beside the course's own numbers.

:func:`run_assignment` trains the runs each question needs (through :mod:`fmclassify.experiments`,
three seeds each by default), then writes into ``out``:

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

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from fmclassify._budget import BUDGETS, RECIPE, RECIPE_LR, Budget
from fmclassify._checks import check_int
from fmclassify._io import atomic_write_bytes, make_folder, output_error
from fmclassify._sections import BestModel, Measured
from fmclassify._sections_more import write_report
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import ImageDataset, load_dataset
from fmclassify.exceptions import ConfigError, RunFailedError
from fmclassify.experiments import (
    ExperimentResult,
    RunOptions,
    compare_models_specs,
    convergence_study_specs,
    gradient_study_specs,
    lr_sweep_specs,
)
from fmclassify.gradients import GradientTracer
from fmclassify.interpret import interpret
from fmclassify.parameters import count_parameters
from fmclassify.registry import build_model, get_model_spec
from fmclassify.runs import RunResult, RunSpec, RunStore, trainer_for

__all__ = ["BUDGETS", "CONVERGENCE_GUESS", "RECIPE", "RECIPE_LR", "AssignmentReport", "Budget",
           "check_assignment", "claim_output_folder", "run_assignment", "total_runs"]

DEFAULT_LRS = (1.0, 0.1, 0.01, 0.001)
DEFAULT_MODELS = ("base", "deeper", "wider")
DEFAULT_SEEDS = 3
RECIPE_MODEL = "deeper"  # the course's CNN
RECIPE_SEEDS = 2  # the recipe's runs: one per core of a laptop, a spread from two seeds


@dataclass
class AssignmentReport:
    """What :func:`run_assignment` measured and wrote.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    budget : Budget
        The budget used.
    results : dict
        ``"q1_1"``, ``"q1_2"``, ``"q1_4"``, ``"q1_7"`` (the signed mean gradient),
        ``"q1_7_abs"`` (the mean absolute gradient), ``"q1_7_flow"`` (per-layer traces) and
        ``"recipe"``: the :class:`ExperimentResult` of each.
    markdown : str
        The text of ``report.md``.
    """

    out: Path
    budget: Budget
    results: dict[str, ExperimentResult]
    markdown: str

    @property
    def markdown_path(self) -> Path:
        """``OUT/report.md``."""
        return self.out / "report.md"

    @property
    def html_path(self) -> Path:
        """``OUT/report.html``."""
        return self.out / "report.html"


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
) -> AssignmentReport:
    """Run every experiment of the assignment and write the report into ``out``.

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
    plan = check_assignment(budget, seeds, models, lrs, device=device)
    options = RunOptions(progress=progress, device=device, on_run=on_run, executor=executor,
                         workers=workers)  # checked before the folder is claimed
    out_dir = claim_output_folder(out)
    train, test = data if data is not None else load_dataset(dataset)
    train = plan.select(train)
    options = replace(options, data=(train, test))
    shape = (1, *train.image_shape)
    params = {m: count_parameters(build_model(m, num_classes=train.num_classes,
                                              in_channels=shape[1], image_size=shape[2]),
                                  input_size=shape) for m in models}
    recipe = params.get(RECIPE_MODEL) or count_parameters(
        build_model(RECIPE_MODEL, num_classes=train.num_classes, in_channels=shape[1],
                    image_size=shape[2]), input_size=shape)
    per_image = {m: float(p.total_mult_adds or p.trainable)
                 for m, p in {**params, RECIPE_MODEL: recipe}.items()}
    results, best = _measure(plan, list(models), list(lrs), tuple(range(seeds)),
                             out_dir / "runs", per_image, (train, test), options)
    measured = Measured(budget=plan, seeds=seeds, train=train, test=test, results=results,
                        params=params, best=best)
    markdown, page = write_report(out_dir, measured)
    atomic_write_bytes(out_dir / "report.md", markdown.encode())
    atomic_write_bytes(out_dir / "report.html", page.encode())
    tables = {k: r.table() for k, r in results.items()}
    atomic_write_bytes(out_dir / "results.json", json.dumps(
        {"budget": asdict(plan), "seeds": seeds, "dataset": train.name, "tables": tables,
         "parameters": {m: p.to_dict() for m, p in params.items()}},
        indent=1, default=str).encode())
    return AssignmentReport(out_dir, plan, results, markdown)


# -- the measurements ---------------------------------------------------------------------------


def _measure(plan: Budget, models: list[str], lrs: list[float], seeds: tuple[int, ...],
             runs_dir: Path, per_image: dict[str, float],
             data: tuple[ImageDataset, ImageDataset], options: RunOptions,
             ) -> tuple[dict[str, ExperimentResult], BestModel | None]:
    """Train every question's runs in one pool, the longest first, then table each question.

    The runs of all questions go out together (each question's spec builder plans them), so
    no core waits at the end of one question for another core's last long run; each
    question's runs are then read from the store. A run two questions share (Q1.1's first
    model at lr 0.1 is Q1.4's) trains once, and a Q1.1 run whose Q1.2 run (the same
    configuration, with a convergence detector) finished first and trained at least as many
    epochs is read from that run's first epochs (:meth:`RunResult.first_epochs`): the same
    numbers, bit for bit, without training them twice.
    """
    store = _FinalCheckpointStore(runs_dir)
    options = replace(options, store=store)
    planned = {name: replace(q, specs=options.planned(q.specs))  # with the data's fingerprint
               for name, q in _questions(plan, models, lrs, seeds, len(data[0])).items()}
    everything = [s for q in planned.values() for s in q.specs]
    store.keep_final(planned["q1_4"].specs)  # only a Q1.4 run's weights are interpreted
    flow = _flow_specs(everything, seeds[0])
    unique = list({s.key: s for s in [*everything, *flow]}.values())
    _check_some_trained(options.run(_longest_first(unique, per_image)))
    quiet = replace(options, on_run=None)  # every run is in the store now: nothing trains below
    results = {name: ExperimentResult(q.kind, runs=quiet.run(q.specs), group_by=q.group_by)
               for name, q in planned.items()}
    results["q1_7_flow"] = ExperimentResult(
        "gradient_study", group_by="lr", runs=replace(quiet, progress=False).run(flow))
    best = _best_model(results["q1_4"], store, data, options.device)
    kept = store.final_path(best.run.spec).name if best is not None else None
    for path in runs_dir.glob("*.final.pt"):  # only the interpreted run's weights are worth
        if path.name != kept:                 # their megabytes
            path.unlink()
    return results, best


@dataclass(frozen=True)
class _QuestionRuns:
    """One question's runs: the experiment that tables them and the column it groups by."""

    kind: str
    group_by: str
    specs: list[RunSpec]


def _questions(plan: Budget, models: list[str], lrs: list[float], seeds: tuple[int, ...],
               train_size: int) -> dict[str, _QuestionRuns]:
    """Each question's runs, from the experiments' spec builders, in the order they plan."""
    base = models[0]
    detector = ConvergenceDetector(**plan.detector_config())
    traces = {name: _QuestionRuns("gradient_study", "lr", gradient_study_specs(
        base, lrs, plan.gradient_steps, statistic, seeds, train_size=train_size))
        for name, statistic in (("q1_7", "mean"), ("q1_7_abs", "mean_abs"))}
    recipe = compare_models_specs((RECIPE_MODEL,), RECIPE_LR, plan.recipe_epochs,
                                  seeds[:RECIPE_SEEDS], **RECIPE) if plan.recipe_epochs else []
    return {
        "q1_1": _QuestionRuns("lr_sweep", "lr", lr_sweep_specs(base, lrs, plan.epochs, seeds)),
        "q1_2": _QuestionRuns("convergence_study", "lr", convergence_study_specs(
            base, lrs, plan.max_epochs, detector, seeds)),
        "q1_4": _QuestionRuns("compare_models", "model", compare_models_specs(
            models, 0.1, plan.epochs, seeds)),
        **traces,
        **({"recipe": _QuestionRuns("compare_models", "model", recipe)} if recipe else {}),
    }


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


def _flow_specs(specs: list[RunSpec], first: int) -> list[RunSpec]:
    """The first seed's Q1.7 runs again with a per-layer tracer (issue 13's gradient flow).

    Each spec is the gradient study's own, with ``per_layer=True`` added to its tracer: the
    same training, the same whole-model mean (gradients.py computes it the same way).
    """
    flows = []
    for spec in specs:
        if spec.seed == first and spec.tracer is not None and dict(spec.tracer).get(
                "statistic") == "mean":
            config = GradientTracer(**{**dict(spec.tracer), "per_layer": True}).config()
            flows.append(replace(spec, tracer=tuple(sorted(config.items()))))
    return flows


def _check_some_trained(runs: list[RunResult]) -> None:
    """Refuse to write a report when every run failed: it would hold no number at all."""
    failed = [r for r in runs if r.history.status == "failed"]
    if runs and len(failed) == len(runs):
        first = failed[0]
        raise RunFailedError(
            f"all {len(runs)} runs failed, so no report was written; the first, "
            f"{first.spec.label} seed {first.spec.seed}: {first.history.reason}. Fix the cause "
            "and run again")


class _FinalCheckpointStore(RunStore):
    """A :class:`RunStore` that keeps the last checkpoint of a few runs as ``KEY.final.pt``.

    The Trainer writes a run's checkpoint after every epoch and when it ends; a plain store
    deletes it once the run is stored. Keeping the last one lets the report rebuild a trained
    model exactly (the Trainer restores it and trains no epoch) without training it again.
    Only the report's interpreted model needs one, and which Q1.4 model that is is known when
    all of Q1.4 has finished; so the first finished run of each Q1.4 model keeps its
    checkpoint (:meth:`keep_final`) and every other run's is deleted when it is stored: the
    folder holds at most one checkpoint per Q1.4 model beside those of the runs in training,
    and once every Q1.4 run is stored, only the most accurate model's (the runs go out the
    longest first, so Q1.4's CNN usually finishes early).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        super().__init__(folder)
        self._keep: dict[str, RunSpec] = {}  # the runs whose weights may be kept, by key

    def keep_final(self, specs: Iterable[RunSpec]) -> None:
        """Let the first finished run of each model among ``specs`` keep its last checkpoint."""
        self._keep = {s.key: s for s in specs}

    def final_path(self, spec: RunSpec) -> Path:
        """Where the finished run of ``spec`` keeps its last checkpoint."""
        return self._final(spec.key)

    def _final(self, key: str) -> Path:
        return self.folder / f"{key}.final.pt"

    def _wanted(self, spec: RunSpec) -> bool:
        """Whether ``spec``'s run keeps its checkpoint: Q1.4's, its model's first one."""
        return spec.key in self._keep and not any(
            self._final(key).exists() for key, other in self._keep.items()
            if other.model == spec.model)

    def _prune(self) -> None:
        """Once every Q1.4 run is stored, delete the kept checkpoints of the other models."""
        if not self._keep or not all(self.json_path(s).exists() for s in self._keep.values()):
            return
        runs = [r for r in map(self.load, self._keep.values()) if r is not None]
        best = _best_name(ExperimentResult("compare_models", runs=runs, group_by="model"))
        for key, spec in self._keep.items():
            if spec.model != best:
                self._final(key).unlink(missing_ok=True)

    def save(self, result: RunResult) -> Path:
        """Keep the checkpoint under :meth:`final_path` when it is wanted, then store the run.

        When storing fails (no space left), the checkpoint is put back, so the next call
        resumes the run from it (training no epoch) instead of training it again.
        """
        checkpoint = self.checkpoint_path(result.spec)
        final = self.final_path(result.spec)
        kept = (checkpoint.exists() and result.history.status != "diverged"
                and self._wanted(result.spec))
        if kept:
            try:
                os.replace(checkpoint, final)
            except OSError as exc:
                raise output_error(final, exc) from None
        try:
            path = super().save(result)
        except BaseException:
            if kept:
                os.replace(final, checkpoint)
            raise
        if result.spec.key in self._keep:
            self._prune()
        return path


def _best_model(models: ExperimentResult, store: _FinalCheckpointStore,
                data: tuple[ImageDataset, ImageDataset], device: str) -> BestModel | None:
    """The most accurate model of Q1.4, rebuilt from a trained seed, interpreted.

    The first seed whose last checkpoint was kept: the checkpoint gives back its weights (the
    Trainer restores it and trains no epoch). When no seed has one (runs finished elsewhere,
    by an older version, or read from the first epochs of a Q1.2 run), the first trained seed
    is trained again, in this process; the report then says so.
    """
    name = _best_name(models)
    if name is None:
        return None
    trained = [r for r in models.runs if r.spec.model == name
               and r.history.status not in ("diverged", "failed")]
    # the first seed whose weights were kept (a run read from a longer one has none)
    run = next((r for r in trained if store.final_path(r.spec).exists()), trained[0])
    path = store.final_path(run.spec)
    restored = path.exists()
    trainer, _ = trainer_for(run.spec, data, checkpoint=path if restored else None,
                             device=device)
    trainer.fit(*data, resume=restored)
    return BestModel(run=run, interpretation=interpret(trainer.model, data[1], device=device),
                     restored=restored)


def _best_name(models: ExperimentResult) -> str | None:
    """The Q1.4 model of the highest mean final accuracy; None when no model has one."""
    rows = [r for r in models.table() if r["final_accuracy"] is not None]
    return max(rows, key=lambda r: r["final_accuracy"])["model"] if rows else None


# -- arguments and the output folder ------------------------------------------------------------

_MARKER = ".fmclassify-report"


def claim_output_folder(out: str | os.PathLike[str]) -> Path:
    """Check that ``out`` can hold a report, create it, and mark it as one; return it.

    :func:`run_assignment` calls it first; call it yourself to learn of a bad folder before
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


def total_runs(seeds: int, models: Sequence[str], lrs: Sequence[float], *,
               recipe: bool = True) -> int:
    """How many runs :func:`run_assignment` trains (for an overall progress bar).

    Q1.1, Q1.2 and Q1.7 twice (mean, |mean|) per learning rate, Q1.4 per model (its first
    model at lr 0.1 is Q1.1's run when 0.1 is among ``lrs``), per seed; then the per-layer
    flow of the first seed and the recipe's runs (none with ``recipe=False``, a budget of no
    recipe epochs).
    """
    shared = 1 if any(lr == 0.1 for lr in lrs) else 0
    per_seed = 4 * len(lrs) + len(models) - shared
    return seeds * per_seed + len(lrs) + (min(seeds, RECIPE_SEEDS) if recipe else 0)


def check_assignment(budget: str | Budget, seeds: int, models: Sequence[str],
                     lrs: Sequence[float], *, device: str = "auto") -> Budget:
    """Check :func:`run_assignment`'s arguments (before any data is loaded); return the budget.

    Raises
    ------
    ConfigError, UnknownModelError
        For an unknown budget or model, seeds < 1, or empty or non-positive lrs.
    """
    if isinstance(budget, str):
        budget = Budget.named(budget, device)  # "auto": full on a GPU, quick on the CPU
    check_int("seeds", seeds)
    if not models:
        raise ConfigError("models must name at least one registered model, e.g. base")
    for name in [*models, RECIPE_MODEL]:
        get_model_spec(name)  # a typo fails here, before any run trains
    if not lrs or any(isinstance(lr, bool) or not isinstance(lr, (int, float))
                      or not math.isfinite(lr) or lr <= 0 for lr in lrs):
        raise ConfigError(f"lrs must be positive learning rates, got {list(lrs)!r}")
    return budget
