"""The course's questions as functions: sweeps, convergence, model comparison, gradients.

Each experiment is a plan and one call. Its spec builder (:func:`lr_sweep_specs`,
:func:`convergence_study_specs`, :func:`compare_models_specs`, :func:`gradient_study_specs`)
checks every argument and returns the runs it needs as :class:`~fmclassify.RunSpec` objects,
training nothing; :meth:`RunOptions.run` trains them (:mod:`fmclassify.runs`), where and how
:class:`RunOptions` says; the experiment function does both, with the options as its keyword
arguments, and returns an :class:`ExperimentResult` (:mod:`fmclassify.results`) with the
runs' Histories, a table (:meth:`ExperimentResult.rows`, :meth:`ExperimentResult.table`),
Markdown, figures and JSON. Several experiments' specs
handed to one :meth:`RunOptions.run` train in one pool, with no core idle between one
experiment and the next (:func:`fmclassify.report.run_assignment` works so).

Given a ``store`` folder, every finished run is saved there as JSON keyed by its full
configuration and never trained twice, and an unfinished run continues from its last finished
epoch: rerun the same call after an interrupt and it picks up where it stopped.

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
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Literal

from fmclassify._checks import check_int, check_lr, check_seeds, check_values
from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import load_dataset
from fmclassify.exceptions import ConfigError
from fmclassify.executors import DataRef, resolve
from fmclassify.gradients import GradientTracer
from fmclassify.results import PLOT_KINDS as PLOT_KINDS  # it lived here; kept importable
from fmclassify.results import ExperimentResult, GroupRow
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

__all__ = [
    "ExperimentResult",
    "GroupRow",
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

#: Keyword arguments the experiments pass on to every run (``**trainer_options``).
TRAINER_OPTIONS = ("batch_size", "shuffle", "step", *RECIPE_FIELDS)


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
