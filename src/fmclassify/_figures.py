"""The figure every fmclassify plot returns: built without pyplot, shown as a PNG in notebooks."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = ["finite_or_nan", "new_figure"]


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


def finite_or_nan(values: Sequence[float | None]) -> list[float]:
    """Values as floats, with None (a non-finite value read back from JSON) as NaN."""
    return [math.nan if v is None else float(v) for v in values]
