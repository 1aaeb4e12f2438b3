"""The course's questions as functions: sweeps, convergence, model comparison, gradients.

Each function trains a set of runs and returns an :class:`ExperimentResult` with the runs'
Histories, a table (:meth:`ExperimentResult.table`), Markdown, figures and JSON. Given a
``store`` folder, every finished run is saved there as JSON keyed by its full configuration
and never trained twice, and an unfinished run continues from its last finished epoch: rerun
the same call after an interrupt and it picks up where it stopped.

Tables name what the course left ambiguous: ``final_accuracy`` (after the last epoch),
``best_accuracy`` (the highest over the epochs) and ``mean_accuracy`` (the mean over the
epochs, the course's "Avg Accuracy") are separate columns; accuracies are fractions.

Runs of one plain MLP trained with SGD that differ only in learning rate and seed are trained
together by default (``together=True``): on a CPU side by side, one run per core, each in a
Python thread with one intra-op thread (``torch.set_num_threads(1)``, which holds for the whole
process, while an epoch trains); on a GPU as one batched model. Each run equals its
one-by-one twin within float rounding (a GEMM on one thread rounds differently from one split
over two; on a CPU a run trained together equals bit for bit the same run trained alone under
``torch.set_num_threads(1)``). Pass ``together=False`` for runs computed exactly as
:class:`~fmclassify.Trainer` computes them alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from fmclassify.convergence import ConvergenceDetector
from fmclassify.data import ImageDataset, load_dataset
from fmclassify.exceptions import ConfigError
from fmclassify.gradients import GradientTracer
from fmclassify.history import History, atomic_write_bytes
from fmclassify.registry import build_model
from fmclassify.training import Trainer

__all__ = [
    "ExperimentResult",
    "RunResult",
    "RunSpec",
    "RunStore",
    "compare_models",
    "convergence_study",
    "gradient_study",
    "lr_sweep",
    "run_one",
]

Data = tuple[ImageDataset, ImageDataset]


@dataclass(frozen=True)
class RunSpec:
    """The full configuration of one run; two equal specs give the same numbers.

    Parameters
    ----------
    model : str
        Registered model name.
    lr : float
        Learning rate.
    epochs : int
        Epoch budget.
    seed : int
        Seeds the weights, the shuffling and dropout.
    batch_size, optimizer, shuffle
        As for :class:`~fmclassify.Trainer`.
    fused : bool
        Allow the Trainer's fused MLP step (``Trainer(fused=...)``).
    detector : dict, optional
        Keyword arguments of a :class:`~fmclassify.ConvergenceDetector`.
    tracer : dict, optional
        Keyword arguments of a :class:`~fmclassify.GradientTracer`.
    data : str
        Identifies the data: name, sizes and checksum.
    """

    model: str
    lr: float
    epochs: int
    seed: int = 0
    batch_size: int = 64
    optimizer: str = "sgd"
    shuffle: bool = True
    fused: bool = True
    detector: tuple[tuple[str, Any], ...] | None = None
    tracer: tuple[tuple[str, Any], ...] | None = None
    data: str = ""

    @property
    def key(self) -> str:
        """A file-name-safe key: readable prefix plus a hash of the whole configuration."""
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        return f"{self.model}-lr{self.lr:g}-e{self.epochs}-s{self.seed}-{digest}"

    @property
    def label(self) -> str:
        """A short label for legends: ``"base lr=0.1"``."""
        return f"{self.model} lr={self.lr:g}"


@dataclass
class RunResult:
    """One finished (or ended) run: its spec, History and optional gradient trace."""

    spec: RunSpec
    history: History
    gradients: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` reads it back."""
        return {"spec": asdict(self.spec), "history": self.history.to_dict(),
                "gradients": self.gradients}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a result written by :meth:`to_dict`."""
        raw = dict(data["spec"])
        for k in ("detector", "tracer"):
            if raw.get(k) is not None:
                raw[k] = tuple((a, _freeze(b)) for a, b in raw[k])
        return cls(RunSpec(**raw), History.from_dict(data["history"]), data.get("gradients"))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class RunStore:
    """A folder of finished runs (``KEY.json``) and unfinished ones' checkpoints (``KEY.ckpt``).

    Parameters
    ----------
    folder : path-like
        Created if missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def json_path(self, spec: RunSpec) -> Path:
        """Where the finished run of ``spec`` is stored."""
        return self.folder / f"{spec.key}.json"

    def checkpoint_path(self, spec: RunSpec) -> Path:
        """Where the unfinished run of ``spec`` keeps its checkpoint."""
        return self.folder / f"{spec.key}.ckpt"

    def load(self, spec: RunSpec) -> RunResult | None:
        """The stored result of ``spec``, or None when it has not finished."""
        path = self.json_path(spec)
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as fh:
            return RunResult.from_dict(json.load(fh))

    def save(self, result: RunResult) -> Path:
        """Store a finished run atomically and drop its checkpoint."""
        text = json.dumps(result.to_dict(), indent=1, allow_nan=False)
        path = atomic_write_bytes(self.json_path(result.spec), text.encode())
        self.checkpoint_path(result.spec).unlink(missing_ok=True)
        return path


def data_id(train: ImageDataset, test: ImageDataset) -> str:
    """Identify a data pair for run keys: name, sizes and checksums."""
    return f"{train.name}:{len(train)}:{len(test)}:{train.checksum[:16]}:{test.checksum[:16]}"


def _trainer(spec: RunSpec, data: Data, store: RunStore | None, progress: bool,
             device: str) -> tuple[Trainer, GradientTracer | None]:
    train, _ = data
    c, h, _ = train.image_shape
    model = build_model(spec.model, num_classes=train.num_classes, in_channels=c,
                        image_size=h, seed=spec.seed)
    detector = ConvergenceDetector(**dict(spec.detector)) if spec.detector else None
    tracer = GradientTracer(**dict(spec.tracer)) if spec.tracer else None
    callbacks = [cb for cb in (detector, tracer) if cb is not None]
    trainer = Trainer(model, lr=spec.lr, epochs=spec.epochs, batch_size=spec.batch_size,
                      optimizer=spec.optimizer, seed=spec.seed,  # type: ignore[arg-type]
                      shuffle=spec.shuffle, fused=spec.fused, device=device,
                      callbacks=callbacks,
                      progress=progress, checkpoint=store.checkpoint_path(spec) if store else None)
    return trainer, tracer


def run_one(
    spec: RunSpec,
    data: Data,
    *,
    store: RunStore | None = None,
    progress: bool = False,
    device: str = "auto",
) -> RunResult:
    """Train one run (or load it from ``store`` when it already finished).

    Parameters
    ----------
    spec : RunSpec
        What to train.
    data : (ImageDataset, ImageDataset)
        Train and test sets.
    store : RunStore, optional
        Reuse finished runs and resume unfinished ones from their checkpoint.
    progress : bool, default False
        Show the epoch bar.
    device : str, default "auto"
        Training device.

    Returns
    -------
    RunResult
    """
    if store is not None and (cached := store.load(spec)) is not None:
        return cached
    trainer, tracer = _trainer(spec, data, store, progress, device)
    history = trainer.fit(*data, resume=store is not None)
    result = RunResult(spec, history, tracer.to_dict() if tracer else None)
    if store is not None:
        store.save(result)
    return result


def run_together(
    specs: Sequence[RunSpec],
    data: Data,
    *,
    store: RunStore | None = None,
    device: str = "auto",
) -> list[RunResult] | None:
    """Train runs that differ only in learning rate and seed together, if they can be.

    On a CPU the runs train side by side, one per core; on a GPU as one batched model.
    Returns None (and trains nothing) when they cannot: a model that is not a plain MLP, a
    gradient tracer, runs that differ in more than lr and seed, finished runs in ``store``, or
    unfinished runs whose checkpoints stand at different epochs. The results equal
    :func:`run_one`'s within float rounding.
    """
    return _run_together(specs, data, store, device)[0]


def _run_together(specs: Sequence[RunSpec], data: Data, store: RunStore | None,
                  device: str) -> tuple[list[RunResult] | None, str | None]:
    """:func:`run_together`, and why the runs were not trained together.

    The reason is None where there is nothing to tell: finished runs in the store, a gradient
    tracer (it needs autograd), or ``fused=False`` asked for.
    """
    from fmclassify._together import can_train_together, fit_together

    if store is not None and any(store.load(s) is not None for s in specs):
        return None, None
    if not all(s.fused for s in specs) or any(s.tracer for s in specs):
        return None, None  # autograd asked for, or needed by the tracer: nothing to tell
    trainers = [_trainer(s, data, store, False, device)[0] for s in specs]
    reason = can_train_together(trainers)
    if reason is not None:
        return None, reason
    if store is not None:
        saved = [store.checkpoint_path(s) for s in specs]
        if any(p.exists() for p in saved) and not all(p.exists() for p in saved):
            return None, "some of the runs had checkpoints and some had not"
    try:
        histories = fit_together(trainers, *data, resume=store is not None)
    except ValueError as exc:
        return None, str(exc)  # e.g. checkpoints at different epochs: one by one
    results = [RunResult(s, h) for s, h in zip(specs, histories, strict=True)]
    if store is not None:
        for result in results:
            store.save(result)
    return results, None


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
        What a reader of the table should know, e.g. why the runs of one model were trained
        one by one although ``together=True`` asked for them to be trained together.

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
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False, default=str)
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


def _resolve(
    data: Data | None, dataset: str, store: RunStore | str | os.PathLike[str] | None
) -> tuple[Data, RunStore | None]:
    if data is None:
        data = load_dataset(dataset)
    if store is not None and not isinstance(store, RunStore):
        store = RunStore(store)
    return data, store


def _check_values(name: str, values: Sequence[Any]) -> None:
    if not values:
        raise ConfigError(f"{name} must not be empty")


def _run_all(kind: str, group_by: str, specs: Iterable[RunSpec], data: Data,
             store: RunStore | None, progress: bool, device: str,
             on_run: Callable[[RunResult], None] | None,
             together: bool = True) -> ExperimentResult:
    result = ExperimentResult(kind, group_by=group_by)
    specs = list(specs)
    pending = list(specs)
    if together and len(pending) > 1:
        for group in _sweep_groups(pending):
            runs, reason = _run_together(group, data, store, device)
            if reason is not None:
                result.notes.append(f"{len(group)} runs of {group[0].model} were trained one "
                                    f"by one, not together: {reason}")
            for run in runs or ():
                result.runs.append(run)
                pending.remove(run.spec)
                if on_run is not None:
                    on_run(run)
    for spec in pending:
        run = run_one(spec, data, store=store, progress=progress, device=device)
        result.runs.append(run)
        if on_run is not None:
            on_run(run)
    order = {spec: i for i, spec in enumerate(specs)}
    result.runs.sort(key=lambda r: order[r.spec])
    return result


def _sweep_groups(specs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """Specs grouped by everything but the learning rate and seed, groups of two or more."""
    groups: dict[RunSpec, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(replace(spec, lr=0.0, seed=0), []).append(spec)
    return [g for g in groups.values() if len(g) > 1]


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
    together: bool = True,
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
        Show each run's epoch bar.
    device : str, default "auto"
        Training device.
    on_run : callable, optional
        Called with each finished RunResult (progress reporting).
    together : bool, default True
        Train the runs (learning rates and seeds) epoch by epoch together when the model
        allows it (a plain MLP with SGD, no gradient tracer): on a CPU side by side, one run
        per core; on a GPU as one batched model. Faster, with each run equal to its
        sequential twin within float rounding. Otherwise, and with ``False``, one by one.
    **trainer_options
        ``batch_size``, ``optimizer``, ``shuffle``, ``fused``.

    Returns
    -------
    ExperimentResult
        Grouped by ``lr``.

    Examples
    --------
    >>> result = lr_sweep(lrs=(0.1, 0.01), epochs=2)   # doctest: +SKIP
    >>> print(result.to_markdown())                    # doctest: +SKIP
    """
    _check_values("lrs", lrs)
    _check_values("seeds", seeds)
    (train, test), st = _resolve(data, dataset, store)
    specs = [RunSpec(model, float(lr), epochs, seed, data=data_id(train, test), **trainer_options)
             for lr in lrs for seed in seeds]
    return _run_all("lr_sweep", "lr", specs, (train, test), st, progress, device, on_run,
                    together)


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
    together: bool = True,
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.2: train until test accuracy stops changing, at each learning rate.

    Parameters
    ----------
    model, lrs, seeds, data, dataset, store, progress, device, on_run, together
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
    _check_values("lrs", lrs)
    _check_values("seeds", seeds)
    detector = detector or ConvergenceDetector(threshold=0.001, patience=3, window=3)
    det_cfg = tuple(sorted(detector.config().items()))
    (train, test), st = _resolve(data, dataset, store)
    specs = [RunSpec(model, float(lr), max_epochs, seed, detector=det_cfg,
                     data=data_id(train, test), **trainer_options)
             for lr in lrs for seed in seeds]
    return _run_all("convergence_study", "lr", specs, (train, test), st, progress, device,
                    on_run, together)


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
    **trainer_options: Any,
) -> ExperimentResult:
    """Q1.4: train each model with the same settings; accuracy against parameters.

    Parameters
    ----------
    models : sequence of str, default ("base", "deeper", "wider")
        Registered model names.
    lr : float, default 0.1
        Learning rate of every run.
    epochs, seeds, data, dataset, store, progress, device, on_run, **trainer_options
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
    _check_values("models", models)
    _check_values("seeds", seeds)
    (train, test), st = _resolve(data, dataset, store)
    specs = [RunSpec(m, float(lr), epochs, seed, data=data_id(train, test), **trainer_options)
             for m in models for seed in seeds]
    return _run_all("compare_models", "model", specs, (train, test), st, progress, device,
                    on_run)  # each model's seeds together, where it allows


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
    model, lrs, seeds, data, dataset, store, progress, device, on_run, **trainer_options
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
    _check_values("lrs", lrs)
    tracer_cfg = tuple(sorted(GradientTracer(steps=steps, statistic=statistic).config().items()))
    (train, test), st = _resolve(data, dataset, store)
    batch = int(trainer_options.get("batch_size", 64))
    epochs = max(1, math.ceil(steps * batch / len(train)))
    specs = [RunSpec(model, float(lr), epochs, seed, tracer=tracer_cfg,
                     data=data_id(train, test), **trainer_options)
             for lr in lrs for seed in seeds]
    return _run_all("gradient_study", "lr", specs, (train, test), st, progress, device, on_run,
                    together=False)
