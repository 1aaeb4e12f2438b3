"""Matplotlib figures of runs: loss and accuracy curves, comparisons, gradient traces.

Every function returns a :class:`matplotlib.figure.Figure` made by :func:`new_figure`, without
``matplotlib.pyplot``: in a script nothing is ever shown, no global "current figure" is created
or leaked (a sweep makes hundreds of figures; pyplot would keep each alive until closed), and
the library never saves a file; save one with ``fig.savefig("loss.png")``. In a Jupyter
notebook each figure shows once, as a picture, when the cell that made it ends, as pyplot's own
do under the inline backend: ``fig = history.plot()`` shows it, so does ``history.plot()`` on
any line, and ``plt.show()`` neither hides nor repeats it. Figures made inside :func:`unshown`
are not shown (make them there to save them only). :class:`FigureGrid` is a dict of named
figures that a notebook shows as one picture (what ``ExperimentResult.plot`` returns).

This module is a leaf: it reads :class:`~fmclassify.history.History` objects by the few
attributes :class:`HistoryLike` names (it imports only :mod:`fmclassify.exceptions` and its own
figure helpers, not :mod:`fmclassify.history`, not even for annotations, since ``History.plot``
imports this module) and plain lists, and nothing in the training code imports it
(``History.plot`` imports it lazily), so training never needs matplotlib.

Accuracy is drawn in percent (the stored values are fractions). Test loss and test accuracy
start at epoch 0, the evaluation of the untrained model; train loss starts at epoch 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmclassify._figures import FigureGrid, finite_or_nan, new_figure, unshown
from fmclassify._inside_plots import (
    plot_activation_stats,
    plot_confusion_matrix,
    plot_gradient_flow,
    plot_gradient_heatmap,
    plot_lr_find,
    plot_top_losses,
)
from fmclassify.exceptions import ConfigError

__all__ = [
    "FigureGrid",
    "HistoryLike",
    "RecordLike",
    "VerdictLike",
    "new_figure",
    "plot_activation_stats",
    "plot_comparison",
    "plot_confusion_matrix",
    "plot_gradient_flow",
    "plot_gradient_heatmap",
    "plot_gradients",
    "plot_history",
    "plot_lr_find",
    "plot_top_losses",
    "unshown",
]


class RecordLike(Protocol):
    """What the figures read of one epoch: an :class:`~fmclassify.history.EpochRecord` is one."""

    @property
    def epoch(self) -> int:
        """The epoch; 0 is the evaluation of the untrained model."""

    @property
    def train_loss(self) -> float | None:
        """Mean training loss of the epoch; ``None`` at epoch 0."""

    @property
    def test_loss(self) -> float:
        """Test loss after the epoch."""

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the epoch, a fraction."""

    @property
    def val_loss(self) -> float | None:
        """Validation loss, or ``None`` without a validation split."""

    @property
    def val_accuracy(self) -> float | None:
        """Validation accuracy (a fraction), or ``None`` without a validation split."""


class VerdictLike(Protocol):
    """What the figures read of a convergence verdict: a ``ConvergenceVerdict`` is one."""

    @property
    def epoch(self) -> int | None:
        """The epoch the run converged at, or ``None``."""


class HistoryLike(Protocol):
    """What the figures read of a run: a :class:`~fmclassify.history.History` is one.

    A protocol, not the class, because :mod:`fmclassify.history` imports this module (lazily,
    in ``History.plot``); naming ``History`` here, even for annotations only, would close an
    import cycle.
    """

    @property
    def records(self) -> Sequence[RecordLike]:
        """One record per epoch, in order."""

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The run's settings; the figures read ``"model"`` and ``"lr"``."""

    @property
    def status(self) -> str:
        """How the run ended; ``"diverged"`` is marked on the curves."""

    @property
    def diverged_epoch(self) -> int | None:
        """The epoch the loss became non-finite, or ``None``."""

    @property
    def convergence(self) -> VerdictLike | None:
        """The convergence detector's verdict, or ``None`` when no detector watched."""


_METRIC_LABELS = {
    "test_accuracy": "test accuracy (%)",
    "test_loss": "test loss (cross-entropy)",
    "train_loss": "train loss (cross-entropy)",
}
_STATISTIC_LABELS = {
    "mean": "mean gradient",
    "mean_abs": "mean |gradient|",
    "l2_norm": "gradient L2 norm",
}


def plot_history(history: HistoryLike, *, title: str | None = None) -> Figure:
    """Plot loss (train and test) and test accuracy per epoch, side by side (and val's).

    Parameters
    ----------
    history : History
        The run to draw.
    title : str, optional
        The figure title; by default ``"<model>, lr=<lr>"`` from ``history.metadata``.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: ``fig.axes[0]`` holds the loss lines (train, then test, then val for a run
        with a validation split), ``fig.axes[1]`` the accuracy in percent (test, then val).
        A diverged run gets a dashed vertical line at the epoch it diverged in; a converged
        run a dotted one at the epoch it converged at (``history.convergence.epoch``).

    Examples
    --------
    >>> from fmclassify.history import EpochRecord, History
    >>> h = History(metadata={"model": "base", "lr": 0.1})
    >>> h.append(EpochRecord(0, None, 2.30, 0.10, 0.0))
    >>> h.append(EpochRecord(1, 0.60, 0.50, 0.81, 2.0))
    >>> fig = plot_history(h)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['train', 'test']
    """
    fig = new_figure(figsize=(10.0, 4.0))
    ax_loss, ax_acc = fig.subplots(1, 2)
    trained = [r for r in history.records if r.train_loss is not None]
    ax_loss.plot([r.epoch for r in trained], [r.train_loss for r in trained], "o-", label="train")
    epochs = [r.epoch for r in history.records]
    ax_loss.plot(epochs, [r.test_loss for r in history.records], "s-", label="test")
    ax_acc.plot(epochs, [100.0 * r.test_accuracy for r in history.records], "s-", label="test")
    held_out = [r for r in history.records if r.val_loss is not None]
    if held_out:  # a run with Trainer(val_split=...)
        ax_loss.plot([r.epoch for r in held_out], [r.val_loss for r in held_out], "^-",
                     label="val")
        ax_acc.plot([r.epoch for r in held_out],
                    finite_or_nan([None if r.val_accuracy is None else 100.0 * r.val_accuracy
                             for r in held_out]), "^-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ylabel = "accuracy (%)" if held_out else "test accuracy (%)"
    ax_acc.set(xlabel="epoch", ylabel=ylabel, title="accuracy")
    for ax in (ax_loss, ax_acc):
        _mark_events(ax, history)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend()
    fig.suptitle(title if title is not None else _run_title(history))
    return fig


def plot_comparison(
    histories: Sequence[HistoryLike] | Mapping[str, HistoryLike],
    *,
    metric: str = "test_accuracy",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Overlay several runs' curves of one metric (the course's "overall comparison").

    Parameters
    ----------
    histories : sequence of History, or mapping of label to History
        The runs, drawn in order.
    metric : {"test_accuracy", "test_loss", "train_loss"}, default "test_accuracy"
        The column to draw; accuracy is shown in percent.
    labels : sequence of str, optional
        One legend label per run. By default the mapping's keys, else built from each run's
        metadata: ``"lr=0.1"`` when only the learning rates differ, the model name when only the
        models differ, ``"base, lr=0.1"`` when both do. A diverged run's label says so.
    title : str, optional
        The axes title; by default the metric's name.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, one line per run in the order given.

    Raises
    ------
    ConfigError
        If no runs are given, ``metric`` is unknown, or ``labels`` has the wrong length.
    """
    if isinstance(histories, Mapping):
        labels = list(histories) if labels is None else labels
        runs = list(histories.values())
    else:
        runs = list(histories)
    if not runs:
        raise ConfigError("plot_comparison needs at least one History; got none")
    if metric not in _METRIC_LABELS:
        raise ConfigError(f"unknown metric {metric!r}; available: {', '.join(_METRIC_LABELS)}")
    names = list(labels) if labels is not None else _default_labels(runs)
    if len(names) != len(runs):
        raise ConfigError(
            f"got {len(names)} labels for {len(runs)} histories; pass one label per run"
        )
    fig = new_figure(figsize=(7.0, 4.5))
    ax = fig.subplots()
    scale = 100.0 if metric == "test_accuracy" else 1.0
    for run, name in zip(runs, names, strict=True):
        rows = [r for r in run.records if getattr(r, metric) is not None]
        if run.status == "diverged":
            name = f"{name} (diverged at epoch {run.diverged_epoch})"
        ax.plot(
            [r.epoch for r in rows],
            [scale * getattr(r, metric) for r in rows],
            "o-",
            label=name,
            markersize=3,
        )
    ax.set(xlabel="epoch", ylabel=_METRIC_LABELS[metric])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else _METRIC_LABELS[metric])
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_gradients(
    values: Sequence[float | None],
    *,
    statistic: str = "mean",
    title: str | None = None,
    per_layer: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """Plot the gradient statistic per training step (Q1.7), optionally per parameter tensor.

    Parameters
    ----------
    values : sequence of float or None
        One value per step, as in :attr:`fmclassify.GradientTracer.values`; drawn at steps
        1, 2, ..., len(values). ``None`` (how ``GradientTracer.to_dict`` writes a NaN or
        infinite value to JSON) and non-finite values leave a gap in the line.
    statistic : {"mean", "mean_abs", "l2_norm"}, default "mean"
        What the values are; sets the axis label.
    title : str, optional
        The figure title; by default the statistic over the number of steps.
    per_layer : mapping of parameter name to sequence of float, optional
        Per-tensor values (:attr:`fmclassify.GradientTracer.per_layer_values`); drawn on a second
        axes, one line per tensor.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0].get_lines()[0]`` is the whole-model curve; for the signed mean a second,
        horizontal line marks zero. With ``per_layer``, ``fig.axes[1]`` holds one line per tensor.

    Raises
    ------
    ConfigError
        If ``statistic`` is unknown.
    """
    if statistic not in _STATISTIC_LABELS:
        raise ConfigError(
            f"unknown statistic {statistic!r}; available: {', '.join(_STATISTIC_LABELS)}"
        )
    fig = new_figure(figsize=(10.0 if per_layer else 7.0, 4.0))
    axes = fig.subplots(1, 2 if per_layer else 1, squeeze=False)[0]
    steps = list(range(1, len(values) + 1))
    ax = axes[0]
    ax.plot(steps, finite_or_nan(values), "-", label="all trainable parameters")
    if statistic == "mean":
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="training step", ylabel=_STATISTIC_LABELS[statistic])
    ax.grid(alpha=0.3)
    if per_layer:
        for name, layer_values in per_layer.items():
            xs = list(range(1, len(layer_values) + 1))
            axes[1].plot(xs, finite_or_nan(layer_values), "-", label=name)
        axes[1].set(xlabel="training step", ylabel=f"{_STATISTIC_LABELS[statistic]} per tensor")
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize="small")
    default = f"{_STATISTIC_LABELS[statistic]} over the first {len(values)} steps"
    fig.suptitle(title if title is not None else default)
    return fig


def _mark_events(ax: Axes, history: HistoryLike) -> None:
    """Draw the divergence or convergence epoch as a vertical line."""
    if history.status == "diverged" and history.diverged_epoch is not None:
        ax.axvline(
            history.diverged_epoch,
            color="red",
            linestyle="--",
            label=f"diverged at epoch {history.diverged_epoch}",
        )
    converged = history.convergence.epoch if history.convergence is not None else None
    if history.status != "diverged" and converged is not None:
        ax.axvline(converged, color="green", linestyle=":", label=f"converged at epoch {converged}")


def _run_title(history: HistoryLike) -> str:
    meta = history.metadata
    parts = [str(meta["model"])] if meta.get("model") is not None else []
    if meta.get("lr") is not None:
        parts.append(_lr_label(meta["lr"]))
    return ", ".join(parts) if parts else "training run"


def _default_labels(runs: Sequence[HistoryLike]) -> list[str]:
    models = [r.metadata.get("model") for r in runs]
    lrs = [r.metadata.get("lr") for r in runs]
    vary_model, vary_lr = len(set(map(str, models))) > 1, len(set(map(str, lrs))) > 1
    labels = []
    for i, (model, lr) in enumerate(zip(models, lrs, strict=True)):
        parts: list[Any] = []
        if model is not None and (vary_model or not vary_lr):
            parts.append(model)
        if lr is not None and (vary_lr or not vary_model):
            parts.append(_lr_label(lr))
        labels.append(", ".join(map(str, parts)) if parts else f"run {i + 1}")
    if len(set(labels)) < len(labels):  # identical settings (e.g. seeds): number the runs
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


def _lr_label(lr: Any) -> str:
    return f"lr={lr:g}" if isinstance(lr, float) else f"lr={lr}"
