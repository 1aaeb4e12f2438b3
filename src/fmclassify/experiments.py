"""The course's questions as functions: sweeps, convergence, model comparison, gradients.

Each experiment is a plan and one call. Its spec builder (:func:`lr_sweep_specs`,
:func:`convergence_study_specs`, :func:`compare_models_specs`, :func:`gradient_study_specs`)
checks every argument and returns the runs it needs as :class:`~fmclassify.RunSpec` objects,
training nothing; :meth:`RunOptions.run` trains them (:mod:`fmclassify.runs`), where and how
:class:`RunOptions` says; the experiment function does both, with the options as its keyword
arguments, and returns an :class:`ExperimentResult` with the runs' Histories, a table
(:meth:`ExperimentResult.table`), Markdown, figures and JSON. Several experiments' specs
handed to one :meth:`RunOptions.run` train in one pool, with no core idle between one
experiment and the next (:func:`fmclassify.report.run_assignment` works so).

Given a ``store`` folder, every finished run is saved there as JSON keyed by its full
configuration and never trained twice, and an unfinished run continues from its last finished
epoch: rerun the same call after an interrupt and it picks up where it stopped.

Tables name what the course left ambiguous: ``final_accuracy`` (after the last epoch),
``best_accuracy`` (the highest over the epochs) and ``mean_accuracy`` (the mean over the
epochs, the course's "Avg Accuracy") are separate columns; accuracies are fractions.

On a CPU with several cores the runs train in parallel processes, one per core, each a plain
:meth:`fmclassify.Trainer.fit` with its share of the intra-op threads (``workers=1`` trains
them one by one in this process; ``executor=`` sends them anywhere a
:class:`concurrent.futures.Executor` reaches). A run's numbers depend on its thread count
only through float rounding: a run trained in a one-thread worker equals bit for bit the same
run trained alone under ``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from fmclassify._checks import check_choice, check_int, check_lr, check_seeds, check_values
from fmclassify._frames import frame, pandas_for
from fmclassify._io import atomic_write_bytes, dumps_json
from fmclassify._tables import Table, experiment_table, to_html, to_markdown, to_text
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import load_dataset
from fmclassify.exceptions import ConfigError
from fmclassify.executors import DataRef, resolve
from fmclassify.gradients import GradientTracer
from fmclassify.history import History
from fmclassify.runs import (
    RECIPE_FIELDS,
    Data,
    RunResult,
    RunSpec,
    RunStore,
    check_run_options,
    data_id,
    run_many,
)

if TYPE_CHECKING:  # plotting (matplotlib) is imported lazily, only to draw
    from fmclassify.plotting import FigureGrid

__all__ = [
    "ExperimentResult",
    "RunOptions",
    "compare_models",
    "compare_models_specs",
    "convergence_study",
    "convergence_study_specs",
    "gradient_study",
    "gradient_study_specs",
    "lr_sweep",
    "lr_sweep_specs",
]

#: The figures :meth:`ExperimentResult.plot` draws, by kind.
PLOT_KINDS = ("run", "comparison", "gradients", "flow")

#: Keyword arguments the experiments pass on to every run (``**trainer_options``).
TRAINER_OPTIONS = ("batch_size", "shuffle", "step", *RECIPE_FIELDS)


@dataclass
class ExperimentResult:
    """The runs of one experiment and their summary.

    Parameters
    ----------
    kind : str
        ``"lr_sweep"``, ``"convergence_study"``, ``"compare_models"`` or ``"gradient_study"``.
    runs : list of RunResult
        Every run, in the order trained.
    group_by : str
        The column that tells runs apart in tables (``"lr"`` or ``"model"``); seeds of one
        group are aggregated as mean and standard deviation.
    notes : list of str
        What a reader of the table should know, printed under its table.

    Notes
    -----
    A run that diverged (or failed) gives no number to its group's means: its row counts it
    ("diverged in 1 of 3 seeds") and averages the other seeds. A gradient trace with a
    non-finite step gives no statistic over its steps (the steps before it still show in
    :meth:`plot`).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.lr_sweep(lrs=(0.1, 0.01), epochs=2)      # doctest: +SKIP
    >>> [row["final_accuracy"] for row in result.table()]    # doctest: +SKIP
    >>> figures = result.plot()                              # doctest: +SKIP
    >>> result.to_json("sweep.json")                         # doctest: +SKIP
    """

    kind: str
    runs: list[RunResult] = field(default_factory=list)
    group_by: str = "lr"
    notes: list[str] = field(default_factory=list)

    @property
    def histories(self) -> list[History]:
        """The runs' Histories, in order."""
        return [r.history for r in self.runs]

    def groups(self) -> dict[Any, list[RunResult]]:
        """Runs grouped by :attr:`group_by`, in first-seen order."""
        out: dict[Any, list[RunResult]] = {}
        for run in self.runs:
            out.setdefault(getattr(run.spec, self.group_by), []).append(run)
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per group: the measured columns, aggregated over seeds.

        Numeric columns hold the mean over the group's seeds that did not diverge or fail,
        with ``<column>_std`` beside it when the group has several seeds (None unless two
        of them gave a value). ``seeds``, ``diverged``, ``failed`` and ``unstable`` count
        runs; ``status`` lists each seed's status, ``outcome`` sums them up ("unstable in
        3 of 3 seeds"). A convergence study adds ``converged`` (how many seeds met the rule)
        and averages ``converged_epoch`` over those.
        """
        return [_summarise(self.group_by, key, runs, self.kind)
                for key, runs in self.groups().items()]

    def to_table(self, *, title: str = "") -> Table:
        """The table, formatted (accuracies in percent), with :attr:`notes` under it."""
        return experiment_table(self.table(), self.kind, title=title, notes=self.notes)

    def to_markdown(self) -> str:
        """The table as Markdown, accuracies in percent, then any :attr:`notes`."""
        return to_markdown(self.to_table(), note_prefix="Note: ")

    def _repr_html_(self) -> str:
        """How a notebook shows the result: the experiment's table and its notes."""
        return to_html(self.to_table(title=f"{self.kind}: {len(self.runs)} runs"))

    def __str__(self) -> str:
        return to_text(self.to_table(title=f"{self.kind}: {len(self.runs)} runs"))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def plot(self, kinds: Collection[str] = PLOT_KINDS) -> FigureGrid:
        """Figures, by name: one per run, comparisons, gradient traces and flows.

        Parameters
        ----------
        kinds : collection of str, default all of :data:`PLOT_KINDS`
            Which figures to draw: ``"run"`` (``run-KEY``: loss and accuracy per epoch of
            each run, titled with its seed), ``"comparison"`` (``comparison-test_accuracy``,
            ``comparison-train_loss``, ``comparison-test_loss``: every run on one axes, for
            several runs), ``"gradients"`` (``gradients-KEY``: each gradient trace) and
            ``"flow"`` (``flow-KEY``: the mean gradient size per parameter tensor, for a
            trace recorded with ``GradientTracer(per_layer=True)``).

        Returns
        -------
        fmclassify.plotting.FigureGrid
            A dict of name to :class:`matplotlib.figure.Figure` (index it as before:
            ``result.plot()["comparison-test_accuracy"]``) that a notebook shows as one
            picture, the figures two a row, once, when the cell ends. A dict rather than one
            figure of subplots, so that each figure stays whole, to save or to place.
        """
        from fmclassify import plotting

        unknown = sorted(set(kinds) - set(PLOT_KINDS))
        if unknown:
            raise ConfigError(f"unknown figure kind {unknown[0]!r}; choose from "
                              f"{', '.join(PLOT_KINDS)}")
        figures = plotting.FigureGrid()
        shown = [r for r in self.runs if r.history.records]
        with plotting.unshown():  # the grid shows in a notebook, not each figure in it
            for run in shown if "run" in kinds else ():
                figures[f"run-{run.spec.key}"] = plotting.plot_history(
                    run.history, title=f"{_run_label(run.spec)}, seed {run.spec.seed}")
            if "comparison" in kinds and len(shown) > 1:
                labels = [f"{_run_label(r.spec)} seed {r.spec.seed}" for r in shown]
                for metric in ("test_accuracy", "train_loss", "test_loss"):
                    figures[f"comparison-{metric}"] = plotting.plot_comparison(
                        [r.history for r in shown], metric=metric, labels=labels)
            for run in self.runs:
                figures.update(_gradient_figures(run, kinds))
        return figures.show_when_the_cell_ends()

    def to_dataframe(self, per: Literal["run", "epoch"] = "run") -> Any:
        """The runs as a tidy :class:`pandas.DataFrame`: one row per run, or per run and epoch.

        Needs pandas, the optional extra ``fmclassify[pandas]``. Both forms start with
        ``run`` (the run's key, as in :meth:`plot`'s names) and the run's configuration, one
        column per :class:`~fmclassify.runs.RunSpec` field under its own name (``model``,
        ``lr``, ``epochs`` (planned), ``seed``, ``batch_size``, the recipe's ``momentum``,
        ``schedule``, ... ``augment`` as ``"crop,flip"``; not the detector's and tracer's
        settings), so ``frame.groupby("lr")`` reads a sweep.

        Parameters
        ----------
        per : {"run", "epoch"}, default "run"
            ``"run"``: then ``status``, ``epochs_trained`` (int64), ``final_accuracy``,
            ``best_accuracy``, ``mean_accuracy`` (fractions), ``final_train_loss``,
            ``seconds_per_epoch`` (float64; NaN for a run that diverged or failed, whose
            numbers never enter :meth:`table`'s means either, so a group's ``mean()`` is the
            table's), ``diverged_epoch``, ``converged_epoch``, ``parameters`` (``Int64``,
            ``<NA>`` when none) and ``unstable`` (bool). ``"epoch"``: then the columns of
            :meth:`History.to_dataframe <fmclassify.History.to_dataframe>`, one row per
            record (epoch 0 included), with the record's learning rate as ``epoch_lr``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ConfigError
            If ``per`` is not ``"run"`` or ``"epoch"``.
        ImportError
            If pandas is not installed; the message says ``pip install "fmclassify[pandas]"``.

        Examples
        --------
        >>> frame = result.to_dataframe()                                # doctest: +SKIP
        >>> frame.groupby("lr")["final_accuracy"].agg(["mean", "std"])  # doctest: +SKIP
        >>> curves = result.to_dataframe(per="epoch")                    # doctest: +SKIP
        """
        check_choice("per", per, ("run", "epoch"))
        what = "ExperimentResult.to_dataframe"
        config = frame([_config(r.spec) for r in self.runs], _config_columns(), what=what)
        if per == "epoch":
            return _per_epoch(config, self.runs)
        outcome = frame([_outcome_row(r) for r in self.runs], _RUN_COLUMNS, what=what)
        return pandas_for(what).concat([config, outcome], axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: kind, table, and every run."""
        return {"kind": self.kind, "group_by": self.group_by, "table": self.table(),
                "notes": self.notes, "runs": [r.to_dict() for r in self.runs]}

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The result as JSON text; also written atomically to ``path`` when given."""
        text = dumps_json(self.to_dict())
        if path is not None:
            atomic_write_bytes(path, text.encode())
        return text


def _run_label(spec: RunSpec) -> str:
    """A legend label: ``"base lr=0.1"``, with ``"+recipe"`` for a run not on plain SGD.

    A recipe is anything beyond the course's setup: momentum, a schedule, augmentation, ...
    """
    plain = RunSpec(spec.model, spec.lr, spec.epochs)
    changed = any(getattr(spec, f) != getattr(plain, f) for f in (*RECIPE_FIELDS, "batch_size"))
    return spec.label + (" +recipe" if changed else "")


def _gradient_figures(run: RunResult, kinds: Collection[str]) -> dict[str, Any]:
    """The trace of one run, and its per-tensor flow when it was recorded per layer."""
    from fmclassify import plotting

    grads = run.gradients
    if not grads:
        return {}
    stat = grads.get("statistic", "mean")
    label = f"{_run_label(run.spec)}, seed {run.spec.seed}"
    out = {}
    if "gradients" in kinds:
        out[f"gradients-{run.spec.key}"] = plotting.plot_gradients(
            grads["values"], statistic=stat, title=f"gradient {stat}, {label}")
    flow = grads.get("per_layer_stats")
    if flow and "flow" in kinds:
        out[f"flow-{run.spec.key}"] = plotting.plot_gradient_flow(
            {name: stats["mean_abs"] for name, stats in flow.items()}, stat="mean_abs",
            title=f"mean |gradient| per tensor, {label}")
    return out


#: The per-run frame's measured columns and their dtypes.
_RUN_COLUMNS: dict[str, str | None] = {
    "status": None, "epochs_trained": "int64", "final_accuracy": "float64",
    "best_accuracy": "float64", "mean_accuracy": "float64", "final_train_loss": "float64",
    "seconds_per_epoch": "float64", "diverged_epoch": "Int64", "converged_epoch": "Int64",
    "parameters": "Int64", "unstable": "bool"}
_NOT_CONFIG = ("detector", "tracer")  # nested settings, not one value per column


def _config_columns() -> dict[str, str | None]:
    """``run``, then every RunSpec field but the nested ones, typed by its annotation.

    A number that may be None (``ema``, ``clip_grad_norm``, ``val_split``) is float64 with
    NaN, so an all-None column is numeric too; text and tuples are left to pandas.
    """
    def dtype(annotation: Any) -> str | None:
        kind = str(annotation)
        if kind == "bool":
            return "bool"
        if kind.startswith("int"):
            return "Int64" if "None" in kind else "int64"
        return "float64" if kind.startswith("float") else None

    return {"run": None, **{f.name: dtype(f.type) for f in fields(RunSpec)
                            if f.name not in _NOT_CONFIG}}


def _config(spec: RunSpec) -> dict[str, Any]:
    row: dict[str, Any] = {"run": spec.key}
    for f in fields(RunSpec):
        value = getattr(spec, f.name)
        row[f.name] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return row


def _outcome_row(run: RunResult) -> dict[str, Any]:
    h = run.history
    counts = h.status not in _NO_NUMBERS
    row = {name: get(h) if counts else None for name, get in _COLUMNS.items()}
    return {**row, "status": h.status, "epochs_trained": h.epochs_trained,
            "diverged_epoch": h.diverged_epoch, "unstable": h.unstable,
            "converged_epoch": h.metadata.get("converged_epoch"),
            "parameters": h.metadata.get("parameters")}


def _per_epoch(config: Any, runs: list[RunResult]) -> Any:
    """Each run's History frame, its configuration row repeated beside every record."""
    pd = pandas_for("ExperimentResult.to_dataframe")

    def epochs(h: History) -> Any:
        return h.to_dataframe().rename(columns={"lr": "epoch_lr"})  # "lr" is the run's

    parts = [pd.concat([config.iloc[[i] * len(e)].reset_index(drop=True), e], axis=1)
             for i, e in enumerate(epochs(r.history) for r in runs)]
    empty = pd.concat([config, epochs(History())], axis=1)  # no runs: the columns, no rows
    return pd.concat(parts or [empty], ignore_index=True)


#: The columns of every row, each read from one History (None where it has no value).
_COLUMNS: dict[str, Callable[[History], float | None]] = {
    "final_accuracy": lambda h: h.final_accuracy if h.epochs_trained else None,
    "best_accuracy": lambda h: h.best_accuracy,
    "mean_accuracy": lambda h: h.mean_accuracy,
    "final_train_loss": lambda h: (h.trained[-1].train_loss if h.trained else None),
    "epochs_trained": lambda h: float(h.epochs_trained),
    "seconds_per_epoch": lambda h: h.seconds_per_epoch,
}


def _summarise(group_by: str, key: Any, runs: list[RunResult], kind: str) -> dict[str, Any]:
    hs = [r.history for r in runs]
    ok = [h for h in hs if h.status not in _NO_NUMBERS]  # the seeds whose numbers count
    cols = dict(_COLUMNS)
    if kind == "convergence_study":
        cols["converged_epoch"] = lambda h: h.metadata.get("converged_epoch")
    row: dict[str, Any] = {group_by: key, "seeds": len(runs),
                           "parameters": next((h.metadata.get("parameters") for h in hs
                                               if h.metadata.get("parameters")), None)}
    for name, get in cols.items():
        _aggregate(row, name, [get(h) for h in ok], several=len(runs) > 1)
    row["status"] = "; ".join(h.describe_status() for h in hs)
    row["diverged"] = sum(h.status == "diverged" for h in hs)
    row["failed"] = sum(h.status == "failed" for h in hs)
    row["unstable"] = sum(h.unstable for h in hs)
    if kind == "convergence_study":
        row["converged"] = sum(h.metadata.get("converged_epoch") is not None for h in ok)
    grads = [r.gradients for r in runs if r.gradients]
    if grads:
        _gradient_columns(row, grads, several=len(runs) > 1)
    row["outcome"] = _outcome(hs, row, kind)
    return row


_NO_NUMBERS = ("diverged", "failed")  # statuses whose measurements never enter a mean


def _aggregate(row: dict[str, Any], name: str, values: Sequence[float | None], *,
               several: bool) -> None:
    """``row[name]``: the mean of the finite values; ``row[name_std]`` for several seeds."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    row[name] = statistics.fmean(finite) if finite else None
    if several:
        row[f"{name}_std"] = statistics.stdev(finite) if len(finite) > 1 else None


def _gradient_columns(row: dict[str, Any], grads: list[dict[str, Any]], *,
                      several: bool) -> None:
    """First, last and mean over the steps, over the traces that stayed finite throughout."""
    finite = [g for g in grads if not g.get("nonfinite_steps")
              and all(v is not None for v in g["values"]) and g["values"]]
    row["gradient_statistic"] = grads[0].get("statistic", "mean")
    row["gradient_steps"] = max(len(g["values"]) for g in grads)
    row["gradient_nonfinite"] = len(grads) - len(finite)
    broken = [_first_nonfinite(g) for g in grads if g not in finite]
    row["gradient_nonfinite_step"] = min(broken) if broken else None
    for name, get in (("gradient_first", lambda v: v[0]), ("gradient_last", lambda v: v[-1]),
                      ("gradient_mean", statistics.fmean)):
        _aggregate(row, name, [get(g["values"]) for g in finite], several=several)


def _first_nonfinite(trace: dict[str, Any]) -> int:
    """The 1-based step at which a trace first holds a non-finite value (None in JSON)."""
    steps = trace.get("nonfinite_steps") or [
        i for i, v in enumerate(trace["values"]) if v is None]
    return int(min(steps)) + 1 if steps else len(trace["values"]) + 1


def _outcome(hs: list[History], row: dict[str, Any], kind: str) -> str:
    """What happened to a group's seeds, in a few words: "converged in 2 of 3 seeds; ..."."""
    n = len(hs)
    trace = (f"trace non-finite from step {row['gradient_nonfinite_step']}"
             if row.get("gradient_nonfinite") else "")
    if n == 1:
        return "; ".join(p for p in (hs[0].describe_status(), trace) if p)
    of = f" of {n} seeds"
    ok = [h for h in hs if h.status not in _NO_NUMBERS]
    parts: list[str] = []
    converged = row.get("converged", 0)
    if kind == "convergence_study" and converged:
        parts.append(f"converged in {converged}{of}")
    if kind == "convergence_study" and len(ok) > converged:
        within = max(h.epochs_trained for h in ok)
        parts.append(f"not converged within {within} epochs in {len(ok) - converged}{of}")
    elif kind != "convergence_study" and ok:
        parts.append(f"trained in {len(ok)}{of}")
    diverged = [h for h in hs if h.status == "diverged"]
    if diverged:
        epochs = ", ".join(str(h.diverged_epoch) for h in diverged)
        parts.append(f"diverged in {len(diverged)}{of} (epoch {epochs})")
    if row["failed"]:
        parts.append(f"failed in {row['failed']}{of}")
    if row["unstable"]:
        parts.append(f"unstable in {row['unstable']}{of}")
    if trace:
        parts.append(f"{trace} in {row['gradient_nonfinite']}{of}")
    return "; ".join(parts)


# -- where and how runs train -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where and how an experiment's runs train: the options every experiment shares.

    Every experiment (:func:`lr_sweep`, :func:`convergence_study`, :func:`compare_models`,
    :func:`gradient_study`) takes these as keyword arguments of the same names; they choose
    where the runs train and what is kept, never what a run computes (that is its
    :class:`~fmclassify.RunSpec`, from the ``*_specs`` functions). :meth:`run` trains any
    list of specs with them: the experiments do so with their own.

    Parameters
    ----------
    data : (ImageDataset, ImageDataset) or DataRef, optional
        Train and test sets; default ``load_dataset(dataset)``. A
        :class:`~fmclassify.DataRef` names the data so that each worker of a cluster loads it
        for itself (data loaded from files is named so automatically).
    dataset : str, default "fashion-mnist"
        Used when ``data`` is not given.
    store : RunStore or path, optional
        Keep finished runs and resume unfinished ones.
    progress : bool, default False
        Show each run's epoch bar (runs trained in this process).
    device : str, default "auto"
        Training device.
    on_run : callable, optional
        Called with each finished RunResult (progress reporting).
    executor : concurrent.futures.Executor, optional
        Where the runs train: :func:`fmclassify.dask_executor`, Dask's
        ``client.get_executor(pure=False)``, submitit's, a process pool; default: processes
        on this machine, one per core (:func:`fmclassify.runs.run_many`).
    workers : int, optional
        Processes of the default pool; ``1`` trains the runs one by one in this process.
    on_error : {"record", "raise"}, default "record"
        A run that fails (on a worker, or here) is kept with status ``"failed"`` and the
        error's text while the others go on; ``"raise"`` stops at the first failure
        (:class:`~fmclassify.RunFailedError` from a worker). Failed runs are not stored: the
        same call trains them again.

    Raises
    ------
    ConfigError
        When made: ``executor`` is not an Executor, ``workers`` < 1, or ``on_error`` is
        unknown (before any data is loaded).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> options = fmc.RunOptions(workers=1, store="runs")                   # doctest: +SKIP
    >>> runs = options.run(fmc.lr_sweep_specs(lrs=(0.1, 0.01), epochs=2))   # doctest: +SKIP
    """

    data: Data | DataRef | None = None
    dataset: str = "fashion-mnist"
    store: RunStore | str | os.PathLike[str] | None = None
    progress: bool = False
    device: str = "auto"
    on_run: Callable[[RunResult], None] | None = None
    executor: Executor | None = None
    workers: int | None = None
    on_error: Literal["record", "raise"] = "record"

    def __post_init__(self) -> None:
        check_run_options(self.executor, self.workers, self.on_error)

    def load(self) -> Data | DataRef:
        """The data the runs train on: ``data``, or ``load_dataset(dataset)`` when not given."""
        return self.data if self.data is not None else load_dataset(self.dataset)

    def planned(self, specs: Sequence[RunSpec]) -> list[RunSpec]:
        """``specs`` as :meth:`run` trains and stores them: each with the data's fingerprint.

        The fingerprint (:func:`~fmclassify.runs.data_id`) is part of a run's store key, so
        runs of other data are never read back. Loads the data when it was not given.
        """
        return _with_data_id(specs, self.load())

    def run(self, specs: Sequence[RunSpec]) -> list[RunResult]:
        """Train ``specs`` (those not finished in the store) and return their results in order.

        One :func:`~fmclassify.runs.run_many` call with these options, on :meth:`planned`
        specs; finished runs are read from the store, never trained twice. The data is loaded
        once, here, when it was not given.
        """
        data = self.load()
        store = self.store
        if store is not None and not isinstance(store, RunStore):
            store = RunStore(store)
        return run_many(_with_data_id(specs, data), data, store=store, executor=self.executor,
                        workers=self.workers, progress=self.progress, device=self.device,
                        on_run=self.on_run, on_error=self.on_error)


def _with_data_id(specs: Sequence[RunSpec], data: Data | DataRef) -> list[RunSpec]:
    tensors, _ = resolve(data)  # a DataRef is loaded once per process; workers load their own
    ident = data_id(*tensors)
    return [replace(s, data=ident) for s in specs]


# -- the questions' runs ------------------------------------------------------------------------


def lr_sweep_specs(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    **trainer_options: Any,
) -> list[RunSpec]:
    """The runs of :func:`lr_sweep`: one per learning rate and seed, in that order.

    Parameters
    ----------
    model : str, default "base"
        Registered model name.
    lrs : sequence of float, default (1, 0.1, 0.01, 0.001)
        The course's learning rates.
    epochs : int, default 10
        Epochs per run.
    seeds : sequence of int, default (0,)
        One run per seed and lr; tables give the mean and standard deviation.
    **trainer_options
        Passed to every run's :class:`~fmclassify.Trainer`: ``batch_size``, ``shuffle``,
        ``step`` and the recipe (``optimizer``, ``momentum``, ``nesterov``, ``weight_decay``,
        ``schedule``, ``warmup_epochs``, ``label_smoothing``, ``clip_grad_norm``, ``augment``,
        ``val_split``, ``precision``, ``ema``), by name.

    Returns
    -------
    list of RunSpec
        Without the data's fingerprint, which :meth:`RunOptions.run` adds.

    Raises
    ------
    ConfigError
        For any argument out of range or unknown.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> [(s.lr, s.seed) for s in fmc.lr_sweep_specs(lrs=(0.1, 0.01), seeds=(0, 1))]
    [(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]
    """
    seeds = check_seeds(seeds)
    options = _options(trainer_options)
    return [RunSpec(model, check_lr(lr), epochs, seed, **options)
            for lr in check_values("lrs", lrs) for seed in seeds]


def convergence_study_specs(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    max_epochs: int = 600,
    detector: ConvergenceDetector | None = None,
    seeds: Sequence[int] = (0,),
    **trainer_options: Any,
) -> list[RunSpec]:
    """The runs of :func:`convergence_study`: one per learning rate and seed, with a detector.

    Parameters
    ----------
    model, lrs, seeds, **trainer_options
        As for :func:`lr_sweep_specs`.
    max_epochs : int, default 600
        The budget: a run that has not converged by then is reported as "not converged
        within N epochs".
    detector : ConvergenceDetector, optional
        The rule; default ``ConvergenceDetector(threshold=0.001, patience=3, window=3)``. Each
        run gets a fresh detector with the same settings.

    Returns
    -------
    list of RunSpec
        Each with the detector's settings (``spec.detector``).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> specs = fmc.convergence_study_specs(lrs=(0.1,), max_epochs=100)
    >>> specs[0].epochs, dict(specs[0].detector)["patience"]
    (100, 3)
    """
    seeds = check_seeds(seeds)
    if detector is not None and not isinstance(detector, ConvergenceDetector):
        raise ConfigError(f"detector must be a ConvergenceDetector, got {type(detector).__name__}")
    detector = detector or ConvergenceDetector(threshold=0.001, patience=3, window=3)
    det_cfg = tuple(sorted(detector.config().items()))
    options = _options(trainer_options)
    return [RunSpec(model, check_lr(lr), max_epochs, seed, detector=det_cfg, **options)
            for lr in check_values("lrs", lrs) for seed in seeds]


def compare_models_specs(
    models: Sequence[str] = ("base", "deeper", "wider"),
    lr: float = 0.1,
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    **trainer_options: Any,
) -> list[RunSpec]:
    """The runs of :func:`compare_models`: one per model and seed, in that order.

    Parameters
    ----------
    models : sequence of str, default ("base", "deeper", "wider")
        Registered model names.
    lr : float, default 0.1
        Learning rate of every run.
    epochs, seeds, **trainer_options
        As for :func:`lr_sweep_specs`.

    Returns
    -------
    list of RunSpec

    Examples
    --------
    >>> import fmclassify as fmc
    >>> [s.model for s in fmc.compare_models_specs(("base", "wider"), epochs=3)]
    ['base', 'wider']
    """
    seeds = check_seeds(seeds)
    options = _options(trainer_options)
    return [RunSpec(m, check_lr(lr), epochs, seed, **options)
            for m in check_values("models", models) for seed in seeds]


def gradient_study_specs(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    steps: int = 100,
    statistic: Literal["mean", "mean_abs", "l2_norm"] = "mean",
    seeds: Sequence[int] = (0,),
    *,
    train_size: int,
    **trainer_options: Any,
) -> list[RunSpec]:
    """The runs of :func:`gradient_study`: one per learning rate and seed, with a tracer.

    Each run trains as many epochs as the steps need, which depends on the training set's
    size: ``max(1, ceil(steps * batch_size / train_size))``.

    Parameters
    ----------
    steps : int, default 100
        Steps to record.
    statistic : {"mean", "mean_abs", "l2_norm"}, default "mean"
        The course asks for the mean of every gradient entry.
    train_size : int
        Images in the training set the runs will train on (``len(train)``; one epoch of
        Fashion-MNIST is 60000 images, 938 steps at batch 64).
    model, lrs, seeds, **trainer_options
        As for :func:`lr_sweep_specs`.

    Returns
    -------
    list of RunSpec
        Each with the tracer's settings (``spec.tracer``).

    Examples
    --------
    >>> import fmclassify as fmc
    >>> specs = fmc.gradient_study_specs(lrs=(0.1,), steps=100, train_size=2000)
    >>> specs[0].epochs    # 100 steps of batch 64 are 6400 images: 4 epochs of 2000
    4
    """
    specs = _one_epoch_traces(model, lrs, steps, statistic, seeds, trainer_options)
    epochs = max(1, math.ceil(steps * specs[0].batch_size / check_int("train_size", train_size)))
    return [replace(s, epochs=epochs) for s in specs]


def _one_epoch_traces(model: str, lrs: Sequence[float], steps: int, statistic: str,
                      seeds: Sequence[int], trainer_options: dict[str, Any]) -> list[RunSpec]:
    """The gradient study's runs at one epoch: every argument checked, no data needed."""
    seeds = check_seeds(seeds)
    tracer_cfg = tuple(sorted(GradientTracer(steps=steps, statistic=statistic).config().items()))
    options = _options(trainer_options)
    return [RunSpec(model, check_lr(lr), 1, seed, tracer=tracer_cfg, **options)
            for lr in check_values("lrs", lrs) for seed in seeds]


def _options(trainer_options: dict[str, Any]) -> dict[str, Any]:
    """The Trainer options every run of an experiment gets, checked by name."""
    unknown = sorted(set(trainer_options) - set(TRAINER_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; the runs take "
                          f"{', '.join(TRAINER_OPTIONS)}")
    opts = dict(trainer_options)
    if opts.get("augment") is not None and not isinstance(opts["augment"], str):
        opts["augment"] = tuple(opts["augment"])
    elif isinstance(opts.get("augment"), str):
        opts["augment"] = tuple(a.strip() for a in opts["augment"].split(",") if a.strip())
    return opts


# -- the questions ------------------------------------------------------------------------------


def lr_sweep(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | DataRef | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    on_error: Literal["record", "raise"] = "record",
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.1: train ``model`` at each learning rate for ``epochs`` epochs.

    The runs are :func:`lr_sweep_specs`'s, trained by :meth:`RunOptions.run`.

    Parameters
    ----------
    model, lrs, epochs, seeds, **trainer_options
        What trains: as for :func:`lr_sweep_specs`.
    data, dataset, store, progress, device, on_run, executor, workers, on_error
        Where and how the runs train: as for :class:`RunOptions`.

    Returns
    -------
    ExperimentResult
        Grouped by ``lr``.

    Raises
    ------
    ConfigError
        For any argument out of range or unknown (before any data is loaded).

    Examples
    --------
    >>> result = lr_sweep(lrs=(0.1, 0.01), epochs=2)   # doctest: +SKIP
    >>> print(result.to_markdown())                    # doctest: +SKIP
    """
    specs = lr_sweep_specs(model, lrs, epochs, seeds, **trainer_options)
    options = RunOptions(data=data, dataset=dataset, store=store, progress=progress,
                         device=device, on_run=on_run, executor=executor, workers=workers,
                         on_error=on_error)
    return ExperimentResult("lr_sweep", runs=options.run(specs), group_by="lr")


def convergence_study(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    max_epochs: int = 600,
    detector: ConvergenceDetector | None = None,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | DataRef | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    on_error: Literal["record", "raise"] = "record",
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.2: train until accuracy stops changing, at each learning rate.

    The runs are :func:`convergence_study_specs`'s, trained by :meth:`RunOptions.run`.

    Parameters
    ----------
    model, lrs, max_epochs, detector, seeds, **trainer_options
        What trains: as for :func:`convergence_study_specs`.
    data, dataset, store, progress, device, on_run, executor, workers, on_error
        Where and how the runs train: as for :class:`RunOptions`.

    Returns
    -------
    ExperimentResult
        Grouped by ``lr``, with a ``converged_epoch`` column.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> detector = fmc.ConvergenceDetector(threshold=0.001, patience=3, window=3)
    >>> result = fmc.convergence_study(lrs=(0.1,), max_epochs=100,
    ...                                detector=detector)                 # doctest: +SKIP
    >>> result.table()[0]["converged_epoch"]                             # doctest: +SKIP
    """
    specs = convergence_study_specs(model, lrs, max_epochs, detector, seeds, **trainer_options)
    options = RunOptions(data=data, dataset=dataset, store=store, progress=progress,
                         device=device, on_run=on_run, executor=executor, workers=workers,
                         on_error=on_error)
    return ExperimentResult("convergence_study", runs=options.run(specs), group_by="lr")


def compare_models(
    models: Sequence[str] = ("base", "deeper", "wider"),
    lr: float = 0.1,
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | DataRef | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    on_error: Literal["record", "raise"] = "record",
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.4: train each model with the same settings; accuracy against parameters.

    The runs are :func:`compare_models_specs`'s, trained by :meth:`RunOptions.run`.

    Parameters
    ----------
    models, lr, epochs, seeds, **trainer_options
        What trains: as for :func:`compare_models_specs`.
    data, dataset, store, progress, device, on_run, executor, workers, on_error
        Where and how the runs train: as for :class:`RunOptions`.

    Returns
    -------
    ExperimentResult
        Grouped by ``model``, with a ``parameters`` column.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.compare_models(("base", "wider"), epochs=3)          # doctest: +SKIP
    >>> print(result.to_markdown())                                      # doctest: +SKIP
    """
    specs = compare_models_specs(models, lr, epochs, seeds, **trainer_options)
    options = RunOptions(data=data, dataset=dataset, store=store, progress=progress,
                         device=device, on_run=on_run, executor=executor, workers=workers,
                         on_error=on_error)
    return ExperimentResult("compare_models", runs=options.run(specs), group_by="model")


def gradient_study(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    steps: int = 100,
    statistic: Literal["mean", "mean_abs", "l2_norm"] = "mean",
    seeds: Sequence[int] = (0,),
    *,
    data: Data | DataRef | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    on_error: Literal["record", "raise"] = "record",
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.7: the gradient statistic over the first ``steps`` training steps, per lr.

    Each run trains as many epochs as the steps need (one epoch of Fashion-MNIST at batch 64
    is 938 steps), with a :class:`~fmclassify.GradientTracer` attached. The runs are
    :func:`gradient_study_specs`'s for the training set's size, trained by
    :meth:`RunOptions.run`.

    Parameters
    ----------
    model, lrs, steps, statistic, seeds, **trainer_options
        What trains: as for :func:`gradient_study_specs`.
    data, dataset, store, progress, device, on_run, executor, workers, on_error
        Where and how the runs train: as for :class:`RunOptions`.

    Returns
    -------
    ExperimentResult
        Grouped by ``lr``; each run has ``gradients`` (the tracer's dict) and the table has
        ``gradient_first``, ``gradient_last`` and ``gradient_mean`` columns.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> result = fmc.gradient_study(lrs=(0.1, 0.01), steps=100)         # doctest: +SKIP
    >>> values = result.runs[0].gradients["values"]                     # doctest: +SKIP
    >>> len(values)                                                     # doctest: +SKIP
    100
    """
    _one_epoch_traces(model, lrs, steps, statistic, seeds, trainer_options)  # before loading
    options = RunOptions(data=data, dataset=dataset, store=store, progress=progress,
                         device=device, on_run=on_run, executor=executor, workers=workers,
                         on_error=on_error)
    loaded = options.load()  # once: the epochs the steps need depend on the training set
    (train, _), _ = resolve(loaded)
    specs = gradient_study_specs(model, lrs, steps, statistic, seeds, train_size=len(train),
                                 **trainer_options)
    return ExperimentResult("gradient_study", runs=replace(options, data=loaded).run(specs),
                            group_by="lr")
