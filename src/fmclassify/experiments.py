"""The course's questions as functions: sweeps, convergence, model comparison, gradients.

Each function checks all of its arguments, then trains a set of runs (:mod:`fmclassify.runs`)
and returns an :class:`ExperimentResult` with the runs' Histories, a table
(:meth:`ExperimentResult.table`), Markdown, figures and JSON. Given a ``store`` folder, every
finished run is saved there as JSON keyed by its full configuration and never trained twice,
and an unfinished run continues from its last finished epoch: rerun the same call after an
interrupt and it picks up where it stopped.

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
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fmclassify._checks import check_int, check_lr, check_seeds, check_values
from fmclassify._io import atomic_write_bytes, dumps_json
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import load_dataset
from fmclassify.exceptions import ConfigError
from fmclassify.gradients import GradientTracer
from fmclassify.history import History
from fmclassify.runs import RECIPE_FIELDS, Data, RunResult, RunSpec, RunStore, data_id, run_many

__all__ = [
    "ExperimentResult",
    "compare_models",
    "convergence_study",
    "gradient_study",
    "lr_sweep",
]

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
        What a reader of the table should know, printed under its Markdown table.

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

        Numeric columns of a group with several seeds hold the mean, with ``<column>_std``
        beside it. ``status`` lists each seed's status.
        """
        return [_summarise(self.group_by, key, runs, self.kind)
                for key, runs in self.groups().items()]

    def to_markdown(self) -> str:
        """The table as Markdown, accuracies in percent, then any :attr:`notes`."""
        from fmclassify._tables import markdown_table

        return markdown_table(self.table(), self.kind) + "".join(
            f"\n\nNote: {note}" for note in self.notes)

    def _repr_html_(self) -> str:
        """How a notebook shows the result: the experiment's table and its notes."""
        from fmclassify._display import html_table
        from fmclassify._tables import COLUMNS, format_cell

        rows = self.table()
        columns = COLUMNS.get(self.kind) or [(k, k) for k in (rows[0] if rows else {})]
        cells = [[format_cell(k, r.get(k), r.get(f"{k}_std")) for k, _ in columns]
                 for r in rows]
        return html_table([h for _, h in columns], cells,
                          title=f"{self.kind}: {len(self.runs)} runs",
                          right=range(len(columns)), notes=self.notes)

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def plot(self) -> dict[str, Any]:
        """Figures: one loss/accuracy figure per run, comparison figures, gradient curves."""
        from fmclassify import plotting

        figures: dict[str, Any] = {}
        for run in self.runs:
            figures[f"run-{run.spec.key}"] = plotting.plot_history(run.history)
        if len(self.runs) > 1:
            labels = [f"{r.spec.label} seed {r.spec.seed}" for r in self.runs]
            for metric in ("test_accuracy", "train_loss", "test_loss"):
                figures[f"comparison-{metric}"] = plotting.plot_comparison(
                    self.histories, metric=metric, labels=labels)
        for run in self.runs:
            if run.gradients:
                figures[f"gradients-{run.spec.key}"] = plotting.plot_gradients(
                    run.gradients["values"], statistic=run.gradients.get("statistic", "mean"),
                    title=f"gradient {run.gradients.get('statistic', 'mean')}, {run.spec.label}")
        return figures

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


def _summarise(group_by: str, key: Any, runs: list[RunResult], kind: str) -> dict[str, Any]:
    hs = [r.history for r in runs]
    cols: dict[str, Callable[[History], float | None]] = {
        "final_accuracy": lambda h: h.final_accuracy if h.epochs_trained else None,
        "best_accuracy": lambda h: h.best_accuracy,
        "mean_accuracy": lambda h: h.mean_accuracy,
        "final_train_loss": lambda h: (h.trained[-1].train_loss if h.trained else None),
        "epochs_trained": lambda h: float(h.epochs_trained),
        "seconds_per_epoch": lambda h: h.seconds_per_epoch,
    }
    if kind == "convergence_study":
        cols["converged_epoch"] = lambda h: h.metadata.get("converged_epoch")
    row: dict[str, Any] = {group_by: key, "seeds": len(runs),
                           "parameters": hs[0].metadata.get("parameters")}
    for name, get in cols.items():
        values = [v for v in (get(h) for h in hs) if v is not None and math.isfinite(v)]
        row[name] = statistics.fmean(values) if values else None
        if len(runs) > 1:
            row[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else None
    row["status"] = "; ".join(h.describe_status() for h in hs)
    row["diverged"] = sum(h.status == "diverged" for h in hs)
    row["unstable"] = sum(h.unstable for h in hs)
    grads = [r.gradients for r in runs if r.gradients]
    if grads:
        vals = grads[0]["values"]
        finite = [v for v in vals if v is not None and math.isfinite(v)]
        row["gradient_statistic"] = grads[0].get("statistic", "mean")
        row["gradient_first"] = vals[0] if vals else None
        row["gradient_last"] = vals[-1] if vals else None
        row["gradient_mean"] = statistics.fmean(finite) if finite else None
        row["gradient_steps"] = len(vals)
    return row


# -- the questions ------------------------------------------------------------------------------


def _specs(make: Callable[..., list[RunSpec]], trainer_options: dict[str, Any], **kw: Any
           ) -> list[RunSpec]:
    """Build (and so check) every spec before any data is loaded."""
    unknown = sorted(set(trainer_options) - set(TRAINER_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; the runs take "
                          f"{', '.join(TRAINER_OPTIONS)}")
    return make(**kw)


def _execute(kind: str, group_by: str, specs: list[RunSpec], data: Data | None, dataset: str,
             store: RunStore | str | os.PathLike[str] | None, progress: bool, device: str,
             on_run: Callable[[RunResult], None] | None, executor: Executor | None,
             workers: int | None) -> ExperimentResult:
    """Load the data (once every argument has been checked), train, and collect the runs."""
    if workers is not None:
        check_int("workers", workers)
    if data is None:
        data = load_dataset(dataset)
    if store is not None and not isinstance(store, RunStore):
        store = RunStore(store)
    ident = data_id(*data)
    specs = [replace(s, data=ident) for s in specs]
    runs = run_many(specs, data, store=store, executor=executor, workers=workers,
                    progress=progress, device=device, on_run=on_run)
    return ExperimentResult(kind, runs=runs, group_by=group_by)


def lr_sweep(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.1: train ``model`` at each learning rate for ``epochs`` epochs.

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
    data : (ImageDataset, ImageDataset), optional
        Train and test sets; default ``load_dataset(dataset)``.
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
        Where the runs train (e.g. Dask's ``client.get_executor()``); default: processes on
        this machine, one per core (:func:`fmclassify.runs.run_many`).
    workers : int, optional
        Processes of the default pool; ``1`` trains the runs one by one in this process.
    **trainer_options
        Passed to every run's :class:`~fmclassify.Trainer`: ``batch_size``, ``shuffle``,
        ``step`` and the recipe (``optimizer``, ``momentum``, ``nesterov``, ``weight_decay``,
        ``schedule``, ``warmup_epochs``, ``label_smoothing``, ``clip_grad_norm``, ``augment``,
        ``val_split``, ``precision``, ``ema``), by name.

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
    seeds = check_seeds(seeds)
    specs = _specs(lambda: [RunSpec(model, check_lr(lr), epochs, seed, **_options(trainer_options))
                            for lr in check_values("lrs", lrs) for seed in seeds],
                   trainer_options)
    return _execute("lr_sweep", "lr", specs, data, dataset, store, progress, device, on_run,
                    executor, workers)


def convergence_study(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    max_epochs: int = 600,
    detector: ConvergenceDetector | None = None,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.2: train until accuracy stops changing, at each learning rate.

    Parameters
    ----------
    model, lrs, seeds, data, dataset, store, progress, device, on_run, executor, workers
        As for :func:`lr_sweep`.
    **trainer_options
        As for :func:`lr_sweep`.
    max_epochs : int, default 600
        The budget: a run that has not converged by then is reported as "not converged
        within N epochs".
    detector : ConvergenceDetector, optional
        The rule; default ``ConvergenceDetector(threshold=0.001, patience=3, window=3)``. Each
        run gets a fresh detector with the same settings.

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
    seeds = check_seeds(seeds)
    if detector is not None and not isinstance(detector, ConvergenceDetector):
        raise ConfigError(f"detector must be a ConvergenceDetector, got {type(detector).__name__}")
    detector = detector or ConvergenceDetector(threshold=0.001, patience=3, window=3)
    det_cfg = tuple(sorted(detector.config().items()))
    specs = _specs(lambda: [RunSpec(model, check_lr(lr), max_epochs, seed, detector=det_cfg,
                                    **_options(trainer_options))
                            for lr in check_values("lrs", lrs) for seed in seeds],
                   trainer_options)
    return _execute("convergence_study", "lr", specs, data, dataset, store, progress, device,
                    on_run, executor, workers)


def compare_models(
    models: Sequence[str] = ("base", "deeper", "wider"),
    lr: float = 0.1,
    epochs: int = 10,
    seeds: Sequence[int] = (0,),
    *,
    data: Data | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.4: train each model with the same settings; accuracy against parameters.

    Parameters
    ----------
    models : sequence of str, default ("base", "deeper", "wider")
        Registered model names.
    lr : float, default 0.1
        Learning rate of every run.
    epochs, seeds, data, dataset, store, progress, device, on_run, executor, workers
        As for :func:`lr_sweep`.
    **trainer_options
        As for :func:`lr_sweep`.

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
    seeds = check_seeds(seeds)
    specs = _specs(lambda: [RunSpec(m, check_lr(lr), epochs, seed, **_options(trainer_options))
                            for m in check_values("models", models) for seed in seeds],
                   trainer_options)
    return _execute("compare_models", "model", specs, data, dataset, store, progress, device,
                    on_run, executor, workers)


def gradient_study(
    model: str = "base",
    lrs: Sequence[float] = (1, 0.1, 0.01, 0.001),
    steps: int = 100,
    statistic: Literal["mean", "mean_abs", "l2_norm"] = "mean",
    seeds: Sequence[int] = (0,),
    *,
    data: Data | None = None,
    dataset: str = "fashion-mnist",
    store: RunStore | str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str = "auto",
    on_run: Callable[[RunResult], None] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.7: the gradient statistic over the first ``steps`` training steps, per lr.

    Each run trains as many epochs as the steps need (one epoch of Fashion-MNIST at batch 64
    is 938 steps), with a :class:`~fmclassify.GradientTracer` attached.

    Parameters
    ----------
    steps : int, default 100
        Steps to record.
    statistic : {"mean", "mean_abs", "l2_norm"}, default "mean"
        The course asks for the mean of every gradient entry.
    model, lrs, seeds, data, dataset, store, progress, device, on_run, executor, workers
        As for :func:`lr_sweep`.
    **trainer_options
        As for :func:`lr_sweep`.

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
    seeds = check_seeds(seeds)
    tracer_cfg = tuple(sorted(GradientTracer(steps=steps, statistic=statistic).config().items()))
    specs = _specs(lambda: [RunSpec(model, check_lr(lr), 1, seed, tracer=tracer_cfg,
                                    **_options(trainer_options))
                            for lr in check_values("lrs", lrs) for seed in seeds],
                   trainer_options)
    if data is None:  # the epochs the steps need depend on the training set's size
        data = load_dataset(dataset)
    epochs = max(1, math.ceil(steps * specs[0].batch_size / len(data[0])))
    specs = [replace(s, epochs=epochs) for s in specs]
    return _execute("gradient_study", "lr", specs, data, dataset, store, progress, device,
                    on_run, executor, workers)


def _options(trainer_options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(trainer_options)
    if opts.get("augment") is not None and not isinstance(opts["augment"], str):
        opts["augment"] = tuple(opts["augment"])
    elif isinstance(opts.get("augment"), str):
        opts["augment"] = tuple(a.strip() for a in opts["augment"].split(",") if a.strip())
    return opts
