"""Figures of what happens inside a run: interpretation, the lr range test, gradient flow, units.

Re-exported by :mod:`fmclassify.plotting`, where they are documented; split out to keep each
module readable. Every figure is made by :func:`~fmclassify.plotting.new_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fmclassify._checks import check_choice
from fmclassify._figures import finite_or_nan, new_figure
from fmclassify.exceptions import ConfigError

__all__ = [
    "plot_activation_stats",
    "plot_confusion_matrix",
    "plot_gradient_flow",
    "plot_gradient_heatmap",
    "plot_lr_find",
    "plot_top_losses",
]


# -- interpretation and the learning-rate range test ------------------------------------------
# (used by fmclassify.interpret and fmclassify.lr_find; they pass plain lists and arrays)



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
        ax.plot(range(1, len(values) + 1), finite_or_nan(values), "-", label=name)
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
        data[i, : len(values)] = finite_or_nan(values)
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
        dead = finite_or_nan([r["dead_fraction"] for r in records])
        ax_dead.plot(epochs, [100.0 * d for d in dead], "o-", markersize=3, label=name)
        mean = finite_or_nan([r["mean"] for r in records])
        std = finite_or_nan([r["std"] for r in records])
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
    check_choice("flow statistic", stat, list(_FLOW_LABELS))
    if not per_layer:
        raise ConfigError("nothing to plot: no per-tensor values were recorded")


def _linear_range(per_layer: Mapping[str, Sequence[float | None]]) -> float:
    """The linear range of a symmetric-log scale: four decades below the largest |value|.

    Smaller values (a last layer's signed mean gradient cancels to ~1e-10) would otherwise
    stretch the axis over a dozen decades of noise around zero.
    """
    sizes = [abs(v) for vs in per_layer.values() for v in finite_or_nan(vs)
             if math.isfinite(v) and v]
    return max(sizes, default=1.0) * 1e-4
