"""Matplotlib figures of runs: loss and accuracy curves, comparisons, gradient traces.

Every function returns a :class:`matplotlib.figure.Figure` made by :func:`new_figure`, without
``matplotlib.pyplot``: nothing is ever shown, no global "current figure" is created or leaked
(a sweep makes hundreds of figures; pyplot would keep each alive until closed), and the library
never saves a file. Leave a figure as a cell's last value and a notebook shows it as a picture,
even in a fresh kernel where nothing imported pyplot; or save it with ``fig.savefig("loss.png")``.

This module is a leaf: it reads :class:`~fmclassify.history.History` objects (by their
attributes; it imports only :mod:`fmclassify.exceptions`) and plain lists, and nothing in the
training code imports it (``History.plot`` imports it lazily), so training never needs
matplotlib.

Accuracy is drawn in percent (the stored values are fractions). Test loss and test accuracy
start at epoch 0, the evaluation of the untrained model; train loss starts at epoch 1.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:  # read by duck typing: history imports this module, never the reverse
    from fmclassify.history import History

__all__ = ["new_figure", "plot_comparison", "plot_gradients", "plot_history"]

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


class _NotebookFigure(Figure):
    """A Figure that IPython can show as a PNG without pyplot ever having been imported.

    IPython renders a plain Figure as a picture only through the ``image/png`` formatter that
    matplotlib-inline registers for :class:`~matplotlib.figure.Figure` when the inline backend
    loads, which happens when pyplot is imported; before that a cell shows the text
    ``<Figure size 1000x400 with 2 Axes>``. Registering that formatter ourselves would change
    global IPython state from a plotting call; this method instead is IPython's ordinary
    per-object hook, asked for only when no formatter is registered for the type. Once pyplot
    is imported, the inline backend's formatter (and the user's ``InlineBackend`` settings,
    svg or retina) takes over, since IPython looks up registered types first.
    """

    def _repr_png_(self) -> bytes | None:
        if not self.axes:  # as IPython's print_figure: no blank area for an empty figure
            return None
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")  # as the inline backend
        return buffer.getvalue()


def new_figure(*, figsize: tuple[float, float] = (7.0, 4.5), **kwargs: Any) -> Figure:
    """A new, empty figure of the kind every fmclassify plot returns.

    It is built without pyplot, so it is never shown by library code and never kept alive by
    pyplot's figure manager: it is freed like any object once unreferenced. It still shows as
    a picture when it is the last value of a notebook cell, with or without pyplot imported.

    Parameters
    ----------
    figsize : (float, float), default (7.0, 4.5)
        Width and height in inches.
    **kwargs
        Passed to :class:`matplotlib.figure.Figure`; ``layout`` defaults to
        ``"constrained"``.

    Returns
    -------
    matplotlib.figure.Figure
        A Figure (of a subclass that adds only ``_repr_png_``) with no axes yet.

    Examples
    --------
    >>> fig = new_figure(figsize=(4.0, 3.0))
    >>> ax = fig.subplots()
    >>> fig._repr_png_()[1:4]  # what a notebook shows: PNG bytes
    b'PNG'
    """
    kwargs.setdefault("layout", "constrained")
    return _NotebookFigure(figsize=figsize, **kwargs)


def plot_history(history: History, *, title: str | None = None) -> Figure:
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
        run a dotted one at its ``converged_epoch``.

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
                    _floats([None if r.val_accuracy is None else 100.0 * r.val_accuracy
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
    histories: Sequence[History] | Mapping[str, History],
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
    ax.plot(steps, _floats(values), "-", label="all trainable parameters")
    if statistic == "mean":
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="training step", ylabel=_STATISTIC_LABELS[statistic])
    ax.grid(alpha=0.3)
    if per_layer:
        for name, layer_values in per_layer.items():
            xs = list(range(1, len(layer_values) + 1))
            axes[1].plot(xs, _floats(layer_values), "-", label=name)
        axes[1].set(xlabel="training step", ylabel=f"{_STATISTIC_LABELS[statistic]} per tensor")
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize="small")
    default = f"{_STATISTIC_LABELS[statistic]} over the first {len(values)} steps"
    fig.suptitle(title if title is not None else default)
    return fig


def _floats(values: Sequence[float | None]) -> list[float]:
    """Values as floats, with None (a non-finite value read back from JSON) as NaN."""
    return [math.nan if v is None else float(v) for v in values]


def _mark_events(ax: Axes, history: History) -> None:
    """Draw the divergence or convergence epoch as a vertical line."""
    if history.status == "diverged" and history.diverged_epoch is not None:
        ax.axvline(
            history.diverged_epoch,
            color="red",
            linestyle="--",
            label=f"diverged at epoch {history.diverged_epoch}",
        )
    converged = history.metadata.get("converged_epoch")
    if history.status != "diverged" and converged is not None:
        ax.axvline(converged, color="green", linestyle=":", label=f"converged at epoch {converged}")


def _run_title(history: History) -> str:
    meta = history.metadata
    parts = [str(meta["model"])] if meta.get("model") is not None else []
    if meta.get("lr") is not None:
        parts.append(_lr_label(meta["lr"]))
    return ", ".join(parts) if parts else "training run"


def _default_labels(runs: Sequence[History]) -> list[str]:
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


# -- interpretation and the learning-rate range test ------------------------------------------
# (used by fmclassify.interpret and fmclassify.lr_find; they pass plain lists and arrays)

__all__ += ["plot_confusion_matrix", "plot_lr_find", "plot_top_losses"]


def plot_confusion_matrix(
    matrix: Sequence[Sequence[float]],
    classes: Sequence[str],
    *,
    normalize: str | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a confusion matrix as a heat map with the value written in every cell.

    Parameters
    ----------
    matrix : sequence of sequence of float
        (C, C): rows are the true classes, columns the predicted ones, as
        :meth:`fmclassify.Interpretation.confusion_matrix` returns it (``.tolist()``).
    classes : sequence of str
        The C class names, in label order.
    normalize : {None, "true", "pred"}, optional
        What the values are: counts (written as integers), or fractions of each true class
        (row) or of each predicted class (column), written with two decimals.
    title : str, optional
        The axes title; by default says what the cells hold.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` holds the image and one text per cell (row by row); ``fig.axes[1]`` is
        the colour bar.

    Raises
    ------
    ConfigError
        If ``matrix`` is not C x C for the C names in ``classes``.
    """
    rows = [list(map(float, row)) for row in matrix]
    n = len(classes)
    if len(rows) != n or any(len(row) != n for row in rows):
        raise ConfigError(f"the confusion matrix must be {n} x {n} for {n} class names")
    fig = new_figure(figsize=(1.0 + 0.6 * max(n, 6), 0.6 * max(n, 6)))
    ax = fig.subplots()
    image = ax.imshow(rows, cmap="Blues", vmin=0.0)
    fig.colorbar(image, ax=ax)
    top = max((v for row in rows for v in row), default=0.0)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            text = f"{value:.0f}" if normalize is None else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if value > top / 2 else "black")
    ax.set_xticks(range(n), list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), list(classes))
    ax.set(xlabel="predicted class", ylabel="true class")
    default = {None: "confusion matrix (counts)", "true": "fraction of each true class",
               "pred": "fraction of each predicted class"}.get(normalize, "confusion matrix")
    ax.set_title(title if title is not None else default)
    return fig


def plot_top_losses(images: Sequence[Any], titles: Sequence[str], *,
                    title: str | None = None) -> Figure:
    """Show images in a grid, each with its own title (the interpretation's top losses).

    Parameters
    ----------
    images : sequence of array-like
        (H, W) grey-scale images or (H, W, 3) colour images, values in [0, 1].
    titles : sequence of str
        One title per image, e.g. ``"true Shirt / predicted T-shirt/top, loss 4.21"``.
    title : str, optional
        The figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image, in order, in a near-square grid.

    Raises
    ------
    ConfigError
        If there are no images, or not one title per image.
    """
    if not images or len(images) != len(titles):
        raise ConfigError(f"plot_top_losses needs one title per image and at least one image; "
                          f"got {len(images)} images and {len(titles)} titles")
    ncols = math.ceil(math.sqrt(len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig = new_figure(figsize=(2.2 * ncols, 2.5 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, image, text in zip(axes, images, titles, strict=False):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(text, fontsize="small")
        ax.set_axis_off()
    for ax in axes[len(images):]:
        fig.delaxes(ax)
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggestions: Mapping[str, float],
    *,
    sweep: Sequence[tuple[float, float | None]] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot a learning-rate range test: loss against learning rate on a log axis.

    Parameters
    ----------
    lrs, losses, smoothed : sequence of float
        Per step: the learning rate, the raw batch loss and its smoothed value.
    suggestions : mapping of str to float
        Named learning rates, each marked on the smoothed curve (at the loss interpolated
        between the two nearest steps, on the log scale).
    sweep : sequence of (lr, accuracy or None), optional
        Learning rates that were trained (an lr sweep), each drawn as a dotted vertical line
        labelled with its final accuracy in percent (``"n/a"`` when it has none).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes; by default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the axes: its lines are the raw loss, the smoothed loss, one marker
        line per suggestion, then one vertical line per swept learning rate, each labelled
        for the legend.
    """
    import numpy as np

    if ax is None:
        fig = new_figure(figsize=(7.0, 4.5))
        ax = fig.subplots()
    ax.plot(lrs, losses, "-", color="grey", alpha=0.4, linewidth=0.8, label="loss per batch")
    ax.plot(lrs, smoothed, "-", label="smoothed loss")
    log_lrs = np.log(np.asarray(lrs, dtype=float))
    for marker, (name, lr) in zip("ovs^Dp*", suggestions.items(), strict=False):
        at = float(np.interp(math.log(lr), log_lrs, np.asarray(smoothed, dtype=float)))
        ax.plot([lr], [at], marker, markersize=8, linestyle="none", label=f"{name}: {lr:.2g}")
    for lr, accuracy in sweep or ():
        text = "n/a" if accuracy is None else f"{100 * accuracy:.1f}%"
        ax.axvline(lr, color="black", linestyle=":", linewidth=1.0,
                   label=f"trained at lr={lr:g}: {text}")
        ax.text(lr, 0.98, f" {text}", transform=ax.get_xaxis_transform(), rotation=90,
                va="top", ha="right", fontsize="small")
    ax.set_xscale("log")
    _zoom_on_descent(ax, list(smoothed))
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss (cross-entropy)",
           title="learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="lower left")
    # an axes in a SubFigure has the SubFigure as .figure; its .figure is the root Figure
    root: Figure = ax.figure.figure  # type: ignore[union-attr, assignment]
    return root


def _zoom_on_descent(ax: Axes, smoothed: list[float]) -> None:
    """Limit the y axis to the smoothed curve up to its minimum; the blow-up leaves the top.

    A diverging last step can reach losses thousands of times the starting one, which would
    flatten the part of the curve that matters.
    """
    if not smoothed:
        return
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    low, high = smoothed[lowest], max(smoothed[: lowest + 1])
    span = high - low if high > low else max(abs(high), 1.0) * 0.05
    ax.set_ylim(low - 0.15 * span, high + 0.6 * span)


# -- per-layer gradient flow and activation statistics ----------------------------------------
# (used by fmclassify.GradientTracer(per_layer=True) and fmclassify.ActivationStats)

__all__ += ["plot_activation_stats", "plot_gradient_flow", "plot_gradient_heatmap"]

_FLOW_LABELS = {
    "mean": "mean gradient",
    "mean_abs": "mean |gradient|",
    "norm": "gradient L2 norm",
    "weight_norm": "weight L2 norm",
    "update_ratio": "update ratio lr*||g||/||w||",
}


def plot_gradient_flow(
    per_layer: Mapping[str, Sequence[float | None]],
    *,
    stat: str = "mean_abs",
    title: str | None = None,
) -> Figure:
    """Plot one gradient flow statistic per training step, one line per parameter tensor.

    Parameters
    ----------
    per_layer : mapping of tensor name to sequence of float or None
        One value per step, e.g. ``{n: s["norm"] for n, s in tracer.per_layer.items()}``;
        ``None`` and non-finite values leave gaps.
    stat : {"mean_abs", "norm", "weight_norm", "update_ratio", "mean"}, default "mean_abs"
        What the values are; sets the label. The y axis is logarithmic (symmetric-log for the
        signed ``"mean"``), so layers whose values differ by orders of magnitude all show.
    title : str, optional
        The axes title; by default the statistic per tensor.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with one line per tensor, in the mapping's order, labelled by name.

    Raises
    ------
    ConfigError
        If ``stat`` is unknown or ``per_layer`` is empty.
    """
    _check_flow(per_layer, stat)
    fig = new_figure(figsize=(8.0, 4.5))
    ax = fig.subplots()
    for name, values in per_layer.items():
        ax.plot(range(1, len(values) + 1), _floats(values), "-", label=name)
    if stat == "mean":
        ax.set_yscale("symlog", linthresh=_linear_range(per_layer))
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    else:
        ax.set_yscale("log")
    ax.set(xlabel="training step", ylabel=f"{_FLOW_LABELS[stat]} (log scale)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_title(title if title is not None else f"{_FLOW_LABELS[stat]} per tensor")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", ncols=1 + len(per_layer) // 12)
    return fig


def plot_gradient_heatmap(
    per_layer: Mapping[str, Sequence[float | None]],
    *,
    stat: str = "update_ratio",
    title: str | None = None,
) -> Figure:
    """Draw one gradient flow statistic as an image: a row per tensor, a column per step.

    Parameters
    ----------
    per_layer : mapping of tensor name to sequence of float or None
        One value per step per tensor, as for :func:`plot_gradient_flow`.
    stat : {"update_ratio", "mean_abs", "norm", "weight_norm", "mean"}, default "update_ratio"
        What the values are. The colour scale is logarithmic over the positive values (cells
        that are zero, negative, None or non-finite stay blank); the signed ``"mean"`` gets a
        symmetric-log scale around zero instead.
    title : str, optional
        The axes title; by default the statistic.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` holds the image (rows in the mapping's order, ticks labelled by name,
        steps from 1), ``fig.axes[1]`` the colour bar.

    Raises
    ------
    ConfigError
        If ``stat`` is unknown or ``per_layer`` is empty.
    """
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize, SymLogNorm

    _check_flow(per_layer, stat)
    names = list(per_layer)
    steps = max(len(v) for v in per_layer.values())
    data = np.full((len(names), steps), np.nan)
    for i, values in enumerate(per_layer.values()):
        data[i, : len(values)] = _floats(values)
    shown = np.isfinite(data) & ((data > 0) | (stat == "mean"))
    top = float(np.abs(data[shown]).max()) if shown.any() else 1.0
    norm: Normalize
    if stat == "mean":
        norm = SymLogNorm(linthresh=_linear_range(per_layer), vmin=-top, vmax=top)
    else:
        low = float(data[shown].min()) if shown.any() else top / 10
        norm = LogNorm(vmin=low, vmax=top if top > low else low * 10)
    fig = new_figure(figsize=(8.0, 1.5 + 0.3 * len(names)))
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_where(~shown, data),
        aspect="auto",
        interpolation="nearest",
        norm=norm,
        cmap="coolwarm" if stat == "mean" else "viridis",
        extent=(0.5, steps + 0.5, len(names) - 0.5, -0.5),
    )
    fig.colorbar(image, ax=ax, label=_FLOW_LABELS[stat])
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.set(xlabel="training step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else f"{_FLOW_LABELS[stat]} per tensor and step")
    return fig


def plot_activation_stats(
    history: Mapping[str, Sequence[Mapping[str, Any]]], *, title: str | None = None
) -> Figure:
    """Plot each layer's dead fraction, and its activation mean +- std, per recorded epoch.

    Parameters
    ----------
    history : mapping of layer name to sequence of records
        As :attr:`fmclassify.ActivationStats.history`: per layer, one mapping per recorded
        epoch with the keys ``"epoch"``, ``"dead_fraction"`` (0 to 1), ``"mean"`` and ``"std"``.
    title : str, optional
        The figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]``: dead units in percent, one line per layer; ``fig.axes[1]``: the mean,
        one line per layer, with a band of one standard deviation either side.

    Raises
    ------
    ConfigError
        If ``history`` is empty.
    """
    if not history:
        raise ConfigError("plot_activation_stats needs at least one recorded layer; got none")
    fig = new_figure(figsize=(10.0, 4.0))
    ax_dead, ax_mean = fig.subplots(1, 2)
    for name, records in history.items():
        epochs = [r["epoch"] for r in records]
        dead = _floats([r["dead_fraction"] for r in records])
        ax_dead.plot(epochs, [100.0 * d for d in dead], "o-", markersize=3, label=name)
        mean, std = _floats([r["mean"] for r in records]), _floats([r["std"] for r in records])
        (line,) = ax_mean.plot(epochs, mean, "o-", markersize=3, label=name)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax_mean.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
    ax_dead.set(xlabel="epoch", ylabel="dead units (%)", title="units never active in the epoch")
    ax_mean.set(xlabel="epoch", ylabel="activation", title="mean ± one std")
    for ax in (ax_dead, ax_mean):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig


def _check_flow(per_layer: Mapping[str, Sequence[float | None]], stat: str) -> None:
    if stat not in _FLOW_LABELS:
        raise ConfigError(f"unknown statistic {stat!r}; available: {', '.join(_FLOW_LABELS)}")
    if not per_layer:
        raise ConfigError("nothing to plot: no per-tensor values were recorded")


def _linear_range(per_layer: Mapping[str, Sequence[float | None]]) -> float:
    """The linear range of a symmetric-log scale: four decades below the largest |value|.

    Smaller values (a last layer's signed mean gradient cancels to ~1e-10) would otherwise
    stretch the axis over a dozen decades of noise around zero.
    """
    sizes = [abs(v) for vs in per_layer.values() for v in _floats(vs) if math.isfinite(v) and v]
    return max(sizes, default=1.0) * 1e-4
