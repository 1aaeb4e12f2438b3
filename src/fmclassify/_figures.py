"""The figure every fmclassify plot returns, and the one place that decides how it is shown.

How a library figure shows in Jupyter
-------------------------------------
Like matplotlib's own under the inline backend: every figure made during a cell shows once,
as a picture, when the cell ends, wherever it was made and whatever the cell returns
(``interp.plot_confusion_matrix(); interp.most_confused(5)`` shows both). The rules, all here:

* A figure is a :class:`~matplotlib.figure.Figure` built **without pyplot**, in a kernel as in
  a script. Outside a kernel (a script, the CLI, pytest, a terminal IPython) nothing holds it,
  so nothing is ever shown and a figure is freed like any object once unreferenced: a sweep's
  hundreds of figures never pile up in pyplot's figure manager.
* In a kernel, :func:`new_figure` hands it to :func:`fmclassify._notebook.show_at_cell_end`,
  which displays it when the cell ends (IPython's ``post_run_cell`` event), unless it is the
  cell's own displayed value or was shown by ``display(fig)`` during the cell (IPython asks its
  ``_repr_mimebundle_`` each time it displays it). Then it is dropped: it lives no longer than
  a pyplot figure that the inline backend shows and closes.
* Why not create figures through pyplot in a kernel, for matplotlib-inline to show? Its hook
  would show a figure that is also the cell's last value twice (``history.plot()`` on the last
  line, the most common use), and the figure would live in pyplot's global state, which
  ``plt.close("all")``, ``plt.gcf()`` and a user's own ``plt.show()`` would then reach.
  Being outside pyplot, ``plt.show()`` neither hides nor repeats a library figure.
* A kernel whose matplotlib backend was set to a non-interactive one (``%matplotlib agg``,
  ``MPLBACKEND=agg``) shows nothing, as pyplot's figures there.
* Figures the library makes for its own use (a report's pictures, :class:`LivePlot`'s redraws,
  the panels of a :class:`FigureGrid`) are made inside :func:`unshown`.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fmclassify._checks import check_choice, check_positive
from fmclassify._io import atomic_write_bytes
from fmclassify._notebook import mark_shown, show_at_cell_end
from fmclassify.exceptions import ConfigError

__all__ = ["FigureGrid", "finite_or_nan", "new_figure", "unshown"]

# Backends that never show a figure; in a kernel set to one of them nothing is shown.
_NON_INTERACTIVE = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})
_SHOWN: ContextVar[bool] = ContextVar("fmclassify_figures_shown", default=True)


class _NotebookFigure(Figure):
    """A Figure that IPython can show as a PNG without pyplot ever having been imported.

    IPython renders a plain Figure as a picture only through the ``image/png`` formatter that
    matplotlib-inline registers for :class:`~matplotlib.figure.Figure` when the inline backend
    loads, which happens when pyplot is imported; before that a cell shows the text
    ``<Figure size 1000x400 with 2 Axes>``. Registering that formatter ourselves would change
    global IPython state from a plotting call; this method instead is IPython's ordinary
    per-object hook, asked for only when no formatter is registered for the type.
    ``_repr_mimebundle_`` adds no format: it only tells that the figure was displayed. Once pyplot
    is imported, the inline backend's formatter (and the user's ``InlineBackend`` settings,
    svg or retina) takes over, since IPython looks up registered types first.
    """

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> None:
        """Asked by IPython at each display: note it, and let the other formatters draw."""
        mark_shown(self)

    def _repr_png_(self) -> bytes | None:
        if not self.axes:  # as IPython's print_figure: no blank area for an empty figure
            return None
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")  # as the inline backend
        return buffer.getvalue()


def new_figure(*, figsize: tuple[float, float] = (7.0, 4.5), **kwargs: Any) -> Figure:
    """A new, empty figure of the kind every fmclassify plot returns.

    It is built without pyplot and never kept alive by pyplot's figure manager: in a script it
    is never shown and is freed like any object once unreferenced. In a Jupyter kernel it shows
    once, as a picture, when the cell that made it ends (see the module's notes), unless made
    inside :func:`unshown`.

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
    fig = _NotebookFigure(figsize=figsize, **kwargs)
    _show_when_the_cell_ends(fig)
    return fig


@contextmanager
def unshown() -> Iterator[None]:
    """Figures made inside are the caller's own (to save, to compose): not shown by a notebook.

    Examples
    --------
    >>> with unshown():
    ...     fig = new_figure()
    """
    token = _SHOWN.set(False)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def _show_when_the_cell_ends(obj: Any) -> None:
    if _SHOWN.get() and "ipykernel" in sys.modules and _backend_shows():
        show_at_cell_end(obj)


def _backend_shows() -> bool:
    """False when the user chose a non-interactive matplotlib backend (Agg, PDF, ...).

    Read without resolving the backend, which would import pyplot: matplotlib copies
    ``MPLBACKEND`` (ipykernel puts the inline backend there unless the user set another) into
    the rc value at import, and ``matplotlib.use`` or ``%matplotlib agg`` set it.
    """
    import matplotlib

    backend = matplotlib.rcParams._get("backend")  # stable API; does not resolve the backend
    if not isinstance(backend, str):  # not chosen yet: a kernel's default is inline
        backend = os.environ.get("MPLBACKEND", "inline")
    return backend.lower() not in _NON_INTERACTIVE


class FigureGrid(dict[str, Figure]):
    """Figures by name that a notebook shows as one picture: a grid, two figures a row.

    A :class:`dict` (``grid["comparison-test_accuracy"].savefig(...)`` as before;
    :meth:`save` writes them all, one file per name), whose
    figures were made inside :func:`unshown`; the grid itself is what shows, once, when the
    cell that made it ends (or as the cell's value). Each figure keeps its own size: the grid
    is drawn by pasting the figures' pixels, never by redrawing them smaller.

    Examples
    --------
    >>> with unshown():
    ...     grid = FigureGrid(a=new_figure(figsize=(2, 1)), b=new_figure(figsize=(2, 1)))
    >>> grid["a"].subplots().plot([0, 1]); grid["b"].subplots().plot([1, 0])  # doctest: +SKIP
    >>> sorted(grid)
    ['a', 'b']
    """

    columns = 2

    def show_when_the_cell_ends(self) -> FigureGrid:
        """Queue the grid for display at the end of the running notebook cell; returns self."""
        _show_when_the_cell_ends(self)
        return self

    def save(self, folder: str | os.PathLike[str], *, format: str = "png",
             dpi: float = 100.0) -> list[Path]:
        """Write each figure to ``folder/NAME.FORMAT``; the folder is created if missing.

        Each file is written whole or not at all (a temporary file, then a rename), with the
        permissions a plain ``open(path, "w")`` gives, and an existing file of the same name is
        replaced.

        Parameters
        ----------
        folder : path-like
            Where the files go.
        format : str, default "png"
            Any format :meth:`matplotlib.figure.Figure.savefig` writes: ``"png"``, ``"svg"``,
            ``"pdf"``, ...
        dpi : float, default 100
            Resolution of raster formats.

        Returns
        -------
        list of pathlib.Path
            The files written, in the grid's order.

        Raises
        ------
        ConfigError
            If a figure's name is not a plain file name (empty, or with a path separator), or
            ``format`` is not one matplotlib writes, or ``dpi`` is not a number > 0; nothing
            is written then.

        Examples
        --------
        >>> sweep.plot(kinds=("run",)).save("figures")                   # doctest: +SKIP
        [PosixPath('figures/run-base-lr0.1-s0.png'), PosixPath('figures/run-base-lr1-s0.png')]
        """
        from matplotlib.backend_bases import FigureCanvasBase

        check_choice("figure format", format, sorted(FigureCanvasBase.get_supported_filetypes()))
        check_positive("dpi", dpi)
        for name in self:
            if not name or name in (".", "..") or "/" in name or "\\" in name:
                raise ConfigError(f"figure name {name!r} is not a file name; rename it in the "
                                  "grid (grid[new] = grid.pop(old)) before saving")
        written = []
        for name, fig in self.items():
            buffer = io.BytesIO()
            fig.savefig(buffer, format=format, dpi=dpi, bbox_inches="tight")
            written.append(atomic_write_bytes(Path(folder) / f"{name}.{format}",
                                              buffer.getvalue()))
        return written

    def to_png(self, *, dpi: float = 72.0) -> bytes | None:
        """The grid as PNG bytes (None when no figure has axes), rows of :attr:`columns`."""
        import numpy as np
        from matplotlib.image import imread, imsave

        tiles = []
        for fig in self.values():
            if fig.axes:
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
                buffer.seek(0)
                tiles.append(imread(buffer, format="png"))  # (H, W, 4) floats in [0, 1]
        if not tiles:
            return None
        height = max(t.shape[0] for t in tiles)
        width = max(t.shape[1] for t in tiles)
        columns = min(self.columns, len(tiles))
        rows = []
        for start in range(0, len(tiles), columns):
            row = np.ones((height, width * columns, 4), dtype=np.float32)  # white, opaque
            for i, tile in enumerate(tiles[start:start + columns]):
                row[:tile.shape[0], i * width:i * width + tile.shape[1]] = tile
            rows.append(row)
        buffer = io.BytesIO()
        imsave(buffer, np.concatenate(rows), format="png")
        return buffer.getvalue()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> None:
        """Asked by IPython at each display: note it, and let ``_repr_png_`` draw."""
        mark_shown(self)

    def _repr_png_(self) -> bytes | None:
        return self.to_png()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"FigureGrid of {len(self)} figures: {', '.join(self)}")


def finite_or_nan(values: Sequence[float | None]) -> list[float]:
    """Values as floats, with None (a non-finite value read back from JSON) as NaN."""
    return [math.nan if v is None else float(v) for v in values]
