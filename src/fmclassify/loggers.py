"""Callbacks that log a run as it trains: a live figure, TensorBoard scalars, a CSV file.

Each reads only the :class:`~fmclassify.EpochRecord` of a finished epoch (``on_epoch_end``),
never the per-step hook, so none of them adds a host-device synchronisation to a step, and
each sets ``needs_gradients = False``: the Trainer may keep its fastest step.

============================  ==========================================================
:class:`LivePlot`             loss and accuracy so far: redrawn in place in a notebook,
                              or written to a PNG file
:class:`TensorBoardLogger`    scalars for TensorBoard (needs ``fmclassify[tensorboard]``)
:class:`CSVLogger`            the History's table as CSV, rewritten after every epoch
============================  ==========================================================

Every file is written atomically (:func:`fmclassify._io.atomic_write_bytes`), so a reader
(an image viewer, ``tail``, a dashboard) never sees half a file.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmclassify._checks import check_nonnegative
from fmclassify._io import atomic_write_bytes
from fmclassify._notebook import in_notebook
from fmclassify.callbacks import CallbackBase, RunContext
from fmclassify.exceptions import ConfigError
from fmclassify.history import EpochRecord, History

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CSVLogger", "LivePlot", "TensorBoardLogger"]


class LivePlot(CallbackBase):
    """Show loss and accuracy as the run trains: in place in a notebook, else in a PNG file.

    In a Jupyter notebook (Jupyter, JupyterLab, Colab, VS Code) the figure of
    :meth:`History.plot <fmclassify.History.plot>` appears once, below the cell, and is
    redrawn in place as epochs finish. Elsewhere (a script, a terminal) it is written to
    ``path`` instead, replaced atomically, so an image viewer that reloads the file follows
    the run. Given a ``path`` in a notebook, it does both.

    Redraws are rate-limited by the wall clock: after an epoch the figure is redrawn only if
    ``every_seconds`` have passed since the last redraw (drawing a figure takes about a tenth
    of a second; short epochs would otherwise spend their time drawing). It is always redrawn
    at the start of the fit and at its end, so the final picture shows every epoch.

    Parameters
    ----------
    every_seconds : float, default 0.5
        Least wall-clock time between two redraws, >= 0; 0 redraws after every epoch.
    path : path-like, optional
        A PNG file to write the figure to. Required outside a notebook, where there is no
        other place to show it.

    Raises
    ------
    ConfigError
        If ``every_seconds`` is negative or not a number, or outside a notebook without
        ``path``.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> live = fmc.LivePlot(path="live.png")                    # doctest: +SKIP
    >>> fmc.Trainer(model, lr=0.1, epochs=10, callbacks=[live]).fit(train, test)  # doctest: +SKIP
    """

    needs_gradients = False

    def __init__(self, every_seconds: float = 0.5, path: str | os.PathLike[str] | None = None
                 ) -> None:
        self.every_seconds = check_nonnegative("every_seconds", every_seconds)
        self.path = None if path is None else Path(path)
        self.notebook = in_notebook()
        if self.path is None and not self.notebook:
            raise ConfigError("LivePlot outside a notebook needs a file to draw to; pass "
                              "path=, e.g. LivePlot(path='live.png')")
        self.redraws = 0  # how many times the figure was drawn, for the curious and for tests
        self._handle: Any = None  # the notebook display, updated in place by its display id
        self._last = -math.inf

    def on_fit_start(self, run: RunContext) -> None:
        """Show the figure of the untrained model's evaluation (a new display per fit)."""
        self._handle = None
        self._draw(run.history)

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Redraw, unless the last redraw was less than ``every_seconds`` ago."""
        if time.monotonic() - self._last >= self.every_seconds:
            self._draw(run.history)

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Redraw once more, whatever the rate limit: the last picture shows the whole run."""
        self._draw(history)

    def _draw(self, history: History) -> None:
        from fmclassify.plotting import plot_history, unshown  # lazy: matplotlib when plotting

        with unshown():  # this display is updated in place, never shown again at the cell's end
            fig = plot_history(history)
        if self.path is not None:
            atomic_write_bytes(self.path, _png(fig))
        if self.notebook:
            from IPython.display import display  # a notebook kernel has IPython

            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
        self.redraws += 1
        self._last = time.monotonic()


class TensorBoardLogger(CallbackBase):
    """Write each epoch's numbers as TensorBoard scalars, one point per epoch.

    Tags: ``Loss/train``, ``Loss/test``, ``Accuracy/test`` (a fraction), and, for records
    that hold them, ``Loss/val``, ``Accuracy/val`` and ``LR``; the global step is the epoch.
    The records the History already holds at the start of the fit (epoch 0, the untrained
    model; or the finished epochs of a resumed run) are written first. Events are flushed
    after every epoch and the writer is closed when the fit ends. Look at them with
    ``tensorboard --logdir <log_dir>``.

    Parameters
    ----------
    log_dir : path-like
        Folder for the event files; several runs may share a parent folder, one subfolder
        each (``runs/lr0.1``, ``runs/lr0.01``), to be compared in one TensorBoard.

    Raises
    ------
    ImportError
        If the ``tensorboard`` package is missing, at construction, before any training:
        ``pip install "fmclassify[tensorboard]"``.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> logger = fmc.TensorBoardLogger("runs/base-lr0.1")          # doctest: +SKIP
    >>> fmc.Trainer(model, lr=0.1, epochs=10, callbacks=[logger]).fit(train, test)  # doctest: +SKIP
    """

    needs_gradients = False

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self._writer_class = _summary_writer_class()
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def on_fit_start(self, run: RunContext) -> None:
        """Open a writer and log the records the History already holds."""
        self._writer = self._writer_class(log_dir=str(self.log_dir))
        for record in run.history.records:
            self._log(record)
        self._writer.flush()

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Log the epoch's scalars and flush them to disk."""
        self._log(record)
        self._writer.flush()

    def on_fit_end(self, run: RunContext, history: History) -> None:
        """Close the writer (flushing what is left)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log(self, record: EpochRecord) -> None:
        scalars = {"Loss/train": record.train_loss, "Loss/test": record.test_loss,
                   "Accuracy/test": record.test_accuracy, "Loss/val": record.val_loss,
                   "Accuracy/val": record.val_accuracy, "LR": record.lr}
        for tag, value in scalars.items():
            if value is not None:
                self._writer.add_scalar(tag, value, global_step=record.epoch)


class CSVLogger(CallbackBase):
    """Rewrite the History as a CSV file after every epoch (:meth:`fmclassify.History.to_csv`).

    The file holds one row per finished epoch, epoch 0 included, and is replaced atomically,
    so it can be read (``pandas.read_csv``, a spreadsheet, ``tail``) while the run trains.

    Parameters
    ----------
    path : path-like
        The CSV file; its folder is created if missing.

    Examples
    --------
    >>> import fmclassify as fmc
    >>> log = fmc.CSVLogger("runs/base-lr0.1.csv")                  # doctest: +SKIP
    >>> fmc.Trainer(model, lr=0.1, epochs=10, callbacks=[log]).fit(train, test)  # doctest: +SKIP
    """

    needs_gradients = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_fit_start(self, run: RunContext) -> None:
        """Write the records so far (epoch 0)."""
        run.history.to_csv(self.path)

    def on_epoch_end(self, run: RunContext, record: EpochRecord) -> None:
        """Rewrite the file with the new epoch."""
        run.history.to_csv(self.path)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or ImportError naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except ImportError:
        raise ImportError('TensorBoardLogger needs the tensorboard package; install it with '
                          'pip install "fmclassify[tensorboard]"') from None
    return SummaryWriter
